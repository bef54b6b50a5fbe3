//! A full disk and a metadata database that hits `ENOSPC`, on a simulated small disk.

use std::sync::Arc;
use std::time::Duration;

use super::test_support::*;
use super::{SimulatedDisk, Store, StoreConfig, StoreError};

/// Object size: above the inline limit of the test configuration (0), so each is a file.
const OBJ: usize = 200_000;
const RESERVE: u64 = 256 * 1024;

fn du(dir: &std::path::Path) -> u64 {
    files_under(dir)
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

fn object(i: usize) -> Vec<u8> {
    (0..OBJ).map(|j| ((i * 31 + j) % 251) as u8).collect()
}

/// A store on a disk with room for about `objects` objects beyond the reserve.
async fn small_disk(dir: &std::path::Path, objects: usize) -> (Store, Arc<SimulatedDisk>) {
    let sim = SimulatedDisk::new(u64::MAX);
    let cfg = StoreConfig {
        capacity: 1 << 40,
        meta_reserve: RESERVE,
        degraded_hold: Duration::from_millis(200),
        simulated_disk: Some(Arc::clone(&sim)),
        ..config(dir)
    };
    let store = Store::open(cfg).await.unwrap();
    sim.set_limit(du(dir) + RESERVE + (objects * OBJ) as u64 + (OBJ / 2) as u64);
    (store, sim)
}

async fn try_put(store: &Store, key: &str, data: &[u8]) -> Result<(), StoreError> {
    let out = store.put_metadata(put(metadata("b", key, data))).await?;
    store.upload(out.task_id(), body(data, 64 * 1024)).await?;
    Ok(())
}

#[tokio::test]
async fn the_capacity_is_what_the_disk_really_has() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _sim) = small_disk(dir.path(), 4).await;
    let u = store.usage();
    assert!(u.capacity < 5 * OBJ as u64, "{u:?}");
    assert!(u.capacity >= 4 * OBJ as u64, "{u:?}");
    assert_eq!(store.condition().state(), "ok");
}

#[tokio::test]
async fn a_full_disk_and_a_failed_database_recover_through_deletes_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let (store, sim) = small_disk(dir.path(), 5).await;

    // Fill: puts until 507, which comes before anything is written.
    let mut stored = Vec::new();
    let refused = loop {
        let i = stored.len();
        assert!(i < 20, "never refused");
        match try_put(&store, &format!("k{i}"), &object(i)).await {
            Ok(()) => stored.push(i),
            Err(e) => break e,
        }
    };
    assert!(matches!(refused, StoreError::NoSpace { .. }), "{refused}");
    assert_eq!(
        refused.status(),
        axum::http::StatusCode::INSUFFICIENT_STORAGE
    );
    assert!(stored.len() >= 3, "only {} stored", stored.len());
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert_eq!(store.usage().pending_uploads, 0);
    let c = store.condition();
    assert_eq!((c.state(), c.full), ("full", true), "{c:?}");

    // The metadata database hits ENOSPC: a small put fails with 507, leaves no file, and
    // the database is poisoned (redb refuses everything after a failed commit).
    sim.set_db_full(true);
    let err = try_put(&store, "small", b"0123456789").await.unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    let c = store.condition();
    assert!(c.degraded && c.db_errors > 0, "{c:?}");
    assert_eq!(c.state(), "degraded");

    // The disk has room for metadata again; deletes through the store free space, the
    // database is reopened on the way, and puts work again: no restart.
    sim.set_db_full(false);
    for i in stored.drain(..2) {
        assert_eq!(store.delete_key("b", &format!("k{i}")).await.unwrap(), 1);
    }
    let more = 100;
    try_put(&store, &format!("k{more}"), &object(more))
        .await
        .unwrap();
    stored.push(more);
    assert!(store.condition().db_reopens >= 1);
    for i in &stored {
        assert_eq!(
            read_all(&store, "b", &format!("k{i}")).await.unwrap(),
            object(*i)
        );
    }
    assert!(matches!(
        read_all(&store, "b", "k0").await,
        Err(StoreError::Deleted { .. })
    ));
    tokio::time::sleep(Duration::from_millis(250)).await;
    let c = store.condition();
    assert_eq!(c.state(), "ok", "{c:?}");
    let u = store.usage();
    assert_eq!((u.objects, u.pending_uploads), (stored.len() as u64, 0));
}

#[tokio::test]
async fn enospc_while_writing_the_data_is_507_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (store, sim) = small_disk(dir.path(), 3).await;
    let data = object(0);
    let out = store
        .put_metadata(put(metadata("b", "k", &data)))
        .await
        .unwrap();
    // Something else fills the disk after the announcement.
    sim.set_limit(du(dir.path()) + 1000);
    let err = store
        .upload(out.task_id(), body(&data, 64 * 1024))
        .await
        .unwrap_err();
    assert!(err.is_no_space(), "{err}");
    assert_eq!(
        crate::error::ApiError::from(err).status,
        axum::http::StatusCode::INSUFFICIENT_STORAGE
    );
    assert!(files_under(&dir.path().join("tmp")).is_empty());
    assert!(files_under(&dir.path().join("objects")).is_empty());
    assert!(store.condition().full);
    // The pending upload stays for a retry once there is room.
    sim.set_limit(u64::MAX);
    store
        .upload(out.task_id(), body(&data, 64 * 1024))
        .await
        .unwrap();
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), data);
}
