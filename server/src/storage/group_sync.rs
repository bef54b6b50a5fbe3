//! Group commit: concurrent writers share one fsync of the database.
//!
//! Every metadata change is committed to redb without durability (no fsync, in commit order,
//! numbered by [`GroupSync::note_commit`]). A writer that must be durable before it answers
//! then waits in [`Store::sync_through`]: the first waiter becomes the leader, fsyncs the
//! directories that gained object files, and makes one durable redb commit, which persists
//! every commit made before it. Writers that arrive meanwhile wait for the next round, so with
//! 64 concurrent uploads one fsync of the database serves many of them instead of one each.
//!
//! Order of an upload: file fsync → rename → [`GroupSync::mark_dir_dirty`] → non-durable
//! commit → `sync_through`. The leader takes the dirty directories and the commit number
//! under the write lock, so every commit it declares durable had its rename's directory
//! synced first; a durable record therefore never names a file whose rename was lost.

use std::collections::HashSet;
use std::mem;
use std::path::PathBuf;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

use super::files::sync_dir;
use super::{Store, StoreError};

/// Shared state of the group commit of one store.
#[derive(Default)]
pub(crate) struct GroupSync {
    state: Mutex<SyncState>,
    round_done: Condvar,
}

#[derive(Default)]
struct SyncState {
    /// Number of the last non-durable commit.
    committed: u64,
    /// Every commit up to this number is on disk.
    durable: u64,
    /// A leader is syncing right now.
    syncing: bool,
    /// Directories whose new entries are not yet known to be on disk.
    dirty_dirs: HashSet<PathBuf>,
}

impl GroupSync {
    fn lock(&self) -> MutexGuard<'_, SyncState> {
        // The state is a few counters that every path leaves consistent: a panic elsewhere
        // while holding the lock does not make them unusable.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Numbers a non-durable commit; called under the store's write lock, so numbers follow
    /// commit order.
    pub(crate) fn note_commit(&self) -> u64 {
        let mut st = self.lock();
        st.committed += 1;
        st.committed
    }

    /// Records that `dir` gained an entry (a rename) that the next sync must make durable.
    pub(crate) fn mark_dir_dirty(&self, dir: PathBuf) {
        self.lock().dirty_dirs.insert(dir);
    }

    /// The latest commit number and the directories to sync before declaring it durable.
    fn take_round(&self) -> (u64, HashSet<PathBuf>) {
        let mut st = self.lock();
        (st.committed, mem::take(&mut st.dirty_dirs))
    }
}

impl Store {
    /// Waits until commit number `seq` is on disk, leading a sync round when nobody else is.
    /// Blocking.
    ///
    /// # Errors
    ///
    /// The leader's I/O or database error; the waiters of that round see it too (their
    /// commits may still reach the disk with a later round, which is why a failed put is safe
    /// to retry: the re-put of identical bytes is idempotent).
    pub(crate) fn sync_through(&self, seq: u64) -> Result<(), StoreError> {
        let sync = &self.inner.sync;
        let mut st = sync.lock();
        loop {
            if st.durable >= seq {
                return Ok(());
            }
            if st.syncing {
                st = sync
                    .round_done
                    .wait(st)
                    .unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.syncing = true;
            drop(st);
            let round = self.sync_round();
            st = sync.lock();
            st.syncing = false;
            sync.round_done.notify_all();
            match round {
                Ok(target) => st.durable = st.durable.max(target),
                Err(e) => return Err(e),
            }
        }
    }

    /// One round: the directories first, then one durable commit. Returns the commit number
    /// it made durable.
    fn sync_round(&self) -> Result<u64, StoreError> {
        let (target, dirs) = {
            let _guard = self.write_guard();
            self.inner.sync.take_round()
        };
        for dir in &dirs {
            if let Err(e) = sync_dir(dir) {
                // Put them back so that the next round tries again.
                for d in dirs {
                    self.inner.sync.mark_dir_dirty(d);
                }
                return Err(StoreError::Io {
                    context: "syncing an object directory",
                    source: e,
                });
            }
        }
        let _guard = self.write_guard();
        let mut txn = self.db().begin_write()?;
        txn.set_durability(redb::Durability::Immediate);
        txn.commit()?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use std::sync::Arc;

    #[tokio::test]
    async fn concurrent_uploads_are_all_durable_and_share_rounds() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path()).await;
        let mut tasks = Vec::new();
        for i in 0..32 {
            let store = store.clone();
            tasks.push(tokio::spawn(async move {
                let data = format!("object {i}").into_bytes();
                put_object(&store, "b", &format!("k{i}"), &data).await;
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        {
            let st = store.inner.sync.lock();
            assert_eq!(st.durable, st.committed, "every commit was made durable");
            assert!(!st.syncing);
            assert!(
                st.dirty_dirs.is_empty(),
                "every new directory entry was synced"
            );
        }
        drop(store);
        // Reopening (which runs recovery) finds every object.
        let store = open(dir.path()).await;
        for i in 0..32 {
            let data = read_all(&store, "b", &format!("k{i}")).await.unwrap();
            assert_eq!(data, format!("object {i}").into_bytes());
        }
    }

    #[test]
    fn waiting_for_an_already_durable_commit_returns_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::Store::open_blocking(config(dir.path())).unwrap();
        let seq = store.inner.sync.note_commit();
        store.sync_through(seq).unwrap();
        // A second wait for the same number needs no round.
        store.sync_through(seq).unwrap();
        let st = store.inner.sync.lock();
        assert_eq!(st.durable, seq);
    }

    #[test]
    fn a_failed_directory_sync_is_reported_and_retried_next_round() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(super::Store::open_blocking(config(dir.path())).unwrap());
        let missing = dir.path().join("no-such-dir");
        store.inner.sync.mark_dir_dirty(missing.clone());
        let seq = store.inner.sync.note_commit();
        assert!(store.sync_through(seq).is_err());
        assert!(
            store.inner.sync.lock().dirty_dirs.contains(&missing),
            "kept for the next round"
        );
        std::fs::create_dir(&missing).unwrap();
        store.sync_through(seq).unwrap();
    }
}
