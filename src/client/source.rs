//! Where a put's chunks come from: memory, a file read range by range, or a stream spooled to
//! a temporary file first (its length must be known before the first chunk is described).

use std::io::SeekFrom;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use super::cancelled;
use super::digest;
use super::encryption::SealedSource;
use super::temp_file::{temp_path, TempFileGuard};
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

async fn read_range(path: &Path, range: ChunkRange) -> Result<Bytes, Error> {
    let len = usize::try_from(range.len).map_err(|_| out_of_range(range))?;
    let mut file = tokio::fs::File::open(path).await?;
    file.seek(SeekFrom::Start(range.offset)).await?;
    let mut buf = vec![0u8; len];
    file.read_exact(&mut buf).await.map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            Error::Io(std::io::Error::new(
                e.kind(),
                format!("{} shrank while it was being put", path.display()),
            ))
        } else {
            Error::Io(e)
        }
    })?;
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
    let mut file = tokio::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(guard.path())
        .await?;
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
        file.write_all(&piece).await?;
        hasher = digest::update(hasher, piece).await?;
    }
    file.flush().await?;
    drop(file);
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
        assert!(file.read(beyond).await.is_err());
        assert!(memory.read(beyond).await.is_err());
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
