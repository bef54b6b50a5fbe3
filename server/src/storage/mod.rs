//! Peer storage: durable, crash-safe objects on the local disk.
//!
//! A [`Store`] combines blob files (`files`: `tmp/` and `objects/`) with an embedded redb
//! database of metadata (`meta`), and keeps capacity accounts in memory (`usage`).
//!
//! # Durability contract
//!
//! An upload streams into `tmp/` while its SHA-256 is computed; the file is fsynced, renamed
//! into `objects/` under a fresh name, the directory is fsynced, and only then is the metadata
//! committed, in one transaction that also removes the pending record; concurrent uploads
//! share one database transaction and its fsync (`batch`). A crash at any point
//! leaves the old state or the new one: at open, `recovery` deletes `tmp/`, deletes object
//! files no record references, and drops records whose file is missing or has the wrong
//! length.
//!
//! # Threads
//!
//! Every file operation and every database call runs on the blocking thread pool; the async
//! methods of [`Store`] only wait for them. An upload gets one blocking writer that owns the
//! temporary file from creation to commit, so cleanup on failure or cancellation always
//! happens there.

mod accept;
mod batch;
mod block_read;
mod condition;
mod delete;
mod disable;
mod error;
mod files;
#[cfg(test)]
mod full_disk_tests;
#[cfg(test)]
mod inline_tests;
mod meta;
mod pending;
mod query;
mod range;
mod read;
mod recovery;
mod reopen;
mod space;
mod upload;
mod usage;
#[cfg(test)]
mod version_tests;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use redb::{Database, WriteTransaction};

pub use accept::{NewPut, PutOutcome};
pub use condition::DiskCondition;
pub use delete::Deletion;
pub use error::{OpenError, StoreError};
pub(crate) use files::sync_dir;
pub use meta::{ObjectRecord, PendingRecord, Tombstone};
pub use query::{BucketPage, KeyState, VersionEntry};
pub use range::{parse_range, ByteRange, RangeSpec};
pub use read::{ObjectRead, ObjectStream};
#[doc(hidden)]
pub use space::SimulatedDisk;
pub use space::DEFAULT_META_RESERVE;
pub use upload::StoredObject;
pub use usage::UsageSnapshot;

use crate::version::{Hlc, Version};
use batch::WriteBatcher;
use condition::Condition;
use files::Files;
use reopen::DbSlot;
use space::FreeSpace;
use usage::{Usage, UsageDelta};

/// File name of the metadata database inside the data directory.
pub const DB_FILE: &str = "meta.redb";

/// Page cache of the database. redb's default is 1 GiB, which a peer holding many inline
/// objects would fill: its memory would grow with the data it stores. With 16 MiB, `bench
/// mixed` (64 KiB objects, all inline) peaks at 65 MB for client and server together, against
/// 110 MB with 64 MiB and 160 MB with the default, at the same throughput; the operating
/// system's page cache still serves the rest of the file.
const DB_CACHE_BYTES: usize = 16 * 1024 * 1024;

/// What a [`Store`] needs to open.
#[derive(Debug, Clone)]
pub struct StoreConfig {
    /// Owner of the store (the peer id), used in messages and logs.
    pub name: String,
    /// Directory of the data files and the database; created if missing.
    pub data_dir: PathBuf,
    /// Bytes the store may hold (committed plus reserved by pending uploads).
    pub capacity: u64,
    /// How long accepted metadata waits for its bytes before it expires.
    pub pending_ttl: Duration,
    /// Whole reads of objects up to this size are verified before the first byte is sent.
    pub verify_before_send_limit: u64,
    /// An upload whose body sends nothing for this long is abandoned (each in-flight upload
    /// holds a blocking writer thread, so a stalled client must not hold it forever).
    pub upload_idle_timeout: Duration,
    /// Objects up to this size are kept in the database with their metadata instead of in a
    /// file of their own (0: every object gets a file).
    pub inline_limit: u64,
    /// Bytes of the filesystem kept free for the metadata database, so that deletes (which
    /// write tombstones) can commit on a full disk: new puts see that much less room.
    pub meta_reserve: u64,
    /// How long the store reports itself degraded after a metadata I/O error.
    pub degraded_hold: Duration,
    /// Tests only: a simulated small disk instead of the real free space.
    #[doc(hidden)]
    pub simulated_disk: Option<Arc<SimulatedDisk>>,
}

/// The least time between two attempts to reopen a database that could not be reopened.
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// Default of [`StoreConfig::degraded_hold`]: one minute.
pub const DEFAULT_DEGRADED_HOLD: Duration = Duration::from_secs(60);

/// Default of [`StoreConfig::inline_limit`]: 64 KiB. Smaller objects cost a database entry
/// instead of a file create, two fsyncs and a rename each.
pub const DEFAULT_INLINE_LIMIT: u64 = 64 * 1024;

/// Default of [`StoreConfig::upload_idle_timeout`]: two minutes, the router's peer timeout.
pub const DEFAULT_UPLOAD_IDLE_TIMEOUT: Duration = Duration::from_secs(120);

impl From<&crate::config::PeerConfig> for StoreConfig {
    fn from(c: &crate::config::PeerConfig) -> Self {
        Self {
            name: c.id.clone(),
            data_dir: c.data_dir.clone(),
            capacity: c.capacity,
            pending_ttl: c.pending_ttl,
            verify_before_send_limit: c.verify_before_send_limit,
            upload_idle_timeout: c.upload_idle_timeout,
            inline_limit: c.inline_limit,
            meta_reserve: c.meta_reserve,
            degraded_hold: c.degraded_hold,
            simulated_disk: c.simulated_disk.clone(),
        }
    }
}

/// The storage of one peer. Cheap to clone (an `Arc`).
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

/// A handle that does not keep the store open; background loops hold this so that a stopped
/// peer releases its database at once.
#[derive(Clone)]
pub struct WeakStore(Weak<Inner>);

impl WeakStore {
    /// The store, if it is still open.
    pub fn upgrade(&self) -> Option<Store> {
        self.0.upgrade().map(|inner| Store { inner })
    }
}

struct Inner {
    config: StoreConfig,
    files: Files,
    db: DbSlot,
    usage: Usage,
    /// Full and degraded states (`condition`).
    condition: Condition,
    /// Where the real free space comes from (`space`).
    free_space: Box<dyn FreeSpace>,
    /// Group commit: concurrent writers share one transaction and its fsync (`batch`).
    batcher: WriteBatcher,
    /// Task ids whose bytes are being uploaded right now.
    active: Arc<Mutex<HashSet<String>>>,
    /// Versions for writes that arrive without one (a client talking to the peer directly).
    clock: Hlc,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("name", &self.inner.config.name)
            .field("data_dir", &self.inner.config.data_dir)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// Opens (or creates) the store in `config.data_dir`, runs start-up recovery and expires
    /// stale pending uploads.
    ///
    /// # Errors
    ///
    /// [`OpenError`] when the directories cannot be created, the database cannot be opened
    /// (another process holds it, or it is damaged), or recovery fails.
    pub async fn open(config: StoreConfig) -> Result<Store, OpenError> {
        tokio::task::spawn_blocking(move || Store::open_blocking(config))
            .await
            .map_err(|e| OpenError::Recovery(StoreError::Worker(e.to_string())))?
    }

    /// [`Store::open`] for blocking contexts.
    ///
    /// # Errors
    ///
    /// As [`Store::open`].
    pub fn open_blocking(config: StoreConfig) -> Result<Store, OpenError> {
        let files = Files::open(&config.data_dir)
            .map_err(|(path, source)| OpenError::DataDir { path, source })?;
        let db_path = config.data_dir.join(DB_FILE);
        let db = reopen::open_database(&config.data_dir, config.simulated_disk.as_ref()).map_err(
            |e| OpenError::Database {
                path: db_path.clone(),
                source: Box::new(e.into()),
            },
        )?;
        let create_tables = || -> Result<(), StoreError> {
            let txn = db.begin_write()?;
            txn.open_table(meta::OBJECTS)?;
            txn.open_table(meta::PENDING)?;
            txn.open_table(meta::PENDING_BY_KEY)?;
            txn.open_table(meta::INLINE)?;
            txn.open_table(meta::TOMBSTONES)?;
            txn.commit()?;
            Ok(())
        };
        create_tables().map_err(|e| match e {
            StoreError::Db(source) => OpenError::Database {
                path: db_path.clone(),
                source,
            },
            other => OpenError::Recovery(other),
        })?;
        let report = recovery::recover(&files, &db).map_err(OpenError::Recovery)?;
        let store = Store {
            inner: Arc::new(Inner {
                files,
                db: DbSlot::new(db),
                usage: Usage::default(),
                condition: Condition::default(),
                free_space: match &config.simulated_disk {
                    Some(sim) => Box::new(Arc::clone(sim)),
                    None => Box::new(space::Statvfs),
                },
                batcher: WriteBatcher::default(),
                active: Arc::default(),
                clock: Hlc::new(&config.name),
                config,
            }),
        };
        store.inner.usage.reset(report.usage);
        let expired = store
            .expire_pending_blocking(SystemTime::now())
            .map_err(OpenError::Recovery)?;
        let u = store.usage();
        tracing::info!(
            event = "STORE.OPEN",
            peer_id = %store.inner.config.name,
            objects = u.objects,
            committed_bytes = u.committed_bytes,
            pending = u.pending_uploads,
            tmp_removed = report.tmp_removed,
            orphans_removed = report.orphans_removed,
            records_dropped = report.records_dropped,
            pending_expired = expired,
        );
        Ok(store)
    }

    /// A handle that does not keep the store open.
    pub fn downgrade(&self) -> WeakStore {
        WeakStore(Arc::downgrade(&self.inner))
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &StoreConfig {
        &self.inner.config
    }

    /// Capacity, bytes used and counts. The capacity is the configured one, or less when
    /// the filesystem has less room: bytes used plus what it has free beyond the
    /// metadata reserve and the bytes pending uploads will still write (one `statvfs`).
    pub fn usage(&self) -> UsageSnapshot {
        let c = &self.inner.config;
        let mut u = self.inner.usage.snapshot(c.capacity);
        match self.inner.free_space.available(&c.data_dir) {
            Ok(avail) => {
                let disk_free = avail
                    .saturating_sub(c.meta_reserve)
                    .saturating_sub(u.reserved_bytes);
                u.capacity = u.capacity.min(u.used().saturating_add(disk_free));
            }
            // Unknown: the configured capacity stands, and a write that does not fit
            // fails with ENOSPC (507) instead.
            Err(e) => tracing::warn!(event = "DISK.STATVFS.FAILED", error = %e),
        }
        u
    }

    /// Whether the store is full or degraded (see [`DiskCondition`]).
    pub fn condition(&self) -> DiskCondition {
        self.inner
            .condition
            .snapshot(self.usage().free(), self.inner.config.degraded_hold)
    }

    fn files(&self) -> &Files {
        &self.inner.files
    }

    /// The database, for one operation (it may be swapped by a reopen between two).
    fn db(&self) -> Arc<Database> {
        self.inner.db.get().1
    }

    /// Reopens the database first if an earlier reopen failed, so that nothing runs against
    /// the stand-in. Blocking.
    ///
    /// # Errors
    ///
    /// Why it still cannot be opened (507 when the disk is full).
    fn ensure_open(&self) -> Result<(), StoreError> {
        let condition = &self.inner.condition;
        if !condition.is_broken() {
            return Ok(());
        }
        if condition.reopened_within(REOPEN_PAUSE) {
            // Reopening repairs the file: not at every request, but soon enough for this one.
            std::thread::sleep(REOPEN_PAUSE);
        }
        self.reopen_db(self.inner.db.generation())?;
        if !condition.is_broken() {
            return Ok(());
        }
        Err(if condition.broken_for_space() {
            StoreError::Io {
                context: "reopening the metadata database",
                source: space::enospc(),
            }
        } else {
            StoreError::Db(Box::new(redb::Error::PreviousIo))
        })
    }

    /// The simulated disk and the data directory, for data-file writes (tests only).
    fn simulated_disk(&self) -> Option<(Arc<SimulatedDisk>, PathBuf)> {
        let c = &self.inner.config;
        c.simulated_disk
            .as_ref()
            .map(|sim| (Arc::clone(sim), c.data_dir.clone()))
    }

    /// Marks the store full when `e` is a refusal for want of space. Returns the error.
    fn note_full(&self, e: StoreError) -> StoreError {
        if e.is_no_space() {
            let needs = match &e {
                StoreError::NoSpace { needs, .. } => *needs,
                _ => 0,
            };
            self.inner.condition.refused(needs, self.usage().free());
        }
        e
    }

    /// Notes what an error says about the disk and the database: a refusal for want of
    /// space marks the store full, a database I/O error marks it degraded and reopens the
    /// database (if `generation` is still current). Returns the error.
    fn observe(&self, e: StoreError, generation: u64) -> StoreError {
        let e = self.note_full(e);
        // Only the first report of a failure of this database counts (and reopens it).
        let current = self.inner.db.generation() == generation;
        if current && (e.is_db_io() || matches!(&e, StoreError::Db(_) if e.is_no_space())) {
            self.inner.condition.db_error();
            tracing::warn!(event = "METADATA.IO.ERROR", peer_id = %self.inner.config.name, error = %e);
            if let Err(re) = self.reopen_db(generation) {
                tracing::warn!(event = "METADATA.REOPEN.POSTPONED", error = %re);
            }
        }
        e
    }

    /// Runs `f` on the blocking pool with a clone of the store.
    async fn blocking<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.clone();
        tokio::task::spawn_blocking(move || {
            store.ensure_open()?;
            let generation = store.inner.db.generation();
            f(&store).map_err(|e| store.observe(e, generation))
        })
        .await
        .map_err(|e| StoreError::Worker(e.to_string()))?
    }

    /// Runs `f` in a write transaction (shared with concurrent writers, see `batch`) and
    /// returns once it is committed durably, with the usage change `f` recorded applied.
    /// Blocking. `f` may run more than once and must change nothing but the transaction
    /// and its delta; nothing of a failed `f` is committed (and no counter moves).
    fn write<T>(
        &self,
        f: impl FnMut(&WriteTransaction, &mut UsageDelta) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_retrying(true, f)
    }

    /// Runs a write; when the database failed with an I/O error, reopens it and runs the
    /// write once more (a change may run more than once anyway, see `batch`).
    fn write_retrying<T>(
        &self,
        durable: bool,
        mut f: impl FnMut(&WriteTransaction, &mut UsageDelta) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let inner = &self.inner;
        let mut retried = false;
        self.ensure_open()?;
        loop {
            let (generation, db) = inner.db.get();
            match inner.batcher.write(&db, &inner.usage, durable, &mut f) {
                Err(e) if e.is_db_io() && !retried => {
                    drop(db);
                    retried = true;
                    // Marks the store degraded and reopens the database.
                    let first = self.observe(e, generation);
                    if inner.condition.is_broken() {
                        // Not reopened (the disk is still full?): answer with the cause.
                        return Err(first);
                    }
                }
                Err(e) => {
                    drop(db);
                    return Err(self.observe(e, generation));
                }
                ok => return ok,
            }
        }
    }

    /// [`Store::write`] without waiting for the disk: the change is visible when this
    /// returns and reaches the disk with the next durable commit, whoever makes it.
    fn write_unsynced<T>(
        &self,
        f: impl FnMut(&WriteTransaction, &mut UsageDelta) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_retrying(false, f)
    }

    /// The version of a write: the one it came with (which the store's clock then stays
    /// ahead of), or a fresh one from that clock.
    fn version_of(&self, given: Option<Version>) -> Version {
        match given {
            Some(v) => {
                self.inner.clock.observe(v);
                v
            }
            None => self.inner.clock.now(),
        }
    }

    /// Makes every change committed so far durable (one durable commit of nothing).
    fn sync(&self) -> Result<(), StoreError> {
        self.write(|_, _| Ok(()))
    }
}

/// Milliseconds since the Unix epoch (0 before it).
pub(crate) fn epoch_ms(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Helpers for the store's unit tests.
    use super::*;
    use bytes::Bytes;
    use mictlanx::model::{Metadata, Tags};

    pub(crate) fn config(dir: &std::path::Path) -> StoreConfig {
        StoreConfig {
            name: "peer-0".into(),
            data_dir: dir.to_path_buf(),
            capacity: 1_000_000,
            pending_ttl: Duration::from_secs(3600),
            verify_before_send_limit: 1 << 20,
            upload_idle_timeout: DEFAULT_UPLOAD_IDLE_TIMEOUT,
            // The file-based tests look at files; `inline_tests` turn this on.
            inline_limit: 0,
            meta_reserve: 0,
            degraded_hold: DEFAULT_DEGRADED_HOLD,
            simulated_disk: None,
        }
    }

    pub(crate) async fn open(dir: &std::path::Path) -> Store {
        Store::open(config(dir)).await.unwrap()
    }

    pub(crate) fn metadata(bucket: &str, key: &str, data: &[u8]) -> Metadata {
        Metadata {
            key: key.into(),
            size: data.len() as u64,
            checksum: mictlanx::checksum::sha256_hex(data),
            tags: Tags::new(),
            content_type: "application/octet-stream".into(),
            producer_id: "test".into(),
            ball_id: key.into(),
            bucket_id: bucket.into(),
            is_disabled: false,
        }
    }

    pub(crate) fn put(meta: Metadata) -> NewPut {
        NewPut {
            metadata: meta,
            task_id: None,
            update: false,
            version: None,
            replication_factor: 0,
        }
    }

    /// A body stream of `data` in pieces of `piece` bytes.
    pub(crate) fn body(
        data: &[u8],
        piece: usize,
    ) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + Unpin + 'static {
        let pieces: Vec<Result<Bytes, std::io::Error>> = data
            .chunks(piece.max(1))
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        futures::stream::iter(pieces)
    }

    /// Accepts the metadata of `data` and uploads it.
    pub(crate) async fn put_object(
        store: &Store,
        bucket: &str,
        key: &str,
        data: &[u8],
    ) -> StoredObject {
        let out = store
            .put_metadata(put(metadata(bucket, key, data)))
            .await
            .unwrap();
        store.upload(out.task_id(), body(data, 7)).await.unwrap()
    }

    pub(crate) async fn read_all(
        store: &Store,
        bucket: &str,
        key: &str,
    ) -> Result<Vec<u8>, StoreError> {
        use futures::StreamExt;
        let read = store.read(bucket, key, None).await?;
        let mut out = Vec::new();
        let mut s = read.body;
        while let Some(chunk) = s.next().await {
            out.extend_from_slice(&chunk.map_err(StoreError::io("test read"))?);
        }
        Ok(out)
    }

    /// Every file under `dir`, recursively.
    pub(crate) fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(files_under(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }
}
