//! Bad input gets a precise 4xx with a JSON `detail`, never a 500, and stores nothing.

#[path = "support/router_cluster.rs"]
mod cluster;

use cluster::{
    detail, metadata_body, random_bytes, raw_request, router_config, JsonRequest, TestPeer,
    TestRouter,
};
use serde_json::{json, Value};

async fn one_peer() -> (TestPeer, TestRouter) {
    let peer = TestPeer::start("peer-0").await;
    let router = TestRouter::start(router_config(vec![peer.address()])).await;
    router.wait_peers_up(1).await;
    (peer, router)
}

fn addr(r: &TestRouter) -> String {
    r.base.trim_start_matches("http://").to_string()
}

#[tokio::test]
async fn router_hostile_names_are_refused_with_400() {
    let (_peer, r) = one_peer().await;
    let long = "x".repeat(10_000);
    let paths = [
        "/api/v4/buckets/b/%2E%2E".to_string(),
        "/api/v4/buckets/%2E%2E/k".to_string(),
        "/api/v4/buckets/b/a%00b".to_string(),
        "/api/v4/buckets/b/a%0Db".to_string(),
        "/api/v4/buckets/a%2Fb/k".to_string(),
        format!("/api/v4/buckets/b/{long}"),
        "/api/v4/buckets/b/metadata/%2E%2E".to_string(),
        "/api/v4/buckets/b/%2E%2E/size".to_string(),
        "/api/v4/buckets/b/%2E%2E/merge".to_string(),
        "/api/v4/buckets/b/metadata/%2E%2E/chunks".to_string(),
        "/api/v4/buckets/-b-/k".to_string(),
    ];
    for path in &paths {
        let (status, body) = raw_request(&addr(&r), "GET", path, "", b"").await;
        assert_eq!(status, 400, "{path}: {body}");
        let v: Value = serde_json::from_str(&body).expect("JSON body");
        assert!(v["detail"].is_string(), "{path}: {body}");
    }
    for (method, path) in [
        ("DELETE", "/api/v4/buckets/b/a%0Ab"),
        ("DELETE", "/api/v4/buckets/b/bid/%2E%2E"),
        ("POST", "/api/v4/buckets/b/%2E%2E/disable"),
    ] {
        let (status, body) = raw_request(&addr(&r), method, path, "", b"").await;
        assert_eq!(status, 400, "{method} {path}: {body}");
    }
    // Hostile ids in a body.
    for (bucket, key) in [
        ("b", ".."),
        ("b", "a\rb"),
        ("b", "a\u{0}b"),
        ("-b", "k"),
        ("b", long.as_str()),
    ] {
        let resp = r.put_metadata_raw(bucket, key, b"abc", 1, json!({})).await;
        assert_eq!(resp.status(), 400, "{key:.20}");
        assert!(detail(resp).await.is_string());
    }
}

#[tokio::test]
async fn router_malformed_requests_are_4xx_json() {
    let (_peer, r) = one_peer().await;
    let url = r.url("/api/v4/buckets/b/metadata");
    let resp = r
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(detail(resp).await.is_string());
    let resp = r
        .http
        .post(&url)
        .header("content-type", "application/json")
        .body(r#"{"key":"k"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = r
        .http
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    assert!(detail(resp).await.is_string());
    // Bucket mismatch between path and body.
    let resp = r
        .http
        .post(&url)
        .json_body(&metadata_body("other", "k", b"abc", 1, json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert_eq!(detail(resp).await, "Bucket ID mismatch: b != other");
    // Tags must be strings.
    let mut body = metadata_body("b", "k", b"abc", 1, json!({}));
    body["tags"] = json!({"index": 0});
    let resp = r.http.post(&url).json_body(&body).send().await.unwrap();
    assert_eq!(resp.status(), 400);

    // Unknown task ids.
    let resp = r.upload_raw("nope", b"abc".to_vec()).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(detail(resp).await, "Task(nope) not found");
    let form = reqwest::multipart::Form::new()
        .part("data", reqwest::multipart::Part::bytes(b"abc".to_vec()));
    let resp = r
        .http
        .post(r.url("/api/v4/buckets/data/nope"))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // A multipart upload without the field, or not multipart at all.
    let meta = r.put_metadata("b", "mp", b"abc", 1).await;
    let task = &meta.tasks_ids[0];
    let form = reqwest::multipart::Form::new().text("other", "x");
    let resp = r
        .http
        .post(r.url(&format!("/api/v4/buckets/data/{task}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(detail(resp).await.as_str().unwrap().contains("data"));
    let resp = r
        .http
        .post(r.url(&format!("/api/v4/buckets/data/{task}")))
        .body("abc")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error());
    assert!(detail(resp).await.is_string());

    // Odd header values are never an error.
    let resp = r
        .http
        .delete(r.url("/api/v4/buckets/b/nothing"))
        .header("Force", "maybe")
        .header("Consistency-Model", "STRONG")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = r
        .http
        .get(r.url("/api/v4/buckets/b/nothing"))
        .header("Force-Get", "yes")
        .header("Chunk-Size", "nonsense")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    let resp = r.get("/api/v4/peers/stats?start=x").await;
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn router_wrong_size_or_checksum_stores_nothing_and_the_group_can_be_retried() {
    let (peer, r) = one_peer().await;
    let data = random_bytes(200_000);
    let meta = r.put_metadata("sz", "obj", &data, 1).await;
    let task = meta.tasks_ids[0].clone();

    let cases: Vec<(Vec<u8>, &str)> = vec![
        (data[..199_999].to_vec(), "Data size mismatch"),
        ([data.clone(), vec![0u8; 10]].concat(), "Data size mismatch"),
        (
            {
                let mut d = data.clone();
                d[100_000] ^= 1;
                d
            },
            "Checksum mismatch",
        ),
        (Vec::new(), "Data size mismatch"),
    ];
    for (body, message) in cases {
        let resp = r.upload_raw(&task, body).await;
        let status = resp.status();
        let d = detail(resp).await;
        assert_eq!(status, 400, "{message}: {d}");
        assert!(d.as_str().unwrap().starts_with(message), "{d}");
        // Nothing readable on the router or on the peer.
        assert_ne!(r.get_bytes("sz", "obj").await.0, 200);
        let direct = r
            .http
            .get(peer.url("/api/v4/buckets/sz/obj"))
            .send()
            .await
            .unwrap();
        assert_ne!(direct.status(), 200);
    }
    // The group is still there: the right bytes now go through.
    let resp = r.upload_raw(&task, data.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(r.get_bytes("sz", "obj").await, (200, data));
}
