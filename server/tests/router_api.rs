//! The router's API end to end, against real peers on loopback: the MictlanX router test
//! lifecycle (server reference §8, client reference §13 "router"), placement, listings,
//! deletes, the peers controller, and route precedence.

#[path = "support/router_cluster.rs"]
mod cluster;

use cluster::{
    detail, metadata_body, random_bytes, router_config, JsonRequest, JsonResponse, TestPeer,
    TestRouter,
};
use mictlanx::model::{
    BallMetadata, DeletedByBallIdResponse, DeletedByKeyResponse, GetMetadataResponse, PeerStats,
    PeersListResponse, PeersStatsResponse, RouterBucketMetadata, SizeByKey,
};
use serde_json::{json, Value};

async fn cluster(n: usize) -> (Vec<TestPeer>, TestRouter) {
    let mut peers = Vec::new();
    for i in 0..n {
        peers.push(TestPeer::start(&format!("peer-{i}")).await);
    }
    let router =
        TestRouter::start(router_config(peers.iter().map(TestPeer::address).collect())).await;
    router.wait_peers_up(n as u64).await;
    (peers, router)
}

#[tokio::test]
async fn lifecycle_of_the_reference_router_test() {
    let (_peers, r) = cluster(2).await;

    // Stats is an object of exactly-seven-field PeerStats.
    let resp = r.get("/api/v4/peers/stats").await;
    assert_eq!(resp.status(), 200);
    let raw: Value = resp.json_body().await.unwrap();
    let stats = raw.as_object().expect("stats is an object");
    assert_eq!(stats.len(), 2);
    for v in stats.values() {
        assert_eq!(v.as_object().unwrap().len(), 7, "{v}");
        serde_json::from_value::<PeerStats>(v.clone()).unwrap();
    }
    let resp = r.get("/api/v4/peers/stats?start=0&end=10").await;
    assert_eq!(resp.status(), 200);
    resp.json_body::<PeersStatsResponse>().await.unwrap();

    // A dummy peer is accepted (204) and listed, unavailable.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let resp = r
        .http
        .post(r.url("/api/v4/xpeers"))
        .json_body(&json!([{"protocol":"http","peer_id":"dummy-peer","hostname":"127.0.0.1","port":dead.port()}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    let peers: PeersListResponse = r.get("/api/v4/peers").await.json_body().await.unwrap();
    assert_eq!(peers.available.len(), 2);
    assert!(peers
        .available
        .iter()
        .chain(&peers.unavailable)
        .any(|p| p.peer_id == "dummy-peer"));

    // 1 MB of random data: metadata, chunked upload, metadata, download, listing, delete.
    let data = random_bytes(1_000_000);
    let meta = r.put_metadata("lifecycle", "blob", &data, 1).await;
    assert_eq!(meta.tasks_ids.len(), 1);
    assert_eq!(meta.tasks_ids[0].len(), 21);
    assert_eq!(meta.replicas.len(), 1);
    assert!(
        meta.replicas[0].starts_with("peer-"),
        "never the dummy: {:?}",
        meta.replicas
    );
    assert_eq!(
        (meta.key.as_str(), meta.bucket_id.as_str()),
        ("blob", "lifecycle")
    );
    let resp = r.upload_raw(&meta.tasks_ids[0], data.clone()).await;
    assert_eq!(resp.status(), 200);
    let put: mictlanx::model::RouterPutChunkedResponse = resp.json_body().await.unwrap();
    assert_eq!(put.peer_ids, meta.replicas);
    assert_eq!(put.combined_key, "lifecycle@blob");
    assert_eq!(put.size, 1_000_000);
    // The group is gone once stored.
    let resp = r.upload_raw(&meta.tasks_ids[0], data.clone()).await;
    assert_eq!(resp.status(), 404);
    assert_eq!(
        detail(resp).await,
        format!("Task({}) not found", meta.tasks_ids[0])
    );

    let resp = r.get("/api/v4/buckets/lifecycle/metadata/blob").await;
    assert_eq!(resp.status(), 200);
    let m: GetMetadataResponse = resp.json_body().await.unwrap();
    assert_eq!(m.metadata.size, 1_000_000);
    assert_eq!(m.metadata.checksum, mictlanx::checksum::sha256_hex(&data));
    assert!(
        m.metadata.tags.contains_key("updated_at"),
        "tags come back unchanged"
    );

    let resp = r.get("/api/v4/buckets/lifecycle/blob").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "1000000");
    assert_eq!(resp.headers()["content-type"], "application/octet-stream");
    // The replica's metadata is passed on with the bytes, the same R4 gives.
    let sent =
        mictlanx::model::metadata_header::decode(resp.headers()["x-mictlanx-metadata"].as_bytes())
            .expect("the metadata header decodes");
    assert_eq!(sent, m.metadata);
    assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());

    let listing: RouterBucketMetadata = r
        .get("/api/v4/buckets/lifecycle/metadata")
        .await
        .json_body()
        .await
        .unwrap();
    assert_eq!(listing.bucket_id, "lifecycle");
    assert_eq!(listing.peers_ids.len(), 2);
    assert_eq!(listing.balls.iter().filter(|b| b.key == "blob").count(), 1);

    let sizes: Vec<SizeByKey> = r
        .get("/api/v4/buckets/lifecycle/blob/size")
        .await
        .json_body()
        .await
        .unwrap();
    assert_eq!(sizes.len(), 1);
    assert_eq!(sizes[0].size, 1_000_000);

    let resp = r
        .http
        .delete(r.url("/api/v4/buckets/lifecycle/blob"))
        .header("Force", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let del: DeletedByKeyResponse = resp.json_body().await.unwrap();
    assert_eq!((del.n_deletes, del.key.as_str()), (1, "blob"));
    let resp = r.get("/api/v4/buckets/lifecycle/metadata/blob").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(detail(resp).await, "No metadata found for lifecycle@blob");
    let resp = r.get("/api/v4/buckets/lifecycle/blob").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(detail(resp).await, "lifecycle@blob not found");
    let resp = r
        .http
        .delete(r.url("/api/v4/buckets/lifecycle/blob"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // Direct multipart upload (R3): 201, empty body; the Python test's Peer-Id is ignored.
    let small = random_bytes(5000);
    let meta = r.put_metadata("lifecycle", "multi", &small, 1).await;
    let form = reqwest::multipart::Form::new().part(
        "data",
        reqwest::multipart::Part::bytes(small.clone()).file_name("multi"),
    );
    let resp = r
        .http
        .post(r.url(&format!("/api/v4/buckets/data/{}", meta.tasks_ids[0])))
        .header("Peer-Id", "whatever")
        .multipart(form)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    assert!(resp.bytes().await.unwrap().is_empty());
    assert_eq!(
        r.get_bytes("lifecycle", "multi").await,
        (200, small.clone())
    );

    // Missing key: with one of its places (the dummy peer, never up) not answering, the
    // router cannot tell absent from unreachable, so it says 503 and names the peer
    // (issue 14: unknown is not absent). Disable.
    let resp = r.get("/api/v4/buckets/lifecycle/metadata/nope").await;
    assert_eq!(resp.status(), 503);
    let text = detail(resp).await.to_string();
    assert!(text.contains("dummy-peer is down"), "{text}");
    let resp = r
        .http
        .post(r.url("/api/v4/buckets/lifecycle/multi/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = r
        .http
        .post(r.url("/api/v4/buckets/lifecycle/nope/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503, "the dummy peer may hold it");
    let m: GetMetadataResponse = r
        .get("/api/v4/buckets/lifecycle/metadata/multi")
        .await
        .json_body()
        .await
        .unwrap();
    assert!(m.metadata.is_disabled);

    // /health and /metrics.
    let h = r.health().await;
    assert_eq!(
        (h["status"].as_str(), h["peers_total"].as_u64()),
        (Some("ok"), Some(3))
    );
    let text = r.get("/metrics").await.text().await.unwrap();
    assert!(text.contains("mictlanx_router_peers_up 2"), "{text}");
    assert!(text.contains("mictlanx_router_bytes_in_total"));
    assert!(text.contains("route=\"/api/v4/buckets/{bucket_id}/{key}\""));
}

#[tokio::test]
async fn router_chunked_ball_listing_merge_range_attachment_and_update() {
    let (_peers, r) = cluster(2).await;
    let whole = random_bytes(30_000);
    let full = mictlanx::checksum::sha256_hex(&whole);
    for (i, part) in whole.chunks(10_000).enumerate() {
        let key = format!("photo_{i}");
        let tags = json!({"index": i.to_string(), "num_chunks": "3", "full_checksum": full, "fullname": "photo.png"});
        let mut body = metadata_body("balls", &key, part, 2, tags);
        body["ball_id"] = json!("photo");
        let resp = r
            .http
            .post(r.url("/api/v4/buckets/balls/metadata"))
            .json_body(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let meta: mictlanx::model::PutMetadataResponse = resp.json_body().await.unwrap();
        assert_eq!(meta.replicas.len(), 2);
        let resp = r.upload_raw(&meta.tasks_ids[0], part.to_vec()).await;
        assert_eq!(resp.status(), 200);
    }

    // R6: one record per chunk although every chunk has two replicas, in index order.
    let resp = r.get("/api/v4/buckets/balls/metadata/photo/chunks").await;
    assert_eq!(resp.status(), 200);
    let ball: BallMetadata = resp.json_body().await.unwrap();
    let keys: Vec<&str> = ball.chunks.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["photo_0", "photo_1", "photo_2"]);
    assert_eq!((ball.size_bytes, ball.size.as_str()), (30_000, "30 KB"));
    assert_eq!(ball.checksum, full);
    let resp = r.get("/api/v4/buckets/balls/metadata/nothing/chunks").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(detail(resp).await, "balls@nothing not found");

    // R7 without duplicates.
    let listing: RouterBucketMetadata = r
        .get("/api/v4/buckets/balls/metadata")
        .await
        .json_body()
        .await
        .unwrap();
    assert_eq!(listing.balls.len(), 3);

    // B10: the chunks concatenated; attachment named from the tags.
    let resp = r
        .get("/api/v4/buckets/balls/photo/merge?attachment=true")
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"photo.png\""
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), whole.as_slice());
    let resp = r.get("/api/v4/buckets/balls/nothing/merge").await;
    assert_eq!(resp.status(), 404);

    // R5 with a range, a content type and an attachment name.
    let resp = r
        .http
        .get(r.url(
            "/api/v4/buckets/balls/photo_1?content_type=image/png&attachment=true&filename=p1.png",
        ))
        .header("Range", "bytes=10-19")
        .header("Force-Get", "true")
        .header("Chunk-Size", "1MB")
        .header("X-Unknown", "whatever")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 206);
    assert_eq!(resp.headers()["content-type"], "image/png");
    assert_eq!(
        resp.headers()["content-disposition"],
        "attachment; filename=\"p1.png\""
    );
    assert_eq!(resp.bytes().await.unwrap().as_ref(), &whole[10_010..10_020]);
    let resp = r
        .http
        .get(r.url("/api/v4/buckets/balls/photo_1"))
        .header("Range", "bytes=20000-")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 416);

    // R11: new tags, same bytes.
    let mut body = metadata_body(
        "balls",
        "photo_2",
        &whole[20_000..],
        1,
        json!({"index": "2", "label": "new"}),
    );
    body["ball_id"] = json!("photo");
    let resp = r
        .http
        .post(r.url("/api/v4/u/buckets/balls/photo_2"))
        .json_body(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{:?}", resp.text().await);
    let m: GetMetadataResponse = r
        .get("/api/v4/buckets/balls/metadata/photo_2")
        .await
        .json_body()
        .await
        .unwrap();
    assert_eq!(
        m.metadata.tags.get("label").map(String::as_str),
        Some("new")
    );
    assert_eq!(
        r.get_bytes("balls", "photo_2").await,
        (200, whole[20_000..].to_vec())
    );
    // Different bytes cannot be an update of metadata.
    let body = metadata_body("balls", "photo_2", b"other", 1, json!({}));
    let resp = r
        .http
        .post(r.url("/api/v4/u/buckets/balls/photo_2"))
        .json_body(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 409);
    let body = metadata_body("balls", "nope", b"other", 1, json!({}));
    let resp = r
        .http
        .post(r.url("/api/v4/u/buckets/balls/nope"))
        .json_body(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);

    // R9: every replica of every chunk; then nothing left, still 200.
    let resp = r
        .http
        .delete(r.url("/api/v4/buckets/balls/bid/photo"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let del: DeletedByBallIdResponse = resp.json_body().await.unwrap();
    assert_eq!((del.n_deletes, del.ball_id.as_str()), (6, "photo"));
    let del: DeletedByBallIdResponse = r
        .http
        .delete(r.url("/api/v4/buckets/balls/bid/photo"))
        .send()
        .await
        .unwrap()
        .json_body()
        .await
        .unwrap();
    assert_eq!(del.n_deletes, 0);
    let resp = r.get("/api/v4/buckets/balls/photo_0").await;
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn router_placement_spreads_replicas_and_refuses_too_many() {
    let (peers, r) = cluster(3).await;
    let data = random_bytes(4096);
    let two = r.put("place", "two", &data, 2).await;
    assert_eq!(two.peer_ids.len(), 2);
    assert_ne!(two.peer_ids[0], two.peer_ids[1]);
    // Each chosen peer really holds the bytes; the third does not.
    for p in &peers {
        let resp = r
            .http
            .get(p.url("/api/v4/buckets/place/two"))
            .send()
            .await
            .unwrap();
        let holds = two.peer_ids.contains(&p.id);
        assert_eq!(resp.status() == 200, holds, "{}", p.id);
        if holds {
            assert_eq!(resp.bytes().await.unwrap().as_ref(), data.as_slice());
        }
    }

    // rf=4 with 3 peers: the 666 answer.
    let resp = r
        .put_metadata_raw("place", "four", &data, 4, json!({}))
        .await;
    assert_eq!(resp.status(), 404);
    let d = detail(resp).await;
    assert_eq!(d["code"], 666);
    assert_eq!(d["msg"], "No available peers.");
    assert_eq!(
        (d["bucket_id"].as_str(), d["key"].as_str()),
        (Some("place"), Some("four"))
    );
    // A key already on 2 of 3 peers cannot get 4 replicas either; its holders are listed.
    let resp = r
        .put_metadata_raw("place", "two", &data, 4, json!({}))
        .await;
    let d = detail(resp).await;
    assert_eq!(d["code"], 666);
    assert_eq!(d["replicas"].as_array().unwrap().len(), 2);

    // An empty object is an object.
    let empty = r.put("place", "empty", b"", 2).await;
    assert_eq!(empty.size, 0);
    let resp = r.get("/api/v4/buckets/place/empty").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "0");
    assert!(resp.bytes().await.unwrap().is_empty());
    let listing: RouterBucketMetadata = r
        .get("/api/v4/buckets/place/metadata")
        .await
        .json_body()
        .await
        .unwrap();
    assert!(listing
        .balls
        .iter()
        .any(|b| b.key == "empty" && b.size == 0));

    // rf=0 is a bad request; rf=3 uses every peer.
    let resp = r
        .put_metadata_raw("place", "zero", &data, 0, json!({}))
        .await;
    assert_eq!(resp.status(), 400);
    let put = r.put("place", "three", &data, 3).await;
    assert_eq!(put.peer_ids.len(), 3);

    // Putting the same bytes again (a client retry) lands on the same replicas.
    let mut again = r.put("place", "two", &data, 2).await.peer_ids;
    let mut first = two.peer_ids.clone();
    again.sort();
    first.sort();
    assert_eq!(again, first);
    // Different bytes for an existing key conflict, unless Update: 1.
    let other = random_bytes(100);
    let resp = r
        .put_metadata_raw("place", "two", &other, 2, json!({}))
        .await;
    assert_eq!(resp.status(), 409);
    let resp = r
        .http
        .post(r.url("/api/v4/buckets/place/metadata"))
        .header("Update", "1")
        .json_body(&metadata_body("place", "two", &other, 2, json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let meta: mictlanx::model::PutMetadataResponse = resp.json_body().await.unwrap();
    let resp = r.upload_raw(&meta.tasks_ids[0], other.clone()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(r.get_bytes("place", "two").await, (200, other));
}

#[tokio::test]
async fn router_peers_controller() {
    let (_peers, r) = cluster(1).await;
    let post = |body: Value| r.http.post(r.url("/api/v4/peers")).json_body(&body).send();
    let ok = json!({"protocol":"http","peer_id":"extra","hostname":"localhost","port":1});
    assert_eq!(post(ok).await.unwrap().status(), 204);
    let resp = post(json!({"protocol":"http","hostname":"localhost","port":1}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(detail(resp).await.as_str().unwrap().contains("peer_id"));
    let resp = post(json!({"protocol":"gopher","peer_id":"x","hostname":"h","port":1}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = post(json!({"protocol":"http","peer_id":"x","hostname":"h","port":70000}))
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let resp = r
        .http
        .post(r.url("/api/v4/xpeers"))
        .json_body(&json!([]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = r
        .http
        .post(r.url("/api/v4/xpeers"))
        .json_body(&json!([{"protocol":"http","peer_id":"a","hostname":"h","port":1},{"protocol":"http","peer_id":"b","hostname":"h","port":-2}]))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let list: PeersListResponse = r.get("/api/v4/peers").await.json_body().await.unwrap();
    assert!(
        !list
            .available
            .iter()
            .chain(&list.unavailable)
            .any(|p| p.peer_id == "a"),
        "all or nothing"
    );

    let resp = r
        .http
        .delete(r.url("/api/v4/peers/extra"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = r
        .http
        .delete(r.url("/api/v4/peers/never-known"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = r
        .http
        .delete(r.url("/api/v4/xpeers?peers=a&peers=b"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    let resp = r.http.delete(r.url("/api/v4/xpeers")).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let list: PeersListResponse = r.get("/api/v4/peers").await.json_body().await.unwrap();
    assert_eq!(list.available.len() + list.unavailable.len(), 1);

    let resp = r
        .http
        .post(r.url("/api/v4/peers/stats"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert!(detail(resp).await.is_string());
    let resp = r.get("/api/v4/nowhere").await;
    assert_eq!(resp.status(), 404);
    assert!(detail(resp).await.is_string());
}

#[tokio::test]
async fn router_route_precedence_follows_the_original() {
    let (_peers, r) = cluster(1).await;
    // `GET /buckets/data/{k}` is a read of bucket `data`, not a 405 from the upload route.
    let resp = r.get("/api/v4/buckets/data/somekey").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(detail(resp).await, "data@somekey not found");
    // The listing of bucket `data` and a delete in it reach R7 and R8, which ask the peers;
    // a peer whose own routes shadow `buckets/data/...` answers those with its 405, passed
    // through (the router's own 405 says "Method Not Allowed").
    let resp = r.get("/api/v4/buckets/data/metadata").await;
    reached_the_peers(resp, 200).await;
    let resp = r
        .http
        .delete(r.url("/api/v4/buckets/data/somekey"))
        .send()
        .await
        .unwrap();
    reached_the_peers(resp, 404).await;
    let resp = r.get("/api/v4/buckets/data/somekey/size").await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json_body::<Vec<SizeByKey>>().await.unwrap(), vec![]);
    let resp = r.get("/api/v4/buckets/data/metadata/somekey").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(detail(resp).await, "No metadata found for data@somekey");
    // `POST /buckets/data/metadata` is a put-metadata into bucket `data`, which the peers
    // refuse with 400 (their keys could not be addressed on a peer; a peer may also read
    // the same path as its own multipart upload). Either way the router passes the 400.
    let data = b"abc";
    let resp = r
        .http
        .post(r.url("/api/v4/buckets/data/metadata"))
        .json_body(&metadata_body("data", "k", data, 1, json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(detail(resp).await.is_string());
    // Keys named like route segments.
    let resp = r.get("/api/v4/buckets/b/metadata/size").await;
    assert_eq!(resp.status(), 200, "sizes of key `metadata`");
    let resp = r
        .http
        .post(r.url("/api/v4/buckets/b/metadata/disable"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404, "{:?}", resp.text().await);
    assert_eq!(detail(resp).await, "b@metadata not found");
    let resp = r
        .http
        .delete(r.url("/api/v4/buckets/b/metadata"))
        .send()
        .await
        .unwrap();
    reached_the_peers(resp, 404).await;
    let resp = r.get("/api/v4/buckets/b/bid").await;
    assert_eq!(resp.status(), 404);
    assert_eq!(detail(resp).await, "b@bid not found");
    let resp = r.get("/api/v4/buckets/b/bid/size").await;
    assert_eq!(resp.status(), 200);
    let resp = r
        .http
        .post(r.url("/api/v4/buckets/b/metadata/other"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

async fn reached_the_peers(resp: reqwest::Response, expected: u16) {
    let status = resp.status().as_u16();
    if status == 405 {
        assert_ne!(
            detail(resp).await,
            "Method Not Allowed",
            "the router's own 405"
        );
    } else {
        assert_eq!(status, expected, "{:?}", resp.text().await);
    }
}
