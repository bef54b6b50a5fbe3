//! Shared helpers of the peer tests: a peer on a temporary directory, a raw HTTP client for
//! requests reqwest would normalise or refuse to send, and upload shortcuts.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use mictlanx_server::{peer, PeerConfig, ServerHandle};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Upper bound of any single network step in these tests.
pub const STEP: Duration = Duration::from_secs(10);

/// A running peer on a temporary data directory.
pub struct TestPeer {
    pub handle: Option<ServerHandle>,
    pub dir: tempfile::TempDir,
    pub config: PeerConfig,
    pub http: reqwest::Client,
}

impl TestPeer {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(tune: impl FnOnce(&mut PeerConfig)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = PeerConfig::new("peer-0", dir.path());
        tune(&mut config);
        let handle = peer::start(config.clone()).await.expect("peer starts");
        let http = reqwest::Client::builder()
            .timeout(STEP)
            .no_proxy()
            .build()
            .expect("client");
        Self {
            handle: Some(handle),
            dir,
            config,
            http,
        }
    }

    pub fn handle(&self) -> &ServerHandle {
        self.handle.as_ref().expect("running")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.handle().base_url(), path)
    }

    pub fn addr(&self) -> std::net::SocketAddr {
        self.handle().addr()
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the peer gracefully and starts it again on the same directory (new port).
    pub async fn restart(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
        self.handle = Some(
            peer::start(self.config.clone())
                .await
                .expect("peer restarts"),
        );
    }

    /// The `X-Mictlanx-State` a metadata GET reports for the key (`pending`, `committed`).
    pub async fn key_state(&self, bucket: &str, key: &str) -> String {
        let resp = self
            .http
            .get(self.url(&format!("/api/v4/buckets/{bucket}/metadata/{key}")))
            .send()
            .await
            .expect("metadata GET");
        resp.headers()
            .get("x-mictlanx-state")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    }

    /// PM1 with the SHA-256 of `data`; returns (status, body).
    pub async fn put_metadata(&self, bucket: &str, key: &str, data: &[u8]) -> (u16, Value) {
        self.put_metadata_json(bucket, metadata_body(bucket, key, data), &[])
            .await
    }

    pub async fn put_metadata_json(
        &self,
        bucket: &str,
        body: Value,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let mut req = self
            .http
            .post(self.url(&format!("/api/v4/buckets/{bucket}/metadata")))
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("put metadata");
        json_of(resp).await
    }

    /// PD2 of `data` to `task_id`; returns (status, body).
    pub async fn upload_chunked(&self, task_id: &str, data: Vec<u8>) -> (u16, Value) {
        let resp = self
            .http
            .post(self.url(&format!("/api/v4/buckets/data/{task_id}/chunked")))
            .body(data)
            .send()
            .await
            .expect("upload");
        json_of(resp).await
    }

    /// PM1 then PD2; panics unless both succeed.
    pub async fn put(&self, bucket: &str, key: &str, data: &[u8]) -> Value {
        let (status, meta) = self.put_metadata(bucket, key, data).await;
        assert_eq!(status, 200, "{meta}");
        let task = meta["task_id"].as_str().expect("task id").to_string();
        let (status, body) = self.upload_chunked(&task, data.to_vec()).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// PD3; returns (status, body bytes).
    pub async fn get_bytes(&self, bucket: &str, key: &str) -> (u16, Vec<u8>) {
        let resp = self
            .http
            .get(self.url(&format!("/api/v4/buckets/{bucket}/{key}")))
            .send()
            .await
            .expect("get");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.expect("body").to_vec())
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(path)).send().await.expect("get");
        json_of(resp).await
    }

    /// The peer's `/metrics` text.
    pub async fn metrics_text(&self) -> String {
        let resp = self
            .http
            .get(self.url("/metrics"))
            .send()
            .await
            .expect("get");
        resp.text().await.expect("metrics body")
    }

    pub fn tmp_files(&self) -> Vec<PathBuf> {
        files_under(&self.data_dir().join("tmp"))
    }
}

/// Status and JSON body (`null` when the body is not JSON).
pub async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.expect("body");
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

/// The PM1 body for `data`.
pub fn metadata_body(bucket: &str, key: &str, data: &[u8]) -> Value {
    json!({
        "key": key,
        "size": data.len(),
        "checksum": mictlanx::checksum::sha256_hex(data),
        "tags": {"index": "0", "num_chunks": "1", "full_checksum": mictlanx::checksum::sha256_hex(data)},
        "producer_id": "tester",
        "content_type": "application/octet-stream",
        "ball_id": key,
        "bucket_id": bucket,
        "is_disable": false
    })
}

/// Deterministic test bytes.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(files_under(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

/// A response read off a raw connection.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_string())
        })
    }
}

/// Sends `request` (a full HTTP/1.1 request; use `Connection: close`) and reads the response
/// until the server closes the connection.
pub async fn raw_request(addr: std::net::SocketAddr, request: &[u8]) -> RawResponse {
    tokio::time::timeout(STEP, async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        s.write_all(request).await.expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).await.expect("read");
        let split = buf
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .expect("a response head");
        let head = String::from_utf8_lossy(&buf[..split]).to_string();
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("status");
        let mut body = buf[split + 4..].to_vec();
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            body = dechunk(&body);
        }
        RawResponse { status, head, body }
    })
    .await
    .expect("raw request timed out")
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// A raw GET of `path`.
pub async fn raw_get(addr: std::net::SocketAddr, path: &str) -> RawResponse {
    let req = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    raw_request(addr, req.as_bytes()).await
}

/// Polls `cond` every 10 ms until it holds; panics after `STEP`.
pub async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + STEP;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
