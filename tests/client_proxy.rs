//! The client through a fault-injecting proxy in front of a real `LocalCluster` router:
//! dropped connections (before and mid-answer), 503s, delays (short, and past the client's
//! timeout) and flipped bytes. Puts and gets of multi-chunk balls must come back
//! byte-identical, having retried; corruption must never surface as data.

mod support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mictlanx::checksum::sha256_hex;
use mictlanx::model::metadata_header;
use mictlanx::{Client, Error, PutOptions, RetryConfig};
use mictlanx_server::LocalCluster;
use support::proxy::{
    is_get_data, is_get_metadata, is_put_metadata, is_upload, Fault, FaultProxy, Rule,
};

/// 6 chunks of 50 000 bytes.
const BALL_LEN: usize = 300_000;
const CHUNK: u64 = 50_000;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(131).wrapping_add(seed) ^ ((i >> 9) as u8))
        .collect()
}

/// Quick retries and a budget that never refuses: these tests count faults, not storms.
fn retry() -> RetryConfig {
    RetryConfig {
        max_attempts: 6,
        initial_backoff: Duration::from_millis(5),
        max_backoff: Duration::from_millis(50),
        jitter: false,
        min_retries_per_sec: 1000,
        ..RetryConfig::default()
    }
}

struct Setup {
    // Dropped last: the proxy forwards to it.
    _cluster: LocalCluster,
    proxy: FaultProxy,
    client: Client,
}

/// A cluster with `peers` peers, a proxy in front of its router, and a client whose only
/// router is the proxy (no heartbeat: every request the proxy sees is the test's).
async fn setup(peers: usize, timeout: Duration) -> Setup {
    let cluster = LocalCluster::builder()
        .peers(peers)
        .start()
        .await
        .expect("cluster starts");
    let proxy = FaultProxy::start(cluster.router_addr().expect("a router")).await;
    let client = Client::builder()
        .routers_uri(&proxy.uri("proxied"))
        .client_id("proxy-tests")
        .retry(retry())
        .heartbeat_interval(Duration::ZERO)
        .timeout(timeout)
        .build()
        .expect("client");
    Setup {
        _cluster: cluster,
        proxy,
        client,
    }
}

impl Setup {
    /// Hides `X-Mictlanx-Metadata` from every answer, as a MictlanX router sends none: reads
    /// then ask R4 then R5 for each chunk, so faults on R4 apply.
    fn posing_as_mictlanx_router(self) -> Self {
        self.proxy.hide_response_header(metadata_header::NAME);
        self
    }
}

fn opts() -> PutOptions {
    PutOptions::default().with_chunk_size(CHUNK)
}

/// Puts and gets `bytes` as `bucket/ball` and checks the result and that `rules` fired as
/// many times as `expected` says; returns the retries the client made.
async fn round_trip(s: &Setup, bucket: &str, ball: &str, rules: &[(Arc<Rule>, usize)]) -> u64 {
    let bytes = data(BALL_LEN, ball.len() as u8);
    let put = s
        .client
        .put_bytes(bucket, ball, bytes.clone(), opts())
        .await
        .expect("the put survives the faults");
    assert_eq!(put.num_chunks, 6);
    assert_eq!(put.full_checksum, sha256_hex(&bytes));
    // A request the client gave up on may still reach the router: let it land first.
    s.proxy.idle().await;
    let got = s
        .client
        .get_bytes(bucket, ball)
        .await
        .expect("the get survives the faults");
    assert!(got.data == bytes, "the ball came back different");
    assert_eq!(got.chunks.len(), 6);
    for (i, (rule, expected)) in rules.iter().enumerate() {
        assert_eq!(rule.fired(), *expected, "rule {i} fired");
    }
    let injected = rules.iter().map(|(_, n)| *n).sum::<usize>();
    assert_eq!(s.proxy.faults_injected(), injected, "{:#?}", s.proxy.log());
    let retries = s.client.metrics().routers[0].retries;
    // Once the faults are spent the proxy is transparent.
    let again = s.client.get_bytes(bucket, ball).await.expect("clean read");
    assert!(again.data == bytes, "the second read differs");
    assert_eq!(s.proxy.faults_injected(), injected);
    assert_eq!(s.client.metrics().retries_denied, 0);
    retries
}

#[tokio::test]
async fn dropped_connections_are_retried() {
    let s = setup(2, Duration::from_secs(10))
        .await
        .posing_as_mictlanx_router();
    let p = &s.proxy;
    let rules = [
        // The router never sees the second chunk announcement.
        (
            p.push(Rule::when(is_put_metadata, Fault::Drop).skip(1).times(1)),
            1,
        ),
        // The router accepts an announcement and an upload, but the answers are cut.
        (
            p.push(
                Rule::when(is_put_metadata, Fault::DropMidResponse)
                    .skip(3)
                    .times(1),
            ),
            1,
        ),
        (
            p.push(
                Rule::when(is_upload, Fault::DropMidResponse)
                    .skip(2)
                    .times(1),
            ),
            1,
        ),
        // Reads: a metadata request vanishes, two data answers stop halfway.
        (p.push(Rule::when(is_get_metadata, Fault::Drop).times(1)), 1),
        (
            p.push(
                Rule::when(is_get_data, Fault::DropMidResponse)
                    .skip(1)
                    .times(2),
            ),
            2,
        ),
    ];
    let retries = round_trip(&s, "drops", "ball", &rules).await;
    assert!(retries >= 6, "{retries} retries for 6 faults");
}

#[tokio::test]
async fn server_unavailable_answers_are_retried() {
    let s = setup(2, Duration::from_secs(10))
        .await
        .posing_as_mictlanx_router();
    let p = &s.proxy;
    let busy = Fault::Status(503);
    let rules = [
        (p.push(Rule::when(is_put_metadata, busy).times(2)), 2),
        (p.push(Rule::when(is_upload, busy).skip(1).times(2)), 2),
        (
            p.push(Rule::when(is_get_metadata, busy).skip(2).times(1)),
            1,
        ),
        (p.push(Rule::when(is_get_data, busy).skip(3).times(2)), 2),
    ];
    let retries = round_trip(&s, "busy", "ball", &rules).await;
    assert!(retries >= 7, "{retries} retries for 7 faults");
}

#[tokio::test]
async fn slow_answers_wait_and_answers_past_the_timeout_are_retried() {
    // Short delays are waited for; one upload and one read take longer than the client's
    // timeout: those attempts time out and are retried while the late upload still lands.
    let s = setup(2, Duration::from_millis(1500))
        .await
        .posing_as_mictlanx_router();
    let p = &s.proxy;
    let short = Fault::Delay(Duration::from_millis(150));
    let long = Fault::Delay(Duration::from_millis(1800));
    let rules = [
        (p.push(Rule::when(is_put_metadata, short).times(3)), 3),
        (p.push(Rule::when(is_upload, long).skip(1).times(1)), 1),
        (
            p.push(Rule::when(is_get_metadata, short).skip(1).times(2)),
            2,
        ),
        (p.push(Rule::when(is_get_data, long).skip(4).times(1)), 1),
    ];
    let retries = round_trip(&s, "slow", "ball", &rules).await;
    // The two attempts that outlived the timeout were given up and made again (a loaded
    // machine may add more; the short delays alone need none).
    assert!(retries >= 2, "{retries} retries");
    let log = s.proxy.log();
    let late_read = log
        .iter()
        .find(|r| r.fault == Some(long) && is_get_data(&r.method, &r.path))
        .expect("a read was held past the timeout");
    let reads_of_it = log.iter().filter(|r| r.path == late_read.path).count();
    // The late attempt, its retry, and the clean second read.
    assert!(reads_of_it >= 3, "{log:#?}");
    // Six chunks, and the one whose upload came too late, once more.
    assert!(s.proxy.count(is_upload) >= 7, "{log:#?}");
}

#[tokio::test]
async fn flipped_bytes_are_caught_and_retried() {
    let s = setup(2, Duration::from_secs(10))
        .await
        .posing_as_mictlanx_router();
    let p = &s.proxy;
    let rules = [
        // Garbled JSON answers to a put.
        (
            p.push(Rule::when(is_put_metadata, Fault::Corrupt).skip(2).times(1)),
            1,
        ),
        (p.push(Rule::when(is_upload, Fault::Corrupt).times(1)), 1),
        (
            p.push(Rule::when(is_get_metadata, Fault::Corrupt).skip(1).times(1)),
            1,
        ),
        // Flipped chunk bytes: only the SHA-256 check can tell.
        (
            p.push(Rule::when(is_get_data, Fault::Corrupt).skip(1).times(3)),
            3,
        ),
    ];
    let retries = round_trip(&s, "flips", "ball", &rules).await;
    // A read attempt is R5 and R4 together: the garbled R4 may fail the same attempt as a
    // flipped R5, or one of its own (which reads that chunk's bytes once more).
    assert!(retries >= 5, "{retries} retries for 6 faults");
    // Each corrupted chunk was read again: 6 chunks + 3 (or 4) re-reads, then the clean
    // read's 6.
    let reads = s.proxy.count(is_get_data);
    assert!((6 + 3 + 6..=6 + 4 + 6).contains(&reads), "{reads} reads");
}

#[tokio::test]
async fn every_fault_at_once_through_streams_and_files() {
    let s = setup(3, Duration::from_secs(10))
        .await
        .posing_as_mictlanx_router();
    let p = &s.proxy;
    for (matcher, fault) in [
        (is_put_metadata as fn(&str, &str) -> bool, Fault::Drop),
        (is_upload, Fault::Status(502)),
        (is_upload, Fault::DropMidResponse),
        (is_get_metadata, Fault::Status(503)),
        (is_get_data, Fault::Corrupt),
        (is_get_data, Fault::DropMidResponse),
        (is_get_data, Fault::Delay(Duration::from_millis(100))),
    ] {
        p.push(Rule::when(matcher, fault).skip(1).times(1));
    }
    let bytes = data(BALL_LEN, 7);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("in.bin");
    std::fs::write(&src, &bytes).unwrap();
    let put = s
        .client
        .put_file("all", "file", &src, opts().with_replication_factor(2))
        .await
        .expect("the put survives");
    assert_eq!(put.full_checksum, sha256_hex(&bytes));
    let out = dir.path().join("out.bin");
    s.client
        .get_to_file("all", "file", &out)
        .await
        .expect("the file read survives");
    assert!(std::fs::read(&out).unwrap() == bytes);
    let streamed: Vec<Bytes> = s
        .client
        .get_stream("all", "file")
        .map(|r| r.expect("every streamed chunk is sound"))
        .collect()
        .await;
    assert!(streamed.concat() == bytes);
    assert_eq!(s.proxy.faults_injected(), 7, "{:#?}", s.proxy.log());
    // Six of the faults fail an attempt; a read attempt is R5 and R4 together, so the R4
    // 503 and one of the R5 faults may have failed the same attempt.
    assert!(s.client.metrics().routers[0].retries >= 5);
}

#[tokio::test]
async fn a_permanently_corrupting_proxy_is_an_integrity_error_never_wrong_bytes() {
    let s = setup(1, Duration::from_secs(10)).await;
    let bytes = data(BALL_LEN, 3);
    s.client
        .put_bytes("bad", "ball", bytes.clone(), opts())
        .await
        .unwrap();
    // Every read of chunk 3's bytes comes back with a flipped byte.
    let flips = s.proxy.push(Rule::when(
        |method, path| is_get_data(method, path) && path.ends_with("/bad/ball_3"),
        Fault::Corrupt,
    ));

    let err = s.client.get_bytes("bad", "ball").await.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    // Every attempt was made before giving up.
    let attempts = retry().max_attempts as usize;
    assert_eq!(flips.fired(), attempts);
    assert!(s.client.metrics().routers[0].retries >= attempts as u64 - 1);

    // A stream hands out the sound chunks before the corrupt one, then the error.
    let items: Vec<Result<Bytes, Error>> = s.client.get_stream("bad", "ball").collect().await;
    assert_eq!(items.len(), 4, "{items:?}");
    let prefix: Vec<u8> = items[..3]
        .iter()
        .flat_map(|r| r.as_ref().expect("a sound chunk").to_vec())
        .collect();
    assert!(
        prefix == bytes[..3 * CHUNK as usize],
        "a streamed chunk differs"
    );
    assert!(
        matches!(items[3], Err(Error::Integrity { .. })),
        "{:?}",
        items[3]
    );

    // One chunk, and a file: errors, and no file left behind.
    assert!(matches!(
        s.client.get_chunk("bad", "ball", 3).await,
        Err(Error::Integrity { .. })
    ));
    let (two, _) = s.client.get_chunk("bad", "ball", 2).await.unwrap();
    assert!(two[..] == bytes[2 * CHUNK as usize..3 * CHUNK as usize]);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.bin");
    let err = s.client.get_to_file("bad", "ball", &out).await.unwrap_err();
    assert!(matches!(err, Error::Integrity { .. }), "{err}");
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

    // The stored ball is intact: without the flips it reads back whole.
    s.proxy.clear();
    assert!(s.client.get_bytes("bad", "ball").await.unwrap().data == bytes);
}

#[tokio::test]
async fn our_router_reads_each_chunk_in_one_exchange_and_survives_faults() {
    let s = setup(2, Duration::from_secs(10)).await;
    let p = &s.proxy;
    let forged = r#"{"key":"ball_9","size":1,"checksum":"x"}"#;
    // One fault on the first read of each chunk; the metadata sent with the bytes is among
    // them, malformed and describing another key.
    let faults = [
        Fault::Drop,
        Fault::DropMidResponse,
        Fault::Status(503),
        Fault::Corrupt,
        Fault::SetHeader(metadata_header::NAME, "%FF{garbage"),
        Fault::SetHeader(metadata_header::NAME, forged),
    ];
    let rules: Vec<(Arc<Rule>, usize)> = faults
        .into_iter()
        .enumerate()
        .map(|(i, fault)| {
            let suffix = format!("/one/ball_{i}");
            let chunk_i =
                move |m: &str, path: &str| is_get_data(m, path) && path.ends_with(&suffix);
            (p.push(Rule::when(chunk_i, fault).times(1)), 1)
        })
        .collect();
    let retries = round_trip(&s, "one", "ball", &rules).await;
    assert!(retries >= 6, "{retries} retries for 6 faults");
    // No R4 at all: the bytes brought their metadata. Two reads of 6 chunks, plus the 6
    // attempts that failed.
    assert_eq!(s.proxy.count(is_get_metadata), 0, "{:#?}", s.proxy.log());
    assert_eq!(s.proxy.count(is_get_data), 6 + 6 + 6);
}

#[tokio::test]
async fn the_same_ball_reads_alike_with_and_without_the_metadata_header() {
    let s = setup(1, Duration::from_secs(10)).await;
    let bytes = data(BALL_LEN, 11);
    s.client
        .put_bytes("alike", "ball", bytes.clone(), opts())
        .await
        .unwrap();
    let ours = s.client.get_bytes("alike", "ball").await.unwrap();
    let gets = s.proxy.count(is_get_data);
    assert_eq!((s.proxy.count(is_get_metadata), gets), (0, 6));
    s.proxy.hide_response_header(metadata_header::NAME);
    let theirs = s.client.get_bytes("alike", "ball").await.unwrap();
    assert_eq!(s.proxy.count(is_get_metadata), 6);
    assert_eq!(s.proxy.count(is_get_data), gets + 6);
    assert!(ours.data == bytes && theirs.data == bytes);
    assert_eq!(ours.chunks, theirs.chunks);
}

#[tokio::test]
async fn metadata_too_large_for_the_header_is_asked_for() {
    let s = setup(1, Duration::from_secs(10)).await;
    let bytes = data(BALL_LEN, 5);
    // Tags over the header's 16 KiB: the peer leaves the header out.
    let note = "ñ".repeat(metadata_header::MAX_ENCODED_LEN / 4);
    s.client
        .put_bytes(
            "tagged",
            "ball",
            bytes.clone(),
            opts().with_tag("note", &note),
        )
        .await
        .unwrap();
    let got = s.client.get_bytes("tagged", "ball").await.unwrap();
    assert!(got.data == bytes);
    assert!(got.chunks.iter().all(|c| c.tags.get("note") == Some(&note)));
    // Each chunk: R5 (no header), then R4 on the same router.
    assert_eq!(s.proxy.count(is_get_data), 6);
    assert_eq!(s.proxy.count(is_get_metadata), 6);
}
