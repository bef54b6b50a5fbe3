//! Temporary files that remove themselves unless kept: a download in progress and a spooled
//! upload stream.

use std::path::{Path, PathBuf};

/// Deletes its file on drop (error, panic or cancellation) unless [`keep`](Self::keep) was
/// called. The delete is one `unlink`, done synchronously because `Drop` cannot await.
#[derive(Debug)]
pub(crate) struct TempFileGuard {
    path: Option<PathBuf>,
}

impl TempFileGuard {
    pub fn new(path: PathBuf) -> Self {
        Self { path: Some(path) }
    }

    pub fn path(&self) -> &Path {
        self.path.as_deref().unwrap_or_else(|| Path::new(""))
    }

    /// Keeps the file: it will not be deleted.
    pub fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for TempFileGuard {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            if let Err(e) = std::fs::remove_file(&path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(event = "TEMP.FILE.REMOVE.FAILED", path = %path.display(), error = %e);
                }
            }
        }
    }
}

/// A fresh, unique path in `dir` for a temporary sibling of `name`.
pub(crate) fn temp_path(dir: &Path, name: &str) -> PathBuf {
    let unique = uuid::Uuid::new_v4().simple().to_string();
    dir.join(format!(".{name}.{}.mictlanx-part", &unique[..12]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = temp_path(dir.path(), "a.bin");
        let b = temp_path(dir.path(), "a.bin");
        assert_ne!(a, b);
        std::fs::write(&a, b"x").unwrap();
        std::fs::write(&b, b"y").unwrap();
        let guard = TempFileGuard::new(a.clone());
        assert_eq!(guard.path(), a.as_path());
        drop(guard);
        assert!(!a.exists());
        TempFileGuard::new(b.clone()).keep();
        assert!(b.exists());
        // A file already gone is fine.
        drop(TempFileGuard::new(a));
    }
}
