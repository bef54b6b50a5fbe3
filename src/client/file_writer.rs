//! Writing a sequence of `Bytes` to a file on the blocking pool, one write behind.
//!
//! `tokio::fs::File` copies every write into a buffer of its own before handing it to the
//! blocking pool; for a ball written chunk by chunk that is a second copy of every byte. The
//! writer here hands the chunk itself (a reference-counted `Bytes`) to the pool instead, and
//! returns as soon as the previous write is done, so the write of one chunk still overlaps
//! with fetching the next.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use bytes::Bytes;
use tokio::task::JoinHandle;

/// A file being written in the background (see the module docs).
#[derive(Debug)]
pub(crate) struct BackgroundWriter {
    /// The file, when no write is running.
    idle: Option<File>,
    /// The running write, which gives the file back.
    busy: Option<JoinHandle<io::Result<File>>>,
}

impl BackgroundWriter {
    /// Creates `path`, which must not exist yet.
    pub async fn create_new(path: &Path) -> io::Result<Self> {
        let path = path.to_path_buf();
        let file = blocking(move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
        })
        .await?;
        Ok(Self {
            idle: Some(file),
            busy: None,
        })
    }

    /// Waits for the previous write, then starts writing `data` and returns.
    ///
    /// # Errors
    ///
    /// The previous write's error: once a write failed, the file is gone from the writer and
    /// every later call fails too.
    pub async fn write(&mut self, data: Bytes) -> io::Result<()> {
        let mut file = self.take_file().await?;
        self.busy = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&data)?;
            Ok(file)
        }));
        Ok(())
    }

    /// Waits for the last write, then fsyncs the file and closes it.
    ///
    /// # Errors
    ///
    /// The last write's error, or the fsync's.
    pub async fn sync_and_close(mut self) -> io::Result<()> {
        let file = self.take_file().await?;
        blocking(move || file.sync_all()).await
    }

    /// Waits for the last write and closes the file, without an fsync.
    ///
    /// # Errors
    ///
    /// The last write's error.
    pub async fn close(mut self) -> io::Result<()> {
        self.take_file().await.map(drop)
    }

    async fn take_file(&mut self) -> io::Result<File> {
        if let Some(write) = self.busy.take() {
            return write.await.map_err(join_error)?;
        }
        self.idle
            .take()
            .ok_or_else(|| io::Error::other("an earlier write to this file failed"))
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(f).await.map_err(join_error)?
}

fn join_error(e: tokio::task::JoinError) -> io::Error {
    io::Error::other(format!("file write task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_every_piece_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut writer = BackgroundWriter::create_new(&path).await.unwrap();
        let mut expected = Vec::new();
        for i in 0..20u8 {
            let piece = Bytes::from(vec![i; 1000 + usize::from(i) * 7919]);
            expected.extend_from_slice(&piece);
            writer.write(piece).await.unwrap();
        }
        writer.write(Bytes::new()).await.unwrap();
        writer.sync_and_close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn an_existing_file_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        std::fs::write(&path, b"keep me").unwrap();
        let err = BackgroundWriter::create_new(&path).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"keep me");
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn a_failed_write_fails_that_call_or_the_next_and_every_later_one() {
        // /dev/full takes the open and refuses every write with ENOSPC.
        let file = std::fs::OpenOptions::new().write(true).open("/dev/full");
        let Ok(file) = file else { return };
        let mut writer = BackgroundWriter {
            idle: Some(file),
            busy: None,
        };
        // The first write only starts; its error comes with the next call.
        writer.write(Bytes::from_static(b"abc")).await.unwrap();
        let err = writer.write(Bytes::from_static(b"def")).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28), "{err}"); // ENOSPC
        let again = writer.write(Bytes::from_static(b"ghi")).await.unwrap_err();
        assert!(again.to_string().contains("earlier write"), "{again}");
        assert!(writer.sync_and_close().await.is_err());
    }
}
