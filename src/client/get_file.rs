//! `get_to_file`: a ball written to disk atomically.
//!
//! The chunks go, in order and verified, into a temporary file next to the destination; the
//! file is fsynced and renamed over the destination only after the whole ball's checksum
//! matched, then the directory is fsynced so that the rename survives a crash. On an error or
//! a cancellation (or if the future is dropped) the temporary file is removed: no partial file
//! is ever left at `path` or beside it.

use std::path::{Path, PathBuf};

use futures::StreamExt;
use tokio::time::Instant;

use super::file_writer::BackgroundWriter;
use super::options::GetOptions;
use super::temp_file::{temp_path, TempFileGuard};
use super::Client;
use crate::blocking;
use crate::Error;

/// What `get_to_file` wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetFileResult {
    /// The destination path.
    pub path: PathBuf,
    /// Bytes written.
    pub size: u64,
}

impl Client {
    /// Writes a ball to the file at `path`, verified, atomically (see the module docs).
    /// An existing file at `path` is replaced.
    ///
    /// # Errors
    ///
    /// As [`get_bytes`](Self::get_bytes), plus [`Error::Io`] for local file errors (the
    /// destination's directory must exist).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let written = client.get_to_file("videos", "intro", "/tmp/intro.mp4").await?;
    /// println!("{} bytes", written.size);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_to_file(
        &self,
        bucket: &str,
        ball_id: &str,
        path: impl AsRef<Path>,
    ) -> Result<GetFileResult, Error> {
        self.get_to_file_opts(bucket, ball_id, path, GetOptions::default())
            .await
    }

    /// [`get_to_file`](Self::get_to_file) with options: chunks fetched ahead, cancellation,
    /// progress, and the key that opens an encrypted ball
    /// ([`GetOptions::decrypt_with`](crate::GetOptions::decrypt_with)). A ball that fails to
    /// open leaves no file (not even the part decrypted before the failure).
    ///
    /// # Errors
    ///
    /// As [`get_to_file`](Self::get_to_file), or a cancelled error (see
    /// [`Error::is_cancelled`](crate::Error::is_cancelled)).
    pub async fn get_to_file_opts(
        &self,
        bucket: &str,
        ball_id: &str,
        path: impl AsRef<Path>,
        opts: GetOptions,
    ) -> Result<GetFileResult, Error> {
        let started = Instant::now();
        let path = path.as_ref().to_path_buf();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Error::Validation {
                message: format!("{} does not name a file", path.display()),
            })?
            .to_owned();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let mut chunks = self.get_stream_opts(bucket, ball_id, opts);
        let guard = TempFileGuard::new(temp_path(&dir, &name));
        let mut file = BackgroundWriter::create_new(guard.path()).await?;
        let mut size = 0u64;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            size = size.saturating_add(u64::try_from(chunk.len()).unwrap_or(u64::MAX));
            file.write(chunk).await?;
        }
        file.sync_and_close().await?;
        tokio::fs::rename(guard.path(), &path).await?;
        guard.keep();
        sync_dir(dir).await;
        tracing::info!(
            event = "GET.TO.FILE",
            bucket_id = bucket,
            key = ball_id,
            size,
            path = %path.display(),
            response_time = started.elapsed().as_secs_f64(),
        );
        Ok(GetFileResult { path, size })
    }
}

/// Fsyncs a directory so that a rename in it is durable; best effort (not every platform
/// can open a directory).
async fn sync_dir(dir: PathBuf) {
    let sync = move || std::fs::File::open(&dir)?.sync_all();
    if let Err(e) = blocking::run_io("directory sync", sync).await {
        tracing::debug!(event = "GET.TO.FILE.DIR.SYNC.FAILED", error = %e);
    }
}
