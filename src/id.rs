//! Identifiers: bucket ids, ball ids, keys, chunk keys and task ids.
//!
//! **The key rule.** A ball id (and a key) is any UTF-8 text of 1–1,024 bytes without NUL
//! or other control characters, stored and returned exactly as given: `/` is allowed (as
//! in S3 object keys, so `photos/2024/img1.jpg` is one ball), and so are dots, spaces and
//! any script (`日本.txt`). Ids are compared byte for byte, with no Unicode normalisation.
//! The only refused texts besides those are `.` and `..` alone, which no URL can carry as
//! a path segment. A bucket id follows the S3 bucket rules, relaxed as MictlanX needs
//! (upper case and `_` allowed, one character is enough): 1–63 letters, digits, `.`, `-`
//! and `_`, starting and ending with a letter or a digit, without `..`.
//!
//! Validated ids travel as newtypes ([`BucketId`], [`BallId`], [`Key`]): the SDK checks
//! them once at its entry points, the server's path extractors deserialise straight into
//! them, and nothing downstream re-validates strings. Ids never become file names: a peer
//! names its files by a hash of bucket and key, so a hostile id cannot escape its
//! directory or collide with another. Ids that the Python client sends (already sanitised
//! on its side by [`sanitize`]) are valid ids and keep working unchanged.
//!
//! A ball is stored as chunks whose keys are `<ball_id>_<index>` ([`chunk_key`],
//! [`split_chunk_key`]). Queued client operations are identified by a [`TaskId`].
//!
//! # Examples
//!
//! ```
//! use mictlanx::id::{chunk_key, BallId, BucketId};
//!
//! let bucket = BucketId::new("photos")?;
//! let ball = BallId::new("2024/日本.jpg")?;
//! assert_eq!(ball.as_str(), "2024/日本.jpg");
//! assert_eq!(chunk_key(ball.as_str(), 0), "2024/日本.jpg_0");
//! assert!(BucketId::new("My@Bucket").is_err());
//! assert!(BallId::new("..").is_err());
//! assert!(BallId::new("a\0b").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use uuid::Uuid;

/// The longest accepted ball id, in bytes (S3's limit for object keys).
pub const MAX_BALL_ID_LEN: usize = 1024;

/// The longest accepted key, in bytes: a ball id plus a chunk suffix (`_` and a `u64`).
pub const MAX_KEY_LEN: usize = MAX_BALL_ID_LEN + 1 + 20;

/// The longest accepted bucket id, in bytes (S3's limit for bucket names).
pub const MAX_BUCKET_ID_LEN: usize = 63;

/// How many characters of a refused input an [`IdError`] keeps, so that errors stay small.
const SHOWN_CHARS: usize = 64;

/// Which kind of identifier is being validated; it names the identifier in error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    /// A bucket id (displayed as "bucket id").
    Bucket,
    /// A ball id (displayed as "ball id").
    Ball,
    /// A key (displayed as "key").
    Key,
}

impl IdKind {
    /// The longest id of this kind, in bytes.
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::id::IdKind;
    ///
    /// assert_eq!(IdKind::Ball.max_len(), 1024);
    /// assert_eq!(IdKind::Bucket.max_len(), 63);
    /// ```
    pub const fn max_len(self) -> usize {
        match self {
            IdKind::Bucket => MAX_BUCKET_ID_LEN,
            IdKind::Ball => MAX_BALL_ID_LEN,
            IdKind::Key => MAX_KEY_LEN,
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IdKind::Bucket => "bucket id",
            IdKind::Ball => "ball id",
            IdKind::Key => "key",
        })
    }
}

/// Why an identifier was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum IdError {
    /// The identifier is empty.
    #[error("{kind} is empty")]
    Empty {
        /// Which identifier.
        kind: IdKind,
    },
    /// The identifier is longer than its kind allows ([`IdKind::max_len`]).
    #[error("{kind} is {len} bytes long, the maximum is {}", kind.max_len())]
    TooLong {
        /// Which identifier.
        kind: IdKind,
        /// Its length in bytes.
        len: usize,
    },
    /// The identifier contains NUL or another control character.
    #[error("{kind} contains a control character (NUL, newline, tab, ...)")]
    ControlChar {
        /// Which identifier.
        kind: IdKind,
    },
    /// The identifier is `.` or `..`, which no URL path segment can carry.
    #[error("{kind} cannot be \".\" or \"..\"")]
    DotSegment {
        /// Which identifier.
        kind: IdKind,
    },
    /// A bucket id breaks the bucket rule (see the [module docs](self)).
    #[error("bucket id {raw:?} {reason}")]
    InvalidBucket {
        /// The input, truncated to 64 characters.
        raw: String,
        /// Which part of the rule it breaks.
        reason: &'static str,
    },
    /// The text is not a UUID, so it is not a [`TaskId`].
    #[error("task id {raw:?} is not a UUID")]
    InvalidTaskId {
        /// The input, truncated to 64 characters.
        raw: String,
    },
}

fn shown(raw: &str) -> String {
    raw.chars().take(SHOWN_CHARS).collect()
}

fn is_separator(c: char) -> bool {
    c == '-' || c == '_'
}

/// Sanitises an identifier with the MictlanX rule (reference §4.6, `Utils.sanitize_str`):
/// what the Python client does to every id before sending it.
///
/// 1. keep only `[A-Za-z0-9_-]`;
/// 2. replace every run of two or more characters from {`-`, `_`} by a single `-`;
/// 3. strip one leading and one trailing `-`;
/// 4. if the result does not match `^[A-Za-z0-9]+([-_][A-Za-z0-9]+)*$`, return `""`.
///
/// This SDK does **not** apply it: ids are stored as given (see the module docs). It is
/// here to find the id under which the Python client stored a name, for example when
/// migrating (`sanitize("ball.txt")` is the id the Python client used for `ball.txt`).
/// Case is preserved and the function is idempotent.
///
/// # Examples
///
/// ```
/// use mictlanx::id::sanitize;
///
/// assert_eq!(sanitize("My@Invalid#String!"), "MyInvalidString");
/// assert_eq!(sanitize("---multiple--dashes---"), "multiple-dashes");
/// assert_eq!(sanitize("ball.txt"), "balltxt");
/// assert_eq!(sanitize("_abc"), "");
/// ```
pub fn sanitize(input: &str) -> String {
    let mut collapsed = String::with_capacity(input.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 2 {
            out.push('-');
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in input
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || is_separator(*c))
    {
        if is_separator(c) {
            run.push(c);
        } else {
            flush(&mut run, &mut collapsed);
            collapsed.push(c);
        }
    }
    flush(&mut run, &mut collapsed);

    let s = collapsed.strip_prefix('-').unwrap_or(&collapsed);
    let s = s.strip_suffix('-').unwrap_or(s);
    if matches_id_pattern(s) {
        s.to_owned()
    } else {
        String::new()
    }
}

/// `^[A-Za-z0-9]+([-_][A-Za-z0-9]+)*$`
fn matches_id_pattern(s: &str) -> bool {
    let mut previous_was_separator = true; // so that a leading separator fails
    for c in s.chars() {
        if c.is_ascii_alphanumeric() {
            previous_was_separator = false;
        } else if is_separator(c) && !previous_was_separator {
            previous_was_separator = true;
        } else {
            return false;
        }
    }
    !s.is_empty() && !previous_was_separator
}

/// Checks an id against the rule of its kind (see the [module docs](self)) and returns it
/// unchanged.
///
/// # Errors
///
/// One [`IdError`] variant per broken rule, naming `kind` in its message (for example
/// "key contains a control character").
///
/// # Examples
///
/// ```
/// use mictlanx::id::{validate, IdError, IdKind};
///
/// assert_eq!(validate(IdKind::Ball, "dir/sub/a.b")?, "dir/sub/a.b");
/// assert_eq!(
///     validate(IdKind::Key, "a\nb"),
///     Err(IdError::ControlChar { kind: IdKind::Key })
/// );
/// assert!(validate(IdKind::Bucket, "a/b").is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn validate(kind: IdKind, raw: &str) -> Result<&str, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > kind.max_len() {
        return Err(IdError::TooLong {
            kind,
            len: raw.len(),
        });
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::ControlChar { kind });
    }
    if raw == "." || raw == ".." {
        return Err(IdError::DotSegment { kind });
    }
    if kind == IdKind::Bucket {
        check_bucket(raw)?;
    }
    Ok(raw)
}

/// The bucket part of the rule: S3's, with upper case and `_` allowed.
fn check_bucket(raw: &str) -> Result<(), IdError> {
    let refuse = |reason| {
        Err(IdError::InvalidBucket {
            raw: shown(raw),
            reason,
        })
    };
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    {
        return refuse("may hold only letters, digits, '.', '-' and '_'");
    }
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_alphanumeric());
    if !edge(raw.bytes().next()) || !edge(raw.bytes().last()) {
        return refuse("must start and end with a letter or a digit");
    }
    if raw.contains("..") {
        return refuse("cannot contain \"..\"");
    }
    Ok(())
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $example:literal) => {
        $(#[$doc])*
        ///
        /// The value is checked by [`validate`] and kept exactly as given.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("use mictlanx::id::", stringify!($name), ";")]
        ///
        #[doc = concat!("let id = ", stringify!($name), "::new(\"", $example, "\")?;")]
        #[doc = concat!("assert_eq!(id.as_str(), \"", $example, "\");")]
        #[doc = concat!("assert!(", stringify!($name), "::new(\"..\").is_err());")]
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Checks `raw` (see [`validate`]).
            ///
            /// # Errors
            ///
            /// The [`IdError`] explaining why `raw` is refused.
            pub fn new(raw: impl Into<String>) -> Result<Self, IdError> {
                let raw = raw.into();
                validate($kind, &raw)?;
                Ok(Self(raw))
            }

            /// The id.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id, as an owned string.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = IdError;

            fn try_from(s: &str) -> Result<Self, Self::Error> {
                Self::new(s)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_newtype!(
    /// A valid bucket id.
    BucketId,
    IdKind::Bucket,
    "my-bucket"
);
id_newtype!(
    /// A valid ball id (the name of a whole object), for example `photos/img1.jpg`.
    BallId,
    IdKind::Ball,
    "photos/img1.jpg"
);
id_newtype!(
    /// A valid key (the name of one stored chunk, `<ball_id>_<index>`).
    Key,
    IdKind::Key,
    "photos/img1.jpg_0"
);

impl BallId {
    /// The key of chunk `index` of this ball (see [`chunk_key`]); always a valid [`Key`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::id::BallId;
    ///
    /// let ball = BallId::new("a.txt")?;
    /// assert_eq!(ball.chunk(2).as_str(), "a.txt_2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn chunk(&self, index: u64) -> Key {
        // A valid ball id plus `_<u64>` fits MAX_KEY_LEN and adds no control character.
        Key(chunk_key(&self.0, index))
    }
}

/// Everything but the RFC 3986 unreserved characters is encoded in a path segment.
const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// An id as one URL path segment, percent-encoded: `/` becomes `%2F`, so that a ball id
/// with slashes stays one segment, and no id can add a segment or a query. Servers decode
/// it back (axum's `Path` does) before it reaches the id types.
///
/// # Examples
///
/// ```
/// use mictlanx::id::url_segment;
///
/// assert_eq!(url_segment("dir/sub/a.b"), "dir%2Fsub%2Fa.b");
/// assert_eq!(url_segment("日本.txt"), "%E6%97%A5%E6%9C%AC.txt");
/// assert_eq!(url_segment("report_c-0.x~"), "report_c-0.x~");
/// ```
pub fn url_segment(id: &str) -> String {
    percent_encoding::utf8_percent_encode(id, SEGMENT).to_string()
}

/// The key of chunk `index` of a ball: `"{ball_id}_{index}"` (reference §4.4).
///
/// # Examples
///
/// ```
/// use mictlanx::id::chunk_key;
///
/// assert_eq!(chunk_key("report_c", 3), "report_c_3");
/// ```
pub fn chunk_key(ball_id: &str, index: u64) -> String {
    format!("{ball_id}_{index}")
}

/// Splits a chunk key into its ball id and index, the inverse of [`chunk_key`].
///
/// The key is split on its last `_`; the part after it must be a non-empty run of ASCII
/// digits that fits a `u64`, and the part before it (the ball id) must be non-empty.
/// Otherwise the key is not a chunk key and `None` is returned.
///
/// # Examples
///
/// ```
/// use mictlanx::id::split_chunk_key;
///
/// assert_eq!(split_chunk_key("a_b_12"), Some(("a_b", 12)));
/// assert_eq!(split_chunk_key("abc"), None);
/// assert_eq!(split_chunk_key("a_"), None);
/// ```
pub fn split_chunk_key(key: &str) -> Option<(&str, u64)> {
    let (ball_id, index) = key.rsplit_once('_')?;
    if ball_id.is_empty() || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    index.parse().ok().map(|i| (ball_id, i))
}

/// The id of a task queued in an asynchronous client: a random (v4) UUID.
///
/// Displayed, parsed and serialised as the hyphenated UUID string.
///
/// # Examples
///
/// ```
/// use mictlanx::id::TaskId;
///
/// let id = TaskId::new();
/// let parsed: TaskId = id.to_string().parse()?;
/// assert_eq!(parsed, id);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TaskId(Uuid);

impl TaskId {
    /// A new random task id.
    pub fn new() -> Self {
        Self(Uuid::new_v4())
    }

    /// The underlying UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl Default for TaskId {
    /// A new random task id, as [`TaskId::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl From<Uuid> for TaskId {
    fn from(uuid: Uuid) -> Self {
        Self(uuid)
    }
}

impl From<TaskId> for Uuid {
    fn from(id: TaskId) -> Self {
        id.0
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

impl FromStr for TaskId {
    type Err = IdError;

    /// Parses a UUID in any form the `uuid` crate accepts (hyphenated, simple, braced, URN).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s)
            .map(Self)
            .map_err(|_| IdError::InvalidTaskId { raw: shown(s) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn sanitize_verified_examples() {
        let cases = [
            ("My@Invalid#String!", "MyInvalidString"),
            ("---multiple--dashes---", "multiple-dashes"),
            ("a__b", "a-b"),
            ("ball.txt", "balltxt"),
            ("_abc", ""),
            ("abc_", ""),
            ("-a-", "a"),
            ("report_c_0", "report_c_0"),
            ("pic_b", "pic_b"),
            ("", ""),
        ];
        for (input, expected) in cases {
            assert_eq!(sanitize(input), expected, "{input:?}");
        }
    }

    #[test]
    fn sanitize_edge_cases() {
        assert_eq!(sanitize("-"), "");
        assert_eq!(sanitize("--"), "");
        assert_eq!(sanitize("a-_b"), "a-b");
        assert_eq!(sanitize("a_-_b"), "a-b");
        assert_eq!(sanitize("a-b_c"), "a-b_c");
        assert_eq!(sanitize("--a"), "a");
        assert_eq!(sanitize("a--"), "a");
        assert_eq!(sanitize("A1"), "A1");
        assert_eq!(sanitize("ñandú"), "and");
        assert_eq!(sanitize("a b"), "ab");
        assert_eq!(sanitize("a_ b"), "a_b");
    }

    #[test]
    fn validate_keeps_ids_as_given() {
        for id in [
            "report_c_0",
            "ball.txt",
            "img1.jpg",
            "dir/sub/a.b",
            "日本.txt",
            "中文.txt",
            "a b",
            "/leading/and/trailing/",
            "a/../b",
            "...",
            "\\windows\\path",
            "%2F?#&",
        ] {
            assert_eq!(validate(IdKind::Ball, id), Ok(id), "{id:?}");
        }
        assert_eq!(
            validate(IdKind::Ball, &"a".repeat(MAX_BALL_ID_LEN)).map(str::len),
            Ok(1024)
        );
        assert_eq!(
            validate(IdKind::Key, &"a".repeat(MAX_KEY_LEN)).map(str::len),
            Ok(MAX_KEY_LEN)
        );
        for bucket in ["b", "my-bucket", "My_Bucket", "a.b.c", "pics2024", "x9"] {
            assert_eq!(validate(IdKind::Bucket, bucket), Ok(bucket), "{bucket:?}");
        }
        let sanitised = sanitize("any Python id!");
        assert_eq!(validate(IdKind::Bucket, &sanitised), Ok("anyPythonid"));
    }

    #[test]
    fn validate_refusals() {
        use IdKind::*;
        assert_eq!(validate(Key, ""), Err(IdError::Empty { kind: Key }));
        assert_eq!(
            validate(Ball, ".."),
            Err(IdError::DotSegment { kind: Ball })
        );
        assert_eq!(validate(Key, "."), Err(IdError::DotSegment { kind: Key }));
        for control in ["a\0b", "a\nb", "a\u{7f}b", "tab\t", "\u{85}"] {
            assert_eq!(
                validate(Ball, control),
                Err(IdError::ControlChar { kind: Ball }),
                "{control:?}"
            );
        }
        assert_eq!(
            validate(Ball, &"x".repeat(MAX_BALL_ID_LEN + 1)),
            Err(IdError::TooLong {
                kind: Ball,
                len: 1025
            })
        );
        // 342 three-byte characters: the limit is in bytes, not characters.
        assert!(matches!(
            validate(Ball, &"日".repeat(342)),
            Err(IdError::TooLong { len: 1026, .. })
        ));
        assert_eq!(
            validate(Bucket, &"b".repeat(64)),
            Err(IdError::TooLong {
                kind: Bucket,
                len: 64
            })
        );
        for bucket in [
            "a/b",
            "a b",
            "My@Bucket",
            "日本",
            "-a",
            "a-",
            ".a",
            "a_",
            "a..b",
        ] {
            assert!(
                matches!(validate(Bucket, bucket), Err(IdError::InvalidBucket { .. })),
                "{bucket:?}"
            );
        }
    }

    #[test]
    fn error_messages_name_kind_and_reason() {
        assert_eq!(
            IdError::ControlChar { kind: IdKind::Key }.to_string(),
            "key contains a control character (NUL, newline, tab, ...)"
        );
        assert_eq!(
            IdError::Empty {
                kind: IdKind::Bucket
            }
            .to_string(),
            "bucket id is empty"
        );
        assert_eq!(
            IdError::TooLong {
                kind: IdKind::Ball,
                len: 3000
            }
            .to_string(),
            "ball id is 3000 bytes long, the maximum is 1024"
        );
        let msg = validate(IdKind::Bucket, "my bucket").map_err(|e| e.to_string());
        assert_eq!(
            msg,
            Err("bucket id \"my bucket\" may hold only letters, digits, '.', '-' and '_'".into())
        );
    }

    #[test]
    fn newtypes() {
        let b = BucketId::new("MyBucket").unwrap();
        assert_eq!(b.to_string(), "MyBucket");
        assert_eq!(BucketId::new(b.as_str()).unwrap(), b);
        assert!(BucketId::new("My Bucket!").is_err());
        let k: Key = "pic_b".parse().unwrap();
        assert_eq!(k.as_ref(), "pic_b");
        assert_eq!(&*k, "pic_b");
        assert_eq!(k.clone().into_inner(), "pic_b");
        assert_eq!(String::from(k), "pic_b");
        let ball = BallId::try_from(String::from("a/b.txt")).unwrap();
        assert!(ball == *"a/b.txt");
        assert_eq!(ball.chunk(7), Key::new("a/b.txt_7").unwrap());
        let longest = BallId::new("z".repeat(MAX_BALL_ID_LEN)).unwrap();
        assert!(Key::new(longest.chunk(u64::MAX).into_inner()).is_ok());
        assert_eq!(
            "..".parse::<BallId>(),
            Err(IdError::DotSegment { kind: IdKind::Ball })
        );
        assert!(BucketId::new("a").unwrap() < BucketId::new("b").unwrap());
    }

    #[test]
    fn newtype_serde() {
        let k = Key::new("日本.txt_0").unwrap();
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"日本.txt_0\"");
        let back: Key = serde_json::from_str("\"日本.txt_0\"").unwrap();
        assert_eq!(back, k);
        let err = serde_json::from_str::<BucketId>("\"a/b\"").unwrap_err();
        assert!(err.to_string().contains("bucket id \"a/b\""), "{err}");
        assert!(serde_json::from_str::<Key>("\"a\\u0000b\"").is_err());
        assert!(serde_json::from_str::<Key>("12").is_err());
    }

    #[test]
    fn chunk_keys() {
        assert_eq!(chunk_key("a_b", 12), "a_b_12");
        assert_eq!(split_chunk_key("a_b_12"), Some(("a_b", 12)));
        assert_eq!(split_chunk_key("report_c_0"), Some(("report_c", 0)));
        assert_eq!(split_chunk_key("abc"), None);
        assert_eq!(split_chunk_key("a_"), None);
        assert_eq!(split_chunk_key("_5"), None);
        assert_eq!(split_chunk_key("a_1x"), None);
        assert_eq!(split_chunk_key("a_+1"), None);
        assert_eq!(split_chunk_key("a_99999999999999999999999"), None);
        assert_eq!(split_chunk_key("a_12_b"), None);
    }

    #[test]
    fn task_id_round_trips() {
        let id = TaskId::new();
        assert_ne!(id, TaskId::default());
        let text = id.to_string();
        assert_eq!(text.len(), 36);
        assert_eq!(text.parse::<TaskId>().unwrap(), id);
        assert_eq!(text, id.as_uuid().hyphenated().to_string());
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<TaskId>(&json).unwrap(), id);
        assert_eq!(Uuid::from(id), *id.as_uuid());
        assert_eq!(TaskId::from(*id.as_uuid()), id);
        assert_eq!(
            "not-a-uuid".parse::<TaskId>(),
            Err(IdError::InvalidTaskId {
                raw: "not-a-uuid".into()
            })
        );
        assert!(serde_json::from_str::<TaskId>("\"nope\"").is_err());
    }

    fn pattern_ok(s: &str) -> bool {
        matches_id_pattern(s)
    }

    proptest! {
        #[test]
        fn sanitize_is_idempotent(s in "\\PC{0,64}") {
            let once = sanitize(&s);
            prop_assert_eq!(sanitize(&once), once.clone());
            prop_assert!(once.len() <= s.len());
            if !once.is_empty() {
                prop_assert!(pattern_ok(&once));
            }
        }

        #[test]
        fn sanitize_idempotent_on_id_alphabet(s in "[-_a-zA-Z0-9.@]{0,40}") {
            let once = sanitize(&s);
            prop_assert_eq!(sanitize(&once), once.clone());
            prop_assert!(once.len() <= s.len());
            prop_assert!(once.is_empty() || pattern_ok(&once));
        }

        #[test]
        fn validate_never_panics_and_keeps_ids(s in any::<String>()) {
            if let Ok(kept) = validate(IdKind::Key, &s) {
                prop_assert_eq!(kept, s.as_str());
                prop_assert!(!kept.chars().any(char::is_control));
            }
        }

        #[test]
        fn sanitised_ids_are_valid(s in "\\PC{0,64}") {
            let clean = sanitize(&s);
            if !clean.is_empty() {
                prop_assert!(validate(IdKind::Ball, &clean).is_ok());
                if clean.len() <= MAX_BUCKET_ID_LEN {
                    prop_assert!(validate(IdKind::Bucket, &clean).is_ok());
                }
            }
        }

        #[test]
        fn chunk_key_round_trip(ball in "\\PC{1,40}", i in any::<u64>()) {
            let key = chunk_key(&ball, i);
            prop_assert_eq!(split_chunk_key(&key), Some((ball.as_str(), i)));
        }
    }
}
