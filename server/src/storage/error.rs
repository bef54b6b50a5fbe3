//! What can go wrong in the store, and how each kind answers over HTTP.

use std::io;
use std::path::PathBuf;

use axum::http::StatusCode;

use crate::error::ApiError;

/// An error of a store operation.
///
/// The variants are the kinds a caller acts on: the 4xx ones are the request's fault and carry
/// the message the client sees; [`StoreError::Corrupt`] is a detected integrity failure; the
/// rest are internal failures whose detail is logged, never sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The key is neither committed nor pending.
    #[error("{bucket_id}@{key} not found")]
    NotFound {
        /// Bucket id.
        bucket_id: String,
        /// Key.
        key: String,
    },
    /// The key was deleted; its tombstone says when (answered as 404, with the version).
    #[error("{bucket_id}@{key} not found (deleted)")]
    Deleted {
        /// Bucket id.
        bucket_id: String,
        /// Key.
        key: String,
        /// The version of the delete.
        version: crate::version::Version,
    },
    /// The key's metadata was accepted but its bytes have not arrived.
    #[error("{bucket_id}@{key} has no data yet (upload pending)")]
    Pending {
        /// Bucket id.
        bucket_id: String,
        /// Key.
        key: String,
    },
    /// The key is disabled (soft-deleted).
    #[error("{bucket_id}@{key} is disabled")]
    Disabled {
        /// Bucket id.
        bucket_id: String,
        /// Key.
        key: String,
    },
    /// No pending upload has this task id (never created, expired, completed or deleted).
    #[error("Task({0}) not found")]
    TaskNotFound(String),
    /// Another request is uploading the bytes of this task right now.
    #[error("Task({0}) is already being uploaded")]
    TaskBusy(String),
    /// The task id is already used by a pending upload of another key.
    #[error("Task({task_id}) is already used by {bucket_id}@{key}")]
    TaskInUse {
        /// The task id.
        task_id: String,
        /// Bucket of the upload that holds it.
        bucket_id: String,
        /// Key of the upload that holds it.
        key: String,
    },
    /// The key exists with other content and the put did not ask to replace it.
    #[error("{bucket_id}@{key} already exists; send Update: 1 to replace it")]
    Exists {
        /// Bucket id.
        bucket_id: String,
        /// Key.
        key: String,
    },
    /// A newer write (or delete) of the key is already here: this one lost (last writer
    /// wins). The writer may retry with a version newer than `current`.
    #[error("{bucket_id}@{key} has a newer version here ({current}); this write is older")]
    Stale {
        /// Bucket id.
        bucket_id: String,
        /// Key.
        key: String,
        /// The newest version the store has of the key.
        current: crate::version::Version,
    },
    /// The object does not fit in the remaining capacity.
    #[error("peer {peer_id} has no space: needs {needs} bytes, {free} free")]
    NoSpace {
        /// The store's owner.
        peer_id: String,
        /// Bytes the put needs.
        needs: u64,
        /// Bytes still free (capacity minus committed and reserved bytes).
        free: u64,
    },
    /// The upload carried more bytes than the metadata declared.
    #[error("body longer than declared size {declared}")]
    BodyTooLong {
        /// The declared size.
        declared: u64,
    },
    /// The upload ended before the declared size was reached.
    #[error("body shorter than declared size {declared}: received {received} bytes")]
    BodyTooShort {
        /// The declared size.
        declared: u64,
        /// Bytes received.
        received: u64,
    },
    /// The bytes' SHA-256 is not the declared checksum.
    #[error("Checksum mismatch: declared {declared}, computed {computed}")]
    ChecksumMismatch {
        /// The declared checksum, as sent.
        declared: String,
        /// The SHA-256 of the bytes received.
        computed: String,
    },
    /// The body could not be read to its end (the client went away or sent garbage framing).
    #[error("upload interrupted: {0}")]
    BodyInterrupted(String),
    /// The requested byte range lies outside the object.
    #[error("range not satisfiable: the object has {size} bytes")]
    RangeNotSatisfiable {
        /// Size of the object.
        size: u64,
    },
    /// The stored bytes no longer match their SHA-256; the object was moved aside.
    #[error("stored bytes of {bucket_id}@{key} are corrupt")]
    Corrupt {
        /// Bucket id.
        bucket_id: String,
        /// Key.
        key: String,
    },
    /// A file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The metadata database failed (boxed: redb's error is large and this path is rare).
    #[error("metadata database: {0}")]
    Db(Box<redb::Error>),
    /// A stored metadata record could not be encoded or decoded.
    #[error("metadata record {key:?}: {source}")]
    Record {
        /// The record's database key.
        key: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// A blocking worker of the store panicked or was cancelled.
    #[error("storage worker failed: {0}")]
    Worker(String),
}

impl StoreError {
    /// Wraps an IO error with what was being done.
    pub(crate) fn io(context: &'static str) -> impl FnOnce(io::Error) -> StoreError {
        move |source| StoreError::Io { context, source }
    }

    /// Whether the disk (or the quota) is full: the store refused for want of space, or a
    /// file or database write failed with `ENOSPC`/`EDQUOT`. Answered as 507.
    pub fn is_no_space(&self) -> bool {
        match self {
            StoreError::NoSpace { .. } => true,
            StoreError::Io { source, .. } => super::space::is_enospc(source),
            StoreError::Db(e) => {
                matches!(&**e, redb::Error::Io(source) if super::space::is_enospc(source))
            }
            _ => false,
        }
    }

    /// Whether the metadata database failed with an I/O error (now or at an earlier
    /// write, after which redb refuses everything until it is reopened).
    pub(crate) fn is_db_io(&self) -> bool {
        matches!(self, StoreError::Db(e) if matches!(&**e, redb::Error::Io(_) | redb::Error::PreviousIo))
    }

    /// The HTTP status this error answers with.
    pub fn status(&self) -> StatusCode {
        use StoreError::*;
        if self.is_no_space() {
            return StatusCode::INSUFFICIENT_STORAGE;
        }
        match self {
            NotFound { .. }
            | Deleted { .. }
            | Pending { .. }
            | Disabled { .. }
            | TaskNotFound(_) => StatusCode::NOT_FOUND,
            TaskBusy(_) | TaskInUse { .. } | Exists { .. } | Stale { .. } => StatusCode::CONFLICT,
            NoSpace { .. } => StatusCode::INSUFFICIENT_STORAGE,
            BodyTooLong { .. }
            | BodyTooShort { .. }
            | ChecksumMismatch { .. }
            | BodyInterrupted(_) => StatusCode::BAD_REQUEST,
            RangeNotSatisfiable { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            Corrupt { .. } | Io { .. } | Db(_) | Record { .. } | Worker(_) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// Whether the caller caused it (a 4xx), so it is not logged as an error.
    pub fn is_client_error(&self) -> bool {
        self.status().is_client_error()
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            // A full disk is a normal state: say so (507), without internals.
            StoreError::Io { .. } | StoreError::Db(_) if e.is_no_space() => {
                tracing::warn!(event = "DISK.FULL", cause = %e);
                ApiError::no_space("no space left on this peer's disk")
            }
            StoreError::Io { .. }
            | StoreError::Db(_)
            | StoreError::Record { .. }
            | StoreError::Worker(_) => ApiError::internal("storage", &e),
            // A router tells a deletion from a key never seen by these headers.
            StoreError::Deleted { version, .. } => {
                crate::version::tombstone_answer(ApiError::new(e.status(), e.to_string()), version)
            }
            // The writer learns the version to beat from the header.
            StoreError::Stale { current, .. } => ApiError::new(e.status(), e.to_string())
                .with_header(crate::version::VERSION_HEADER, current.header_value()),
            // Corruption is logged (CORRUPT.OBJECT) where it is found; the message names only
            // the object, so it is safe to send.
            other => ApiError::new(other.status(), other.to_string()),
        }
    }
}

// redb has one error type per operation and an umbrella `redb::Error` with a `From` for each;
// these let `?` lift any of them into `StoreError::Db`.
macro_rules! from_redb {
    ($($t:ty),*) => {
        $(impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        })*
    };
}
from_redb!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::DatabaseError
);

/// Why a store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The data directory (or one of its subdirectories) could not be created or read.
    #[error("cannot prepare data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The metadata database could not be opened (for example, another process holds it).
    #[error("cannot open metadata database {path}: {source}")]
    Database {
        /// The database file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: Box<redb::Error>,
    },
    /// Start-up recovery failed.
    #[error("start-up recovery failed: {0}")]
    Recovery(#[source] StoreError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_keep_their_message_and_status() {
        let e = StoreError::NoSpace {
            peer_id: "peer-0".into(),
            needs: 10,
            free: 3,
        };
        assert_eq!(e.status(), StatusCode::INSUFFICIENT_STORAGE);
        let api = ApiError::from(e);
        assert_eq!(
            api.detail,
            "peer peer-0 has no space: needs 10 bytes, 3 free"
        );
        let api = ApiError::from(StoreError::Exists {
            bucket_id: "b".into(),
            key: "k".into(),
        });
        assert_eq!(api.status, StatusCode::CONFLICT);
        assert_eq!(
            api.detail,
            "b@k already exists; send Update: 1 to replace it"
        );
    }

    #[test]
    fn enospc_is_507_whether_from_a_file_or_the_database() {
        let file = StoreError::Io {
            context: "writing an upload",
            source: super::super::space::enospc(),
        };
        let db = StoreError::Db(Box::new(redb::Error::Io(super::super::space::enospc())));
        for e in [file, db] {
            assert!(e.is_no_space());
            assert_eq!(e.status(), StatusCode::INSUFFICIENT_STORAGE);
            assert_eq!(ApiError::from(e).status, StatusCode::INSUFFICIENT_STORAGE);
        }
        assert!(StoreError::Db(Box::new(redb::Error::PreviousIo)).is_db_io());
        assert!(!StoreError::Db(Box::new(redb::Error::PreviousIo)).is_no_space());
    }

    #[test]
    fn internal_errors_hide_their_cause() {
        let e = StoreError::Io {
            context: "writing /secret/path",
            source: io::Error::other("disk on fire"),
        };
        let api = ApiError::from(e);
        assert_eq!(api.status, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!api.detail.to_string().contains("secret"));
    }
}
