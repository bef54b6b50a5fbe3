//! A secured `LocalCluster` (tokens for every role, a cluster token) and the calls the auth
//! tests make against it; shared by `auth.rs` and `auth_logs.rs`.
#![allow(dead_code)]

use std::time::Duration;

use mictlanx::{Client, RetryConfig};
use mictlanx_server::auth::{ClusterToken, Role, TokenSet};
use mictlanx_server::LocalCluster;
use reqwest::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};

pub const READ: &str = "read-token-7f3a9c1e5b";
pub const WRITE: &str = "write-token-2d8e6b4a0c";
pub const ADMIN: &str = "admin-token-9b1f7d3e5a";
pub const CLUSTER: &str = "cluster-token-4c6e8a0b2d";
/// Upper bound of any single step.
pub const STEP: Duration = Duration::from_secs(30);

pub fn tokens() -> TokenSet {
    TokenSet::new()
        .with(Role::Read, READ, Some("reader"))
        .and_then(|t| t.with(Role::Write, WRITE, Some("ingest")))
        .and_then(|t| t.with(Role::Admin, ADMIN, Some("ops")))
        .expect("valid tokens")
}

pub async fn secured_cluster(protect_metrics: bool) -> LocalCluster {
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

pub fn client(cluster: &LocalCluster, token: Option<&str>) -> Client {
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
pub async fn call(
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

pub fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}
