//! Whether the store is full or degraded, for `/health` and `/metrics`.
//!
//! *Full*: a put was refused for want of space (507) and the free space has not grown back
//! to what it needed, or nothing at all is free. *Degraded*: the metadata database failed
//! with an I/O error (and was reopened) within the last `degraded_hold`, or it could not be
//! reopened yet. Both are normal states of a peer, not failures: deletes and reads go on.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use super::epoch_ms;

/// What `/health` reports about the disk and the metadata database.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DiskCondition {
    /// No room for new puts.
    pub full: bool,
    /// The metadata database failed recently (or is not reopened yet).
    pub degraded: bool,
    /// Bytes a new put may still use.
    pub free_bytes: u64,
    /// Metadata I/O errors seen since the store opened.
    pub db_errors: u64,
    /// Times the metadata database was reopened after an I/O error.
    pub db_reopens: u64,
}

impl DiskCondition {
    /// `"degraded"`, `"full"` or `"ok"`, in that order of precedence.
    pub fn state(&self) -> &'static str {
        if self.degraded {
            "degraded"
        } else if self.full {
            "full"
        } else {
            "ok"
        }
    }
}

/// The counters behind [`DiskCondition`].
#[derive(Debug, Default)]
pub(crate) struct Condition {
    /// Full while the free space is below this (0: not full).
    full_below: AtomicU64,
    last_db_error_ms: AtomicU64,
    db_errors: AtomicU64,
    reopens: AtomicU64,
    /// The database could not be reopened: every call fails until it is.
    broken: AtomicBool,
    /// ... because the disk is full.
    broken_no_space: AtomicBool,
    /// When the last reopen was tried (ms since the epoch).
    last_reopen_ms: AtomicU64,
}

impl Condition {
    /// A put needing `needs` bytes was refused with `free` free.
    pub(crate) fn refused(&self, needs: u64, free: u64) {
        let below = needs.max(free.saturating_add(1));
        self.full_below.fetch_max(below, Ordering::AcqRel);
    }

    pub(crate) fn db_error(&self) {
        self.db_errors.fetch_add(1, Ordering::Relaxed);
        self.last_db_error_ms
            .store(epoch_ms(SystemTime::now()).max(1), Ordering::Release);
    }

    /// A reopen ended: `ok`, or failed (for want of space when `no_space`).
    pub(crate) fn reopened(&self, ok: bool, no_space: bool) {
        if ok {
            self.reopens.fetch_add(1, Ordering::Relaxed);
        }
        self.broken_no_space
            .store(!ok && no_space, Ordering::Release);
        self.broken.store(!ok, Ordering::Release);
        self.last_reopen_ms
            .store(epoch_ms(SystemTime::now()), Ordering::Release);
    }

    /// Whether the last reopen was tried less than `pause` ago (reopening repairs the
    /// database file, which is too costly to try at every request).
    pub(crate) fn reopened_within(&self, pause: Duration) -> bool {
        let last = self.last_reopen_ms.load(Ordering::Acquire);
        let pause_ms = u64::try_from(pause.as_millis()).unwrap_or(u64::MAX);
        epoch_ms(SystemTime::now()).saturating_sub(last) < pause_ms
    }

    /// Whether the last failed reopen failed for want of space.
    pub(crate) fn broken_for_space(&self) -> bool {
        self.broken_no_space.load(Ordering::Acquire)
    }

    /// The database could not be reopened: the stand-in is in place.
    pub(crate) fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Acquire)
    }

    pub(crate) fn snapshot(&self, free: u64, hold: Duration) -> DiskCondition {
        let below = self.full_below.load(Ordering::Acquire);
        if below > 0 && free >= below {
            // Space came back (deletes): a put of the refused size fits again.
            let _ = self
                .full_below
                .compare_exchange(below, 0, Ordering::AcqRel, Ordering::Relaxed);
        }
        let last = self.last_db_error_ms.load(Ordering::Acquire);
        let hold_ms = u64::try_from(hold.as_millis()).unwrap_or(u64::MAX);
        let recent = last > 0 && epoch_ms(SystemTime::now()).saturating_sub(last) < hold_ms;
        DiskCondition {
            full: free == 0 || free < below,
            degraded: recent || self.broken.load(Ordering::Acquire),
            free_bytes: free,
            db_errors: self.db_errors.load(Ordering::Relaxed),
            db_reopens: self.reopens.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_until_the_refused_size_fits_and_degraded_for_the_hold() {
        let c = Condition::default();
        let hold = Duration::from_millis(50);
        assert_eq!(c.snapshot(100, hold).state(), "ok");
        c.refused(300, 100);
        assert_eq!(c.snapshot(200, hold).state(), "full");
        assert_eq!(c.snapshot(300, hold).state(), "ok");
        // Once space came back, less free space is not "full" by itself.
        assert_eq!(c.snapshot(200, hold).state(), "ok");
        assert!(c.snapshot(0, hold).full);
        c.db_error();
        let s = c.snapshot(500, hold);
        assert_eq!((s.state(), s.db_errors), ("degraded", 1));
        std::thread::sleep(Duration::from_millis(80));
        assert_eq!(c.snapshot(500, hold).state(), "ok");
        c.reopened(false, true);
        assert!(c.snapshot(500, hold).degraded && c.broken_for_space());
        assert!(c.reopened_within(Duration::from_secs(5)));
        c.reopened(true, false);
        let s = c.snapshot(500, hold);
        assert_eq!((s.degraded, s.db_reopens), (false, 1));
    }
}
