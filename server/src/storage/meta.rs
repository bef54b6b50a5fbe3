//! The metadata database: table definitions, the records stored in them, and small typed
//! accessors. Values are JSON so that a record can grow a field without a migration.
//!
//! Tables (redb commits every table touched by one transaction together):
//! - [`OBJECTS`]: `bucket_id\0key` → [`ObjectRecord`], the committed objects.
//! - [`PENDING`]: task id → [`PendingRecord`], metadata whose bytes have not arrived.
//! - [`PENDING_BY_KEY`]: `bucket_id\0key` → task id, at most one pending upload per key.
//! - [`INLINE`]: `bucket_id\0key` → the bytes of a small object kept in the database.
//! - [`TOMBSTONES`]: `bucket_id\0key` → [`Tombstone`], the version at which a key was
//!   deleted, so that an older copy elsewhere cannot bring it back.
//!
//! Bucket ids and keys are sanitised (letters, digits, `-`, `_`), so `\0` never occurs in
//! them and all keys of a bucket form the contiguous range `bucket\0 .. bucket\x01`.

use mictlanx::blocks::BlockSums;
use mictlanx::model::Metadata;
use redb::{ReadableTable, TableDefinition};

use crate::version::Version;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::StoreError;

/// Committed objects: `bucket_id\0key` → JSON [`ObjectRecord`].
pub(crate) const OBJECTS: TableDefinition<&str, &[u8]> = TableDefinition::new("objects");
/// Pending uploads: task id → JSON [`PendingRecord`].
pub(crate) const PENDING: TableDefinition<&str, &[u8]> = TableDefinition::new("pending");
/// Pending upload of a key: `bucket_id\0key` → task id.
pub(crate) const PENDING_BY_KEY: TableDefinition<&str, &str> =
    TableDefinition::new("pending_by_key");
/// Bytes of small objects (`ObjectRecord::inline`): `bucket_id\0key` → bytes.
pub(crate) const INLINE: TableDefinition<&str, &[u8]> = TableDefinition::new("inline");
/// Deleted keys: `bucket_id\0key` → JSON [`Tombstone`].
pub(crate) const TOMBSTONES: TableDefinition<&str, &[u8]> = TableDefinition::new("tombstones");

/// A committed object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRecord {
    /// The wire metadata (bucket id and key sanitised; tags as given).
    pub metadata: Metadata,
    /// SHA-256 (lowercase hex) the peer computed from the bytes it stored.
    pub sha256: String,
    /// Whether the declared checksum was a SHA-256 and matched; false for labels such as
    /// `"abc"` that other clients declare.
    pub verified: bool,
    /// Data file, relative to `objects/`; empty when the bytes are [`inline`](Self::inline).
    pub file: String,
    /// Bytes in the data file.
    pub stored_size: u64,
    /// When the key was first committed (ms since the Unix epoch).
    pub created_at_ms: u64,
    /// When this version (or its metadata) was last written (ms since the Unix epoch).
    pub updated_at_ms: u64,
    /// The bytes are in the database's `inline` table, committed with this record, instead
    /// of a file (small objects: no file, no per-object fsync).
    #[serde(default)]
    pub inline: bool,
    /// The version of the write that stored these bytes (or last changed this metadata);
    /// [`Version::ZERO`] for records written before versions existed.
    #[serde(default)]
    pub version: Version,
    /// Replicas its writer asked for (0: not said).
    #[serde(default)]
    pub replication_factor: u32,
    /// CRC32C of each [`BLOCK_SIZE`](mictlanx::blocks::BLOCK_SIZE) block of the data file,
    /// as hex ([`BlockSums::to_hex`]); empty for inline objects (verified whole on every
    /// read) and for files stored before block sums existed.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub block_crc32c: String,
}

impl ObjectRecord {
    /// The block sums of the data file, if it has usable ones: `None` for records written
    /// before block sums existed, or whose sums do not fit the file's size.
    pub fn block_sums(&self) -> Option<BlockSums> {
        if self.inline {
            return None;
        }
        let sums = BlockSums::from_hex(&self.block_crc32c)?;
        let expected = self.stored_size.div_ceil(mictlanx::blocks::BLOCK_SIZE);
        (sums.len() as u64 == expected).then_some(sums)
    }
}

/// A deleted key: the version of the delete, newer than every version it removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tombstone {
    /// The version of the delete.
    pub version: Version,
    /// When the delete was applied here (ms since the Unix epoch).
    pub deleted_at_ms: u64,
    /// The ball the deleted key belonged to (empty when the key was not here), so that
    /// ball listings can show the deletion too.
    #[serde(default)]
    pub ball_id: String,
}

/// Metadata accepted by a put whose bytes have not arrived yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingRecord {
    /// The wire metadata of the put.
    pub metadata: Metadata,
    /// When it was accepted (ms since the Unix epoch); pending uploads expire from here.
    pub created_at_ms: u64,
    /// Whether the put carried `Update: 1` (may replace a committed version).
    pub update: bool,
    /// The version of the write; it commits only while it is the newest of its key.
    #[serde(default)]
    pub version: Version,
    /// Replicas its writer asked for (0: not said).
    #[serde(default)]
    pub replication_factor: u32,
}

/// The database key of `bucket@key`.
pub(crate) fn object_key(bucket_id: &str, key: &str) -> String {
    format!("{bucket_id}\0{key}")
}

/// The database key range holding every key of `bucket_id`.
pub(crate) fn bucket_range(bucket_id: &str) -> std::ops::Range<String> {
    format!("{bucket_id}\0")..format!("{bucket_id}\u{1}")
}

pub(crate) fn encode<T: Serialize>(db_key: &str, value: &T) -> Result<Vec<u8>, StoreError> {
    serde_json::to_vec(value).map_err(|source| StoreError::Record {
        key: printable(db_key),
        source,
    })
}

pub(crate) fn decode<T: DeserializeOwned>(db_key: &str, bytes: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Record {
        key: printable(db_key),
        source,
    })
}

/// `bucket\0key` shown as `bucket@key` in errors and logs.
pub(crate) fn printable(db_key: &str) -> String {
    db_key.replace('\0', "@")
}

/// The committed record of `db_key`, if any.
pub(crate) fn get_object(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    db_key: &str,
) -> Result<Option<ObjectRecord>, StoreError> {
    get_json(table, db_key)
}

/// The JSON record under `db_key` of a table, decoded, if any.
fn get_json<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    db_key: &str,
) -> Result<Option<T>, StoreError> {
    match table.get(db_key)? {
        Some(guard) => decode(db_key, guard.value()).map(Some),
        None => Ok(None),
    }
}

/// The tombstone of `db_key`, if any.
pub(crate) fn get_tombstone(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    db_key: &str,
) -> Result<Option<Tombstone>, StoreError> {
    get_json(table, db_key)
}

/// The pending record of `task_id`, if any.
pub(crate) fn get_pending(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    task_id: &str,
) -> Result<Option<PendingRecord>, StoreError> {
    get_json(table, task_id)
}

/// The pending upload of `db_key` (its task id and record), if any.
pub(crate) fn get_pending_of_key(
    by_key: &impl ReadableTable<&'static str, &'static str>,
    pending: &impl ReadableTable<&'static str, &'static [u8]>,
    db_key: &str,
) -> Result<Option<(String, PendingRecord)>, StoreError> {
    let Some(task_id) = by_key.get(db_key)?.map(|g| g.value().to_string()) else {
        return Ok(None);
    };
    Ok(get_pending(pending, &task_id)?.map(|rec| (task_id, rec)))
}

/// Whether two metadata describe the same bytes: same size and same declared checksum
/// (hex compared without regard to case).
pub(crate) fn same_content(a: &Metadata, b: &Metadata) -> bool {
    a.size == b.size && a.checksum.eq_ignore_ascii_case(&b.checksum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_range_holds_exactly_the_bucket() {
        let r = bucket_range("b");
        assert!(r.contains(&object_key("b", "k")));
        assert!(r.contains(&object_key("b", "zzz")));
        assert!(!r.contains(&object_key("b-2", "k")));
        assert!(!r.contains(&object_key("bb", "k")));
        assert!(!r.contains(&object_key("a", "k")));
    }

    #[test]
    fn printable_and_same_content() {
        assert_eq!(printable(&object_key("b", "k")), "b@k");
        let m: Metadata = serde_json::from_str(r#"{"key":"k","size":1,"checksum":"AB"}"#).unwrap();
        let mut n = m.clone();
        n.checksum = "ab".into();
        assert!(same_content(&m, &n));
        n.size = 2;
        assert!(!same_content(&m, &n));
    }
}
