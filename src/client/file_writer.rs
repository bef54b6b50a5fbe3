//! Writing a sequence of `Bytes` to a file on the blocking pool, one write behind.
//!
//! `tokio::fs::File` copies every write into a buffer of its own before handing it to the
//! blocking pool; for a ball written chunk by chunk that is a second copy of every byte. The
//! writer here hands a large piece itself (a reference-counted `Bytes`) to the pool instead,
//! and returns as soon as the previous write is done, so the write of one chunk still
//! overlaps with fetching the next. Small pieces (a stream being spooled may come in tiny
//! ones) are gathered first, so that each trip to the pool writes at least [`GATHER`] bytes.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use bytes::{Bytes, BytesMut};
use tokio::task::JoinHandle;

use crate::blocking;

/// What a failed task of the writer is called in its error.
const WHAT: &str = "file write";

/// Pieces at least this large are written as they are; smaller ones are gathered into
/// writes of this size.
const GATHER: usize = 64 * 1024;

/// A file being written in the background (see the module docs).
#[derive(Debug)]
pub(crate) struct BackgroundWriter {
    /// The file, when no write is running.
    idle: Option<File>,
    /// The running write, which gives the file back.
    busy: Option<JoinHandle<io::Result<File>>>,
    /// Small pieces not written yet.
    gathered: BytesMut,
}

impl BackgroundWriter {
    /// Creates `path`, which must not exist yet.
    pub async fn create_new(path: &Path) -> io::Result<Self> {
        let path = path.to_path_buf();
        let file = blocking::run_io(WHAT, move || {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
        })
        .await?;
        Ok(Self {
            idle: Some(file),
            busy: None,
            gathered: BytesMut::new(),
        })
    }

    /// Queues `data`: a large piece starts writing (once the previous write is done) and the
    /// call returns; a small one is gathered with the next ones.
    ///
    /// # Errors
    ///
    /// The previous write's error: once a write failed, the file is gone from the writer and
    /// every later call fails too.
    pub async fn write(&mut self, data: Bytes) -> io::Result<()> {
        if data.len() >= GATHER {
            self.write_gathered().await?;
            return self.start_write(data).await;
        }
        self.gathered.extend_from_slice(&data);
        if self.gathered.len() >= GATHER {
            self.write_gathered().await?;
        }
        Ok(())
    }

    /// Writes what was gathered, waits for the last write, then fsyncs the file and closes it.
    ///
    /// # Errors
    ///
    /// The error of a write, or the fsync's.
    pub async fn sync_and_close(mut self) -> io::Result<()> {
        self.write_gathered().await?;
        let file = self.take_file().await?;
        blocking::run_io(WHAT, move || file.sync_all()).await
    }

    /// Writes what was gathered, waits for the last write and closes the file, without an
    /// fsync.
    ///
    /// # Errors
    ///
    /// The error of a write.
    pub async fn close(mut self) -> io::Result<()> {
        self.write_gathered().await?;
        self.take_file().await.map(drop)
    }

    async fn write_gathered(&mut self) -> io::Result<()> {
        if self.gathered.is_empty() {
            return Ok(());
        }
        let data = self.gathered.split().freeze();
        self.start_write(data).await
    }

    /// Waits for the previous write, then starts writing `data`.
    async fn start_write(&mut self, data: Bytes) -> io::Result<()> {
        let mut file = self.take_file().await?;
        self.busy = Some(tokio::task::spawn_blocking(move || {
            file.write_all(&data)?;
            Ok(file)
        }));
        Ok(())
    }

    async fn take_file(&mut self) -> io::Result<File> {
        if let Some(write) = self.busy.take() {
            return write.await.map_err(|e| blocking::task_failed(WHAT, e))?;
        }
        self.idle
            .take()
            .ok_or_else(|| io::Error::other("an earlier write to this file failed"))
    }
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
        // Small and large pieces mixed (1,000 to 151,461 bytes), then many tiny ones.
        for i in 0..20u8 {
            let piece = Bytes::from(vec![i; 1000 + usize::from(i) * 7919]);
            expected.extend_from_slice(&piece);
            writer.write(piece).await.unwrap();
        }
        for i in 0..100_000u32 {
            let piece = Bytes::from(vec![(i % 256) as u8]);
            expected.extend_from_slice(&piece);
            writer.write(piece).await.unwrap();
        }
        writer.write(Bytes::new()).await.unwrap();
        writer.sync_and_close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[tokio::test]
    async fn close_writes_what_was_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out");
        let mut writer = BackgroundWriter::create_new(&path).await.unwrap();
        writer.write(Bytes::from_static(b"only ")).await.unwrap();
        writer.write(Bytes::from_static(b"small")).await.unwrap();
        writer.close().await.unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"only small");
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
            gathered: BytesMut::new(),
        };
        let large = || Bytes::from(vec![1u8; GATHER]);
        // The first write only starts; its error comes with the next call.
        writer.write(large()).await.unwrap();
        let err = writer.write(large()).await.unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28), "{err}"); // ENOSPC
        let again = writer.write(large()).await.unwrap_err();
        assert!(again.to_string().contains("earlier write"), "{again}");
        // Gathered bytes cannot be written either.
        writer.write(Bytes::from_static(b"abc")).await.unwrap();
        assert!(writer.sync_and_close().await.is_err());
    }
}
