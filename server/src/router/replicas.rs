//! The replica map: which peers hold `(bucket, key)`.
//!
//! The router keeps no durable state (DESIGN §5): this map is only a cache of what the peers
//! hold. It is filled from each peer's `xballs` listing when the peer first comes up, updated
//! on writes and deletes, and completed on demand by asking the peers (see `lookup`), so a
//! restarted router or a second router sees every ball. A stale entry costs one 404 from a
//! peer, after which it is dropped.

use std::collections::HashMap;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

type ObjectKey = (String, String);

/// `(bucket, key)` → peer ids, in the order they were learnt. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct ReplicaMap {
    inner: Arc<RwLock<HashMap<ObjectKey, Vec<String>>>>,
}

fn key(bucket: &str, key: &str) -> ObjectKey {
    (bucket.to_string(), key.to_string())
}

impl ReplicaMap {
    // Every operation is a single map update, so a poisoned lock holds consistent data.
    fn read(&self) -> RwLockReadGuard<'_, HashMap<ObjectKey, Vec<String>>> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<ObjectKey, Vec<String>>> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The peers known to hold the key (empty when unknown).
    pub(crate) fn get(&self, bucket: &str, k: &str) -> Vec<String> {
        self.read()
            .get(&(bucket.to_string(), k.to_string()))
            .cloned()
            .unwrap_or_default()
    }

    /// Records that `peers` hold the key.
    pub(crate) fn add<S: AsRef<str>>(&self, bucket: &str, k: &str, peers: &[S]) {
        if peers.is_empty() {
            return;
        }
        let mut map = self.write();
        let entry = map.entry(key(bucket, k)).or_default();
        for p in peers {
            if !entry.iter().any(|e| e == p.as_ref()) {
                entry.push(p.as_ref().to_string());
            }
        }
    }

    /// Records that `peer` no longer holds the key.
    pub(crate) fn remove_peer<S: AsRef<str>>(&self, bucket: &str, k: &str, peers: &[S]) {
        let mut map = self.write();
        let object = key(bucket, k);
        if let Some(entry) = map.get_mut(&object) {
            entry.retain(|e| !peers.iter().any(|p| p.as_ref() == e));
            if entry.is_empty() {
                map.remove(&object);
            }
        }
    }

    /// Forgets a peer everywhere (it was deregistered).
    pub(crate) fn remove_peer_everywhere(&self, peer: &str) {
        self.write().retain(|_, peers| {
            peers.retain(|p| p != peer);
            !peers.is_empty()
        });
    }

    /// Number of keys with at least one known replica.
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn add_is_idempotent_and_keeps_order() {
        let m = ReplicaMap::default();
        m.add("b", "k", &["p1", "p0"]);
        m.add("b", "k", &["p0", "p2"]);
        assert_eq!(m.get("b", "k"), vec!["p1", "p0", "p2"]);
        assert!(m.get("b", "other").is_empty());
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn removals_drop_empty_entries() {
        let m = ReplicaMap::default();
        m.add("b", "k", &["p0", "p1"]);
        m.add("b", "j", &["p1"]);
        m.remove_peer("b", "k", &["p0"]);
        assert_eq!(m.get("b", "k"), vec!["p1"]);
        m.remove_peer_everywhere("p1");
        assert_eq!(m.len(), 0);
        m.add("b", "k", &["p0"]);
        m.remove_peer("b", "k", &["p0", "p9"]);
        assert!(m.get("b", "k").is_empty());
    }
}
