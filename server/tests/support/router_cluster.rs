//! Shared helpers of the router tests: real peers on temporary directories, a router over
//! them with fast probes, readiness by polling `/health`, and put/get shortcuts.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mictlanx::model::{PutMetadataResponse, RouterPutChunkedResponse};
use mictlanx::uri::{NodeAddress, Protocol};
use mictlanx_server::{peer, router, PeerConfig, RouterConfig, ServerHandle};
use rand::RngCore;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// JSON request bodies (reqwest's `json` feature is off in this workspace).
pub trait JsonRequest {
    fn json_body<T: Serialize + ?Sized>(self, value: &T) -> Self;
}

impl JsonRequest for reqwest::RequestBuilder {
    fn json_body<T: Serialize + ?Sized>(self, value: &T) -> Self {
        self.header("content-type", "application/json")
            .body(serde_json::to_vec(value).expect("serialisable"))
    }
}

/// JSON response bodies.
#[allow(async_fn_in_trait)]
pub trait JsonResponse {
    async fn json_body<T: DeserializeOwned>(self) -> Result<T, String>;
}

impl JsonResponse for reqwest::Response {
    async fn json_body<T: DeserializeOwned>(self) -> Result<T, String> {
        let status = self.status();
        let bytes = self.bytes().await.map_err(|e| e.to_string())?;
        serde_json::from_slice(&bytes)
            .map_err(|e| format!("{status}: {e}: {}", String::from_utf8_lossy(&bytes)))
    }
}

/// Upper bound of any single network step in these tests.
pub const STEP: Duration = Duration::from_secs(10);

/// A running peer on its own temporary directory.
pub struct TestPeer {
    pub id: String,
    pub handle: Option<ServerHandle>,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestPeer {
    pub async fn start(id: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        Self::start_in(id, dir).await
    }

    /// Starts (or restarts) a peer over an existing directory.
    pub async fn start_in(id: &str, dir: tempfile::TempDir) -> Self {
        let handle = peer::start(PeerConfig::new(id, dir.path()))
            .await
            .expect("peer starts");
        Self {
            id: id.to_string(),
            addr: handle.addr(),
            handle: Some(handle),
            dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// The address a router uses for this peer.
    pub fn address(&self) -> NodeAddress {
        address(&self.id, self.addr)
    }

    /// Kills the peer like a crash: open connections are cut.
    pub async fn kill(&mut self) {
        if let Some(h) = self.handle.take() {
            h.abort().await;
        }
    }
}

/// A peer address as the router sees it.
pub fn address(id: &str, addr: SocketAddr) -> NodeAddress {
    NodeAddress::new(addr.ip().to_string(), Some(addr.port()), Protocol::Http).with_id(id)
}

/// Router settings for tests: fast probes, short timeouts.
pub fn router_config(peers: Vec<NodeAddress>) -> RouterConfig {
    let mut c = RouterConfig::new("router-test", peers);
    c.probe_interval = Duration::from_millis(100);
    c.probe_timeout = Duration::from_millis(1000);
    c.peer_connect_timeout = Duration::from_millis(1000);
    c.peer_idle_timeout = Duration::from_secs(3);
    c
}

pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(STEP)
        .no_proxy()
        .build()
        .expect("client")
}

/// A router and the client that talks to it.
pub struct TestRouter {
    pub handle: Option<ServerHandle>,
    pub base: String,
    pub http: reqwest::Client,
}

impl TestRouter {
    pub async fn start(config: RouterConfig) -> Self {
        let handle = router::start(config).await.expect("router starts");
        Self {
            base: handle.base_url(),
            handle: Some(handle),
            http: http(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn health(&self) -> Value {
        self.http
            .get(self.url("/health"))
            .send()
            .await
            .expect("health answers")
            .json_body()
            .await
            .expect("health is JSON")
    }

    /// Polls `/health` until exactly `n` peers are up (bounded).
    pub async fn wait_peers_up(&self, n: u64) {
        let deadline = Instant::now() + STEP;
        loop {
            let h = self.health().await;
            if h["peers_up"] == n {
                return;
            }
            assert!(Instant::now() < deadline, "peers_up never reached {n}: {h}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn shutdown(&mut self) {
        if let Some(h) = self.handle.take() {
            h.shutdown().await;
        }
    }

    /// R1 with a body for `data`; returns the raw response.
    pub async fn put_metadata_raw(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        rf: u32,
        extra_tags: Value,
    ) -> reqwest::Response {
        let body = metadata_body(bucket, key, data, rf, extra_tags);
        self.http
            .post(self.url(&format!("/api/v4/buckets/{bucket}/metadata")))
            .json_body(&body)
            .send()
            .await
            .expect("put-metadata answers")
    }

    pub async fn put_metadata(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        rf: u32,
    ) -> PutMetadataResponse {
        let resp = self
            .put_metadata_raw(bucket, key, data, rf, json!({}))
            .await;
        assert_eq!(resp.status(), 200, "put-metadata: {:?}", resp.text().await);
        resp.json_body().await.expect("PutMetadataResponse")
    }

    /// R2 with `data` streamed in 64 KiB pieces; returns the raw response.
    pub async fn upload_raw(&self, task_id: &str, data: Vec<u8>) -> reqwest::Response {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        self.http
            .post(self.url(&format!("/api/v4/buckets/data/{task_id}/chunked")))
            .header("content-type", "application/octet-stream")
            .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces)))
            .send()
            .await
            .expect("upload answers")
    }

    /// R1 + R2; asserts success.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        rf: u32,
    ) -> RouterPutChunkedResponse {
        let meta = self.put_metadata(bucket, key, data, rf).await;
        let resp = self.upload_raw(&meta.tasks_ids[0], data.to_vec()).await;
        assert_eq!(resp.status(), 200, "upload: {:?}", resp.text().await);
        resp.json_body().await.expect("RouterPutChunkedResponse")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("answers")
    }

    /// R5; returns status and body.
    pub async fn get_bytes(&self, bucket: &str, key: &str) -> (u16, Vec<u8>) {
        let resp = self.get(&format!("/api/v4/buckets/{bucket}/{key}")).await;
        let status = resp.status().as_u16();
        let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
        (status, body)
    }
}

/// The R1 body for `data` under `key`.
pub fn metadata_body(bucket: &str, key: &str, data: &[u8], rf: u32, extra_tags: Value) -> Value {
    let mut tags = json!({"updated_at": now_ns().to_string()});
    if let (Some(t), Some(extra)) = (tags.as_object_mut(), extra_tags.as_object()) {
        for (k, v) in extra {
            t.insert(k.clone(), v.clone());
        }
    }
    json!({
        "bucket_id": bucket,
        "key": key,
        "ball_id": key,
        "checksum": mictlanx::checksum::sha256_hex(data),
        "size": data.len(),
        "producer_id": "router-tests",
        "tags": tags,
        "content_type": "application/octet-stream",
        "replication_factor": rf,
    })
}

fn now_ns() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

/// A JSON error body's `detail`.
pub async fn detail(resp: reqwest::Response) -> Value {
    let v: Value = resp.json_body().await.expect("error body is JSON");
    v.get("detail").cloned().unwrap_or(Value::Null)
}

/// Sends a raw HTTP/1.1 request (for paths reqwest would normalise, such as `%2E%2E`) and
/// returns the status and the body.
pub async fn raw_request(
    addr: &str,
    method: &str,
    path: &str,
    headers: &str,
    body: &[u8],
) -> (u16, String) {
    let work = async {
        let mut s = TcpStream::connect(addr).await.expect("connect");
        let head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.expect("write head");
        s.write_all(body).await.expect("write body");
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.expect("read");
        let text = String::from_utf8_lossy(&out).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    };
    tokio::time::timeout(STEP, work)
        .await
        .expect("raw request in time")
}
