//! Free space on the disk under the data directory, and a simulated small disk for tests.
//!
//! The store never promises more than the filesystem really has: its capacity is the lesser
//! of the configured one and what `statvfs` says is free, less a reserve kept for the
//! metadata database so that deletes (which write tombstones) can always commit.
//! [`SimulatedDisk`] stands in for a tiny filesystem in tests: it sees the files under the
//! data directory as what fills it, and can make the database's writes fail with `ENOSPC`.

use std::fmt::Debug;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use redb::backends::FileBackend;
use redb::StorageBackend;

/// Default of [`StoreConfig::meta_reserve`](super::StoreConfig::meta_reserve): 64 MiB kept
/// free for the metadata database.
pub const DEFAULT_META_RESERVE: u64 = 64 * 1024 * 1024;

/// Where the free space of the data directory comes from.
pub(crate) trait FreeSpace: Send + Sync + Debug {
    /// Bytes free for an unprivileged writer on the filesystem holding `dir`.
    fn available(&self, dir: &Path) -> io::Result<u64>;
}

impl<T: FreeSpace + ?Sized> FreeSpace for Arc<T> {
    fn available(&self, dir: &Path) -> io::Result<u64> {
        (**self).available(dir)
    }
}

/// The real filesystem, asked through `statvfs` (no unsafe code of ours: `rustix`).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Statvfs;

impl FreeSpace for Statvfs {
    fn available(&self, dir: &Path) -> io::Result<u64> {
        let s = rustix::fs::statvfs(dir)?;
        Ok(s.f_bavail.saturating_mul(s.f_frsize))
    }
}

/// The error a full disk answers with.
pub(crate) fn enospc() -> io::Error {
    io::Error::from_raw_os_error(rustix::io::Errno::NOSPC.raw_os_error())
}

/// Whether `e` says the disk (or the quota) is full.
pub(crate) fn is_enospc(e: &io::Error) -> bool {
    let raw = e.raw_os_error();
    raw == Some(rustix::io::Errno::NOSPC.raw_os_error())
        || raw == Some(rustix::io::Errno::DQUOT.raw_os_error())
}

/// A simulated small disk, for tests of full disks (hidden: not part of the API).
///
/// Its size is [`limit`](Self::set_limit); the files under the data directory (objects,
/// temporary files and the database) are what fills it, so deleting objects frees it like
/// on a real disk. Data-file writes and database writes beyond it fail with `ENOSPC`, and
/// [`set_db_full`](Self::set_db_full) makes every database write fail so.
#[doc(hidden)]
#[derive(Debug)]
pub struct SimulatedDisk {
    limit: AtomicU64,
    db_full: AtomicBool,
}

impl SimulatedDisk {
    /// A disk of `limit` bytes.
    pub fn new(limit: u64) -> Arc<SimulatedDisk> {
        Arc::new(SimulatedDisk {
            limit: AtomicU64::new(limit),
            db_full: AtomicBool::new(false),
        })
    }

    /// Changes the size of the disk.
    pub fn set_limit(&self, limit: u64) {
        self.limit.store(limit, Ordering::Release);
    }

    /// While `full`, every write of the metadata database fails with `ENOSPC`.
    pub fn set_db_full(&self, full: bool) {
        self.db_full.store(full, Ordering::Release);
    }

    /// Bytes of the files under `dir`.
    fn used(dir: &Path) -> u64 {
        let mut total = 0;
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else {
                continue;
            };
            for e in entries.flatten() {
                match e.metadata() {
                    Ok(m) if m.is_dir() => stack.push(e.path()),
                    Ok(m) => total += m.len(),
                    Err(_) => {}
                }
            }
        }
        total
    }

    /// Refuses (`ENOSPC`) `n` more bytes under `dir` that would not fit.
    fn check_grow(&self, dir: &Path, n: u64) -> io::Result<()> {
        if Self::used(dir).saturating_add(n) > self.limit.load(Ordering::Acquire) {
            Err(enospc())
        } else {
            Ok(())
        }
    }
}

impl FreeSpace for SimulatedDisk {
    fn available(&self, dir: &Path) -> io::Result<u64> {
        Ok(self
            .limit
            .load(Ordering::Acquire)
            .saturating_sub(Self::used(dir)))
    }
}

/// A data file being written, which a simulated disk may refuse to grow.
pub(crate) struct Metered {
    file: File,
    sim: Option<(Arc<SimulatedDisk>, PathBuf)>,
}

impl Metered {
    pub(crate) fn new(file: File, sim: Option<(Arc<SimulatedDisk>, PathBuf)>) -> Self {
        Self { file, sim }
    }

    pub(crate) fn into_file(self) -> File {
        self.file
    }
}

impl Write for Metered {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((sim, dir)) = &self.sim {
            sim.check_grow(dir, buf.len() as u64)?;
        }
        self.file.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.file.flush()
    }
}

/// redb's file backend on a simulated disk: growing the file, or any write while the
/// database is set full, fails with `ENOSPC`.
#[derive(Debug)]
pub(crate) struct SimulatedBackend {
    inner: FileBackend,
    sim: Arc<SimulatedDisk>,
    dir: PathBuf,
}

impl SimulatedBackend {
    pub(crate) fn new(inner: FileBackend, sim: Arc<SimulatedDisk>, dir: PathBuf) -> Self {
        Self { inner, sim, dir }
    }

    fn check(&self, new_end: u64) -> io::Result<()> {
        if self.sim.db_full.load(Ordering::Acquire) {
            return Err(enospc());
        }
        let len = self.inner.len()?;
        self.sim.check_grow(&self.dir, new_end.saturating_sub(len))
    }
}

impl StorageBackend for SimulatedBackend {
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }

    fn read(&self, offset: u64, len: usize) -> io::Result<Vec<u8>> {
        self.inner.read(offset, len)
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        self.check(len)?;
        self.inner.set_len(len)
    }

    fn sync_data(&self, eventual: bool) -> io::Result<()> {
        self.inner.sync_data(eventual)
    }

    fn write(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.check(offset.saturating_add(data.len() as u64))?;
        self.inner.write(offset, data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statvfs_answers_for_a_real_directory() {
        let dir = tempfile::tempdir().unwrap();
        assert!(Statvfs.available(dir.path()).unwrap() > 0);
        assert!(Statvfs.available(&dir.path().join("missing")).is_err());
        assert!(is_enospc(&enospc()));
        assert!(!is_enospc(&io::Error::other("x")));
    }

    #[test]
    fn a_simulated_disk_fills_with_the_files_under_its_directory() {
        let dir = tempfile::tempdir().unwrap();
        let sim = SimulatedDisk::new(100);
        std::fs::write(dir.path().join("a"), [0u8; 60]).unwrap();
        assert_eq!(sim.available(dir.path()).unwrap(), 40);
        let file = File::create(dir.path().join("b")).unwrap();
        let mut m = Metered::new(file, Some((Arc::clone(&sim), dir.path().to_path_buf())));
        m.write_all(&[1u8; 30]).unwrap();
        let err = m.write_all(&[1u8; 30]).unwrap_err();
        assert!(is_enospc(&err), "{err}");
        sim.set_limit(1000);
        m.write_all(&[1u8; 30]).unwrap();
    }
}
