//! Read-only lookups and listings of committed and pending keys.

use mictlanx::model::Metadata;
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::meta::{
    bucket_range, decode, get_object, get_pending_of_key, object_key, ObjectRecord, PendingRecord,
    OBJECTS, PENDING, PENDING_BY_KEY,
};
use super::{Store, StoreError};

/// What the store knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Committed (readable) bytes. A committed key with a pending overwrite reports this.
    Committed(ObjectRecord),
    /// Metadata accepted, bytes not yet arrived.
    Pending(PendingRecord),
    /// Unknown.
    Absent,
}

impl Store {
    /// The state of `bucket_id@key`.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn key_state(&self, bucket_id: &str, key: &str) -> Result<KeyState, StoreError> {
        let db_key = object_key(bucket_id, key);
        self.blocking(move |s| key_state_in(&s.db().begin_read()?, &db_key))
            .await
    }

    /// Committed objects of a bucket, ordered by key (disabled ones included).
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn bucket_objects(&self, bucket_id: &str) -> Result<Vec<ObjectRecord>, StoreError> {
        let range = bucket_range(bucket_id);
        self.blocking(move |s| {
            let txn = s.db().begin_read()?;
            let table = txn.open_table(OBJECTS)?;
            let mut out = Vec::new();
            for entry in table.range(range.start.as_str()..range.end.as_str())? {
                let (k, v) = entry?;
                out.push(decode(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Metadata of the committed keys of `ball_id` in a bucket, ordered by their `index` tag
    /// (numerically; keys without one last) and then by key.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn ball_metadata(
        &self,
        bucket_id: &str,
        ball_id: &str,
    ) -> Result<Vec<Metadata>, StoreError> {
        let mut balls: Vec<Metadata> = self
            .bucket_objects(bucket_id)
            .await?
            .into_iter()
            .map(|o| o.metadata)
            .filter(|m| m.ball_id == ball_id)
            .collect();
        balls.sort_by(|a, b| {
            let ia = a.index().unwrap_or(u64::MAX);
            let ib = b.index().unwrap_or(u64::MAX);
            ia.cmp(&ib).then_with(|| a.key.cmp(&b.key))
        });
        Ok(balls)
    }

    /// The committed objects `[start, end)` in key order (`end` = `None`: to the last).
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn page(
        &self,
        start: u64,
        end: Option<u64>,
    ) -> Result<Vec<ObjectRecord>, StoreError> {
        self.blocking(move |s| {
            let txn = s.db().begin_read()?;
            let table = txn.open_table(OBJECTS)?;
            let skip = usize::try_from(start).unwrap_or(usize::MAX);
            let take = end.map_or(usize::MAX, |e| {
                usize::try_from(e.saturating_sub(start)).unwrap_or(usize::MAX)
            });
            let mut out = Vec::new();
            for entry in table.iter()?.skip(skip).take(take) {
                let (k, v) = entry?;
                out.push(decode(k.value(), v.value())?);
            }
            Ok(out)
        })
        .await
    }

    /// Number of committed objects, counted in the database.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn object_count(&self) -> Result<u64, StoreError> {
        self.blocking(|s| {
            let txn = s.db().begin_read()?;
            Ok(txn.open_table(OBJECTS)?.len()?)
        })
        .await
    }
}

/// The state of the key `db_key` in the snapshot `txn`.
pub(super) fn key_state_in(txn: &ReadTransaction, db_key: &str) -> Result<KeyState, StoreError> {
    if let Some(obj) = get_object(&txn.open_table(OBJECTS)?, db_key)? {
        return Ok(KeyState::Committed(obj));
    }
    let by_key = txn.open_table(PENDING_BY_KEY)?;
    let pending = txn.open_table(PENDING)?;
    Ok(match get_pending_of_key(&by_key, &pending, db_key)? {
        Some((_, rec)) => KeyState::Pending(rec),
        None => KeyState::Absent,
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[tokio::test]
    async fn listings_and_paging() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        for (bucket, key) in [
            ("b", "x_10"),
            ("b", "x_2"),
            ("b", "x_0"),
            ("b2", "x_1"),
            ("b", "y"),
        ] {
            let mut m = metadata(bucket, key, key.as_bytes());
            if let Some((ball, idx)) = key.split_once('_') {
                m.ball_id = ball.into();
                m.tags.insert("index".into(), idx.into());
            }
            let out = store.put_metadata(put(m)).await.unwrap();
            store
                .upload(out.task_id(), body(key.as_bytes(), 3))
                .await
                .unwrap();
        }
        // A pending key is not listed.
        store
            .put_metadata(put(metadata("b", "x_3", b"p")))
            .await
            .unwrap();

        let keys: Vec<String> = store
            .bucket_objects("b")
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.metadata.key)
            .collect();
        assert_eq!(keys, ["x_0", "x_10", "x_2", "y"]);
        let ball: Vec<String> = store
            .ball_metadata("b", "x")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.key)
            .collect();
        assert_eq!(ball, ["x_0", "x_2", "x_10"], "ordered by index numerically");
        assert!(store.ball_metadata("b", "nope").await.unwrap().is_empty());
        assert_eq!(store.object_count().await.unwrap(), 5);
        assert_eq!(store.page(0, None).await.unwrap().len(), 5);
        let page: Vec<String> = store
            .page(1, Some(3))
            .await
            .unwrap()
            .into_iter()
            .map(|o| o.metadata.key)
            .collect();
        assert_eq!(page, ["x_10", "x_2"]);
        assert!(store.page(9, Some(3)).await.unwrap().is_empty());
        assert_eq!(
            store.key_state("b", "nope").await.unwrap(),
            KeyState::Absent
        );
    }
}
