//! `mictlanx bench SCENARIO`: throughput and latency of the SDK against an embedded
//! `LocalCluster` (or the routers of `--uri`), one line per scenario.
//!
//! Each scenario warms up, then measures: operations, bytes, seconds, ops/s, MB/s,
//! p50/p90/p99/max latency (hdrhistogram), errors, the client's retries and the process's
//! peak RSS (client and embedded cluster share the process). The large-object scenarios also
//! run the `disk` and `wire` baselines on the same bytes ([`baseline`]) and report the ratio to
//! the lower one; the small-object ones run a `wire` baseline of the same exchanges
//! ([`small_baseline`]). Failed operations are counted, never fatal; every loop ends at a deadline or
//! after a fixed count, and every operation has a timeout.

mod baseline;
mod report;
mod rss;
mod scenarios;
mod small_baseline;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};
use mictlanx::Client;
use mictlanx_server::LocalCluster;

use crate::output::Output;
use report::Report;

/// What `mictlanx bench` measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// One large object (default 256MB) stored from a file through `AsyncClient`, rf=1.
    PutLarge,
    /// The same object read back into a file through `AsyncClient`.
    GetLarge,
    /// 4 KiB objects stored by 64 concurrent callers for `--duration`.
    PutSmall,
    /// 4 KiB objects read by 64 concurrent callers for `--duration`.
    GetSmall,
    /// The time of one `AsyncClient::put` call, over 100,000 calls.
    Enqueue,
    /// 70 % gets, 30 % puts of 64 KiB objects by 32 concurrent callers for `--duration`.
    Mixed,
    /// Every scenario, in the order above.
    All,
}

impl Scenario {
    const EACH: [Scenario; 6] = [
        Scenario::PutLarge,
        Scenario::GetLarge,
        Scenario::PutSmall,
        Scenario::GetSmall,
        Scenario::Enqueue,
        Scenario::Mixed,
    ];

    /// The name on the command line and in the report.
    pub fn name(self) -> &'static str {
        match self {
            Scenario::PutLarge => "put-large",
            Scenario::GetLarge => "get-large",
            Scenario::PutSmall => "put-small",
            Scenario::GetSmall => "get-small",
            Scenario::Enqueue => "enqueue",
            Scenario::Mixed => "mixed",
            Scenario::All => "all",
        }
    }

    fn expand(self) -> Vec<Scenario> {
        match self {
            Scenario::All => Self::EACH.to_vec(),
            one => vec![one],
        }
    }

    /// Object size unless `--size` says otherwise.
    fn default_size(self) -> u64 {
        match self {
            Scenario::PutLarge | Scenario::GetLarge => 256_000_000,
            Scenario::Mixed => 64 * 1024,
            _ => 4 * 1024,
        }
    }

    /// Callers in flight unless `--concurrency` says otherwise (1 for the large objects and
    /// the enqueue loop, which measure one caller).
    fn default_concurrency(self) -> usize {
        match self {
            Scenario::PutSmall | Scenario::GetSmall => 64,
            Scenario::Mixed => 32,
            _ => 1,
        }
    }
}

/// Flags of `mictlanx bench`.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Scenario to run (`all` for every one).
    #[arg(value_enum)]
    pub scenario: Scenario,
    /// Measured time of put-small, get-small and mixed (after a warm-up), e.g. 10s, 500ms.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Object size for every selected scenario (default: 256MB large, 4KiB small and
    /// enqueue, 64KiB mixed).
    #[arg(long, value_parser = crate::parse_size_arg)]
    pub size: Option<u64>,
    /// Concurrent callers of put-small, get-small and mixed (default 64, 64, 32).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub concurrency: Option<u64>,
    /// Peers of the embedded cluster (ignored with --uri).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=16))]
    pub peers: u64,
    /// Chunk size of the SDK client, e.g. 256kb, 4MB (default: the SDK's own choice; with
    /// `--uri`, `MICTLANX_CHUNK_SIZE` applies instead).
    #[arg(long, value_parser = crate::parse_size_arg)]
    pub chunk_size: Option<u64>,
}

/// What every scenario needs: where the routers are, a scratch directory on the same
/// filesystem as the embedded peers, the bucket of this run and the flags.
pub(crate) struct Bench {
    uri: String,
    remote: bool,
    work: PathBuf,
    bucket: String,
    duration: Duration,
    size: Option<u64>,
    concurrency: Option<usize>,
    chunk_size: Option<u64>,
}

impl Bench {
    /// A new client for one scenario, so that its retry counts are its own.
    fn client(&self) -> Result<Client, String> {
        if self.remote {
            crate::connect::client(Some(&self.uri))
        } else {
            let mut builder = Client::builder()
                .routers_uri(&self.uri)
                .client_id("mictlanx-bench");
            if let Some(bytes) = self.chunk_size {
                builder = builder.chunk_size(bytes.to_string());
            }
            builder
                .build()
                .map_err(|e| format!("client configuration failed: {e}"))
        }
    }

    fn work(&self) -> &Path {
        &self.work
    }

    fn size(&self, scenario: Scenario) -> u64 {
        self.size.unwrap_or_else(|| scenario.default_size()).max(1)
    }

    fn concurrency(&self, scenario: Scenario) -> usize {
        self.concurrency
            .unwrap_or_else(|| scenario.default_concurrency())
    }
}

/// Runs the scenarios of `args`, printing each line as soon as it is measured.
pub async fn run(args: BenchArgs, uri: Option<&str>, out: Output) -> Result<(), String> {
    if args.duration.is_zero() {
        return Err("--duration must be more than 0".to_string());
    }
    let scratch = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let (cluster, uri) = match uri {
        Some(uri) => (None, uri.to_string()),
        None => {
            let cluster = LocalCluster::builder()
                .peers(usize::try_from(args.peers).unwrap_or(1))
                .data_dir(scratch.path().join("cluster"))
                .start()
                .await
                .map_err(|e| format!("starting the embedded cluster failed: {e}"))?;
            let uri = cluster.uri();
            (Some(cluster), uri)
        }
    };
    let bench = Bench {
        remote: cluster.is_none(),
        uri,
        work: scratch.path().to_path_buf(),
        bucket: format!("bench_{:08x}", rand::random::<u32>()),
        duration: args.duration,
        size: args.size,
        concurrency: args
            .concurrency
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX)),
        chunk_size: args.chunk_size,
    };
    let mut failure = None;
    for scenario in args.scenario.expand() {
        match scenarios::run(&bench, scenario).await {
            Ok(report) => emit(out, &report),
            Err(e) => {
                // One scenario that cannot be set up does not stop the others.
                eprintln!("mictlanx: bench {}: {e}", scenario.name());
                failure.get_or_insert(format!("bench {} failed: {e}", scenario.name()));
            }
        }
    }
    if bench.remote {
        scenarios::clean_up(&bench).await;
    }
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    failure.map_or(Ok(()), Err)
}

fn emit(out: Output, report: &Report) {
    if out.json {
        println!("{}", report.to_json_line());
    } else {
        println!("{}", report.to_text());
    }
    if let Some(e) = &report.first_error {
        eprintln!(
            "mictlanx: bench {}: {} errors, the first: {e}",
            report.scenario, report.errors
        );
    }
}

/// `10s`, `500ms`, `2m`, `1.5s`, or plain seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration (try 10s, 500ms, 2m)"))?;
    let seconds = match unit.trim() {
        "" | "s" | "sec" => value,
        "ms" => value / 1e3,
        "m" | "min" => value * 60.0,
        other => return Err(format!("unknown duration unit {other:?} (use ms, s or m)")),
    };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3h").is_err());
    }

    #[test]
    fn all_is_every_scenario_and_names_match_the_command_line() {
        let all = Scenario::All.expand();
        assert_eq!(all.len(), 6);
        for s in all {
            let parsed = Scenario::from_str(s.name(), false).unwrap();
            assert_eq!(parsed, s);
        }
        assert_eq!(Scenario::PutLarge.default_size(), 256_000_000);
        assert_eq!(Scenario::GetSmall.default_concurrency(), 64);
    }
}
