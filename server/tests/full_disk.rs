//! Full disks are a normal state: a peer that fills answers 507, a metadata database that
//! hits ENOSPC is reopened without a restart once deletes have freed space, `/health` says
//! full or degraded meanwhile, and a router places new puts on the peers with room.
//! Loopback only, on a simulated small disk (no tmpfs needed).

#[path = "support/router_cluster.rs"]
mod cluster;
#[path = "support/peer_harness.rs"]
mod harness;

use std::sync::Arc;
use std::time::Duration;

use cluster::JsonResponse;
use mictlanx_server::storage::SimulatedDisk;
use mictlanx_server::{peer, PeerConfig};

const OBJ: usize = 200_000;
const RESERVE: u64 = 256 * 1024;
/// Keys the router test puts (about a third of them rank the small peer first).
const KEYS: usize = 24;

fn du(dir: &std::path::Path) -> u64 {
    harness::files_under(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn object(i: usize) -> Vec<u8> {
    (0..OBJ).map(|j| ((i * 31 + j) % 251) as u8).collect()
}

/// Settings of a peer on a simulated disk (its room is set once it has started).
fn on_small_disk(c: &mut PeerConfig, sim: &Arc<SimulatedDisk>) {
    c.meta_reserve = RESERVE;
    c.inline_limit = 0;
    c.degraded_hold = Duration::from_millis(300);
    c.simulated_disk = Some(Arc::clone(sim));
}

/// PM1 + PD2 on a peer; the status of the first step that failed, or 200.
async fn put(p: &harness::TestPeer, key: &str, data: &[u8]) -> u16 {
    let (status, meta) = p.put_metadata("b", key, data).await;
    if status != 200 {
        return status;
    }
    let task = meta["task_id"].as_str().expect("task id").to_string();
    p.upload_chunked(&task, data.to_vec()).await.0
}

#[tokio::test]
async fn a_full_peer_frees_space_by_deletes_and_writes_again_without_restart() {
    let sim = SimulatedDisk::new(u64::MAX);
    let p = harness::TestPeer::start_with(|c| on_small_disk(c, &sim)).await;
    sim.set_limit(du(p.data_dir()) + RESERVE + (5 * OBJ + OBJ / 2) as u64);
    let (_, h) = p.get_json("/health").await;
    assert_eq!(
        (h["status"].as_str(), h["state"].as_str()),
        (Some("ok"), Some("ok")),
        "{h}"
    );

    // The peer reports what the disk really has, not its configured 10 GB.
    let (_, ufs) = p.get_json("/api/v4/stats/ufs").await;
    assert!(
        ufs["total_disk"].as_u64().unwrap() < 6 * OBJ as u64,
        "{ufs}"
    );

    // Fill it: puts until 507.
    let mut stored = Vec::new();
    loop {
        let i = stored.len();
        assert!(i < 20, "never refused");
        match put(&p, &format!("k{i}"), &object(i)).await {
            200 => stored.push(i),
            status => {
                assert_eq!(status, 507);
                break;
            }
        }
    }
    assert!(stored.len() >= 3, "only {} stored", stored.len());
    let (status, h) = p.get_json("/health").await;
    assert_eq!(
        (status, h["state"].as_str(), h["full"].as_bool()),
        (200, Some("full"), Some(true)),
        "{h}"
    );

    // Its metadata database hits ENOSPC: 507, not 502 or 500, and nothing half-written.
    sim.set_db_full(true);
    assert_eq!(put(&p, "small", b"0123456789").await, 507);
    assert!(p.tmp_files().is_empty());
    let (status, h) = p.get_json("/health").await;
    assert_eq!(
        (status, h["status"].as_str(), h["state"].as_str()),
        (200, Some("ok"), Some("degraded")),
        "{h}"
    );
    let metrics = p.metrics_text().await;
    assert!(
        metrics.contains("mictlanx_peer_metadata_degraded 1"),
        "{metrics}"
    );
    assert!(metrics.contains("mictlanx_peer_disk_full 1"), "{metrics}");

    // Room for metadata again: deletes through the API free space, and puts work again.
    sim.set_db_full(false);
    for i in stored.drain(..2) {
        let resp = p
            .http
            .delete(p.url(&format!("/api/v4/buckets/b/k{i}")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "delete: {}", resp.status());
    }
    let i = 100;
    assert_eq!(put(&p, &format!("k{i}"), &object(i)).await, 200);
    stored.push(i);
    for i in &stored {
        let (status, bytes) = p.get_bytes("b", &format!("k{i}")).await;
        assert_eq!(status, 200);
        assert!(bytes == object(*i), "k{i} reads back other bytes");
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    let (_, h) = p.get_json("/health").await;
    assert_eq!(h["state"].as_str(), Some("ok"), "{h}");
    let metrics = p.metrics_text().await;
    assert!(
        metrics.contains("mictlanx_peer_metadata_reopens 1"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_router_places_new_puts_on_the_peers_with_room() {
    let sim = SimulatedDisk::new(u64::MAX);
    let small_dir = tempfile::tempdir().unwrap();
    let mut c = PeerConfig::new("small", small_dir.path());
    on_small_disk(&mut c, &sim);
    let small = peer::start(c).await.expect("peer starts");
    let a = cluster::TestPeer::start("a").await;
    let b = cluster::TestPeer::start("b").await;
    let mut config = cluster::router_config(vec![
        cluster::address("small", small.addr()),
        a.address(),
        b.address(),
    ]);
    // The router's numbers stay those of the first probe: only the peer's 507 can tell it
    // that the small one filled up.
    config.probe_interval = Duration::from_secs(600);
    let r = cluster::TestRouter::start(config).await;
    r.wait_peers_up(3).await;
    // Now the small peer's disk fills up: room for two more objects.
    sim.set_limit(du(small_dir.path()) + RESERVE + (2 * OBJ + OBJ / 2) as u64);

    let mut placed_on_small = 0;
    for i in 0..KEYS {
        let data = object(i);
        let stored = r.put("b", &format!("k{i}"), &data, 1).await;
        assert_eq!(stored.peer_ids.len(), 1);
        if stored.peer_ids[0] == "small" {
            placed_on_small += 1;
        }
    }
    assert_eq!(placed_on_small, 2, "{placed_on_small} on the small peer");
    for i in 0..KEYS {
        let (status, bytes) = r.get_bytes("b", &format!("k{i}")).await;
        assert_eq!(status, 200, "k{i}");
        assert!(bytes == object(i), "k{i} reads back other bytes");
    }
    let h: serde_json::Value = cluster::http()
        .get(format!("{}/health", small.base_url()))
        .send()
        .await
        .unwrap()
        .json_body()
        .await
        .unwrap();
    assert_eq!(h["state"].as_str(), Some("full"), "{h}");
}
