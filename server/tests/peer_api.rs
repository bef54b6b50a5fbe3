//! The peer's HTTP API, driven over loopback with reqwest and raw TCP.

#[path = "support/peer_harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;
use serde_json::{json, Value};
use tokio::io::AsyncWriteExt;

fn detail(v: &Value) -> &str {
    v["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("no string detail in {v}"))
}

#[tokio::test]
async fn full_lifecycle() {
    let p = TestPeer::start().await;
    let data = pattern(100_000);
    let mut body = metadata_body("b1", "ball_0", &data);
    body["ball_id"] = json!("ball");
    body["tags"]["color"] = json!("blue");
    body["content_type"] = json!("image/png");

    // PM1: the key exists (pending) from the moment its metadata is accepted.
    let (status, meta) = p
        .put_metadata_json(
            "b1",
            body,
            &[("Task-Id", "group-42"), ("X-Unknown", "ignored")],
        )
        .await;
    assert_eq!(status, 200, "{meta}");
    assert_eq!(meta["task_id"], "group-42");
    assert_eq!(meta["key"], "ball_0");
    assert_eq!(meta["node_id"], "peer-0");
    assert!(meta["service_time"].is_u64());

    assert_eq!(p.key_state("b1", "ball_0").await, "pending");
    let (status, _) = p.get_json("/api/v4/buckets/b1/metadata/ball_0").await;
    assert_eq!(status, 200);
    let (status, body) = p.get_json("/api/v4/buckets/b1/ball_0").await;
    assert_eq!(
        (status, detail(&body)),
        (404, "b1@ball_0 has no data yet (upload pending)")
    );
    let (_, size) = p.get_json("/api/v4/buckets/b1/ball_0/size").await;
    assert_eq!(size["size"], 0);

    // PD2.
    let (status, up) = p.upload_chunked("group-42", data.clone()).await;
    assert_eq!(status, 200, "{up}");
    assert_eq!(up["combined_key"], "b1@ball_0");
    assert_eq!(up["size"], 100_000);
    assert_eq!(up["node_id"], "peer-0");
    assert!(up["throughput"].is_f64() && up["service_time"].is_f64());

    // PM2: committed, tags unchanged.
    assert_eq!(p.key_state("b1", "ball_0").await, "committed");
    let (_, got) = p.get_json("/api/v4/buckets/b1/metadata/ball_0").await;
    assert_eq!(got["peer_id"], "peer-0");
    assert_eq!(got["local_peer_id"], "peer-0");
    assert_eq!(got["metadata"]["tags"]["color"], "blue");
    assert_eq!(got["metadata"]["tags"]["index"], "0");
    assert_eq!(got["metadata"]["size"], 100_000);
    assert_eq!(got["metadata"]["is_disabled"], false);

    // PD3: exactly the bytes, with the headers routers and caches rely on.
    let resp = p
        .http
        .get(p.url("/api/v4/buckets/b1/ball_0"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let sha = mictlanx::checksum::sha256_hex(&data);
    let h = resp.headers().clone();
    assert_eq!(h["content-type"], "image/png");
    assert_eq!(h["content-length"], "100000");
    assert_eq!(h["etag"], format!("\"{sha}\"").as_str());
    assert_eq!(h["x-mictlanx-sha256"], sha.as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    // The metadata comes along, as PM2 gives it (readers then need no PM2 call).
    let sent = mictlanx::model::metadata_header::decode(h["x-mictlanx-metadata"].as_bytes())
        .expect("the metadata header decodes");
    assert_eq!(serde_json::to_value(&sent).unwrap(), got["metadata"]);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data);
    // A range answer describes a part: no metadata header.
    let part = p
        .http
        .get(p.url("/api/v4/buckets/b1/ball_0"))
        .header("range", "bytes=0-9")
        .send()
        .await
        .unwrap();
    assert_eq!(part.status(), 206);
    assert!(part.headers().get("x-mictlanx-metadata").is_none());

    // PM6, PM4, PM5, PM3.
    let (_, size) = p.get_json("/api/v4/buckets/b1/ball_0/size").await;
    assert_eq!(
        size,
        json!({"bucket_id":"b1","key":"ball_0","peer_id":"peer-0","size":100000})
    );
    p.put("b1", "ball_1", b"second chunk").await;
    let (_, group) = p.get_json("/api/v4/buckets/b1/metadata/ball/group").await;
    assert_eq!(group["bucket_id"], "b1");
    assert_eq!(group["ball_id"], "ball");
    assert_eq!(
        group["balls"].as_array().unwrap().len(),
        1,
        "ball_1 is its own ball"
    );
    assert_eq!(group["size"], 100_000);
    let (_, chunks) = p.get_json("/api/v4/buckets/b1/metadata/ball/chunks").await;
    assert_eq!(chunks.as_array().unwrap().len(), 1);
    let (status, empty) = p
        .get_json("/api/v4/buckets/b1/metadata/nothing/group")
        .await;
    assert_eq!((status, empty["balls"].as_array().unwrap().len()), (200, 0));
    let (_, listing) = p.get_json("/api/v4/buckets/b1/metadata").await;
    assert_eq!(listing["peer_id"], "peer-0");
    assert_eq!(listing["balls"].as_array().unwrap().len(), 2);

    // Stats.
    let (_, ufs) = p.get_json("/api/v4/stats/ufs").await;
    assert_eq!(ufs["used_disk"], 100_012);
    assert_eq!(ufs["total_disk"], 10_000_000_000u64);
    // Routers leave the SHA-256 check of uploads to a peer that says it makes it.
    assert_eq!(ufs["verifies_uploads"], true);
    let (_, stats) = p.get_json("/api/v4/stats?start=0&end=1").await;
    let fields: Vec<&String> = stats.as_object().unwrap().keys().collect();
    assert_eq!(
        fields,
        [
            "available_disk",
            "balls",
            "disk_uf",
            "peer_id",
            "peers",
            "total_disk",
            "used_disk"
        ],
        "exactly the seven PeerStats fields"
    );
    assert_eq!(stats["balls"].as_array().unwrap().len(), 1);
    let (_, len) = p.get_json("/api/v4/balls/len").await;
    assert_eq!(len, json!({"len": 2}));
    let (_, xballs) = p.get_json("/api/v4/xballs?start=&end=").await;
    assert_eq!(
        xballs[0],
        json!({"bucket_id":"b1","key":"ball_0","size":100000})
    );
    let (_, sizes) = p.get_json("/api/v4/xballs/size?start=1").await;
    assert_eq!(sizes, json!([["b1", "ball_1", 12]]));
    let (_, state) = p.get_json("/api/v4/peers/state").await;
    assert_eq!(
        state["balls"]["b1@ball_0"],
        json!({"locations":["peer-0"],"size":100000})
    );

    // PM7: disabled keys keep their metadata but are not served.
    let resp = p
        .http
        .post(p.url("/api/v4/buckets/b1/ball_0/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let (status, body) = p.get_json("/api/v4/buckets/b1/ball_0").await;
    assert_eq!((status, detail(&body)), (404, "b1@ball_0 is disabled"));
    let (_, listing) = p.get_json("/api/v4/buckets/b1/metadata").await;
    assert_eq!(listing["balls"][0]["is_disabled"], true);
    let resp = p
        .http
        .post(p.url("/api/v4/buckets/b1/nope/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // PD4.
    let resp = p
        .http
        .delete(p.url("/api/v4/buckets/b1/ball_0"))
        .header("Force", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["n-deletes"], "1");
    let (_, body) = json_of(resp).await;
    assert_eq!(body, json!({"n_deletes":1,"key":"ball_0"}));
    let resp = p
        .http
        .delete(p.url("/api/v4/buckets/b1/ball_0"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    assert_eq!(resp.headers()["n-deletes"], "0");
    let (_, body) = json_of(resp).await;
    assert_eq!(detail(&body), "b1@ball_0 not found");
    let (status, _) = p.get_json("/api/v4/buckets/b1/metadata/ball_0").await;
    assert_eq!(status, 404);

    // PD5.
    let resp = p
        .http
        .delete(p.url("/api/v4/buckets/b1/bid/ball_1"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["n-deletes"], "1");
    let (status, body) = json_of(resp).await;
    assert_eq!(
        (status, body),
        (200, json!({"n_deletes":1,"ball_id":"ball_1"}))
    );
    let resp = p
        .http
        .delete(p.url("/api/v4/buckets/b1/bid/ball_1"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            resp.status().as_u16(),
            resp.headers()["n-deletes"].to_str().unwrap()
        ),
        (200, "0")
    );

    // Health and metrics.
    let (status, health) = p.get_json("/health").await;
    assert_eq!(
        (
            status,
            &health["status"],
            &health["peer_id"],
            &health["state"]
        ),
        (200, &json!("ok"), &json!("peer-0"), &json!("ok")),
        "{health}"
    );
    let text = p.metrics_text().await;
    for needle in [
        "mictlanx_peer_disk_used_bytes 0",
        "mictlanx_peer_disk_capacity_bytes 10000000000",
        "mictlanx_peer_objects 0",
        "mictlanx_peer_pending_uploads 0",
        "mictlanx_peer_bytes_in_total 100012",
        "route=\"/api/v4/buckets/data/{task_id}/chunked\"",
    ] {
        assert!(text.contains(needle), "metrics lack {needle}:\n{text}");
    }
}

#[tokio::test]
async fn multipart_upload_of_more_than_two_megabytes() {
    let p = TestPeer::start().await;
    let data = pattern(3_000_000);
    let (status, meta) = p.put_metadata("b", "big", &data).await;
    assert_eq!(status, 200);
    let task = meta["task_id"].as_str().unwrap();
    let form = reqwest::multipart::Form::new()
        .text("note", "skipped")
        .part(
            "data",
            reqwest::multipart::Part::bytes(data.clone())
                .file_name("big")
                .mime_str("application/octet-stream")
                .unwrap(),
        );
    let resp = p
        .http
        .post(p.url(&format!("/api/v4/buckets/data/{task}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(p.get_bytes("b", "big").await, (200, data));

    // No `data` field.
    let (_, meta) = p.put_metadata("b", "other", b"x").await;
    let task = meta["task_id"].as_str().unwrap();
    let form = reqwest::multipart::Form::new().text("file", "x");
    let resp = p
        .http
        .post(p.url(&format!("/api/v4/buckets/data/{task}")))
        .multipart(form)
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(
        (status, detail(&body)),
        (400, "multipart body has no field named data")
    );
    // Not multipart at all.
    let resp = p
        .http
        .post(p.url(&format!("/api/v4/buckets/data/{task}")))
        .body("x")
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn chunked_upload_of_more_than_two_megabytes_streams() {
    let p = TestPeer::start().await;
    let data = pattern(5_000_000);
    p.put("b", "big", &data).await;
    assert_eq!(p.get_bytes("b", "big").await, (200, data));
}

#[tokio::test]
async fn range_requests() {
    let p = TestPeer::start().await;
    let data = pattern(1000);
    p.put("b", "k", &data).await;
    let get = |range: &'static str| {
        let req = p
            .http
            .get(p.url("/api/v4/buckets/b/k"))
            .header("Range", range);
        async move { req.send().await.unwrap() }
    };
    let resp = get("bytes=10-19").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-range"], "bytes 10-19/1000");
    assert_eq!(resp.headers()["content-length"], "10");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data[10..20]);

    let resp = get("bytes=-5").await;
    assert_eq!(resp.headers()["content-range"], "bytes 995-999/1000");
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data[995..]);

    let resp = get("bytes=990-").await;
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.bytes().await.unwrap().to_vec(), data[990..]);

    let resp = get("bytes=1000-").await;
    assert_eq!(resp.status(), 416);
    assert_eq!(resp.headers()["content-range"], "bytes */1000");
    let (_, body) = json_of(resp).await;
    assert!(body["detail"].is_string());

    // Not understood: ignored, the whole object.
    let resp = get("bytes=0-1,5-6").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap().len(), 1000);
}

#[tokio::test]
async fn restart_keeps_committed_and_pending_keys() {
    let mut p = TestPeer::start().await;
    let data = pattern(10_000);
    p.put("b", "k", &data).await;
    let (_, meta) = p.put_metadata("b", "waiting", b"later").await;
    let task = meta["task_id"].as_str().unwrap().to_string();

    p.restart().await;

    assert_eq!(p.get_bytes("b", "k").await, (200, data));
    let (status, body) = p.get_json("/api/v4/buckets/b/metadata/waiting").await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = p.upload_chunked(&task, b"later".to_vec()).await;
    assert_eq!(status, 200);
    assert_eq!(p.get_bytes("b", "waiting").await, (200, b"later".to_vec()));
    let (_, ufs) = p.get_json("/api/v4/stats/ufs").await;
    assert_eq!(ufs["used_disk"], 10_005);
}

#[tokio::test]
async fn hostile_names_are_refused_with_json_400() {
    let p = TestPeer::start().await;
    p.put("b", "k", b"x").await;
    let long = "a".repeat(10_000);
    let paths = [
        "/api/v4/buckets/%2E%2E/k".to_string(),
        "/api/v4/buckets/b/%2E%2E".to_string(),
        "/api/v4/buckets/b/a%00b".to_string(),
        "/api/v4/buckets/b/a%0Ab".to_string(),
        "/api/v4/buckets/a%2Fb/k".to_string(),
        "/api/v4/buckets/My%20Bucket/k".to_string(),
        "/api/v4/buckets/%00/k".to_string(),
        format!("/api/v4/buckets/b/{long}"),
        "/api/v4/buckets/b/metadata/%2E%2E".to_string(),
        "/api/v4/buckets/b/metadata/%2E/group".to_string(),
        "/api/v4/buckets/b/%09/size".to_string(),
        "/api/v4/buckets/b/%FF".to_string(),
    ];
    for path in &paths {
        let resp = raw_get(p.addr(), path).await;
        assert_eq!(
            resp.status,
            400,
            "{path}: {}",
            String::from_utf8_lossy(&resp.body)
        );
        assert!(resp.json()["detail"].is_string(), "{path}: not JSON");
    }
    let resp = raw_request(
        p.addr(),
        b"DELETE /api/v4/buckets/b/%2E%2E HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(resp.status, 400);

    // Hostile ids in the put body.
    for (field, value) in [
        ("key", ".."),
        ("key", "a\nb"),
        ("ball_id", ".."),
        ("bucket_id", "a/b"),
        ("bucket_id", "a\u{0}b"),
    ] {
        let mut body = metadata_body("b", "fine", b"x");
        body[field] = json!(value);
        let (status, resp) = p.put_metadata_json("b", body, &[]).await;
        assert_eq!(status, 400, "{field}={value:?}: {resp}");
        assert!(resp["detail"].is_string());
    }
    let mut body = metadata_body("b", "fine", b"x");
    body["key"] = json!(long);
    let (status, _) = p.put_metadata_json("b", body, &[]).await;
    assert_eq!(status, 400);

    // Names are kept as given: `ball.txt` and the Python client's `balltxt` are two objects.
    p.put("b", "ball.txt", b"as given").await;
    p.put("b", "balltxt", b"sanitised").await;
    assert_eq!(
        p.get_bytes("b", "ball.txt").await,
        (200, b"as given".to_vec())
    );
    assert_eq!(
        p.get_bytes("b", "balltxt").await,
        (200, b"sanitised".to_vec())
    );
    // Nothing escaped the data directory.
    assert!(files_under(p.data_dir())
        .iter()
        .all(|f| f.starts_with(p.data_dir())));
}

#[tokio::test]
async fn malformed_requests_get_json_errors() {
    let p = TestPeer::start().await;
    let post = |body: &'static str, ct: Option<&'static str>| {
        let mut req = p.http.post(p.url("/api/v4/buckets/b/metadata")).body(body);
        if let Some(ct) = ct {
            req = req.header("content-type", ct);
        }
        async move { json_of(req.send().await.unwrap()).await }
    };
    let (status, body) = post("{not json", Some("application/json")).await;
    assert_eq!(status, 400, "{body}");
    assert!(body["detail"].is_string());
    let (status, body) = post(r#"{"key":"k"}"#, Some("application/json")).await;
    assert_eq!(status, 400, "missing fields: {body}");
    assert!(body["detail"].is_string());
    let (status, body) = post(
        r#"{"key":"k","size":-1,"checksum":""}"#,
        Some("application/json"),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(r#"{"key":"k","size":1,"checksum":""}"#, Some("text/plain")).await;
    assert!(status == 415 || status == 400, "{status}");
    assert!(body["detail"].is_string());
    let (status, body) = post(r#"{"key":"k","size":1,"checksum":""}"#, None).await;
    assert!(status == 415 || status == 400, "{status}");
    assert!(body["detail"].is_string());

    // Bucket mismatch between path and body.
    let (status, body) = p
        .put_metadata_json("b", metadata_body("other", "k", b"x"), &[])
        .await;
    assert_eq!(
        (status, detail(&body)),
        (400, "Bucket ID mismatch: b != other")
    );
    // An empty body bucket is the path's.
    let mut m = metadata_body("", "k", b"x");
    m["bucket_id"] = json!("");
    let (status, _) = p.put_metadata_json("b", m, &[]).await;
    assert_eq!(status, 200);

    // Bad paging parameters, unknown routes, unknown task ids.
    let (status, body) = p.get_json("/api/v4/stats?start=abc").await;
    assert_eq!(status, 400);
    assert!(body["detail"].is_string());
    let (status, body) = p.get_json("/api/v4/nope").await;
    assert_eq!(status, 404);
    assert!(body["detail"].is_string());
    let (status, body) = p.upload_chunked("no-such-task", b"x".to_vec()).await;
    assert_eq!(
        (status, detail(&body)),
        (404, "Task(no-such-task) not found")
    );
    let (status, _) = p.upload_chunked(&"x".repeat(300), b"x".to_vec()).await;
    assert_eq!(status, 404);
    let resp = p
        .http
        .put(p.url("/api/v4/buckets/b/k"))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 405);
    assert!(body["detail"].is_string());
}

#[tokio::test]
async fn names_the_urls_cannot_address_are_refused() {
    let p = TestPeer::start().await;
    for key in ["metadata", "bid"] {
        let (status, body) = p.put_metadata("b", key, b"x").await;
        assert_eq!(status, 400, "{key}: {body}");
        assert!(detail(&body).contains("reserved"));
    }
    let (status, body) = p.put_metadata("bucket", "data", b"x").await;
    assert_eq!(status, 200, "{body}");
    // Keys that only look like route words work end to end.
    for key in ["size", "disable", "chunked", "group", "data"] {
        p.put("b", key, key.as_bytes()).await;
        assert_eq!(p.get_bytes("b", key).await, (200, key.as_bytes().to_vec()));
        let (_, size) = p.get_json(&format!("/api/v4/buckets/b/{key}/size")).await;
        assert_eq!(size["size"], key.len(), "{key}");
        let (status, got) = p
            .get_json(&format!("/api/v4/buckets/b/metadata/{key}"))
            .await;
        assert_eq!((status, &got["metadata"]["key"]), (200, &json!(key)));
    }
}

#[tokio::test]
async fn refused_uploads_leave_nothing_and_can_be_retried() {
    let p = TestPeer::start().await;
    let data = pattern(1000);
    let (_, meta) = p.put_metadata("b", "k", &data).await;
    let task = meta["task_id"].as_str().unwrap().to_string();

    // Declared 1000, sent 10.
    let (status, body) = p.upload_chunked(&task, data[..10].to_vec()).await;
    assert_eq!(status, 400);
    assert!(
        detail(&body).starts_with("body shorter than declared size 1000"),
        "{body}"
    );
    // Longer than declared.
    let mut longer = data.clone();
    longer.push(0);
    let (status, body) = p.upload_chunked(&task, longer).await;
    assert_eq!(
        (status, detail(&body)),
        (400, "body longer than declared size 1000")
    );
    // Same length, other bytes.
    let mut wrong = data.clone();
    wrong[500] ^= 1;
    let (status, body) = p.upload_chunked(&task, wrong).await;
    assert_eq!(status, 400);
    assert!(
        detail(&body).starts_with("Checksum mismatch: declared "),
        "{body}"
    );

    assert!(p.tmp_files().is_empty());
    assert!(files_under(&p.data_dir().join("objects")).is_empty());
    assert_eq!(p.key_state("b", "k").await, "pending");

    let (status, _) = p.upload_chunked(&task, data.clone()).await;
    assert_eq!(status, 200);
    assert_eq!(p.get_bytes("b", "k").await, (200, data));
}

#[tokio::test]
async fn a_client_that_drops_mid_body_leaves_nothing() {
    let p = TestPeer::start().await;
    let data = pattern(200_000);
    let (_, meta) = p.put_metadata("b", "k", &data).await;
    let task = meta["task_id"].as_str().unwrap().to_string();

    let s = start_raw_upload(&p, &task, &data[..50_000]).await;
    // Wait until the peer is writing the upload, then vanish.
    eventually("the upload reaches tmp/", || !p.tmp_files().is_empty()).await;
    drop(s);
    eventually("the temp file is removed", || p.tmp_files().is_empty()).await;

    assert_eq!(p.key_state("b", "k").await, "pending");
    assert_eq!(p.get_json("/api/v4/buckets/b/k").await.0, 404);
    // The same task can be retried (once the aborted upload released it).
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let (status, body) = p.upload_chunked(&task, data.clone()).await;
        if status == 200 {
            break;
        }
        assert_eq!(status, 409, "{body}");
        assert!(tokio::time::Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(p.get_bytes("b", "k").await, (200, data));
}

#[tokio::test]
async fn duplicates_updates_and_capacity() {
    let p = TestPeer::start_with(|c| c.capacity = 1000).await;
    p.put("b", "k", b"first").await;

    // Same content again: accepted (a harmless new pending task).
    let (status, _) = p.put_metadata("b", "k", b"first").await;
    assert_eq!(status, 200);
    // Other content without Update: 409.
    let (status, body) = p.put_metadata("b", "k", b"other").await;
    assert_eq!(
        (status, detail(&body)),
        (409, "b@k already exists; send Update: 1 to replace it")
    );
    // Metadata-only update: same bytes + Update: 1 → task "0", tags replaced.
    let mut m = metadata_body("b", "k", b"first");
    m["tags"] = json!({"v": "2"});
    let (status, body) = p.put_metadata_json("b", m, &[("Update", "1")]).await;
    assert_eq!((status, &body["task_id"]), (200, &json!("0")));
    let (_, got) = p.get_json("/api/v4/buckets/b/metadata/k").await;
    assert_eq!(got["metadata"]["tags"], json!({"v": "2"}));
    // Overwrite with Update: 1.
    let (status, body) = p
        .put_metadata_json("b", metadata_body("b", "k", b"second"), &[("Update", "1")])
        .await;
    assert_eq!(status, 200);
    let task = body["task_id"].as_str().unwrap().to_string();
    assert_ne!(task, "0");
    assert_eq!(
        p.get_bytes("b", "k").await,
        (200, b"first".to_vec()),
        "old until commit"
    );
    assert_eq!(p.upload_chunked(&task, b"second".to_vec()).await.0, 200);
    assert_eq!(p.get_bytes("b", "k").await, (200, b"second".to_vec()));

    // Capacity: 6 used of 1000.
    let big = vec![0u8; 995];
    let (status, body) = p.put_metadata("b", "big", &big).await;
    assert_eq!(
        (status, detail(&body)),
        (507, "peer peer-0 has no space: needs 995 bytes, 994 free")
    );
    let (status, _) = p.put_metadata("b", "fits", &big[..994]).await;
    assert_eq!(status, 200);

    // Flushing tasks releases reservations.
    let resp = p.http.delete(p.url("/api/v4/tasks")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let (_, ufs) = p.get_json("/api/v4/stats/ufs").await;
    assert_eq!(ufs["used_disk"], 6);
}

#[tokio::test]
async fn label_checksums_are_kept_unverified() {
    let p = TestPeer::start().await;
    let mut m = metadata_body("b", "k", b"hello");
    m["checksum"] = json!("abc");
    let (status, meta) = p.put_metadata_json("b", m, &[]).await;
    assert_eq!(status, 200);
    let (status, _) = p
        .upload_chunked(meta["task_id"].as_str().unwrap(), b"hello".to_vec())
        .await;
    assert_eq!(status, 200);
    let (_, got) = p.get_json("/api/v4/buckets/b/metadata/k").await;
    assert_eq!(got["metadata"]["checksum"], "abc");
    let resp = p
        .http
        .get(p.url("/api/v4/buckets/b/k"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        resp.headers()["x-mictlanx-sha256"],
        mictlanx::checksum::sha256_hex(b"hello").as_str()
    );
}

#[tokio::test]
async fn corrupt_objects_answer_500_and_are_quarantined() {
    // A file to damage: small objects would otherwise live in the database.
    let p = TestPeer::start_with(|c| c.inline_limit = 0).await;
    p.put("b", "k", b"precious").await;
    let file = files_under(&p.data_dir().join("objects")).remove(0);
    std::fs::write(&file, b"Precious").unwrap();
    let (status, body) = p.get_json("/api/v4/buckets/b/k").await;
    assert_eq!(
        (status, detail(&body)),
        (500, "stored bytes of b@k are corrupt")
    );
    assert!(files_under(&p.data_dir().join("objects"))
        .iter()
        .all(|f| f.to_string_lossy().ends_with(".corrupted")));
    assert_eq!(p.get_json("/api/v4/buckets/b/k").await.0, 404);
}

#[tokio::test]
async fn nodes_handshake_is_remembered() {
    let p = TestPeer::start().await;
    let node = json!({"id":"peer-1","disk":100,"memory":10,"ip_addr":"10.0.0.2","port":25001,
                      "weight":1.0,"used_disk":0,"used_memory":0});
    let resp = p
        .http
        .post(p.url("/api/v4/nodes"))
        .header("content-type", "application/json")
        .body(node.to_string())
        .send()
        .await
        .unwrap();
    let (status, echoed) = json_of(resp).await;
    assert_eq!((status, echoed), (200, node));
    let (_, stats) = p.get_json("/api/v4/stats").await;
    assert_eq!(stats["peers"], json!(["peer-1"]));
    let (_, state) = p.get_json("/api/v4/peers/state").await;
    assert_eq!(
        state["nodes"],
        json!([{"node_id":"peer-1","ip_addr":"10.0.0.2","port":25001}])
    );
}

#[tokio::test]
async fn large_corrupt_objects_cut_the_connection() {
    let p = TestPeer::start_with(|c| c.verify_before_send_limit = 1000).await;
    let data = pattern(2_000_000);
    p.put("b", "big", &data).await;
    assert_eq!(p.get_bytes("b", "big").await, (200, data.clone()));

    let file = files_under(&p.data_dir().join("objects")).remove(0);
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&file, bytes).unwrap();

    // Too big to verify before sending: the status is already out when the hash fails, so
    // the only honest signal left is to cut the body short of a clean end.
    let resp = p
        .http
        .get(p.url("/api/v4/buckets/b/big"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.bytes().await.is_err(),
        "a corrupt stream must not end cleanly"
    );
    let objects = p.data_dir().join("objects");
    eventually("the object is quarantined", || {
        files_under(&objects)
            .iter()
            .all(|f| f.to_string_lossy().ends_with(".corrupted"))
    })
    .await;
    assert_eq!(p.get_json("/api/v4/buckets/b/big").await.0, 404);
}

#[tokio::test]
async fn a_stalled_upload_is_dropped_after_the_configured_idle_timeout() {
    let p = TestPeer::start_with(|c| c.upload_idle_timeout = Duration::from_millis(200)).await;
    let data = pattern(100_000);
    let (_, meta) = p.put_metadata("b", "idle", &data).await;
    let task = meta["task_id"].as_str().unwrap().to_string();

    let mut s = start_raw_upload(&p, &task, &data[..10_000]).await;
    // Then nothing: the peer answers 400 on its own once the idle timeout passes.
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        let mut buf = [0u8; 4096];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut s, &mut buf)
                .await
                .unwrap_or(0);
            if n == 0 {
                break;
            }
            answer.extend_from_slice(&buf[..n]);
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                break;
            }
        }
    })
    .await;
    assert!(read.is_ok(), "the peer never gave up on the stalled upload");
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 400"), "{text}");
    eventually("the temp file is removed", || p.tmp_files().is_empty()).await;
    // The key is still pending: the client may retry the upload.
    assert_eq!(p.key_state("b", "idle").await, "pending");
}

/// Opens a raw connection and sends the head of a chunked upload to `task` plus one piece,
/// then leaves the body unfinished (what a crashed or stalled client does).
async fn start_raw_upload(p: &TestPeer, task: &str, piece: &[u8]) -> tokio::net::TcpStream {
    let mut s = tokio::net::TcpStream::connect(p.addr()).await.unwrap();
    let head = format!(
        "POST /api/v4/buckets/data/{task}/chunked HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(format!("{:x}\r\n", piece.len()).as_bytes())
        .await
        .unwrap();
    s.write_all(piece).await.unwrap();
    s.write_all(b"\r\n").await.unwrap();
    s.flush().await.unwrap();
    s
}
