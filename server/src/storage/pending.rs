//! Expiring and flushing pending uploads, releasing their reservations.

use std::time::SystemTime;

use redb::ReadableTable;

use super::meta::{decode, object_key, PendingRecord, PENDING, PENDING_BY_KEY};
use super::{epoch_ms, Store, StoreError};

impl Store {
    /// Drops pending uploads accepted `pending_ttl` or more before `now`, except those being
    /// uploaded right now. Returns how many were dropped.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn expire_pending(&self, now: SystemTime) -> Result<usize, StoreError> {
        self.blocking(move |s| s.expire_pending_blocking(now)).await
    }

    pub(crate) fn expire_pending_blocking(&self, now: SystemTime) -> Result<usize, StoreError> {
        let ttl_ms = u64::try_from(self.config().pending_ttl.as_millis()).unwrap_or(u64::MAX);
        let cutoff = epoch_ms(now).saturating_sub(ttl_ms);
        let expired = self.drop_pending_where(|task_id, rec| {
            rec.created_at_ms <= cutoff && !self.is_uploading(task_id)
        })?;
        for (task_id, rec) in &expired {
            tracing::info!(
                event = "PENDING.EXPIRED",
                task_id = %task_id,
                bucket_id = %rec.metadata.bucket_id,
                key = %rec.metadata.key,
                size = rec.metadata.size,
            );
        }
        Ok(expired.len())
    }

    /// Drops the pending upload `task_id` if it is one of `bucket_id@key` (an announcement
    /// withdrawn by its router); the key's committed version, if any, stays. Returns how
    /// many were dropped (0 or 1).
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn withdraw_pending(
        &self,
        bucket_id: &str,
        key: &str,
        task_id: &str,
    ) -> Result<u64, StoreError> {
        let (bucket_id, key, task_id) =
            (bucket_id.to_string(), key.to_string(), task_id.to_string());
        self.blocking(move |s| {
            let dropped = s.drop_pending_where(|t, rec| {
                t == task_id && rec.metadata.bucket_id == bucket_id && rec.metadata.key == key
            })?;
            Ok(dropped.len() as u64)
        })
        .await
    }

    /// Drops every pending upload (`DELETE /api/v4/tasks`). Returns how many.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn clear_pending(&self) -> Result<usize, StoreError> {
        self.blocking(|s| Ok(s.drop_pending_where(|_, _| true)?.len()))
            .await
    }

    fn drop_pending_where(
        &self,
        doomed: impl Fn(&str, &PendingRecord) -> bool,
    ) -> Result<Vec<(String, PendingRecord)>, StoreError> {
        self.write(|txn, delta| {
            let mut pending = txn.open_table(PENDING)?;
            let mut by_key = txn.open_table(PENDING_BY_KEY)?;
            let mut dropped = Vec::new();
            for entry in pending.iter()? {
                let (k, v) = entry?;
                let rec: PendingRecord = decode(k.value(), v.value())?;
                if doomed(k.value(), &rec) {
                    dropped.push((k.value().to_string(), rec));
                }
            }
            for (task_id, rec) in &dropped {
                pending.remove(task_id.as_str())?;
                delta.remove_pending(rec.metadata.size);
                let db_key = object_key(&rec.metadata.bucket_id, &rec.metadata.key);
                let indexed = by_key.get(db_key.as_str())?.map(|g| g.value() == task_id);
                if indexed == Some(true) {
                    by_key.remove(db_key.as_str())?;
                }
            }
            Ok(dropped)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{KeyState, Store};
    use std::time::{Duration, SystemTime};

    #[tokio::test]
    async fn pending_uploads_expire_after_their_ttl() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(dir.path());
        cfg.pending_ttl = Duration::from_secs(60);
        let store = Store::open(cfg).await.unwrap();
        let out = store
            .put_metadata(put(metadata("b", "k", b"12345")))
            .await
            .unwrap();
        let now = SystemTime::now();
        assert_eq!(store.expire_pending(now).await.unwrap(), 0, "too young");
        assert_eq!(store.usage().reserved_bytes, 5);
        assert_eq!(
            store
                .expire_pending(now + Duration::from_secs(61))
                .await
                .unwrap(),
            1
        );
        assert_eq!(store.key_state("b", "k").await.unwrap(), KeyState::Absent);
        assert_eq!(store.usage().reserved_bytes, 0);
        assert_eq!(store.usage().pending_uploads, 0);
        let err = store
            .upload(out.task_id(), body(b"12345", 2))
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("Task({}) not found", out.task_id())
        );
    }

    #[tokio::test]
    async fn expired_pending_uploads_are_dropped_at_open() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path()).await;
            store
                .put_metadata(put(metadata("b", "k", b"12345")))
                .await
                .unwrap();
        }
        let mut cfg = config(dir.path());
        cfg.pending_ttl = Duration::ZERO;
        let store = Store::open(cfg).await.unwrap();
        assert_eq!(store.usage().pending_uploads, 0);
        assert_eq!(store.key_state("b", "k").await.unwrap(), KeyState::Absent);
    }

    #[tokio::test]
    async fn clear_pending_flushes_everything() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        store
            .put_metadata(put(metadata("b", "k1", b"1")))
            .await
            .unwrap();
        store
            .put_metadata(put(metadata("b", "k2", b"22")))
            .await
            .unwrap();
        put_object(&store, "b", "c", b"committed").await;
        assert_eq!(store.clear_pending().await.unwrap(), 2);
        let u = store.usage();
        assert_eq!((u.pending_uploads, u.reserved_bytes, u.objects), (0, 0, 1));
    }
}
