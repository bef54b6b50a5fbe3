//! Identifiers: bucket ids, ball ids, keys, chunk keys and task ids.
//!
//! Bucket ids, ball ids and keys end up as path components on a peer's disk, so they are
//! validated once, here, and carried around in newtypes ([`BucketId`], [`BallId`], [`Key`]).
//! Validation first **refuses** anything that could escape a directory or is unreasonable
//! (empty, longer than [`MAX_ID_LEN`] bytes, control characters, `/`, `\`, `.`/`..`), then
//! **sanitises** the rest with the MictlanX rule ([`sanitize`], reference §4.6), so that the
//! same id is produced on put and on get.
//!
//! A ball is stored as chunks whose keys are `<ball_id>_<index>` ([`chunk_key`],
//! [`split_chunk_key`]). Queued client operations are identified by a [`TaskId`].
//!
//! # Examples
//!
//! ```
//! use mictlanx::id::{chunk_key, BucketId, Key};
//!
//! let bucket = BucketId::new("My@Bucket")?;
//! assert_eq!(bucket.as_str(), "MyBucket");
//! let key = Key::new("report_c")?;
//! assert_eq!(chunk_key(key.as_str(), 0), "report_c_0");
//! assert!(Key::new("../etc/passwd").is_err());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use thiserror::Error;
use uuid::Uuid;

/// The longest accepted bucket id, ball id or key, in bytes (before sanitising).
///
/// Most file systems refuse path components longer than 255 bytes.
pub const MAX_ID_LEN: usize = 255;

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
    /// The identifier is longer than [`MAX_ID_LEN`] bytes.
    #[error("{kind} is {len} bytes long, the maximum is {MAX_ID_LEN}")]
    TooLong {
        /// Which identifier.
        kind: IdKind,
        /// Its length in bytes.
        len: usize,
    },
    /// The identifier contains NUL or another control character.
    #[error("{kind} contains a control character")]
    ControlChar {
        /// Which identifier.
        kind: IdKind,
    },
    /// The identifier contains `/` or `\`.
    #[error("{kind} contains a path separator")]
    PathSeparator {
        /// Which identifier.
        kind: IdKind,
    },
    /// The identifier is `.` or contains `..`.
    #[error("{kind} is a dot segment or contains \"..\"")]
    DotSegment {
        /// Which identifier.
        kind: IdKind,
    },
    /// Nothing valid is left after sanitising (see [`sanitize`]).
    #[error("{kind} {raw:?} is empty after sanitising (only letters, digits, and single '-' or '_' between them are kept)")]
    EmptyAfterSanitize {
        /// Which identifier.
        kind: IdKind,
        /// The input, truncated to 64 characters.
        raw: String,
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

/// Sanitises an identifier with the MictlanX rule (reference §4.6, `Utils.sanitize_str`).
///
/// 1. keep only `[A-Za-z0-9_-]`;
/// 2. replace every run of two or more characters from {`-`, `_`} by a single `-`;
/// 3. strip one leading and one trailing `-`;
/// 4. if the result does not match `^[A-Za-z0-9]+([-_][A-Za-z0-9]+)*$`, return `""`.
///
/// Case is preserved and the function is idempotent. It never refuses anything: use
/// [`validate`] (or the newtypes) for identifiers that become paths.
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

/// Validates a bucket id, ball id or key and returns its sanitised form.
///
/// Before sanitising, the raw input is refused when it is empty, longer than [`MAX_ID_LEN`]
/// bytes, contains NUL or any other control character, contains `/` or `\`, or is `.` or
/// contains `..`: such input is a mistake or an attack, and silently sanitising it would
/// store the object under a name the caller did not intend. The rest goes through
/// [`sanitize`]; an empty result is refused too.
///
/// # Errors
///
/// One [`IdError`] variant per reason above, naming `kind` in its message (for example
/// "key contains a path separator").
///
/// # Examples
///
/// ```
/// use mictlanx::id::{validate, IdError, IdKind};
///
/// assert_eq!(validate(IdKind::Key, "ball.txt")?, "balltxt");
/// assert_eq!(
///     validate(IdKind::Key, "a/b"),
///     Err(IdError::PathSeparator { kind: IdKind::Key })
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn validate(kind: IdKind, raw: &str) -> Result<String, IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty { kind });
    }
    if raw.len() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            len: raw.len(),
        });
    }
    if raw.chars().any(char::is_control) {
        return Err(IdError::ControlChar { kind });
    }
    if raw.contains(['/', '\\']) {
        return Err(IdError::PathSeparator { kind });
    }
    if raw == "." || raw.contains("..") {
        return Err(IdError::DotSegment { kind });
    }
    let clean = sanitize(raw);
    if clean.is_empty() {
        return Err(IdError::EmptyAfterSanitize {
            kind,
            raw: shown(raw),
        });
    }
    Ok(clean)
}

macro_rules! id_newtype {
    ($(#[$doc:meta])* $name:ident, $kind:expr, $example:literal) => {
        $(#[$doc])*
        ///
        /// The value is validated and sanitised by [`validate`]; constructing from an already
        /// valid id gives the same id back.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("use mictlanx::id::", stringify!($name), ";")]
        ///
        #[doc = concat!("let id = ", stringify!($name), "::new(\"", $example, "\")?;")]
        #[doc = concat!("assert_eq!(id.as_str(), \"", $example, "\");")]
        #[doc = concat!("assert_eq!(", stringify!($name), "::new(id.as_str())?, id);")]
        #[doc = concat!("assert!(", stringify!($name), "::new(\"..\").is_err());")]
        /// # Ok::<(), Box<dyn std::error::Error>>(())
        /// ```
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(String);

        impl $name {
            /// Validates and sanitises `raw` (see [`validate`]).
            ///
            /// # Errors
            ///
            /// The [`IdError`] explaining why `raw` is refused.
            pub fn new(raw: &str) -> Result<Self, IdError> {
                validate($kind, raw).map(Self)
            }

            /// The sanitised id.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The sanitised id, as an owned string.
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

        impl FromStr for $name {
            type Err = IdError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;

            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::new(&s)
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

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::try_from(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

id_newtype!(
    /// A validated, sanitised bucket id.
    BucketId,
    IdKind::Bucket,
    "my-bucket"
);
id_newtype!(
    /// A validated, sanitised ball id (the name of a whole object).
    BallId,
    IdKind::Ball,
    "pic_b"
);
id_newtype!(
    /// A validated, sanitised key (the name of one stored chunk).
    Key,
    IdKind::Key,
    "report_c_0"
);

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
    fn validate_accepts_and_sanitises() {
        assert_eq!(validate(IdKind::Key, "report_c_0"), Ok("report_c_0".into()));
        assert_eq!(validate(IdKind::Ball, "ball.txt"), Ok("balltxt".into()));
        assert_eq!(
            validate(IdKind::Bucket, "My@Invalid#String!"),
            Ok("MyInvalidString".into())
        );
        assert_eq!(
            validate(IdKind::Key, &"a".repeat(MAX_ID_LEN)).map(|s| s.len()),
            Ok(255)
        );
    }

    #[test]
    fn validate_refusals() {
        use IdKind::*;
        assert_eq!(validate(Key, ""), Err(IdError::Empty { kind: Key }));
        assert_eq!(
            validate(Bucket, ".."),
            Err(IdError::DotSegment { kind: Bucket })
        );
        assert_eq!(
            validate(Bucket, "."),
            Err(IdError::DotSegment { kind: Bucket })
        );
        assert_eq!(
            validate(Ball, "a..b"),
            Err(IdError::DotSegment { kind: Ball })
        );
        assert_eq!(
            validate(Key, "a/b"),
            Err(IdError::PathSeparator { kind: Key })
        );
        assert_eq!(
            validate(Key, "a\\b"),
            Err(IdError::PathSeparator { kind: Key })
        );
        assert_eq!(
            validate(Key, "../x"),
            Err(IdError::PathSeparator { kind: Key })
        );
        assert_eq!(
            validate(Key, "a\0b"),
            Err(IdError::ControlChar { kind: Key })
        );
        assert_eq!(
            validate(Key, "a\nb"),
            Err(IdError::ControlChar { kind: Key })
        );
        assert_eq!(
            validate(Key, "a\u{7f}b"),
            Err(IdError::ControlChar { kind: Key })
        );
        assert_eq!(
            validate(Ball, &"x".repeat(10_000)),
            Err(IdError::TooLong {
                kind: Ball,
                len: 10_000
            })
        );
        assert_eq!(
            validate(Key, &"a".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong {
                kind: Key,
                len: 256
            })
        );
        assert_eq!(
            validate(Key, "___"),
            Err(IdError::EmptyAfterSanitize {
                kind: Key,
                raw: "___".into()
            })
        );
        let long_garbage = "#".repeat(200);
        assert_eq!(
            validate(Key, &long_garbage),
            Err(IdError::EmptyAfterSanitize {
                kind: Key,
                raw: "#".repeat(64)
            })
        );
    }

    #[test]
    fn error_messages_name_kind_and_reason() {
        assert_eq!(
            IdError::PathSeparator { kind: IdKind::Key }.to_string(),
            "key contains a path separator"
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
                len: 300
            }
            .to_string(),
            "ball id is 300 bytes long, the maximum is 255"
        );
        let msg = validate(IdKind::Key, "___").err().map(|e| e.to_string());
        assert_eq!(
            msg.as_deref(),
            Some("key \"___\" is empty after sanitising (only letters, digits, and single '-' or '_' between them are kept)")
        );
    }

    #[test]
    fn newtypes() {
        let b = BucketId::new("My Bucket!").unwrap();
        assert_eq!(b.as_str(), "MyBucket");
        assert_eq!(b.to_string(), "MyBucket");
        assert_eq!(BucketId::new(b.as_str()).unwrap(), b);
        let k: Key = "pic_b".parse().unwrap();
        assert_eq!(k.as_ref(), "pic_b");
        assert_eq!(k.clone().into_inner(), "pic_b");
        assert_eq!(String::from(k), "pic_b");
        assert!(BallId::try_from(String::from("a/b")).is_err());
        assert_eq!(
            "..".parse::<BallId>(),
            Err(IdError::DotSegment { kind: IdKind::Ball })
        );
        assert!(BucketId::new("a").unwrap() < BucketId::new("b").unwrap());
    }

    #[test]
    fn newtype_serde() {
        let k = Key::new("report_c_0").unwrap();
        assert_eq!(serde_json::to_string(&k).unwrap(), "\"report_c_0\"");
        let back: Key = serde_json::from_str("\"report_c_0\"").unwrap();
        assert_eq!(back, k);
        let sanitised: BucketId = serde_json::from_str("\"ball.txt\"").unwrap();
        assert_eq!(sanitised.as_str(), "balltxt");
        let err = serde_json::from_str::<BucketId>("\"a/b\"").unwrap_err();
        assert!(err
            .to_string()
            .contains("bucket id contains a path separator"));
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
        fn validate_never_panics_and_is_idempotent(s in any::<String>()) {
            if let Ok(clean) = validate(IdKind::Key, &s) {
                prop_assert_eq!(validate(IdKind::Key, &clean), Ok(clean.clone()));
                prop_assert!(!clean.contains(['/', '\\', '.']));
            }
        }

        #[test]
        fn chunk_key_round_trip(ball in "[a-zA-Z0-9][-_a-zA-Z0-9]{0,20}", i in any::<u64>()) {
            let key = chunk_key(&ball, i);
            prop_assert_eq!(split_chunk_key(&key), Some((ball.as_str(), i)));
        }
    }
}
