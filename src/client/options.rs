//! Options and results of the client's operations, and the progress/cancellation hooks.

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use crate::model::{Metadata, Tags};
use crate::xolo::{KeyPair, PublicKey};

/// Progress of one transfer, passed to a [`ProgressFn`] after every chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Progress {
    /// Chunks finished (stored or fetched and verified).
    pub chunks_done: u64,
    /// Chunks of the ball.
    pub chunks_total: u64,
    /// Bytes of the finished chunks.
    pub bytes_done: u64,
    /// Bytes of the ball (0 while unknown, e.g. before a get has read the metadata).
    pub bytes_total: u64,
    /// Attempt (1 = first) that finished the latest chunk.
    pub attempt: u32,
}

/// A progress callback. It is called from the task running the transfer, after each chunk;
/// keep it short (update an atomic, send on a channel). Intended for progress reporting, e.g.
/// by a task queue built on [`Client`](crate::Client).
pub type ProgressFn = Arc<dyn Fn(Progress) + Send + Sync>;

/// The hooks shared by every transfer's options.
#[derive(Clone, Default)]
pub(crate) struct Hooks {
    pub cancel: Option<CancellationToken>,
    pub progress: Option<ProgressFn>,
}

impl Hooks {
    pub fn report(&self, progress: Progress) {
        if let Some(f) = &self.progress {
            f(progress);
        }
    }

    /// A token that fires when the caller's does (never, without one).
    pub fn token(&self) -> CancellationToken {
        self.cancel.clone().unwrap_or_default()
    }
}

/// The methods of the hook fields (`cancel`, `progress`) that every transfer's options
/// carry as public fields: the same setters on each options type, and their [`Hooks`].
macro_rules! hook_methods {
    () => {
        /// Sets the cancellation token.
        #[must_use]
        pub fn with_cancel(mut self, token: CancellationToken) -> Self {
            self.cancel = Some(token);
            self
        }

        /// Sets the progress callback.
        #[must_use]
        pub fn with_progress(mut self, progress: ProgressFn) -> Self {
            self.progress = Some(progress);
            self
        }

        pub(crate) fn hooks(&self) -> Hooks {
            Hooks {
                cancel: self.cancel.clone(),
                progress: self.progress.clone(),
            }
        }
    };
}

fn debug_hooks(
    f: &mut fmt::DebugStruct<'_, '_>,
    cancel: &Option<CancellationToken>,
    progress: &Option<ProgressFn>,
) {
    f.field(
        "cancel",
        &cancel.as_ref().map(CancellationToken::is_cancelled),
    );
    f.field("progress", &progress.as_ref().map(|_| "Fn(Progress)"));
}

/// Options of a put (`put_bytes`, `put_file`, `put_stream`). `Default` gives the client's
/// chunk size and concurrency, one replica, no tags.
///
/// # Examples
///
/// ```
/// use mictlanx::PutOptions;
///
/// let opts = PutOptions::default()
///     .with_replication_factor(2)
///     .with_tag("extension", "png")
///     .with_chunk_size(1_000_000);
/// assert_eq!(opts.replication_factor, 2);
/// ```
#[derive(Clone)]
pub struct PutOptions {
    /// Bytes per chunk; the client's default (256 kB unless configured) when `None`.
    pub chunk_size: Option<u64>,
    /// Replicas to place (default 1).
    pub replication_factor: u32,
    /// User tags, written on every chunk. The system tags (`index`, `chunk_size`, `group_id`,
    /// `num_chunks`, `full_checksum`, `updated_at`) win over user tags of the same name.
    pub tags: Tags,
    /// Media type of the chunks (default `application/octet-stream`).
    pub content_type: Option<String>,
    /// Chunks uploaded at once; the client's default (8) when `None`.
    pub max_concurrency: Option<usize>,
    /// Cancels the put: in-flight uploads stop, and what this put stored is deleted.
    pub cancel: Option<CancellationToken>,
    /// Called after each stored chunk.
    pub progress: Option<ProgressFn>,
    /// Recipients of a client-side encrypted ball ([`encrypt_to`](Self::encrypt_to)); empty
    /// for a plain ball.
    pub recipients: Vec<PublicKey>,
}

impl Default for PutOptions {
    fn default() -> Self {
        Self {
            chunk_size: None,
            replication_factor: 1,
            tags: Tags::new(),
            content_type: None,
            max_concurrency: None,
            cancel: None,
            progress: None,
            recipients: Vec::new(),
        }
    }
}

impl PutOptions {
    /// Sets the chunk size in bytes.
    #[must_use]
    pub fn with_chunk_size(mut self, bytes: u64) -> Self {
        self.chunk_size = Some(bytes);
        self
    }

    /// Sets the replication factor.
    #[must_use]
    pub fn with_replication_factor(mut self, rf: u32) -> Self {
        self.replication_factor = rf;
        self
    }

    /// Adds a user tag.
    #[must_use]
    pub fn with_tag(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.insert(name.into(), value.into());
        self
    }

    /// Replaces the user tags.
    #[must_use]
    pub fn with_tags(mut self, tags: Tags) -> Self {
        self.tags = tags;
        self
    }

    /// Sets the media type.
    #[must_use]
    pub fn with_content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }

    /// Sets how many chunks go up at once.
    #[must_use]
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Encrypts the ball on the client to `recipients` (1 to 64 X25519 public keys): any
    /// one of their key pairs opens it ([`GetOptions::decrypt_with`]). Peers and routers
    /// store and verify only sealed bytes; the chunk size is then the sealed chunk size
    /// (each chunk holds `chunk_size - 16` bytes of data and a 16-byte tag), and the
    /// [`PutResult`]'s size and checksum are the sealed ball's. Tags named `xolo_*` are
    /// reserved for the encryption. See
    /// [`mictlanx::xolo`](crate::xolo) and `docs/security.md`.
    ///
    /// ```
    /// use mictlanx::xolo::KeyPair;
    /// use mictlanx::PutOptions;
    ///
    /// let alice = KeyPair::generate();
    /// let opts = PutOptions::default().encrypt_to(&[*alice.public()]);
    /// assert_eq!(opts.recipients.len(), 1);
    /// ```
    #[must_use]
    pub fn encrypt_to(mut self, recipients: &[PublicKey]) -> Self {
        self.recipients = recipients.to_vec();
        self
    }

    hook_methods!();
}

impl fmt::Debug for PutOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("PutOptions");
        s.field("chunk_size", &self.chunk_size)
            .field("replication_factor", &self.replication_factor)
            .field("tags", &self.tags)
            .field("content_type", &self.content_type)
            .field("max_concurrency", &self.max_concurrency)
            .field("recipients", &self.recipients);
        debug_hooks(&mut s, &self.cancel, &self.progress);
        s.finish()
    }
}

/// Options of a get (`get_bytes_opts`, `get_to_file_opts`, `get_stream_opts`).
///
/// # Examples
///
/// ```
/// use mictlanx::GetOptions;
/// use tokio_util::sync::CancellationToken;
///
/// let cancel = CancellationToken::new();
/// let opts = GetOptions::default().with_max_concurrency(4).with_cancel(cancel.clone());
/// assert_eq!(opts.max_concurrency, Some(4));
/// ```
#[derive(Clone, Default)]
pub struct GetOptions {
    /// Chunks fetched at once (for a stream: fetched ahead); the client's default when `None`.
    pub max_concurrency: Option<usize>,
    /// Cancels the get; a file being written is removed.
    pub cancel: Option<CancellationToken>,
    /// Called after each fetched and verified chunk.
    pub progress: Option<ProgressFn>,
    /// The key pair that opens an encrypted ball ([`decrypt_with`](Self::decrypt_with)).
    pub decryption_key: Option<KeyPair>,
    /// Hands out an encrypted ball's stored (sealed) bytes as they are, instead of refusing
    /// to read it without a key ([`with_raw_sealed`](Self::with_raw_sealed)).
    pub raw_sealed: bool,
}

impl GetOptions {
    /// Sets how many chunks are fetched at once.
    #[must_use]
    pub fn with_max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// Opens the ball with `key` (it must be one of the ball's recipients). A ball that is
    /// not encrypted is then refused with [`Error::NotEncrypted`](crate::Error::NotEncrypted):
    /// a caller who asked for decryption expects data that was sealed.
    ///
    /// ```
    /// use mictlanx::xolo::KeyPair;
    /// use mictlanx::GetOptions;
    ///
    /// let alice = KeyPair::generate();
    /// let opts = GetOptions::default().decrypt_with(&alice);
    /// assert!(opts.decryption_key.is_some());
    /// ```
    #[must_use]
    pub fn decrypt_with(mut self, key: &KeyPair) -> Self {
        self.decryption_key = Some(key.clone());
        self
    }

    /// With `true`, an encrypted ball read without a key yields its sealed bytes (e.g. to
    /// copy or back it up) instead of [`Error::MissingKey`](crate::Error::MissingKey).
    #[must_use]
    pub fn with_raw_sealed(mut self, raw: bool) -> Self {
        self.raw_sealed = raw;
        self
    }

    hook_methods!();
}

impl fmt::Debug for GetOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut s = f.debug_struct("GetOptions");
        s.field("max_concurrency", &self.max_concurrency)
            .field("decryption_key", &self.decryption_key)
            .field("raw_sealed", &self.raw_sealed);
        debug_hooks(&mut s, &self.cancel, &self.progress);
        s.finish()
    }
}

/// What a put stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PutResult {
    /// Sanitised bucket id.
    pub bucket_id: String,
    /// Sanitised ball id (chunk `i` is `<ball_id>_<i>`).
    pub ball_id: String,
    /// Bytes of the ball.
    pub size: u64,
    /// Chunks of the ball.
    pub num_chunks: u64,
    /// SHA-256 (hex) of the whole ball.
    pub full_checksum: String,
    /// Peers that stored (or already held) any chunk.
    pub replicas: BTreeSet<String>,
    /// Chunks that were already stored with the same size and checksum (an idempotent
    /// re-put) rather than uploaded.
    pub already_stored: u64,
    /// Wall time of the whole put.
    pub elapsed: Duration,
}

/// A ball read into memory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    /// The ball's bytes, verified.
    pub data: Bytes,
    /// Metadata of each chunk, in index order.
    pub chunks: Vec<Metadata>,
}

/// What `delete_bucket` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteBucketResult {
    /// Sanitised bucket id.
    pub bucket_id: String,
    /// Balls deleted.
    pub deleted: u64,
    /// Balls whose delete failed.
    pub failed: u64,
    /// Balls listed.
    pub total: u64,
    /// Wall time.
    pub elapsed: Duration,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[test]
    fn builders_and_debug_hide_the_callback() {
        let seen = Arc::new(AtomicU64::new(0));
        let s = Arc::clone(&seen);
        let opts = PutOptions::default()
            .with_tag("a", "b")
            .with_content_type("image/png")
            .with_max_concurrency(3)
            .with_cancel(CancellationToken::new())
            .with_progress(Arc::new(move |p: Progress| {
                s.store(p.bytes_done, Ordering::SeqCst);
            }));
        let text = format!("{opts:?}");
        assert!(text.contains("Fn(Progress)") && text.contains("image/png"));
        opts.hooks().report(Progress {
            bytes_done: 42,
            ..Progress::default()
        });
        assert_eq!(seen.load(Ordering::SeqCst), 42);
        assert!(!opts.hooks().token().is_cancelled());
        assert_eq!(PutOptions::default().replication_factor, 1);
        assert!(format!("{:?}", GetOptions::default()).contains("GetOptions"));
    }
}
