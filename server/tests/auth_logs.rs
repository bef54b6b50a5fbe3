//! Tokens never reach a log line nor `Debug` output, while denials are logged by token name
//! and a client built without certificate checks logs `TLS.VERIFY.OFF`.
//!
//! Alone in its test binary on purpose: it captures events with a thread-local subscriber,
//! and `tracing` caches per call site whether anyone listens, so a test on another thread
//! reaching the same call sites first could make this one miss events.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mictlanx::{Client, PutOptions, RetryConfig};
use mictlanx_server::auth::{ClusterToken, Role, TokenSet};
use mictlanx_server::LocalCluster;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

const READ: &str = "read-token-7f3a9c1e5b";
const WRITE: &str = "write-token-2d8e6b4a0c";
const ADMIN: &str = "admin-token-9b1f7d3e5a";
const CLUSTER: &str = "cluster-token-4c6e8a0b2d";
/// Upper bound of any single step.
const STEP: Duration = Duration::from_secs(30);

fn tokens() -> TokenSet {
    TokenSet::new()
        .with(Role::Read, READ, Some("reader"))
        .and_then(|t| t.with(Role::Write, WRITE, Some("ingest")))
        .and_then(|t| t.with(Role::Admin, ADMIN, Some("ops")))
        .expect("valid tokens")
}

async fn secured_cluster(protect_metrics: bool) -> LocalCluster {
    let start = LocalCluster::builder()
        .peers(1)
        .auth_tokens(tokens())
        .cluster_token(ClusterToken::new(CLUSTER).expect("valid cluster token"))
        .protect_metrics(protect_metrics)
        .start();
    tokio::time::timeout(STEP, start)
        .await
        .expect("cluster starts in time")
        .expect("cluster starts")
}

fn client(cluster: &LocalCluster, token: Option<&str>) -> Client {
    let mut builder = Client::builder()
        .routers_uri(&cluster.uri())
        .heartbeat_interval(Duration::ZERO)
        .retry(RetryConfig {
            max_attempts: 2,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(20),
            ..RetryConfig::default()
        })
        .timeout(Duration::from_secs(10));
    if let Some(token) = token {
        builder = builder.token(token);
    }
    builder.build().expect("client")
}

/// Sends `method url` with `Authorization: {auth}` when given; status, the
/// `WWW-Authenticate` header and the body's `detail`.
async fn call(
    method: Method,
    url: &str,
    auth: Option<&str>,
) -> (StatusCode, Option<String>, String) {
    let http = reqwest::Client::new();
    let mut req = http.request(method, url);
    if let Some(auth) = auth {
        req = req.header(AUTHORIZATION, auth);
    }
    let resp = tokio::time::timeout(STEP, req.send())
        .await
        .expect("answer in time")
        .expect("request sent");
    let status = resp.status();
    let challenge = resp
        .headers()
        .get(WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = resp.bytes().await.expect("body");
    let detail = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_default();
    (status, challenge, detail)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

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
