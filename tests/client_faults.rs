//! The client against a scripted fake router on loopback: retries, failover, the retry
//! budget, integrity checks, idempotent re-puts, cleanup and cancellation.

mod support;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mictlanx::checksum::sha256_hex;
use mictlanx::{Client, Error, GetOptions, LbAlgorithm, Progress, PutOptions, RetryConfig};
use support::fake_router::{FakeRouter, Faults};
use support::{closed_port, Response, ScriptedServer};
use tokio_util::sync::CancellationToken;

/// Fast retries, no heartbeat: tests decide everything.
fn quick_retry(max_attempts: u32) -> RetryConfig {
    RetryConfig {
        max_attempts,
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(4),
        jitter: false,
        ..RetryConfig::default()
    }
}

fn client(uri: &str) -> Client {
    Client::builder()
        .routers_uri(uri)
        .client_id("fault-tests")
        .retry(quick_retry(4))
        .heartbeat_interval(Duration::ZERO)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

fn faults(
    f: impl Fn(&support::Request, usize) -> Option<Response> + Send + Sync + 'static,
) -> Option<Faults> {
    Some(Arc::new(f))
}

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn is_r4(req: &support::Request, key: &str) -> bool {
    req.method == "GET" && req.path.contains("/metadata/") && req.path.ends_with(key)
}

fn is_r5(req: &support::Request, key: &str) -> bool {
    req.method == "GET" && !req.path.contains("/metadata") && req.path.ends_with(&format!("/{key}"))
}

#[tokio::test]
async fn a_503_then_success_is_retried() {
    let router = FakeRouter::start(
        1,
        faults(|req, nth| (is_r4(req, "k_0") && nth == 1).then(|| Response::detail(503, "busy"))),
    )
    .await;
    let c = client(&router.uri());
    c.put_bytes("b", "k", "hello", PutOptions::default())
        .await
        .unwrap();
    let got = c.metadata("b", "k_0").await.unwrap();
    assert_eq!(got.metadata.size, 5);
    assert_eq!(
        router.server.count("GET", "/api/v4/buckets/b/metadata/k_0"),
        2
    );
    assert_eq!(c.metrics().routers[0].retries, 1);
}

#[tokio::test]
async fn a_400_is_not_retried() {
    let router = FakeRouter::start(
        1,
        faults(|req, _| is_r4(req, "k_0").then(|| Response::detail(400, "bad"))),
    )
    .await;
    let c = client(&router.uri());
    let err = c.metadata("b", "k_0").await.unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err}");
    assert_eq!(
        router.server.count("GET", "/api/v4/buckets/b/metadata/k_0"),
        1
    );
}

#[tokio::test]
async fn router_404_reraised_as_500_is_not_found_without_retry() {
    let router = FakeRouter::start(
        1,
        faults(|req, _| {
            is_r4(req, "k_0").then(|| Response::detail(500, "404: No metadata found for b@k_0"))
        }),
    )
    .await;
    let c = client(&router.uri());
    assert!(matches!(
        c.metadata("b", "k_0").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(router.server.api_requests(), 1);
}

#[tokio::test]
async fn a_refusing_router_fails_over_to_the_next() {
    let router = FakeRouter::start(1, None).await;
    let dead = format!("mictlanx://dead@127.0.0.1:{}", closed_port());
    let uri = format!(
        "{},fake@127.0.0.1:{}/?protocol=http",
        dead,
        router.server.port()
    );
    let c = client(&uri);
    c.put_bytes("b", "k", "hello", PutOptions::default())
        .await
        .unwrap();
    for _ in 0..6 {
        assert_eq!(c.metadata("b", "k_0").await.unwrap().metadata.size, 5);
    }
    let m = c.metrics();
    assert!(!m.routers[0].healthy, "{m:?}");
    assert!(m.routers[1].healthy);
    // The dead router was tried once, then avoided: the put's second attempt and the six
    // reads went to the live one.
    assert_eq!(m.routers[0].requests, 1);
    assert_eq!(m.routers[1].requests, 7);
}

#[tokio::test]
async fn all_routers_down_is_unavailable() {
    let uri = format!(
        "mictlanx://a@127.0.0.1:{},b@127.0.0.1:{}/?protocol=http",
        closed_port(),
        closed_port()
    );
    let c = client(&uri);
    let err = c.metadata("b", "k").await.unwrap_err();
    assert!(matches!(err, Error::Unavailable { .. }), "{err}");
    assert!(err.to_string().contains("a, b"), "{err}");
}

#[tokio::test]
async fn the_retry_budget_stops_a_storm() {
    let server = ScriptedServer::start(|_| Response::detail(503, "down")).await;
    let c = Client::builder()
        .routers_uri(&server.uri("r0"))
        .retry(quick_retry(10))
        .heartbeat_interval(Duration::ZERO)
        .build()
        .unwrap();
    let calls = 50;
    let results = futures::future::join_all((0..calls).map(|i| {
        let c = c.clone();
        async move { c.metadata("b", &format!("k{i}")).await }
    }))
    .await;
    assert!(results
        .iter()
        .all(|r| matches!(r, Err(Error::Unavailable { .. }))));
    let attempts = server.api_requests();
    // Without a budget: 50 × 10 = 500. With it: 50 first attempts, 10 retries of the
    // per-second floor (twice if the test straddles a second) and 50 × 0.2 = 10 deposited.
    assert!(attempts > calls, "{attempts}");
    assert!(attempts <= calls + 10 + 20 + 2, "{attempts}");
    assert!(c.metrics().retries_denied > 0);
}

#[tokio::test]
async fn round_trip_with_tags_and_chunking() {
    let router = FakeRouter::start(2, None).await;
    let c = client(&router.uri());
    let bytes = data(25_000, 1);
    let opts = PutOptions::default()
        .with_chunk_size(10_000)
        .with_replication_factor(2)
        .with_tag("extension", "bin")
        .with_tag("num_chunks", "99")
        .with_tag("index", "7");
    let put = c
        .put_bytes("My_Bucket", "dir/ball.v1", bytes.clone(), opts)
        .await
        .unwrap();
    assert_eq!(
        (put.bucket_id.as_str(), put.ball_id.as_str()),
        ("My_Bucket", "dir/ball.v1")
    );
    assert_eq!((put.size, put.num_chunks), (25_000, 2));
    assert_eq!(put.full_checksum, sha256_hex(&bytes));
    assert_eq!(put.replicas.len(), 2);
    assert_eq!(router.keys("My_Bucket"), ["dir/ball.v1_0", "dir/ball.v1_1"]);
    // In-memory rule: the 5 000-byte tail joins the previous chunk. System tags win.
    let m1 = router.metadata("My_Bucket", "dir/ball.v1_1").unwrap();
    assert_eq!(m1.size, 15_000);
    assert_eq!(m1.tag("index"), Some("1"));
    assert_eq!(m1.tag("num_chunks"), Some("2"));
    assert_eq!(m1.tag("chunk_size"), Some("15000"));
    assert_eq!(m1.tag("group_id"), Some("dir/ball.v1"));
    assert_eq!(m1.tag("extension"), Some("bin"));
    assert_eq!(m1.full_checksum(), Some(put.full_checksum.as_str()));
    assert_eq!(m1.checksum, sha256_hex(&bytes[10_000..]));
    assert_eq!(m1.producer_id, "fault-tests");
    assert!(m1.updated_at() > 0);
    // The same ids, exactly as given, on the way back.
    let got = c.get_bytes("My_Bucket", "dir/ball.v1").await.unwrap();
    assert_eq!(got.data, bytes);
    assert_eq!(got.chunks.len(), 2);
    let (chunk, meta) = c.get_chunk("My_Bucket", "dir/ball.v1", 1).await.unwrap();
    assert_eq!((chunk.len(), meta.key.as_str()), (15_000, "dir/ball.v1_1"));
    let metrics = c.metrics();
    assert_eq!(metrics.bytes_up, 25_000);
    assert_eq!(metrics.bytes_down, 25_000 + 15_000);
}

#[tokio::test]
async fn a_corrupt_replica_is_retried_and_never_returned() {
    let router = FakeRouter::start(
        1,
        faults(|req, nth| {
            (is_r5(req, "k_1") && nth == 1).then(|| Response::bytes(200, vec![0u8; 10]))
        }),
    )
    .await;
    let c = client(&router.uri());
    let bytes = data(30, 2);
    c.put_bytes(
        "b",
        "k",
        bytes.clone(),
        PutOptions::default().with_chunk_size(10),
    )
    .await
    .unwrap();
    assert_eq!(c.get_bytes("b", "k").await.unwrap().data, bytes);
    assert_eq!(router.server.count("GET", "/api/v4/buckets/b/k_1"), 2);

    let always = FakeRouter::start(
        1,
        faults(|req, _| is_r5(req, "k_1").then(|| Response::bytes(200, vec![0u8; 10]))),
    )
    .await;
    let c = client(&always.uri());
    c.put_bytes("b", "k", bytes, PutOptions::default().with_chunk_size(10))
        .await
        .unwrap();
    let err = c.get_bytes("b", "k").await.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert_eq!(always.server.count("GET", "/api/v4/buckets/b/k_1"), 4);
}

#[tokio::test]
async fn short_and_long_bodies_are_errors() {
    for body in [vec![1u8; 9], vec![1u8; 11]] {
        let router = FakeRouter::start(
            1,
            faults(move |req, _| is_r5(req, "k_0").then(|| Response::bytes(200, body.clone()))),
        )
        .await;
        let c = client(&router.uri());
        c.put_bytes("b", "k", vec![1u8; 10], PutOptions::default())
            .await
            .unwrap();
        assert!(matches!(
            c.get_bytes("b", "k").await,
            Err(Error::Integrity { .. })
        ));
    }
}

#[tokio::test]
async fn a_wrong_full_checksum_fails_the_stream_at_its_end() {
    let router = FakeRouter::start(1, None).await;
    let c = client(&router.uri());
    let bytes = data(30, 3);
    c.put_bytes(
        "b",
        "k",
        bytes.clone(),
        PutOptions::default().with_chunk_size(10),
    )
    .await
    .unwrap();
    // Every chunk is sound, but chunk 0 declares another whole-ball checksum.
    {
        let mut store = router.store.lock().unwrap();
        let meta = store.metadata.get_mut(&("b".into(), "k_0".into())).unwrap();
        meta.tags
            .insert("full_checksum".into(), sha256_hex(b"other"));
    }
    let items: Vec<Result<Bytes, Error>> = c.get_stream("b", "k").collect().await;
    assert_eq!(items.len(), 4);
    assert!(items[..3].iter().all(Result::is_ok));
    assert!(matches!(items[3], Err(Error::Integrity { .. })));
    assert!(matches!(
        c.get_bytes("b", "k").await,
        Err(Error::Integrity { .. })
    ));
    // And no file is left behind by get_to_file.
    let dir = tempfile::tempdir().unwrap();
    let err = c
        .get_to_file("b", "k", dir.path().join("out.bin"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // A single sound chunk is the whole ball: its own checksum is not taken for the
    // whole-ball one unless the two agree.
    c.put_bytes("b", "one", b"12345".to_vec(), PutOptions::default())
        .await
        .unwrap();
    assert!(c.get_bytes("b", "one").await.is_ok());
    {
        let mut store = router.store.lock().unwrap();
        let meta = store
            .metadata
            .get_mut(&("b".into(), "one_0".into()))
            .unwrap();
        meta.tags
            .insert("full_checksum".into(), sha256_hex(b"other"));
    }
    assert!(matches!(
        c.get_bytes("b", "one").await,
        Err(Error::Integrity { .. })
    ));
}

#[tokio::test]
async fn not_enough_peers_is_max_availability_and_uploads_nothing() {
    let router = FakeRouter::start(2, None).await;
    let c = client(&router.uri());
    let err = c
        .put_bytes(
            "b",
            "k",
            "x",
            PutOptions::default().with_replication_factor(3),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MaxAvailabilityReached { .. }), "{err}");
    assert_eq!(router.server.count("POST", "/api/v4/buckets/data/"), 0);
    // Not retried: one R1, one R4 (is it already stored?).
    assert_eq!(router.server.count("POST", "/api/v4/buckets/b/metadata"), 1);
}

#[tokio::test]
async fn reputting_identical_content_is_idempotent_and_different_content_is_refused() {
    let router = FakeRouter::start(1, None).await;
    let c = client(&router.uri());
    let bytes = data(30, 4);
    let opts = || PutOptions::default().with_chunk_size(10);
    c.put_bytes("b", "k", bytes.clone(), opts()).await.unwrap();
    let again = c.put_bytes("b", "k", bytes.clone(), opts()).await.unwrap();
    assert_eq!(again.already_stored, 3);
    assert_eq!(router.server.count("POST", "/api/v4/buckets/data/"), 3);
    // Other content under the same ball: refused, and the stored ball is left alone.
    let err = c
        .put_bytes("b", "k", data(30, 5), opts())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MaxAvailabilityReached { .. }), "{err}");
    assert_eq!(c.get_bytes("b", "k").await.unwrap().data, bytes);
}

#[tokio::test]
async fn a_failed_put_deletes_what_it_stored() {
    let router = FakeRouter::start(
        1,
        faults(|req, _| {
            let put_meta_k2 = req.method == "POST"
                && req.path == "/api/v4/buckets/b/metadata"
                && String::from_utf8_lossy(&req.body).contains("\"key\":\"k_2\"");
            put_meta_k2.then(|| Response::detail(502, "peer gone"))
        }),
    )
    .await;
    let c = client(&router.uri());
    let err = c
        .put_bytes(
            "b",
            "k",
            data(50, 6),
            PutOptions::default().with_chunk_size(10),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Http { status: 502, .. }), "{err}");
    assert!(router.keys("b").is_empty(), "{:?}", router.keys("b"));
    assert_eq!(router.server.count("DELETE", "/api/v4/buckets/b/bid/k"), 1);
}

#[tokio::test]
async fn a_failed_data_upload_is_cleaned_before_its_retry() {
    let uploads = AtomicU64::new(0);
    let router = FakeRouter::start(
        1,
        faults(move |req, _| {
            let upload = req.method == "POST" && req.path.contains("/data/");
            (upload && uploads.fetch_add(1, Ordering::SeqCst) == 0)
                .then(|| Response::detail(503, "hiccup"))
        }),
    )
    .await;
    let c = client(&router.uri());
    let put = c
        .put_bytes("b", "k", "abc", PutOptions::default())
        .await
        .unwrap();
    assert_eq!(put.already_stored, 0);
    assert_eq!(router.server.count("DELETE", "/api/v4/buckets/b/k_0"), 1);
    assert_eq!(c.get_bytes("b", "k").await.unwrap().data, "abc");
}

#[tokio::test]
async fn cancelling_a_put_stops_it_and_cleans_up() {
    let router = FakeRouter::start(1, None).await;
    let c = client(&router.uri());
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    let seen = Arc::new(AtomicU64::new(0));
    let s = Arc::clone(&seen);
    let opts = PutOptions::default()
        .with_chunk_size(10)
        .with_max_concurrency(1)
        .with_cancel(cancel)
        .with_progress(Arc::new(move |p: Progress| {
            s.store(p.chunks_done, Ordering::SeqCst);
            if p.chunks_done == 2 {
                trigger.cancel();
            }
        }));
    let err = c.put_bytes("b", "k", data(100, 7), opts).await.unwrap_err();
    assert!(err.is_cancelled(), "{err}");
    assert_eq!(seen.load(Ordering::SeqCst), 2);
    assert!(router.keys("b").is_empty());
}

#[tokio::test]
async fn progress_of_a_get_counts_every_chunk() {
    let router = FakeRouter::start(1, None).await;
    let c = client(&router.uri());
    c.put_bytes(
        "b",
        "k",
        data(95, 8),
        PutOptions::default().with_chunk_size(10),
    )
    .await
    .unwrap();
    let last = Arc::new(std::sync::Mutex::new(Progress::default()));
    let l = Arc::clone(&last);
    let opts = GetOptions::default().with_progress(Arc::new(move |p| *l.lock().unwrap() = p));
    c.get_bytes_opts("b", "k", opts).await.unwrap();
    let p = *last.lock().unwrap();
    assert_eq!((p.chunks_done, p.chunks_total, p.bytes_done), (9, 9, 95));
}

#[tokio::test]
async fn hostile_ids_are_refused_before_any_request() {
    let router = FakeRouter::start(1, None).await;
    let c = client(&router.uri());
    let too_long = "x".repeat(1025);
    for (bucket, ball) in [
        ("b", ".."),
        ("..", "k"),
        ("b", ""),
        ("b", "a\0b"),
        ("b", "line\nbreak"),
        ("b/c", "k"),
        ("My Bucket", "k"),
        ("b", too_long.as_str()),
    ] {
        let put = c.put_bytes(bucket, ball, "x", PutOptions::default()).await;
        assert!(
            matches!(put, Err(Error::InvalidId(_))),
            "{bucket:?}/{ball:?}"
        );
        assert!(matches!(
            c.get_bytes(bucket, ball).await,
            Err(Error::InvalidId(_))
        ));
        assert!(matches!(
            c.delete(bucket, ball).await,
            Err(Error::InvalidId(_))
        ));
        let items: Vec<_> = c.get_stream(bucket, ball).collect().await;
        assert!(matches!(items.as_slice(), [Err(Error::InvalidId(_))]));
    }
    assert!(matches!(
        c.metadata("b", &"k".repeat(1100)).await,
        Err(Error::InvalidId(_))
    ));
    assert_eq!(router.server.requests().len(), 0);
}

#[tokio::test]
async fn delete_falls_back_to_key_by_key_without_r9() {
    let router = FakeRouter::start(
        1,
        faults(|req, _| {
            (req.method == "DELETE" && req.path.contains("/bid/"))
                .then(|| Response::detail(404, "Not Found"))
        }),
    )
    .await;
    let c = client(&router.uri());
    c.put_bytes(
        "b",
        "k",
        data(30, 9),
        PutOptions::default().with_chunk_size(10),
    )
    .await
    .unwrap();
    let deleted = c.delete("b", "k").await.unwrap();
    assert_eq!(deleted.n_deletes, 3);
    assert!(router.keys("b").is_empty());
    assert!(matches!(
        c.get_bytes("b", "k").await,
        Err(Error::NotFound { .. })
    ));
    // A missing ball deletes nothing, successfully.
    assert_eq!(c.delete("b", "k").await.unwrap().n_deletes, 0);
}

#[tokio::test]
async fn listing_deduplicates_replicas_and_delete_bucket_empties_it() {
    let router = FakeRouter::start(3, None).await;
    let c = client(&router.uri());
    for (i, ball) in ["a", "b", "c"].iter().enumerate() {
        c.put_bytes(
            "bk",
            ball,
            data(25, i as u8),
            PutOptions::default().with_chunk_size(10),
        )
        .await
        .unwrap();
    }
    let bucket = c.bucket("bk").await.unwrap();
    assert_eq!(bucket.len(), 3);
    assert!(bucket
        .iter()
        .all(|b| b.chunks.len() == 2 && b.size == 25 && b.is_complete()));
    let ball = c.ball("bk", "b").await.unwrap();
    assert_eq!(ball.size, 25);
    let r = c.delete_bucket("bk").await.unwrap();
    assert_eq!((r.deleted, r.failed, r.total), (3, 0, 3));
    assert!(c.bucket("bk").await.unwrap().is_empty());
    assert!(matches!(
        c.ball("bk", "b").await,
        Err(Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn disable_and_lb_choice_do_not_matter_for_correctness() {
    for lb in LbAlgorithm::ALL {
        let a = FakeRouter::start(1, None).await;
        let c = Client::builder()
            .routers_uri(&a.uri())
            .lb(lb)
            .retry(quick_retry(2))
            .heartbeat_interval(Duration::ZERO)
            .build()
            .unwrap();
        c.put_bytes("b", "k", "abc", PutOptions::default())
            .await
            .unwrap();
        c.disable("b", "k_0").await.unwrap();
        assert!(a.metadata("b", "k_0").unwrap().is_disabled, "{lb}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_put_cleans_up_in_the_background() {
    // The announcement of chunk 2 is held until the test releases it: the put is dropped
    // while it waits, at a known point (chunks 0 and 1 stored), whatever the machine's load.
    let held = Arc::new(tokio::sync::Notify::new());
    let cleaned = Arc::new(tokio::sync::Notify::new());
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Mutex::new(released);
    let (h, cl) = (Arc::clone(&held), Arc::clone(&cleaned));
    let router = FakeRouter::start(
        1,
        faults(move |req, _| {
            let announce_k2 = req.method == "POST"
                && req.path == "/api/v4/buckets/b/metadata"
                && String::from_utf8_lossy(&req.body).contains("\"key\":\"k_2\"");
            if announce_k2 {
                h.notify_one();
                // Blocks this connection's handler only; the runtime keeps going.
                tokio::task::block_in_place(|| {
                    let _ = released
                        .lock()
                        .unwrap()
                        .recv_timeout(Duration::from_secs(20));
                });
            }
            if req.method == "DELETE" && req.path == "/api/v4/buckets/b/bid/k" {
                cl.notify_one();
            }
            None
        }),
    )
    .await;
    let c = client(&router.uri());
    let put = c.put_bytes(
        "b",
        "k",
        data(50, 1),
        PutOptions::default()
            .with_chunk_size(10)
            .with_max_concurrency(1),
    );
    let bounded = |what: &'static str, f| async move {
        tokio::time::timeout(Duration::from_secs(10), f)
            .await
            .unwrap_or_else(|_| panic!("timed out: {what}"))
    };
    // Dropping the put (the losing branch) while chunk 2 is held.
    tokio::select! {
        r = put => panic!("the put cannot end while chunk 2 is held: {r:?}"),
        () = bounded("chunk 2 announced", held.notified()) => {}
    }
    bounded("background cleanup", cleaned.notified()).await;
    assert_eq!(router.server.count("DELETE", "/api/v4/buckets/b/bid/k"), 1);
    // The fault script sees the delete before the store applies it: wait for chunks 0 and 1
    // to be gone before letting chunk 2's announcement through.
    let keys_become = |want: &'static [&'static str]| {
        let router = &router;
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while router.keys("b") != want && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    };
    keys_become(&[]).await;
    assert!(router.keys("b").is_empty(), "{:?}", router.keys("b"));
    // The request in flight when the put was dropped goes on: the server may still create
    // that one key (nothing on the client can stop it), never the others.
    release.send(()).unwrap();
    keys_become(&["k_2"]).await;
    assert_eq!(router.keys("b"), ["k_2"]);
}
