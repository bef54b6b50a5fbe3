//! Versions and tombstones in the store: the newest write of a key wins, whatever order
//! the writes and deletes arrive in.

use super::test_support::*;
use super::{Deletion, KeyState, NewPut, Store, StoreError};
use crate::version::Version;

fn v(stamp: u64) -> Version {
    Version { stamp, tag: 7 }
}

fn at(meta: mictlanx::model::Metadata, version: Version, update: bool) -> NewPut {
    NewPut {
        metadata: meta,
        task_id: None,
        update,
        version: Some(version),
        replication_factor: 2,
    }
}

/// Puts `data` at `version` (announcement and upload).
async fn put_at(store: &Store, key: &str, data: &[u8], version: Version) -> Result<(), StoreError> {
    let out = store
        .put_metadata(at(metadata("b", key, data), version, true))
        .await?;
    if out.task_id() != "0" {
        store.upload(out.task_id(), body(data, 3)).await?;
    }
    Ok(())
}

fn deletion(version: Version) -> Deletion {
    Deletion {
        version: Some(version),
        tombstone_always: false,
    }
}

async fn state(store: &Store, key: &str) -> KeyState {
    store.key_state("b", key).await.unwrap()
}

#[tokio::test]
async fn an_older_write_is_refused_as_stale_and_names_the_version_to_beat() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    put_at(&store, "k", b"new", v(20)).await.unwrap();
    let err = put_at(&store, "k", b"old", v(10)).await.unwrap_err();
    assert!(
        matches!(err, StoreError::Stale { current, .. } if current == v(20)),
        "{err}"
    );
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"new");
    // The same write again (a retry) needs no upload.
    let again = store
        .put_metadata(at(metadata("b", "k", b"new"), v(20), false))
        .await
        .unwrap();
    assert_eq!(again.task_id(), "0");
    // A newer one replaces it.
    put_at(&store, "k", b"newer", v(30)).await.unwrap();
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"newer");
    let KeyState::Committed(rec) = state(&store, "k").await else {
        panic!("not committed");
    };
    assert_eq!(rec.version, v(30));
}

#[tokio::test]
async fn a_tombstone_refuses_older_copies_and_yields_to_newer_writes() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    put_at(&store, "k", b"data", v(10)).await.unwrap();
    assert_eq!(
        store
            .delete_key_at("b", "k", deletion(v(20)))
            .await
            .unwrap(),
        1
    );
    assert!(matches!(state(&store, "k").await, KeyState::Deleted(t) if t.version == v(20)));
    // A copy of the old version (repair, a returning replica) cannot bring it back.
    let err = put_at(&store, "k", b"data", v(10)).await.unwrap_err();
    assert!(matches!(err, StoreError::Stale { current, .. } if current == v(20)));
    let err = store.read("b", "k", None).await.unwrap_err();
    assert!(matches!(err, StoreError::Deleted { version, .. } if version == v(20)));
    // A write after the delete recreates the key and clears the tombstone.
    put_at(&store, "k", b"again", v(30)).await.unwrap();
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"again");
    assert!(store.bucket_tombstones("b").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_delete_older_than_the_copy_leaves_it_and_a_newer_one_always_tombstones() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    put_at(&store, "k", b"data", v(20)).await.unwrap();
    assert_eq!(
        store
            .delete_key_at("b", "k", deletion(v(10)))
            .await
            .unwrap(),
        0
    );
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"data");
    // A key never seen: a tombstone only when asked for one.
    store
        .delete_key_at("b", "absent", deletion(v(5)))
        .await
        .unwrap();
    assert_eq!(state(&store, "absent").await, KeyState::Absent);
    let always = Deletion {
        version: Some(v(5)),
        tombstone_always: true,
    };
    store.delete_key_at("b", "absent", always).await.unwrap();
    assert!(matches!(
        state(&store, "absent").await,
        KeyState::Deleted(_)
    ));
    let listed = store.bucket_tombstones("b").await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, "absent");
}

#[tokio::test]
async fn an_upload_overtaken_by_a_newer_commit_is_stale_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    // Two pending writes cannot coexist, so the older one is overtaken by a delete that
    // a newer write then follows.
    let old = store
        .put_metadata(at(metadata("b", "k", b"old"), v(10), true))
        .await
        .unwrap();
    store.delete_key_at("b", "k", deletion(v(5))).await.unwrap();
    // The delete was older than the pending write: it stays.
    store.upload(old.task_id(), body(b"old", 2)).await.unwrap();
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"old");
    // A newer pending write refuses an older announcement of another group.
    store
        .put_metadata(at(metadata("b", "k", b"newest"), v(40), true))
        .await
        .unwrap();
    let err = store
        .put_metadata(at(metadata("b", "k", b"older"), v(30), true))
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Stale { current, .. } if current == v(40)));
}

#[tokio::test]
async fn a_disable_is_a_write_of_its_own_and_an_older_one_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    put_at(&store, "k", b"data", v(10)).await.unwrap();
    // Older than the copy (the key was written again since): the copy stays enabled.
    assert!(store.disable_at("b", "k", Some(v(5))).await.unwrap());
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"data");
    assert!(store.disable_at("b", "k", Some(v(20))).await.unwrap());
    let KeyState::Committed(rec) = state(&store, "k").await else {
        panic!("not committed");
    };
    assert!(rec.metadata.is_disabled);
    assert_eq!(rec.version, v(20), "replicas that missed it lose to it");
    assert!(matches!(
        store.read("b", "k", None).await.unwrap_err(),
        StoreError::Disabled { .. }
    ));
    assert!(!store.disable_at("b", "nope", Some(v(30))).await.unwrap());
}

#[tokio::test]
async fn only_the_named_tombstone_is_purged() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path()).await;
    put_at(&store, "k", b"data", v(10)).await.unwrap();
    store
        .delete_key_at("b", "k", deletion(v(20)))
        .await
        .unwrap();
    assert!(!store.purge_tombstone("b", "k", v(19)).await.unwrap());
    assert!(matches!(state(&store, "k").await, KeyState::Deleted(_)));
    assert!(store.purge_tombstone("b", "k", v(20)).await.unwrap());
    assert_eq!(state(&store, "k").await, KeyState::Absent);
    assert!(!store.purge_tombstone("b", "k", v(20)).await.unwrap());
}

#[tokio::test]
async fn versions_and_tombstones_survive_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(dir.path()).await;
        put_at(&store, "k", b"data", v(10)).await.unwrap();
        put_at(&store, "gone", b"x", v(10)).await.unwrap();
        store
            .delete_key_at("b", "gone", deletion(v(20)))
            .await
            .unwrap();
    }
    let store = open(dir.path()).await;
    let KeyState::Committed(rec) = state(&store, "k").await else {
        panic!("not committed");
    };
    assert_eq!(rec.version, v(10));
    assert!(matches!(state(&store, "gone").await, KeyState::Deleted(t) if t.version == v(20)));
    // Writes without a version get one from the store's clock, newer than what it saw.
    let out = store
        .put_metadata(put(metadata("b", "gone", b"y")))
        .await
        .unwrap();
    store.upload(out.task_id(), body(b"y", 1)).await.unwrap();
    assert_eq!(read_all(&store, "b", "gone").await.unwrap(), b"y");
}
