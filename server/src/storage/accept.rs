//! Accepting metadata (PM1): the rules for new keys, re-puts, overwrites and metadata-only
//! updates, and the capacity reservation of a pending upload.

use std::time::SystemTime;

use mictlanx::model::Metadata;

use super::meta::{
    encode, get_object, get_pending, get_pending_of_key, get_tombstone, object_key, same_content,
    PendingRecord, OBJECTS, PENDING, PENDING_BY_KEY, TOMBSTONES,
};
use super::{epoch_ms, Store, StoreError};
use crate::version::Version;

/// The task id answered when a put changed only metadata and no upload is needed (the
/// legacy peer's convention, which MictlanX clients understand).
pub const NO_UPLOAD_TASK_ID: &str = "0";

/// A put-metadata request whose ids are already validated and sanitised.
#[derive(Debug, Clone)]
pub struct NewPut {
    /// The metadata to store (`bucket_id`, `key` and `ball_id` sanitised).
    pub metadata: Metadata,
    /// Task id to create the pending upload under (the router's group id); `None` picks one.
    pub task_id: Option<String>,
    /// `Update: 1`: the put may replace a committed key with other content.
    pub update: bool,
    /// The version of this write (from the router); `None` takes one from the store's clock.
    pub version: Option<Version>,
    /// Replicas the writer asked for (0: not said), kept so that repair knows how many
    /// copies the key should have.
    pub replication_factor: u32,
}

/// What accepting metadata did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A pending upload waits for the bytes under this task id.
    Pending {
        /// The task id to upload to.
        task_id: String,
    },
    /// The committed object already holds these bytes; its metadata was updated in place and
    /// no upload is needed.
    UpdatedInPlace,
}

impl PutOutcome {
    /// The task id to answer: the pending task, or `"0"` when no upload is needed.
    pub fn task_id(&self) -> &str {
        match self {
            PutOutcome::Pending { task_id } => task_id,
            PutOutcome::UpdatedInPlace => NO_UPLOAD_TASK_ID,
        }
    }
}

impl Store {
    /// Accepts the metadata of a put (PM1).
    ///
    /// - A new key gets a pending upload, reserving its size.
    /// - A key whose committed or pending version has the same size and checksum is accepted
    ///   again (a new pending upload; harmless, and what a retrying client needs).
    /// - Other content replaces an existing key only with `update`; a committed object with
    ///   the same bytes and `update` has its tags, content type, disabled flag and producer
    ///   updated in place instead ([`PutOutcome::UpdatedInPlace`]).
    /// - A key has at most one pending upload: a new one replaces the old (whose upload then
    ///   fails with "task not found").
    /// - Versions: a write older than what the store has of the key (its committed version,
    ///   its tombstone, or a pending upload of another write) is refused as stale; a deleted
    ///   key (tombstone) counts as absent for newer writes. The same write again (same
    ///   version, same bytes, already committed) needs no upload.
    ///
    /// # Errors
    ///
    /// [`StoreError::Exists`] (409), [`StoreError::Stale`] (409, with the version to beat),
    /// [`StoreError::TaskInUse`] (409) when the task id belongs to a pending upload of
    /// another key, [`StoreError::NoSpace`] (507), or an internal error.
    pub async fn put_metadata(&self, put: NewPut) -> Result<PutOutcome, StoreError> {
        self.blocking(move |s| s.accept_blocking(put, SystemTime::now()))
            .await
    }

    fn accept_blocking(&self, put: NewPut, now: SystemTime) -> Result<PutOutcome, StoreError> {
        let NewPut {
            metadata,
            task_id,
            update,
            version,
            replication_factor,
        } = put;
        let version = self.version_of(version);
        let now_ms = epoch_ms(now);
        let db_key = object_key(&metadata.bucket_id, &metadata.key);
        let exists = || StoreError::Exists {
            bucket_id: metadata.bucket_id.clone(),
            key: metadata.key.clone(),
        };
        let stale = |current| StoreError::Stale {
            bucket_id: metadata.bucket_id.clone(),
            key: metadata.key.clone(),
            current,
        };
        // A pending record is not worth an fsync: if a crash loses it, the upload answers
        // "task not found" and the client starts over from the metadata request. It reaches
        // the disk with the upload's own commit.
        let outcome = self.write_unsynced(|txn, delta| {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut by_key = txn.open_table(PENDING_BY_KEY)?;
            let tombstone = get_tombstone(&txn.open_table(TOMBSTONES)?, &db_key)?;
            if let Some(t) = tombstone.filter(|t| t.version >= version) {
                return Err(stale(t.version));
            }

            if let Some(mut obj) = get_object(&objects, &db_key)? {
                if obj.version == version && same_content(&obj.metadata, &metadata) {
                    // This very write is committed already (a router retrying it).
                    return Ok(PutOutcome::UpdatedInPlace);
                }
                if obj.version >= version {
                    return Err(stale(obj.version));
                }
                if same_content(&obj.metadata, &metadata) {
                    if update {
                        obj.version = version;
                        if replication_factor > 0 {
                            obj.replication_factor = replication_factor;
                        }
                        obj.metadata.tags = metadata.tags.clone();
                        obj.metadata.content_type = metadata.content_type.clone();
                        obj.metadata.is_disabled = metadata.is_disabled;
                        obj.metadata.producer_id = metadata.producer_id.clone();
                        obj.updated_at_ms = now_ms;
                        objects.insert(db_key.as_str(), encode(&db_key, &obj)?.as_slice())?;
                        return Ok(PutOutcome::UpdatedInPlace);
                    }
                } else if !update {
                    return Err(exists());
                }
            }
            let current = get_pending_of_key(&by_key, &pending, &db_key)?;
            if let Some((pending_task, rec)) = &current {
                // A newer write is on its way: this one lost. The same group again (a router
                // retry under the same task id) may replace its own pending upload.
                if rec.version > version && task_id.as_deref() != Some(pending_task.as_str()) {
                    return Err(stale(rec.version));
                }
                if !update && !same_content(&rec.metadata, &metadata) {
                    return Err(exists());
                }
            }
            let task_id = task_id
                .clone()
                .filter(|t| t != NO_UPLOAD_TASK_ID)
                .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
            if let Some(other) = get_pending(&pending, &task_id)? {
                let other_key = object_key(&other.metadata.bucket_id, &other.metadata.key);
                if other_key != db_key {
                    return Err(StoreError::TaskInUse {
                        task_id,
                        bucket_id: other.metadata.bucket_id,
                        key: other.metadata.key,
                    });
                }
            }
            if let Some((old_task, old)) = &current {
                pending.remove(old_task.as_str())?;
                delta.remove_pending(old.metadata.size);
            }
            let usage = self.usage();
            let free = usage
                .capacity
                .saturating_sub(usage.used().saturating_sub(delta.reserved_released()));
            if metadata.size > free {
                return Err(StoreError::NoSpace {
                    peer_id: self.config().name.clone(),
                    needs: metadata.size,
                    free,
                });
            }
            let record = PendingRecord {
                metadata: metadata.clone(),
                created_at_ms: now_ms,
                update,
                version,
                replication_factor,
            };
            pending.insert(task_id.as_str(), encode(&task_id, &record)?.as_slice())?;
            by_key.insert(db_key.as_str(), task_id.as_str())?;
            delta.add_pending(metadata.size);
            Ok(PutOutcome::Pending { task_id })
        })?;
        if matches!(outcome, PutOutcome::UpdatedInPlace) {
            // Changed metadata of a committed object: acknowledged as stored, so durable.
            self.sync()?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::KeyState;
    use super::*;

    #[tokio::test]
    async fn new_key_reserves_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"hello")))
            .await
            .unwrap();
        assert!(matches!(out, PutOutcome::Pending { .. }));
        let u = store.usage();
        assert_eq!((u.reserved_bytes, u.pending_uploads, u.objects), (5, 1, 0));
        assert!(matches!(
            store.key_state("b", "k").await.unwrap(),
            KeyState::Pending(_)
        ));
    }

    #[tokio::test]
    async fn task_id_header_is_used_and_reuse_for_another_key_conflicts() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let mut p = put(metadata("b", "k", b"x"));
        p.task_id = Some("group-1".into());
        let out = store.put_metadata(p.clone()).await.unwrap();
        assert_eq!(out.task_id(), "group-1");
        // The same put again (a router retry) replaces the pending upload in place.
        assert_eq!(store.put_metadata(p).await.unwrap().task_id(), "group-1");
        assert_eq!(store.usage().reserved_bytes, 1);
        let mut other = put(metadata("b", "k2", b"y"));
        other.task_id = Some("group-1".into());
        let err = store.put_metadata(other).await.unwrap_err();
        assert!(matches!(err, StoreError::TaskInUse { .. }), "{err}");
    }

    #[tokio::test]
    async fn re_put_same_content_is_idempotent_other_content_needs_update() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"one").await;
        // Same bytes, no Update: a new pending upload.
        let again = store
            .put_metadata(put(metadata("b", "k", b"one")))
            .await
            .unwrap();
        assert!(matches!(again, PutOutcome::Pending { .. }));
        // Different bytes, no Update: 409.
        let err = store
            .put_metadata(put(metadata("b", "k", b"two")))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "b@k already exists; send Update: 1 to replace it"
        );
        // Different bytes with Update: accepted and replaces the pending one.
        let mut upd = put(metadata("b", "k", b"two!"));
        upd.update = true;
        assert!(matches!(
            store.put_metadata(upd).await.unwrap(),
            PutOutcome::Pending { .. }
        ));
        let u = store.usage();
        assert_eq!((u.pending_uploads, u.reserved_bytes), (1, 4));
    }

    #[tokio::test]
    async fn pending_key_with_other_content_conflicts_without_update() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store
            .put_metadata(put(metadata("b", "k", b"one")))
            .await
            .unwrap();
        let err = store
            .put_metadata(put(metadata("b", "k", b"other")))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Exists { .. }));
    }

    #[tokio::test]
    async fn update_with_same_bytes_changes_metadata_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"data").await;
        let mut m = metadata("b", "k", b"data");
        m.tags.insert("color".into(), "red".into());
        m.content_type = "text/plain".into();
        let mut p = put(m);
        p.update = true;
        let out = store.put_metadata(p).await.unwrap();
        assert_eq!(out, PutOutcome::UpdatedInPlace);
        assert_eq!(out.task_id(), "0");
        let KeyState::Committed(rec) = store.key_state("b", "k").await.unwrap() else {
            panic!("not committed");
        };
        assert_eq!(
            rec.metadata.tags.get("color").map(String::as_str),
            Some("red")
        );
        assert_eq!(rec.metadata.content_type, "text/plain");
        assert_eq!(store.usage().pending_uploads, 0);
        assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"data");
    }

    #[tokio::test]
    async fn capacity_is_enforced_with_reservations() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.capacity = 10;
        let store = Store::open(cfg).await.unwrap();
        put_object(&store, "b", "a", b"123456").await;
        store
            .put_metadata(put(metadata("b", "p", b"12")))
            .await
            .unwrap();
        let err = store
            .put_metadata(put(metadata("b", "c", b"123")))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "peer peer-0 has no space: needs 3 bytes, 2 free"
        );
        assert_eq!(err.status(), axum::http::StatusCode::INSUFFICIENT_STORAGE);
        // Replacing the pending upload of "p" releases its reservation first.
        let mut p = put(metadata("b", "p", b"1234"));
        p.update = true;
        store.put_metadata(p).await.unwrap();
        assert_eq!(store.usage().used(), 10);
    }
}
