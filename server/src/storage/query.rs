//! Read-only lookups and listings of committed and pending keys.

use std::ops::Bound;

use mictlanx::model::Metadata;
use redb::{ReadTransaction, ReadableTable, ReadableTableMetadata};

use super::meta::{
    bucket_range, decode, get_object, get_pending_of_key, get_tombstone, object_key, ObjectRecord,
    PendingRecord, Tombstone, OBJECTS, PENDING, PENDING_BY_KEY, TOMBSTONES,
};
use super::{Store, StoreError};
use crate::version::Version;

/// One key of [`Store::versions_page`]: the version of its copy, or of its deletion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionEntry {
    /// Bucket id.
    pub bucket_id: String,
    /// Key.
    pub key: String,
    /// The version.
    pub version: Version,
    /// A tombstone rather than a copy.
    pub deleted: bool,
    /// Bytes of the copy (0 for a tombstone).
    pub size: u64,
    /// Replicas its writer asked for (0: not said).
    pub replication_factor: u32,
    /// The metadata of the copy (`None` for a tombstone).
    pub metadata: Option<Metadata>,
    /// When the copy was written (0 for a tombstone).
    pub written_at_ms: u64,
}

/// One page of [`Store::bucket_page`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketPage {
    /// Committed objects, in key order.
    pub objects: Vec<ObjectRecord>,
    /// Tombstones, by key within the bucket, in key order.
    pub tombstones: Vec<(String, Tombstone)>,
    /// More keys follow the last one of this page.
    pub more: bool,
}

/// What the store knows about one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyState {
    /// Committed (readable) bytes. A committed key with a pending overwrite reports this.
    Committed(ObjectRecord),
    /// Metadata accepted, bytes not yet arrived.
    Pending(PendingRecord),
    /// Deleted: only its tombstone is left.
    Deleted(Tombstone),
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

    /// Up to `limit` keys after `after` (a `(bucket_id, key)`; `None`: from the first), in
    /// key order, each with the version of its copy or of its tombstone; and whether more
    /// follow. A key with both (a tombstone older than its copy cannot stay, so this is only
    /// a window between two commits) is listed once, with the newer of the two.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn versions_page(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<(Vec<VersionEntry>, bool), StoreError> {
        self.blocking(move |s| {
            let txn = s.db().begin_read()?;
            let objects = txn.open_table(OBJECTS)?;
            let tombstones = txn.open_table(TOMBSTONES)?;
            let start = after.map(|(b, k)| object_key(&b, &k));
            let mut merged: std::collections::BTreeMap<String, VersionEntry> = Default::default();
            // Each table gives at most `limit + 1` keys past the cursor; the first `limit`
            // of their union are the page, and anything beyond means more follow.
            let take = limit.saturating_add(1);
            let past = |k: &str| start.as_deref().map_or(true, |s| k > s);
            let range = |t: &redb::ReadOnlyTable<&'static str, &'static [u8]>| -> Result<Vec<(String, Vec<u8>)>, StoreError> {
                let iter = match &start {
                    Some(s) => t.range::<&str>(s.as_str()..)?,
                    None => t.range::<&str>(..)?,
                };
                let mut out = Vec::new();
                for entry in iter {
                    let (k, v) = entry?;
                    if !past(k.value()) {
                        continue;
                    }
                    out.push((k.value().to_string(), v.value().to_vec()));
                    if out.len() >= take {
                        break;
                    }
                }
                Ok(out)
            };
            for (db_key, bytes) in range(&objects)? {
                let rec: ObjectRecord = decode(&db_key, &bytes)?;
                let entry = VersionEntry {
                    bucket_id: rec.metadata.bucket_id.clone(),
                    key: rec.metadata.key.clone(),
                    version: rec.version,
                    deleted: false,
                    size: rec.stored_size,
                    replication_factor: rec.replication_factor,
                    written_at_ms: rec.updated_at_ms,
                    metadata: Some(rec.metadata),
                };
                merged.insert(db_key, entry);
            }
            for (db_key, bytes) in range(&tombstones)? {
                let t: Tombstone = decode(&db_key, &bytes)?;
                if merged.get(&db_key).is_some_and(|e| e.version >= t.version) {
                    continue;
                }
                let (bucket_id, key) = db_key.split_once('\0').unwrap_or(("", ""));
                let entry = VersionEntry {
                    bucket_id: bucket_id.to_string(),
                    key: key.to_string(),
                    version: t.version,
                    deleted: true,
                    size: 0,
                    replication_factor: 0,
                    metadata: None,
                    written_at_ms: 0,
                };
                merged.insert(db_key, entry);
            }
            let more = merged.len() > limit;
            Ok((merged.into_values().take(limit).collect(), more))
        })
        .await
    }

    /// The tombstones of a bucket's deleted keys, by key, in key order.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn bucket_tombstones(
        &self,
        bucket_id: &str,
    ) -> Result<Vec<(String, Tombstone)>, StoreError> {
        let range = bucket_range(bucket_id);
        self.blocking(move |s| {
            let txn = s.db().begin_read()?;
            let table = txn.open_table(TOMBSTONES)?;
            let mut out = Vec::new();
            for entry in table.range(range.start.as_str()..range.end.as_str())? {
                let (k, v) = entry?;
                let key = k.value().split_once('\0').map_or("", |(_, key)| key);
                out.push((key.to_string(), decode(k.value(), v.value())?));
            }
            Ok(out)
        })
        .await
    }

    /// The committed objects of `ball_id` in a bucket (unordered), and the tombstones of its
    /// deleted keys, by key.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn ball_state(
        &self,
        bucket_id: &str,
        ball_id: &str,
    ) -> Result<(Vec<ObjectRecord>, Vec<(String, Tombstone)>), StoreError> {
        // One pass over the bucket keeping only the ball's records, so that memory follows
        // the ball and not the bucket (a router asks this of balls across its pages).
        let range = bucket_range(bucket_id);
        let ball_id = ball_id.to_string();
        self.blocking(move |s| {
            let txn = s.db().begin_read()?;
            let mut objects = Vec::new();
            let table = txn.open_table(OBJECTS)?;
            for entry in table.range(range.start.as_str()..range.end.as_str())? {
                let (k, v) = entry?;
                let rec: ObjectRecord = decode(k.value(), v.value())?;
                if rec.metadata.ball_id == ball_id {
                    objects.push(rec);
                }
            }
            let mut tombstones = Vec::new();
            let table = txn.open_table(TOMBSTONES)?;
            for entry in table.range(range.start.as_str()..range.end.as_str())? {
                let (k, v) = entry?;
                let t: Tombstone = decode(k.value(), v.value())?;
                if t.ball_id == ball_id {
                    let key = k.value().split_once('\0').map_or("", |(_, key)| key);
                    tombstones.push((key.to_string(), t));
                }
            }
            Ok((objects, tombstones))
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
        mictlanx::model::sort_chunks(&mut balls);
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

    /// Up to `limit` committed objects after the database key `after` (`bucket\0key`;
    /// `None`: from the first), in key order, and whether more follow. One short read of
    /// the range, so a listing's pages never hold a transaction open between them.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn objects_page(
        &self,
        after: Option<String>,
        limit: usize,
    ) -> Result<(Vec<ObjectRecord>, bool), StoreError> {
        self.blocking(move |s| {
            let txn = s.db().begin_read()?;
            let table = txn.open_table(OBJECTS)?;
            let iter = match &after {
                Some(a) => table.range::<&str>((Bound::Excluded(a.as_str()), Bound::Unbounded))?,
                None => table.range::<&str>(..)?,
            };
            let mut out = Vec::new();
            for entry in iter {
                let (k, v) = entry?;
                if out.len() == limit {
                    return Ok((out, true));
                }
                out.push(decode(k.value(), v.value())?);
            }
            Ok((out, false))
        })
        .await
    }

    /// Up to `limit` keys of a bucket after `after_key` (`None`: from the first), in key
    /// order: the committed objects and the tombstones among them (a key may have both for
    /// a moment between two commits), and whether more follow.
    ///
    /// # Errors
    ///
    /// Internal errors only.
    pub async fn bucket_page(
        &self,
        bucket_id: &str,
        after_key: Option<String>,
        limit: usize,
    ) -> Result<BucketPage, StoreError> {
        let range = bucket_range(bucket_id);
        let start = after_key.map(|k| object_key(bucket_id, &k));
        self.blocking(move |s| {
            let txn = s.db().begin_read()?;
            let objects = txn.open_table(OBJECTS)?;
            let tombstones = txn.open_table(TOMBSTONES)?;
            let lower = match &start {
                Some(k) => Bound::Excluded(k.as_str()),
                None => Bound::Included(range.start.as_str()),
            };
            let upper = Bound::Excluded(range.end.as_str());
            // Each table gives at most `limit + 1` keys; the first `limit` of their union
            // are the page, and anything beyond means more follow.
            let take = limit.saturating_add(1);
            let mut objs: Vec<(String, ObjectRecord)> = Vec::new();
            for entry in objects.range::<&str>((lower, upper))?.take(take) {
                let (k, v) = entry?;
                objs.push((k.value().to_string(), decode(k.value(), v.value())?));
            }
            let mut tombs: Vec<(String, Tombstone)> = Vec::new();
            for entry in tombstones.range::<&str>((lower, upper))?.take(take) {
                let (k, v) = entry?;
                tombs.push((k.value().to_string(), decode(k.value(), v.value())?));
            }
            let mut keys: Vec<&str> = objs
                .iter()
                .map(|(k, _)| k.as_str())
                .chain(tombs.iter().map(|(k, _)| k.as_str()))
                .collect();
            keys.sort_unstable();
            keys.dedup();
            let more = keys.len() > limit;
            let last = keys.get(limit.wrapping_sub(1)).map(|k| k.to_string());
            let within = |k: &str| !more || last.as_deref().is_some_and(|l| k <= l);
            let in_bucket = |k: &str| k.split_once('\0').map_or("", |(_, key)| key).to_string();
            Ok(BucketPage {
                objects: objs
                    .iter()
                    .filter(|(k, _)| within(k))
                    .map(|(_, o)| o.clone())
                    .collect(),
                tombstones: tombs
                    .iter()
                    .filter(|(k, _)| within(k))
                    .map(|(k, t)| (in_bucket(k), t.clone()))
                    .collect(),
                more,
            })
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
    if let Some((_, rec)) = get_pending_of_key(&by_key, &pending, db_key)? {
        return Ok(KeyState::Pending(rec));
    }
    Ok(match get_tombstone(&txn.open_table(TOMBSTONES)?, db_key)? {
        Some(t) => KeyState::Deleted(t),
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
