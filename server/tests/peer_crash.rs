//! Crash safety of the peer: the real binary is SIGKILLed mid-upload and between uploads,
//! restarted on the same data directory, and must come back with every acknowledged object
//! intact, no object half-written, and nothing left in `tmp/`.
//!
//! Contract with `main.rs`: `mictlanx-server peer --id ID --port 0 --data-dir DIR
//! --capacity 1GB` prints `LISTENING 127.0.0.1:PORT` on stdout once it accepts connections.

#[path = "support/peer_harness.rs"]
mod harness;
#[path = "support/process_cluster.rs"]
mod process_cluster;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use harness::*;
use process_cluster::ChildProcess;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

/// The peer binary as a child process (the fault suite's [`ChildProcess`]); SIGKILLed on
/// drop.
struct PeerProcess {
    process: ChildProcess,
    addr: SocketAddr,
}

impl PeerProcess {
    async fn spawn(dir: &Path) -> Self {
        let args: Vec<String> = ["peer", "--id", "peer-0", "--port", "0", "--data-dir"]
            .iter()
            .map(|a| a.to_string())
            .chain([dir.display().to_string(), "--capacity".into(), "1GB".into()])
            .collect();
        let process = ChildProcess::spawn("peer-0", &args)
            .await
            .unwrap_or_else(|e| panic!("the peer did not start: {e}"));
        Self {
            addr: process.addr,
            process,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no destructor, no flush, no graceful anything.
    fn kill(mut self) {
        self.process.kill();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(STEP)
        .no_proxy()
        .build()
        .unwrap()
}

async fn put_metadata(
    http: &reqwest::Client,
    peer: &PeerProcess,
    key: &str,
    data: &[u8],
) -> String {
    let resp = http
        .post(peer.url("/api/v4/buckets/b/metadata"))
        .header("content-type", "application/json")
        .body(metadata_body("b", key, data).to_string())
        .send()
        .await
        .expect("put metadata");
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 200, "{body}");
    body["task_id"].as_str().expect("task id").to_string()
}

async fn upload(http: &reqwest::Client, peer: &PeerProcess, task: &str, data: Vec<u8>) -> u16 {
    http.post(peer.url(&format!("/api/v4/buckets/data/{task}/chunked")))
        .body(data)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Status, `X-Mictlanx-State` and body of the metadata of `b@key`.
async fn metadata_state(
    http: &reqwest::Client,
    peer: &PeerProcess,
    key: &str,
) -> (u16, Option<String>, Value) {
    let resp = http
        .get(peer.url(&format!("/api/v4/buckets/b/metadata/{key}")))
        .send()
        .await
        .expect("metadata");
    let state = resp
        .headers()
        .get("x-mictlanx-state")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let (status, body) = json_of(resp).await;
    (status, state, body)
}

async fn get_bytes(http: &reqwest::Client, peer: &PeerProcess, key: &str) -> (u16, Vec<u8>) {
    let resp = http
        .get(peer.url(&format!("/api/v4/buckets/b/{key}")))
        .send()
        .await
        .expect("get");
    let status = resp.status().as_u16();
    (status, resp.bytes().await.expect("body").to_vec())
}

fn object_files(dir: &Path) -> usize {
    files_under(&dir.join("objects")).len()
}

#[tokio::test]
async fn sigkill_mid_upload_leaves_the_key_uncommitted() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    let data = pattern(4_000_000);

    let peer = PeerProcess::spawn(dir.path()).await;
    let task = put_metadata(&http, &peer, "big", &data).await;
    // Send a quarter of the body over a raw connection and keep it open.
    let mut conn = tokio::net::TcpStream::connect(peer.addr).await.unwrap();
    let head = format!(
        "POST /api/v4/buckets/data/{task}/chunked HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        data.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    conn.write_all(&data[..1_000_000]).await.unwrap();
    conn.flush().await.unwrap();
    let tmp = dir.path().join("tmp");
    eventually("the upload is being written to tmp/", || {
        files_under(&tmp)
            .iter()
            .any(|f| std::fs::metadata(f).map(|m| m.len() > 0).unwrap_or(false))
    })
    .await;
    peer.kill();
    drop(conn);

    let peer = PeerProcess::spawn(dir.path()).await;
    assert!(files_under(&tmp).is_empty(), "recovery must clear tmp/");
    assert_eq!(object_files(dir.path()), 0, "no object file may survive");
    let (status, state, body) = metadata_state(&http, &peer, "big").await;
    assert!(
        (status == 200 && state.as_deref() == Some("pending")) || status == 404,
        "the key must be pending or absent, never committed: {status} {state:?} {body}"
    );
    assert_eq!(get_bytes(&http, &peer, "big").await.0, 404);

    // A fresh, complete upload of the same key works.
    let task = put_metadata(&http, &peer, "big", &data).await;
    assert_eq!(upload(&http, &peer, &task, data.clone()).await, 200);
    assert_eq!(get_bytes(&http, &peer, "big").await, (200, data));
}

#[tokio::test]
async fn sigkill_between_uploads_keeps_every_acknowledged_object() {
    let dir = tempfile::tempdir().unwrap();
    let http = client();
    // Even keys are small (kept in the database), odd ones large (a file each).
    let body_of = |i: usize| -> Vec<u8> {
        let mut d = pattern(if i % 2 == 0 { 1000 + i } else { 64 * 1024 + i });
        d[0] = i as u8;
        d
    };

    let peer = PeerProcess::spawn(dir.path()).await;
    let acked: Arc<Mutex<Vec<usize>>> = Arc::default();
    let writer = {
        let (http, acked) = (http.clone(), Arc::clone(&acked));
        let base = peer.url("");
        tokio::spawn(async move {
            for i in 0..200usize {
                let data = body_of(i);
                let key = format!("k{i}");
                let meta = http
                    .post(format!("{base}/api/v4/buckets/b/metadata"))
                    .header("content-type", "application/json")
                    .body(metadata_body("b", &key, &data).to_string())
                    .send()
                    .await;
                let Ok(meta) = meta else { return };
                let (_, meta) = json_of(meta).await;
                let Some(task) = meta["task_id"].as_str() else {
                    return;
                };
                let up = http
                    .post(format!("{base}/api/v4/buckets/data/{task}/chunked"))
                    .body(data)
                    .send()
                    .await;
                match up {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().push(i),
                    _ => return,
                }
            }
        })
    };
    eventually("several uploads are acknowledged", || {
        acked.lock().unwrap().len() >= 8
    })
    .await;
    peer.kill();
    let _ = tokio::time::timeout(STEP, writer).await;
    let acked = acked.lock().unwrap().clone();

    let peer = PeerProcess::spawn(dir.path()).await;
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    for &i in &acked {
        let key = format!("k{i}");
        let (status, bytes) = get_bytes(&http, &peer, &key).await;
        assert_eq!(status, 200, "{key} was acknowledged before the crash");
        assert_eq!(
            mictlanx::checksum::sha256_hex(&bytes),
            mictlanx::checksum::sha256_hex(&body_of(i)),
            "{key} reads back with the wrong checksum"
        );
    }
    // Keys not acknowledged are pending, absent, or (if the commit won the race with the
    // kill) complete and correct: never torn.
    let next = acked.iter().max().map_or(0, |m| m + 1);
    for i in next..next + 3 {
        let key = format!("k{i}");
        match get_bytes(&http, &peer, &key).await {
            (200, bytes) => assert_eq!(bytes, body_of(i), "{key} committed with torn bytes"),
            (404, _) => {}
            other => panic!("{key}: unexpected {}", other.0),
        }
    }
    let (_, listing) = {
        let resp = http
            .get(peer.url("/api/v4/buckets/b/metadata"))
            .send()
            .await
            .unwrap();
        json_of(resp).await
    };
    let balls = listing["balls"].as_array().cloned().unwrap_or_default();
    assert!(balls.len() >= acked.len());
    let with_files = balls
        .iter()
        .filter(|b| b["size"].as_u64().is_some_and(|n| n > 64 * 1024))
        .count();
    assert_eq!(
        object_files(dir.path()),
        with_files,
        "one file per committed object above the inline limit"
    );
}
