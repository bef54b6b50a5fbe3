//! Reads a ball into memory, into a file, and as a stream of verified chunks.
//!
//! Run: `cargo run --example 02_get` (embedded cluster; it stores the ball first), or with
//! `MICTLANX_URI` set: `cargo run --example 02_get -- BUCKET BALL`.

#[path = "support/mod.rs"]
mod support;

use futures::StreamExt;
use mictlanx::PutOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, cluster) = support::connect().await?;
    let mut args = std::env::args().skip(1);
    let bucket = args.next().unwrap_or_else(|| "examples".to_string());
    let ball = args.next().unwrap_or_else(|| "hello".to_string());
    if cluster.is_some() {
        let data = b"hello, MictlanX".repeat(10_000);
        client
            .put_bytes(
                &bucket,
                &ball,
                data,
                PutOptions::default().with_chunk_size(64_000),
            )
            .await?;
    }

    let meta = client.ball(&bucket, &ball).await?;
    println!(
        "{bucket}/{ball}: {} bytes, {} chunks, sha256 {}",
        meta.size,
        meta.chunks.len(),
        meta.checksum.as_deref().unwrap_or("-")
    );

    // Into memory; every chunk and the whole ball are verified.
    let got = client.get_bytes(&bucket, &ball).await?;
    println!("in memory: {} bytes", got.data.len());

    // Into a file, atomically: a temp file is verified, then renamed.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("ball.bin");
    let file = client.get_to_file(&bucket, &ball, &path).await?;
    println!("to file: {} bytes at {}", file.size, file.path.display());

    // As a stream of chunks, in order.
    let mut stream = client.get_stream(&bucket, &ball);
    let mut total = 0;
    while let Some(chunk) = stream.next().await {
        total += chunk?.len();
    }
    println!("streamed: {total} bytes");

    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    Ok(())
}
