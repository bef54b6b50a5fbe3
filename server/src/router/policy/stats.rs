//! Access statistics over a sliding window: reads of each ball, of each bucket and in all.
//!
//! The window is cut into [`SLOTS`] slots of equal length; each counter keeps one count per
//! slot that saw reads, so memory per ball is bounded whatever the read rate, and a count
//! is exact to within one slot's length at the window's far edge.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use std::time::Instant;

/// Slots per window.
pub(crate) const SLOTS: u64 = 20;

/// Chunk keys remembered per ball (for `REPLICAS`).
const MAX_KEYS_PER_BALL: usize = 1024;

/// Reads per slot of one target.
#[derive(Debug, Default, Clone)]
struct Counter {
    /// `(slot number, reads)`, oldest first.
    slots: VecDeque<(u64, u64)>,
}

impl Counter {
    fn add(&mut self, slot: u64) {
        match self.slots.back_mut() {
            Some((s, n)) if *s == slot => *n += 1,
            _ => self.slots.push_back((slot, 1)),
        }
        while self.slots.len() as u64 > SLOTS {
            self.slots.pop_front();
        }
    }

    /// Reads in the window that ends with slot `now`.
    fn count(&self, now: u64) -> u64 {
        let oldest = now.saturating_sub(SLOTS - 1);
        self.slots
            .iter()
            .filter(|(s, _)| *s >= oldest)
            .map(|(_, n)| n)
            .sum()
    }
}

type BallKey = (String, String);

#[derive(Debug)]
struct Inner {
    /// Slot 0 starts here.
    start: Instant,
    balls: HashMap<BallKey, Counter>,
    buckets: HashMap<String, Counter>,
    total: Counter,
    keys: HashMap<BallKey, BTreeSet<String>>,
}

/// The statistics. Cheap to clone; locked only inside its small methods.
#[derive(Debug, Clone)]
pub(crate) struct AccessStats {
    inner: Arc<Mutex<Inner>>,
    slot: Duration,
    max_balls: usize,
}

/// The ball a key belongs to: `<ball>_<index>` → `<ball>`; any other key is its own ball.
pub(crate) fn ball_of(key: &str) -> &str {
    split_chunk_key(key).map_or(key, |(ball, _)| ball)
}

fn split_chunk_key(key: &str) -> Option<(&str, &str)> {
    key.rsplit_once('_').filter(|(ball, index)| {
        !ball.is_empty() && !index.is_empty() && index.bytes().all(|b| b.is_ascii_digit())
    })
}

/// Whether reading `key` is an access of its ball: a read of its first chunk (clients read
/// a ball from chunk 0 on), or of a key that is no chunk key. Reading the other chunks of
/// the same ball is the same access, so a 3-chunk ball read once counts once.
pub(crate) fn is_ball_access(key: &str) -> bool {
    match split_chunk_key(key) {
        None => true,
        Some((_, index)) => index.bytes().all(|b| b == b'0'),
    }
}

impl AccessStats {
    /// Statistics over `window` (at least [`SLOTS`] ms), tracking at most `max_balls` balls.
    pub(crate) fn new(window: Duration, max_balls: usize) -> Self {
        let slot = (window / SLOTS as u32).max(Duration::from_millis(1));
        Self {
            inner: Arc::new(Mutex::new(Inner {
                start: Instant::now(),
                balls: HashMap::new(),
                buckets: HashMap::new(),
                total: Counter::default(),
                keys: HashMap::new(),
            })),
            slot,
            max_balls,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Every method leaves the maps consistent; a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn slot_of(&self, inner: &Inner) -> u64 {
        let elapsed = inner.start.elapsed().as_nanos();
        u64::try_from(elapsed / self.slot.as_nanos().max(1)).unwrap_or(u64::MAX)
    }

    /// Notes a read of `key` in `bucket`: counted when it is an access of its ball
    /// ([`is_ball_access`]), and the key remembered as one of the ball's either way.
    pub(crate) fn record(&self, bucket: &str, key: &str) {
        let counted = is_ball_access(key);
        let ball = (bucket.to_string(), ball_of(key).to_string());
        let mut inner = self.lock();
        let slot = self.slot_of(&inner);
        if !inner.keys.contains_key(&ball) && inner.keys.len() >= self.max_balls {
            // Full: this read still counts for its bucket and the total.
            tracing::debug!(event = "POLICY.STATS.FULL", bucket_id = bucket, key);
        } else {
            let keys = inner.keys.entry(ball.clone()).or_default();
            if keys.len() < MAX_KEYS_PER_BALL {
                keys.insert(key.to_string());
            }
            if counted {
                inner.balls.entry(ball).or_default().add(slot);
            }
        }
        if counted {
            inner
                .buckets
                .entry(bucket.to_string())
                .or_default()
                .add(slot);
            inner.total.add(slot);
        }
    }

    /// Reads of a ball in the window.
    pub(crate) fn ball_count(&self, bucket: &str, ball: &str) -> u64 {
        let inner = self.lock();
        let now = self.slot_of(&inner);
        inner
            .balls
            .get(&(bucket.to_string(), ball.to_string()))
            .map_or(0, |c| c.count(now))
    }

    /// Reads of a bucket in the window.
    pub(crate) fn bucket_count(&self, bucket: &str) -> u64 {
        let inner = self.lock();
        let now = self.slot_of(&inner);
        inner.buckets.get(bucket).map_or(0, |c| c.count(now))
    }

    /// All reads in the window.
    pub(crate) fn total_count(&self) -> u64 {
        let inner = self.lock();
        inner.total.count(self.slot_of(&inner))
    }

    /// The keys of a ball that were read (empty when none).
    pub(crate) fn ball_keys(&self, bucket: &str, ball: &str) -> Vec<String> {
        self.lock()
            .keys
            .get(&(bucket.to_string(), ball.to_string()))
            .map(|k| k.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The keys of a bucket that were read.
    pub(crate) fn bucket_keys(&self, bucket: &str) -> Vec<String> {
        self.lock()
            .keys
            .iter()
            .filter(|((b, _), _)| b == bucket)
            .flat_map(|(_, keys)| keys.iter().cloned())
            .collect()
    }

    /// Forgets balls and buckets with no read in the window.
    pub(crate) fn prune(&self) {
        let mut inner = self.lock();
        let now = self.slot_of(&inner);
        let Inner {
            balls,
            buckets,
            keys,
            ..
        } = &mut *inner;
        balls.retain(|_, c| c.count(now) > 0);
        buckets.retain(|_, c| c.count(now) > 0);
        // A ball read only past its first chunk has keys and no counter: it goes too.
        keys.retain(|ball, _| balls.contains_key(ball));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl AccessStats {
        /// Moves this window's clock forward by `by` (its start goes back).
        async fn advance(&self, by: Duration) {
            let mut inner = self.lock();
            inner.start = inner
                .start
                .checked_sub(by)
                .expect("clock far enough from boot");
        }
    }

    #[test]
    fn chunk_keys_belong_to_their_ball() {
        assert_eq!(ball_of("red_file_0"), "red_file");
        assert_eq!(ball_of("red_file_12"), "red_file");
        assert_eq!(ball_of("red_file"), "red_file");
        assert_eq!(ball_of("x_"), "x_");
        assert_eq!(ball_of("_3"), "_3");
        assert_eq!(ball_of(""), "");
        assert!(is_ball_access("red_file_0"));
        assert!(is_ball_access("red_file_00"));
        assert!(is_ball_access("red_file"));
        assert!(!is_ball_access("red_file_1"));
        assert!(!is_ball_access("red_file_10"));
    }

    #[tokio::test]
    async fn counts_slide_out_of_the_window() {
        let s = AccessStats::new(Duration::from_secs(20), 10);
        s.record("b", "x_0");
        s.record("b", "x_1");
        s.record("b", "x_0");
        s.record("b", "y_0");
        s.record("c", "z");
        assert_eq!(s.ball_count("b", "x"), 2);
        assert_eq!(s.bucket_count("b"), 3);
        assert_eq!(s.total_count(), 4);
        assert_eq!(s.ball_keys("b", "x"), vec!["x_0", "x_1"]);
        assert_eq!(s.bucket_keys("b").len(), 3);
        s.advance(Duration::from_secs(10)).await;
        s.record("b", "x_0");
        assert_eq!(s.ball_count("b", "x"), 3);
        // The first reads are now older than the window.
        s.advance(Duration::from_secs(11)).await;
        assert_eq!(s.ball_count("b", "x"), 1);
        assert_eq!(s.bucket_count("b"), 1);
        assert_eq!(s.total_count(), 1);
        s.prune();
        assert_eq!(s.ball_count("b", "y"), 0);
        assert!(s.ball_keys("b", "y").is_empty());
        assert_eq!(s.ball_keys("b", "x").len(), 2);
        s.advance(Duration::from_secs(30)).await;
        s.prune();
        assert!(s.bucket_keys("b").is_empty());
    }

    #[tokio::test]
    async fn a_full_table_still_counts_buckets() {
        let s = AccessStats::new(Duration::from_secs(1), 1);
        s.record("b", "x_0");
        s.record("b", "y_0");
        assert_eq!(s.ball_count("b", "x"), 1);
        assert_eq!(s.ball_count("b", "y"), 0);
        assert_eq!(s.bucket_count("b"), 2);
    }

    #[test]
    fn many_reads_in_one_slot_take_one_entry() {
        let s = AccessStats::new(Duration::from_secs(3600), 10);
        for _ in 0..10_000 {
            s.record("b", "x_0");
        }
        assert_eq!(s.ball_count("b", "x"), 10_000);
        assert_eq!(
            s.lock().balls[&("b".to_string(), "x".to_string())]
                .slots
                .len(),
            1
        );
    }
}
