//! Availability policies: the who/what/where/how/when language of MictlanX ("Tlaloc",
//! later "APaC"), which tells the routers to replicate data as its access changes.
//!
//! ```text
//! tlaloc: v1
//! available-resources:
//!     pool-1:
//!         - peer-1
//!         - peer-2
//! who: pool-1.peer-1
//! what:
//!     - cubeta.red_file
//! where:
//!     - pool-1.peer-1
//!     - pool-1.peer-2
//! how: ACTIVE
//! when:
//!     - cubeta.red_file: $ACCESS_FREQUENCY >= 60.6%
//! ```
//!
//! reads: once ball `red_file` of bucket `cubeta` gets at least 60.6 % of its bucket's reads
//! (over the router's sliding window), copy every chunk of it onto `pool-1.peer-1` and
//! `pool-1.peer-2`, taking the bytes from `pool-1.peer-1` when it holds them. Peers are named
//! `pool.peer`, which is also their id in the router.
//!
//! [`parse`] reads the syntax (whitespace and newlines are insignificant, `#` starts a
//! comment); [`check`] parses and validates (declared peers, `what` items, trigger targets,
//! known variables, with "did you mean" suggestions). Every error carries its line and
//! column. [`AvailabilityPolicy`]'s `Display` prints a canonical text that parses back to
//! the same policy.
//!
//! # Examples
//!
//! ```
//! use mictlanx::policy::{check, CheckOptions, How, Variable};
//!
//! let text = "apac: v1
//! available-resources:
//!     pool-1:
//!         - peer-1
//!         - peer-2
//! who: pool-1.peer-1
//! what:
//!     - photos.cat
//! where:
//!     - pool-1.peer-2
//! how: passive
//! when:
//!     - photos.cat: $ACCESS_COUNT >= 10";
//! let checked = check(text, &CheckOptions::default())?;
//! assert_eq!(checked.policy.how, How::Passive);
//! assert_eq!(checked.policy.when[0].predicate.resolve(), Some(Variable::AccessCount));
//! // Printing and parsing again gives the same policy.
//! assert_eq!(mictlanx::policy::parse(&checked.policy.to_string())?, checked.policy);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod display;
mod error;
mod lexer;
mod parser;
mod status;
mod validate;

use std::fmt;
use std::str::FromStr;

pub use error::{PolicyError, PolicyErrorKind, PolicyErrors, Position};
pub use status::{PolicyState, PolicyStatus, TriggerEvaluation};
pub use validate::{check, CheckOptions, Checked};

/// The largest policy text accepted, in bytes (1 MiB): a policy is a page of text, and a
/// router must not parse megabytes sent by anyone.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

/// The first word of a policy: `tlaloc` (2024) or `apac` (later). Both mean the same; the
/// header is kept so that printing gives back what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Header {
    /// `tlaloc: v1`.
    #[default]
    Tlaloc,
    /// `apac: v1`.
    Apac,
}

/// How a triggered policy replicates.
///
/// # Examples
///
/// ```
/// use mictlanx::policy::How;
/// assert_eq!("active".parse::<How>(), Ok(How::Active));
/// assert_eq!(How::Passive.to_string(), "PASSIVE");
/// assert!("eager".parse::<How>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum How {
    /// Replicate every `what` ball at once when the trigger fires; the policy is `done` when
    /// every replica is written.
    #[default]
    Active,
    /// Once triggered, replicate each `what` ball in the background on its next access.
    Passive,
}

/// A word that is neither `ACTIVE` nor `PASSIVE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("expected ACTIVE or PASSIVE, found {0:?}")]
pub struct ParseHowError(pub String);

impl FromStr for How {
    type Err = ParseHowError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("active") {
            Ok(How::Active)
        } else if s.eq_ignore_ascii_case("passive") {
            Ok(How::Passive)
        } else {
            Err(ParseHowError(lexer::shorten(s)))
        }
    }
}

impl fmt::Display for How {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            How::Active => "ACTIVE",
            How::Passive => "PASSIVE",
        })
    }
}

/// A comparison of a trigger.
///
/// # Examples
///
/// ```
/// use mictlanx::policy::Operator;
/// assert!(Operator::Ge.holds(60.6, 60.6));
/// assert!(!Operator::Gt.holds(60.6, 60.6));
/// assert_eq!(Operator::Ne.to_string(), "!=");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `>`.
    Gt,
    /// `<`.
    Lt,
    /// `>=`.
    Ge,
    /// `<=`.
    Le,
    /// `==`.
    Eq,
    /// `!=`.
    Ne,
}

impl Operator {
    /// Whether `observed OP threshold` holds. `==` and `!=` compare with a tolerance of
    /// 1e-9, so a computed 50.0 % equals a written `50`.
    pub fn holds(self, observed: f64, threshold: f64) -> bool {
        const EPS: f64 = 1e-9;
        match self {
            Operator::Gt => observed > threshold,
            Operator::Lt => observed < threshold,
            Operator::Ge => observed >= threshold - EPS,
            Operator::Le => observed <= threshold + EPS,
            Operator::Eq => (observed - threshold).abs() <= EPS,
            Operator::Ne => (observed - threshold).abs() > EPS,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Operator::Gt => ">",
            Operator::Lt => "<",
            Operator::Ge => ">=",
            Operator::Le => "<=",
            Operator::Eq => "==",
            Operator::Ne => "!=",
        })
    }
}

/// A variable a trigger can test. The router measures each over its sliding window of
/// reads (`RouterConfig`'s policy window).
///
/// # Examples
///
/// ```
/// use mictlanx::policy::Variable;
/// assert_eq!(Variable::from_name("REPLICAS"), Some(Variable::Replicas));
/// assert_eq!(Variable::AccessFrequency.name(), "ACCESS_FREQUENCY");
/// assert!(Variable::AccessFrequency.is_percentage());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variable {
    /// `ACCESS_FREQUENCY`: the target's share, in %, of the reads in the window: a ball's
    /// reads over its bucket's reads, or a bucket's reads over all reads.
    AccessFrequency,
    /// `ACCESS_COUNT`: reads of the target in the window.
    AccessCount,
    /// `REPLICAS`: healthy peers known to hold the target (for a ball, the fewest holders
    /// of any of its chunks the router has seen; for a bucket, of any of its keys).
    Replicas,
}

impl Variable {
    /// Every variable, in the order of the docs.
    pub const ALL: [Variable; 3] = [
        Variable::AccessFrequency,
        Variable::AccessCount,
        Variable::Replicas,
    ];

    /// The name written after `$`.
    pub fn name(self) -> &'static str {
        match self {
            Variable::AccessFrequency => "ACCESS_FREQUENCY",
            Variable::AccessCount => "ACCESS_COUNT",
            Variable::Replicas => "REPLICAS",
        }
    }

    /// The variable called exactly `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.name() == name)
    }

    /// Whether its values are percentages (a `%` after the value is allowed).
    pub fn is_percentage(self) -> bool {
        matches!(self, Variable::AccessFrequency)
    }
}

impl fmt::Display for Variable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A pool of `available-resources` and its peers; peer `p` of pool `q` is `q.p`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pool {
    /// The pool's name.
    pub name: String,
    /// Its peers' names, as listed.
    pub peers: Vec<String>,
}

/// `$VAR OP VALUE[%]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Predicate {
    /// The variable's name as written (validation says whether it is known).
    pub variable: String,
    /// The comparison.
    pub operator: Operator,
    /// The threshold (finite, not negative).
    pub value: f64,
    /// Whether the value was written with `%`.
    pub percent: bool,
}

impl Predicate {
    /// The variable this predicate tests: the one named exactly, else the nearest known name
    /// (what a lenient check accepts, with a warning); `None` when no name is close.
    pub fn resolve(&self) -> Option<Variable> {
        Variable::from_name(&self.variable).or_else(|| {
            validate::nearest(&self.variable, Variable::ALL.map(Variable::name))
                .and_then(|n| Variable::from_name(&n))
        })
    }
}

/// `- TARGET: PREDICATE` of `when`: the trigger of a `what` item.
#[derive(Debug, Clone, PartialEq)]
pub struct Trigger {
    /// A `what` item (`bucket` or `bucket.ball`).
    pub target: String,
    /// When it fires.
    pub predicate: Predicate,
}

/// A parsed policy. Build it with [`parse`] or [`check`]; print it with `Display`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AvailabilityPolicy {
    /// `tlaloc` or `apac`.
    pub header: Header,
    /// The language version (1).
    pub version: u32,
    /// `available-resources`: the pools and their peers.
    pub resources: Vec<Pool>,
    /// `who`: the `pool.peer` that copies are taken from, when it holds the data.
    pub who: String,
    /// `what`: buckets (`bucket`) and balls (`bucket.ball`).
    pub what: Vec<String>,
    /// `where`: the `pool.peer`s that must hold a replica.
    pub where_peers: Vec<String>,
    /// `how`.
    pub how: How,
    /// `when`: one trigger per target; the policy fires when any of them holds.
    pub when: Vec<Trigger>,
}

/// A `what` item split into its parts.
///
/// # Examples
///
/// ```
/// use mictlanx::policy::WhatItem;
/// assert_eq!(WhatItem::parse("cubeta.red_file"), Some(WhatItem::Ball {
///     bucket: "cubeta".into(), ball: "red_file".into() }));
/// assert_eq!(WhatItem::parse("cubeta"), Some(WhatItem::Bucket("cubeta".into())));
/// // The first `.` ends the bucket: ball ids may hold dots.
/// assert_eq!(WhatItem::parse("cubeta.img1.jpg"), Some(WhatItem::Ball {
///     bucket: "cubeta".into(), ball: "img1.jpg".into() }));
/// assert_eq!(WhatItem::parse("a/b"), None);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WhatItem {
    /// Every ball of a bucket.
    Bucket(String),
    /// One ball.
    Ball {
        /// Its bucket.
        bucket: String,
        /// The ball id.
        ball: String,
    },
}

impl WhatItem {
    /// `bucket` or `bucket.ball`, each part a valid identifier that sanitising leaves as
    /// it is; `None` otherwise.
    pub fn parse(item: &str) -> Option<Self> {
        use crate::id::{validate, IdKind};
        let same = |kind, s: &str| validate(kind, s).ok().is_some_and(|v| v == s);
        match item.split_once('.') {
            None => same(IdKind::Bucket, item).then(|| WhatItem::Bucket(item.to_string())),
            Some((bucket, ball)) => (same(IdKind::Bucket, bucket) && same(IdKind::Ball, ball))
                .then(|| WhatItem::Ball {
                    bucket: bucket.to_string(),
                    ball: ball.to_string(),
                }),
        }
    }

    /// The bucket.
    pub fn bucket(&self) -> &str {
        match self {
            WhatItem::Bucket(b) => b,
            WhatItem::Ball { bucket, .. } => bucket,
        }
    }
}

impl AvailabilityPolicy {
    /// Every declared peer as `pool.peer`, in declaration order.
    ///
    /// # Examples
    ///
    /// ```
    /// let p = mictlanx::policy::parse("apac: v1 available-resources: p: - a - b who: p.a what: - x where: - p.b how: ACTIVE when: - x: $ACCESS_COUNT > 1")?;
    /// assert_eq!(p.declared_peers(), vec!["p.a", "p.b"]);
    /// # Ok::<(), mictlanx::policy::PolicyError>(())
    /// ```
    pub fn declared_peers(&self) -> Vec<String> {
        self.resources
            .iter()
            .flat_map(|pool| pool.peers.iter().map(move |p| format!("{}.{p}", pool.name)))
            .collect()
    }

    /// The `what` items that are well formed, split into their parts.
    pub fn what_items(&self) -> Vec<WhatItem> {
        self.what
            .iter()
            .filter_map(|w| WhatItem::parse(w))
            .collect()
    }
}

impl FromStr for AvailabilityPolicy {
    type Err = PolicyError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// Parses a policy's syntax (no validation: see [`check`]).
///
/// # Errors
///
/// The first [`PolicyError`], with its line and column.
///
/// # Examples
///
/// ```
/// let policy = mictlanx::policy::parse(
///     "tlaloc: v1 available-resources: pool-1: - peer-1 who: pool-1.peer-1
///      what: - cubeta.red_file where: - pool-1.peer-1 how: ACTIVE
///      when: -cubeta.red_file:$ACCESS_FREQUENCY>=60.6%",
/// )?;
/// assert_eq!(policy.when[0].predicate.value, 60.6);
/// assert!(policy.when[0].predicate.percent);
/// # Ok::<(), mictlanx::policy::PolicyError>(())
/// ```
pub fn parse(text: &str) -> Result<AvailabilityPolicy, PolicyError> {
    parser::parse_with_map(text).map(|(policy, _)| policy)
}

#[cfg(test)]
mod tests;

/// `docs/policies.md`, compiled as a doctest so its example stays true.
#[cfg(doctest)]
#[doc = include_str!("../../docs/policies.md")]
struct PoliciesGuide;
