//! The router holds no state a restart loses: a new router over the same peers, and two
//! routers at once, serve every ball, pending ones included.

#[path = "support/router_cluster.rs"]
mod cluster;

use cluster::{random_bytes, router_config, JsonResponse, TestPeer, TestRouter};
use mictlanx::model::{GetMetadataResponse, RouterBucketMetadata};

#[tokio::test]
async fn a_new_router_and_two_routers_at_once_serve_every_ball() {
    let peers = vec![
        TestPeer::start("peer-0").await,
        TestPeer::start("peer-1").await,
        TestPeer::start("peer-2").await,
    ];
    let addresses: Vec<_> = peers.iter().map(TestPeer::address).collect();
    let mut first = TestRouter::start(router_config(addresses.clone())).await;
    first.wait_peers_up(3).await;
    let mut balls = Vec::new();
    for (i, rf) in [1u32, 2, 3, 1, 2].into_iter().enumerate() {
        let key = format!("ball-{i}");
        let data = random_bytes(10_000 + i * 1000);
        first.put("keep", &key, &data, rf).await;
        balls.push((key, data));
    }
    // A key whose bytes never came: it exists from its metadata on (DESIGN §2).
    let pending = first.put_metadata("keep", "pending", b"later", 2).await;
    first.shutdown().await;

    // A fresh router learns the committed keys from the peers' listings, and finds the
    // pending one by asking.
    let second = TestRouter::start(router_config(addresses.clone())).await;
    second.wait_peers_up(3).await;
    // The listings of the peers fill its replica map (5 committed keys) without any read.
    let deadline = std::time::Instant::now() + cluster::STEP;
    loop {
        let text = second.get("/metrics").await.text().await.unwrap();
        if text.contains("mictlanx_router_replicas_known 5\n") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "replica map never synced: {text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    for (key, data) in &balls {
        assert_eq!(
            second.get_bytes("keep", key).await,
            (200, data.clone()),
            "{key}"
        );
    }
    let resp = second.get("/api/v4/buckets/keep/metadata/pending").await;
    assert_eq!(resp.status(), 200);
    let m: GetMetadataResponse = resp.json_body().await.unwrap();
    assert_eq!(m.metadata.size, 5);
    // Its group lived in the first router only: the upload must be announced again.
    let resp = second
        .upload_raw(&pending.tasks_ids[0], b"later".to_vec())
        .await;
    assert_eq!(resp.status(), 404);
    let put = second.put("keep", "pending", b"later", 2).await;
    assert_eq!(put.peer_ids.len(), 2);
    assert_eq!(
        second.get_bytes("keep", "pending").await,
        (200, b"later".to_vec())
    );

    // A third router beside the second: writes through one are read through the other,
    // deletes through one are seen by the other.
    let third = TestRouter::start(router_config(addresses)).await;
    third.wait_peers_up(3).await;
    let fresh = random_bytes(50_000);
    second.put("keep", "fresh", &fresh, 2).await;
    assert_eq!(third.get_bytes("keep", "fresh").await, (200, fresh.clone()));
    let listing: RouterBucketMetadata = third
        .get("/api/v4/buckets/keep/metadata")
        .await
        .json_body()
        .await
        .unwrap();
    assert_eq!(listing.balls.len(), balls.len() + 2);
    // Both routers know the key; a delete through one is a 404 through the other.
    assert_eq!(second.get_bytes("keep", "fresh").await.0, 200);
    let resp = third
        .http
        .delete(third.url("/api/v4/buckets/keep/fresh"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(second.get_bytes("keep", "fresh").await.0, 404);
    let resp = second.get("/api/v4/buckets/keep/metadata/fresh").await;
    assert_eq!(resp.status(), 404);
    drop(peers);
}

/// Router B never saw the keys router A placed (its map was filled before they existed).
/// A put through B must still find the replica wherever it is, whether or not B's own
/// placement chose that peer: identical bytes stay one replica, other bytes are refused.
#[tokio::test]
async fn a_put_through_a_router_that_never_saw_the_key_finds_its_replica() {
    let peers = [
        TestPeer::start("peer-0").await,
        TestPeer::start("peer-1").await,
        TestPeer::start("peer-2").await,
    ];
    let addresses: Vec<_> = peers.iter().map(TestPeer::address).collect();
    let a = TestRouter::start(router_config(addresses.clone())).await;
    let b = TestRouter::start(router_config(addresses)).await;
    a.wait_peers_up(3).await;
    b.wait_peers_up(3).await;
    let http = cluster::http();
    let holders = |key: String| {
        let http = http.clone();
        let urls: Vec<String> = peers
            .iter()
            .map(|p| p.url(&format!("/api/v4/buckets/blind/metadata/{key}")))
            .collect();
        async move {
            let mut n = 0;
            for url in urls {
                if http.get(url).send().await.unwrap().status() == 200 {
                    n += 1;
                }
            }
            n
        }
    };
    // Six keys, so that B's placement both picks and misses the holder.
    for i in 0..6 {
        let key = format!("k{i}");
        let data = random_bytes(2_000 + i);
        let first = a.put("blind", &key, &data, 1).await;
        let again = b.put("blind", &key, &data, 1).await;
        assert_eq!(again.peer_ids, first.peer_ids, "{key}");
        assert_eq!(holders(key.clone()).await, 1, "{key}");
        assert_eq!(b.get_bytes("blind", &key).await, (200, data));
    }
    let data = random_bytes(3_000);
    for i in 0..6 {
        let key = format!("other{i}");
        a.put("blind", &key, &data, 1).await;
        let resp = b
            .put_metadata_raw(
                "blind",
                &key,
                &random_bytes(3_000),
                1,
                serde_json::json!({}),
            )
            .await;
        assert_eq!(resp.status(), 409, "{key}: {:?}", resp.text().await);
        assert_eq!(holders(key.clone()).await, 1, "{key}");
        assert_eq!(a.get_bytes("blind", &key).await, (200, data.clone()));
    }
}
