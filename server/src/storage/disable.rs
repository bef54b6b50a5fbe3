//! Disabling keys (PM7): a soft delete that keeps the bytes but stops serving them.

use super::meta::{
    encode, get_object, get_pending_of_key, object_key, OBJECTS, PENDING, PENDING_BY_KEY,
};
use super::{Store, StoreError};
use crate::version::Version;

impl Store {
    /// Marks `bucket_id@key` disabled, on its committed record and on its pending upload
    /// (whichever exist). Returns false when the key is unknown.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn disable(&self, bucket_id: &str, key: &str) -> Result<bool, StoreError> {
        self.disable_at(bucket_id, key, None).await
    }

    /// [`Store::disable`] as a write of its own: the committed copy takes the disable's
    /// version (`None`: one from the store's clock), so replicas that missed it lose to it,
    /// and a disable older than the copy (the key was written again since) leaves the copy
    /// enabled. Returns false when the key is unknown.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn disable_at(
        &self,
        bucket_id: &str,
        key: &str,
        version: Option<Version>,
    ) -> Result<bool, StoreError> {
        let db_key = object_key(bucket_id, key);
        self.blocking(move |s| {
            let version = s.version_of(version);
            s.write(|txn, _| {
                let mut objects = txn.open_table(OBJECTS)?;
                let mut pending = txn.open_table(PENDING)?;
                let by_key = txn.open_table(PENDING_BY_KEY)?;
                let mut found = false;
                if let Some(mut obj) = get_object(&objects, &db_key)? {
                    if obj.version < version {
                        obj.metadata.is_disabled = true;
                        obj.version = version;
                        objects.insert(db_key.as_str(), encode(&db_key, &obj)?.as_slice())?;
                    }
                    found = true;
                }
                if let Some((task_id, mut rec)) = get_pending_of_key(&by_key, &pending, &db_key)? {
                    rec.metadata.is_disabled = true;
                    pending.insert(task_id.as_str(), encode(&task_id, &rec)?.as_slice())?;
                    found = true;
                }
                Ok(found)
            })
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{KeyState, StoreError};

    #[tokio::test]
    async fn disabled_keys_are_not_served() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        put_object(&store, "b", "k", b"bytes").await;
        assert!(store.disable("b", "k").await.unwrap());
        let err = read_all(&store, "b", "k").await.unwrap_err();
        assert!(matches!(err, StoreError::Disabled { .. }));
        assert_eq!(err.to_string(), "b@k is disabled");
        let KeyState::Committed(rec) = store.key_state("b", "k").await.unwrap() else {
            panic!("gone");
        };
        assert!(rec.metadata.is_disabled);
        assert!(!store.disable("b", "nope").await.unwrap());
    }

    #[tokio::test]
    async fn disabling_a_pending_key_survives_its_upload() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let out = store
            .put_metadata(put(metadata("b", "k", b"bytes")))
            .await
            .unwrap();
        assert!(store.disable("b", "k").await.unwrap());
        store
            .upload(out.task_id(), body(b"bytes", 2))
            .await
            .unwrap();
        let KeyState::Committed(rec) = store.key_state("b", "k").await.unwrap() else {
            panic!("not committed");
        };
        assert!(rec.metadata.is_disabled);
    }
}
