//! The client against a real `LocalCluster` (router + peers in-process, loopback, ephemeral
//! ports): round trips of every size class, files and streams, replication, idempotent
//! re-puts, the reference client's acceptance cases (§13), errors, and router failover.

use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mictlanx::checksum::sha256_hex;
use mictlanx::{Client, Error, PutOptions, RetryConfig};
use mictlanx_server::LocalCluster;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(131).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

fn client_for(uri: &str) -> Client {
    Client::builder()
        .routers_uri(uri)
        .client_id("cluster-tests")
        .retry(RetryConfig {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..RetryConfig::default()
        })
        .heartbeat_interval(Duration::from_millis(200))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn cluster(peers: usize) -> (LocalCluster, Client) {
    let cluster = LocalCluster::builder()
        .peers(peers)
        .start()
        .await
        .expect("cluster starts");
    let client = client_for(&cluster.uri());
    (cluster, client)
}

#[tokio::test]
async fn round_trips_of_every_size_class() {
    let (_cluster, c) = cluster(1).await;
    let dir = tempfile::tempdir().unwrap();
    // 0 B, 1 B, exactly one default chunk, one chunk + 1 byte, several chunks.
    for (i, len) in [0usize, 1, 256_000, 256_001, 700_000]
        .into_iter()
        .enumerate()
    {
        let bytes = data(len, i as u8);
        let ball = format!("mem-{len}");
        let put = c
            .put_bytes("sizes", &ball, bytes.clone(), PutOptions::default())
            .await
            .unwrap();
        assert_eq!(put.size, len as u64);
        assert_eq!(put.full_checksum, sha256_hex(&bytes));
        let expected_chunks = if len < 256_000 {
            1
        } else {
            len as u64 / 256_000
        };
        assert_eq!(
            put.num_chunks, expected_chunks,
            "in-memory rule, {len} bytes"
        );
        assert_eq!(c.get_bytes("sizes", &ball).await.unwrap().data, bytes);

        // The same bytes as a file: short-tail rule.
        let path = dir.path().join(format!("in-{len}"));
        tokio::fs::write(&path, &bytes).await.unwrap();
        let ball = format!("file-{len}");
        let put = c
            .put_file("sizes", &ball, &path, PutOptions::default())
            .await
            .unwrap();
        assert_eq!(put.num_chunks, (len as u64).div_ceil(256_000).max(1));
        let out = dir.path().join(format!("out-{len}"));
        let written = c.get_to_file("sizes", &ball, &out).await.unwrap();
        assert_eq!(written.size, len as u64);
        assert_eq!(tokio::fs::read(&out).await.unwrap(), bytes);
    }
}

#[tokio::test]
async fn a_few_megabytes_as_file_and_as_stream() {
    let (_cluster, c) = cluster(2).await;
    let dir = tempfile::tempdir().unwrap();
    let bytes = data(3_500_000, 7);
    let path = dir.path().join("big.bin");
    tokio::fs::write(&path, &bytes).await.unwrap();
    let put = c
        .put_file("big", "file", &path, PutOptions::default())
        .await
        .unwrap();
    assert_eq!(put.num_chunks, 14);
    let out = dir.path().join("big.out");
    c.get_to_file("big", "file", &out).await.unwrap();
    assert_eq!(
        sha256_hex(&tokio::fs::read(&out).await.unwrap()),
        put.full_checksum
    );

    let pieces: Vec<Result<Bytes, std::io::Error>> = bytes
        .chunks(100_003)
        .map(|p| Ok(Bytes::copy_from_slice(p)))
        .collect();
    let put = c
        .put_stream(
            "big",
            "stream",
            futures::stream::iter(pieces),
            PutOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(put.size, bytes.len() as u64);
    let mut got = Vec::new();
    let mut stream = c.get_stream("big", "stream");
    while let Some(chunk) = stream.next().await {
        got.extend_from_slice(&chunk.unwrap());
    }
    assert_eq!(got, bytes);
}

#[tokio::test]
async fn replication_reputs_and_max_availability() {
    let (_cluster, c) = cluster(3).await;
    let bytes = data(600_000, 3);
    let opts = || PutOptions::default().with_replication_factor(2);
    // One chunk: exactly two peers. Several chunks: each on two, so two or three in all.
    let one = c.put_bytes("rf", "one", "tiny", opts()).await.unwrap();
    assert_eq!(one.replicas.len(), 2, "{:?}", one.replicas);
    let put = c
        .put_bytes("rf", "two", bytes.clone(), opts())
        .await
        .unwrap();
    assert!(put.replicas.len() >= 2, "{:?}", put.replicas);
    // Identical content again: fine (the router may skip the upload itself, or answer
    // "max availability" and let the client see the chunks are already there).
    let again = c
        .put_bytes("rf", "two", bytes.clone(), opts())
        .await
        .unwrap();
    assert_eq!(again.full_checksum, put.full_checksum);
    assert_eq!(c.get_bytes("rf", "two").await.unwrap().data, bytes);
    // More replicas than peers.
    let err = c
        .put_bytes(
            "rf",
            "four",
            "x",
            PutOptions::default().with_replication_factor(4),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MaxAvailabilityReached { .. }), "{err}");
}

#[tokio::test]
async fn a_killed_peer_does_not_lose_a_replicated_ball() {
    let (mut cluster, c) = cluster(3).await;
    let bytes = data(300_000, 4);
    c.put_bytes(
        "kill",
        "b",
        bytes.clone(),
        PutOptions::default().with_replication_factor(3),
    )
    .await
    .unwrap();
    cluster.kill_peer(0).await.unwrap();
    assert_eq!(c.get_bytes("kill", "b").await.unwrap().data, bytes);
}

/// Reference §13, put: a 3 300-byte file with 256kb; a chunk size larger than the data plus
/// tags.
#[tokio::test]
async fn reference_put_cases() {
    let (_cluster, c) = cluster(2).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("small.txt");
    tokio::fs::write(&path, data(3_300, 1)).await.unwrap();
    let put = c
        .put_file("ref-put", "small", &path, PutOptions::default())
        .await
        .unwrap();
    assert_eq!((put.size, put.num_chunks), (3_300, 1));

    let opts = PutOptions::default()
        .with_chunk_size(1_000_000)
        .with_tag("test", "value")
        .with_tag("extension", "txt");
    let put = c
        .put_bytes("ref-put", "tagged", data(5_000, 2), opts)
        .await
        .unwrap();
    assert_eq!(put.num_chunks, 1);
    let meta = c.metadata("ref-put", "tagged_0").await.unwrap().metadata;
    assert_eq!(meta.tag("test"), Some("value"));
    assert_eq!(meta.tag("num_chunks"), Some("1"));
    assert_eq!(meta.full_checksum(), Some(put.full_checksum.as_str()));
}

/// Reference §13, get: a 40 000-byte object put with "10kb".
#[tokio::test]
async fn reference_get_cases() {
    let (_cluster, c) = cluster(2).await;
    let bytes = data(40_000, 5);
    c.put_bytes(
        "ref-get",
        "obj",
        bytes.clone(),
        PutOptions::default().with_chunk_size(10_000),
    )
    .await
    .unwrap();
    let (chunk, meta) = c.get_chunk("ref-get", "obj", 1).await.unwrap();
    assert_eq!(chunk.len(), 10_000);
    assert_eq!(meta.index(), Some(1));
    assert_eq!(&chunk[..], &bytes[10_000..20_000]);

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("obj.bin");
    c.get_to_file("ref-get", "obj", &out).await.unwrap();
    assert_eq!(tokio::fs::read(&out).await.unwrap(), bytes);

    assert_eq!(c.get_bytes("ref-get", "obj").await.unwrap().data, bytes);

    let chunks: Vec<Bytes> = c
        .get_stream("ref-get", "obj")
        .map(|r| r.unwrap())
        .collect()
        .await;
    assert_eq!(chunks.len(), 4);
    assert_eq!(chunks.concat(), bytes);

    let r = c.delete_bucket("ref-get").await.unwrap();
    assert_eq!((r.deleted, r.failed), (1, 0));
}

/// Reference §13, metadata: three balls with path tags, read back by key, by ball and by
/// bucket.
#[tokio::test]
async fn reference_metadata_cases() {
    let (_cluster, c) = cluster(2).await;
    let balls = [
        ("report_c", "pdf", "reports/"),
        ("pic_b", "png", "images/"),
        ("song_a", "mp3", "music/"),
    ];
    for (i, (ball, ext, dir)) in balls.iter().enumerate() {
        let fullname = format!("{ball}.{ext}");
        let opts = PutOptions::default()
            .with_tag("extension", *ext)
            .with_tag("bucket_relative_path", *dir)
            .with_tag("fullname", fullname.clone())
            .with_tag("full_path", format!("{dir}{fullname}"));
        c.put_bytes("ref-meta", ball, data(1_000 + i, i as u8), opts)
            .await
            .unwrap();
    }
    let meta = c.metadata("ref-meta", "report_c_0").await.unwrap().metadata;
    assert_eq!(meta.key, "report_c_0");
    assert_eq!(meta.tag("extension"), Some("pdf"));
    assert_eq!(meta.tag("fullname"), Some("report_c.pdf"));

    let ball = c.ball("ref-meta", "pic_b").await.unwrap();
    assert_eq!(ball.ball_id, "pic_b");
    assert_eq!(ball.size, 1_001);

    let bucket = c.bucket("ref-meta").await.unwrap();
    assert_eq!(bucket.len(), 3);
    let pic = bucket.get("pic_b").unwrap();
    assert_eq!(pic.tag("extension"), Some("png"));
    assert_eq!(pic.tag("bucket_relative_path"), Some("images/"));
    assert_eq!(pic.tag("fullname"), Some("pic_b.png"));
    assert_eq!(pic.tag("full_path"), Some("images/pic_b.png"));
}

/// Reference §13, delete and disable.
#[tokio::test]
async fn reference_delete_and_disable_cases() {
    let (_cluster, c) = cluster(2).await;
    c.put_bytes("ref-del", "one", data(2_000, 1), PutOptions::default())
        .await
        .unwrap();
    let deleted = c.delete("ref-del", "one").await.unwrap();
    assert!(deleted.n_deletes >= 1);
    assert!(matches!(
        c.get_bytes("ref-del", "one").await,
        Err(Error::NotFound { .. })
    ));

    let puts = (0..5).map(|i| {
        let c = c.clone();
        async move {
            c.put_bytes(
                "ref-del",
                &format!("ball-{i}"),
                data(1_500, i),
                PutOptions::default(),
            )
            .await
        }
    });
    for put in futures::future::join_all(puts).await {
        put.unwrap();
    }
    let r = c.delete_bucket("ref-del").await.unwrap();
    assert_eq!((r.deleted, r.failed, r.total), (5, 0, 5));
    assert!(c.bucket("ref-del").await.unwrap().is_empty());

    c.put_bytes("ref-del", "soft", "x", PutOptions::default())
        .await
        .unwrap();
    c.disable("ref-del", "soft_0").await.unwrap();
}

#[tokio::test]
async fn errors_missing_and_hostile() {
    let (_cluster, c) = cluster(1).await;
    assert!(matches!(
        c.get_bytes("nothing", "here").await,
        Err(Error::NotFound { .. })
    ));
    // A path-like id is an ordinary name: not found, and nothing outside is looked at.
    assert!(matches!(
        c.get_bytes("b", "../../etc/passwd").await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        c.get_bytes("b", "..").await,
        Err(Error::InvalidId(_))
    ));
    assert!(matches!(
        c.put_bytes("..", "k", "x", PutOptions::default()).await,
        Err(Error::InvalidId(_))
    ));
}

#[tokio::test]
async fn a_router_stopped_mid_run_fails_over_to_the_other() {
    let (mut cluster, _) = cluster(2).await;
    cluster.add_router().await.expect("second router");
    let c = client_for(&cluster.uri());
    assert_eq!(c.config().routers.len(), 2);
    let bytes = data(50_000, 9);
    let work = {
        let c = c.clone();
        let bytes = bytes.clone();
        async move {
            for i in 0..30 {
                let ball = format!("fo-{i}");
                c.put_bytes(
                    "failover",
                    &ball,
                    bytes.clone(),
                    PutOptions::default().with_chunk_size(10_000),
                )
                .await?;
                assert_eq!(c.get_bytes("failover", &ball).await?.data, bytes);
            }
            Ok::<_, Error>(())
        }
    };
    let restart = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        cluster.restart_router(0).await.expect("router restarts");
    };
    let (work, ()) = tokio::join!(work, restart);
    work.unwrap();
    let m = c.metrics();
    assert!(m.routers.iter().map(|r| r.requests).sum::<u64>() > 0);
}

/// Keys as users write them (issue 16): every one is stored under exactly its own name,
/// comes back with its own bytes, is listed as given, and none collides with another or
/// puts a file outside the cluster's data directory.
#[tokio::test]
async fn keys_are_kept_exactly_as_written() {
    let (cluster, c) = cluster(2).await;
    let outside = tempfile::tempdir().unwrap();
    let escape = outside.path().join("escaped");
    let longest = "k".repeat(1024);
    let cjk_longest = format!("{}a", "日".repeat(341)); // 1,024 bytes in 342 characters
    let escape_text = format!("../../../../../../..{}", escape.display());
    let names: Vec<&str> = vec![
        "img1.jpg",
        "dir/sub/a.b",
        "日本.txt",
        "中文.txt",
        "a.b",
        "a-b",
        "a/b",
        "a_b",
        "ab",
        "a b",
        "/leading",
        "trailing/",
        "a//b",
        "...",
        "a/../b",
        "../../etc/passwd",
        &escape_text,
        "back\\slash",
        "%2F",
        "q?x=1&y=2#frag",
        "emoji 🎉.png",
        "metadata.json",
        &longest,
        &cjk_longest,
    ];
    for (i, name) in names.iter().enumerate() {
        let bytes = format!("ball {i}: {name}").into_bytes();
        let opts = PutOptions::default().with_chunk_size(8);
        let put = c.put_bytes("keys", name, bytes, opts).await;
        let put = put.unwrap_or_else(|e| panic!("put {name:?}: {e}"));
        assert_eq!(put.ball_id, *name);
    }
    for (i, name) in names.iter().enumerate() {
        let got = c.get_bytes("keys", name).await;
        let got = got.unwrap_or_else(|e| panic!("get {name:?}: {e}"));
        assert_eq!(got.data, format!("ball {i}: {name}").as_bytes(), "{name:?}");
    }
    let listed: Vec<String> = c.bucket("keys").await.unwrap().balls.into_keys().collect();
    let mut expected: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    expected.sort();
    assert_eq!(listed, expected);
    assert!(!escape.exists(), "a key wrote outside the data directory");
    // Peers name files by a hash of bucket and key: no id reaches the file system.
    let mut pending = vec![cluster.data_dir().to_path_buf()];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            for id in ["img1", "passwd", "日本", "escaped", "sub"] {
                assert!(!name.contains(id), "{} names a key", path.display());
            }
            if path.is_dir() {
                pending.push(path);
            } else {
                files += 1;
            }
        }
    }
    assert!(files > 0);
    c.delete("keys", "a/b").await.unwrap();
    assert!(matches!(
        c.get_bytes("keys", "a/b").await,
        Err(Error::NotFound { .. })
    ));
    assert_eq!(
        c.get_bytes("keys", "a.b").await.unwrap().data,
        &b"ball 4: a.b"[..]
    );
}
