//! The router under faults, against real peers (some behind a fault-injecting proxy): a dead
//! replica, a peer dying mid-upload, a corrupt replica, a stalled replica, and no peers.

#[path = "support/router_cluster.rs"]
mod cluster;
#[path = "support/router_proxy.rs"]
mod proxy;

use std::time::Duration;

use cluster::{address, detail, random_bytes, router_config, JsonResponse, TestPeer, TestRouter};
use proxy::{Fault, Proxy};
use serde_json::json;

/// Two peers; `peer-0` is reached through a proxy (placement takes `peer-0` first on a tie,
/// so with rf=2 the proxied replica is the first one read).
async fn proxied_pair(
    tune: impl FnOnce(&mut mictlanx_server::RouterConfig),
) -> (Vec<TestPeer>, Proxy, TestRouter) {
    let p0 = TestPeer::start("peer-0").await;
    let p1 = TestPeer::start("peer-1").await;
    let proxy = Proxy::start(p0.addr).await;
    let mut config = router_config(vec![address("peer-0", proxy.addr), p1.address()]);
    tune(&mut config);
    let router = TestRouter::start(config).await;
    router.wait_peers_up(2).await;
    (vec![p0, p1], proxy, router)
}

#[tokio::test]
async fn router_read_fails_over_from_a_dead_replica() {
    let mut peers = [
        TestPeer::start("peer-0").await,
        TestPeer::start("peer-1").await,
    ];
    let r = TestRouter::start(router_config(peers.iter().map(TestPeer::address).collect())).await;
    r.wait_peers_up(2).await;
    let data = random_bytes(300_000);
    let put = r.put("fo", "obj", &data, 2).await;
    assert_eq!(put.peer_ids.len(), 2);

    // The first replica dies; the router has not probed it yet and must fail over.
    peers[0].kill().await;
    assert_eq!(r.get_bytes("fo", "obj").await, (200, data.clone()));
    let m = r.get("/api/v4/buckets/fo/metadata/obj").await;
    assert_eq!(m.status(), 200);
    // Once the probes see it down, reads go straight to the live replica.
    r.wait_peers_up(1).await;
    assert_eq!(r.get_bytes("fo", "obj").await, (200, data.clone()));
    // New puts with rf=2 no longer fit; rf=1 does.
    let resp = r.put_metadata_raw("fo", "new", &data, 2, json!({})).await;
    assert_eq!(detail(resp).await["code"], 666);
    let put = r.put("fo", "new", &data, 1).await;
    assert_eq!(put.peer_ids, vec!["peer-1"]);
}

#[tokio::test]
async fn router_upload_survives_a_peer_dying_mid_body() {
    let (peers, proxy, r) = proxied_pair(|_| {}).await;
    let data = random_bytes(1_000_000);
    let meta = r.put_metadata("mid", "ball", &data, 2).await;
    assert_eq!(meta.replicas.len(), 2);
    proxy.set(Fault::CutRequest {
        marker: data[..32].to_vec(),
        after: 200_000,
    });
    let resp = r.upload_raw(&meta.tasks_ids[0], data.clone()).await;
    // One replica is not rf = 2, and no third peer can take the other: a retryable 503,
    // never a 2xx with fewer copies than asked (issue 14).
    assert_eq!(resp.status(), 503);
    let text = detail(resp).await.to_string();
    assert!(text.contains("only 1 of 2 replicas stored"), "{text}");
    assert_eq!(proxy.triggered(), 1, "the cut happened");

    // The copy that was stored reads back, from the replica that stored it.
    assert_eq!(r.get_bytes("mid", "ball").await, (200, data.clone()));
    // The cut replica did not commit a partial object.
    let direct = r
        .http
        .get(peers[0].url("/api/v4/buckets/mid/ball"))
        .send()
        .await
        .unwrap();
    assert_ne!(direct.status(), 200);
}

#[tokio::test]
async fn router_upload_fails_cleanly_when_the_only_replica_dies_and_can_be_retried() {
    let (_peers, proxy, r) = proxied_pair(|_| {}).await;
    let data = random_bytes(500_000);
    // rf=1 on a tie goes to peer-0, the proxied one.
    let meta = r.put_metadata("mid", "solo", &data, 1).await;
    assert_eq!(meta.replicas, vec!["peer-0"]);
    proxy.set(Fault::CutRequest {
        marker: data[..32].to_vec(),
        after: 1000,
    });
    let resp = r.upload_raw(&meta.tasks_ids[0], data.clone()).await;
    let status = resp.status().as_u16();
    assert!(status == 502 || status == 503, "{status}");
    assert!(detail(resp).await.as_str().unwrap().contains("peer-0"));
    // The group stays: the retry (the cut fault fired once) succeeds. Until the peer has
    // noticed the cut connection it still holds its own upload of the task and refuses a
    // second one with 409, which the router passes on; a client retries that.
    let deadline = std::time::Instant::now() + cluster::STEP;
    let resp = loop {
        let resp = r.upload_raw(&meta.tasks_ids[0], data.clone()).await;
        if resp.status() != 409 || std::time::Instant::now() > deadline {
            break resp;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(resp.status(), 200, "{:?}", resp.text().await);
    assert_eq!(r.get_bytes("mid", "solo").await, (200, data));
}

#[tokio::test]
async fn router_corrupt_replica_is_skipped_never_returned() {
    let (_peers, proxy, r) = proxied_pair(|_| {}).await;
    let data = random_bytes(1_000_000);
    let put = r.put("bad", "obj", &data, 2).await;
    assert_eq!(put.peer_ids.len(), 2);
    proxy.set(Fault::FlipResponse {
        marker: data[..32].to_vec(),
    });
    for _ in 0..3 {
        assert_eq!(r.get_bytes("bad", "obj").await, (200, data.clone()));
    }
    assert!(proxy.triggered() >= 1, "the corrupt replica was read");

    // With a single, corrupt replica the router answers an error, never the bytes.
    proxy.set(Fault::None);
    let solo = random_bytes(100_000);
    let put = r.put("bad", "solo", &solo, 1).await;
    assert_eq!(put.peer_ids, vec!["peer-0"]);
    proxy.set(Fault::FlipResponse {
        marker: solo[..32].to_vec(),
    });
    let resp = r.get("/api/v4/buckets/bad/solo").await;
    assert_eq!(resp.status(), 502);
    assert!(detail(resp).await.as_str().unwrap().contains("SHA-256"));
}

#[tokio::test]
async fn router_corrupt_large_object_cuts_the_stream() {
    // Objects above the buffer limit stream: a mismatch found at the end must cut the
    // answer, so the client sees a broken transfer, not a clean 200 of wrong bytes.
    let (_peers, proxy, r) = proxied_pair(|c| c.verify_buffer_limit = 64 * 1024).await;
    let data = random_bytes(400_000);
    let put = r.put("big", "solo", &data, 1).await;
    assert_eq!(put.peer_ids, vec!["peer-0"]);
    // Intact, it streams whole.
    assert_eq!(r.get_bytes("big", "solo").await, (200, data.clone()));
    proxy.set(Fault::FlipResponse {
        marker: data[..32].to_vec(),
    });
    let resp = r.get("/api/v4/buckets/big/solo").await;
    match resp.bytes().await {
        Ok(body) => panic!(
            "a clean answer of {} bytes from a corrupt replica",
            body.len()
        ),
        Err(e) => assert!(e.is_body() || e.is_decode() || e.is_request(), "{e}"),
    }
    assert!(proxy.triggered() >= 1);
}

#[tokio::test]
async fn router_stalled_replica_is_given_up_after_the_idle_timeout() {
    let (_peers, proxy, r) =
        proxied_pair(|c| c.peer_idle_timeout = Duration::from_millis(500)).await;
    let data = random_bytes(200_000);
    // Placement decides which replica a read tries first; of a few keys, some start with
    // the stalled one.
    let keys: Vec<String> = (0..12).map(|i| format!("obj-{i}")).collect();
    for key in &keys {
        r.put("slow", key, &data, 2).await;
    }
    proxy.set(Fault::StallResponse {
        marker: data[..32].to_vec(),
        pause: Duration::from_secs(5),
    });
    for key in &keys {
        let started = std::time::Instant::now();
        assert_eq!(r.get_bytes("slow", key).await, (200, data.clone()));
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{key}: {:?}",
            started.elapsed()
        );
    }
    assert!(proxy.triggered() >= 1);
}

#[tokio::test]
async fn router_no_healthy_peer_is_a_json_error_never_a_panic() {
    let mut peers = vec![
        TestPeer::start("peer-0").await,
        TestPeer::start("peer-1").await,
    ];
    let r = TestRouter::start(router_config(peers.iter().map(TestPeer::address).collect())).await;
    r.wait_peers_up(2).await;
    let data = random_bytes(1000);
    r.put("down", "obj", &data, 2).await;
    let pending = r.put_metadata("down", "pending", &data, 1).await;
    for p in &mut peers {
        p.kill().await;
    }

    // Before the probes notice: every call fails over to nothing.
    let (status, _) = r.get_bytes("down", "obj").await;
    assert!(status == 503 || status == 502, "{status}");
    // After they do.
    r.wait_peers_up(0).await;
    let checks: Vec<(reqwest::Response, &[u16])> = vec![
        (
            r.put_metadata_raw("down", "new", &data, 1, json!({})).await,
            &[503, 404],
        ),
        (r.get("/api/v4/buckets/down/obj").await, &[503, 404]),
        (
            r.get("/api/v4/buckets/down/metadata/obj").await,
            &[503, 404],
        ),
        (r.get("/api/v4/buckets/down/metadata").await, &[503]),
        (
            r.get("/api/v4/buckets/down/metadata/obj/chunks").await,
            &[503],
        ),
        (
            r.http
                .delete(r.url("/api/v4/buckets/down/obj"))
                .send()
                .await
                .unwrap(),
            &[503],
        ),
        (
            r.http
                .delete(r.url("/api/v4/buckets/down/bid/obj"))
                .send()
                .await
                .unwrap(),
            &[503],
        ),
        (
            r.http
                .post(r.url("/api/v4/buckets/down/obj/disable"))
                .send()
                .await
                .unwrap(),
            &[503],
        ),
        (
            r.upload_raw(&pending.tasks_ids[0], data.clone()).await,
            &[503],
        ),
        (r.get("/api/v4/buckets/down/obj/merge").await, &[503, 404]),
    ];
    for (resp, allowed) in checks {
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        assert!(allowed.contains(&status), "{url}: {status}");
        assert!(!detail(resp).await.is_null(), "{url}: JSON detail");
    }
    let stats: serde_json::Value = r
        .get("/api/v4/peers/stats")
        .await
        .json_body()
        .await
        .unwrap();
    assert_eq!(stats, json!({}));
    assert_eq!(r.health().await["peers_up"], 0);
}

/// A router that never saw a key does not ask the peers it places the key on (they answer
/// the announcement themselves). When another of them then fails, the rollback must still
/// leave a chosen peer's existing copy alone.
#[tokio::test]
async fn a_failed_announcement_never_deletes_a_replica_the_router_did_not_know() {
    let (peers, proxy, b) = proxied_pair(|_| {}).await;
    // Router A knows only peer-1 and stores the key there; B has never seen it.
    let a = TestRouter::start(router_config(vec![peers[1].address()])).await;
    a.wait_peers_up(1).await;
    let data = random_bytes(5_000);
    let stored = a.put("rb", "keep-me", &data, 1).await;
    assert_eq!(stored.peer_ids, vec!["peer-1"]);

    // rf=2 through B: both peers are chosen; peer-0's announcement is cut.
    proxy.set(Fault::CutRequest {
        marker: b"keep-me".to_vec(),
        after: 0,
    });
    let resp = b
        .put_metadata_raw("rb", "keep-me", &data, 2, json!({}))
        .await;
    assert!(!resp.status().is_success(), "{:?}", resp.text().await);
    assert_eq!(proxy.triggered(), 1);
    proxy.set(Fault::None);
    let direct = b
        .http
        .get(peers[1].url("/api/v4/buckets/rb/keep-me"))
        .send()
        .await
        .unwrap();
    assert_eq!(direct.status(), 200, "the existing replica survived");
    assert_eq!(direct.bytes().await.unwrap().as_ref(), data.as_slice());
}

/// A "peer" that answers everything with a redirect must not lead the router (and the
/// cluster token it sends) anywhere: the router never follows, and the peer stays down.
#[tokio::test]
async fn the_router_never_follows_a_peer_redirect() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    async fn serve(app: axum::Router) -> std::net::SocketAddr {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    }
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    let trap = serve(axum::Router::new().fallback(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        async { "{}" }
    }))
    .await;
    let redirector = serve(
        axum::Router::new().fallback(move |uri: axum::http::Uri| async move {
            axum::response::Redirect::temporary(&format!("http://{trap}{uri}"))
        }),
    )
    .await;
    let r = TestRouter::start(router_config(vec![address("peer-0", redirector)])).await;
    // Several probe rounds (100 ms apart), and a put that needs the peer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(r.health().await["peers_up"], 0);
    let resp = r.put_metadata_raw("rd", "k", b"data", 1, json!({})).await;
    assert!(!resp.status().is_success());
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the router followed a redirect"
    );
}
