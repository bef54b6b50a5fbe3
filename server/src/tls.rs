//! TLS for the router and the peer: rustls with the ring provider, certificates from PEM
//! files (`--tls-cert`, `--tls-key`).
//!
//! The handshake happens in each connection's own task (see `serve`), bounded in time, so a
//! client that opens a socket and says nothing cannot hold the accept loop.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// The PEM files of a server's certificate chain and private key.
///
/// ```no_run
/// use mictlanx_server::tls::{server_config, TlsFiles};
///
/// let files = TlsFiles::new("/etc/mictlanx/cert.pem", "/etc/mictlanx/key.pem");
/// let config = server_config(&files)?;
/// # let _ = config;
/// # Ok::<(), mictlanx_server::tls::TlsError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// Certificate chain, PEM, leaf first.
    pub cert: PathBuf,
    /// Private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    /// The two files.
    pub fn new(cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self {
            cert: cert.into(),
            key: key.into(),
        }
    }
}

/// Why TLS could not be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file could not be read or holds no usable item.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// `certificate` or `private key`.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// rustls refused the certificate and key (e.g. they do not match).
    #[error("invalid TLS certificate or key: {0}")]
    Config(#[from] rustls::Error),
}

/// The ring crypto provider: the only one this workspace builds (no aws-lc-rs).
pub(crate) fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file (e.g. a CA bundle).
///
/// ```no_run
/// let cas = mictlanx_server::tls::load_certificates(std::path::Path::new("ca.pem"))?;
/// assert!(!cas.is_empty());
/// # Ok::<(), mictlanx_server::tls::TlsError>(())
/// ```
///
/// # Errors
///
/// [`TlsError::Pem`] when the file cannot be read or holds no certificate.
pub fn load_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = |reason: String| TlsError::Pem {
        what: "certificate",
        path: path.to_path_buf(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem("no CERTIFICATE block".into()));
    }
    Ok(certs)
}

/// The rustls server configuration for `files`, offering HTTP/2 and HTTP/1.1 (ALPN).
///
/// # Errors
///
/// [`TlsError`] when a file cannot be read or the key does not fit the certificate.
pub fn server_config(files: &TlsFiles) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certs = load_certificates(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| TlsError::Pem {
        what: "private key",
        path: files.key.clone(),
        reason: e.to_string(),
    })?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_empty_and_mismatched_files_are_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        let err = server_config(&TlsFiles::new(&cert, &key)).unwrap_err();
        assert!(err.to_string().contains("certificate"), "{err}");
        std::fs::write(&cert, "not a pem file").unwrap();
        let err = server_config(&TlsFiles::new(&cert, &key)).unwrap_err();
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");

        let a = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let b = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        std::fs::write(&cert, a.cert.pem()).unwrap();
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\ncut\n").unwrap();
        let err = server_config(&TlsFiles::new(&cert, &key)).unwrap_err();
        assert!(err.to_string().contains("private key"), "{err}");
        std::fs::write(&key, b.signing_key.serialize_pem()).unwrap();
        assert!(matches!(
            server_config(&TlsFiles::new(&cert, &key)),
            Err(TlsError::Config(_))
        ));
        std::fs::write(&key, a.signing_key.serialize_pem()).unwrap();
        let config = server_config(&TlsFiles::new(&cert, &key)).unwrap();
        assert_eq!(config.alpn_protocols.len(), 2);
    }
}
