//! One scenario's result: counts, a latency histogram, baselines, and its line of output
//! (text, or one JSON object with `--json`).

use hdrhistogram::Histogram;
use serde_json::{json, Value};

/// Highest latency the histogram tells apart (one hour); longer ones are recorded as this.
const MAX_LATENCY_NS: u64 = 3_600_000_000_000;

/// An empty latency histogram in nanoseconds, three significant figures.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3).expect("constant bounds are valid")
}

/// A reference transfer of the same bytes in the same run: `disk` or `wire`.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    /// `disk` or `wire`.
    pub name: &'static str,
    /// Transfers or exchanges made (1 for a large object's).
    pub ops: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Seconds it took.
    pub seconds: f64,
}

impl Baseline {
    /// Throughput in MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        rate(self.bytes as f64 / 1e6, self.seconds)
    }

    /// Transfers or exchanges per second.
    pub fn ops_per_s(&self) -> f64 {
        rate(self.ops as f64, self.seconds)
    }
}

/// What one scenario measured.
#[derive(Debug, Clone)]
pub struct Report {
    /// Scenario name as given on the command line.
    pub scenario: &'static str,
    /// Operations that succeeded in the measured window.
    pub ops: u64,
    /// Bytes those operations moved.
    pub bytes: u64,
    /// Length of the measured window.
    pub seconds: f64,
    /// Latency of each successful operation, in nanoseconds.
    pub latency: Histogram<u64>,
    /// Operations that failed or timed out.
    pub errors: u64,
    /// Retries the client made (sum over its routers).
    pub retries: u64,
    /// Peak RSS of the process during the measured part, in bytes.
    pub peak_rss_bytes: Option<u64>,
    /// The baselines run for this scenario.
    pub baselines: Vec<Baseline>,
    /// The first failure's message, for stderr (not part of the line).
    pub first_error: Option<String>,
}

impl Report {
    /// An empty report for `scenario`.
    pub fn new(scenario: &'static str) -> Self {
        Self {
            scenario,
            ops: 0,
            bytes: 0,
            seconds: 0.0,
            latency: latency_histogram(),
            errors: 0,
            retries: 0,
            peak_rss_bytes: None,
            baselines: Vec::new(),
            first_error: None,
        }
    }

    /// Operations per second.
    pub fn ops_per_s(&self) -> f64 {
        rate(self.ops as f64, self.seconds)
    }

    /// Throughput in MB/s (10^6 bytes).
    pub fn mb_per_s(&self) -> f64 {
        rate(self.bytes as f64 / 1e6, self.seconds)
    }

    /// The latency at quantile `q` (0..=1) in milliseconds; `None` with no operation.
    pub fn quantile_ms(&self, q: f64) -> Option<f64> {
        (!self.latency.is_empty()).then(|| self.latency.value_at_quantile(q) as f64 / 1e6)
    }

    /// The largest latency in milliseconds; `None` with no operation.
    pub fn max_ms(&self) -> Option<f64> {
        (!self.latency.is_empty()).then(|| self.latency.max() as f64 / 1e6)
    }

    /// The slower of the baselines: the one the issue compares against.
    pub fn lower_baseline(&self) -> Option<&Baseline> {
        self.baselines
            .iter()
            .min_by(|a, b| a.mb_per_s().total_cmp(&b.mb_per_s()))
    }

    /// Our throughput over the lower baseline's.
    pub fn ratio(&self) -> Option<f64> {
        let base = self.lower_baseline()?.mb_per_s();
        (base > 0.0).then(|| self.mb_per_s() / base)
    }

    fn baseline_mb_per_s(&self, name: &str) -> Option<f64> {
        self.baselines
            .iter()
            .find(|b| b.name == name)
            .map(Baseline::mb_per_s)
    }

    /// The `--json` fields in order: the issue's, with p90, max and retries beside their
    /// kin, then both baselines.
    pub fn fields(&self) -> Vec<(&'static str, Value)> {
        let lower = self.lower_baseline();
        vec![
            ("scenario", json!(self.scenario)),
            ("ops", json!(self.ops)),
            ("bytes", json!(self.bytes)),
            ("seconds", json!(round(self.seconds))),
            ("ops_per_s", json!(round(self.ops_per_s()))),
            ("mb_per_s", json!(round(self.mb_per_s()))),
            ("p50_ms", json!(self.quantile_ms(0.50).map(round))),
            ("p90_ms", json!(self.quantile_ms(0.90).map(round))),
            ("p99_ms", json!(self.quantile_ms(0.99).map(round))),
            ("max_ms", json!(self.max_ms().map(round))),
            ("errors", json!(self.errors)),
            ("retries", json!(self.retries)),
            (
                "peak_rss_mb",
                json!(self.peak_rss_bytes.map(|b| round(b as f64 / 1e6))),
            ),
            ("baseline", json!(lower.map(|b| b.name))),
            (
                "baseline_mb_per_s",
                json!(lower.map(|b| round(b.mb_per_s()))),
            ),
            ("ratio", json!(self.ratio().map(round))),
            (
                "baseline_ops_per_s",
                json!(lower.map(|b| round(b.ops_per_s()))),
            ),
            (
                "disk_mb_per_s",
                json!(self.baseline_mb_per_s("disk").map(round)),
            ),
            (
                "wire_mb_per_s",
                json!(self.baseline_mb_per_s("wire").map(round)),
            ),
        ]
    }

    /// The fields as one JSON object.
    #[cfg(test)]
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.fields()
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        )
    }

    /// The `--json` line, fields in the order of [`Report::fields`] (a `serde_json` map
    /// would sort them).
    pub fn to_json_line(&self) -> String {
        let fields: Vec<String> = self
            .fields()
            .into_iter()
            .map(|(k, v)| format!("{}:{v}", Value::from(k)))
            .collect();
        format!("{{{}}}", fields.join(","))
    }

    /// The line for people.
    pub fn to_text(&self) -> String {
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
        let mut line = format!(
            "{:<10} {:>8} ops {:>10.1} MB {:>7.2} s {:>10.1} ops/s {:>8.1} MB/s  \
             p50/p90/p99/max {}/{}/{}/{} ms  errors {} retries {}  peak RSS {}",
            self.scenario,
            self.ops,
            self.bytes as f64 / 1e6,
            self.seconds,
            self.ops_per_s(),
            self.mb_per_s(),
            ms(self.quantile_ms(0.50)),
            ms(self.quantile_ms(0.90)),
            ms(self.quantile_ms(0.99)),
            ms(self.max_ms()),
            self.errors,
            self.retries,
            self.peak_rss_bytes
                .map_or_else(|| "-".to_string(), |b| format!("{:.1} MB", b as f64 / 1e6)),
        );
        for b in &self.baselines {
            line.push_str(&format!("  {} {:.1} MB/s", b.name, b.mb_per_s()));
            if b.ops > 1 {
                line.push_str(&format!(" {:.1} ops/s", b.ops_per_s()));
            }
        }
        if let (Some(base), Some(ratio)) = (self.lower_baseline(), self.ratio()) {
            line.push_str(&format!("  ratio {ratio:.2} (vs {})", base.name));
        }
        line
    }
}

fn rate(amount: f64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        amount / seconds
    } else {
        0.0
    }
}

/// Six decimals: a microsecond in milliseconds, without float noise in the JSON.
fn round(v: f64) -> f64 {
    if v.is_finite() {
        (v * 1e6).round() / 1e6
    } else {
        0.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The fields the issue lists, in its order.
    const ISSUE_FIELDS: [&str; 13] = [
        "scenario",
        "ops",
        "bytes",
        "seconds",
        "ops_per_s",
        "mb_per_s",
        "p50_ms",
        "p99_ms",
        "errors",
        "peak_rss_mb",
        "baseline",
        "baseline_mb_per_s",
        "ratio",
    ];

    fn known_report() -> Report {
        let mut r = Report::new("put-large");
        // 1 ms .. 100 ms, one each: p50 = 50 ms, p90 = 90 ms, p99 = 99 ms, max = 100 ms.
        for i in 1..=100u64 {
            r.latency.record(i * 1_000_000).unwrap();
        }
        r.ops = 100;
        r.bytes = 200_000_000;
        r.seconds = 2.0;
        r.errors = 3;
        r.retries = 4;
        r.peak_rss_bytes = Some(48_000_000);
        r.baselines = vec![
            Baseline {
                name: "disk",
                ops: 1,
                bytes: 400_000_000,
                seconds: 1.0,
            },
            Baseline {
                name: "wire",
                ops: 1,
                bytes: 200_000_000,
                seconds: 1.0,
            },
        ];
        r
    }

    fn close(a: Option<f64>, b: f64) -> bool {
        // Three significant figures: within 0.1 %.
        a.is_some_and(|a| (a - b).abs() <= b * 1e-3)
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let r = known_report();
        assert!(close(r.quantile_ms(0.50), 50.0), "{:?}", r.quantile_ms(0.5));
        assert!(close(r.quantile_ms(0.90), 90.0), "{:?}", r.quantile_ms(0.9));
        assert!(
            close(r.quantile_ms(0.99), 99.0),
            "{:?}",
            r.quantile_ms(0.99)
        );
        assert!(close(r.max_ms(), 100.0), "{:?}", r.max_ms());
        assert_eq!(r.ops_per_s(), 50.0);
        assert_eq!(r.mb_per_s(), 100.0);
        let empty = Report::new("put-small");
        assert_eq!((empty.quantile_ms(0.5), empty.max_ms()), (None, None));
        assert_eq!(empty.ops_per_s(), 0.0);
    }

    #[test]
    fn sub_millisecond_latencies_stay_fractions() {
        let mut r = Report::new("enqueue");
        r.latency.record(12_345).unwrap();
        assert!(close(r.quantile_ms(0.5), 0.012345));
    }

    #[test]
    fn json_has_exactly_the_issue_fields_and_the_extras() {
        let v = known_report().to_json();
        let obj = v.as_object().unwrap();
        for field in ISSUE_FIELDS {
            assert!(obj.contains_key(field), "missing {field}");
        }
        let mut names: Vec<&str> = obj.keys().map(String::as_str).collect();
        names.retain(|k| !ISSUE_FIELDS.contains(k));
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "baseline_ops_per_s",
                "disk_mb_per_s",
                "max_ms",
                "p90_ms",
                "retries",
                "wire_mb_per_s"
            ]
        );
        assert_eq!(v["scenario"], "put-large");
        assert_eq!(v["ops"], 100);
        assert_eq!(v["errors"], 3);
        assert_eq!(v["retries"], 4);
        assert_eq!(v["peak_rss_mb"], 48.0);
        // The lower baseline is the wire at 200 MB/s; ours is 100 MB/s.
        assert_eq!(v["baseline"], "wire");
        assert_eq!(v["baseline_mb_per_s"], 200.0);
        assert_eq!(v["ratio"], 0.5);
        assert_eq!(v["disk_mb_per_s"], 400.0);
        assert_eq!(v["baseline_ops_per_s"], 1.0);
    }

    #[test]
    fn without_baselines_or_ops_the_optional_fields_are_null() {
        let v = Report::new("mixed").to_json();
        for field in [
            "p50_ms",
            "p99_ms",
            "baseline",
            "baseline_mb_per_s",
            "ratio",
            "baseline_ops_per_s",
        ] {
            assert!(v[field].is_null(), "{field} = {}", v[field]);
        }
        assert_eq!(v["ops_per_s"], 0.0);
    }

    #[test]
    fn json_line_keeps_the_issue_order_and_parses() {
        let r = known_report();
        let line = r.to_json_line();
        assert!(line.starts_with(r#"{"scenario":"put-large","ops":100,"bytes":200000000,"#));
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed, r.to_json());
        let positions: Vec<usize> = ISSUE_FIELDS
            .iter()
            .map(|f| line.find(&format!("\"{f}\":")).unwrap())
            .collect();
        assert!(positions.windows(2).all(|w| w[0] < w[1]), "{line}");
    }

    #[test]
    fn text_line_names_the_scenario_and_the_ratio() {
        let line = known_report().to_text();
        assert!(line.starts_with("put-large"), "{line}");
        assert!(line.contains("ratio 0.50 (vs wire)"), "{line}");
    }
}
