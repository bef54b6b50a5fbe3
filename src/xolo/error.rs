//! What can go wrong with a key or a key file.

use std::path::PathBuf;

/// A key that cannot be made, read, parsed or written.
///
/// Messages name the file and what is wrong with it; they never contain key material.
///
/// # Examples
///
/// ```
/// use mictlanx::xolo::{KeyError, PublicKey};
///
/// let err = PublicKey::from_pem("not a key").unwrap_err();
/// assert!(matches!(err, KeyError::Pem { .. }));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The text is not PEM, or not the PEM block expected.
    #[error("{what} is not a PEM {label} block: {reason}")]
    Pem {
        /// Which key (a path, or "the text").
        what: String,
        /// The PEM label expected (`PRIVATE KEY`, `PUBLIC KEY`).
        label: &'static str,
        /// What the PEM decoder said.
        reason: String,
    },
    /// The DER inside the PEM block is not a PKCS#8 / SPKI structure, or is cut short.
    #[error("{what} is not a valid {structure}: {reason}")]
    Malformed {
        /// Which key.
        what: String,
        /// `PKCS#8 private key` or `SubjectPublicKeyInfo`.
        structure: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// A well-formed key of another algorithm (e.g. Ed25519, RSA).
    #[error("{what} is a {oid} key, not X25519 (1.3.101.110)")]
    WrongAlgorithm {
        /// Which key.
        what: String,
        /// The algorithm OID found.
        oid: String,
    },
    /// The key file would replace an existing one (pass `overwrite` to replace it).
    #[error("{} already exists; refusing to overwrite a key", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A key file is larger than any key file can be (a wrong path, or hostile input).
    #[error("{} is {size} bytes, too large to be a key file", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        size: u64,
    },
    /// A key name that could escape the key directory or is empty.
    #[error("{name:?} is not a usable key name (letters, digits, '.', '_', '-'; no path)")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// No key directory: neither `XOLO_SECRET_PATH` nor `HOME` is set.
    #[error("no key directory: set XOLO_SECRET_PATH (or HOME)")]
    NoKeyDir,
    /// Reading or writing a key file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The file system's error.
        #[source]
        source: std::io::Error,
    },
}

impl KeyError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        KeyError::Io {
            path: path.into(),
            source,
        }
    }
}
