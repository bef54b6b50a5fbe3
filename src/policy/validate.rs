//! Validation: what a well-formed policy must also satisfy, with "did you mean" suggestions.

use std::collections::{BTreeSet, HashSet};

use super::error::{PolicyError, PolicyErrorKind, PolicyErrors, Position};
use super::lexer::shorten;
use super::parser::{parse_with_map, SourceMap};
use super::{AvailabilityPolicy, Variable, WhatItem};

/// At most this many errors are reported: enough to fix a policy, and a hostile one cannot
/// make a huge answer.
const MAX_ERRORS: usize = 100;

/// Suggestions are looked for only among this many candidates, for names this short: the
/// edit distance is quadratic, and a typo of a long generated name needs no help.
const MAX_CANDIDATES: usize = 1000;
const MAX_SUGGEST_LEN: usize = 64;

/// How strictly [`check`] judges a policy.
///
/// # Examples
///
/// ```
/// use mictlanx::policy::CheckOptions;
/// let router = CheckOptions::default().lenient(true).with_known_peers(["pool-1.peer-1"]);
/// assert!(router.lenient);
/// ```
#[derive(Debug, Clone, Default)]
#[must_use]
pub struct CheckOptions {
    /// Accept an unknown variable that is close to a known one (read as that one), and a
    /// `%` on a count; both become warnings instead of errors.
    pub lenient: bool,
    /// When set, every declared peer must be one of these (a router that cannot start
    /// peers passes the ids it knows).
    pub known_peers: Option<BTreeSet<String>>,
}

impl CheckOptions {
    /// Sets [`lenient`](Self::lenient).
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    /// Sets [`known_peers`](Self::known_peers).
    pub fn with_known_peers<I, S>(mut self, peers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.known_peers = Some(peers.into_iter().map(Into::into).collect());
        self
    }
}

/// A policy that passed [`check`], and what a lenient check let through.
#[derive(Debug, Clone, PartialEq)]
pub struct Checked {
    /// The policy.
    pub policy: AvailabilityPolicy,
    /// Problems accepted because the check was lenient.
    pub warnings: Vec<PolicyError>,
}

/// Parses and validates a policy.
///
/// Checks that `who` and every `where` item are declared `pool.peer`s, that pools, peers,
/// `what` and `where` items are not repeated, that `what` items are `bucket` or
/// `bucket.ball`, that each `when` target is a `what` item with one trigger, and that
/// variables are known (`%` only on percentages). Names that are close to a valid one come
/// with a suggestion.
///
/// # Errors
///
/// [`PolicyErrors`]: the syntax error, or every validation error, each with line and column.
///
/// # Examples
///
/// ```
/// use mictlanx::policy::{check, CheckOptions};
/// let text = "tlaloc: v1 available-resources: p: - a who: p.a what: - b.k where: - p.a
///             how: ACTIVE when: - b.k: $ACCESS_FREQUENNCY >= 50%";
/// let err = check(text, &CheckOptions::default()).unwrap_err();
/// assert!(err.to_string().contains("did you mean ACCESS_FREQUENCY?"));
/// let ok = check(text, &CheckOptions::default().lenient(true))?;
/// assert_eq!(ok.warnings.len(), 1);
/// # Ok::<(), mictlanx::policy::PolicyErrors>(())
/// ```
pub fn check(text: &str, options: &CheckOptions) -> Result<Checked, PolicyErrors> {
    let (policy, map) = parse_with_map(text)?;
    let warnings = validate_with(&policy, &map, options)?;
    Ok(Checked { policy, warnings })
}

impl AvailabilityPolicy {
    /// Validates a policy built in code, as [`check`] would its text. Positions refer to
    /// the policy's canonical text (its `Display`).
    ///
    /// # Errors
    ///
    /// As [`check`].
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::policy::{parse, CheckOptions};
    /// let mut p = parse("apac: v1 available-resources: p: - a who: p.a what: - b where: - p.a how: ACTIVE when: - b: $REPLICAS < 2")?;
    /// assert!(p.validate(&CheckOptions::default()).is_ok());
    /// p.who = "p.z".into();
    /// assert!(p.validate(&CheckOptions::default()).is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn validate(&self, options: &CheckOptions) -> Result<Vec<PolicyError>, PolicyErrors> {
        let text = self.to_string();
        let (reparsed, map) = parse_with_map(&text)?;
        validate_with(&reparsed, &map, options)
    }
}

/// Collects errors up to [`MAX_ERRORS`].
struct Report {
    errors: Vec<PolicyError>,
    warnings: Vec<PolicyError>,
    lenient: bool,
}

impl Report {
    fn error(&mut self, pos: Position, kind: PolicyErrorKind) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(PolicyError::new(pos, kind));
        }
    }

    /// An error, or a warning when the check is lenient.
    fn lenient_error(&mut self, pos: Position, kind: PolicyErrorKind) {
        if self.lenient {
            if self.warnings.len() < MAX_ERRORS {
                self.warnings.push(PolicyError::new(pos, kind));
            }
        } else {
            self.error(pos, kind);
        }
    }
}

fn at(positions: &[Position], i: usize) -> Position {
    positions.get(i).copied().unwrap_or_default()
}

pub(crate) fn validate_with(
    policy: &AvailabilityPolicy,
    map: &SourceMap,
    options: &CheckOptions,
) -> Result<Vec<PolicyError>, PolicyErrors> {
    let mut r = Report {
        errors: Vec::new(),
        warnings: Vec::new(),
        lenient: options.lenient,
    };

    // Pools and their peers.
    let mut pools = HashSet::new();
    let mut declared: Vec<String> = Vec::new();
    let mut declared_set = HashSet::new();
    for (i, pool) in policy.resources.iter().enumerate() {
        if !pools.insert(pool.name.as_str()) {
            r.error(
                at(&map.pools, i),
                PolicyErrorKind::DuplicatePool(shorten(&pool.name)),
            );
        }
        let peer_positions = map.pool_peers.get(i).map(Vec::as_slice).unwrap_or(&[]);
        for (j, peer) in pool.peers.iter().enumerate() {
            let id = format!("{}.{peer}", pool.name);
            let pos = at(peer_positions, j);
            if !declared_set.insert(id.clone()) {
                r.error(pos, PolicyErrorKind::DuplicatePeer(shorten(&id)));
                continue;
            }
            if let Some(known) = &options.known_peers {
                if !known.contains(&id) {
                    r.error(pos, PolicyErrorKind::UnknownPeer(shorten(&id)));
                }
            }
            declared.push(id);
        }
    }
    let undeclared = |name: &str| PolicyErrorKind::UndeclaredPeer {
        name: shorten(name),
        suggestion: nearest(name, declared.iter().map(String::as_str)),
    };

    // who and where.
    if !declared_set.contains(&policy.who) {
        r.error(map.who, undeclared(&policy.who));
    }
    let mut seen = HashSet::new();
    for (i, peer) in policy.where_peers.iter().enumerate() {
        let pos = at(&map.where_peers, i);
        if !seen.insert(peer.as_str()) {
            r.error(pos, PolicyErrorKind::DuplicatePeer(shorten(peer)));
        } else if !declared_set.contains(peer) {
            r.error(pos, undeclared(peer));
        }
    }

    // what.
    let mut what = HashSet::new();
    for (i, item) in policy.what.iter().enumerate() {
        let pos = at(&map.what, i);
        if WhatItem::parse(item).is_none() {
            r.error(pos, PolicyErrorKind::BadWhat(shorten(item)));
        } else if !what.insert(item.as_str()) {
            r.error(pos, PolicyErrorKind::DuplicateWhat(shorten(item)));
        }
    }

    // when.
    let mut targets = HashSet::new();
    for (i, trigger) in policy.when.iter().enumerate() {
        let pos = map.when.get(i).copied().unwrap_or_default();
        if !what.contains(trigger.target.as_str()) {
            r.error(
                pos.target,
                PolicyErrorKind::UnknownTarget {
                    target: shorten(&trigger.target),
                    suggestion: nearest(&trigger.target, policy.what.iter().map(String::as_str)),
                },
            );
        } else if !targets.insert(trigger.target.as_str()) {
            r.error(
                pos.target,
                PolicyErrorKind::DuplicateTrigger(shorten(&trigger.target)),
            );
        }
        let p = &trigger.predicate;
        let exact = Variable::from_name(&p.variable);
        let variable = match exact {
            Some(v) => Some(v),
            None => {
                let suggestion = nearest(&p.variable, Variable::ALL.map(Variable::name));
                let kind = PolicyErrorKind::UnknownVariable {
                    name: shorten(&p.variable),
                    suggestion: suggestion.clone(),
                };
                if suggestion.is_some() {
                    r.lenient_error(pos.variable, kind);
                } else {
                    // Nothing to read it as, lenient or not.
                    r.error(pos.variable, kind);
                }
                suggestion.and_then(|s| Variable::from_name(&s))
            }
        };
        if let Some(v) = variable {
            if p.percent && !v.is_percentage() {
                r.lenient_error(
                    pos.value,
                    PolicyErrorKind::PercentNotAllowed(v.name().into()),
                );
            }
        }
    }

    if r.errors.is_empty() {
        Ok(r.warnings)
    } else {
        r.errors.sort_by_key(|e| e.position);
        Err(PolicyErrors(r.errors))
    }
}

/// Levenshtein distance of two short strings, in characters.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = if ca == *cb {
                diagonal
            } else {
                1 + diagonal.min(above).min(row[j])
            };
            diagonal = above;
        }
    }
    row[b.len()]
}

/// The candidate nearest to `word`, if it is close: within a quarter of the word's length
/// (at least 2 edits). Ties go to the first candidate.
pub(crate) fn nearest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<String> {
    let len = word.chars().count();
    if len == 0 || len > MAX_SUGGEST_LEN {
        return None;
    }
    let limit = (len / 4).max(2);
    let mut best: Option<(usize, &str)> = None;
    for candidate in candidates.into_iter().take(MAX_CANDIDATES) {
        let clen = candidate.chars().count();
        if candidate == word || clen > MAX_SUGGEST_LEN || clen.abs_diff(len) > limit {
            continue;
        }
        let d = edit_distance(word, candidate);
        if d <= limit && best.map_or(true, |(bd, _)| d < bd) {
            best = Some((d, candidate));
        }
    }
    best.map(|(_, c)| c.to_string())
}
