//! 50 MB balls through a real `LocalCluster`: a file (streamed from disk and back to disk)
//! and a stream (spooled, then read back as a stream of verified chunks).

use bytes::Bytes;
use futures::StreamExt;
use mictlanx::checksum::sha256_file;
use mictlanx::{Client, PutOptions};
use mictlanx_server::LocalCluster;

const SIZE: usize = 50_000_000;

fn piece(i: usize) -> Vec<u8> {
    (0..1_000_000usize)
        .map(|j| ((i * 7919 + j) % 251) as u8)
        .collect()
}

#[tokio::test]
async fn fifty_megabytes_as_a_file_and_as_a_stream() {
    let cluster = LocalCluster::builder().peers(2).start().await.unwrap();
    let client = Client::builder()
        .routers_uri(&cluster.uri())
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("in.bin");
    {
        let mut f = std::fs::File::create(&source).unwrap();
        for i in 0..SIZE / 1_000_000 {
            std::io::Write::write_all(&mut f, &piece(i)).unwrap();
        }
    }
    let (expected, len) = sha256_file(&source).await.unwrap();
    assert_eq!(len, SIZE as u64);

    let opts = PutOptions::default()
        .with_chunk_size(4_000_000)
        .with_replication_factor(2);
    let put = client
        .put_file("large", "file", &source, opts.clone())
        .await
        .unwrap();
    assert_eq!((put.size, put.num_chunks), (SIZE as u64, 13));
    assert_eq!(put.full_checksum, expected);
    let out = dir.path().join("out.bin");
    let got = client.get_to_file("large", "file", &out).await.unwrap();
    assert_eq!(got.size, SIZE as u64);
    assert_eq!(sha256_file(&out).await.unwrap().0, expected);

    let stream = futures::stream::iter(0..SIZE / 1_000_000)
        .map(|i| Ok::<_, std::io::Error>(Bytes::from(piece(i))));
    let put = client
        .put_stream("large", "stream", stream, opts)
        .await
        .unwrap();
    assert_eq!(put.full_checksum, expected);
    let mut hasher = mictlanx::checksum::Sha256Stream::new();
    let mut chunks = client.get_stream("large", "stream");
    while let Some(chunk) = chunks.next().await {
        hasher.update(&chunk.unwrap());
    }
    assert_eq!(hasher.bytes_hashed(), SIZE as u64);
    assert_eq!(hasher.finalize_hex(), expected);
    cluster.shutdown().await;
}
