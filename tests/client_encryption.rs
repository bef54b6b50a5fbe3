//! Client-side encryption (Xolo) against a real `LocalCluster`: round trips of 0 B, one
//! chunk and many chunks through bytes, files and streams; what the peers hold; two
//! recipients; missing, wrong and unneeded keys; and an attacker with write access to the
//! cluster who re-puts chunks with valid checksums (tampered, swapped, truncated).

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mictlanx::checksum::sha256_hex;
use mictlanx::model::{Metadata, PutMetadataRequest, PutMetadataResponse};
use mictlanx::xolo::KeyPair;
use mictlanx::{
    AsyncClient, Client, Error, GetJob, GetOptions, JobOutput, PutJob, PutOptions, RetryConfig,
};
use mictlanx_server::LocalCluster;

/// Stored chunk size of these tests: 1000 bytes, 984 of them data.
const CHUNK: u64 = 1000;
const SEGMENT: usize = 984;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(151).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

fn client_for(uri: &str) -> Client {
    Client::builder()
        .routers_uri(uri)
        .client_id("encryption-tests")
        .retry(RetryConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(50),
            max_attempts: 3,
            ..RetryConfig::default()
        })
        .heartbeat_interval(Duration::from_millis(200))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

async fn cluster() -> (LocalCluster, Client) {
    let cluster = LocalCluster::builder()
        .peers(2)
        .start()
        .await
        .expect("cluster starts");
    let client = client_for(&cluster.uri());
    (cluster, client)
}

/// Bounds a step of a test.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

fn sealed_to(keys: &[&KeyPair]) -> PutOptions {
    let public: Vec<_> = keys.iter().map(|k| *k.public()).collect();
    PutOptions::default()
        .with_chunk_size(CHUNK)
        .with_tag("extension", "bin")
        .encrypt_to(&public)
}

fn opened_with(key: &KeyPair) -> GetOptions {
    GetOptions::default().decrypt_with(key)
}

async fn get_plain(c: &Client, bucket: &str, ball: &str, key: &KeyPair) -> Result<Bytes, Error> {
    c.get_bytes_opts(bucket, ball, opened_with(key))
        .await
        .map(|g| g.data)
}

async fn stream_plain(
    c: &Client,
    bucket: &str,
    ball: &str,
    key: &KeyPair,
) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    let mut s = c.get_stream_opts(bucket, ball, opened_with(key));
    while let Some(piece) = s.next().await {
        out.extend_from_slice(&piece?);
    }
    Ok(out)
}

/// The stored chunks of a ball, as a peer serves them.
async fn stored_chunks(c: &Client, bucket: &str, ball: &str) -> Vec<(Bytes, Metadata)> {
    let (first, meta) = c.get_chunk(bucket, ball, 0).await.unwrap();
    let n = meta.num_chunks().unwrap();
    let mut chunks = vec![(first, meta)];
    for i in 1..n {
        chunks.push(c.get_chunk(bucket, ball, i).await.unwrap());
    }
    chunks
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn encrypted_round_trips_of_every_size_class() {
    let (_cluster, c) = cluster().await;
    let alice = KeyPair::generate();
    let dir = tempfile::tempdir().unwrap();
    // 0 B, 1 B, exactly one chunk, one chunk + 1 byte, many chunks.
    for (i, len) in [0usize, 1, SEGMENT, SEGMENT + 1, 20 * SEGMENT + 17]
        .into_iter()
        .enumerate()
    {
        let plain = data(len, i as u8);
        let segments = len.div_ceil(SEGMENT).max(1) as u64;

        let ball = format!("mem-{len}");
        let put = within(
            "put_bytes",
            c.put_bytes("enc", &ball, plain.clone(), sealed_to(&[&alice])),
        )
        .await
        .unwrap();
        assert_eq!(put.num_chunks, segments, "{len} bytes");
        assert_eq!(put.size, len as u64 + 16 * segments, "sealed size");
        let got = within("get_bytes", get_plain(&c, "enc", &ball, &alice))
            .await
            .unwrap();
        assert_eq!(got, plain, "{len} bytes from memory");
        assert_eq!(
            within("get_stream", stream_plain(&c, "enc", &ball, &alice))
                .await
                .unwrap(),
            plain
        );

        // What the peers hold: sealed chunks, checksums of the sealed bytes, no plaintext.
        let chunks = stored_chunks(&c, "enc", &ball).await;
        let sealed: Vec<u8> = chunks.iter().flat_map(|(b, _)| b.to_vec()).collect();
        assert_eq!(sha256_hex(&sealed), put.full_checksum);
        for (bytes, meta) in &chunks {
            assert!(bytes.len() as u64 <= CHUNK);
            assert_eq!(meta.checksum, sha256_hex(bytes));
            assert_eq!(
                meta.tag("xolo_alg"),
                Some("X25519-HKDF-SHA256+XChaCha20-Poly1305")
            );
            assert_eq!(meta.tag("extension"), Some("bin"), "user tags kept");
        }
        if len >= 64 {
            let window = &plain[..64];
            assert!(!sealed.windows(64).any(|w| w == window), "plaintext stored");
        }

        // The same bytes as a file, read back atomically to a file.
        let src = dir.path().join(format!("in-{len}"));
        tokio::fs::write(&src, &plain).await.unwrap();
        let ball = format!("file-{len}");
        within(
            "put_file",
            c.put_file("enc", &ball, &src, sealed_to(&[&alice])),
        )
        .await
        .unwrap();
        let out = dir.path().join(format!("out-{len}"));
        let written = within(
            "get_to_file",
            c.get_to_file_opts("enc", &ball, &out, opened_with(&alice)),
        )
        .await
        .unwrap();
        assert_eq!(written.size, len as u64);
        assert_eq!(tokio::fs::read(&out).await.unwrap(), plain);

        // And as a stream of odd pieces.
        let pieces: Vec<Result<Bytes, std::io::Error>> = plain
            .chunks(333)
            .map(|p| Ok(Bytes::copy_from_slice(p)))
            .collect();
        let ball = format!("stream-{len}");
        within(
            "put_stream",
            c.put_stream(
                "enc",
                &ball,
                futures::stream::iter(pieces),
                sealed_to(&[&alice]),
            ),
        )
        .await
        .unwrap();
        assert_eq!(get_plain(&c, "enc", &ball, &alice).await.unwrap(), plain);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ball_for_two_recipients_opens_with_either() {
    let (_cluster, c) = cluster().await;
    let (alice, bob, carol) = (
        KeyPair::generate(),
        KeyPair::generate(),
        KeyPair::generate(),
    );
    let plain = data(5 * SEGMENT + 3, 9);
    within(
        "put",
        c.put_bytes("enc", "shared", plain.clone(), sealed_to(&[&alice, &bob])),
    )
    .await
    .unwrap();
    assert_eq!(get_plain(&c, "enc", "shared", &alice).await.unwrap(), plain);
    assert_eq!(
        stream_plain(&c, "enc", "shared", &bob).await.unwrap(),
        plain
    );
    let err = get_plain(&c, "enc", "shared", &carol).await.unwrap_err();
    assert!(matches!(err, Error::NotARecipient { .. }), "{err}");
    assert!(err.to_string().contains(&alice.fingerprint()), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_wrong_and_unneeded_keys_are_clear_errors() {
    let (_cluster, c) = cluster().await;
    let alice = KeyPair::generate();
    let plain = data(3 * SEGMENT, 1);
    let put = c
        .put_bytes("enc", "secret", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    c.put_bytes("enc", "public", plain.clone(), PutOptions::default())
        .await
        .unwrap();

    // No key: never the sealed bytes as if they were the data.
    let err = c.get_bytes("enc", "secret").await.unwrap_err();
    assert!(matches!(err, Error::MissingKey { .. }), "{err}");
    let mut s = c.get_stream("enc", "secret");
    let first = s.next().await.unwrap().unwrap_err();
    assert!(matches!(first, Error::MissingKey { .. }), "{first}");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("secret.out");
    assert!(matches!(
        c.get_to_file("enc", "secret", &out).await,
        Err(Error::MissingKey { .. })
    ));
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file left"
    );

    // Unless asked for explicitly.
    let raw = c
        .get_bytes_opts("enc", "secret", GetOptions::default().with_raw_sealed(true))
        .await
        .unwrap();
    assert_eq!(sha256_hex(&raw.data), put.full_checksum);

    // A key that is not a recipient, and a key for a plain ball.
    let stranger = KeyPair::generate();
    let err = get_plain(&c, "enc", "secret", &stranger).await.unwrap_err();
    assert!(matches!(err, Error::NotARecipient { .. }), "{err}");
    assert!(matches!(
        c.get_to_file_opts("enc", "secret", &out, opened_with(&stranger))
            .await,
        Err(Error::NotARecipient { .. })
    ));
    let err = get_plain(&c, "enc", "public", &alice).await.unwrap_err();
    assert!(matches!(err, Error::NotEncrypted { .. }), "{err}");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no file left"
    );

    // Bad encryption options are refused before anything is stored.
    let err = c
        .put_bytes(
            "enc",
            "tiny",
            b"x".to_vec(),
            PutOptions::default()
                .with_chunk_size(16)
                .encrypt_to(&[*alice.public()]),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err}");
    let err = c
        .put_bytes(
            "enc",
            "forged",
            b"x".to_vec(),
            PutOptions::default().with_tag("xolo_alg", "none"),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Validation { .. }), "{err}");
    assert!(c.metadata("enc", "tiny_0").await.is_err());
    assert!(c.metadata("enc", "forged_0").await.is_err());
}

/// An attacker with write access to the cluster: replaces key `key` with `bytes` and
/// `tags`, with a valid checksum, through the router's own API (R8, R1, R2).
async fn replace_chunk(
    router: &str,
    bucket: &str,
    key: &str,
    ball_id: &str,
    bytes: &[u8],
    tags: mictlanx::model::Tags,
) {
    let http = reqwest::Client::new();
    let deleted = http
        .delete(format!("{router}/api/v4/buckets/{bucket}/{key}"))
        .header("Force", "1")
        .send()
        .await
        .unwrap();
    assert!(
        deleted.status().is_success(),
        "delete {key}: {}",
        deleted.status()
    );
    let request = PutMetadataRequest {
        bucket_id: bucket.into(),
        key: key.into(),
        ball_id: ball_id.into(),
        checksum: sha256_hex(bytes),
        size: bytes.len() as u64,
        producer_id: "attacker".into(),
        tags,
        content_type: "application/octet-stream".into(),
        is_disabled: false,
        replication_factor: 1,
    };
    let placed: PutMetadataResponse = http
        .post(format!("{router}/api/v4/buckets/{bucket}/metadata"))
        .header("Content-Type", "application/json")
        .body(serde_json::to_vec(&request).unwrap())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .bytes()
        .await
        .map(|b| serde_json::from_slice(&b).unwrap())
        .unwrap();
    let task = placed.tasks_ids.first().expect("a task id").clone();
    http.post(format!("{router}/api/v4/buckets/data/{task}/chunked"))
        .body(bytes.to_vec())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
}

/// Rewrites a ball's chunks as `chunks` (bytes and tags), with `num_chunks` and the
/// `full_checksum` made consistent, so that only the encryption can tell.
async fn rewrite_ball(
    router: &str,
    bucket: &str,
    ball: &str,
    chunks: Vec<(Vec<u8>, Metadata)>,
    old_count: usize,
) {
    let full = sha256_hex(
        &chunks
            .iter()
            .flat_map(|(b, _)| b.clone())
            .collect::<Vec<u8>>(),
    );
    let n = chunks.len();
    for (i, (bytes, meta)) in chunks.into_iter().enumerate() {
        let mut tags = meta.tags.clone();
        tags.insert("index".into(), i.to_string());
        tags.insert("num_chunks".into(), n.to_string());
        tags.insert("chunk_size".into(), bytes.len().to_string());
        tags.insert("full_checksum".into(), full.clone());
        replace_chunk(router, bucket, &format!("{ball}_{i}"), ball, &bytes, tags).await;
    }
    for i in n..old_count {
        let http = reqwest::Client::new();
        http.delete(format!("{router}/api/v4/buckets/{bucket}/{ball}_{i}"))
            .header("Force", "1")
            .send()
            .await
            .unwrap();
    }
}

async fn assert_fails_to_open(c: &Client, ball: &str, key: &KeyPair, what: &str) {
    let err = within(what, get_plain(c, "enc", ball, key))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Decryption { .. }),
        "{what}, get_bytes: {err}"
    );
    let err = within(what, stream_plain(c, "enc", ball, key))
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Decryption { .. }),
        "{what}, get_stream: {err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let err = within(
        what,
        c.get_to_file_opts("enc", ball, &out, opened_with(key)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, Error::Decryption { .. }),
        "{what}, get_to_file: {err}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "{what}: no plaintext left"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_rewritten_with_valid_checksums_fail_to_open() {
    let (cluster, c) = cluster().await;
    let router = cluster.router_url();
    let alice = KeyPair::generate();
    let plain = data(4 * SEGMENT + 100, 3);
    let chunks_of = |chunks: &[(Bytes, Metadata)]| -> Vec<(Vec<u8>, Metadata)> {
        chunks
            .iter()
            .map(|(b, m)| (b.to_vec(), m.clone()))
            .collect()
    };

    // One flipped bit in a stored chunk.
    c.put_bytes("enc", "tampered", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    let mut chunks = chunks_of(&stored_chunks(&c, "enc", "tampered").await);
    chunks[2].0[10] ^= 0x01;
    rewrite_ball(&router, "enc", "tampered", chunks, 5).await;
    assert_fails_to_open(&c, "tampered", &alice, "a flipped bit").await;

    // Two chunks swapped.
    c.put_bytes("enc", "swapped", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    let mut chunks = chunks_of(&stored_chunks(&c, "enc", "swapped").await);
    let (a, b) = (chunks[0].0.clone(), chunks[1].0.clone());
    chunks[0].0 = b;
    chunks[1].0 = a;
    rewrite_ball(&router, "enc", "swapped", chunks, 5).await;
    assert_fails_to_open(&c, "swapped", &alice, "two chunks swapped").await;

    // The last chunk dropped (the ball now ends early), and a chunk from another ball.
    c.put_bytes("enc", "truncated", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    let mut chunks = chunks_of(&stored_chunks(&c, "enc", "truncated").await);
    chunks.pop();
    rewrite_ball(&router, "enc", "truncated", chunks, 5).await;
    assert_fails_to_open(&c, "truncated", &alice, "truncated").await;

    c.put_bytes("enc", "donor", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    c.put_bytes("enc", "grafted", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    let donor = chunks_of(&stored_chunks(&c, "enc", "donor").await);
    let mut chunks = chunks_of(&stored_chunks(&c, "enc", "grafted").await);
    chunks[1].0 = donor[1].0.clone();
    rewrite_ball(&router, "enc", "grafted", chunks, 5).await;
    assert_fails_to_open(&c, "grafted", &alice, "a chunk of another ball").await;

    // A wrapped key that names alice but was made for another key: a wrong key.
    c.put_bytes("enc", "rewrapped", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    let bob = KeyPair::generate();
    c.put_bytes("enc", "for-bob", plain.clone(), sealed_to(&[&bob]))
        .await
        .unwrap();
    let bobs = stored_chunks(&c, "enc", "for-bob").await;
    let entry = bobs[0].1.tag("xolo_recipient_0").unwrap().to_owned();
    let forged = entry.replacen(&bob.fingerprint(), &alice.fingerprint(), 1);
    let mut chunks = chunks_of(&stored_chunks(&c, "enc", "rewrapped").await);
    chunks[0].1.tags.insert("xolo_recipient_0".into(), forged);
    rewrite_ball(&router, "enc", "rewrapped", chunks, 5).await;
    assert_fails_to_open(&c, "rewrapped", &alice, "a wrong key").await;

    // The untouched balls still open.
    assert_eq!(get_plain(&c, "enc", "donor", &alice).await.unwrap(), plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_client_jobs_carry_the_keys() {
    let (_cluster, c) = cluster().await;
    let queue = AsyncClient::with_client_defaults(c);
    let alice = KeyPair::generate();
    let plain = data(7 * SEGMENT, 5);
    let put = queue
        .put(PutJob::bytes("enc", "queued", plain.clone()).with_options(sealed_to(&[&alice])))
        .await
        .unwrap();
    assert!(matches!(
        within("put job", queue.wait(&put)).await,
        Ok(JobOutput::Put(_))
    ));
    let get = queue
        .get(GetJob::to_memory("enc", "queued").with_options(opened_with(&alice)))
        .await
        .unwrap();
    match within("get job", queue.wait(&get)).await {
        Ok(JobOutput::Get(got)) => assert_eq!(got.data, plain),
        other => panic!("{other:?}"),
    }
    let get = queue.get(GetJob::to_memory("enc", "queued")).await.unwrap();
    let err = within("keyless get job", queue.wait(&get))
        .await
        .unwrap_err();
    assert!(matches!(*err, Error::MissingKey { .. }), "{err}");
    queue.shutdown().await;
}

/// Every file under `dir`, recursively.
fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_overwritten_on_a_peers_disk_are_an_error_never_data() {
    // Every chunk in a file of its own, to damage (small ones would live in the database).
    let cluster = LocalCluster::builder()
        .peers(2)
        .inline_limit(0)
        .start()
        .await
        .expect("cluster starts");
    let c = client_for(&cluster.uri());
    let alice = KeyPair::generate();
    let plain = data(3 * SEGMENT, 4);
    c.put_bytes("enc", "on-disk", plain.clone(), sealed_to(&[&alice]))
        .await
        .unwrap();
    // The only balls of this cluster are this one's three sealed chunks: flip a byte in
    // each stored object, as a thief with the disk (but without the key) could.
    let mut flipped = 0;
    for i in 0..2 {
        let dir = cluster.peer_data_dir(i).unwrap().join("objects");
        for file in files_under(&dir) {
            let mut bytes = std::fs::read(&file).unwrap();
            if bytes.len() as u64 == CHUNK {
                bytes[100] ^= 0x40;
                std::fs::write(&file, &bytes).unwrap();
                flipped += 1;
            }
        }
    }
    assert_eq!(flipped, 3, "one stored object per chunk");
    let err = within("get", get_plain(&c, "enc", "on-disk", &alice))
        .await
        .unwrap_err();
    assert!(
        !matches!(err, Error::NotARecipient { .. } | Error::MissingKey { .. }),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    assert!(within(
        "get_to_file",
        c.get_to_file_opts("enc", "on-disk", &out, opened_with(&alice))
    )
    .await
    .is_err());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no plaintext left"
    );
}
