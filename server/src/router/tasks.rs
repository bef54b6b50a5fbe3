//! Upload task groups: what put-metadata (R1) promised and the data upload (R2/R3) fulfils.
//!
//! A group is created by R1 under a fresh random id (the `tasks_ids[0]` the client uploads
//! to) and records the object and the replicas that expect its bytes. An upload holds the
//! group under a [`TaskLease`] so that two uploads of one group never interleave; the group
//! is removed when at least one replica stored the bytes, and otherwise stays so the client
//! can retry. Groups that are never completed expire after the configured TTL (the original
//! kept them forever).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use mictlanx::model::PeerPutMetadataRequest;
use rand::Rng;

use crate::version::Version;
use std::time::Instant;

/// Length of a group id (the nanoid default).
pub(crate) const GROUP_ID_LEN: usize = 21;

/// At most this many groups wait for their bytes; beyond it put-metadata answers 503 so that
/// abandoned puts cannot grow the router's memory without bound.
pub(crate) const MAX_PENDING_GROUPS: usize = 65_536;

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

/// A fresh random group id: 21 characters of `[A-Za-z0-9_-]` (126 bits).
pub(crate) fn new_group_id() -> String {
    let mut rng = rand::thread_rng();
    (0..GROUP_ID_LEN)
        .map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())]))
        .collect()
}

/// One pending put: the object and where its bytes go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UploadTask {
    /// The group id (`tasks_ids[0]`).
    pub group_id: String,
    /// Sanitised bucket id.
    pub bucket_id: String,
    /// Sanitised key.
    pub key: String,
    /// Declared size in bytes.
    pub size: u64,
    /// Declared checksum (verified by the router only when it is a SHA-256).
    pub checksum: String,
    /// Replicas that expect the bytes, with the task id each one gave its pending upload
    /// (the group id, for a peer that honours `Task-Id`).
    pub upload_peers: Vec<(String, String)>,
    /// Replicas that already hold these exact bytes (the peer answered task id `"0"`).
    pub done_peers: Vec<String>,
    /// Replicas on which `size` bytes are reserved for placement until the group ends.
    pub reserved_peers: Vec<String>,
    /// Replicas asked for: the upload is acknowledged only once this many peers hold it.
    pub rf: usize,
    /// The version the replicas accepted for this write.
    pub version: Version,
    /// What the replicas were sent (a fallback replica is announced the same way).
    pub metadata: PeerPutMetadataRequest,
}

struct Entry {
    task: Arc<UploadTask>,
    busy: bool,
    expires: Instant,
}

struct Inner {
    groups: HashMap<String, Entry>,
}

/// The pending groups of one router. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TaskStore {
    inner: Arc<Mutex<Inner>>,
    ttl: Duration,
    max: usize,
}

/// Why an upload cannot start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BeginError {
    /// No such group (never created, completed, or expired).
    NotFound,
    /// Another upload of this group is in progress.
    Busy,
}

/// The store is full ([`MAX_PENDING_GROUPS`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreFull;

impl TaskStore {
    /// A store whose groups live `ttl`.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self::with_capacity(ttl, MAX_PENDING_GROUPS)
    }

    fn with_capacity(ttl: Duration, max: usize) -> Self {
        Self {
            inner: Arc::new(Mutex::new(Inner {
                groups: HashMap::new(),
            })),
            ttl,
            max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the map half-updated (every update is
        // one HashMap call), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a group.
    pub(crate) fn insert(&self, task: UploadTask) -> Result<(), StoreFull> {
        self.insert_at(task, Instant::now())
    }

    fn insert_at(&self, task: UploadTask, now: Instant) -> Result<(), StoreFull> {
        let mut inner = self.lock();
        if inner.groups.len() >= self.max {
            return Err(StoreFull);
        }
        let expires = now + self.ttl;
        inner.groups.insert(
            task.group_id.clone(),
            Entry {
                task: Arc::new(task),
                busy: false,
                expires,
            },
        );
        Ok(())
    }

    /// Takes the group for an upload.
    pub(crate) fn begin(&self, group_id: &str) -> Result<TaskLease, BeginError> {
        self.begin_at(group_id, Instant::now())
    }

    fn begin_at(&self, group_id: &str, now: Instant) -> Result<TaskLease, BeginError> {
        let mut inner = self.lock();
        let entry = inner.groups.get_mut(group_id).ok_or(BeginError::NotFound)?;
        if entry.expires <= now && !entry.busy {
            inner.groups.remove(group_id);
            return Err(BeginError::NotFound);
        }
        if entry.busy {
            return Err(BeginError::Busy);
        }
        entry.busy = true;
        Ok(TaskLease {
            store: self.clone(),
            task: entry.task.clone(),
            done: false,
        })
    }

    /// A copy of a group, without taking it.
    pub(crate) fn get(&self, group_id: &str) -> Option<Arc<UploadTask>> {
        self.lock().groups.get(group_id).map(|e| e.task.clone())
    }

    /// Removes the groups whose time is up and that no upload holds; returns them so that
    /// their reservations can be released.
    pub(crate) fn expire(&self) -> Vec<Arc<UploadTask>> {
        self.expire_at(Instant::now())
    }

    fn expire_at(&self, now: Instant) -> Vec<Arc<UploadTask>> {
        let mut inner = self.lock();
        let expired: Vec<String> = inner
            .groups
            .iter()
            .filter(|(_, e)| !e.busy && e.expires <= now)
            .map(|(id, _)| id.clone())
            .collect();
        expired
            .iter()
            .filter_map(|id| inner.groups.remove(id).map(|e| e.task))
            .collect()
    }

    /// Number of pending groups.
    pub(crate) fn len(&self) -> usize {
        self.lock().groups.len()
    }

    fn release(&self, group_id: &str) {
        if let Some(e) = self.lock().groups.get_mut(group_id) {
            e.busy = false;
        }
    }

    fn remove(&self, group_id: &str) {
        self.lock().groups.remove(group_id);
    }
}

/// Exclusive hold of a group during one upload. Dropping it (the upload failed, or the
/// client went away and the handler was cancelled) puts the group back for a retry;
/// [`TaskLease::complete`] removes it.
pub(crate) struct TaskLease {
    store: TaskStore,
    task: Arc<UploadTask>,
    done: bool,
}

impl TaskLease {
    /// The group.
    pub(crate) fn task(&self) -> &UploadTask {
        &self.task
    }

    /// The upload succeeded: the group is removed.
    pub(crate) fn complete(mut self) {
        self.done = true;
        self.store.remove(&self.task.group_id);
    }
}

impl Drop for TaskLease {
    fn drop(&mut self) {
        if !self.done {
            self.store.release(&self.task.group_id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(id: &str) -> UploadTask {
        UploadTask {
            group_id: id.to_string(),
            bucket_id: "b".into(),
            key: "k".into(),
            size: 3,
            checksum: "c".into(),
            upload_peers: vec![("peer-0".into(), id.to_string())],
            done_peers: vec![],
            reserved_peers: vec!["peer-0".into()],
            rf: 1,
            version: Version::ZERO,
            metadata: Default::default(),
        }
    }

    #[test]
    fn group_ids_are_21_url_safe_characters_and_distinct() {
        let a = new_group_id();
        let b = new_group_id();
        assert_eq!(a.len(), GROUP_ID_LEN);
        assert!(a
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'));
        assert_ne!(a, b);
    }

    #[test]
    fn lease_is_exclusive_and_released_on_drop() {
        let store = TaskStore::new(Duration::from_secs(60));
        store.insert(task("g1")).unwrap();
        let lease = store.begin("g1").unwrap();
        assert_eq!(lease.task().key, "k");
        assert_eq!(store.begin("g1").err(), Some(BeginError::Busy));
        drop(lease);
        let lease = store.begin("g1").unwrap();
        lease.complete();
        assert_eq!(store.begin("g1").err(), Some(BeginError::NotFound));
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn groups_expire_after_the_ttl_unless_held() {
        let store = TaskStore::new(Duration::from_secs(10));
        let t0 = Instant::now();
        store.insert_at(task("idle"), t0).unwrap();
        store.insert_at(task("held"), t0).unwrap();
        let lease = store.begin_at("held", t0).unwrap();
        assert!(store.expire_at(t0 + Duration::from_secs(5)).is_empty());
        let expired = store.expire_at(t0 + Duration::from_secs(11));
        assert_eq!(expired.len(), 1);
        assert_eq!(expired[0].group_id, "idle");
        assert!(store.get("held").is_some());
        // Once released, an expired group is gone at the next sweep or lookup.
        drop(lease);
        assert_eq!(
            store.begin_at("held", t0 + Duration::from_secs(11)).err(),
            Some(BeginError::NotFound)
        );
        assert_eq!(store.len(), 0);
    }

    #[test]
    fn store_is_bounded() {
        let store = TaskStore::with_capacity(Duration::from_secs(60), 2);
        store.insert(task("a")).unwrap();
        store.insert(task("b")).unwrap();
        assert_eq!(store.insert(task("c")), Err(StoreFull));
        store.begin("a").unwrap().complete();
        store.insert(task("c")).unwrap();
    }
}
