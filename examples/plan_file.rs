//! Shows how a file would be stored: its chunks, their keys and checksums.
//!
//! Run: `cargo run --example plan_file -- PATH [CHUNK_SIZE]` (chunk size like `256kb`, `1MiB`).
//! Without a path it plans a generated 1 MB file.

use mictlanx::checksum::digest_file;
use mictlanx::chunking::{ChunkPlan, ChunkRule};
use mictlanx::id::{chunk_key, BallId};
use mictlanx::size::{format_size, parse_size};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (path, _tmp) = match args.next() {
        Some(p) => (std::path::PathBuf::from(p), None),
        None => {
            let dir = tempfile::tempdir()?;
            let p = dir.path().join("generated.bin");
            let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
            std::fs::write(&p, data)?;
            (p, Some(dir))
        }
    };
    let chunk_size = parse_size(&args.next().unwrap_or_else(|| "256kb".to_string()))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "ball".to_string());
    let ball = BallId::new(&stem)?;

    let digest = digest_file(&path, |len| {
        ChunkPlan::new(len, chunk_size, ChunkRule::File)
    })
    .await?;
    println!(
        "{}: {} ({} bytes), sha256 {}",
        path.display(),
        format_size(digest.total_len),
        digest.total_len,
        digest.full_checksum
    );
    let plan = ChunkPlan::file(digest.total_len, chunk_size)?;
    for (range, checksum) in plan.iter().zip(&digest.chunk_checksums) {
        println!(
            "  {:<24} offset {:>10} len {:>9}  {}",
            chunk_key(ball.as_str(), range.index),
            range.offset,
            range.len,
            checksum
        );
    }
    Ok(())
}
