//! A damaged replica on disk never reaches a reader: ranged and whole reads through the
//! router, small and above the 64 MiB buffer limit, and the SDK's `get_range`, all return
//! the right bytes while a good replica is up; the damaged copy is quarantined and repair
//! puts it back.

use std::path::{Path, PathBuf};
use std::time::Duration;

use mictlanx::checksum::sha256_hex;
use mictlanx::{Client, PutOptions};
use mictlanx_server::LocalCluster;

const BLOCK: usize = mictlanx::blocks::BLOCK_SIZE as usize;

fn patterned(len: usize, seed: usize) -> Vec<u8> {
    (0..len).map(|i| ((i * 31 + seed) % 251) as u8).collect()
}

/// The data file of `bucket@key` under a peer's data dir, if it has one.
fn data_file(peer_dir: &Path, bucket: &str, key: &str) -> Option<PathBuf> {
    let hash = sha256_hex(format!("{bucket}\0{key}").as_bytes());
    let dir = peer_dir.join("objects").join(&hash[..2]);
    std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            let name = p.file_name().unwrap_or_default().to_string_lossy();
            name.starts_with(&hash) && !name.ends_with(".corrupted")
        })
}

fn quarantined(peer_dir: &Path) -> usize {
    fn walk(dir: &Path, n: &mut usize) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(&p, n);
            } else if p.to_string_lossy().ends_with(".corrupted") {
                *n += 1;
            }
        }
    }
    let mut n = 0;
    walk(&peer_dir.join("objects"), &mut n);
    n
}

/// Flips one byte at each of `offsets` of a file.
fn damage(file: &Path, offsets: &[usize]) {
    let mut bytes = std::fs::read(file).unwrap();
    for &at in offsets {
        bytes[at] ^= 0x5a;
    }
    std::fs::write(file, bytes).unwrap();
}

async fn bytes_out(http: &reqwest::Client, peer_url: &str) -> u64 {
    let text = http
        .get(format!("{peer_url}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("mictlanx_peer_bytes_out_total "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// The peer that serves reads of `bucket@key` (the first place of its order): the one whose
/// bytes out grow when the key is read.
async fn serving_peer(
    http: &reqwest::Client,
    cluster: &LocalCluster,
    bucket: &str,
    key: &str,
) -> usize {
    let peers = cluster.peer_urls();
    let mut before = Vec::new();
    for p in &peers {
        before.push(bytes_out(http, p).await);
    }
    let url = format!("{}/api/v4/buckets/{bucket}/{key}", cluster.router_url());
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.bytes().await.unwrap();
    for (i, p) in peers.iter().enumerate() {
        if bytes_out(http, p).await > before[i] {
            return i;
        }
    }
    panic!("no peer served {bucket}@{key}");
}

async fn range_get(http: &reqwest::Client, url: &str, from: usize, to: usize) -> (u16, Vec<u8>) {
    let resp = http
        .get(url)
        .header("Range", format!("bytes={from}-{to}"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    (status, body)
}

/// Three peers with room, repair every `repair` (or never), a client and a plain HTTP client.
async fn setup(repair: Option<Duration>) -> (LocalCluster, Client, reqwest::Client) {
    let cluster = LocalCluster::builder()
        .peers(3)
        .capacity(1 << 30)
        .repair_interval(repair)
        .start()
        .await
        .unwrap();
    let client = Client::builder()
        .routers_uri(&cluster.uri())
        .build()
        .unwrap();
    (cluster, client, reqwest::Client::new())
}

/// Damages the copy of `vr@key` on the peer that serves its reads at `offsets`; returns
/// that peer's data dir.
async fn damage_serving_copy(
    http: &reqwest::Client,
    cluster: &LocalCluster,
    key: &str,
    offsets: &[usize],
) -> (usize, PathBuf) {
    let serving = serving_peer(http, cluster, "vr", key).await;
    let dir = cluster.peer_data_dir(serving).unwrap().to_path_buf();
    damage(&data_file(&dir, "vr", key).unwrap(), offsets);
    (serving, dir)
}

#[tokio::test]
async fn ranged_and_whole_reads_of_a_damaged_replica_are_right() {
    let (cluster, client, http) = setup(None).await;
    let data = patterned(12 * BLOCK + 999, 1);
    let opts = PutOptions::default()
        .with_chunk_size(4 * BLOCK as u64)
        .with_replication_factor(3);
    client
        .put_bytes("vr", "doc", data.clone(), opts)
        .await
        .unwrap();

    // Damage chunk 1 on the peer that serves it, in two of its blocks.
    let key = "doc_1";
    let chunk = &data[4 * BLOCK..8 * BLOCK];
    let (_, dir) = damage_serving_copy(&http, &cluster, key, &[BLOCK + 7, 3 * BLOCK + 100]).await;

    // 30 ranges, most across the damage: every answer is 206 with the right bytes.
    let url = format!("{}/api/v4/buckets/vr/{key}", cluster.router_url());
    for i in 0..30usize {
        let from = (i * 37_813) % (chunk.len() - 1);
        let to = (from + 1 + i * 50_021).min(chunk.len() - 1);
        let (status, body) = range_get(&http, &url, from, to).await;
        assert_eq!(status, 206, "range {from}-{to}");
        assert!(body == chunk[from..=to], "range {from}-{to}: wrong bytes");
    }
    assert_eq!(quarantined(&dir), 1, "the damaged copy is quarantined");

    // Whole reads and the SDK's verified ranges, across chunk boundaries.
    assert_eq!(client.get_bytes("vr", "doc").await.unwrap().data, data);
    for (from, to) in [
        (0, 1),
        (10, 4 * BLOCK + 10),
        (5 * BLOCK - 3, 11 * BLOCK + 5),
        (0, data.len()),
    ] {
        let got = client
            .get_range("vr", "doc", from as u64..to as u64)
            .await
            .unwrap();
        assert!(got == data[from..to], "get_range {from}..{to}");
    }
    let empty = client.get_range("vr", "doc", 7..7).await.unwrap();
    assert!(empty.is_empty());
    let err = client
        .get_range("vr", "doc", 0..data.len() as u64 + 1)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not inside"), "{err}");
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_replica_cut_mid_stream_above_the_buffer_limit_is_resumed_from_another() {
    let (cluster, client, http) = setup(None).await;
    // One chunk above the router's 64 MiB buffer limit and the peer's verify-first limit:
    // both stream it, checked block by block.
    let len = 70 * 1024 * 1024 + 4321;
    let data = patterned(len, 2);
    let opts = PutOptions::default()
        .with_chunk_size(len as u64)
        .with_replication_factor(2);
    client
        .put_bytes("vr", "big", data.clone(), opts)
        .await
        .unwrap();
    let key = "big_0";
    let (_, dir) = damage_serving_copy(&http, &cluster, key, &[len / 2]).await;

    let url = format!("{}/api/v4/buckets/vr/{key}", cluster.router_url());
    let resp = http.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body = resp.bytes().await.expect("a whole, uncut answer");
    assert_eq!(body.len(), len);
    assert!(body == data, "the answer holds wrong bytes");
    assert_eq!(quarantined(&dir), 1);

    drop(client);
    cluster.shutdown().await;
}

#[tokio::test]
async fn repair_replaces_a_quarantined_copy() {
    let (cluster, client, http) = setup(Some(Duration::from_millis(300))).await;
    let data = patterned(3 * BLOCK, 3);
    let opts = PutOptions::default()
        .with_chunk_size(4 * BLOCK as u64)
        .with_replication_factor(3);
    client
        .put_bytes("vr", "fix", data.clone(), opts)
        .await
        .unwrap();
    let key = "fix_0";
    let (serving, dir) = damage_serving_copy(&http, &cluster, key, &[2 * BLOCK + 1]).await;
    let url = format!("{}/api/v4/buckets/vr/{key}", cluster.router_url());
    assert_eq!(
        range_get(&http, &url, 2 * BLOCK, 2 * BLOCK + 9).await,
        (206, data[2 * BLOCK..2 * BLOCK + 10].to_vec())
    );
    assert_eq!(quarantined(&dir), 1);

    let peer_url = format!("{}/api/v4/buckets/vr/{key}", cluster.peer_urls()[serving]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let resp = http.get(&peer_url).send().await.unwrap();
        if resp.status() == 200 {
            assert_eq!(resp.bytes().await.unwrap().to_vec(), data);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "repair did not restore the copy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    cluster.shutdown().await;
}
