//! Prometheus text metrics for `/metrics`: request counts and latency histograms per route,
//! bytes in and out, and gauges the peer and router set (disk use, replicas, peers up).
//!
//! Hand-written on purpose: a few atomics and one small map are all we need, and the
//! `prometheus` crates would add more build time than code.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Default, Clone)]
struct RouteStats {
    count: u64,
    sum_seconds: f64,
    buckets: [u64; LATENCY_BUCKETS.len()],
}

#[derive(Default)]
struct Inner {
    routes: Mutex<BTreeMap<(String, String, u16), RouteStats>>,
    gauges: Mutex<BTreeMap<&'static str, (&'static str, f64)>>,
    bytes_in: AtomicU64,
    bytes_out: AtomicU64,
}

/// The metrics of one server (peer or router). Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    prefix: &'static str,
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl Metrics {
    /// Metrics whose names start with `prefix` (`mictlanx_peer`, `mictlanx_router`).
    pub fn new(prefix: &'static str) -> Self {
        Self {
            prefix,
            inner: Arc::default(),
        }
    }

    /// Counts bytes received in request bodies.
    pub fn add_bytes_in(&self, n: u64) {
        self.inner.bytes_in.fetch_add(n, Ordering::Relaxed);
    }

    /// Counts bytes sent in response bodies.
    pub fn add_bytes_out(&self, n: u64) {
        self.inner.bytes_out.fetch_add(n, Ordering::Relaxed);
    }

    /// Sets gauge `name` (appended to the prefix) to `value`.
    pub fn set_gauge(&self, name: &'static str, help: &'static str, value: f64) {
        if let Ok(mut g) = self.inner.gauges.lock() {
            g.insert(name, (help, value));
        }
    }

    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut routes) = self.inner.routes.lock() else {
            return;
        };
        let stats = routes
            .entry((method.to_string(), route.to_string(), status))
            .or_default();
        stats.count += 1;
        stats.sum_seconds += seconds;
        for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
            if seconds <= *bound {
                stats.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition of everything recorded.
    pub fn render(&self) -> String {
        let p = self.prefix;
        let mut out = String::new();
        let routes = self
            .inner
            .routes
            .lock()
            .map(|r| r.clone())
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "# HELP {p}_requests_total HTTP requests by route and status."
        );
        let _ = writeln!(out, "# TYPE {p}_requests_total counter");
        for ((method, route, status), s) in &routes {
            let _ = writeln!(
                out,
                "{p}_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        let _ = writeln!(
            out,
            "# HELP {p}_request_duration_seconds HTTP request latency by route."
        );
        let _ = writeln!(out, "# TYPE {p}_request_duration_seconds histogram");
        for ((method, route, status), s) in &routes {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (i, bound) in LATENCY_BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "{p}_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {}",
                    s.buckets[i]
                );
            }
            let _ = writeln!(
                out,
                "{p}_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(
                out,
                "{p}_request_duration_seconds_sum{{{labels}}} {}",
                s.sum_seconds
            );
            let _ = writeln!(
                out,
                "{p}_request_duration_seconds_count{{{labels}}} {}",
                s.count
            );
        }
        for (name, help, value) in [
            (
                "bytes_in_total",
                "Bytes received in request bodies.",
                self.inner.bytes_in.load(Ordering::Relaxed),
            ),
            (
                "bytes_out_total",
                "Bytes sent in response bodies.",
                self.inner.bytes_out.load(Ordering::Relaxed),
            ),
        ] {
            let _ = writeln!(out, "# HELP {p}_{name} {help}");
            let _ = writeln!(out, "# TYPE {p}_{name} counter");
            let _ = writeln!(out, "{p}_{name} {value}");
        }
        let gauges = self
            .inner
            .gauges
            .lock()
            .map(|g| g.clone())
            .unwrap_or_default();
        for (name, (help, value)) in gauges {
            let _ = writeln!(out, "# HELP {p}_{name} {help}");
            let _ = writeln!(out, "# TYPE {p}_{name} gauge");
            let _ = writeln!(out, "{p}_{name} {value}");
        }
        out
    }
}

/// Middleware that records every request under its route template (never the raw path, so
/// ids do not explode the label set). Install with
/// `axum::middleware::from_fn_with_state(metrics, track)`.
pub async fn track(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = req.method().to_string();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    let response = next.run(req).await;
    metrics.observe(
        &method,
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Handler for `GET /metrics`.
pub async fn render_handler(State(metrics): State<Metrics>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4",
        )],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_histograms_and_gauges() {
        let m = Metrics::new("mictlanx_peer");
        m.observe("GET", "/api/v4/buckets/{bucket_id}/{key}", 200, 0.003);
        m.observe("GET", "/api/v4/buckets/{bucket_id}/{key}", 200, 0.2);
        m.add_bytes_in(10);
        m.add_bytes_out(20);
        m.set_gauge("disk_used_bytes", "Bytes stored.", 42.0);
        let text = m.render();
        assert!(text.contains(
            "mictlanx_peer_requests_total{method=\"GET\",route=\"/api/v4/buckets/{bucket_id}/{key}\",status=\"200\"} 2"
        ));
        assert!(text.contains("le=\"0.005\"} 1"));
        assert!(text.contains("le=\"+Inf\"} 2"));
        assert!(text.contains("mictlanx_peer_bytes_in_total 10"));
        assert!(text.contains("mictlanx_peer_bytes_out_total 20"));
        assert!(text.contains("mictlanx_peer_disk_used_bytes 42"));
    }
}
