//! Streaming the bytes of a pending upload to disk and committing them (PD1, PD2).
//!
//! The request side reads the body and hands each piece to a blocking writer through a
//! bounded channel, so at most [`WRITE_QUEUE_DEPTH`] pieces are in memory. The writer owns the
//! temporary file from creation to commit: it hashes and writes each piece, fsyncs, checks
//! size and checksum, publishes the file and commits the metadata (sharing the database's
//! fsync with concurrent uploads, see `batch`). When the request fails or
//! is cancelled the channel closes without an end marker and the writer deletes the file, so
//! a refused or cut-short upload leaves nothing behind and keeps its pending record.

use std::collections::HashSet;
use std::fmt::Display;
use std::io::{BufWriter, Write};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use bytes::Bytes;
use futures::{Stream, StreamExt};
use mictlanx::blocks::{BlockSummer, BlockSums};
use mictlanx::checksum::{is_sha256_hex, Sha256Stream};
use mictlanx::model::Metadata;
use redb::ReadableTable;
use tokio::sync::mpsc;

use super::files::{Files, TempFile};
use super::meta::{
    encode, get_object, get_pending, get_tombstone, object_key, same_content, ObjectRecord,
    PendingRecord, INLINE, OBJECTS, PENDING, PENDING_BY_KEY, TOMBSTONES,
};
use super::space::Metered;
use super::{epoch_ms, Store, StoreError};

/// Body pieces buffered between the request and the writer.
const WRITE_QUEUE_DEPTH: usize = 8;
/// Buffer of the writer, so that small body frames do not each cost a syscall.
const WRITE_BUFFER: usize = 256 * 1024;

/// An object just committed by an upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    /// Its metadata.
    pub metadata: Metadata,
    /// SHA-256 of the stored bytes.
    pub sha256: String,
    /// Whether the declared checksum was a SHA-256 (and so was checked).
    pub verified: bool,
    /// Bytes stored.
    pub size: u64,
    /// Whether it replaced an earlier version.
    pub replaced: bool,
}

enum Piece {
    Data(Bytes),
    End,
}

/// Where the writer puts an upload's bytes.
enum Sink {
    /// A small object, kept for the database.
    Memory(Vec<u8>),
    /// A temporary file, deleted unless it is published.
    File {
        out: BufWriter<Metered>,
        temp: TempFile,
    },
}

/// The verified bytes of an upload, ready to commit.
enum Stored {
    Inline(Vec<u8>),
    /// Written and fsynced.
    File(TempFile),
}

impl Sink {
    fn write(&mut self, piece: &[u8]) -> Result<(), StoreError> {
        match self {
            Sink::Memory(buf) => {
                buf.extend_from_slice(piece);
                Ok(())
            }
            Sink::File { out, .. } => out
                .write_all(piece)
                .map_err(StoreError::io("writing an upload")),
        }
    }

    /// Flushes and fsyncs a file; a memory sink is ready as it is.
    fn finish(self) -> Result<Stored, StoreError> {
        match self {
            Sink::Memory(buf) => Ok(Stored::Inline(buf)),
            Sink::File { out, temp } => {
                let file = out
                    .into_inner()
                    .map_err(|e| StoreError::Io {
                        context: "flushing an upload",
                        source: e.into_error(),
                    })?
                    .into_file();
                file.sync_all()
                    .map_err(StoreError::io("syncing an upload"))?;
                Ok(Stored::File(temp))
            }
        }
    }
}

/// The right to upload the bytes of one task; released on drop.
struct UploadTicket {
    task_id: String,
    pending: PendingRecord,
    _claim: ActiveClaim,
}

struct ActiveClaim {
    task_id: String,
    active: Arc<Mutex<HashSet<String>>>,
}

impl Drop for ActiveClaim {
    fn drop(&mut self) {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.task_id);
    }
}

impl Store {
    /// Streams `body` into the pending upload `task_id` and commits it.
    ///
    /// The body must carry exactly the declared number of bytes, and when the declared
    /// checksum is a SHA-256 the bytes must match it. On any failure, or if the returned
    /// future is dropped, nothing is stored and the pending upload stays, so the client can
    /// retry.
    ///
    /// # Errors
    ///
    /// [`StoreError::TaskNotFound`], [`StoreError::TaskBusy`] (another upload of the task is
    /// running), [`StoreError::BodyTooLong`] (as soon as the excess arrives),
    /// [`StoreError::BodyTooShort`], [`StoreError::ChecksumMismatch`],
    /// [`StoreError::BodyInterrupted`] (the body stream failed, or sent nothing for
    /// `upload_idle_timeout`), or an internal error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future before the body ended discards the upload. Once the whole body
    /// was handed over, the writer finishes the commit even if the future is dropped.
    pub async fn upload<S, E>(&self, task_id: &str, body: S) -> Result<StoredObject, StoreError>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Display,
    {
        let ticket = self.claim_task_waiting(task_id).await?;
        let declared = ticket.pending.metadata.size;
        let (tx, rx) = mpsc::channel(WRITE_QUEUE_DEPTH);
        let store = self.clone();
        let writer = tokio::task::spawn_blocking(move || store.write_and_commit(ticket, rx));

        let mut body = std::pin::pin!(body);
        let mut received: u64 = 0;
        let idle = self.config().upload_idle_timeout;
        let refused = loop {
            let Ok(next) = tokio::time::timeout(idle, body.next()).await else {
                break Some(StoreError::BodyInterrupted(format!(
                    "no data for {} s",
                    idle.as_secs_f64()
                )));
            };
            match next {
                Some(Ok(piece)) => {
                    received = received.saturating_add(piece.len() as u64);
                    if received > declared {
                        break Some(StoreError::BodyTooLong { declared });
                    }
                    if tx.send(Piece::Data(piece)).await.is_err() {
                        // The writer stopped; its own error says why.
                        break None;
                    }
                }
                Some(Err(e)) => break Some(StoreError::BodyInterrupted(e.to_string())),
                None => {
                    let _ = tx.send(Piece::End).await;
                    break None;
                }
            }
        };
        // Closing the channel without an end marker makes the writer discard the file;
        // waiting for it means the file is gone when a refusal is answered.
        drop(tx);
        let written = writer
            .await
            .map_err(|e| StoreError::Worker(e.to_string()))?;
        match refused {
            Some(e) => Err(e),
            // A full disk marks the store full (the database's own errors are noted where
            // they happen).
            None => written.map_err(|e| self.note_full(e)),
        }
    }

    /// [`claim_task`](Self::claim_task), waiting up to [`BUSY_WAIT`] while another upload
    /// of the task holds it: a router whose previous attempt was cut answers its client
    /// before this peer has noticed the broken body and let the task go, so the client's
    /// immediate retry would otherwise be refused as busy.
    async fn claim_task_waiting(&self, task_id: &str) -> Result<UploadTicket, StoreError> {
        let started = std::time::Instant::now();
        loop {
            let id = task_id.to_string();
            match self.blocking(move |s| s.claim_task(&id)).await {
                Err(StoreError::TaskBusy(_)) if started.elapsed() < BUSY_WAIT => {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
                other => return other,
            }
        }
    }

    /// Looks the task up and claims it for this upload.
    fn claim_task(&self, task_id: &str) -> Result<UploadTicket, StoreError> {
        let pending = {
            let txn = self.db().begin_read()?;
            let table = txn.open_table(PENDING)?;
            get_pending(&table, task_id)?
        }
        .ok_or_else(|| StoreError::TaskNotFound(task_id.to_string()))?;
        let active = Arc::clone(&self.inner.active);
        if !active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(task_id.to_string())
        {
            return Err(StoreError::TaskBusy(task_id.to_string()));
        }
        Ok(UploadTicket {
            task_id: task_id.to_string(),
            pending,
            _claim: ActiveClaim {
                task_id: task_id.to_string(),
                active,
            },
        })
    }

    /// Whether an upload of `task_id` is running (the expiry sweep leaves those alone).
    pub(crate) fn is_uploading(&self, task_id: &str) -> bool {
        self.inner
            .active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(task_id)
    }

    /// The blocking writer: receives pieces until the end marker, then verifies and commits.
    /// Objects up to `inline_limit` are collected in memory and committed into the database
    /// with their record; larger ones go through a temporary file.
    fn write_and_commit(
        &self,
        ticket: UploadTicket,
        mut rx: mpsc::Receiver<Piece>,
    ) -> Result<StoredObject, StoreError> {
        let declared = ticket.pending.metadata.size;
        let mut sink = if declared <= self.config().inline_limit {
            // `declared` is at most the inline limit here, so the reservation is small.
            Sink::Memory(Vec::with_capacity(usize::try_from(declared).unwrap_or(0)))
        } else {
            let (file, temp) = self
                .files()
                .create_temp()
                .map_err(StoreError::io("creating a temporary file"))?;
            let file = Metered::new(file, self.simulated_disk());
            Sink::File {
                out: BufWriter::with_capacity(WRITE_BUFFER, file),
                temp,
            }
        };
        let mut hasher = Sha256Stream::new();
        let mut blocks = BlockSummer::new();
        loop {
            match rx.blocking_recv() {
                Some(Piece::Data(piece)) => {
                    if hasher.bytes_hashed().saturating_add(piece.len() as u64) > declared {
                        return Err(StoreError::BodyTooLong { declared });
                    }
                    hasher.update(&piece);
                    blocks.update(&piece);
                    sink.write(&piece)?;
                }
                Some(Piece::End) => break,
                // The request failed or was cancelled; a temp file is dropped and deleted.
                None => return Err(StoreError::BodyInterrupted("body not completed".into())),
            }
        }
        drop(rx);
        let received = hasher.bytes_hashed();
        if received < declared {
            return Err(StoreError::BodyTooShort { declared, received });
        }
        let sha256 = hasher.finalize_hex();
        let declared_sum = &ticket.pending.metadata.checksum;
        let verified = is_sha256_hex(declared_sum);
        if verified && !declared_sum.eq_ignore_ascii_case(&sha256) {
            return Err(StoreError::ChecksumMismatch {
                declared: declared_sum.clone(),
                computed: sha256,
            });
        }
        let stored = sink.finish()?;
        let sums = Sums {
            sha256,
            verified,
            blocks: blocks.finish(),
        };
        self.commit_upload(ticket, stored, sums, received)
    }

    /// Publishes the file (if any) and commits the metadata, with the bytes of an inline
    /// object; deletes the replaced version's file.
    fn commit_upload(
        &self,
        ticket: UploadTicket,
        stored: Stored,
        sums: Sums,
        size: u64,
    ) -> Result<StoredObject, StoreError> {
        let Sums {
            sha256,
            verified,
            blocks,
        } = sums;
        let started = &ticket.pending;
        let (published, name, inline_bytes) = match stored {
            Stored::File(temp) => {
                let name =
                    Files::new_object_name(&started.metadata.bucket_id, &started.metadata.key);
                let published = self
                    .files()
                    .publish(temp, &name)
                    .map_err(StoreError::io("publishing an upload"))?;
                (Some(published), name, None)
            }
            Stored::Inline(bytes) => (None, String::new(), Some(bytes)),
        };
        let db_key = object_key(&started.metadata.bucket_id, &started.metadata.key);
        let now_ms = epoch_ms(SystemTime::now());
        // If this fails, `published` is dropped and the new file deleted: nothing references it.
        let (meta, replaced) = self.write(|txn, delta| {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut by_key = txn.open_table(PENDING_BY_KEY)?;
            let mut inline = txn.open_table(INLINE)?;
            // The pending record must still be the one this upload started from: it may have
            // been deleted, expired or replaced by a newer put meanwhile. Its metadata may have
            // changed in place (disabled), so the current one is what gets committed.
            let mut tombstones = txn.open_table(TOMBSTONES)?;
            let current = get_pending(&pending, &ticket.task_id)?
                .filter(|p| {
                    p.created_at_ms == started.created_at_ms
                        && p.version == started.version
                        && same_content(&p.metadata, &started.metadata)
                })
                .ok_or_else(|| StoreError::TaskNotFound(ticket.task_id.clone()))?;
            let version = current.version;
            let replication_factor = current.replication_factor;
            let meta = current.metadata;
            let old = get_object(&objects, &db_key)?;
            // A newer write or delete committed meanwhile: this version lost (its pending
            // record stays for the expiry sweep, and its file is dropped with `published`).
            let newest = old
                .as_ref()
                .map(|o| o.version)
                .max(get_tombstone(&tombstones, &db_key)?.map(|t| t.version));
            if let Some(current) = newest.filter(|v| *v >= version) {
                return Err(StoreError::Stale {
                    bucket_id: meta.bucket_id.clone(),
                    key: meta.key.clone(),
                    current,
                });
            }
            if let Some(old) = &old {
                if !current.update && !same_content(&old.metadata, &meta) {
                    return Err(StoreError::Exists {
                        bucket_id: meta.bucket_id.clone(),
                        key: meta.key.clone(),
                    });
                }
            }
            let record = ObjectRecord {
                metadata: meta.clone(),
                sha256: sha256.clone(),
                verified,
                file: name.clone(),
                stored_size: size,
                created_at_ms: old.as_ref().map_or(now_ms, |o| o.created_at_ms),
                updated_at_ms: now_ms,
                inline: inline_bytes.is_some(),
                version,
                replication_factor,
                block_crc32c: if inline_bytes.is_some() {
                    String::new()
                } else {
                    blocks.to_hex()
                },
            };
            objects.insert(db_key.as_str(), encode(&db_key, &record)?.as_slice())?;
            tombstones.remove(db_key.as_str())?;
            match &inline_bytes {
                Some(bytes) => {
                    inline.insert(db_key.as_str(), bytes.as_slice())?;
                }
                // A file replaces an inline version: its bytes go with it.
                None => {
                    inline.remove(db_key.as_str())?;
                }
            }
            pending.remove(ticket.task_id.as_str())?;
            let indexed = by_key
                .get(db_key.as_str())?
                .map(|g| g.value() == ticket.task_id);
            if indexed == Some(true) {
                by_key.remove(db_key.as_str())?;
            }
            delta.remove_pending(meta.size);
            delta.add_object(size);
            if let Some(old) = &old {
                delta.remove_object(old.stored_size);
            }
            Ok((meta, old))
        })?;
        // Committed: from here the record names this file, so it must stay.
        if let Some(published) = published {
            published.keep();
        }
        if let Some(old) = &replaced {
            if !old.inline && old.file != name {
                if let Err(e) = self.files().remove_object(&old.file) {
                    // Harmless: the next start-up removes unreferenced files.
                    tracing::warn!(event = "OLD.VERSION.REMOVE.FAILED", file = %old.file, error = %e);
                }
            }
        }
        Ok(StoredObject {
            metadata: meta,
            sha256,
            verified,
            size,
            replaced: replaced.is_some(),
        })
    }
}

/// What an upload computed from the bytes it received.
struct Sums {
    /// SHA-256 (lowercase hex) of the whole object.
    sha256: String,
    /// Whether the declared checksum was a SHA-256 (and matched).
    verified: bool,
    /// CRC32C of each block.
    blocks: BlockSums,
}

/// How long an upload waits for another upload of the same task to let it go.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{KeyState, PutOutcome};
    use super::*;
    use futures::SinkExt;

    type Feed = futures::channel::mpsc::Sender<Result<Bytes, std::io::Error>>;

    /// Accepts `b@k` (10 bytes) and starts its upload with 2 bytes sent, holding its task
    /// when this returns; the test sends the rest (or not) through the feed.
    async fn upload_under_way(
        store: &Store,
    ) -> (
        PutOutcome,
        Feed,
        tokio::task::JoinHandle<Result<StoredObject, StoreError>>,
    ) {
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let (mut tx, first) = fed_upload(store, out.task_id());
        tx.send(Ok(Bytes::from_static(b"01"))).await.unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !store.is_uploading(out.task_id()) {
            assert!(std::time::Instant::now() < deadline, "upload never started");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        (out, tx, first)
    }

    /// Starts the upload of `task_id` whose body the test then sends piece by piece.
    fn fed_upload(
        store: &Store,
        task_id: &str,
    ) -> (
        Feed,
        tokio::task::JoinHandle<Result<StoredObject, StoreError>>,
    ) {
        let (tx, rx) = futures::channel::mpsc::channel(4);
        let (store, task_id) = (store.clone(), task_id.to_string());
        (
            tx,
            tokio::spawn(async move { store.upload(&task_id, rx).await }),
        )
    }

    #[tokio::test]
    async fn put_commit_read() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let stored = put_object(&store, "b", "k", &data).await;
        assert!(stored.verified);
        assert!(!stored.replaced);
        assert_eq!(stored.sha256, mictlanx::checksum::sha256_hex(&data));
        assert_eq!(read_all(&store, "b", "k").await.unwrap(), data);
        let u = store.usage();
        assert_eq!(
            (
                u.objects,
                u.committed_bytes,
                u.pending_uploads,
                u.reserved_bytes
            ),
            (1, 100_000, 0, 0)
        );
        assert!(files_under(&dir.path().join("tmp")).is_empty());
        assert_eq!(files_under(&dir.path().join("objects")).len(), 1);
    }

    #[tokio::test]
    async fn empty_object() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "empty", b"").await;
        assert_eq!(read_all(&store, "b", "empty").await.unwrap(), b"");
    }

    #[tokio::test]
    async fn overwrite_keeps_old_version_readable_until_commit() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"old bytes").await;
        let mut p = put(metadata("b", "k", b"new bytes!"));
        p.update = true;
        let task = store.put_metadata(p).await.unwrap().task_id().to_string();

        // Feed half of the new body and hold the upload open.
        let (mut tx, upload) = fed_upload(&store, &task);
        tx.send(Ok(Bytes::from_static(b"new by"))).await.unwrap();
        // While the upload runs, the old version is still what reads return.
        assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"old bytes");
        tx.send(Ok(Bytes::from_static(b"tes!"))).await.unwrap();
        drop(tx);
        let stored = upload.await.unwrap().unwrap();
        assert!(stored.replaced);
        assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"new bytes!");
        // The old file is gone; one object file remains.
        assert_eq!(files_under(&dir.path().join("objects")).len(), 1);
        assert_eq!(store.usage().committed_bytes, 10);
        assert_eq!(store.usage().objects, 1);
    }

    async fn assert_refused_and_retryable(store: &Store, dir: &std::path::Path, task: &str) {
        assert!(
            files_under(&dir.join("tmp")).is_empty(),
            "temp file left behind"
        );
        assert!(
            files_under(&dir.join("objects")).is_empty(),
            "object file left behind"
        );
        assert!(matches!(
            store.key_state("b", "k").await.unwrap(),
            KeyState::Pending(_)
        ));
        assert_eq!(store.usage().pending_uploads, 1);
        assert!(!store.is_uploading(task));
        // The pending record survived: a correct retry works.
        store.upload(task, body(b"0123456789", 4)).await.unwrap();
        assert_eq!(read_all(store, "b", "k").await.unwrap(), b"0123456789");
    }

    #[tokio::test]
    async fn body_longer_than_declared_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let err = store
            .upload(out.task_id(), body(b"0123456789X", 4))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "body longer than declared size 10");
        assert_refused_and_retryable(&store, dir.path(), out.task_id()).await;
    }

    #[tokio::test]
    async fn body_shorter_than_declared_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let err = store
            .upload(out.task_id(), body(b"01234", 4))
            .await
            .unwrap_err();
        assert!(
            err.to_string()
                .starts_with("body shorter than declared size 10"),
            "{err}"
        );
        assert_refused_and_retryable(&store, dir.path(), out.task_id()).await;
    }

    #[tokio::test]
    async fn checksum_mismatch_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let err = store
            .upload(out.task_id(), body(b"0123456780", 4))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::ChecksumMismatch { .. }));
        assert!(
            err.to_string().starts_with("Checksum mismatch: declared "),
            "{err}"
        );
        assert_refused_and_retryable(&store, dir.path(), out.task_id()).await;
    }

    #[tokio::test]
    async fn broken_body_stream_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let pieces: Vec<Result<Bytes, std::io::Error>> = vec![
            Ok(Bytes::from_static(b"0123")),
            Err(std::io::Error::other("connection reset")),
        ];
        let err = store
            .upload(out.task_id(), futures::stream::iter(pieces))
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "upload interrupted: connection reset");
        assert_refused_and_retryable(&store, dir.path(), out.task_id()).await;
    }

    #[tokio::test]
    async fn cancelled_upload_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let (mut tx, upload) = fed_upload(&store, out.task_id());
        tx.send(Ok(Bytes::from_static(b"0123"))).await.unwrap();
        // Wait until the writer created its temp file, then cancel the request.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while files_under(&dir.path().join("tmp")).is_empty() {
            assert!(
                std::time::Instant::now() < deadline,
                "no temp file appeared"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        upload.abort();
        let _ = upload.await;
        drop(tx);
        // The writer notices the closed channel on its own thread.
        while !files_under(&dir.path().join("tmp")).is_empty() || store.is_uploading(out.task_id())
        {
            assert!(
                std::time::Instant::now() < deadline,
                "temp file not removed"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_refused_and_retryable(&store, dir.path(), out.task_id()).await;
    }

    #[tokio::test]
    async fn a_stalled_body_is_abandoned() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.upload_idle_timeout = std::time::Duration::from_millis(100);
        let store = Store::open(cfg).await.unwrap();
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(4);
        tx.send(Ok(Bytes::from_static(b"0123"))).await.unwrap();
        // `tx` stays open and silent.
        let err = store.upload(out.task_id(), rx).await.unwrap_err();
        assert_eq!(err.to_string(), "upload interrupted: no data for 0.1 s");
        drop(tx);
        assert_refused_and_retryable(&store, dir.path(), out.task_id()).await;
    }

    #[tokio::test]
    async fn label_checksum_is_kept_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let mut m = metadata("b", "k", b"hello");
        m.checksum = "abc".into();
        let out = store.put_metadata(put(m)).await.unwrap();
        let stored = store
            .upload(out.task_id(), body(b"hello", 2))
            .await
            .unwrap();
        assert!(!stored.verified);
        let KeyState::Committed(rec) = store.key_state("b", "k").await.unwrap() else {
            panic!("not committed");
        };
        assert_eq!(rec.metadata.checksum, "abc");
        assert!(!rec.verified);
        assert_eq!(rec.sha256, mictlanx::checksum::sha256_hex(b"hello"));
    }

    #[tokio::test]
    async fn a_retry_that_arrives_while_the_cut_attempt_lets_go_goes_through() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let (out, mut tx, first) = upload_under_way(&store).await;
        let retry = {
            let store = store.clone();
            let task = out.task_id().to_string();
            tokio::spawn(async move { store.upload(&task, body(b"0123456789", 3)).await })
        };
        // The first attempt's body breaks off (its client went away).
        tx.send(Err(std::io::Error::other("cut"))).await.unwrap();
        assert!(first.await.unwrap().is_err());
        retry.await.unwrap().unwrap();
        assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"0123456789");
    }

    #[tokio::test]
    async fn unknown_and_busy_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let err = store.upload("nope", body(b"x", 1)).await.unwrap_err();
        assert_eq!(err.to_string(), "Task(nope) not found");
        let (out, mut tx, first) = upload_under_way(&store).await;
        let err = store
            .upload(out.task_id(), body(b"0123456789", 3))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TaskBusy(_)));
        tx.send(Ok(Bytes::from_static(b"23456789"))).await.unwrap();
        drop(tx);
        first.await.unwrap().unwrap();
        // Completed: the task is gone.
        let err = store
            .upload(out.task_id(), body(b"0123456789", 3))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::TaskNotFound(_)));
    }

    /// An unknown task is refused as such, and at once, even when the body never ends.
    #[tokio::test]
    async fn an_unknown_task_is_refused_without_waiting_for_its_body() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let stalled = futures::stream::pending::<Result<Bytes, std::io::Error>>();
        let answer = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            store.upload("nope", stalled),
        )
        .await
        .expect("answered before the body's idle timeout");
        assert!(
            matches!(answer, Err(StoreError::TaskNotFound(_))),
            "{answer:?}"
        );
    }

    #[tokio::test]
    async fn upload_of_a_deleted_key_is_not_committed() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"0123456789")))
            .await
            .unwrap();
        let (mut tx, up) = fed_upload(&store, out.task_id());
        tx.send(Ok(Bytes::from_static(b"01234"))).await.unwrap();
        // The upload must hold its task before the delete, or this tests nothing.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !store.is_uploading(out.task_id()) {
            assert!(std::time::Instant::now() < deadline, "upload never started");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert_eq!(store.delete_key("b", "k").await.unwrap(), 1);
        tx.send(Ok(Bytes::from_static(b"56789"))).await.unwrap();
        drop(tx);
        let err = up.await.unwrap().unwrap_err();
        assert!(matches!(err, StoreError::TaskNotFound(_)));
        assert!(matches!(
            store.key_state("b", "k").await.unwrap(),
            KeyState::Deleted(_)
        ));
        assert!(files_under(&dir.path().join("objects")).is_empty());
        assert!(files_under(&dir.path().join("tmp")).is_empty());
        assert_eq!(store.usage(), UsageSnapshotExt::zero(1_000_000));
    }

    struct UsageSnapshotExt;
    impl UsageSnapshotExt {
        fn zero(capacity: u64) -> super::super::UsageSnapshot {
            super::super::UsageSnapshot {
                capacity,
                ..Default::default()
            }
        }
    }
}
