//! Generated test data for `demo` and `bench`: pseudo-random bytes from a fixed seed, so
//! runs are repeatable, written without holding a whole file in memory.

use std::io::Write;
use std::path::Path;

use rand::{RngCore, SeedableRng};

/// The seed of generated files ("mict").
const FILE_SEED: u64 = 0x6d69_6374;

/// `len` pseudo-random bytes from `seed`.
pub fn generated(len: usize, seed: u64) -> Vec<u8> {
    let mut data = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut data);
    data
}

/// Writes `size` pseudo-random bytes to `path`, 1 MiB at a time, on the blocking pool.
pub async fn write_generated_file(path: &Path, size: u64) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut rng = rand::rngs::StdRng::seed_from_u64(FILE_SEED);
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let mut buf = vec![0u8; 1 << 20];
        let mut left = size;
        while left > 0 {
            let n = usize::try_from(left.min(buf.len() as u64)).unwrap_or(buf.len());
            rng.fill_bytes(&mut buf[..n]);
            out.write_all(&buf[..n])?;
            left -= n as u64;
        }
        out.flush()
    })
    .await
    .map_err(std::io::Error::other)?
}
