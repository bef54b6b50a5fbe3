//! The metadata database behind a swappable handle, reopened after an I/O error.
//!
//! After a failed write or commit, redb refuses every later transaction with
//! `PreviousIo` until the database is opened again. So the handle lives in an `RwLock`:
//! callers clone the `Arc` for one operation; a reopen takes the lock for writing (no new
//! operation starts), waits a bounded time for the operations in flight to drop their
//! clones and the file lock, opens the file again (redb repairs it) and recounts usage.
//! If the file cannot be opened yet (the disk is still full), a stand-in whose every write
//! fails takes its place and the next failure tries again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use redb::backends::{FileBackend, InMemoryBackend};
use redb::{Database, ReadableTable, StorageBackend};

use super::meta::{decode, ObjectRecord, PendingRecord, OBJECTS, PENDING};
use super::space::SimulatedBackend;
use super::usage::UsageSnapshot;
use super::{Store, StoreError, DB_CACHE_BYTES, DB_FILE};

/// How long a reopen waits for operations in flight on the old handle.
const DRAIN_WAIT: Duration = Duration::from_secs(5);

/// The current database and its generation (bumped by each reopen).
pub(crate) struct DbSlot {
    current: RwLock<(u64, Arc<Database>)>,
}

impl DbSlot {
    pub(crate) fn new(db: Database) -> Self {
        Self {
            current: RwLock::new((0, Arc::new(db))),
        }
    }

    /// The current generation.
    pub(crate) fn generation(&self) -> u64 {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .0
    }

    /// The database to use for one operation, and its generation.
    pub(crate) fn get(&self) -> (u64, Arc<Database>) {
        let g = self.current.read().unwrap_or_else(PoisonError::into_inner);
        (g.0, Arc::clone(&g.1))
    }
}

/// Opens (or creates) the database file of `dir`, on the simulated disk when there is one.
pub(crate) fn open_database(
    dir: &Path,
    sim: Option<&Arc<super::SimulatedDisk>>,
) -> Result<Database, redb::DatabaseError> {
    let path = dir.join(DB_FILE);
    let mut builder = Database::builder();
    builder.set_cache_size(DB_CACHE_BYTES);
    match sim {
        None => builder.create(&path),
        Some(sim) => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)?;
            let backend =
                SimulatedBackend::new(FileBackend::new(file)?, Arc::clone(sim), dir.to_path_buf());
            builder.create_with_backend(backend)
        }
    }
}

/// A stand-in while the file cannot be opened: it has no tables (so reads fail) and, once
/// sealed, every write fails, which starts another reopen.
#[derive(Debug)]
struct Unavailable {
    mem: InMemoryBackend,
    sealed: Arc<AtomicBool>,
}

impl Unavailable {
    fn check(&self) -> std::io::Result<()> {
        if self.sealed.load(Ordering::Acquire) {
            Err(std::io::Error::other("metadata database is being reopened"))
        } else {
            Ok(())
        }
    }
}

impl StorageBackend for Unavailable {
    fn len(&self) -> std::io::Result<u64> {
        self.mem.len()
    }
    fn read(&self, offset: u64, len: usize) -> std::io::Result<Vec<u8>> {
        self.mem.read(offset, len)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.mem.set_len(len)
    }
    fn sync_data(&self, eventual: bool) -> std::io::Result<()> {
        self.mem.sync_data(eventual)
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.mem.write(offset, data)
    }
}

/// The stand-in database.
fn unavailable() -> Result<Database, StoreError> {
    let sealed = Arc::new(AtomicBool::new(false));
    let db = Database::builder().create_with_backend(Unavailable {
        mem: InMemoryBackend::new(),
        sealed: Arc::clone(&sealed),
    })?;
    sealed.store(true, Ordering::Release);
    Ok(db)
}

/// Counts committed and pending bytes from the records (the counters may be ahead of a
/// database that lost its last unsynced commits).
fn recount(db: &Database) -> Result<UsageSnapshot, StoreError> {
    let txn = db.begin_read()?;
    let mut u = UsageSnapshot::default();
    for entry in txn.open_table(OBJECTS)?.iter()? {
        let (k, v) = entry?;
        let rec: ObjectRecord = decode(k.value(), v.value())?;
        u.committed_bytes += rec.stored_size;
        u.objects += 1;
    }
    for entry in txn.open_table(PENDING)?.iter()? {
        let (k, v) = entry?;
        let rec: PendingRecord = decode(k.value(), v.value())?;
        u.reserved_bytes += rec.metadata.size;
        u.pending_uploads += 1;
    }
    Ok(u)
}

impl Store {
    /// Reopens the database if `generation` is still the current one (a concurrent caller
    /// may have done it already). Blocking.
    ///
    /// # Errors
    ///
    /// The error of opening the file again; the stand-in is in place then.
    pub(crate) fn reopen_db(&self, generation: u64) -> Result<(), StoreError> {
        let inner = &self.inner;
        let mut slot = inner
            .db
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.0 != generation {
            return Ok(());
        }
        let started = Instant::now();
        while Arc::strong_count(&slot.1) > 1 {
            if started.elapsed() > DRAIN_WAIT {
                // Someone still uses it (and may wait for us): try again at the next failure.
                return Err(StoreError::Worker(
                    "metadata database busy; reopen postponed".into(),
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let stand_in = unavailable()?;
        // Dropping the old handle closes the file (once its read transactions end).
        let old = std::mem::replace(&mut slot.1, Arc::new(stand_in));
        drop(old);
        slot.0 += 1;
        let sim = inner.config.simulated_disk.as_ref();
        let opened = loop {
            match open_database(&inner.config.data_dir, sim) {
                Err(redb::DatabaseError::DatabaseAlreadyOpen) if started.elapsed() < DRAIN_WAIT => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                other => break other,
            }
        };
        let db = match opened {
            Ok(db) => db,
            Err(e) => {
                let e = StoreError::from(e);
                inner.condition.reopened(false, e.is_no_space());
                tracing::error!(event = "METADATA.REOPEN.FAILED", peer_id = %inner.config.name, error = %e);
                return Err(e);
            }
        };
        let usage = recount(&db);
        slot.1 = Arc::new(db);
        match usage {
            Ok(u) => inner.usage.reset(u),
            Err(e) => tracing::warn!(event = "METADATA.RECOUNT.FAILED", error = %e),
        }
        inner.condition.reopened(true, false);
        tracing::warn!(event = "METADATA.REOPENED", peer_id = %inner.config.name, generation = slot.0);
        Ok(())
    }
}
