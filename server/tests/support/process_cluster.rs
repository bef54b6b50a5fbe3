//! A cluster of separate processes of the real `mictlanx-server` binary, for fault
//! injection: N peers and M routers on loopback, each started with `--port 0` (or, for a
//! restarted peer, its previous port), each killed with SIGKILL by its own PID on drop.
//!
//! Contract with `main.rs`: `mictlanx-server peer --id ID --port P --data-dir DIR
//! --capacity C` and `mictlanx-server router --id R --port 0 --peers URI
//! --probe-interval-ms MS` print `LISTENING 127.0.0.1:PORT` on stdout once they accept
//! connections; a process that cannot bind exits with an error on stderr.
//!
//! Restarting a peer: the peer comes back on the **same port** (passed explicitly with
//! `--port`), so every router (and any proxy in front of it) keeps its address. The listener
//! sets `SO_REUSEADDR` (tokio does on Unix), so the port is free again as soon as the killed
//! process is reaped; if something else took it meanwhile, the start is retried for a bounded
//! time and then the peer starts on a new port and is re-registered with every running router
//! through `POST /api/v4/xpeers` ([`ProcessCluster::port_fallbacks`] counts those).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How long a process may take to print `LISTENING` (debug builds on a busy machine).
pub const STARTUP: Duration = Duration::from_secs(30);
/// Upper bound of any single HTTP exchange.
pub const STEP: Duration = Duration::from_secs(10);
/// Upper bound of waiting for a cluster condition (peers seen up or down, ...).
pub const SETTLE: Duration = Duration::from_secs(20);
/// Bytes of stderr kept per process (the last ones), shown when a test fails.
const STDERR_TAIL: usize = 32 * 1024;

/// The binary under test.
pub fn server_binary() -> &'static str {
    env!("CARGO_BIN_EXE_mictlanx-server")
}

/// Why a process did not come up.
#[derive(Debug)]
pub enum SpawnError {
    /// It exited before printing `LISTENING` (for instance: the port was taken).
    Exited { status: ExitStatus, stderr: String },
    /// It printed nothing within [`STARTUP`].
    Timeout { stderr: String },
}

impl std::fmt::Display for SpawnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited { status, stderr } => write!(f, "exited with {status}; stderr:\n{stderr}"),
            Self::Timeout { stderr } => write!(
                f,
                "printed no LISTENING line within {STARTUP:?}; stderr:\n{stderr}"
            ),
        }
    }
}

/// One child process of the binary; SIGKILLed (by its PID) and reaped on drop.
pub struct ChildProcess {
    pub label: String,
    pub addr: SocketAddr,
    child: Child,
    stderr: Arc<Mutex<Vec<u8>>>,
}

impl ChildProcess {
    /// Starts `mictlanx-server ARGS` and waits (bounded, polling) for its `LISTENING` line.
    ///
    /// The child gets none of the caller's `MICTLANX_*` variables (every flag also reads
    /// one), and `MICTLANX_LOG` from `MICTLANX_FAULTS_LOG` (default `warn`).
    pub async fn spawn(label: &str, args: &[String]) -> Result<Self, SpawnError> {
        Self::spawn_bin(server_binary(), label, args).await
    }

    /// [`spawn`](Self::spawn) of another build of the binary (to compare with an older one).
    pub async fn spawn_bin(bin: &str, label: &str, args: &[String]) -> Result<Self, SpawnError> {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("MICTLANX_") {
                cmd.env_remove(&name);
            }
        }
        let log = std::env::var("MICTLANX_FAULTS_LOG").unwrap_or_else(|_| "warn".into());
        cmd.env("MICTLANX_LOG", log);
        let mut child = cmd.spawn().expect("the mictlanx-server binary starts");

        let (tx, rx) = mpsc::channel();
        let stdout = child.stdout.take().expect("stdout is piped");
        // Keep draining stdout so that a chatty child never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(pos) = line.find("LISTENING ") {
                    let _ = tx.send(line[pos + "LISTENING ".len()..].trim().to_string());
                }
            }
        });
        let stderr_tail = Arc::new(Mutex::new(Vec::new()));
        let mut stderr = child.stderr.take().expect("stderr is piped");
        let tail = Arc::clone(&stderr_tail);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut t = tail.lock().unwrap();
                t.extend_from_slice(&buf[..n]);
                if t.len() > STDERR_TAIL {
                    let cut = t.len() - STDERR_TAIL;
                    t.drain(..cut);
                }
            }
        });
        let text =
            |t: &Arc<Mutex<Vec<u8>>>| String::from_utf8_lossy(&t.lock().unwrap()).into_owned();

        let deadline = Instant::now() + STARTUP;
        loop {
            match rx.try_recv() {
                Ok(addr) => {
                    let addr: SocketAddr = addr.parse().expect("LISTENING carries host:port");
                    return Ok(Self {
                        label: label.to_string(),
                        addr,
                        child,
                        stderr: stderr_tail,
                    });
                }
                Err(mpsc::TryRecvError::Disconnected) | Err(mpsc::TryRecvError::Empty) => {}
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Give the stderr thread a moment to collect the last words (bounded).
                let until = Instant::now() + Duration::from_millis(500);
                while Instant::now() < until && stderr_tail.lock().unwrap().is_empty() {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                return Err(SpawnError::Exited {
                    status,
                    stderr: text(&stderr_tail),
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(SpawnError::Timeout {
                    stderr: text(&stderr_tail),
                });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL (no flush, no graceful anything) and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether the process still runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The last bytes the process wrote on stderr.
    pub fn stderr_tail(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A storage peer of the cluster: its id, data directory and (last) address.
pub struct PeerProc {
    pub id: String,
    pub dir: PathBuf,
    /// Where the peer listens (kept while it is down: a restart reuses the port).
    pub addr: SocketAddr,
    /// Where routers started from now on reach it (a proxy, or `addr`).
    pub route: SocketAddr,
    process: Option<ChildProcess>,
}

impl PeerProc {
    pub fn is_up(&self) -> bool {
        self.process.is_some()
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildProcess::pid)
    }
}

/// A router of the cluster.
pub struct RouterProc {
    pub id: String,
    pub addr: SocketAddr,
    process: Option<ChildProcess>,
}

impl RouterProc {
    pub fn is_up(&self) -> bool {
        self.process.is_some()
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct ClusterSpec {
    pub peers: usize,
    pub routers: usize,
    pub probe_interval_ms: u64,
    pub capacity: String,
    /// Extra flags for every router (for instance `--repair-interval-ms 500`).
    pub router_args: Vec<String>,
}

impl ClusterSpec {
    pub fn new(peers: usize, routers: usize) -> Self {
        Self {
            peers,
            routers,
            probe_interval_ms: 200,
            capacity: "1GB".into(),
            router_args: Vec::new(),
        }
    }

    pub fn router_args(mut self, args: &[&str]) -> Self {
        self.router_args = args.iter().map(|s| s.to_string()).collect();
        self
    }
}

/// An HTTP answer (status 0: no answer at all, `body` then holds the error).
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Reply {
    fn transport_error(e: &reqwest::Error) -> Self {
        Self {
            status: 0,
            headers: Default::default(),
            body: format!("no answer: {e}").into_bytes(),
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    /// The error `detail`, as text (the whole body when it is not our JSON error shape).
    pub fn detail(&self) -> String {
        match self.json().get("detail") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => self.text(),
        }
    }

    pub fn text(&self) -> String {
        let t = String::from_utf8_lossy(&self.body);
        t.chars().take(600).collect()
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(String::from)
    }
}

async fn send(req: reqwest::RequestBuilder) -> Reply {
    match req.send().await {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let headers = resp.headers().clone();
            match resp.bytes().await {
                Ok(body) => Reply {
                    status,
                    headers,
                    body: body.to_vec(),
                },
                // The answer started but its body broke: report it as no answer.
                Err(e) => Reply::transport_error(&e),
            }
        }
        Err(e) => Reply::transport_error(&e),
    }
}

pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(STEP)
        .connect_timeout(Duration::from_secs(2))
        .no_proxy()
        .build()
        .expect("client")
}

/// The SHA-256 (hex) of `data`.
pub fn sha256(data: &[u8]) -> String {
    mictlanx::checksum::sha256_hex(data)
}

/// `n` random bytes.
pub fn random_bytes(n: usize) -> Vec<u8> {
    use rand::RngCore;
    let mut v = vec![0u8; n];
    rand::thread_rng().fill_bytes(&mut v);
    v
}

fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0)
}

/// The R1 body for `data` under `key` (ball id = key, no chunk tags), as a client sends it.
pub fn metadata_body(bucket: &str, key: &str, data: &[u8], rf: u32) -> Value {
    metadata_body_with(bucket, key, key, data, rf, json!({}))
}

/// The R1 body with an explicit ball id and extra tags.
pub fn metadata_body_with(
    bucket: &str,
    key: &str,
    ball_id: &str,
    data: &[u8],
    rf: u32,
    extra_tags: Value,
) -> Value {
    let mut tags = json!({ "updated_at": now_ms().to_string() });
    if let (Some(t), Some(extra)) = (tags.as_object_mut(), extra_tags.as_object()) {
        for (k, v) in extra {
            t.insert(k.clone(), v.clone());
        }
    }
    json!({
        "bucket_id": bucket,
        "key": key,
        "ball_id": ball_id,
        "checksum": sha256(data),
        "size": data.len(),
        "producer_id": "faults-suite",
        "tags": tags,
        "content_type": "application/octet-stream",
        "replication_factor": rf,
    })
}

/// The outcome of R1 + R2 through a router.
#[derive(Debug, Clone)]
pub struct PutReply {
    /// R1.
    pub metadata: Reply,
    /// R2 (absent when R1 failed or the router said there was nothing to upload).
    pub upload: Option<Reply>,
    /// The replicas R1 announced.
    pub replicas: Vec<String>,
    /// The peers R2 says stored the bytes.
    pub peer_ids: Vec<String>,
}

impl PutReply {
    /// Both steps answered 2xx.
    pub fn acked(&self) -> bool {
        self.metadata.is_success() && self.upload.as_ref().map_or(true, Reply::is_success)
    }

    /// `R1 status/R2 status` for messages.
    pub fn statuses(&self) -> String {
        match &self.upload {
            Some(u) => format!("R1 {} / R2 {} {}", self.metadata.status, u.status, u.text()),
            None => format!("R1 {} {}", self.metadata.status, self.metadata.text()),
        }
    }
}

/// A client of one router (cheap to clone; use it from concurrent tasks).
#[derive(Clone)]
pub struct RouterClient {
    pub id: String,
    pub base: String,
    http: reqwest::Client,
}

impl RouterClient {
    pub fn new(id: &str, addr: SocketAddr, http: reqwest::Client) -> Self {
        Self {
            id: id.to_string(),
            base: format!("http://{addr}"),
            http,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub async fn health(&self) -> Reply {
        send(self.http.get(self.url("/health"))).await
    }

    /// The value of an unlabelled metric in `GET /metrics` (`None`: not exposed).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let r = send(self.http.get(self.url("/metrics"))).await;
        let text = String::from_utf8_lossy(&r.body).into_owned();
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }

    /// R1 with `body`; `update` sends `Update: 1`.
    pub async fn put_metadata(&self, bucket: &str, body: &Value, update: bool) -> Reply {
        let mut req = self
            .http
            .post(self.url(&format!("/api/v4/buckets/{bucket}/metadata")))
            .header("content-type", "application/json")
            .body(body.to_string());
        if update {
            req = req.header("Update", "1");
        }
        send(req).await
    }

    /// R2: the bytes of `task_id`, streamed in 64 KiB pieces.
    pub async fn upload(&self, task_id: &str, data: &[u8]) -> Reply {
        let pieces: Vec<Result<Vec<u8>, std::io::Error>> =
            data.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
        send(
            self.http
                .post(self.url(&format!("/api/v4/buckets/data/{task_id}/chunked")))
                .header("content-type", "application/octet-stream")
                .body(reqwest::Body::wrap_stream(futures::stream::iter(pieces))),
        )
        .await
    }

    /// R1 + R2 of a metadata body and its bytes.
    pub async fn put_with(
        &self,
        bucket: &str,
        body: &Value,
        data: &[u8],
        update: bool,
    ) -> PutReply {
        let metadata = self.put_metadata(bucket, body, update).await;
        let meta = metadata.json();
        let replicas = strings(&meta["replicas"]);
        if !metadata.is_success() {
            return PutReply {
                metadata,
                upload: None,
                replicas,
                peer_ids: Vec::new(),
            };
        }
        let Some(task) = meta["tasks_ids"].get(0).and_then(Value::as_str) else {
            return PutReply {
                metadata,
                upload: None,
                replicas,
                peer_ids: Vec::new(),
            };
        };
        if task == "0" {
            // Nothing to upload (the same bytes were stored already).
            return PutReply {
                metadata,
                upload: None,
                peer_ids: replicas.clone(),
                replicas,
            };
        }
        let upload = self.upload(task, data).await;
        let peer_ids = strings(&upload.json()["peer_ids"]);
        PutReply {
            metadata,
            upload: Some(upload),
            replicas,
            peer_ids,
        }
    }

    /// R1 + R2 of `data` under `key` with `rf` replicas; `update` sends `Update: 1`.
    pub async fn put(
        &self,
        bucket: &str,
        key: &str,
        data: &[u8],
        rf: u32,
        update: bool,
    ) -> PutReply {
        self.put_with(bucket, &metadata_body(bucket, key, data, rf), data, update)
            .await
    }

    /// R5.
    pub async fn get(&self, bucket: &str, key: &str) -> Reply {
        send(
            self.http
                .get(self.url(&format!("/api/v4/buckets/{bucket}/{key}"))),
        )
        .await
    }

    /// R4.
    pub async fn metadata(&self, bucket: &str, key: &str) -> Reply {
        send(
            self.http
                .get(self.url(&format!("/api/v4/buckets/{bucket}/metadata/{key}"))),
        )
        .await
    }

    /// R8.
    pub async fn delete(&self, bucket: &str, key: &str) -> Reply {
        send(
            self.http
                .delete(self.url(&format!("/api/v4/buckets/{bucket}/{key}"))),
        )
        .await
    }

    /// R7.
    pub async fn listing(&self, bucket: &str) -> Reply {
        send(
            self.http
                .get(self.url(&format!("/api/v4/buckets/{bucket}/metadata"))),
        )
        .await
    }

    /// The keys R7 lists (`None` when R7 failed).
    pub async fn listed_keys(&self, bucket: &str) -> Option<Vec<Value>> {
        let r = self.listing(bucket).await;
        if r.status != 200 {
            return None;
        }
        Some(r.json()["balls"].as_array().cloned().unwrap_or_default())
    }

    /// R6.
    pub async fn chunks(&self, bucket: &str, ball: &str) -> Reply {
        send(
            self.http
                .get(self.url(&format!("/api/v4/buckets/{bucket}/metadata/{ball}/chunks"))),
        )
        .await
    }

    /// P1 `POST /api/v4/xpeers`: (re-)registers a peer at `addr`.
    pub async fn register_peer(&self, id: &str, addr: SocketAddr) -> Reply {
        let body = json!([{
            "protocol": "http",
            "peer_id": id,
            "hostname": addr.ip().to_string(),
            "port": addr.port(),
        }]);
        send(
            self.http
                .post(self.url("/api/v4/xpeers"))
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// What a peer, asked directly, says about a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holding {
    /// 200, committed: it holds the bytes with this (declared) checksum.
    Holds { checksum: String },
    /// 200 with `X-Mictlanx-State: pending`: announced, bytes not (yet) stored.
    Pending,
    /// 200 with another `X-Mictlanx-State` (not a readable copy).
    Other(String),
    /// 404.
    Absent,
    /// Down, or another status.
    Unknown(String),
}

/// A client of one peer, asked directly (not through a router).
#[derive(Clone)]
pub struct PeerClient {
    pub id: String,
    pub base: String,
    http: reqwest::Client,
}

impl PeerClient {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// `GET /api/v4/buckets/{b}/metadata/{key}` on the peer.
    pub async fn holding(&self, bucket: &str, key: &str) -> Holding {
        let r = send(
            self.http
                .get(self.url(&format!("/api/v4/buckets/{bucket}/metadata/{key}"))),
        )
        .await;
        match r.status {
            200 => {
                match r.header("x-mictlanx-state").as_deref() {
                    None | Some("committed") => {}
                    Some("pending") => return Holding::Pending,
                    // A state this suite does not know (a tombstone, say): not a copy.
                    Some(other) => return Holding::Other(other.to_string()),
                }
                let checksum = r.json()["metadata"]["checksum"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                Holding::Holds { checksum }
            }
            404 => Holding::Absent,
            other => Holding::Unknown(format!("{other} {}", r.text())),
        }
    }

    /// `GET /api/v4/buckets/{b}/{key}` on the peer: the bytes it serves.
    pub async fn data(&self, bucket: &str, key: &str) -> Reply {
        send(
            self.http
                .get(self.url(&format!("/api/v4/buckets/{bucket}/{key}"))),
        )
        .await
    }

    /// `GET /metrics`: `mictlanx_peer_requests_total` summed per `METHOD route`, for the
    /// routes under `/buckets/` (client traffic; probes and scrapes are left out).
    pub async fn bucket_request_counts(&self) -> BTreeMap<String, u64> {
        let r = send(self.http.get(self.url("/metrics"))).await;
        assert_eq!(r.status, 200, "{} /metrics: {}", self.id, r.text());
        parse_request_counts(&String::from_utf8_lossy(&r.body), "/buckets/")
    }
}

/// Sums `*_requests_total{method="M",route="R",...} N` lines per `M R`, for routes
/// containing `route_part`.
pub fn parse_request_counts(text: &str, route_part: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.split_once("_requests_total{").map(|(_, r)| r) else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            let start = labels.find(&format!("{name}=\""))? + name.len() + 2;
            let end = labels[start..].find('"')? + start;
            Some(labels[start..end].to_string())
        };
        let (Some(method), Some(route)) = (label("method"), label("route")) else {
            continue;
        };
        if !route.contains(route_part) {
            continue;
        }
        let n: u64 = value.trim().parse().unwrap_or(0);
        *out.entry(format!("{method} {route}")).or_default() += n;
    }
    out
}

/// Routers and peers as separate processes, on one temporary root directory.
///
/// Dropping it SIGKILLs every process by its PID and removes the directory; when the test
/// is failing it first prints the end of each process's stderr.
pub struct ProcessCluster {
    pub spec: ClusterSpec,
    pub peers: Vec<PeerProc>,
    pub routers: Vec<RouterProc>,
    pub http: reqwest::Client,
    /// Restarts that could not reuse the port and re-registered the peer instead.
    pub port_fallbacks: usize,
    root: tempfile::TempDir,
}

impl ProcessCluster {
    /// Starts `spec.peers` peers and `spec.routers` routers, and waits until every router
    /// sees every peer up.
    pub async fn start(spec: ClusterSpec) -> Self {
        let root = tempfile::Builder::new()
            .prefix("mictlanx-faults-")
            .tempdir()
            .expect("tempdir");
        let mut cluster = Self {
            spec: spec.clone(),
            peers: Vec::new(),
            routers: Vec::new(),
            http: http_client(),
            port_fallbacks: 0,
            root,
        };
        for i in 0..spec.peers {
            let id = format!("peer-{i}");
            let dir = cluster.root.path().join(&id);
            std::fs::create_dir_all(&dir).expect("peer dir");
            let process = spawn_peer(&id, &dir, 0, &spec.capacity)
                .await
                .unwrap_or_else(|e| panic!("{id} did not start: {e}"));
            cluster.peers.push(PeerProc {
                id,
                dir,
                addr: process.addr,
                route: process.addr,
                process: Some(process),
            });
        }
        for _ in 0..spec.routers {
            cluster.start_router().await;
        }
        cluster
    }

    pub fn root(&self) -> &Path {
        self.root.path()
    }

    pub fn peer_ids(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.id.clone()).collect()
    }

    /// The index of the peer named `id`.
    pub fn peer_index(&self, id: &str) -> usize {
        self.peers
            .iter()
            .position(|p| p.id == id)
            .unwrap_or_else(|| panic!("no peer {id}"))
    }

    pub fn peers_up(&self) -> usize {
        self.peers.iter().filter(|p| p.is_up()).count()
    }

    /// A direct client of peer `i` (its own address, never through a proxy).
    pub fn peer(&self, i: usize) -> PeerClient {
        PeerClient {
            id: self.peers[i].id.clone(),
            base: self.peers[i].base(),
            http: self.http.clone(),
        }
    }

    /// A client of router `r`.
    pub fn router(&self, r: usize) -> RouterClient {
        let router = &self.routers[r];
        assert!(router.is_up(), "{} is not running", router.id);
        RouterClient::new(&router.id, router.addr, self.http.clone())
    }

    /// The indexes of the running routers.
    pub fn live_routers(&self) -> Vec<usize> {
        (0..self.routers.len())
            .filter(|&r| self.routers[r].is_up())
            .collect()
    }

    /// The `--peers` value for a router started now (peer routes: proxies where set).
    pub fn peers_uri(&self) -> String {
        let list: Vec<String> = self
            .peers
            .iter()
            .map(|p| format!("{}@{}", p.id, p.route))
            .collect();
        format!("mictlanx://{}/?protocol=http", list.join(","))
    }

    /// Routers started from now on reach peer `i` at `addr` (a proxy in front of it).
    pub fn route_peer_through(&mut self, i: usize, addr: SocketAddr) {
        self.peers[i].route = addr;
    }

    /// Starts a fresh router over the current peers (with `spec.router_args`), waits until
    /// it sees every running peer up, and returns its index.
    pub async fn start_router(&mut self) -> usize {
        let extra = self.spec.router_args.clone();
        self.start_router_with(&extra).await
    }

    /// As [`Self::start_router`], with these extra flags instead of `spec.router_args`.
    pub async fn start_router_with(&mut self, extra: &[String]) -> usize {
        let r = self.routers.len();
        let id = format!("router-{r}");
        let mut args: Vec<String> = [
            "router",
            "--id",
            &id,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--peers",
            &self.peers_uri(),
            "--probe-interval-ms",
            &self.spec.probe_interval_ms.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().cloned());
        let process = ChildProcess::spawn(&id, &args)
            .await
            .unwrap_or_else(|e| panic!("{id} did not start: {e}"));
        self.routers.push(RouterProc {
            id,
            addr: process.addr,
            process: Some(process),
        });
        self.wait_router_sees(r, self.peers_up()).await;
        r
    }

    /// SIGKILLs router `r`.
    pub fn kill_router(&mut self, r: usize) {
        if let Some(mut p) = self.routers[r].process.take() {
            p.kill();
        }
    }

    /// SIGKILLs peer `i` (reaped before this returns) and waits until every router sees it
    /// down.
    pub async fn kill_peer(&mut self, i: usize) {
        self.kill_peer_nowait(i);
        self.wait_routers_see_all().await;
    }

    /// SIGKILLs peer `i` without waiting for the routers to notice.
    pub fn kill_peer_nowait(&mut self, i: usize) {
        if let Some(mut p) = self.peers[i].process.take() {
            p.kill();
        }
    }

    /// Empties the data directory of (killed) peer `i`: a peer that lost its disk.
    pub fn wipe_peer(&mut self, i: usize) {
        assert!(
            !self.peers[i].is_up(),
            "kill {} before wiping it",
            self.peers[i].id
        );
        let dir = &self.peers[i].dir;
        std::fs::remove_dir_all(dir).expect("wipe the data dir");
        std::fs::create_dir_all(dir).expect("recreate the data dir");
    }

    /// Starts (killed) peer `i` again on its data directory and its previous port, and
    /// waits until every running router sees it up. Falls back to a new port plus
    /// re-registration (`POST /api/v4/xpeers`) when the port stays taken.
    pub async fn restart_peer(&mut self, i: usize) {
        assert!(!self.peers[i].is_up(), "{} is running", self.peers[i].id);
        let (id, dir, port) = (
            self.peers[i].id.clone(),
            self.peers[i].dir.clone(),
            self.peers[i].addr.port(),
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        let process = loop {
            match spawn_peer(&id, &dir, port, &self.spec.capacity).await {
                Ok(p) => break Some(p),
                Err(SpawnError::Exited { stderr, .. }) if Instant::now() < deadline => {
                    if !stderr.to_ascii_lowercase().contains("in use") {
                        panic!("{id} did not restart on port {port}: {stderr}");
                    }
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                Err(SpawnError::Exited { .. }) => break None,
                Err(e) => panic!("{id} did not restart: {e}"),
            }
        };
        let process = match process {
            Some(p) => p,
            None => {
                let p = spawn_peer(&id, &dir, 0, &self.spec.capacity)
                    .await
                    .unwrap_or_else(|e| panic!("{id} did not restart on a new port: {e}"));
                self.port_fallbacks += 1;
                let behind_proxy = self.peers[i].route != self.peers[i].addr;
                assert!(
                    !behind_proxy,
                    "{id} is behind a proxy and its port {port} stayed taken"
                );
                self.peers[i].route = p.addr;
                for r in self.live_routers() {
                    let reply = self.router(r).register_peer(&id, p.addr).await;
                    assert!(reply.is_success(), "xpeers on router-{r}: {}", reply.text());
                }
                p
            }
        };
        self.peers[i].addr = process.addr;
        self.peers[i].process = Some(process);
        self.wait_routers_see_all().await;
    }

    /// Waits until router `r` reports `up` peers up (bounded by [`SETTLE`]).
    pub async fn wait_router_sees(&self, r: usize, up: usize) {
        let router = self.router(r);
        let deadline = Instant::now() + SETTLE;
        loop {
            let h = router.health().await;
            if h.status == 200 && h.json()["peers_up"].as_u64() == Some(up as u64) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw {up} peers up: {} {}",
                router.id,
                h.status,
                h.text()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Waits until every running router sees exactly the running peers up.
    pub async fn wait_routers_see_all(&self) {
        let up = self.peers_up();
        for r in self.live_routers() {
            self.wait_router_sees(r, up).await;
        }
    }

    /// The peers holding `bucket@key` (committed), with their checksums, asked directly.
    pub async fn holders(&self, bucket: &str, key: &str) -> Vec<(usize, String)> {
        let mut out = Vec::new();
        for i in 0..self.peers.len() {
            if !self.peers[i].is_up() {
                continue;
            }
            if let Holding::Holds { checksum } = self.peer(i).holding(bucket, key).await {
                out.push((i, checksum));
            }
        }
        out
    }

    /// The indexes of the peers whose stored bytes of `bucket@key` hash to `sha` (their
    /// data, fetched directly and hashed here).
    pub async fn peers_with_bytes(&self, bucket: &str, key: &str, sha: &str) -> Vec<usize> {
        let mut out = Vec::new();
        for i in 0..self.peers.len() {
            if !self.peers[i].is_up() {
                continue;
            }
            let r = self.peer(i).data(bucket, key).await;
            if r.status == 200 && sha256(&r.body) == sha {
                out.push(i);
            }
        }
        out
    }

    /// The running peer holding the most of `keys` (ties: the lowest index), and how many.
    pub async fn busiest_holder(&self, bucket: &str, keys: &[String]) -> (usize, usize) {
        let mut counts = vec![0usize; self.peers.len()];
        for key in keys {
            for (i, _) in self.holders(bucket, key).await {
                counts[i] += 1;
            }
        }
        let best = (0..counts.len())
            .max_by_key(|&i| (counts[i], std::cmp::Reverse(i)))
            .expect("peers");
        (best, counts[best])
    }

    /// The end of every process's stderr (what a failing test prints).
    pub fn logs(&self) -> String {
        let mut out = String::new();
        let tail = |s: String| -> String {
            let lines: Vec<&str> = s.lines().collect();
            lines[lines.len().saturating_sub(15)..].join("\n")
        };
        for p in &self.peers {
            if let Some(proc_) = &p.process {
                out.push_str(&format!(
                    "--- {} ({}) ---\n{}\n",
                    p.id,
                    p.addr,
                    tail(proc_.stderr_tail())
                ));
            }
        }
        for r in &self.routers {
            if let Some(proc_) = &r.process {
                out.push_str(&format!(
                    "--- {} ({}) ---\n{}\n",
                    r.id,
                    r.addr,
                    tail(proc_.stderr_tail())
                ));
            }
        }
        out
    }
}

impl Drop for ProcessCluster {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "process cluster logs (last lines of stderr):\n{}",
                self.logs()
            );
        }
        // Every child by its own PID, before the directory goes.
        for r in &mut self.routers {
            if let Some(mut p) = r.process.take() {
                p.kill();
            }
        }
        for p in &mut self.peers {
            if let Some(mut proc_) = p.process.take() {
                proc_.kill();
            }
        }
    }
}

async fn spawn_peer(
    id: &str,
    dir: &Path,
    port: u16,
    capacity: &str,
) -> Result<ChildProcess, SpawnError> {
    let args: Vec<String> = [
        "peer",
        "--id",
        id,
        "--host",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--data-dir",
        &dir.to_string_lossy(),
        "--capacity",
        capacity,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    ChildProcess::spawn(id, &args).await
}

/// Polls `check` every `every` until it returns true or `within` passes; returns whether it
/// became true.
pub async fn poll_until<F, Fut>(within: Duration, every: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::parse_request_counts;

    #[test]
    fn process_cluster_parses_request_counters() {
        let text = "# TYPE x counter\n\
            mictlanx_peer_requests_total{method=\"GET\",route=\"/api/v4/buckets/{bucket_id}/metadata/{key}\",status=\"404\"} 3\n\
            mictlanx_peer_requests_total{method=\"GET\",route=\"/api/v4/buckets/{bucket_id}/metadata/{key}\",status=\"200\"} 2\n\
            mictlanx_peer_requests_total{method=\"GET\",route=\"/api/v4/stats/ufs\",status=\"200\"} 9\n";
        let counts = parse_request_counts(text, "/buckets/");
        assert_eq!(counts.len(), 1);
        assert_eq!(counts["GET /api/v4/buckets/{bucket_id}/metadata/{key}"], 5);
    }
}
