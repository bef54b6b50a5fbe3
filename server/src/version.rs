//! Versions of keys: a hybrid logical clock stamp plus the writer's tag, totally ordered.
//!
//! Every write of a key (a put, a metadata update, a delete) carries a [`Version`]; a peer
//! keeps the newest one it has seen of each key (a deletion is kept too, as a tombstone), so
//! merging replicas is a function of their versions (last writer wins, as garage's `Lww`
//! and Cassandra's cells): a replica that missed writes cannot bring an older version or a
//! deleted ball back. See `docs/consistency.md`.
//!
//! The stamp is a hybrid logical clock (Kulkarni et al., 2014): the wall clock in
//! milliseconds in the high 48 bits and a counter in the low 16, never going backwards and
//! always above every stamp the clock has [observed](Hlc::observe). The writer's tag breaks
//! ties between two clocks that stamp the same instant, so two versions are never equal
//! unless they are the same write.
//!
//! On the wire a version is the header `X-Mictlanx-Version: <stamp>.<tag>` (two decimal
//! integers), sent by routers with every write to a peer and returned by peers with every
//! read; clients that send none (the Python client talking to a peer directly) get one from
//! the peer's own clock.
//!
//! # Examples
//!
//! ```
//! use mictlanx_server::version::{Hlc, Version};
//!
//! let clock = Hlc::new("router-0");
//! let a = clock.now();
//! let b = clock.now();
//! assert!(b > a);
//! let parsed: Version = a.to_string().parse()?;
//! assert_eq!(parsed, a);
//! # Ok::<(), mictlanx_server::version::VersionParseError>(())
//! ```

use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

/// Request and response header carrying a [`Version`].
pub const VERSION_HEADER: HeaderName = HeaderName::from_static("x-mictlanx-version");

/// Request header of a put-metadata to a peer, and response header of a peer's read: the
/// replicas the key's writer asked for (repair restores that many).
pub const REPLICATION_HEADER: HeaderName = HeaderName::from_static("x-mictlanx-replication-factor");

/// Response header of a peer's 404 for a key it holds a tombstone of (`1`); the tombstone's
/// version is in [`VERSION_HEADER`].
pub const TOMBSTONE_HEADER: HeaderName = HeaderName::from_static("x-mictlanx-tombstone");

/// A 404 that says the key was deleted at `version` ([`TOMBSTONE_HEADER`] and
/// [`VERSION_HEADER`]).
pub fn tombstone_answer(e: crate::error::ApiError, version: Version) -> crate::error::ApiError {
    e.with_header(TOMBSTONE_HEADER, HeaderValue::from_static("1"))
        .with_header(VERSION_HEADER, version.header_value())
}

/// Bits of the stamp that hold the counter.
const COUNTER_BITS: u32 = 16;

/// The version of one write of a key. Ordered by stamp, then by writer tag.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Version {
    /// Hybrid logical clock stamp: milliseconds since the Unix epoch `<< 16`, plus a counter.
    pub stamp: u64,
    /// Tag of the writer's clock (a hash of its id), the tie-breaker.
    pub tag: u32,
}

impl Version {
    /// The version of records written before versions existed: older than any other.
    pub const ZERO: Version = Version { stamp: 0, tag: 0 };

    /// Milliseconds since the Unix epoch at which the version was stamped.
    pub fn millis(self) -> u64 {
        self.stamp >> COUNTER_BITS
    }

    /// The version in `headers` ([`VERSION_HEADER`]), if present and well formed.
    pub fn from_headers(headers: &HeaderMap) -> Option<Version> {
        headers
            .get(VERSION_HEADER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    }

    /// The version as a header value.
    pub fn header_value(self) -> HeaderValue {
        HeaderValue::from_str(&self.to_string()).expect("two integers and a dot are a valid header")
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.stamp, self.tag)
    }
}

/// A version that is not `<stamp>.<tag>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a version (expected <stamp>.<tag>): {0:?}")]
pub struct VersionParseError(String);

impl FromStr for Version {
    type Err = VersionParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || VersionParseError(s.chars().take(64).collect());
        let (stamp, tag) = s.trim().split_once('.').ok_or_else(bad)?;
        Ok(Version {
            stamp: stamp.parse().map_err(|_| bad())?,
            tag: tag.parse().map_err(|_| bad())?,
        })
    }
}

/// A hybrid logical clock: stamps that never go backwards, above every stamp observed.
#[derive(Debug)]
pub struct Hlc {
    last: AtomicU64,
    tag: u32,
}

impl Hlc {
    /// A clock for the writer `id` (its tag is a hash of the id).
    pub fn new(id: &str) -> Self {
        Self {
            last: AtomicU64::new(0),
            tag: tag_of(id),
        }
    }

    /// A fresh version, greater than every version this clock made or observed.
    pub fn now(&self) -> Version {
        self.now_at(wall_millis())
    }

    fn now_at(&self, wall_ms: u64) -> Version {
        let physical = wall_ms << COUNTER_BITS;
        let mut last = self.last.load(Ordering::Relaxed);
        loop {
            let next = physical.max(last.saturating_add(1));
            match self
                .last
                .compare_exchange_weak(last, next, Ordering::AcqRel, Ordering::Relaxed)
            {
                Ok(_) => {
                    return Version {
                        stamp: next,
                        tag: self.tag,
                    }
                }
                Err(current) => last = current,
            }
        }
    }

    /// Moves the clock past `seen`, so the next [`now`](Self::now) is newer than it (a
    /// writer whose wall clock lags still overwrites what it has seen).
    pub fn observe(&self, seen: Version) {
        self.last.fetch_max(seen.stamp, Ordering::AcqRel);
    }
}

fn wall_millis() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX >> COUNTER_BITS))
        .unwrap_or(0)
}

/// FNV-1a of the id: stable across processes and releases (not `DefaultHasher`, whose
/// output may change between Rust versions).
fn tag_of(id: &str) -> u32 {
    let mut hash: u32 = 0x811c_9dc5;
    for b in id.bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_monotonic_even_when_the_wall_clock_goes_back() {
        let clock = Hlc::new("r");
        let a = clock.now_at(1_000);
        let b = clock.now_at(1_000);
        let c = clock.now_at(500);
        assert!(a < b && b < c, "{a} {b} {c}");
        assert_eq!(a.millis(), 1_000);
        let d = clock.now_at(2_000);
        assert_eq!(d.millis(), 2_000);
        assert!(d > c);
    }

    #[test]
    fn observing_a_newer_version_moves_the_clock_past_it() {
        let ahead = Hlc::new("ahead");
        let behind = Hlc::new("behind");
        let seen = ahead.now_at(10_000);
        behind.observe(seen);
        let next = behind.now_at(1_000);
        assert!(next > seen, "{next} must follow {seen}");
        // Observing an older version changes nothing.
        behind.observe(Version::ZERO);
        assert!(behind.now_at(1_000) > next);
    }

    #[test]
    fn ties_are_broken_by_the_writer_and_the_text_round_trips() {
        let a = Hlc::new("router-a").now_at(5);
        let b = Hlc::new("router-b").now_at(5);
        assert_eq!(a.stamp, b.stamp);
        assert_ne!(a, b);
        assert_eq!(a.cmp(&b), a.tag.cmp(&b.tag));
        for v in [a, b, Version::ZERO] {
            assert_eq!(v.to_string().parse::<Version>().unwrap(), v);
        }
        for bad in [
            "",
            "1",
            "1.",
            ".2",
            "a.b",
            "1.2.3",
            "-1.2",
            "99999999999999999999.1",
        ] {
            assert!(bad.parse::<Version>().is_err(), "{bad:?}");
        }
        let mut h = HeaderMap::new();
        assert_eq!(Version::from_headers(&h), None);
        h.insert(VERSION_HEADER, a.header_value());
        assert_eq!(Version::from_headers(&h), Some(a));
        h.insert(VERSION_HEADER, HeaderValue::from_static("junk"));
        assert_eq!(Version::from_headers(&h), None);
    }
}
