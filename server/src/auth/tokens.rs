//! The token file: who may call a router or a peer, and with which [`Role`].
//!
//! One token per line, `ROLE TOKEN [NAME]`, with `#` comments and blank lines ignored:
//!
//! ```text
//! # role   token                              name (optional, shown in logs)
//! read     3f1c9a8e0b7d4c2a9e6f1b3d5a7c9e0f   dashboards
//! write    a9d8c7b6e5f4a3b2c1d0e9f8a7b6c5d4   ingest-service
//! admin    0f9e8d7c6b5a49382716a5b4c3d2e1f0   ops
//! ```
//!
//! Tokens are 16 to 512 visible ASCII characters without spaces. Only their SHA-256 digests
//! are kept in memory, so neither `Debug` nor a stray log line can show one; a presented
//! token is hashed and compared with every digest in constant time (`subtle`).

use std::fmt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;
/// Longest token accepted (and longest `Authorization` value looked at).
pub const MAX_TOKEN_LEN: usize = 512;
/// A token file larger than this is refused unread (it cannot be a hand-written list).
const MAX_FILE_BYTES: u64 = 1024 * 1024;

/// What a token allows. Roles are ordered: `Read < Write < Admin`, and a role allows
/// everything a lower one does.
///
/// ```
/// use mictlanx_server::auth::Role;
///
/// assert!(Role::Admin > Role::Write && Role::Write > Role::Read);
/// assert_eq!("write".parse::<Role>(), Ok(Role::Write));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    /// Reads: data, metadata, listings, stats.
    Read,
    /// Reads and uploads (metadata and bytes).
    Write,
    /// Everything: deletes, disables, peer management.
    Admin,
}

impl Role {
    /// The role's name in token files: `read`, `write`, `admin`.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = ();

    fn from_str(s: &str) -> Result<Self, ()> {
        match s.to_ascii_lowercase().as_str() {
            "read" => Ok(Role::Read),
            "write" => Ok(Role::Write),
            "admin" => Ok(Role::Admin),
            _ => Err(()),
        }
    }
}

/// Why a token file (or a token) was refused. Messages name the line, never the token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TokenFileError {
    /// The file could not be read.
    #[error("cannot read the token file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is larger than 1 MiB.
    #[error("the token file {path} is larger than 1 MiB")]
    TooLarge {
        /// The file.
        path: PathBuf,
    },
    /// A line is not `ROLE TOKEN [NAME]`.
    #[error("token file line {line}: {reason}")]
    Line {
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        reason: String,
    },
    /// The file holds no token at all (nobody could call the server).
    #[error("the token file has no tokens")]
    Empty,
    /// A token that is too short, too long or has characters a header cannot carry.
    #[error("invalid token: {0}")]
    Invalid(&'static str),
}

/// Checks the shape of a token; the reason never quotes it.
///
/// ```
/// use mictlanx_server::auth::validate_token;
///
/// assert!(validate_token("0123456789abcdef").is_ok());
/// assert!(validate_token("too-short").is_err());
/// assert!(validate_token("no spaces in tokens").is_err());
/// ```
pub fn validate_token(token: &str) -> Result<(), TokenFileError> {
    if token.len() < MIN_TOKEN_LEN {
        return Err(TokenFileError::Invalid("shorter than 16 characters"));
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenFileError::Invalid("longer than 512 characters"));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TokenFileError::Invalid(
            "only visible ASCII characters without spaces are allowed",
        ));
    }
    Ok(())
}

/// SHA-256 of a token: the form in which tokens are kept and compared. Equal-length digests
/// mean the comparison time does not depend on how long the presented token is.
pub(crate) fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Constant-time equality of two digests.
pub(crate) fn digests_match(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.ct_eq(b).into()
}

#[derive(Clone)]
struct Entry {
    role: Role,
    digest: [u8; 32],
    name: Option<String>,
}

/// Who a token belongs to: its role and the name given in the token file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// The token's role.
    pub role: Role,
    /// The name from the token file, for logs (`None` when the line had none).
    pub name: Option<String>,
}

/// The tokens a server accepts, each with its role. Parse one with [`TokenSet::parse`] or
/// [`TokenSet::load`], or build one in code with [`TokenSet::with`].
///
/// The file has one `ROLE TOKEN [NAME]` per line (roles `read`, `write`, `admin`; `#`
/// comments and blank lines ignored); tokens are 16 to 512 visible ASCII characters. Only
/// the tokens' SHA-256 digests are kept, and a presented token is compared with every one in
/// constant time.
///
/// # Examples
///
/// ```
/// use mictlanx_server::auth::{Role, TokenSet};
///
/// let tokens = TokenSet::parse("# ops\nadmin 0123456789abcdef0123 ops\nread fedcba9876543210fedc\n")?;
/// assert_eq!(tokens.len(), 2);
/// assert_eq!(tokens.lookup("0123456789abcdef0123").map(|g| g.role), Some(Role::Admin));
/// assert!(tokens.lookup("not-a-token-at-all!!").is_none());
/// // Debug shows roles and names, never a token.
/// assert!(!format!("{tokens:?}").contains("0123456789abcdef0123"));
/// # Ok::<(), mictlanx_server::auth::TokenFileError>(())
/// ```
#[derive(Clone, Default)]
pub struct TokenSet {
    entries: Vec<Entry>,
}

impl fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for e in &self.entries {
            list.entry(&format_args!(
                "{} {} <redacted>",
                e.role,
                e.name.as_deref().unwrap_or("-")
            ));
        }
        list.finish()
    }
}

impl TokenSet {
    /// An empty set (add tokens with [`TokenSet::with`]).
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `token` with `role` and an optional `name`.
    ///
    /// # Errors
    ///
    /// [`TokenFileError::Invalid`] when the token is shorter than 16 characters, longer than
    /// 512, or has spaces or non-ASCII characters.
    pub fn with(
        mut self,
        role: Role,
        token: &str,
        name: Option<&str>,
    ) -> Result<Self, TokenFileError> {
        validate_token(token)?;
        self.entries.push(Entry {
            role,
            digest: digest(token),
            name: name.map(str::to_owned),
        });
        Ok(self)
    }

    /// Parses a token file's text: `ROLE TOKEN [NAME]` per line, `#` comments (see
    /// [`TokenSet`] and `docs/security.md`).
    ///
    /// # Errors
    ///
    /// [`TokenFileError::Line`] for a line that is not `ROLE TOKEN [NAME]`, has an unknown
    /// role, a bad token or a token already listed; [`TokenFileError::Empty`] when no line
    /// holds a token.
    pub fn parse(text: &str) -> Result<Self, TokenFileError> {
        let mut set = TokenSet::new();
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let bad = |reason: String| TokenFileError::Line { line, reason };
            let content = raw.split('#').next().unwrap_or("").trim();
            if content.is_empty() {
                continue;
            }
            let mut words = content.split_whitespace();
            let (Some(role), Some(token)) = (words.next(), words.next()) else {
                return Err(bad("expected `ROLE TOKEN [NAME]`".into()));
            };
            let name = words.next();
            if words.next().is_some() {
                return Err(bad("too many fields (expected `ROLE TOKEN [NAME]`)".into()));
            }
            let role: Role = role
                .parse()
                .map_err(|()| bad("the role must be read, write or admin".into()))?;
            validate_token(token).map_err(|e| bad(e.to_string()))?;
            let d = digest(token);
            if set.entries.iter().any(|e| digests_match(&e.digest, &d)) {
                return Err(bad("this token is already listed on an earlier line".into()));
            }
            set = set
                .with(role, token, name)
                .map_err(|e| bad(e.to_string()))?;
        }
        if set.entries.is_empty() {
            return Err(TokenFileError::Empty);
        }
        Ok(set)
    }

    /// Reads and parses a token file.
    ///
    /// # Errors
    ///
    /// [`TokenFileError::Read`] / [`TokenFileError::TooLarge`] when the file cannot be had,
    /// else as [`TokenSet::parse`].
    pub fn load(path: &Path) -> Result<Self, TokenFileError> {
        let text = read_small_file(path)?;
        Self::parse(&text)
    }

    /// Number of tokens.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the set holds no token.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The grant of `token`, if it is one of ours. Every entry is compared (in constant
    /// time), whether or not an earlier one matched.
    pub fn lookup(&self, token: &str) -> Option<Grant> {
        let presented = digest(token);
        let mut found = None;
        for e in &self.entries {
            if digests_match(&e.digest, &presented) && found.is_none() {
                found = Some(Grant {
                    role: e.role,
                    name: e.name.clone(),
                });
            }
        }
        found
    }
}

/// Reads a file of at most 1 MiB as UTF-8.
pub(crate) fn read_small_file(path: &Path) -> Result<String, TokenFileError> {
    let read = |source| TokenFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read)?;
    if meta.len() > MAX_FILE_BYTES {
        return Err(TokenFileError::TooLarge {
            path: path.to_path_buf(),
        });
    }
    std::fs::read_to_string(path).map_err(read)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "aaaaaaaaaaaaaaaa-admin";
    const W: &str = "wwwwwwwwwwwwwwww-write";

    #[test]
    fn parses_roles_names_and_comments() {
        let text = format!("# comment\n\n  admin {A} ops # trailing\nWRITE\t{W}\n");
        let set = TokenSet::parse(&text).unwrap();
        assert_eq!(set.len(), 2);
        let g = set.lookup(A).unwrap();
        assert_eq!((g.role, g.name.as_deref()), (Role::Admin, Some("ops")));
        let g = set.lookup(W).unwrap();
        assert_eq!((g.role, g.name), (Role::Write, None));
        assert!(set.lookup("").is_none());
        assert!(set.lookup(&A[..A.len() - 1]).is_none());
        assert!(set.lookup(&format!("{A}x")).is_none());
    }

    #[test]
    fn refuses_bad_lines_without_quoting_tokens() {
        let cases = [
            (format!("owner {A}"), "role"),
            ("read".to_string(), "ROLE TOKEN"),
            ("read short".to_string(), "16"),
            (format!("read {}", "x".repeat(600)), "512"),
            ("read tokentokentoken\u{e9}".to_string(), "visible ASCII"),
            (format!("read {A} name extra"), "too many"),
            (format!("read {A}\nadmin {A}"), "already listed"),
        ];
        for (text, expected) in cases {
            let err = TokenFileError::to_string(&TokenSet::parse(&text).unwrap_err());
            assert!(err.contains(expected), "{text:?}: {err}");
            assert!(!err.contains(A), "{err}");
        }
        assert!(matches!(
            TokenSet::parse("# only comments\n\n"),
            Err(TokenFileError::Empty)
        ));
        assert!(matches!(TokenSet::parse(""), Err(TokenFileError::Empty)));
        // Hostile bytes: a NUL in a token is not a visible character.
        assert!(TokenSet::parse("read aaaaaaaaaaaaaaaa\0bbbb").is_err());
    }

    #[test]
    fn load_reports_missing_and_huge_files() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        assert!(matches!(
            TokenSet::load(&missing),
            Err(TokenFileError::Read { .. })
        ));
        let huge = dir.path().join("huge");
        std::fs::write(&huge, vec![b'#'; 2 * 1024 * 1024]).unwrap();
        assert!(matches!(
            TokenSet::load(&huge),
            Err(TokenFileError::TooLarge { .. })
        ));
        let ok = dir.path().join("tokens");
        std::fs::write(&ok, format!("read {A}\n")).unwrap();
        assert_eq!(TokenSet::load(&ok).unwrap().len(), 1);
    }

    #[test]
    fn debug_never_shows_a_token() {
        let set = TokenSet::new()
            .with(Role::Admin, A, Some("ops"))
            .unwrap()
            .with(Role::Read, W, None)
            .unwrap();
        let shown = format!("{set:?}");
        assert!(shown.contains("admin ops <redacted>"), "{shown}");
        assert!(!shown.contains(A) && !shown.contains(W), "{shown}");
    }
}
