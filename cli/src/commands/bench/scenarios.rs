//! The scenarios: each sets up (untimed), warms up, measures, then runs its baselines.
//!
//! `put-large` / `get-large` move one object through `AsyncClient` (from and into a file, so
//! memory stays bounded); `put-small`, `get-small` and `mixed` are closed loops of concurrent
//! callers on `Client` for `--duration`; `enqueue` times single `AsyncClient::put` calls.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::StreamExt;
use hdrhistogram::Histogram;
use mictlanx::{
    AsyncClient, AsyncClientConfig, Client, EnqueueError, GetJob, JobOutput, PutJob, PutOptions,
};
use tokio::task::JoinSet;

use super::report::{latency_histogram, Report};
use super::small_baseline::{wire_small, SmallWire};
use super::{baseline, rss, Bench, Scenario};
use crate::generate::{generated, write_generated_file};

/// Longest a single small operation may take before it counts as an error.
const OP_TIMEOUT: Duration = Duration::from_secs(30);
/// `AsyncClient::put` calls timed by `enqueue`.
const ENQUEUE_CALLS: u64 = 100_000;
/// Calls made before timing starts.
const ENQUEUE_WARMUP: u64 = 1_000;
/// Objects stored before `get-small` and `mixed` start reading.
const POPULATION: usize = 256;
/// The share of reads in `mixed`.
const MIXED_READS: f64 = 0.7;
/// Size of the object each large scenario moves while warming up.
const WARMUP_OBJECT: usize = 1 << 20;

/// Runs one scenario (not `all`).
pub(crate) async fn run(b: &Bench, scenario: Scenario) -> Result<Report, String> {
    match scenario {
        Scenario::PutLarge => put_large(b).await,
        Scenario::GetLarge => get_large(b).await,
        Scenario::PutSmall => put_small(b).await,
        Scenario::GetSmall => get_small(b).await,
        Scenario::Enqueue => enqueue(b).await,
        Scenario::Mixed => mixed(b).await,
        Scenario::All => Err("`all` is a list of scenarios, not one".to_string()),
    }
}

/// Deletes this run's bucket on remote routers (the embedded cluster's data is a temp dir).
pub(crate) async fn clean_up(b: &Bench) {
    let Ok(client) = b.client() else { return };
    match tokio::time::timeout(Duration::from_secs(60), client.delete_bucket(&b.bucket)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) => eprintln!("mictlanx: bench: deleting bucket {} failed: {e}", b.bucket),
        Err(_) => eprintln!("mictlanx: bench: deleting bucket {} timed out", b.bucket),
    }
}

fn retries(client: &Client) -> u64 {
    client.metrics().routers.iter().map(|r| r.retries).sum()
}

/// The warm-up of the time-bound scenarios: a fifth of the measured time, 0.2 s to 1 s.
fn warmup_for(duration: Duration) -> Duration {
    (duration / 5).clamp(Duration::from_millis(200), Duration::from_secs(1))
}

/// A generous bound for one large transfer: a minute plus 2 MB/s.
fn large_timeout(size: u64) -> Duration {
    Duration::from_secs(60) + Duration::from_secs_f64(size as f64 / 2e6)
}

fn rf1() -> PutOptions {
    PutOptions::default().with_replication_factor(1)
}

fn record(report: &mut Report, latency: Duration) {
    let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
    report.latency.saturating_record(ns.max(1));
}

fn count_error(report: &mut Report, error: String) {
    report.errors += 1;
    report.first_error.get_or_insert(error);
}

fn refused<J>(e: EnqueueError<J>) -> String {
    match e {
        EnqueueError::Invalid(_, e) => format!("queueing refused: {e}"),
        other => format!("queueing failed: {other}"),
    }
}

/// Queues `job`, waits up to `limit` for it, and cancels it if it takes longer.
async fn put_and_wait(queue: &AsyncClient, job: PutJob, limit: Duration) -> Result<(), String> {
    let id = queue.put(job).await.map_err(refused)?;
    finish(queue, id, limit).await.map(|_| ())
}

async fn get_and_wait(
    queue: &AsyncClient,
    job: GetJob,
    limit: Duration,
) -> Result<JobOutput, String> {
    let id = queue.get(job).await.map_err(refused)?;
    finish(queue, id, limit).await
}

async fn finish(
    queue: &AsyncClient,
    id: mictlanx::TaskId,
    limit: Duration,
) -> Result<JobOutput, String> {
    match tokio::time::timeout(limit, queue.wait(&id)).await {
        Ok(Ok(output)) => Ok(output),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => {
            queue.cancel(&id);
            Err(format!("timed out after {} s", limit.as_secs()))
        }
    }
}

/// One small put and get through the queue: connections open, routers probed. Failures here
/// show up again in the measured part, so they are ignored.
async fn warm_up_queue(queue: &AsyncClient, b: &Bench, key: &str) {
    let data = Bytes::from(generated(WARMUP_OBJECT, 1));
    let job = PutJob::bytes(&b.bucket, key, data).with_options(rf1());
    if put_and_wait(queue, job, OP_TIMEOUT).await.is_ok() {
        let _ = get_and_wait(queue, GetJob::to_memory(&b.bucket, key), OP_TIMEOUT).await;
    }
}

async fn put_large(b: &Bench) -> Result<Report, String> {
    let size = b.size(Scenario::PutLarge);
    let source = b.work().join("put-large.bin");
    write_generated_file(&source, size)
        .await
        .map_err(|e| format!("writing the source file failed: {e}"))?;
    let mut report = Report::new(Scenario::PutLarge.name());
    let queue = AsyncClient::new(b.client()?, AsyncClientConfig::default());
    warm_up_queue(&queue, b, "putlarge_warmup").await;

    let retries_before = retries(queue.client());
    rss::reset_peak();
    let job = PutJob::file(&b.bucket, "putlarge", &source).with_options(rf1());
    let started = Instant::now();
    let outcome = put_and_wait(&queue, job, large_timeout(size)).await;
    let elapsed = started.elapsed();
    report.peak_rss_bytes = rss::peak_rss_bytes();
    report.seconds = elapsed.as_secs_f64();
    match outcome {
        Ok(()) => {
            report.ops = 1;
            report.bytes = size;
            record(&mut report, elapsed);
        }
        Err(e) => count_error(&mut report, e),
    }
    report.retries = retries(queue.client()).saturating_sub(retries_before);
    queue.abort().await;

    large_baselines(&mut report, &source, b, Direction::Write).await;
    let _ = tokio::fs::remove_file(&source).await;
    Ok(report)
}

async fn get_large(b: &Bench) -> Result<Report, String> {
    let size = b.size(Scenario::GetLarge);
    let source = b.work().join("get-large.bin");
    let target = b.work().join("get-large.out");
    write_generated_file(&source, size)
        .await
        .map_err(|e| format!("writing the source file failed: {e}"))?;
    let mut report = Report::new(Scenario::GetLarge.name());
    let queue = AsyncClient::new(b.client()?, AsyncClientConfig::default());
    let job = PutJob::file(&b.bucket, "getlarge", &source).with_options(rf1());
    if let Err(e) = put_and_wait(&queue, job, large_timeout(size)).await {
        count_error(
            &mut report,
            format!("storing the object to read failed: {e}"),
        );
        queue.abort().await;
        let _ = tokio::fs::remove_file(&source).await;
        return Ok(report);
    }
    warm_up_queue(&queue, b, "getlarge_warmup").await;

    let retries_before = retries(queue.client());
    rss::reset_peak();
    let job = GetJob::to_file(&b.bucket, "getlarge", &target);
    let started = Instant::now();
    let outcome = get_and_wait(&queue, job, large_timeout(size)).await;
    let elapsed = started.elapsed();
    report.peak_rss_bytes = rss::peak_rss_bytes();
    report.seconds = elapsed.as_secs_f64();
    match outcome {
        Ok(JobOutput::GetFile(got)) if got.size == size => {
            report.ops = 1;
            report.bytes = got.size;
            record(&mut report, elapsed);
        }
        Ok(other) => count_error(&mut report, format!("unexpected result {other:?}")),
        Err(e) => count_error(&mut report, e),
    }
    report.retries = retries(queue.client()).saturating_sub(retries_before);
    queue.abort().await;
    let _ = tokio::fs::remove_file(&target).await;

    large_baselines(&mut report, &source, b, Direction::Read).await;
    let _ = tokio::fs::remove_file(&source).await;
    Ok(report)
}

#[derive(Clone, Copy)]
enum Direction {
    Write,
    Read,
}

/// Adds the disk and wire baselines; one that fails is left out and said on stderr.
async fn large_baselines(report: &mut Report, source: &Path, b: &Bench, direction: Direction) {
    let copy = b.work().join("baseline-disk.bin");
    match baseline::disk(source, &copy).await {
        Ok((write, read)) => report.baselines.push(match direction {
            Direction::Write => write,
            Direction::Read => read,
        }),
        Err(e) => eprintln!("mictlanx: bench {}: {e}", report.scenario),
    }
    let size = tokio::fs::metadata(source).await.map_or(0, |m| m.len());
    let wire = match direction {
        Direction::Write => baseline::wire_put(source, large_timeout(size)).await,
        Direction::Read => baseline::wire_get(source, large_timeout(size)).await,
    };
    match wire {
        Ok(wire) => report.baselines.push(wire),
        Err(e) => eprintln!("mictlanx: bench {}: {e}", report.scenario),
    }
}

/// One operation of a closed loop: caller index and sequence number in, bytes moved out.
type Op = Arc<dyn Fn(usize, u64) -> BoxFuture<'static, Result<u64, String>> + Send + Sync>;

async fn put_small(b: &Bench) -> Result<Report, String> {
    let client = b.client()?;
    let payload = Bytes::from(generated(size_usize(b.size(Scenario::PutSmall))?, 2));
    let op = put_op(
        client.clone(),
        b.bucket.clone(),
        "putsmall",
        payload.clone(),
    );
    let mut report = Report::new(Scenario::PutSmall.name());
    let concurrency = b.concurrency(Scenario::PutSmall);
    closed_loop(&mut report, &client, b, concurrency, op).await;
    small_baseline(&mut report, b, payload, 0.0, concurrency).await;
    Ok(report)
}

async fn get_small(b: &Bench) -> Result<Report, String> {
    let client = b.client()?;
    let mut report = Report::new(Scenario::GetSmall.name());
    let size = size_usize(b.size(Scenario::GetSmall))?;
    let concurrency = b.concurrency(Scenario::GetSmall);
    let keys = populate(&client, b, "getsmall", size, concurrency, &mut report).await;
    if keys.is_empty() {
        return Ok(report);
    }
    let op = get_op(client.clone(), b.bucket.clone(), keys);
    closed_loop(&mut report, &client, b, concurrency, op).await;
    let payload = Bytes::from(generated(size, 4));
    small_baseline(&mut report, b, payload, 1.0, concurrency).await;
    Ok(report)
}

async fn mixed(b: &Bench) -> Result<Report, String> {
    let client = b.client()?;
    let mut report = Report::new(Scenario::Mixed.name());
    let size = size_usize(b.size(Scenario::Mixed))?;
    let concurrency = b.concurrency(Scenario::Mixed);
    let keys = populate(&client, b, "mixed", size, concurrency, &mut report).await;
    if keys.is_empty() {
        return Ok(report);
    }
    let get = get_op(client.clone(), b.bucket.clone(), keys);
    let payload = Bytes::from(generated(size, 3));
    let put = put_op(
        client.clone(),
        b.bucket.clone(),
        "mixedput",
        payload.clone(),
    );
    let op: Op = Arc::new(move |caller, seq| {
        // 70 % gets, 30 % puts, drawn per operation.
        if rand::random::<f64>() < MIXED_READS {
            get(caller, seq)
        } else {
            put(caller, seq)
        }
    });
    closed_loop(&mut report, &client, b, concurrency, op).await;
    small_baseline(&mut report, b, payload, MIXED_READS, concurrency).await;
    Ok(report)
}

/// Adds the `wire` baseline of a small-object scenario (see `small_baseline`); one that fails
/// is left out and said on stderr.
async fn small_baseline(
    report: &mut Report,
    b: &Bench,
    payload: Bytes,
    reads: f64,
    concurrency: usize,
) {
    let window = small_baseline_window(b.duration);
    let shape = SmallWire {
        payload,
        reads,
        concurrency,
        warmup: warmup_for(window),
        window,
    };
    match wire_small(shape).await {
        Ok(wire) => report.baselines.push(wire),
        Err(e) => eprintln!("mictlanx: bench {}: {e}", report.scenario),
    }
}

/// The small baselines' window: half of `--duration`, 0.5 s to 3 s (the one exchange it
/// times is simple and steady, and `bench all` must stay short).
fn small_baseline_window(duration: Duration) -> Duration {
    (duration / 2).clamp(Duration::from_millis(500), Duration::from_secs(3))
}

fn put_op(client: Client, bucket: String, prefix: &'static str, payload: Bytes) -> Op {
    Arc::new(move |caller, seq| {
        let (client, bucket, payload) = (client.clone(), bucket.clone(), payload.clone());
        Box::pin(async move {
            let key = format!("{prefix}_{caller}_{seq}");
            client
                .put_bytes(&bucket, &key, payload, rf1())
                .await
                .map(|put| put.size)
                .map_err(|e| e.to_string())
        })
    })
}

fn get_op(client: Client, bucket: String, keys: Vec<String>) -> Op {
    let keys = Arc::new(keys);
    Arc::new(move |_, _| {
        let (client, bucket) = (client.clone(), bucket.clone());
        let key = keys[rand::random::<usize>() % keys.len()].clone();
        Box::pin(async move {
            client
                .get_bytes(&bucket, &key)
                .await
                .map(|got| got.data.len() as u64)
                .map_err(|e| e.to_string())
        })
    })
}

/// Stores `POPULATION` objects for the readers (untimed); failures are counted as errors and
/// the keys that were stored are returned.
async fn populate(
    client: &Client,
    b: &Bench,
    prefix: &str,
    size: usize,
    concurrency: usize,
    report: &mut Report,
) -> Vec<String> {
    let payload = Bytes::from(generated(size, 4));
    let results: Vec<(String, Result<(), String>)> = futures::stream::iter(0..POPULATION)
        .map(|i| {
            let key = format!("{prefix}_{i}");
            let payload = payload.clone();
            async move {
                let put = client.put_bytes(&b.bucket, &key, payload, rf1());
                let outcome = match tokio::time::timeout(OP_TIMEOUT, put).await {
                    Ok(Ok(_)) => Ok(()),
                    Ok(Err(e)) => Err(format!("storing {key} to read failed: {e}")),
                    Err(_) => Err(format!("storing {key} to read timed out")),
                };
                (key, outcome)
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect()
        .await;
    let mut keys = Vec::with_capacity(results.len());
    for (key, outcome) in results {
        match outcome {
            Ok(()) => keys.push(key),
            Err(e) => count_error(report, e),
        }
    }
    keys
}

/// What one caller of a closed loop measured.
struct Part {
    ops: u64,
    bytes: u64,
    errors: u64,
    first_error: Option<String>,
    latency: Histogram<u64>,
}

/// `concurrency` callers run `op` back to back: a warm-up, then `--duration` measured.
/// Operations started during the warm-up are not counted; each caller stops at the deadline
/// and every operation is bounded by `OP_TIMEOUT`.
async fn closed_loop(report: &mut Report, client: &Client, b: &Bench, concurrency: usize, op: Op) {
    let warmup = warmup_for(b.duration);
    let started = Instant::now();
    let measure_from = started + warmup;
    let deadline = measure_from + b.duration;
    let mut callers = JoinSet::new();
    for caller in 0..concurrency.max(1) {
        let op = op.clone();
        callers.spawn(async move {
            let mut part = Part {
                ops: 0,
                bytes: 0,
                errors: 0,
                first_error: None,
                latency: latency_histogram(),
            };
            let mut seq = 0u64;
            loop {
                let op_started = Instant::now();
                if op_started >= deadline {
                    break;
                }
                let outcome = tokio::time::timeout(OP_TIMEOUT, op(caller, seq)).await;
                let latency = op_started.elapsed();
                seq += 1;
                if op_started < measure_from {
                    continue;
                }
                match outcome {
                    Ok(Ok(bytes)) => {
                        part.ops += 1;
                        part.bytes += bytes;
                        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
                        part.latency.saturating_record(ns.max(1));
                    }
                    Ok(Err(e)) => {
                        part.errors += 1;
                        part.first_error.get_or_insert(e);
                    }
                    Err(_) => {
                        part.errors += 1;
                        part.first_error.get_or_insert("timed out".to_string());
                    }
                }
            }
            part
        });
    }
    // The warm-up's retries are not this scenario's: take the count when measuring starts.
    tokio::time::sleep_until(measure_from.into()).await;
    let retries_before = retries(client);
    rss::reset_peak();
    while let Some(joined) = callers.join_next().await {
        match joined {
            Ok(part) => {
                report.ops += part.ops;
                report.bytes += part.bytes;
                report.errors += part.errors;
                if let Some(e) = part.first_error {
                    report.first_error.get_or_insert(e);
                }
                // Same bounds on both sides, so adding cannot fail.
                let _ = report.latency.add(&part.latency);
            }
            Err(e) => count_error(report, format!("a caller stopped: {e}")),
        }
    }
    report.seconds = measure_from.elapsed().as_secs_f64();
    report.peak_rss_bytes = rss::peak_rss_bytes();
    report.retries = retries(client).saturating_sub(retries_before);
}

async fn enqueue(b: &Bench) -> Result<Report, String> {
    let size = b.size(Scenario::Enqueue);
    let payload = Bytes::from(generated(size_usize(size)?, 5));
    let capacity = usize::try_from(ENQUEUE_CALLS + ENQUEUE_WARMUP).unwrap_or(usize::MAX);
    let config = AsyncClientConfig::default().with_queue_capacity(capacity);
    let queue = AsyncClient::new(b.client()?, config);
    let mut report = Report::new(Scenario::Enqueue.name());
    for i in 0..ENQUEUE_WARMUP {
        let job = PutJob::bytes(&b.bucket, &format!("enqwarm_{i}"), payload.clone());
        let _ = queue.put(job.with_options(rf1())).await;
    }

    let retries_before = retries(queue.client());
    rss::reset_peak();
    let started = Instant::now();
    for i in 0..ENQUEUE_CALLS {
        let job =
            PutJob::bytes(&b.bucket, &format!("enq_{i}"), payload.clone()).with_options(rf1());
        let call_started = Instant::now();
        let outcome = queue.put(job).await;
        let latency = call_started.elapsed();
        match outcome {
            Ok(_) => {
                report.ops += 1;
                report.bytes += size;
                record(&mut report, latency);
            }
            Err(e) => count_error(&mut report, refused(e)),
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.peak_rss_bytes = rss::peak_rss_bytes();
    report.retries = retries(queue.client()).saturating_sub(retries_before);
    // The queued puts are not part of this scenario: cancel them (bounded by the SDK's grace).
    queue.abort().await;
    Ok(report)
}

fn size_usize(size: u64) -> Result<usize, String> {
    usize::try_from(size).map_err(|_| format!("--size {size} does not fit in memory here"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warmup_is_a_fifth_within_bounds() {
        assert_eq!(warmup_for(Duration::from_secs(5)), Duration::from_secs(1));
        assert_eq!(warmup_for(Duration::from_secs(60)), Duration::from_secs(1));
        assert_eq!(
            warmup_for(Duration::from_millis(100)),
            Duration::from_millis(200)
        );
    }

    #[test]
    fn the_small_baseline_window_is_half_the_duration_within_bounds() {
        let window = small_baseline_window;
        assert_eq!(window(Duration::from_secs(5)), Duration::from_millis(2500));
        assert_eq!(window(Duration::from_secs(60)), Duration::from_secs(3));
        assert_eq!(
            window(Duration::from_millis(200)),
            Duration::from_millis(500)
        );
    }

    #[test]
    fn generated_bytes_are_deterministic() {
        assert_eq!(generated(64, 9), generated(64, 9));
        assert_ne!(generated(64, 9), generated(64, 10));
    }
}
