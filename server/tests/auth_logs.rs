//! Tokens never reach a log line nor `Debug` output, while denials are logged by token name
//! and a client built without certificate checks logs `TLS.VERIFY.OFF`.
//!
//! Alone in its test binary on purpose: it captures events with a thread-local subscriber,
//! and `tracing` caches per call site whether anyone listens, so a test on another thread
//! reaching the same call sites first could make this one miss events.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mictlanx::{Client, PutOptions};
use reqwest::Method;

#[path = "support/secured_cluster.rs"]
mod secured;

use secured::*;

/// A `MakeWriter` that keeps every log line in memory.
#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut lines) = self.0.lock() {
            lines.extend_from_slice(buf);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Every event of the servers and the client, at every level (this test runs on one
/// thread, so the thread's default subscriber sees all of it), names no token, while the
/// denials it logs are there.
#[tokio::test]
async fn tokens_never_appear_in_logs_or_debug_output() {
    let capture = Capture::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(capture.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .json()
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let cluster = secured_cluster(false).await;
    let base = cluster.router_url();
    call(
        Method::GET,
        &format!("{base}/api/v4/peers"),
        Some("Bearer forged-token-0123456789"),
    )
    .await;
    call(
        Method::DELETE,
        &format!("{base}/api/v4/buckets/b/k"),
        Some(&bearer(READ)),
    )
    .await;
    let writer = client(&cluster, Some(WRITE));
    writer
        .put_bytes(
            "b",
            "k",
            b"secret-free bytes".to_vec(),
            PutOptions::default(),
        )
        .await
        .expect("put");
    writer.get_bytes("b", "k").await.expect("get");
    // Turning certificate checks off is logged when the client is built.
    let reckless = Client::builder()
        .routers_uri(&cluster.uri())
        .heartbeat_interval(Duration::ZERO)
        .token(ADMIN)
        .danger_accept_invalid_certs(true)
        .build()
        .expect("client");
    drop(reckless);
    let debug = format!(
        "{writer:?} {:?} {cluster:?} {:?}",
        writer.config(),
        tokens()
    );
    cluster.shutdown().await;

    let logs = String::from_utf8(capture.0.lock().expect("log buffer").clone()).expect("utf-8");
    assert!(logs.contains("AUTH.DENIED"), "the denials are logged");
    assert!(logs.contains("\"token_name\":\"reader\""), "by token name");
    assert!(
        logs.contains("TLS.VERIFY.OFF"),
        "no verification is a logged choice"
    );
    for secret in [READ, WRITE, ADMIN, CLUSTER, "forged-token-0123456789"] {
        let leak = logs.lines().find(|l| l.contains(secret));
        assert!(leak.is_none(), "a token reached the logs: {leak:?}");
        assert!(
            !debug.contains(secret),
            "a token reached Debug output: {debug}"
        );
    }
}
