//! The SDK's foundation used together, as an application would: parse the configuration,
//! plan a ball, hash it from disk, and classify server errors.

use mictlanx::checksum::{digest_file, sha256_hex};
use mictlanx::chunking::{ChunkPlan, ChunkRule};
use mictlanx::id::{chunk_key, split_chunk_key, BallId, BucketId};
use mictlanx::model::{tag, Metadata, Tags};
use mictlanx::size::parse_size;
use mictlanx::uri::{parse_addresses, Protocol};
use mictlanx::Error;

#[test]
fn router_configuration_in_both_formats() {
    let uri =
        "mictlanx://router-0@127.0.0.1:60666,router-1@127.0.0.1:60667/?protocol=http&api_version=4";
    let routers = parse_addresses(uri, Protocol::Https).unwrap();
    assert_eq!(routers.len(), 2);
    assert_eq!(routers[1].base_url(), "http://127.0.0.1:60667");

    let legacy = "router-0:127.0.0.1:60666 router-1:example.org/v0/mictlanx/router:-1";
    let routers = parse_addresses(legacy, Protocol::Https).unwrap();
    assert_eq!(routers[0].base_url(), "https://127.0.0.1:60666");
    assert_eq!(
        routers[1].base_url(),
        "https://example.org/v0/mictlanx/router"
    );
}

#[tokio::test]
async fn a_file_is_planned_hashed_and_tagged_like_the_python_client() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.bin");
    let data: Vec<u8> = (0..40_000u32).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(&path, &data).unwrap();

    let chunk_size = parse_size("10kb").unwrap();
    let digest = digest_file(&path, |n| ChunkPlan::new(n, chunk_size, ChunkRule::File))
        .await
        .unwrap();
    assert_eq!(digest.full_checksum, sha256_hex(&data));
    assert_eq!(digest.chunk_checksums.len(), 4);

    let bucket = BucketId::new("my-bucket").unwrap();
    let ball = BallId::new("data.bin").unwrap(); // kept as given, on put and get
    assert_eq!(ball.as_str(), "data.bin");
    let plan = ChunkPlan::file(data.len() as u64, chunk_size).unwrap();
    let metas: Vec<Metadata> = plan
        .iter()
        .map(|r| {
            let bytes = &data[r.as_usize_range().unwrap()];
            let mut tags = Tags::new();
            tags.insert(tag::INDEX.into(), r.index.to_string());
            tags.insert(tag::CHUNK_SIZE.into(), r.len.to_string());
            tags.insert(tag::GROUP_ID.into(), ball.to_string());
            tags.insert(tag::NUM_CHUNKS.into(), plan.num_chunks().to_string());
            tags.insert(tag::FULL_CHECKSUM.into(), digest.full_checksum.clone());
            Metadata {
                key: chunk_key(ball.as_str(), r.index),
                size: r.len,
                checksum: sha256_hex(bytes),
                tags,
                content_type: "application/octet-stream".into(),
                producer_id: "client-0".into(),
                ball_id: ball.to_string(),
                bucket_id: bucket.to_string(),
                is_disabled: false,
            }
        })
        .collect();
    // A "10kb" chunk is exactly 10000 bytes (reference §13, get test).
    assert_eq!(metas[1].size, 10_000);
    assert_eq!(metas[1].index(), Some(1));
    assert_eq!(split_chunk_key(&metas[3].key), Some(("data.bin", 3)));
    for (m, c) in metas.iter().zip(&digest.chunk_checksums) {
        assert_eq!(&m.checksum, c);
        assert_eq!(m.num_chunks(), Some(4));
    }
}

#[test]
fn server_answers_become_precise_errors() {
    let e = Error::from_response(
        404,
        br#"{"detail":{"msg":"No available peers.","code":666,"replicas":[]}}"#,
    );
    assert!(matches!(e, Error::MaxAvailabilityReached { .. }));
    let e = Error::from_response(400, br#"{"detail":"key contains a path separator"}"#);
    assert!(matches!(e, Error::Validation { .. }));
    assert!(!e.is_retryable());
    assert!(BucketId::new("../etc").is_err());
}
