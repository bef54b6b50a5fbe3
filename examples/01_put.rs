//! Stores bytes and a file as balls, with replication and tags.
//!
//! Run: `cargo run --example 01_put` (embedded cluster), or with `MICTLANX_URI` set to use
//! your own routers.

#[path = "support/mod.rs"]
mod support;

use mictlanx::PutOptions;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, cluster) = support::connect().await?;

    // Bytes in memory: one ball, chunked, each chunk on two peers.
    let greeting = b"hello, MictlanX".repeat(10_000);
    let put = client
        .put_bytes(
            "examples",
            "hello",
            greeting,
            PutOptions::default()
                .with_replication_factor(2)
                .with_chunk_size(64_000)
                .with_tag("extension", "txt"),
        )
        .await?;
    println!(
        "stored {}/{}: {} bytes in {} chunks on {:?}, sha256 {}",
        put.bucket_id, put.ball_id, put.size, put.num_chunks, put.replicas, put.full_checksum
    );

    // A file, streamed from disk chunk by chunk.
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("report.csv");
    std::fs::write(&path, "id,value\n".to_string() + &"1,2\n".repeat(50_000))?;
    let put = client
        .put_file("examples", "report", &path, PutOptions::default())
        .await?;
    println!(
        "stored {} from {} in {:?}",
        put.ball_id,
        path.display(),
        put.elapsed
    );

    // Storing identical content again is idempotent.
    let again = client
        .put_file("examples", "report", &path, PutOptions::default())
        .await?;
    println!(
        "re-put: {} of {} chunks were already there",
        again.already_stored, again.num_chunks
    );

    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    Ok(())
}
