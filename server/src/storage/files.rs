//! Blob files on disk: where they live, how a new one is written and published, and how a
//! damaged one is set aside.
//!
//! Layout under the data directory:
//! - `tmp/`: uploads in progress (`<uuid>.part`); anything here after a restart is garbage.
//! - `objects/<fan>/<hash>-<uuid>`: committed bytes, where `<hash>` is the SHA-256 of
//!   `bucket\0key` and `<fan>` its first two hex digits, so that no directory grows huge.
//!   Each version gets a fresh name, so an overwrite never touches the old file before the
//!   new metadata is committed.
//! - `objects/<fan>/<name>.corrupted`: quarantined files, kept for inspection.
//!
//! Everything here is blocking and runs on the blocking thread pool.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

/// Folder of committed object files.
pub(crate) const OBJECTS_DIR: &str = "objects";
/// Folder of uploads in progress.
pub(crate) const TMP_DIR: &str = "tmp";
/// Suffix of quarantined files.
pub(crate) const CORRUPTED_SUFFIX: &str = ".corrupted";

/// The two data folders of a store.
#[derive(Debug, Clone)]
pub(crate) struct Files {
    objects: PathBuf,
    tmp: PathBuf,
}

impl Files {
    /// Creates (if needed) `objects/` and `tmp/` under `root`.
    pub(crate) fn open(root: &Path) -> Result<Self, (PathBuf, io::Error)> {
        let objects = root.join(OBJECTS_DIR);
        let tmp = root.join(TMP_DIR);
        for dir in [&objects, &tmp] {
            fs::create_dir_all(dir).map_err(|e| (dir.clone(), e))?;
        }
        Ok(Self { objects, tmp })
    }

    pub(crate) fn objects_dir(&self) -> &Path {
        &self.objects
    }

    pub(crate) fn tmp_dir(&self) -> &Path {
        &self.tmp
    }

    /// A fresh object file name for `bucket@key`, relative to `objects/`.
    pub(crate) fn new_object_name(bucket_id: &str, key: &str) -> String {
        let mut h = Sha256::new();
        h.update(bucket_id.as_bytes());
        h.update([0u8]);
        h.update(key.as_bytes());
        let hash = hex::encode(h.finalize());
        format!("{}/{}-{}", &hash[..2], hash, uuid::Uuid::new_v4().simple())
    }

    /// Absolute path of the object file `name` (as returned by [`Files::new_object_name`]).
    pub(crate) fn object_path(&self, name: &str) -> PathBuf {
        self.objects.join(name)
    }

    /// Creates a new, empty temporary file. The guard deletes it unless it is published.
    pub(crate) fn create_temp(&self) -> io::Result<(File, TempFile)> {
        let path = self
            .tmp
            .join(format!("{}.part", uuid::Uuid::new_v4().simple()));
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok((file, TempFile { path: Some(path) }))
    }

    /// Moves a written and fsynced temporary file to its object name and makes the rename
    /// durable. The returned guard still deletes the file on drop: it becomes permanent only
    /// once its metadata is committed ([`TempFile::keep`]).
    pub(crate) fn publish(&self, mut temp: TempFile, name: &str) -> io::Result<TempFile> {
        let target = self.object_path(name);
        let dir = target
            .parent()
            .ok_or_else(|| io::Error::other("object path has no parent"))?
            .to_path_buf();
        fs::create_dir_all(&dir)?;
        let Some(source) = temp.path.take() else {
            return Err(io::Error::other("temporary file already consumed"));
        };
        if let Err(e) = fs::rename(&source, &target) {
            temp.path = Some(source);
            return Err(e);
        }
        let published = TempFile { path: Some(target) };
        // The rename is only durable once the directory entry is: without this fsync a crash
        // could leave committed metadata pointing at a name that never reached the disk
        // (garage does the same in `src/block/manager.rs`).
        sync_dir(&dir)?;
        Ok(published)
    }

    /// Removes the object file `name`; a missing file is not an error.
    pub(crate) fn remove_object(&self, name: &str) -> io::Result<()> {
        refuse_empty(name)?;
        match fs::remove_file(self.object_path(name)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Renames the object file `name` to `name.corrupted` so that it is never served again but
    /// stays available for inspection. Returns the new path.
    pub(crate) fn quarantine(&self, name: &str) -> io::Result<PathBuf> {
        refuse_empty(name)?;
        let from = self.object_path(name);
        let to = self.object_path(&format!("{name}{CORRUPTED_SUFFIX}"));
        fs::rename(&from, &to)?;
        Ok(to)
    }
}

/// An empty object name would address `objects/` itself.
fn refuse_empty(name: &str) -> io::Result<()> {
    if name.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "empty object file name",
        ));
    }
    Ok(())
}

/// Fsyncs a directory so that renames and creations inside it survive a crash.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// A file that is deleted when the guard is dropped, unless [`TempFile::keep`] is called.
///
/// Only ever held on blocking threads (the upload writer, recovery), so its synchronous
/// `remove_file` in `Drop` never blocks the async runtime. Dropping it is how every failed or
/// cancelled upload cleans up after itself.
#[derive(Debug)]
pub(crate) struct TempFile {
    path: Option<PathBuf>,
}

impl TempFile {
    /// Makes the file permanent.
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            if let Err(e) = fs::remove_file(&path) {
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(event = "TEMP.REMOVE.FAILED", path = %path.display(), error = %e);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn count_files(dir: &Path) -> usize {
        walk(dir).len()
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        for e in fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
        out
    }

    #[test]
    fn names_fan_out_and_are_unique() {
        let a = Files::new_object_name("b", "k");
        let b = Files::new_object_name("b", "k");
        assert_ne!(a, b);
        assert_eq!(a[..3], b[..3]);
        assert_eq!(&a[2..3], "/");
        let (fan, rest) = a.split_once('/').unwrap();
        assert!(rest.starts_with(fan));
        // bucket\0key, not bucket+key: "ab"+"c" and "a"+"bc" must differ.
        assert_ne!(
            Files::new_object_name("ab", "c")[..64],
            Files::new_object_name("a", "bc")[..64]
        );
    }

    #[test]
    fn temp_file_is_removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let files = Files::open(dir.path()).unwrap();
        let (mut f, guard) = files.create_temp().unwrap();
        f.write_all(b"x").unwrap();
        assert_eq!(count_files(files.tmp_dir()), 1);
        drop(guard);
        assert_eq!(count_files(files.tmp_dir()), 0);

        let (mut f, guard) = files.create_temp().unwrap();
        f.write_all(b"abc").unwrap();
        let name = Files::new_object_name("b", "k");
        let published = files.publish(guard, &name).unwrap();
        assert_eq!(count_files(files.tmp_dir()), 0);
        assert_eq!(fs::read(files.object_path(&name)).unwrap(), b"abc");
        drop(published);
        assert!(
            !files.object_path(&name).exists(),
            "unkept publish is rolled back"
        );

        let (_, guard) = files.create_temp().unwrap();
        files.publish(guard, &name).unwrap().keep();
        assert!(files.object_path(&name).exists());
        let moved = files.quarantine(&name).unwrap();
        assert!(moved.to_string_lossy().ends_with(CORRUPTED_SUFFIX));
        assert!(!files.object_path(&name).exists());
        files.remove_object(&name).unwrap();
        assert!(files.remove_object("").is_err());
        assert!(files.quarantine("").is_err());
        assert!(files.objects_dir().is_dir());
    }
}
