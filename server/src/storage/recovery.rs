//! Start-up recovery: bring the files and the database back into agreement after a crash.
//!
//! Given the write order (file fsynced, renamed, directory fsynced, then metadata committed),
//! a crash can leave only:
//! - files in `tmp/` (uploads cut short): deleted;
//! - files in `objects/` that no record references (crash between rename and commit, or
//!   between a delete's commit and its unlink): deleted;
//! - never a record without its file; if one shows up anyway (disk trouble, manual
//!   meddling) it is dropped and logged loudly, so nothing points at missing bytes.
//!
//! Quarantined `*.corrupted` files are kept for inspection.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::path::Path;

use redb::{Database, ReadableTable};

use super::files::{Files, CORRUPTED_SUFFIX};
use super::meta::{
    decode, object_key, ObjectRecord, PendingRecord, INLINE, OBJECTS, PENDING, PENDING_BY_KEY,
};
use super::usage::UsageSnapshot;
use super::StoreError;

/// What recovery found and did.
#[derive(Debug, Default)]
pub(crate) struct RecoveryReport {
    pub(crate) tmp_removed: usize,
    pub(crate) orphans_removed: usize,
    pub(crate) records_dropped: usize,
    /// Usage recounted from the surviving records (capacity left 0).
    pub(crate) usage: UsageSnapshot,
}

/// Runs recovery. Blocking.
pub(crate) fn recover(files: &Files, db: &Database) -> Result<RecoveryReport, StoreError> {
    let mut report = RecoveryReport {
        tmp_removed: clear_dir(files.tmp_dir()).map_err(StoreError::io("clearing tmp/"))?,
        ..Default::default()
    };
    let referenced = check_records(files, db, &mut report)?;
    report.orphans_removed = remove_orphans(files.objects_dir(), &referenced)
        .map_err(StoreError::io("scanning objects/"))?;
    fix_pending(db, &mut report)?;
    Ok(report)
}

/// Removes everything inside `dir`; returns how many entries.
fn clear_dir(dir: &Path) -> io::Result<usize> {
    let mut n = 0;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            fs::remove_dir_all(&path)?;
        } else {
            fs::remove_file(&path)?;
        }
        n += 1;
    }
    Ok(n)
}

/// Drops records whose file (or inline entry) is missing or has the wrong length, or that
/// cannot be decoded, and inline entries without a record; counts the rest and returns the
/// files they reference.
fn check_records(
    files: &Files,
    db: &Database,
    report: &mut RecoveryReport,
) -> Result<HashSet<String>, StoreError> {
    let txn = db.begin_write()?;
    let mut referenced = HashSet::new();
    {
        let mut objects = txn.open_table(OBJECTS)?;
        let mut inline = txn.open_table(INLINE)?;
        let mut doomed = Vec::new();
        let mut inline_keys = HashSet::new();
        for entry in objects.iter()? {
            let (k, v) = entry?;
            let db_key = k.value().to_string();
            let rec: ObjectRecord = match decode(&db_key, v.value()) {
                Ok(rec) => rec,
                Err(e) => {
                    tracing::error!(event = "RECOVERY.RECORD.DROPPED", key = %db_key.replace('\0', "@"), reason = %e);
                    doomed.push(db_key);
                    continue;
                }
            };
            let on_disk = if rec.inline {
                match inline.get(db_key.as_str())? {
                    Some(bytes) => Ok(bytes.value().len() as u64),
                    None => Err(io::Error::from(io::ErrorKind::NotFound)),
                }
            } else {
                fs::metadata(files.object_path(&rec.file)).map(|m| m.len())
            };
            match on_disk {
                Ok(len) if len == rec.stored_size => {
                    if rec.inline {
                        inline_keys.insert(db_key.clone());
                    } else {
                        referenced.insert(rec.file.clone());
                    }
                    report.usage.committed_bytes += rec.stored_size;
                    report.usage.objects += 1;
                }
                other => {
                    // Should never happen given the write order: say so loudly.
                    tracing::error!(
                        event = "RECOVERY.RECORD.DROPPED",
                        bucket_id = %rec.metadata.bucket_id,
                        key = %rec.metadata.key,
                        file = %rec.file,
                        expected_size = rec.stored_size,
                        found = ?other.as_ref().map_err(|e| e.kind()),
                    );
                    doomed.push(db_key);
                }
            }
        }
        for key in &doomed {
            objects.remove(key.as_str())?;
            inline.remove(key.as_str())?;
        }
        report.records_dropped = doomed.len();
        // Written in one transaction with their record, so this finds nothing unless the
        // database was edited by hand.
        let mut stray = Vec::new();
        for entry in inline.iter()? {
            let (k, _) = entry?;
            if !inline_keys.contains(k.value()) {
                stray.push(k.value().to_string());
            }
        }
        for key in &stray {
            tracing::warn!(event = "RECOVERY.INLINE.ORPHAN.REMOVED", key = %key.replace('\0', "@"));
            inline.remove(key.as_str())?;
        }
    }
    txn.commit()?;
    Ok(referenced)
}

/// Deletes files under `objects/<fan>/` that no record references; returns how many.
fn remove_orphans(objects: &Path, referenced: &HashSet<String>) -> io::Result<usize> {
    let mut n = 0;
    for fan in fs::read_dir(objects)? {
        let fan = fan?;
        if !fan.file_type()?.is_dir() {
            continue;
        }
        let fan_name = fan.file_name().to_string_lossy().into_owned();
        for entry in fs::read_dir(fan.path())? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(CORRUPTED_SUFFIX) {
                continue;
            }
            if !referenced.contains(&format!("{fan_name}/{name}")) {
                tracing::warn!(event = "RECOVERY.ORPHAN.REMOVED", file = %format!("{fan_name}/{name}"));
                if entry.file_type()?.is_dir() {
                    fs::remove_dir_all(entry.path())?;
                } else {
                    fs::remove_file(entry.path())?;
                }
                n += 1;
            }
        }
    }
    Ok(n)
}

/// Drops undecodable pending records and dangling index entries; counts reservations.
fn fix_pending(db: &Database, report: &mut RecoveryReport) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut pending = txn.open_table(PENDING)?;
        let mut by_key = txn.open_table(PENDING_BY_KEY)?;
        let mut bad = Vec::new();
        let mut live: HashSet<(String, String)> = HashSet::new();
        for entry in pending.iter()? {
            let (k, v) = entry?;
            match decode::<PendingRecord>(k.value(), v.value()) {
                Ok(rec) => {
                    report.usage.reserved_bytes += rec.metadata.size;
                    report.usage.pending_uploads += 1;
                    live.insert((
                        object_key(&rec.metadata.bucket_id, &rec.metadata.key),
                        k.value().to_string(),
                    ));
                }
                Err(e) => {
                    tracing::error!(event = "RECOVERY.PENDING.DROPPED", task_id = %k.value(), reason = %e);
                    bad.push(k.value().to_string());
                }
            }
        }
        for task in &bad {
            pending.remove(task.as_str())?;
        }
        let mut dangling = Vec::new();
        for entry in by_key.iter()? {
            let (k, v) = entry?;
            if !live.contains(&(k.value().to_string(), v.value().to_string())) {
                dangling.push(k.value().to_string());
            }
        }
        for key in &dangling {
            by_key.remove(key.as_str())?;
        }
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::super::{KeyState, Store};

    #[tokio::test]
    async fn recovery_removes_tmp_and_orphans_and_keeps_committed() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path()).await;
            put_object(&store, "b", "kept", b"kept bytes").await;
            store
                .put_metadata(put(metadata("b", "pending", b"p")))
                .await
                .unwrap();
        }
        // A crash mid-upload and a crash between rename and commit.
        std::fs::write(dir.path().join("tmp/abc.part"), b"half").unwrap();
        std::fs::create_dir_all(dir.path().join("tmp/stray-dir")).unwrap();
        std::fs::create_dir_all(dir.path().join("objects/ff")).unwrap();
        std::fs::write(dir.path().join("objects/ff/ff00-orphan"), b"orphan").unwrap();
        std::fs::write(dir.path().join("objects/ff/ff01.corrupted"), b"evidence").unwrap();

        let store = open(dir.path()).await;
        assert!(files_under(&dir.path().join("tmp")).is_empty());
        assert!(std::fs::read_dir(dir.path().join("tmp"))
            .unwrap()
            .next()
            .is_none());
        assert!(!dir.path().join("objects/ff/ff00-orphan").exists());
        assert!(
            dir.path().join("objects/ff/ff01.corrupted").exists(),
            "quarantine kept"
        );
        assert_eq!(read_all(&store, "b", "kept").await.unwrap(), b"kept bytes");
        assert!(matches!(
            store.key_state("b", "pending").await.unwrap(),
            KeyState::Pending(_)
        ));
        let u = store.usage();
        assert_eq!(
            (
                u.objects,
                u.committed_bytes,
                u.pending_uploads,
                u.reserved_bytes
            ),
            (1, 10, 1, 1)
        );
    }

    async fn file_of(store: &Store, dir: &std::path::Path, key: &str) -> std::path::PathBuf {
        match store.key_state("b", key).await.unwrap() {
            KeyState::Committed(r) => dir.join("objects").join(r.file),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn recovery_drops_records_without_their_bytes() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = open(dir.path()).await;
            put_object(&store, "b", "gone", b"0123").await;
            put_object(&store, "b", "short", b"0123456789").await;
            put_object(&store, "b", "fine", b"ok").await;
        }
        let store = open(dir.path()).await;
        let gone = file_of(&store, dir.path(), "gone").await;
        let short = file_of(&store, dir.path(), "short").await;
        drop(store);
        std::fs::remove_file(gone).unwrap();
        std::fs::write(short, b"01234").unwrap();

        let store = Store::open(config(dir.path())).await.unwrap();
        assert_eq!(
            store.key_state("b", "gone").await.unwrap(),
            KeyState::Absent
        );
        assert_eq!(
            store.key_state("b", "short").await.unwrap(),
            KeyState::Absent
        );
        assert_eq!(read_all(&store, "b", "fine").await.unwrap(), b"ok");
        assert_eq!(store.usage().objects, 1);
        assert_eq!(store.usage().committed_bytes, 2);
        // The truncated file was unreferenced after its record went, so it is gone too.
        assert_eq!(files_under(&dir.path().join("objects")).len(), 1);
    }
}
