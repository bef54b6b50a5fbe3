//! The jobs an [`AsyncClient`](crate::AsyncClient) runs: where a put's bytes come from, where
//! a get's bytes go, and what each returns.

use std::fmt;
use std::path::PathBuf;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::{GetFileResult, GetOptions, GetResult, PutOptions, PutResult};

/// A stream of bytes for [`PutSource::Stream`].
pub type ByteStream =
    BoxStream<'static, Result<Bytes, Box<dyn std::error::Error + Send + Sync + 'static>>>;

/// Where a put's bytes come from.
pub enum PutSource {
    /// Bytes in memory.
    Bytes(Bytes),
    /// A file, streamed from disk chunk by chunk.
    File(PathBuf),
    /// Any stream of bytes (spooled to a temporary file while hashed, then uploaded).
    Stream(ByteStream),
}

impl fmt::Debug for PutSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PutSource::Bytes(b) => write!(f, "Bytes({} bytes)", b.len()),
            PutSource::File(p) => write!(f, "File({})", p.display()),
            PutSource::Stream(_) => f.write_str("Stream(..)"),
        }
    }
}

/// A ball to store.
///
/// # Examples
///
/// ```
/// use mictlanx::{PutJob, PutOptions};
///
/// let job = PutJob::bytes("photos", "cat", b"meow".to_vec())
///     .with_options(PutOptions::default().with_replication_factor(2));
/// assert_eq!(job.options.replication_factor, 2);
/// ```
#[derive(Debug)]
pub struct PutJob {
    /// Bucket id (validated when the job runs... and before it is queued).
    pub bucket_id: String,
    /// Ball id.
    pub ball_id: String,
    /// Where the bytes come from.
    pub source: PutSource,
    /// Chunk size, replication, tags. Its `cancel` and `progress` hooks are set by the queue.
    pub options: PutOptions,
}

impl PutJob {
    /// A put of bytes in memory.
    pub fn bytes(bucket_id: &str, ball_id: &str, data: impl Into<Bytes>) -> Self {
        Self::new(bucket_id, ball_id, PutSource::Bytes(data.into()))
    }

    /// A put of a file.
    pub fn file(bucket_id: &str, ball_id: &str, path: impl Into<PathBuf>) -> Self {
        Self::new(bucket_id, ball_id, PutSource::File(path.into()))
    }

    /// A put of a stream.
    pub fn stream(bucket_id: &str, ball_id: &str, stream: ByteStream) -> Self {
        Self::new(bucket_id, ball_id, PutSource::Stream(stream))
    }

    fn new(bucket_id: &str, ball_id: &str, source: PutSource) -> Self {
        Self {
            bucket_id: bucket_id.to_string(),
            ball_id: ball_id.to_string(),
            source,
            options: PutOptions::default(),
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: PutOptions) -> Self {
        self.options = options;
        self
    }
}

/// Where a get's bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GetDestination {
    /// Into memory; [`wait`](crate::AsyncClient::wait) returns them.
    Memory,
    /// Into a file, written atomically (temp file, verify, rename).
    File(PathBuf),
}

/// A ball to read.
///
/// # Examples
///
/// ```
/// use mictlanx::{GetDestination, GetJob};
///
/// let job = GetJob::to_file("photos", "cat", "/tmp/cat.jpg");
/// assert_eq!(job.destination, GetDestination::File("/tmp/cat.jpg".into()));
/// ```
#[derive(Debug, Clone)]
pub struct GetJob {
    /// Bucket id.
    pub bucket_id: String,
    /// Ball id.
    pub ball_id: String,
    /// Memory or file.
    pub destination: GetDestination,
    /// Concurrency. Its `cancel` and `progress` hooks are set by the queue.
    pub options: GetOptions,
}

impl GetJob {
    /// A get into memory.
    pub fn to_memory(bucket_id: &str, ball_id: &str) -> Self {
        Self::new(bucket_id, ball_id, GetDestination::Memory)
    }

    /// A get into a file.
    pub fn to_file(bucket_id: &str, ball_id: &str, path: impl Into<PathBuf>) -> Self {
        Self::new(bucket_id, ball_id, GetDestination::File(path.into()))
    }

    fn new(bucket_id: &str, ball_id: &str, destination: GetDestination) -> Self {
        Self {
            bucket_id: bucket_id.to_string(),
            ball_id: ball_id.to_string(),
            destination,
            options: GetOptions::default(),
        }
    }

    /// Sets the options.
    #[must_use]
    pub fn with_options(mut self, options: GetOptions) -> Self {
        self.options = options;
        self
    }
}

/// What a finished job returns from [`wait`](crate::AsyncClient::wait).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobOutput {
    /// A put's result.
    Put(PutResult),
    /// A get into memory: the verified bytes.
    Get(GetResult),
    /// A get into a file: where and how much.
    GetFile(GetFileResult),
}

/// A job the queue did not take, given back to the caller.
#[derive(Debug)]
pub enum EnqueueError<J> {
    /// The queue is full (`try_put` / `try_get` only; `put` / `get` wait for room).
    Full(J),
    /// The client is shutting down or shut down.
    Closed(J),
    /// The job's ids are not acceptable; nothing was queued.
    Invalid(J, crate::Error),
}

impl<J> EnqueueError<J> {
    /// The job that was not queued.
    pub fn into_job(self) -> J {
        match self {
            EnqueueError::Full(j) | EnqueueError::Closed(j) | EnqueueError::Invalid(j, _) => j,
        }
    }
}

impl<J> fmt::Display for EnqueueError<J> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnqueueError::Full(_) => f.write_str("the task queue is full"),
            EnqueueError::Closed(_) => f.write_str("the task queue is closed"),
            EnqueueError::Invalid(_, e) => write!(f, "job refused: {e}"),
        }
    }
}

impl<J: fmt::Debug> std::error::Error for EnqueueError<J> {}
