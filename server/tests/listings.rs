//! Bounded listings (issue 15, point 3): pages of the peer's and the router's listings in
//! key order, limits, tokens, keys written between pages, tombstones of one peer hiding a
//! key across the router's pages, balls split across pages, and the SDK following pages.

#[path = "support/peer_harness.rs"]
mod peer_harness;
#[path = "support/router_cluster.rs"]
mod router_cluster;

use std::collections::BTreeSet;
use std::time::Duration;

use peer_harness::{metadata_body, TestPeer};
use router_cluster::{address, router_config, TestRouter};
use serde_json::{json, Value};

const VERSION: &str = "X-Mictlanx-Version";
const TRUNCATED: &str = "x-mictlanx-is-truncated";
const NEXT: &str = "x-mictlanx-next-continuation-token";

/// A put of `key` on `peer` with the version `version`.
async fn put_versioned(peer: &TestPeer, bucket: &str, version: &str, body: Value, data: &[u8]) {
    let key = body["key"].as_str().expect("a key").to_string();
    let (status, meta) = peer
        .put_metadata_json(bucket, body, &[(VERSION, version)])
        .await;
    assert_eq!(status, 200, "{key}: {meta}");
    let task = meta["task_id"].as_str().expect("task id").to_string();
    let (status, answer) = peer.upload_chunked(&task, data.to_vec()).await;
    assert_eq!(status, 200, "{key}: {answer}");
}

/// A delete of `key` on `peer` recorded as a tombstone of version `version`.
async fn tombstone(peer: &TestPeer, bucket: &str, key: &str, version: &str) {
    let resp = reqwest::Client::new()
        .delete(peer.url(&format!("/api/v4/buckets/{bucket}/{key}")))
        .header(VERSION, version)
        .header("X-Mictlanx-Tombstone", "1")
        .send()
        .await
        .expect("delete");
    assert!(!resp.status().is_server_error(), "{}", resp.status());
}

/// GET `url`: status, paging headers, body.
async fn get(url: &str) -> (u16, Option<String>, Option<String>, Value) {
    let resp = reqwest::Client::new().get(url).send().await.expect("get");
    let status = resp.status().as_u16();
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let (truncated, next) = (header(TRUNCATED), header(NEXT));
    let bytes = resp.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    (status, truncated, next, body)
}

/// Follows the pages of `path` (which has a `?`), `limit` at a time; every page's entries.
async fn follow(base: &dyn Fn(&str) -> String, path: &str, limit: usize) -> Vec<Vec<Value>> {
    let mut pages = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..10_000 {
        let mut url = base(&format!("{path}limit={limit}"));
        if let Some(t) = &token {
            url.push_str(&format!("&continuation_token={t}"));
        }
        let (status, truncated, next, body) = get(&url).await;
        assert_eq!(status, 200, "{url}: {body}");
        let entries = body.as_array().cloned().unwrap_or_default();
        assert!(
            entries.len() <= limit.min(1000),
            "{} > {limit}",
            entries.len()
        );
        pages.push(entries);
        assert_eq!(truncated.as_deref() == Some("true"), next.is_some());
        match next {
            Some(n) => token = Some(n),
            None => return pages,
        }
    }
    panic!("pages never ended");
}

fn keys(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| {
            format!(
                "{}/{}",
                e["bucket_id"].as_str().unwrap(),
                e["key"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn peer_listings_page_in_key_order() {
    let peer = TestPeer::start().await;
    let mut expected = Vec::new();
    for b in ["a", "b"] {
        for i in 0..30 {
            let key = format!("k{i:03}");
            peer.put(b, &key, key.as_bytes()).await;
            expected.push(format!("{b}/{key}"));
        }
    }
    let base = |p: &str| peer.url(p);
    // The whole listing (the original API) is everything, in key order.
    let (status, truncated, next, whole) = get(&peer.url("/api/v4/xballs")).await;
    assert_eq!(
        (status, truncated.as_deref(), next),
        (200, Some("false"), None)
    );
    assert_eq!(keys(whole.as_array().unwrap()), expected);
    let (_, _, _, offset) = get(&peer.url("/api/v4/xballs?start=2&end=5")).await;
    assert_eq!(keys(offset.as_array().unwrap()), expected[2..5]);
    for limit in [1, 7, 60, 1000, 5000] {
        let pages = follow(&base, "/api/v4/xballs?", limit).await;
        let all: Vec<String> = pages.iter().flat_map(|p| keys(p)).collect();
        assert_eq!(all, expected, "limit {limit}");
        assert_eq!(
            pages.len(),
            60usize.div_ceil(limit.min(1000)),
            "limit {limit}"
        );
    }
    // Bad input is a clear 400.
    for q in [
        "limit=0",
        "limit=-2",
        "limit=x",
        "continuation_token=zz",
        "limit=1&start=2",
    ] {
        let (status, _, _, body) = get(&peer.url(&format!("/api/v4/xballs?{q}"))).await;
        assert_eq!(status, 400, "{q}: {body}");
        assert!(body["detail"].as_str().is_some(), "{q}: {body}");
    }
    // A key written between pages after the cursor is listed; one before it is not
    // listed twice.
    let (_, _, next, first) = get(&peer.url("/api/v4/xballs?limit=10")).await;
    assert_eq!(keys(first.as_array().unwrap()), expected[..10]);
    peer.put("a", "k000x", b"early").await;
    peer.put("b", "k999", b"late").await;
    let token = next.expect("more pages");
    let mut rest = Vec::new();
    let mut token = Some(token);
    while let Some(t) = token {
        let (_, _, next, body) =
            get(&peer.url(&format!("/api/v4/xballs?limit=10&continuation_token={t}"))).await;
        rest.extend(keys(body.as_array().unwrap()));
        token = next;
    }
    let mut want: Vec<String> = expected[10..].to_vec();
    want.push("b/k999".into());
    assert_eq!(rest, want);
    // The other listings page too, with their own shapes.
    let (_, truncated, _, stats) = get(&peer.url("/api/v4/stats?limit=5")).await;
    assert_eq!(truncated.as_deref(), Some("true"));
    assert_eq!(stats.as_object().unwrap().len(), 7, "{stats}");
    assert_eq!(stats["balls"].as_array().unwrap().len(), 5);
    let (_, _, _, sizes) = get(&peer.url("/api/v4/xballs/size?limit=3")).await;
    assert_eq!(sizes[0], json!(["a", "k000", 4]));
    let (_, _, _, state) = get(&peer.url("/api/v4/peers/state?limit=2")).await;
    assert_eq!(state["balls"].as_object().unwrap().len(), 2, "{state}");
    let (_, _, _, state) = get(&peer.url("/api/v4/peers/state")).await;
    assert_eq!(state["balls"].as_object().unwrap().len(), 62);
    // PM3 pages carry their token in the body too, and list tombstones in their range.
    tombstone(&peer, "a", "k005", "18000000000000000000.9").await;
    let (_, _, _, page) = get(&peer.url("/api/v4/buckets/a/metadata?limit=7")).await;
    assert_eq!(page["is_truncated"], true, "{page}");
    assert_eq!(page["balls"].as_array().unwrap().len(), 6, "{page}");
    assert!(page["tombstones"]["k005"].is_string(), "{page}");
    let token = page["next_continuation_token"]
        .as_str()
        .unwrap()
        .to_string();
    let (_, _, _, page2) = get(&peer.url(&format!(
        "/api/v4/buckets/a/metadata?limit=1000&continuation_token={token}"
    )))
    .await;
    assert_eq!(page2["is_truncated"], false);
    assert_eq!(page2["balls"][0]["key"], "k006");
    let (_, _, _, whole) = get(&peer.url("/api/v4/buckets/a/metadata")).await;
    assert_eq!(
        whole["balls"].as_array().unwrap().len(),
        30,
        "k005 deleted, k000x added"
    );
    assert!(whole["tombstones"]["k005"].is_string());
    assert!(whole["versions"]["k000x"].is_string());
}

/// Metadata of chunk `i` of `n` of ball `ball` (chunk keys `ball_i`).
fn chunk_body(bucket: &str, ball: &str, i: usize, n: usize) -> Value {
    let key = format!("{ball}_{i}");
    let mut body = metadata_body(bucket, &key, key.as_bytes());
    body["ball_id"] = json!(ball);
    body["tags"] = json!({"index": i.to_string(), "num_chunks": n.to_string(), "full_checksum": format!("{ball}-put")});
    body
}

#[tokio::test]
async fn router_pages_merge_peers_and_hide_tombstoned_keys() {
    let a = TestPeer::start().await;
    let b = TestPeer::start().await;
    let bucket = "rb";
    let mut live = BTreeSet::new();
    // Peer a holds k000..k039 (version 10); peer b deleted every fifth later (version 20)
    // and holds k040..k049 of its own, and a newer copy of k001 (version 30).
    for i in 0..40 {
        let key = format!("k{i:03}");
        put_versioned(
            &a,
            bucket,
            "10.1",
            metadata_body(bucket, &key, key.as_bytes()),
            key.as_bytes(),
        )
        .await;
        if i % 5 == 0 {
            tombstone(&b, bucket, &key, "20.2").await;
        } else {
            live.insert(key);
        }
    }
    for i in 40..50 {
        let key = format!("k{i:03}");
        put_versioned(
            &b,
            bucket,
            "10.2",
            metadata_body(bucket, &key, key.as_bytes()),
            key.as_bytes(),
        )
        .await;
        live.insert(key);
    }
    put_versioned(
        &b,
        bucket,
        "30.2",
        metadata_body(bucket, "k001", b"newer"),
        b"newer",
    )
    .await;
    // A complete ball of 3 chunks split across peers and pages, and an interrupted one.
    for i in 0..3 {
        let peer = if i == 1 { &b } else { &a };
        let key = format!("m_{i}");
        put_versioned(
            peer,
            bucket,
            "10.1",
            chunk_body(bucket, "m", i, 3),
            key.as_bytes(),
        )
        .await;
        live.insert(format!("m_{i}"));
    }
    for i in 0..2 {
        let key = format!("n_{i}");
        put_versioned(
            &a,
            bucket,
            "10.1",
            chunk_body(bucket, "n", i, 3),
            key.as_bytes(),
        )
        .await;
    }
    let router = TestRouter::start(router_config(vec![
        address("peer-a", a.addr()),
        address("peer-b", b.addr()),
    ]))
    .await;
    router.wait_peers_up(2).await;
    let want: Vec<String> = live.iter().cloned().collect();
    let path = format!("/api/v4/buckets/{bucket}/metadata");
    let (status, _, _, whole) = get(&router.url(&path)).await;
    assert_eq!(status, 200, "{whole}");
    let listed = |v: &Value| -> Vec<String> {
        v["balls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["key"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(listed(&whole), want, "the whole listing");
    assert_eq!(whole["is_truncated"], false);
    for limit in [1usize, 2, 3, 7, 1000] {
        let mut got = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..200 {
            let mut url = router.url(&format!("{path}?limit={limit}"));
            if let Some(t) = &token {
                url.push_str(&format!("&continuation_token={t}"));
            }
            let (status, truncated, next, page) = get(&url).await;
            assert_eq!(status, 200, "{page}");
            assert!(listed(&page).len() <= limit);
            assert_eq!(
                page["is_truncated"] == true,
                truncated.as_deref() == Some("true")
            );
            assert_eq!(page["next_continuation_token"].as_str(), next.as_deref());
            got.extend(listed(&page));
            match next {
                Some(n) => token = Some(n),
                None => break,
            }
        }
        assert_eq!(
            got, want,
            "limit {limit}: no key lost, none twice, none deleted"
        );
    }
    let newer = whole["balls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["key"] == "k001")
        .cloned()
        .unwrap();
    assert_eq!(newer["size"], 5, "the newest copy of k001");
    for q in ["limit=0", "continuation_token=nope"] {
        let (status, _, _, body) = get(&router.url(&format!("{path}?{q}"))).await;
        assert_eq!(status, 400, "{q}: {body}");
    }
}

#[tokio::test]
async fn sdk_lists_every_ball_past_one_page() {
    let peer = TestPeer::start().await;
    let n = 1_050;
    let bucket = "many";
    let puts = (0..n).map(|i| {
        let peer = &peer;
        async move {
            let key = format!("ball-{i:05}");
            peer.put(bucket, &key, key.as_bytes()).await;
        }
    });
    // A few at a time: the peer batches their commits.
    futures::stream::iter(puts)
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;
    let router = TestRouter::start(router_config(vec![address("peer-0", peer.addr())])).await;
    router.wait_peers_up(1).await;
    let sdk = mictlanx::Client::builder()
        .routers_uri(&format!(
            "mictlanx://router-0@{}/?protocol=http",
            router.base.trim_start_matches("http://")
        ))
        .build()
        .expect("SDK client");
    let listing = tokio::time::timeout(Duration::from_secs(60), sdk.bucket(bucket))
        .await
        .expect("in time")
        .expect("the bucket lists");
    assert_eq!(listing.len(), n);
    let first = sdk.bucket_page(bucket, 1000, None).await.expect("a page");
    assert_eq!(first.balls.len(), 1000);
    assert!(first.is_truncated);
    let second = sdk
        .bucket_page(bucket, 5000, first.next_continuation_token.as_deref())
        .await
        .expect("the second page");
    assert_eq!(second.balls.len(), n - 1000);
    assert!(!second.is_truncated);
    // Without paging (the Python client), the router streams the whole bucket.
    let (status, truncated, _, whole) =
        get(&router.url(&format!("/api/v4/buckets/{bucket}/metadata"))).await;
    assert_eq!((status, truncated.as_deref()), (200, Some("false")));
    assert_eq!(whole["balls"].as_array().map(Vec::len), Some(n));
    assert_eq!(whole["peers_ids"], json!(["peer-0"]));
}

use futures::StreamExt;
