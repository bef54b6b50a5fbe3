//! Capacity accounting: committed bytes, bytes reserved by pending uploads, and counts.
//!
//! The counters are atomics so that readers (`/stats`, `/metrics`) never wait for a writer.
//! They change only inside the store's write section (see `Store::write`), which runs after
//! the database commit, so their values always follow a committed state.

use std::sync::atomic::{AtomicU64, Ordering};

/// A consistent-enough view of the store's usage, for stats and capacity checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct UsageSnapshot {
    /// Bytes the store may hold.
    pub capacity: u64,
    /// Sum of the sizes of committed objects.
    pub committed_bytes: u64,
    /// Sum of the declared sizes of pending uploads.
    pub reserved_bytes: u64,
    /// Number of committed objects.
    pub objects: u64,
    /// Number of pending uploads.
    pub pending_uploads: u64,
}

impl UsageSnapshot {
    /// Bytes in use: committed plus reserved.
    pub fn used(&self) -> u64 {
        self.committed_bytes.saturating_add(self.reserved_bytes)
    }

    /// Bytes still free.
    pub fn free(&self) -> u64 {
        self.capacity.saturating_sub(self.used())
    }

    /// Utilisation factor `used / capacity` (0 when the capacity is 0).
    pub fn utilisation(&self) -> f64 {
        if self.capacity == 0 {
            0.0
        } else {
            self.used() as f64 / self.capacity as f64
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct Usage {
    committed_bytes: AtomicU64,
    reserved_bytes: AtomicU64,
    objects: AtomicU64,
    pending: AtomicU64,
}

impl Usage {
    pub(crate) fn snapshot(&self, capacity: u64) -> UsageSnapshot {
        UsageSnapshot {
            capacity,
            committed_bytes: self.committed_bytes.load(Ordering::Acquire),
            reserved_bytes: self.reserved_bytes.load(Ordering::Acquire),
            objects: self.objects.load(Ordering::Acquire),
            pending_uploads: self.pending.load(Ordering::Acquire),
        }
    }

    /// Applies a delta. Only called with the write batcher's lock held (see `batch`), so a
    /// load followed by a store cannot race another writer.
    pub(crate) fn apply(&self, d: &UsageDelta) {
        let upd = |a: &AtomicU64, add: u64, sub: u64| {
            let v = a
                .load(Ordering::Acquire)
                .saturating_add(add)
                .saturating_sub(sub);
            a.store(v, Ordering::Release);
        };
        upd(&self.committed_bytes, d.committed_add, d.committed_sub);
        upd(&self.reserved_bytes, d.reserved_add, d.reserved_sub);
        upd(&self.objects, d.objects_add, d.objects_sub);
        upd(&self.pending, d.pending_add, d.pending_sub);
    }

    /// Sets the counters from a full recount (at open).
    pub(crate) fn reset(&self, s: UsageSnapshot) {
        self.committed_bytes
            .store(s.committed_bytes, Ordering::Release);
        self.reserved_bytes
            .store(s.reserved_bytes, Ordering::Release);
        self.objects.store(s.objects, Ordering::Release);
        self.pending.store(s.pending_uploads, Ordering::Release);
    }
}

/// The change one write transaction makes to the counters, applied after it commits.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct UsageDelta {
    committed_add: u64,
    committed_sub: u64,
    reserved_add: u64,
    reserved_sub: u64,
    objects_add: u64,
    objects_sub: u64,
    pending_add: u64,
    pending_sub: u64,
}

impl UsageDelta {
    pub(crate) fn add_object(&mut self, size: u64) {
        self.committed_add = self.committed_add.saturating_add(size);
        self.objects_add += 1;
    }

    pub(crate) fn remove_object(&mut self, size: u64) {
        self.committed_sub = self.committed_sub.saturating_add(size);
        self.objects_sub += 1;
    }

    pub(crate) fn add_pending(&mut self, size: u64) {
        self.reserved_add = self.reserved_add.saturating_add(size);
        self.pending_add += 1;
    }

    pub(crate) fn remove_pending(&mut self, size: u64) {
        self.reserved_sub = self.reserved_sub.saturating_add(size);
        self.pending_sub += 1;
    }

    /// Bytes this delta releases from the reservation (used by capacity checks that replace
    /// a pending upload in the same transaction).
    pub(crate) fn reserved_released(&self) -> u64 {
        self.reserved_sub
    }

    /// Adds `other`'s changes to this one.
    pub(crate) fn merge(&mut self, other: &UsageDelta) {
        let sum = |a: u64, b: u64| a.saturating_add(b);
        self.committed_add = sum(self.committed_add, other.committed_add);
        self.committed_sub = sum(self.committed_sub, other.committed_sub);
        self.reserved_add = sum(self.reserved_add, other.reserved_add);
        self.reserved_sub = sum(self.reserved_sub, other.reserved_sub);
        self.objects_add = sum(self.objects_add, other.objects_add);
        self.objects_sub = sum(self.objects_sub, other.objects_sub);
        self.pending_add = sum(self.pending_add, other.pending_add);
        self.pending_sub = sum(self.pending_sub, other.pending_sub);
    }

    /// The change that undoes this one (for a transaction applied early, then dropped).
    pub(crate) fn inverse(&self) -> UsageDelta {
        UsageDelta {
            committed_add: self.committed_sub,
            committed_sub: self.committed_add,
            reserved_add: self.reserved_sub,
            reserved_sub: self.reserved_add,
            objects_add: self.objects_sub,
            objects_sub: self.objects_add,
            pending_add: self.pending_sub,
            pending_sub: self.pending_add,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_add_and_release() {
        let u = Usage::default();
        let mut d = UsageDelta::default();
        d.add_pending(100);
        u.apply(&d);
        let s = u.snapshot(1000);
        assert_eq!(
            (s.reserved_bytes, s.pending_uploads, s.used(), s.free()),
            (100, 1, 100, 900)
        );
        let mut d = UsageDelta::default();
        d.remove_pending(100);
        d.add_object(90);
        u.apply(&d);
        let s = u.snapshot(1000);
        assert_eq!(
            (
                s.committed_bytes,
                s.reserved_bytes,
                s.objects,
                s.pending_uploads
            ),
            (90, 0, 1, 0)
        );
        assert!((s.utilisation() - 0.09).abs() < 1e-9);
        assert_eq!(UsageSnapshot::default().utilisation(), 0.0);
    }
}
