//! Where a put's chunks come from: memory, a file read range by range, or a stream spooled to
//! a temporary file first (its length must be known before the first chunk is described).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::cancelled;
use super::digest;
use super::encryption::SealedSource;
use super::file_writer::BackgroundWriter;
use super::temp_file::{temp_path, TempFileGuard};
use crate::blocking;
use crate::checksum::Sha256Stream;
use crate::chunking::ChunkRange;
use crate::Error;

/// The bytes of a ball being put.
#[derive(Debug, Clone)]
pub(crate) enum ChunkSource {
    /// The whole ball in memory; chunks are zero-copy slices.
    Memory(Bytes),
    /// A file; each chunk's range is read when its upload starts.
    File(PathBuf),
    /// Plaintext from memory or a file, each chunk sealed as it is read.
    Sealed(Arc<SealedSource>),
}

impl ChunkSource {
    /// The bytes of one chunk.
    pub async fn read(&self, range: ChunkRange) -> Result<Bytes, Error> {
        match self {
            ChunkSource::Sealed(sealed) => sealed.read(range).await,
            plain => plain.read_plain(range).await,
        }
    }

    /// The bytes of one range of a memory or file source.
    pub async fn read_plain(&self, range: ChunkRange) -> Result<Bytes, Error> {
        match self {
            ChunkSource::Sealed(_) => Err(Error::Validation {
                message: "a sealed source has no plaintext ranges".into(),
            }),
            ChunkSource::Memory(data) => {
                let r = range.as_usize_range().ok_or_else(|| out_of_range(range))?;
                if r.end > data.len() {
                    return Err(out_of_range(range));
                }
                Ok(data.slice(r))
            }
            ChunkSource::File(path) => read_range(path, range).await,
        }
    }
}

fn out_of_range(range: ChunkRange) -> Error {
    Error::Validation {
        message: format!(
            "chunk {} ({} bytes at {}) is outside the data",
            range.index, range.len, range.offset
        ),
    }
}

/// Reads one chunk's range of a file on the blocking pool: one trip for open, seek and read,
/// straight into the chunk's buffer. (Through `tokio::fs` it was three trips, a zero-filled
/// buffer and a copy of every byte out of tokio's own buffer.)
async fn read_range(path: &Path, range: ChunkRange) -> Result<Bytes, Error> {
    let len = usize::try_from(range.len).map_err(|_| out_of_range(range))?;
    let path = path.to_path_buf();
    blocking::run("reading", move || {
        read_range_blocking(&path, range.offset, len)
    })
    .await?
}

fn read_range_blocking(path: &Path, offset: u64, len: usize) -> Result<Bytes, Error> {
    let mut file = std::fs::File::open(path)?;
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len);
    // `read_to_end` fills the spare capacity without zeroing it first; `take` stops it at
    // the range's end, so the buffer never grows.
    let read = file.take(len as u64).read_to_end(&mut buf)?;
    if read < len {
        return Err(Error::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} shrank while it was being put", path.display()),
        )));
    }
    Ok(Bytes::from(buf))
}

/// A stream written to a temporary file, with its length and SHA-256.
#[derive(Debug)]
pub(crate) struct Spooled {
    pub guard: TempFileGuard,
    pub len: u64,
    pub full_checksum: String,
}

/// Writes `stream` to a new file in the system's temporary directory, hashing it on the way.
/// The file is removed when the returned guard drops (also on error or cancellation).
pub(crate) async fn spool<S, E>(stream: S, cancel: &CancellationToken) -> Result<Spooled, Error>
where
    S: Stream<Item = Result<Bytes, E>>,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let guard = TempFileGuard::new(temp_path(&std::env::temp_dir(), "put-stream"));
    let mut file = BackgroundWriter::create_new(guard.path()).await?;
    let mut hasher = Sha256Stream::new();
    let mut stream = std::pin::pin!(stream);
    loop {
        let next = tokio::select! {
            biased;
            () = cancel.cancelled() => return Err(cancelled()),
            next = stream.next() => next,
        };
        let Some(piece) = next else { break };
        let piece = piece.map_err(|e| Error::Io(std::io::Error::other(e)))?;
        // The write runs while the piece is hashed.
        file.write(piece.clone()).await?;
        hasher = digest::update(hasher, piece).await?;
    }
    // Read back by this process only, and deleted after the put: no fsync needed, but
    // the last write must be done, and its error seen, before the file is read.
    file.close().await?;
    let len = hasher.bytes_hashed();
    Ok(Spooled {
        guard,
        len,
        full_checksum: hasher.finalize_hex(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checksum::sha256_hex;
    use crate::chunking::ChunkPlan;

    #[tokio::test]
    async fn memory_and_file_sources_give_the_same_chunks() {
        let data: Vec<u8> = (0..25u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ball");
        tokio::fs::write(&path, &data).await.unwrap();
        let plan = ChunkPlan::file(25, 10).unwrap();
        let memory = ChunkSource::Memory(Bytes::from(data.clone()));
        let file = ChunkSource::File(path.clone());
        for range in plan.iter() {
            let a = memory.read(range).await.unwrap();
            let b = file.read(range).await.unwrap();
            assert_eq!(a, b);
            assert_eq!(a.len() as u64, range.len);
        }
        // A range past the end of the file (it shrank) is an error, not short data.
        let beyond = ChunkPlan::file(40, 10).unwrap().chunk(3).unwrap();
        let err = file.read(beyond).await.unwrap_err().to_string();
        assert!(err.contains("shrank"), "{err}");
        assert!(memory.read(beyond).await.is_err());
        // A file that vanished is an I/O error too.
        let gone = ChunkSource::File(dir.path().join("missing"));
        assert!(gone.read(plan.chunk(0).unwrap()).await.is_err());
    }

    #[tokio::test]
    async fn large_file_chunks_are_read_whole_and_exact() {
        let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 253) as u8).collect();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ball");
        tokio::fs::write(&path, &data).await.unwrap();
        let plan = ChunkPlan::file(data.len() as u64, 1 << 20).unwrap();
        let file = ChunkSource::File(path);
        let mut joined = Vec::new();
        for range in plan.iter() {
            let chunk = file.read(range).await.unwrap();
            assert_eq!(chunk.len() as u64, range.len);
            joined.extend_from_slice(&chunk);
        }
        assert_eq!(joined, data);
    }

    #[tokio::test]
    async fn spool_writes_hashes_and_cleans_up() {
        let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"hello ")),
            Ok(Bytes::from(vec![b'x'; 100_000])),
            Ok(Bytes::from_static(b"!")),
        ];
        let mut all = b"hello ".to_vec();
        all.extend(vec![b'x'; 100_000]);
        all.push(b'!');
        let spooled = spool(futures::stream::iter(pieces), &CancellationToken::new())
            .await
            .unwrap();
        assert_eq!(spooled.len, all.len() as u64);
        assert_eq!(spooled.full_checksum, sha256_hex(&all));
        let path = spooled.guard.path().to_path_buf();
        assert_eq!(tokio::fs::read(&path).await.unwrap(), all);
        drop(spooled);
        assert!(!path.exists());
    }

    #[tokio::test]
    async fn spool_reports_stream_errors_and_cancellation() {
        let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"a")),
            Err(std::io::Error::other("source broke")),
        ];
        let err = spool(futures::stream::iter(pieces), &CancellationToken::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("source broke"));
        let token = CancellationToken::new();
        token.cancel();
        let err = spool(
            futures::stream::pending::<Result<Bytes, std::io::Error>>(),
            &token,
        )
        .await
        .unwrap_err();
        assert!(err.is_cancelled());
    }
}
