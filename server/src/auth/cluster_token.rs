//! The cluster token: the shared secret with which routers (and peers) call peers.
//!
//! A peer with a cluster token lets only its holders change it (uploads, deletes, disables,
//! peer management); the router sends it on every call to its peers. Unlike the tokens of
//! the token file it must be kept in clear by the router, so it lives in a type whose `Debug`
//! is redacted and whose comparison is constant-time.

use std::fmt;
use std::path::Path;

use axum::http::HeaderValue;

use super::tokens::{digest, digests_match, read_small_file, validate_token, TokenFileError};

/// The shared secret of routers and peers.
///
/// # Examples
///
/// ```
/// use mictlanx_server::auth::ClusterToken;
///
/// let token = ClusterToken::new("cluster-secret-0123456789")?;
/// assert!(token.matches("cluster-secret-0123456789"));
/// assert!(!token.matches("cluster-secret-0123456780"));
/// assert_eq!(format!("{token:?}"), "ClusterToken(<redacted>)");
/// # Ok::<(), mictlanx_server::auth::TokenFileError>(())
/// ```
#[derive(Clone)]
pub struct ClusterToken {
    secret: String,
    digest: [u8; 32],
}

impl fmt::Debug for ClusterToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ClusterToken(<redacted>)")
    }
}

impl ClusterToken {
    /// A cluster token from its text.
    ///
    /// # Errors
    ///
    /// [`TokenFileError::Invalid`] when it is shorter than 16 characters, longer than 512,
    /// or not visible ASCII.
    pub fn new(secret: &str) -> Result<Self, TokenFileError> {
        validate_token(secret)?;
        Ok(Self {
            secret: secret.to_owned(),
            digest: digest(secret),
        })
    }

    /// Reads the token from a file (surrounding whitespace and a final newline ignored).
    ///
    /// # Errors
    ///
    /// [`TokenFileError::Read`] / [`TokenFileError::TooLarge`] when the file cannot be had,
    /// [`TokenFileError::Invalid`] for a bad token.
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        Self::new(read_small_file(path)?.trim())
    }

    /// Whether `presented` is this token (constant-time).
    pub fn matches(&self, presented: &str) -> bool {
        digests_match(&self.digest, &digest(presented))
    }

    /// `Bearer TOKEN`, marked sensitive so that HTTP clients never print it.
    pub fn authorization(&self) -> HeaderValue {
        // The token was checked to be visible ASCII, which every header value may carry.
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.secret))
            .unwrap_or_else(|_| HeaderValue::from_static(""));
        value.set_sensitive(true);
        value
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loads_trimmed_and_refuses_bad_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cluster");
        std::fs::write(&path, "  cluster-secret-0123456789\n").unwrap();
        let token = ClusterToken::load(&path).unwrap();
        assert!(token.matches("cluster-secret-0123456789"));
        assert!(!token.matches(""));
        std::fs::write(&path, "").unwrap();
        assert!(ClusterToken::load(&path).is_err());
        assert!(ClusterToken::new("short").is_err());
        assert!(ClusterToken::new("has a space in the middle").is_err());
        let value = token.authorization();
        assert!(value.is_sensitive());
        assert!(!format!("{value:?}").contains("cluster-secret"));
    }
}
