//! Errors of the policy language: every one carries the line and column it refers to.

use std::fmt;

/// A place in a policy's text: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// Line, from 1.
    pub line: u32,
    /// Column, from 1, in characters.
    pub column: u32,
}

impl Position {
    /// The position at `line`, `column`.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = mictlanx::policy::Position::new(3, 7);
    /// assert_eq!(p.to_string(), "3:7");
    /// ```
    pub fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What is wrong with a policy. Syntax errors come from [`parse`](super::parse), the others
/// from validation ([`check`](super::check)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyErrorKind {
    /// The text is longer than [`MAX_POLICY_BYTES`](super::MAX_POLICY_BYTES).
    TooLarge {
        /// Its length in bytes.
        bytes: usize,
    },
    /// A character that starts no token.
    UnexpectedChar(char),
    /// A token other than the grammar allows here.
    UnexpectedToken {
        /// What the grammar allows.
        expected: String,
        /// What was found.
        found: String,
    },
    /// The text ends where the grammar needs more.
    UnexpectedEnd {
        /// What the grammar needs.
        expected: String,
    },
    /// A version that is not `v` followed by digits.
    BadVersion(String),
    /// A well-formed version this implementation does not speak.
    UnsupportedVersion(u32),
    /// A value that is not `DIGITS[.DIGITS]`, or too large to be a finite number.
    BadNumber(String),
    /// A `how` other than `ACTIVE` or `PASSIVE`.
    UnknownHow {
        /// What was written.
        found: String,
        /// The nearest mode, if close.
        suggestion: Option<String>,
    },
    /// A pool declared twice in `available-resources`.
    DuplicatePool(String),
    /// A `pool.peer` declared twice (or listed twice in `where`).
    DuplicatePeer(String),
    /// `who` or a `where` item names a peer not declared in `available-resources`.
    UndeclaredPeer {
        /// The name.
        name: String,
        /// The nearest declared `pool.peer`, if close.
        suggestion: Option<String>,
    },
    /// A declared peer the router does not know and cannot start.
    UnknownPeer(String),
    /// A `what` item that is not `bucket` or `bucket.ball`.
    BadWhat(String),
    /// A `what` item listed twice.
    DuplicateWhat(String),
    /// A `when` label that is not one of the `what` items.
    UnknownTarget {
        /// The label.
        target: String,
        /// The nearest `what` item, if close.
        suggestion: Option<String>,
    },
    /// Two triggers for the same target.
    DuplicateTrigger(String),
    /// A variable this implementation does not know.
    UnknownVariable {
        /// The name as written.
        name: String,
        /// The nearest known variable, if close.
        suggestion: Option<String>,
    },
    /// A `%` on a variable that is not a percentage.
    PercentNotAllowed(String),
}

fn did_you_mean(f: &mut fmt::Formatter<'_>, suggestion: &Option<String>) -> fmt::Result {
    match suggestion {
        Some(s) => write!(f, " (did you mean {s}?)"),
        None => Ok(()),
    }
}

impl fmt::Display for PolicyErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PolicyErrorKind as K;
        match self {
            K::TooLarge { bytes } => write!(
                f,
                "the policy is {bytes} bytes; at most {} are accepted",
                super::MAX_POLICY_BYTES
            ),
            K::UnexpectedChar(c) => write!(f, "unexpected character {c:?}"),
            K::UnexpectedToken { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            K::UnexpectedEnd { expected } => {
                write!(f, "expected {expected}, found the end of the policy")
            }
            K::BadVersion(v) => write!(f, "invalid version {v:?} (expected v1)"),
            K::UnsupportedVersion(v) => write!(f, "unsupported version v{v} (expected v1)"),
            K::BadNumber(n) => write!(
                f,
                "invalid value {n:?} (expected a finite number such as 50 or 60.6)"
            ),
            K::UnknownHow { found, suggestion } => {
                write!(f, "unknown how {found:?}: expected ACTIVE or PASSIVE")?;
                did_you_mean(f, suggestion)
            }
            K::DuplicatePool(p) => write!(f, "pool {p} is declared twice"),
            K::DuplicatePeer(p) => write!(f, "peer {p} is listed twice"),
            K::UndeclaredPeer { name, suggestion } => {
                write!(f, "peer {name} is not declared in available-resources")?;
                did_you_mean(f, suggestion)
            }
            K::UnknownPeer(p) => write!(
                f,
                "peer {p} is not known to the router (and this router cannot start peers)"
            ),
            K::BadWhat(w) => write!(
                f,
                "invalid what item {w:?} (expected bucket or bucket.ball)"
            ),
            K::DuplicateWhat(w) => write!(f, "what item {w} is listed twice"),
            K::UnknownTarget { target, suggestion } => {
                write!(f, "when target {target} is not one of the what items")?;
                did_you_mean(f, suggestion)
            }
            K::DuplicateTrigger(t) => write!(f, "{t} has more than one trigger"),
            K::UnknownVariable { name, suggestion } => {
                write!(f, "unknown variable ${name}")?;
                did_you_mean(f, suggestion)
            }
            K::PercentNotAllowed(v) => write!(f, "${v} is not a percentage; drop the %"),
        }
    }
}

/// One error (or, from a lenient check, one warning) with its place in the text.
///
/// Displayed as `LINE:COLUMN: message`; the CLI prefixes the file name.
///
/// # Examples
///
/// ```
/// let err = mictlanx::policy::parse("tlaloc: v1\nwho: x").unwrap_err();
/// assert_eq!(err.position.line, 2);
/// assert!(err.to_string().starts_with("2:1: expected available-resources"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError {
    /// Where.
    pub position: Position,
    /// What.
    pub kind: PolicyErrorKind,
}

impl PolicyError {
    pub(crate) fn new(position: Position, kind: PolicyErrorKind) -> Self {
        Self { position, kind }
    }
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.position, self.kind)
    }
}

impl std::error::Error for PolicyError {}

/// Every error of a policy that failed validation, in the order of the text.
///
/// # Examples
///
/// ```
/// use mictlanx::policy::{check, CheckOptions};
/// let text = "apac: v1 available-resources: p: - a who: p.b what: - b where: - p.c how: ACTIVE when: - b: $ACCESS_COUNT > 1";
/// let errors = check(text, &CheckOptions::default()).unwrap_err();
/// assert_eq!(errors.len(), 2); // p.b and p.c are not declared
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<PolicyError>);

impl PolicyErrors {
    /// Number of errors.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none (never, for an error returned by [`check`](super::check)).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The errors.
    pub fn iter(&self) -> std::slice::Iter<'_, PolicyError> {
        self.0.iter()
    }
}

impl From<PolicyError> for PolicyErrors {
    fn from(e: PolicyError) -> Self {
        Self(vec![e])
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}
