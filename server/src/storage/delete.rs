//! Deleting keys and balls (PD4, PD5) and quarantining corrupt objects.
//!
//! Metadata goes first, in one transaction; the files follow. A crash in between leaves
//! unreferenced files, which start-up recovery removes; never a record without its file.

use redb::ReadableTable;

use redb::Table;

use super::meta::{
    bucket_range, decode, encode, get_object, get_pending_of_key, get_tombstone, object_key,
    ObjectRecord, PendingRecord, Tombstone, INLINE, OBJECTS, PENDING, PENDING_BY_KEY, TOMBSTONES,
};
use super::{epoch_ms, Store, StoreError};
use crate::version::Version;

/// How a delete is applied (see [`Store::delete_key_at`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Deletion {
    /// The version of the delete (from the router); `None` takes one from the store's clock.
    pub version: Option<Version>,
    /// Record a tombstone even when the key is not here (the router asks this of the peers
    /// that should hold the key, so that an older copy cannot be placed there later).
    pub tombstone_always: bool,
}

impl Store {
    /// Deletes `bucket_id@key`: the committed object and any pending upload of it.
    /// Returns 1 when something was deleted, 0 when the key was unknown.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn delete_key(&self, bucket_id: &str, key: &str) -> Result<u64, StoreError> {
        self.delete_key_at(bucket_id, key, Deletion::default())
            .await
    }

    /// Deletes `bucket_id@key` as of a version: what is older than the delete goes (the
    /// committed object, a pending upload), a newer write stays, and a tombstone records the
    /// delete when something went or [`Deletion::tombstone_always`] asks for one. Returns 1
    /// when something was deleted, else 0.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn delete_key_at(
        &self,
        bucket_id: &str,
        key: &str,
        deletion: Deletion,
    ) -> Result<u64, StoreError> {
        let db_key = object_key(bucket_id, key);
        self.blocking(move |s| {
            let version = s.version_of(deletion.version);
            let now_ms = epoch_ms(std::time::SystemTime::now());
            let removed = s.write(|txn, delta| {
                let mut objects = txn.open_table(OBJECTS)?;
                let mut pending = txn.open_table(PENDING)?;
                let mut by_key = txn.open_table(PENDING_BY_KEY)?;
                let mut inline = txn.open_table(INLINE)?;
                let obj = get_object(&objects, &db_key)?.filter(|o| o.version < version);
                if let Some(obj) = &obj {
                    objects.remove(db_key.as_str())?;
                    inline.remove(db_key.as_str())?;
                    delta.remove_object(obj.stored_size);
                }
                let pend = get_pending_of_key(&by_key, &pending, &db_key)?
                    .filter(|(_, rec)| rec.version < version);
                if let Some((task_id, rec)) = &pend {
                    pending.remove(task_id.as_str())?;
                    delta.remove_pending(rec.metadata.size);
                    by_key.remove(db_key.as_str())?;
                }
                let ball_id = obj
                    .as_ref()
                    .map(|o| o.metadata.ball_id.clone())
                    .or_else(|| pend.as_ref().map(|(_, p)| p.metadata.ball_id.clone()));
                if ball_id.is_some() || deletion.tombstone_always {
                    let mut tombstones = txn.open_table(TOMBSTONES)?;
                    let ball_id = ball_id.unwrap_or_default();
                    record_tombstone(&mut tombstones, &db_key, version, now_ms, ball_id)?;
                }
                Ok((obj, pend.is_some()))
            })?;
            let (obj, had_pending) = removed;
            if let Some(obj) = obj.as_ref().filter(|o| !o.inline) {
                s.remove_file_logged(&obj.file);
            }
            Ok(u64::from(obj.is_some() || had_pending))
        })
        .await
    }

    /// Deletes every key (committed or pending) of `ball_id` in a bucket; returns how many.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn delete_ball(&self, bucket_id: &str, ball_id: &str) -> Result<u64, StoreError> {
        self.delete_ball_at(bucket_id, ball_id, None).await
    }

    /// [`Store::delete_ball`] as of a version: keys of the ball written after it stay, and
    /// each deleted key gets a tombstone.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn delete_ball_at(
        &self,
        bucket_id: &str,
        ball_id: &str,
        version: Option<Version>,
    ) -> Result<u64, StoreError> {
        let range = bucket_range(bucket_id);
        let bucket = bucket_id.to_string();
        let ball = ball_id.to_string();
        self.blocking(move |s| {
            let version = s.version_of(version);
            let now_ms = epoch_ms(std::time::SystemTime::now());
            let files = s.write(|txn, delta| {
                let mut objects = txn.open_table(OBJECTS)?;
                let mut pending = txn.open_table(PENDING)?;
                let mut by_key = txn.open_table(PENDING_BY_KEY)?;
                let mut inline = txn.open_table(INLINE)?;
                let mut doomed: Vec<(String, ObjectRecord)> = Vec::new();
                for entry in objects.range(range.start.as_str()..range.end.as_str())? {
                    let (k, v) = entry?;
                    let rec: ObjectRecord = decode(k.value(), v.value())?;
                    if rec.metadata.ball_id == ball && rec.version < version {
                        doomed.push((k.value().to_string(), rec));
                    }
                }
                let mut doomed_pending: Vec<(String, PendingRecord)> = Vec::new();
                for entry in pending.iter()? {
                    let (k, v) = entry?;
                    let rec: PendingRecord = decode(k.value(), v.value())?;
                    if rec.metadata.bucket_id == bucket
                        && rec.metadata.ball_id == ball
                        && rec.version < version
                    {
                        doomed_pending.push((k.value().to_string(), rec));
                    }
                }
                let mut keys = std::collections::BTreeSet::new();
                for (db_key, rec) in &doomed {
                    objects.remove(db_key.as_str())?;
                    inline.remove(db_key.as_str())?;
                    delta.remove_object(rec.stored_size);
                    keys.insert(db_key.clone());
                }
                for (task_id, rec) in &doomed_pending {
                    pending.remove(task_id.as_str())?;
                    delta.remove_pending(rec.metadata.size);
                    let db_key = object_key(&rec.metadata.bucket_id, &rec.metadata.key);
                    by_key.remove(db_key.as_str())?;
                    keys.insert(db_key);
                }
                let mut tombstones = txn.open_table(TOMBSTONES)?;
                for db_key in &keys {
                    record_tombstone(&mut tombstones, db_key, version, now_ms, ball.clone())?;
                }
                let files: Vec<String> = doomed
                    .into_iter()
                    .filter(|(_, r)| !r.inline)
                    .map(|(_, r)| r.file)
                    .collect();
                Ok((files, keys.len() as u64))
            })?;
            let (files, count) = files;
            for f in &files {
                s.remove_file_logged(f);
            }
            Ok(count)
        })
        .await
    }

    /// Forgets the tombstone of `bucket_id@key` if it is the one of `version` (a newer
    /// delete's stays); returns whether it did. Repair asks this once every replica has
    /// applied the delete and it is old enough that no older write can still arrive.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn purge_tombstone(
        &self,
        bucket_id: &str,
        key: &str,
        version: Version,
    ) -> Result<bool, StoreError> {
        let db_key = object_key(bucket_id, key);
        self.blocking(move |s| {
            s.write(|txn, _| {
                let mut tombstones = txn.open_table(TOMBSTONES)?;
                match get_tombstone(&tombstones, &db_key)? {
                    Some(t) if t.version == version => {
                        tombstones.remove(db_key.as_str())?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
        })
        .await
    }

    /// Moves the object file `file` of `bucket_id@key` aside (`*.corrupted`) and drops its
    /// record, if the record still points at that file (a newer version is left alone).
    /// A file that cannot be moved (already gone) is logged, not an error. Inline objects
    /// have their own [`Store::drop_corrupt_inline_blocking`]. Blocking.
    pub(crate) fn quarantine_blocking(
        &self,
        bucket_id: &str,
        key: &str,
        file: &str,
    ) -> Result<(), StoreError> {
        let dropped = self.drop_record_if(bucket_id, key, |obj| !obj.inline && obj.file == file)?;
        // An empty name is refused by `quarantine`: `objects/` itself is never renamed.
        let moved = self.files().quarantine(file);
        tracing::error!(
            event = "CORRUPT.OBJECT",
            peer_id = %self.config().name,
            bucket_id,
            key,
            file,
            record_dropped = dropped,
            quarantined = moved.is_ok(),
            error = moved.as_ref().err().map(|e| e.to_string()),
        );
        Ok(())
    }

    /// Drops the inline object `bucket_id@key` whose bytes failed their check, if `seen` is
    /// still its current version (a newer one, inline too, is left alone). Blocking.
    pub(crate) fn drop_corrupt_inline_blocking(
        &self,
        bucket_id: &str,
        key: &str,
        seen: &ObjectRecord,
    ) -> Result<(), StoreError> {
        let dropped = self.drop_record_if(bucket_id, key, |obj| {
            obj.inline && obj.sha256 == seen.sha256 && obj.updated_at_ms == seen.updated_at_ms
        })?;
        tracing::error!(
            event = "CORRUPT.OBJECT",
            peer_id = %self.config().name,
            bucket_id,
            key,
            inline = true,
            record_dropped = dropped,
        );
        Ok(())
    }

    /// Drops the committed record of `bucket_id@key` (and its inline bytes, if any) when
    /// `still_it` says it is the version the caller found bad; returns whether it did.
    /// Blocking.
    fn drop_record_if(
        &self,
        bucket_id: &str,
        key: &str,
        still_it: impl Fn(&ObjectRecord) -> bool,
    ) -> Result<bool, StoreError> {
        let db_key = object_key(bucket_id, key);
        self.write(|txn, delta| {
            let mut objects = txn.open_table(OBJECTS)?;
            let mut inline = txn.open_table(INLINE)?;
            match get_object(&objects, &db_key)? {
                Some(obj) if still_it(&obj) => {
                    objects.remove(db_key.as_str())?;
                    inline.remove(db_key.as_str())?;
                    delta.remove_object(obj.stored_size);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    pub(crate) fn remove_file_logged(&self, file: &str) {
        if let Err(e) = self.files().remove_object(file) {
            // Harmless for correctness: the next start-up removes unreferenced files.
            tracing::warn!(event = "OBJECT.FILE.REMOVE.FAILED", file, error = %e);
        }
    }
}

/// Records that `db_key` was deleted at `version`, unless a newer delete is recorded.
fn record_tombstone(
    tombstones: &mut Table<&'static str, &'static [u8]>,
    db_key: &str,
    version: Version,
    now_ms: u64,
    ball_id: String,
) -> Result<(), StoreError> {
    if get_tombstone(tombstones, db_key)?.is_some_and(|t| t.version >= version) {
        return Ok(());
    }
    let tombstone = Tombstone {
        version,
        deleted_at_ms: now_ms,
        ball_id,
    };
    tombstones.insert(db_key, encode(db_key, &tombstone)?.as_slice())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::KeyState;

    #[tokio::test]
    async fn delete_key_removes_record_file_and_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"bytes").await;
        let mut p = put(metadata("b", "k", b"newer"));
        p.update = true;
        store.put_metadata(p).await.unwrap();
        assert_eq!(store.delete_key("b", "k").await.unwrap(), 1);
        assert!(matches!(
            store.key_state("b", "k").await.unwrap(),
            KeyState::Deleted(_)
        ));
        assert!(files_under(&dir.path().join("objects")).is_empty());
        assert_eq!(store.usage().used(), 0);
        assert_eq!(store.usage().objects, 0);
        assert_eq!(store.delete_key("b", "k").await.unwrap(), 0);
        // A pending-only key can be deleted too.
        store
            .put_metadata(put(metadata("b", "p", b"x")))
            .await
            .unwrap();
        assert_eq!(store.delete_key("b", "p").await.unwrap(), 1);
        assert_eq!(store.usage().pending_uploads, 0);
    }

    #[tokio::test]
    async fn delete_ball_removes_its_keys_only() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        for key in ["a_0", "a_1", "b_0"] {
            let mut m = metadata("b", key, key.as_bytes());
            m.ball_id = key[..1].into();
            let out = store.put_metadata(put(m)).await.unwrap();
            store
                .upload(out.task_id(), body(key.as_bytes(), 2))
                .await
                .unwrap();
        }
        let mut m = metadata("b", "a_2", b"pending");
        m.ball_id = "a".into();
        store.put_metadata(put(m)).await.unwrap();
        let mut m = metadata("other", "a_0", b"elsewhere");
        m.ball_id = "a".into();
        store.put_metadata(put(m)).await.unwrap();

        assert_eq!(store.delete_ball("b", "a").await.unwrap(), 3);
        assert_eq!(store.usage().objects, 1);
        assert_eq!(
            store.usage().pending_uploads,
            1,
            "the other bucket's pending stays"
        );
        assert_eq!(files_under(&dir.path().join("objects")).len(), 1);
        assert_eq!(store.delete_ball("b", "a").await.unwrap(), 0);
    }
}
