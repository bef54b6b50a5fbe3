//! The `wire` baseline of the small-object scenarios, run in the same process right after
//! them: the same number of concurrent callers exchanging the same payload with a minimal
//! in-process axum server on `127.0.0.1:0`, one loopback HTTP/1.1 exchange per operation (a
//! `GET` that brings the payload back, or a `POST` that sends it), with the scenario's share
//! of reads.
//!
//! It is the ceiling of one exchange on this machine at that moment. One of our gets is two
//! exchanges in a row (client to router, router to peer) and one of our puts four (the
//! announcement and the upload, each through the router), all on the same cores, so a get
//! cannot reach much more than half of it and a put a quarter.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::Router;
use bytes::Bytes;
use tokio::task::JoinSet;

use super::baseline::{sink, WireServer};
use super::report::Baseline;

/// How the baseline runs: the scenario's shape, and how long.
#[derive(Debug, Clone)]
pub struct SmallWire {
    /// The payload of each exchange.
    pub payload: Bytes,
    /// The share of exchanges that are reads (0 for put-small, 1 for get-small).
    pub reads: f64,
    /// Callers running exchanges back to back.
    pub concurrency: usize,
    /// Exchanges started before this are not counted.
    pub warmup: Duration,
    /// The measured window.
    pub window: Duration,
}

/// The per-exchange limit: a loopback exchange of a small payload that takes longer than
/// this means the baseline is broken, not slow.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs the baseline. Any failed exchange fails it (a baseline with errors would flatter us).
///
/// # Errors
///
/// The server could not start, or an exchange failed, timed out or moved the wrong bytes.
pub async fn wire_small(shape: SmallWire) -> Result<Baseline, String> {
    let server = WireServer::start(small_app(shape.payload.clone())).await?;
    let result = run(server.addr, &shape).await;
    server.stop().await;
    result
}

/// `GET /small` answers the payload, `POST /sink` counts and discards.
fn small_app(payload: Bytes) -> Router {
    Router::new()
        .route("/small", get(serve_small))
        .route("/sink", post(sink))
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(payload))
}

async fn serve_small(State(payload): State<Arc<Bytes>>) -> Bytes {
    Bytes::clone(&payload)
}

/// What one caller counted in the window.
#[derive(Default)]
struct Counted {
    ops: u64,
    bytes: u64,
}

async fn run(addr: std::net::SocketAddr, shape: &SmallWire) -> Result<Baseline, String> {
    let client = reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .timeout(EXCHANGE_TIMEOUT)
        .build()
        .map_err(|e| format!("wire baseline client: {e}"))?;
    let started = Instant::now();
    let measure_from = started + shape.warmup;
    let deadline = measure_from + shape.window;
    let mut callers: JoinSet<Result<Counted, String>> = JoinSet::new();
    for _ in 0..shape.concurrency.max(1) {
        let (client, payload, reads) = (client.clone(), shape.payload.clone(), shape.reads);
        callers.spawn(async move {
            let mut counted = Counted::default();
            loop {
                let op_started = Instant::now();
                if op_started >= deadline {
                    return Ok(counted);
                }
                let read = rand::random::<f64>() < reads;
                let moved = exchange(&client, addr, &payload, read).await?;
                if op_started >= measure_from {
                    counted.ops += 1;
                    counted.bytes += moved;
                }
            }
        });
    }
    let mut total = Counted::default();
    while let Some(joined) = callers.join_next().await {
        let counted = joined.map_err(|e| format!("wire baseline caller: {e}"))??;
        total.ops += counted.ops;
        total.bytes += counted.bytes;
    }
    Ok(Baseline {
        name: "wire",
        ops: total.ops,
        bytes: total.bytes,
        seconds: measure_from.elapsed().as_secs_f64(),
    })
}

/// One exchange; the bytes it moved, checked.
async fn exchange(
    client: &reqwest::Client,
    addr: std::net::SocketAddr,
    payload: &Bytes,
    read: bool,
) -> Result<u64, String> {
    let expected = payload.len() as u64;
    let moved = if read {
        let response = client
            .get(format!("http://{addr}/small"))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("wire baseline (get): {e}"))?;
        let body = response
            .bytes()
            .await
            .map_err(|e| format!("wire baseline (get): {e}"))?;
        body.len() as u64
    } else {
        client
            .post(format!("http://{addr}/sink"))
            .body(payload.clone())
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| format!("wire baseline (put): {e}"))?
            .text()
            .await
            .map_err(|e| format!("wire baseline (put): {e}"))?
            .trim()
            .parse::<u64>()
            .map_err(|e| format!("wire baseline (put) answer: {e}"))?
    };
    if moved != expected {
        return Err(format!("wire baseline: moved {moved} bytes of {expected}"));
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shape(reads: f64) -> SmallWire {
        SmallWire {
            payload: Bytes::from(vec![5u8; 4096]),
            reads,
            concurrency: 4,
            warmup: Duration::from_millis(20),
            window: Duration::from_millis(150),
        }
    }

    #[tokio::test]
    async fn reads_writes_and_a_mix_move_whole_payloads() {
        for reads in [0.0, 1.0, 0.7] {
            let b = wire_small(shape(reads)).await.unwrap();
            assert_eq!(b.name, "wire");
            assert!(b.ops > 0, "no exchange in the window ({reads})");
            // Every counted exchange moved exactly one payload.
            assert_eq!(b.bytes, b.ops * 4096);
            assert!(b.seconds >= 0.15, "{}", b.seconds);
        }
    }

    #[tokio::test]
    async fn a_server_that_answers_wrong_fails_the_baseline() {
        // A server whose `/small` is short and whose `/sink` miscounts.
        let app = Router::new()
            .route("/small", get(|| async { Bytes::from_static(b"short") }))
            .route("/sink", post(|| async { "1" }));
        let server = WireServer::start(app).await.unwrap();
        for reads in [0.0, 1.0] {
            let err = run(server.addr, &shape(reads)).await.unwrap_err();
            assert!(err.contains("moved"), "{err}");
        }
        server.stop().await;
    }
}
