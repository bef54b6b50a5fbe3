//! Key files as the original lays them out: the private key in `{dir}/{name}` (PEM PKCS#8,
//! mode 0600), the public key in `{dir}/{name}.pub` (PEM SubjectPublicKeyInfo), in
//! `XOLO_SECRET_PATH` or a per-user directory.
//!
//! These are small, blocking file operations (a few hundred bytes), meant for start-up and
//! the command line.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use super::{KeyError, KeyPair, PublicKey};

/// The environment variable naming the key directory, as in the original.
pub const XOLO_SECRET_PATH: &str = "XOLO_SECRET_PATH";

/// Largest key file read: a PEM X25519 key is about 120 bytes; anything much larger is the
/// wrong file (and is not read into memory whole).
const MAX_KEY_FILE: u64 = 16 * 1024;

/// Where a key pair was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFiles {
    /// The private key, `{dir}/{name}`, mode 0600.
    pub private: PathBuf,
    /// The public key, `{dir}/{name}.pub`.
    pub public: PathBuf,
}

/// The key directory: `XOLO_SECRET_PATH` when set, else `$HOME/.mictlanx/xolo/keys`.
///
/// (The original defaults to `/mictlanx/xolo/.keys`, a system path an ordinary user cannot
/// write; a per-user directory keeps private keys private.)
///
/// # Errors
///
/// [`KeyError::NoKeyDir`] when neither variable is set.
///
/// # Examples
///
/// ```
/// let dir = mictlanx::xolo::default_key_dir();
/// assert!(dir.is_ok() || std::env::var_os("HOME").is_none());
/// ```
pub fn default_key_dir() -> Result<PathBuf, KeyError> {
    key_dir_from(std::env::var_os(XOLO_SECRET_PATH), std::env::var_os("HOME"))
}

fn key_dir_from(
    secret_path: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> Result<PathBuf, KeyError> {
    if let Some(dir) = secret_path.filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    home.filter(|h| !h.is_empty())
        .map(|home| {
            PathBuf::from(home)
                .join(".mictlanx")
                .join("xolo")
                .join("keys")
        })
        .ok_or(KeyError::NoKeyDir)
}

/// A key name must stay a file name inside the key directory.
fn check_name(name: &str) -> Result<(), KeyError> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(KeyError::InvalidName {
            name: name.to_owned(),
        })
    }
}

impl KeyPair {
    /// Writes the pair as `{dir}/{name}` (private, created with mode 0600) and
    /// `{dir}/{name}.pub` (public, 0644), creating `dir` (mode 0700) when missing. Refuses
    /// to replace existing key files: see [`save_overwriting`](Self::save_overwriting).
    ///
    /// # Errors
    ///
    /// [`KeyError::Exists`] when either file exists, [`KeyError::InvalidName`] for a name
    /// that is not a plain file name, [`KeyError::Io`] for file system errors (a private
    /// file written before a failure is removed).
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::xolo::KeyPair;
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let files = KeyPair::generate().save(dir.path(), "alice")?;
    /// assert_eq!(files.public, dir.path().join("alice.pub"));
    /// let alice = KeyPair::load(dir.path(), "alice")?;
    /// # let _ = alice;
    /// # Ok(())
    /// # }
    /// ```
    pub fn save(&self, dir: impl AsRef<Path>, name: &str) -> Result<KeyFiles, KeyError> {
        self.write_files(dir.as_ref(), name, false)
    }

    /// As [`save`](Self::save), but replaces existing key files (each written to a new
    /// temporary file with its mode, then renamed over the old one).
    ///
    /// # Errors
    ///
    /// As [`save`](Self::save), without [`KeyError::Exists`].
    pub fn save_overwriting(
        &self,
        dir: impl AsRef<Path>,
        name: &str,
    ) -> Result<KeyFiles, KeyError> {
        self.write_files(dir.as_ref(), name, true)
    }

    fn write_files(&self, dir: &Path, name: &str, overwrite: bool) -> Result<KeyFiles, KeyError> {
        check_name(name)?;
        let files = KeyFiles {
            private: dir.join(name),
            public: dir.join(format!("{name}.pub")),
        };
        if !overwrite {
            for path in [&files.private, &files.public] {
                if path.symlink_metadata().is_ok() {
                    return Err(KeyError::Exists { path: path.clone() });
                }
            }
        }
        create_dir(dir)?;
        let private = self.to_pem();
        write_key_file(&files.private, private.as_bytes(), 0o600, overwrite)?;
        if let Err(e) = write_key_file(
            &files.public,
            self.public().to_pem().as_bytes(),
            0o644,
            overwrite,
        ) {
            if !overwrite {
                // Do not leave half a pair behind.
                let _ = std::fs::remove_file(&files.private);
            }
            return Err(e);
        }
        tracing::info!(event = "XOLO.KEY.SAVED", path = %files.private.display(), fingerprint = %self.fingerprint());
        Ok(files)
    }

    /// Reads the private key `{dir}/{name}`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`] when the file cannot be read, [`KeyError::TooLarge`],
    /// [`KeyError::Pem`], [`KeyError::Malformed`], [`KeyError::WrongAlgorithm`],
    /// [`KeyError::InvalidName`].
    pub fn load(dir: impl AsRef<Path>, name: &str) -> Result<Self, KeyError> {
        check_name(name)?;
        Self::load_file(dir.as_ref().join(name))
    }

    /// Reads a private key file at any path.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_file(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path)?;
        warn_if_readable_by_others(path);
        Self::parse_pem(&text, &path.display().to_string())
    }
}

impl PublicKey {
    /// Reads a public key file (PEM `PUBLIC KEY`), e.g. `{dir}/{name}.pub`.
    ///
    /// # Errors
    ///
    /// [`KeyError::Io`], [`KeyError::TooLarge`], [`KeyError::Pem`], [`KeyError::Malformed`],
    /// [`KeyError::WrongAlgorithm`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::xolo::{KeyPair, PublicKey};
    ///
    /// # fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let dir = tempfile::tempdir()?;
    /// let pair = KeyPair::generate();
    /// let files = pair.save(dir.path(), "bob")?;
    /// assert_eq!(PublicKey::load(&files.public)?, *pair.public());
    /// # Ok(())
    /// # }
    /// ```
    pub fn load(path: impl AsRef<Path>) -> Result<Self, KeyError> {
        let path = path.as_ref();
        let text = read_key_file(path)?;
        Self::parse_pem(&text, &path.display().to_string())
    }
}

fn create_dir(dir: &Path) -> Result<(), KeyError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| KeyError::io(dir, e))
}

fn read_key_file(path: &Path) -> Result<Zeroizing<String>, KeyError> {
    let file = File::open(path).map_err(|e| KeyError::io(path, e))?;
    let size = file.metadata().map_err(|e| KeyError::io(path, e))?.len();
    if size > MAX_KEY_FILE {
        return Err(KeyError::TooLarge {
            path: path.to_path_buf(),
            size,
        });
    }
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(MAX_KEY_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyError::io(path, e))?;
    match std::str::from_utf8(&bytes) {
        Ok(text) => Ok(Zeroizing::new(text.to_owned())),
        Err(_) => Err(KeyError::Pem {
            what: path.display().to_string(),
            label: "key",
            reason: "the file is not text".into(),
        }),
    }
}

/// Creates the file with its final mode from the start (never chmod after writing: the key
/// would be readable in between). When overwriting, writes a temporary sibling and renames it.
fn write_key_file(
    path: &Path,
    contents: &[u8],
    mode: u32,
    overwrite: bool,
) -> Result<(), KeyError> {
    let target = if overwrite {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let unique = uuid::Uuid::new_v4().simple().to_string();
        path.with_file_name(format!(".{name}.{}.tmp", &unique[..12]))
    } else {
        path.to_path_buf()
    };
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&target).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            KeyError::Exists {
                path: target.clone(),
            }
        } else {
            KeyError::io(&target, e)
        }
    })?;
    let written = file
        .write_all(contents)
        .and_then(|()| file.sync_all())
        .and_then(|()| {
            if overwrite {
                std::fs::rename(&target, path)
            } else {
                Ok(())
            }
        });
    if let Err(e) = written {
        let _ = std::fs::remove_file(&target);
        return Err(KeyError::io(path, e));
    }
    Ok(())
}

/// A private key that others can read is still used (the original wrote them that way), but
/// said so, as ssh would.
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                tracing::warn!(event = "XOLO.KEY.PERMISSIONS", path = %path.display(), mode = format!("{mode:o}"));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn save_and_load_round_trip_with_private_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let keys = dir.path().join("new").join("keys");
        let pair = KeyPair::generate();
        let files = pair.save(&keys, "alice").unwrap();
        assert_eq!(files.private, keys.join("alice"));
        assert_eq!(files.public, keys.join("alice.pub"));
        let text = std::fs::read_to_string(&files.private).unwrap();
        assert!(text.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        assert!(std::fs::read_to_string(&files.public)
            .unwrap()
            .starts_with("-----BEGIN PUBLIC KEY-----\n"));
        #[cfg(unix)]
        {
            assert_eq!(mode(&files.private), 0o600);
            assert_eq!(mode(&keys), 0o700);
        }
        let loaded = KeyPair::load(&keys, "alice").unwrap();
        assert_eq!(loaded.public(), pair.public());
        assert_eq!(PublicKey::load(&files.public).unwrap(), *pair.public());
    }

    #[test]
    fn existing_keys_are_kept_unless_overwriting() {
        let dir = tempfile::tempdir().unwrap();
        let first = KeyPair::generate();
        first.save(dir.path(), "k").unwrap();
        let second = KeyPair::generate();
        let err = second.save(dir.path(), "k").unwrap_err();
        assert!(matches!(err, KeyError::Exists { .. }), "{err}");
        assert_eq!(
            KeyPair::load(dir.path(), "k").unwrap().public(),
            first.public()
        );
        // Only the .pub left over still blocks a plain save.
        std::fs::remove_file(dir.path().join("k")).unwrap();
        assert!(matches!(
            second.save(dir.path(), "k"),
            Err(KeyError::Exists { .. })
        ));
        let files = second.save_overwriting(dir.path(), "k").unwrap();
        assert_eq!(
            KeyPair::load(dir.path(), "k").unwrap().public(),
            second.public()
        );
        assert_eq!(PublicKey::load(&files.public).unwrap(), *second.public());
        #[cfg(unix)]
        assert_eq!(mode(&files.private), 0o600);
        // No temporary files are left beside them.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn names_that_leave_the_directory_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let pair = KeyPair::generate();
        for name in ["", "../x", "a/b", ".hidden", "a b", "k\0", &"x".repeat(300)] {
            assert!(
                matches!(
                    pair.save(dir.path(), name),
                    Err(KeyError::InvalidName { .. })
                ),
                "{name:?}"
            );
            assert!(KeyPair::load(dir.path(), name).is_err());
        }
    }

    #[test]
    fn bad_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = |n: &str| dir.path().join(n);
        assert!(matches!(
            KeyPair::load(dir.path(), "missing"),
            Err(KeyError::Io { .. })
        ));
        std::fs::write(path("empty"), b"").unwrap();
        assert!(matches!(
            KeyPair::load(dir.path(), "empty"),
            Err(KeyError::Pem { .. })
        ));
        std::fs::write(path("binary"), [0xffu8, 0xfe, 0x00, 0x80]).unwrap();
        let err = KeyPair::load(dir.path(), "binary").unwrap_err();
        assert!(err.to_string().contains("not text"), "{err}");
        std::fs::write(path("huge"), vec![b'A'; 100_000]).unwrap();
        assert!(matches!(
            KeyPair::load(dir.path(), "huge"),
            Err(KeyError::TooLarge { size: 100_000, .. })
        ));
        // A key file cut in half.
        let pair = KeyPair::generate();
        let files = pair.save(dir.path(), "cut").unwrap();
        let text = std::fs::read_to_string(&files.private).unwrap();
        std::fs::write(&files.private, &text[..text.len() / 2]).unwrap();
        let err = KeyPair::load(dir.path(), "cut").unwrap_err();
        assert!(matches!(err, KeyError::Pem { .. }), "{err}");
        assert!(err.to_string().contains("cut"), "names the file: {err}");
        let text = std::fs::read_to_string(&files.public).unwrap();
        std::fs::write(&files.public, &text[..text.len() - 30]).unwrap();
        assert!(PublicKey::load(&files.public).is_err());
        // A private key given where a public key is expected.
        let other = KeyPair::generate().save(dir.path(), "other").unwrap();
        assert!(matches!(
            PublicKey::load(&other.private),
            Err(KeyError::Pem { .. })
        ));
    }

    #[test]
    fn key_dir_comes_from_xolo_secret_path_then_home() {
        let some = |s: &str| Some(std::ffi::OsString::from(s));
        assert_eq!(
            key_dir_from(some("/srv/keys"), some("/home/u")).unwrap(),
            PathBuf::from("/srv/keys")
        );
        assert_eq!(
            key_dir_from(some(""), some("/home/u")).unwrap(),
            PathBuf::from("/home/u/.mictlanx/xolo/keys")
        );
        assert_eq!(
            key_dir_from(None, some("/home/u")).unwrap(),
            PathBuf::from("/home/u/.mictlanx/xolo/keys")
        );
        assert!(matches!(
            key_dir_from(None, some("")),
            Err(KeyError::NoKeyDir)
        ));
        assert!(matches!(key_dir_from(None, None), Err(KeyError::NoKeyDir)));
    }
}
