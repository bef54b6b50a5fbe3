//! `/api/v4/policies` on a router without a provisioner, over real peers on loopback:
//! validation answers (400 with line and column, unknown peers refused), the lifecycle of
//! a policy, and a `REPLICAS` trigger on a whole bucket that copies its keys onto every
//! `where` peer.

#[path = "support/router_cluster.rs"]
mod cluster;

use std::time::{Duration, Instant};

use cluster::{detail, random_bytes, router_config, JsonResponse, TestPeer, TestRouter, STEP};
use mictlanx::policy::{PolicyState, PolicyStatus};
use serde_json::Value;

const POLICY: &str = "apac: v1
available-resources:
    pool:
        - a
        - b
who: pool.a
what:
    - bkt
where:
    - pool.a
    - pool.b
how: ACTIVE
when:
    - bkt: $REPLICAS < 2
";

async fn setup() -> (Vec<TestPeer>, TestRouter) {
    let peers = vec![
        TestPeer::start("pool.a").await,
        TestPeer::start("pool.b").await,
    ];
    let mut config = router_config(peers.iter().map(TestPeer::address).collect());
    config.policy.eval_interval = Duration::from_millis(50);
    let router = TestRouter::start(config).await;
    router.wait_peers_up(2).await;
    (peers, router)
}

async fn post(r: &TestRouter, body: impl Into<reqwest::Body>) -> reqwest::Response {
    r.http
        .post(r.url("/api/v4/policies"))
        .header("content-type", "text/plain")
        .body(body)
        .send()
        .await
        .expect("answers")
}

#[tokio::test]
async fn invalid_policies_get_400_with_line_and_column() {
    let (_peers, r) = setup().await;

    let resp = post(&r, "apac: v1\navailable-resources:\n    pool: who").await;
    assert_eq!(resp.status(), 400);
    let d = detail(resp).await;
    assert_eq!(d["code"], 400);
    assert_eq!(d["errors"][0]["line"], 3);
    assert_eq!(d["errors"][0]["column"], 11);
    assert!(d["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("expected `-` and a peer name")));
    assert!(d["msg"]
        .as_str()
        .is_some_and(|m| m.contains("3:11: expected")));

    // Without a provisioner, a declared peer the router does not know is refused.
    let unknown = POLICY.replace("        - b\n", "        - b\n        - c\n");
    let resp = post(&r, unknown).await;
    assert_eq!(resp.status(), 400);
    let d = detail(resp).await;
    assert_eq!(d["errors"].as_array().map(Vec::len), Some(1));
    assert_eq!(d["errors"][0]["line"], 6);
    assert_eq!(d["errors"][0]["column"], 11);
    assert!(d["errors"][0]["message"]
        .as_str()
        .is_some_and(|m| m.contains("pool.c is not known to the router")));

    // The typo of the original README: an error, a warning with ?lenient=true.
    let typo = POLICY.replace("$REPLICAS < 2", "$REPLICA < 2");
    let resp = post(&r, typo.clone()).await;
    assert_eq!(resp.status(), 400);
    assert!(detail(resp).await["msg"]
        .as_str()
        .is_some_and(|m| m.contains("did you mean REPLICAS?")));
    let resp = r
        .http
        .post(r.url("/api/v4/policies?lenient=true"))
        .body(typo)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let s: PolicyStatus = resp.json_body().await.unwrap();
    assert_eq!(s.warnings.len(), 1);
    assert_eq!(s.triggers[0].variable, "REPLICAS");

    // Not text, empty, truncated, too large.
    for body in [
        vec![0xff, 0xfe, 0x00],
        Vec::new(),
        POLICY.as_bytes()[..POLICY.len() / 2].to_vec(),
        vec![b'#'; 1_500_000],
    ] {
        let resp = post(&r, body).await;
        assert_eq!(resp.status(), 400);
        detail(resp).await;
    }
    // Bigger than any JSON body the router reads: refused before parsing.
    let resp = post(&r, vec![b'#'; 3_000_000]).await;
    assert_eq!(resp.status(), 413);
}

#[tokio::test]
async fn unknown_policy_ids_are_404() {
    let (_peers, r) = setup().await;
    for path in ["/api/v4/policies/nope", "/api/v4/policies/..%2F..%2Fetc"] {
        let resp = r.get(path).await;
        assert_eq!(resp.status(), 404);
        detail(resp).await;
        let resp = r.http.delete(r.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 404);
    }
    let list: Vec<Value> = r.get("/api/v4/policies").await.json_body().await.unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn a_replicas_trigger_copies_a_whole_bucket_onto_every_where_peer() {
    let (peers, r) = setup().await;
    let one = random_bytes(300_000);
    let two = random_bytes(10);
    assert_eq!(r.put("bkt", "one_0", &one, 1).await.peer_ids.len(), 1);
    assert_eq!(r.put("bkt", "two_0", &two, 1).await.peer_ids.len(), 1);
    r.put("other", "x_0", &two, 1).await;

    let resp = post(&r, POLICY).await;
    assert_eq!(resp.status(), 201);
    let applied: PolicyStatus = resp.json_body().await.unwrap();
    // No key of the bucket has been read: REPLICAS reads 0, so it fires at once.
    let deadline = Instant::now() + STEP;
    let done = loop {
        let s: PolicyStatus = r
            .get(&format!("/api/v4/policies/{}", applied.id))
            .await
            .json_body()
            .await
            .unwrap();
        assert_ne!(s.state, PolicyState::Failed, "{s:?}");
        if s.state == PolicyState::Done {
            break s;
        }
        assert!(Instant::now() < deadline, "not done in time: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(done.triggers[0].observed, Some(0.0));
    assert_eq!((done.replicas_done, done.replicas_total), (2, 2));

    // Each peer holds both keys of the bucket, byte for byte; the other bucket is untouched.
    let http = cluster::http();
    for peer in &peers {
        for (key, data) in [("one_0", &one), ("two_0", &two)] {
            let resp = http
                .get(peer.url(&format!("/api/v4/buckets/bkt/{key}")))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{} {key}", peer.id);
            assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);
        }
    }
    let held: usize = {
        let mut n = 0;
        for peer in &peers {
            let resp = http
                .get(peer.url("/api/v4/buckets/other/x_0"))
                .send()
                .await
                .unwrap();
            n += usize::from(resp.status() == 200);
        }
        n
    };
    assert_eq!(held, 1);

    // Removed: gone from the list.
    let resp = r
        .http
        .delete(r.url(&format!("/api/v4/policies/{}", applied.id)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let list: Vec<Value> = r.get("/api/v4/policies").await.json_body().await.unwrap();
    assert!(list.is_empty());
}

#[tokio::test]
async fn a_where_peer_that_stays_down_fails_the_policy_with_its_name() {
    let mut peers = [
        TestPeer::start("pool.a").await,
        TestPeer::start("pool.b").await,
    ];
    let mut config = router_config(peers.iter().map(TestPeer::address).collect());
    config.policy.eval_interval = Duration::from_millis(50);
    config.policy.peer_ready_timeout = Duration::from_millis(300);
    let r = TestRouter::start(config).await;
    r.wait_peers_up(2).await;
    r.put("bkt", "one_0", &random_bytes(1000), 1).await;
    peers[1].kill().await;
    r.wait_peers_up(1).await;

    let resp = post(&r, POLICY).await;
    assert_eq!(resp.status(), 201);
    let applied: PolicyStatus = resp.json_body().await.unwrap();
    let deadline = Instant::now() + STEP;
    let failed = loop {
        let s: PolicyStatus = r
            .get(&format!("/api/v4/policies/{}", applied.id))
            .await
            .json_body()
            .await
            .unwrap();
        if s.state == PolicyState::Failed {
            break s;
        }
        assert_ne!(s.state, PolicyState::Done, "{s:?}");
        assert!(Instant::now() < deadline, "never failed: {s:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let error = failed.error.clone().expect("a reason");
    assert!(error.contains("pool.b"), "{error}");
    assert_eq!(failed.state_label(), "failed");
}
