//! Group commit: concurrent writers share one fsync of the database.
//!
//! Every metadata change is committed to redb without durability (no fsync, in commit order,
//! numbered by [`GroupSync::note_commit`]). A writer that must be durable before it answers
//! then waits in [`Store::sync_through`]: the first waiter becomes the leader and makes one
//! durable redb commit, which persists every commit made before it. Writers that arrive
//! meanwhile wait for the next round, so with 64 concurrent uploads one fsync of the database
//! serves many of them instead of one each.
//!
//! An upload's file and directory are fsynced by its own writer thread before its
//! non-durable commit (many threads fsync at once, and the filesystem's journal batches
//! them), so a durable record never names a file whose rename was lost.

use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};

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
}

impl Store {
    /// Waits until commit number `seq` is on disk, leading a sync round when nobody else is.
    /// Blocking.
    ///
    /// # Errors
    ///
    /// The database error of a round this caller led. Its commit may still reach the disk
    /// with a later round (waiting callers lead the next one), which is safe: the client
    /// retries, and a re-put of identical bytes is idempotent.
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

    /// One round: one durable commit. Returns the commit number it made durable.
    fn sync_round(&self) -> Result<u64, StoreError> {
        let _guard = self.write_guard();
        // Under the write lock: no commit can slip in between reading the number and the
        // durable commit that covers it.
        let target = self.inner.sync.lock().committed;
        let mut txn = self.db().begin_write()?;
        txn.set_durability(redb::Durability::Immediate);
        txn.commit()?;
        Ok(target)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;

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
}
