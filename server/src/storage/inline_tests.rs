//! Small objects kept in the database (`StoreConfig::inline_limit`).

use redb::ReadableTable;

use super::meta::{object_key, INLINE};
use super::test_support::*;
use super::{parse_range, KeyState, Store, StoreConfig, StoreError};

const LIMIT: u64 = 1024;

fn inline_config(dir: &std::path::Path) -> StoreConfig {
    StoreConfig {
        inline_limit: LIMIT,
        ..config(dir)
    }
}

async fn open_inline(dir: &std::path::Path) -> Store {
    Store::open(inline_config(dir)).await.unwrap()
}

fn object_files(dir: &std::path::Path) -> usize {
    files_under(&dir.join("objects")).len()
}

fn inline_entries(store: &Store) -> usize {
    let txn = store.db().begin_read().unwrap();
    let table = txn.open_table(INLINE).unwrap();
    table.iter().unwrap().count()
}

async fn update(store: &Store, bucket: &str, key: &str, data: &[u8]) {
    let out = store
        .put_metadata(super::NewPut {
            update: true,
            ..put(metadata(bucket, key, data))
        })
        .await
        .unwrap();
    store.upload(out.task_id(), body(data, 100)).await.unwrap();
}

#[tokio::test]
async fn small_objects_need_no_file_and_read_back_whole_and_in_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_inline(dir.path()).await;
    let data: Vec<u8> = (0..LIMIT as u32).map(|i| (i % 251) as u8).collect();
    let stored = put_object(&store, "b", "small", &data).await;
    assert_eq!(stored.size, LIMIT);
    put_object(&store, "b", "empty", b"").await;
    assert_eq!(
        object_files(dir.path()),
        0,
        "no file for objects up to the limit"
    );
    assert_eq!(inline_entries(&store), 2);
    assert_eq!(read_all(&store, "b", "small").await.unwrap(), data);
    assert_eq!(read_all(&store, "b", "empty").await.unwrap(), b"");
    let part = store
        .read("b", "small", Some(parse_range("bytes=10-19").unwrap()))
        .await
        .unwrap();
    assert_eq!(part.len, 10);
    let bytes = futures::StreamExt::collect::<Vec<_>>(part.body).await;
    assert_eq!(bytes[0].as_ref().unwrap().as_ref(), &data[10..20]);
    assert!(matches!(
        store
            .read("b", "small", Some(parse_range("bytes=5000-").unwrap()))
            .await,
        Err(StoreError::RangeNotSatisfiable { .. })
    ));
    let KeyState::Committed(rec) = store.key_state("b", "small").await.unwrap() else {
        panic!("not committed");
    };
    assert!(rec.inline && rec.file.is_empty());
    assert_eq!(store.usage().committed_bytes, LIMIT);
    assert_eq!(store.usage().objects, 2);

    // One byte over the limit gets a file.
    put_object(&store, "b", "big", &[7u8; LIMIT as usize + 1]).await;
    assert_eq!(object_files(dir.path()), 1);
}

#[tokio::test]
async fn overwrites_move_between_inline_and_file_and_leave_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_inline(dir.path()).await;
    put_object(&store, "b", "k", b"small one").await;
    let big = vec![3u8; 4000];
    update(&store, "b", "k", &big).await;
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), big);
    assert_eq!(
        inline_entries(&store),
        0,
        "the inline version went with its record"
    );
    assert_eq!(object_files(dir.path()), 1);
    update(&store, "b", "k", b"small again").await;
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"small again");
    assert_eq!(object_files(dir.path()), 0, "the file version was removed");
    assert_eq!(inline_entries(&store), 1);
    assert_eq!(store.usage().committed_bytes, 11);
}

#[tokio::test]
async fn deletes_remove_the_bytes_and_reopen_finds_what_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_inline(dir.path()).await;
        for i in 0..3 {
            let mut m = metadata("b", &format!("ball_{i}"), b"chunk");
            m.ball_id = "ball".into();
            let out = store.put_metadata(put(m)).await.unwrap();
            store
                .upload(out.task_id(), body(b"chunk", 2))
                .await
                .unwrap();
        }
        put_object(&store, "b", "keep", b"kept bytes").await;
        put_object(&store, "b", "gone", b"deleted").await;
        assert_eq!(store.delete_key("b", "gone").await.unwrap(), 1);
        assert_eq!(store.delete_ball("b", "ball").await.unwrap(), 3);
        assert_eq!(inline_entries(&store), 1);
        assert!(dir.path().join("objects").is_dir());
    }
    let store = open_inline(dir.path()).await;
    assert_eq!(read_all(&store, "b", "keep").await.unwrap(), b"kept bytes");
    assert!(matches!(
        store.key_state("b", "gone").await.unwrap(),
        KeyState::Deleted(_)
    ));
    assert_eq!(store.usage().objects, 1);
    assert_eq!(store.usage().committed_bytes, 10);
}

#[tokio::test]
async fn corrupt_inline_bytes_are_never_served_and_the_record_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_inline(dir.path()).await;
    put_object(&store, "b", "k", b"good bytes").await;
    {
        // Same length, other bytes: only the hash can tell.
        let txn = store.db().begin_write().unwrap();
        txn.open_table(INLINE)
            .unwrap()
            .insert(object_key("b", "k").as_str(), b"evil bytes".as_slice())
            .unwrap();
        txn.commit().unwrap();
    }
    assert!(matches!(
        store.read("b", "k", None).await,
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        store.key_state("b", "k").await.unwrap(),
        KeyState::Absent
    ));
    assert_eq!(inline_entries(&store), 0);
    assert!(dir.path().join("objects").is_dir(), "objects/ is untouched");
    assert_eq!(store.usage().objects, 0);
}

#[tokio::test]
async fn recovery_drops_an_inline_record_without_bytes_and_stray_bytes() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open_inline(dir.path()).await;
        put_object(&store, "b", "lost", b"bytes that vanish").await;
        put_object(&store, "b", "fine", b"fine").await;
        let txn = store.db().begin_write().unwrap();
        {
            let mut t = txn.open_table(INLINE).unwrap();
            t.remove(object_key("b", "lost").as_str()).unwrap();
            t.insert(object_key("b", "stray").as_str(), b"x".as_slice())
                .unwrap();
        }
        txn.commit().unwrap();
    }
    let store = open_inline(dir.path()).await;
    assert!(matches!(
        store.key_state("b", "lost").await.unwrap(),
        KeyState::Absent
    ));
    assert_eq!(read_all(&store, "b", "fine").await.unwrap(), b"fine");
    assert_eq!(inline_entries(&store), 1, "the stray entry was removed");
    assert_eq!(store.usage().objects, 1);
}

#[tokio::test]
async fn dropping_a_corrupt_inline_version_leaves_a_newer_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let store = open_inline(dir.path()).await;
    put_object(&store, "b", "k", b"first").await;
    let KeyState::Committed(first) = store.key_state("b", "k").await.unwrap() else {
        panic!("not committed");
    };
    update(&store, "b", "k", b"second version").await;
    let s = store.clone();
    tokio::task::spawn_blocking(move || s.drop_corrupt_inline_blocking("b", "k", &first))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read_all(&store, "b", "k").await.unwrap(), b"second version");
}
