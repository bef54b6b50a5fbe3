//! Memory of a peer under a flood of listings (issue 15, point 3): 2,000 concurrent whole
//! listings once took a peer from 34 MB to 9.25 GB. A peer process with a few thousand
//! objects answers 500 concurrent listings (whole `xballs` and `stats`, the routes of the
//! fault, and pages); every answer must be complete (a 503 is retried after its
//! `Retry-After`), and the peer's peak RSS (`VmHWM`) must stay under 512 MB.
//!
//! `MICTLANX_LISTING_BIN=path cargo test -p mictlanx-server --test listing_memory --
//! --nocapture` runs it against another build (an older binary, to compare); the figures
//! are printed either way.

#[path = "support/process_cluster.rs"]
mod process_cluster;

use std::time::{Duration, Instant};

use futures::StreamExt;
use process_cluster::{server_binary, ChildProcess};
use serde_json::{json, Value};

const OBJECTS: usize = 3_000;
const LISTINGS: usize = 500;
const RSS_LIMIT_KB: u64 = 512 * 1024;

/// `VmHWM` (peak resident set) and `VmRSS` of a process, in KiB.
fn memory_kb(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

async fn put(http: &reqwest::Client, base: &str, i: usize) {
    let key = format!("object-{i:05}");
    let data = vec![b'x'; 200 + i % 100];
    let sha = mictlanx::checksum::sha256_hex(&data);
    let body = json!({
        "key": key, "size": data.len(), "checksum": sha,
        "tags": {"index": "0", "num_chunks": "1", "full_checksum": sha, "fullname": format!("/data/{key}.bin")},
        "producer_id": "listing-memory", "content_type": "application/octet-stream",
        "ball_id": key, "bucket_id": format!("bucket-{}", i % 7), "is_disable": false
    });
    let bucket = format!("bucket-{}", i % 7);
    let answer = http
        .post(format!("{base}/api/v4/buckets/{bucket}/metadata"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("PM1")
        .bytes()
        .await
        .expect("PM1 answer");
    let meta: Value = serde_json::from_slice(&answer).expect("PM1 JSON");
    let task = meta["task_id"].as_str().expect("task id");
    let resp = http
        .post(format!("{base}/api/v4/buckets/data/{task}/chunked"))
        .body(data)
        .send()
        .await
        .expect("upload");
    assert!(
        resp.status().is_success(),
        "upload {key}: {}",
        resp.status()
    );
}

/// One listing, retried after a 503 until the deadline; the number of entries it held.
async fn list(http: &reqwest::Client, url: &str, deadline: Instant) -> (usize, u32) {
    let mut refused = 0;
    loop {
        let resp = http.get(url).send().await.expect("listing answers");
        if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
            refused += 1;
            let wait = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(1);
            assert!(Instant::now() < deadline, "still refused at the deadline");
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        let bytes = resp.bytes().await.expect("a complete listing");
        let v: Value = serde_json::from_slice(&bytes).expect("a complete JSON listing");
        let n = match &v {
            Value::Array(a) => a.len(),
            other => other["balls"].as_array().map_or(0, Vec::len),
        };
        return (n, refused);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_hundred_concurrent_listings_keep_the_peer_small() {
    let bin = std::env::var("MICTLANX_LISTING_BIN").unwrap_or_else(|_| server_binary().into());
    let dir = tempfile::tempdir().expect("temp dir");
    let args: Vec<String> = [
        "peer",
        "--id",
        "peer-mem",
        "--port",
        "0",
        "--data-dir",
        &dir.path().display().to_string(),
        "--capacity",
        "10GB",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let peer = ChildProcess::spawn_bin(&bin, "peer-mem", &args)
        .await
        .expect("peer starts");
    let base = format!("http://{}", peer.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .no_proxy()
        .build()
        .expect("client");
    futures::stream::iter(0..OBJECTS)
        .map(|i| put(&http, &base, i))
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
    let (hwm_loaded, _) = memory_kb(peer.pid());

    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let urls: Vec<String> = (0..LISTINGS)
        .map(|i| match i % 4 {
            0 | 1 => format!("{base}/api/v4/xballs"),
            2 => format!("{base}/api/v4/stats"),
            _ => format!("{base}/api/v4/xballs?limit=1000"),
        })
        .collect();
    let answers = futures::future::join_all(urls.iter().map(|u| list(&http, u, deadline))).await;
    let elapsed = started.elapsed();
    let (hwm, rss) = memory_kb(peer.pid());
    let refused: u32 = answers.iter().map(|(_, r)| r).sum();
    println!(
        "listing_memory: {OBJECTS} objects, {LISTINGS} concurrent listings in {elapsed:?} \
         ({refused} answers 503, retried); peak RSS {} MiB after loading, {} MiB after the \
         listings, RSS now {} MiB",
        hwm_loaded / 1024,
        hwm / 1024,
        rss / 1024
    );
    for (url, (n, _)) in urls.iter().zip(&answers) {
        let want = if url.contains("limit=") {
            1000
        } else {
            OBJECTS
        };
        assert_eq!(*n, want, "{url}");
    }
    assert!(
        hwm < RSS_LIMIT_KB,
        "peak RSS {hwm} KiB over {RSS_LIMIT_KB} KiB"
    );
}
