//! Chunk plans: how a ball's bytes are split into chunks.
//!
//! A ball of `n` bytes is stored as `num_chunks` objects; chunk `i` lives under the key
//! `<ball_id>_<i>` (see [`chunk_key`]). MictlanX clients use two different splitting rules
//! and both are offered here as a [`ChunkRule`]:
//!
//! * [`ChunkRule::InMemory`] — the rule of the reference `Chunks.from_bytes`, used when a
//!   value held in memory is `put`. With chunk size `c`: if `n < c` there is one chunk of `n`
//!   bytes; otherwise there are `⌊n / c⌋` chunks of `c` bytes, and a tail shorter than `c` is
//!   **merged into the previous chunk**, so the last chunk holds `c..2c` bytes.
//!   `n = 25, c = 10` gives `[10, 15]`.
//! * [`ChunkRule::File`] — the rule of the reference `Chunks.from_file`, used by `put_file`:
//!   fixed pieces of `c` bytes with a short last piece. `n = 11, c = 5` gives `[5, 5, 1]`.
//!
//! Unlike the reference client, an empty ball (`n = 0`) is valid under both rules: it is one
//! chunk of 0 bytes, so an empty object can be stored and read back.
//!
//! A [`ChunkPlan`] is a few integers, never a list: a 10 GiB file with 1 KB chunks costs no
//! allocation. Chunks are computed on demand with [`ChunkPlan::chunk`], [`ChunkPlan::iter`]
//! and [`ChunkPlan::chunk_index_at`].
//!
//! ```
//! use mictlanx::chunking::{ChunkPlan, ChunkRule};
//!
//! let plan = ChunkPlan::new(25, 10, ChunkRule::InMemory)?;
//! let lens: Vec<u64> = plan.iter().map(|c| c.len).collect();
//! assert_eq!(lens, [10, 15]);
//!
//! let plan = ChunkPlan::new(11, 5, ChunkRule::File)?;
//! let lens: Vec<u64> = plan.iter().map(|c| c.len).collect();
//! assert_eq!(lens, [5, 5, 1]);
//! # Ok::<(), mictlanx::chunking::ChunkingError>(())
//! ```

use std::fmt;
use std::iter::FusedIterator;
use std::ops::Range;

/// The smallest chunk size [`ChunkPlan::with_num_chunks`] picks under [`ChunkRule::File`]
/// (the reference `Chunks.from_file` uses `max(1024, n // k)`).
pub const MIN_FILE_CHUNK_SIZE: u64 = 1024;

pub use crate::id::chunk_key;

/// Why a [`ChunkPlan`] could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkingError {
    /// The chunk size was 0 bytes.
    #[error("chunk size must be at least 1 byte")]
    ZeroChunkSize,
    /// The requested number of chunks was 0.
    #[error("number of chunks must be at least 1")]
    ZeroChunkCount,
}

/// Which splitting rule a [`ChunkPlan`] follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChunkRule {
    /// Reference `Chunks.from_bytes`: full chunks of `c` bytes, a tail shorter than `c` is
    /// merged into the previous chunk (last chunk `c..2c` bytes; one chunk of `n` bytes when
    /// `n < c`). Used for values held in memory.
    InMemory,
    /// Reference `Chunks.from_file`: fixed chunks of `c` bytes, the last one shorter
    /// (`1..=c` bytes). Used for files.
    File,
}

impl fmt::Display for ChunkRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ChunkRule::InMemory => "in-memory",
            ChunkRule::File => "file",
        })
    }
}

/// One chunk of a plan: its index and the byte range `offset..offset + len` it covers in
/// the ball.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkRange {
    /// Chunk index, `0..num_chunks`.
    pub index: u64,
    /// Offset of the chunk's first byte in the ball.
    pub offset: u64,
    /// Number of bytes in the chunk (0 only for the single chunk of an empty ball).
    pub len: u64,
}

impl ChunkRange {
    /// One past the chunk's last byte: `offset + len` (saturating at `u64::MAX`, which no
    /// range produced by a [`ChunkPlan`] reaches).
    pub fn end(&self) -> u64 {
        self.offset.saturating_add(self.len)
    }

    /// The byte range as `usize` bounds, for slicing an in-memory buffer; `None` if it does
    /// not fit in `usize`.
    ///
    /// ```
    /// use mictlanx::chunking::ChunkPlan;
    ///
    /// let data = b"hello world";
    /// let plan = ChunkPlan::file(data.len() as u64, 5)?;
    /// let mut pieces = Vec::new();
    /// for chunk in plan.iter() {
    ///     if let Some(piece) = chunk.as_usize_range().and_then(|r| data.get(r)) {
    ///         pieces.push(piece);
    ///     }
    /// }
    /// assert_eq!(pieces, [&b"hello"[..], b" worl", b"d"]);
    /// # Ok::<(), mictlanx::chunking::ChunkingError>(())
    /// ```
    pub fn as_usize_range(&self) -> Option<Range<usize>> {
        let start = usize::try_from(self.offset).ok()?;
        let end = usize::try_from(self.offset.checked_add(self.len)?).ok()?;
        Some(start..end)
    }
}

/// How a ball of `total_len` bytes is split into chunks.
///
/// Holds only the total length, the chunk size, the rule and the computed chunk count; the
/// chunks themselves are computed on demand.
///
/// ```
/// use mictlanx::chunking::{ChunkPlan, ChunkRange};
///
/// // 10 GiB in 1 KB chunks: no allocation, constant-time lookups.
/// let plan = ChunkPlan::file(10 << 30, 1000)?;
/// assert_eq!(plan.num_chunks(), 10_737_419);
/// assert_eq!(plan.chunk(1), Some(ChunkRange { index: 1, offset: 1000, len: 1000 }));
/// assert_eq!(plan.chunk_index_at(2500), Some(2));
/// # Ok::<(), mictlanx::chunking::ChunkingError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ChunkPlan {
    total_len: u64,
    chunk_size: u64,
    rule: ChunkRule,
    num_chunks: u64,
}

impl ChunkPlan {
    /// Plans `total_len` bytes in chunks of `chunk_size` bytes under `rule`.
    ///
    /// An empty ball (`total_len == 0`) is one chunk of 0 bytes under both rules.
    ///
    /// # Errors
    ///
    /// [`ChunkingError::ZeroChunkSize`] if `chunk_size` is 0.
    ///
    /// ```
    /// use mictlanx::chunking::{ChunkPlan, ChunkRule, ChunkingError};
    ///
    /// let plan = ChunkPlan::new(20_001, 10_000, ChunkRule::InMemory)?;
    /// assert_eq!(plan.iter().map(|c| c.len).collect::<Vec<_>>(), [10_000, 10_001]);
    /// assert_eq!(ChunkPlan::new(0, 10, ChunkRule::File)?.num_chunks(), 1);
    /// assert_eq!(
    ///     ChunkPlan::new(10, 0, ChunkRule::File),
    ///     Err(ChunkingError::ZeroChunkSize)
    /// );
    /// # Ok::<(), ChunkingError>(())
    /// ```
    pub fn new(total_len: u64, chunk_size: u64, rule: ChunkRule) -> Result<Self, ChunkingError> {
        if chunk_size == 0 {
            return Err(ChunkingError::ZeroChunkSize);
        }
        let num_chunks = match rule {
            // n < c (including n == 0): one chunk of n bytes.
            ChunkRule::InMemory if total_len < chunk_size => 1,
            // n >= c >= 1, so the quotient is at least 1.
            ChunkRule::InMemory => total_len / chunk_size,
            ChunkRule::File if total_len == 0 => 1,
            ChunkRule::File => total_len.div_ceil(chunk_size),
        };
        Ok(Self {
            total_len,
            chunk_size,
            rule,
            num_chunks,
        })
    }

    /// Shorthand for [`ChunkPlan::new`] with [`ChunkRule::InMemory`].
    ///
    /// # Errors
    ///
    /// [`ChunkingError::ZeroChunkSize`] if `chunk_size` is 0.
    pub fn in_memory(total_len: u64, chunk_size: u64) -> Result<Self, ChunkingError> {
        Self::new(total_len, chunk_size, ChunkRule::InMemory)
    }

    /// Shorthand for [`ChunkPlan::new`] with [`ChunkRule::File`].
    ///
    /// # Errors
    ///
    /// [`ChunkingError::ZeroChunkSize`] if `chunk_size` is 0.
    pub fn file(total_len: u64, chunk_size: u64) -> Result<Self, ChunkingError> {
        Self::new(total_len, chunk_size, ChunkRule::File)
    }

    /// Plans `total_len` bytes from a desired number of chunks `k` instead of a size,
    /// following the reference client:
    ///
    /// * [`ChunkRule::InMemory`]: `c = ⌊n / k⌋`, raised to 1 when that is 0 (`n < k`);
    /// * [`ChunkRule::File`]: `c = max(1024, ⌊n / k⌋)` (see [`MIN_FILE_CHUNK_SIZE`]).
    ///
    /// The resulting [`num_chunks`](Self::num_chunks) is what the rule gives for that `c`
    /// and may differ from `k`: the in-memory rule can yield more than `k` chunks
    /// (`n = 10, k = 4` → `c = 2`, 5 chunks), the file rule fewer (small files are one chunk).
    ///
    /// # Errors
    ///
    /// [`ChunkingError::ZeroChunkCount`] if `k` is 0.
    ///
    /// ```
    /// use mictlanx::chunking::{ChunkPlan, ChunkRule};
    ///
    /// let plan = ChunkPlan::with_num_chunks(1_000_000, 4, ChunkRule::InMemory)?;
    /// assert_eq!((plan.chunk_size(), plan.num_chunks()), (250_000, 4));
    /// let plan = ChunkPlan::with_num_chunks(3000, 4, ChunkRule::File)?;
    /// assert_eq!((plan.chunk_size(), plan.num_chunks()), (1024, 3));
    /// # Ok::<(), mictlanx::chunking::ChunkingError>(())
    /// ```
    pub fn with_num_chunks(total_len: u64, k: u64, rule: ChunkRule) -> Result<Self, ChunkingError> {
        let per_chunk = total_len
            .checked_div(k)
            .ok_or(ChunkingError::ZeroChunkCount)?;
        let chunk_size = match rule {
            ChunkRule::InMemory => per_chunk.max(1),
            ChunkRule::File => per_chunk.max(MIN_FILE_CHUNK_SIZE),
        };
        Self::new(total_len, chunk_size, rule)
    }

    /// Total number of bytes in the ball.
    pub fn total_len(&self) -> u64 {
        self.total_len
    }

    /// The nominal chunk size `c` (the last chunk may be longer under
    /// [`ChunkRule::InMemory`] or shorter under [`ChunkRule::File`]).
    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// The splitting rule.
    pub fn rule(&self) -> ChunkRule {
        self.rule
    }

    /// Number of chunks; always at least 1.
    pub fn num_chunks(&self) -> u64 {
        self.num_chunks
    }

    /// Chunk `index`, or `None` if `index >= num_chunks()`.
    ///
    /// ```
    /// use mictlanx::chunking::{ChunkPlan, ChunkRange};
    ///
    /// let plan = ChunkPlan::in_memory(25_000, 10_000)?;
    /// assert_eq!(plan.chunk(1), Some(ChunkRange { index: 1, offset: 10_000, len: 15_000 }));
    /// assert_eq!(plan.chunk(2), None);
    /// # Ok::<(), mictlanx::chunking::ChunkingError>(())
    /// ```
    pub fn chunk(&self, index: u64) -> Option<ChunkRange> {
        if index >= self.num_chunks {
            return None;
        }
        // index < num_chunks, so index * c <= total_len: never overflows.
        let offset = index.checked_mul(self.chunk_size)?;
        let remaining = self.total_len.checked_sub(offset)?;
        let is_last = index.checked_add(1)? == self.num_chunks;
        let len = if is_last {
            // In-memory: the merged tail (c..2c bytes, or n when n < c).
            // File: the short tail (1..=c bytes, or 0 for an empty ball).
            remaining
        } else {
            self.chunk_size.min(remaining)
        };
        Some(ChunkRange { index, offset, len })
    }

    /// Index of the chunk holding byte `offset` of the ball, or `None` if
    /// `offset >= total_len()` (so always `None` for an empty ball).
    ///
    /// ```
    /// use mictlanx::chunking::ChunkPlan;
    ///
    /// let plan = ChunkPlan::in_memory(25, 10)?; // [0..10, 10..25]
    /// assert_eq!(plan.chunk_index_at(9), Some(0));
    /// assert_eq!(plan.chunk_index_at(24), Some(1));
    /// assert_eq!(plan.chunk_index_at(25), None);
    /// # Ok::<(), mictlanx::chunking::ChunkingError>(())
    /// ```
    pub fn chunk_index_at(&self, offset: u64) -> Option<u64> {
        if offset >= self.total_len {
            return None;
        }
        let last = self.num_chunks.checked_sub(1)?;
        Some((offset / self.chunk_size).min(last))
    }

    /// Iterates over all chunks in index order.
    ///
    /// The iterator is double-ended and supports constant-time [`Iterator::nth`].
    ///
    /// ```
    /// use mictlanx::chunking::ChunkPlan;
    ///
    /// let plan = ChunkPlan::file(10, 2)?;
    /// assert!(plan.iter().all(|c| c.len == 2));
    /// assert_eq!(plan.iter().count(), 5);
    /// assert_eq!(plan.iter().last().map(|c| c.offset), Some(8));
    /// # Ok::<(), mictlanx::chunking::ChunkingError>(())
    /// ```
    pub fn iter(&self) -> ChunkIter {
        ChunkIter {
            plan: *self,
            front: 0,
            back: self.num_chunks,
        }
    }
}

impl IntoIterator for ChunkPlan {
    type Item = ChunkRange;
    type IntoIter = ChunkIter;

    fn into_iter(self) -> ChunkIter {
        self.iter()
    }
}

impl IntoIterator for &ChunkPlan {
    type Item = ChunkRange;
    type IntoIter = ChunkIter;

    fn into_iter(self) -> ChunkIter {
        self.iter()
    }
}

/// Iterator over the chunks of a [`ChunkPlan`], from [`ChunkPlan::iter`].
#[derive(Debug, Clone)]
pub struct ChunkIter {
    plan: ChunkPlan,
    /// Next index yielded from the front.
    front: u64,
    /// One past the next index yielded from the back.
    back: u64,
}

impl ChunkIter {
    fn remaining(&self) -> u64 {
        self.back.saturating_sub(self.front)
    }
}

impl Iterator for ChunkIter {
    type Item = ChunkRange;

    fn next(&mut self) -> Option<ChunkRange> {
        if self.front >= self.back {
            return None;
        }
        let chunk = self.plan.chunk(self.front)?;
        self.front = self.front.saturating_add(1);
        Some(chunk)
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        match usize::try_from(self.remaining()) {
            Ok(n) => (n, Some(n)),
            Err(_) => (usize::MAX, None),
        }
    }

    fn nth(&mut self, n: usize) -> Option<ChunkRange> {
        let skip = u64::try_from(n).unwrap_or(u64::MAX);
        if skip >= self.remaining() {
            self.front = self.back;
            return None;
        }
        self.front = self.front.saturating_add(skip);
        self.next()
    }

    fn count(self) -> usize {
        usize::try_from(self.remaining()).unwrap_or(usize::MAX)
    }

    fn last(mut self) -> Option<ChunkRange> {
        self.next_back()
    }
}

impl DoubleEndedIterator for ChunkIter {
    fn next_back(&mut self) -> Option<ChunkRange> {
        if self.front >= self.back {
            return None;
        }
        let index = self.back.checked_sub(1)?;
        let chunk = self.plan.chunk(index)?;
        self.back = index;
        Some(chunk)
    }
}

impl FusedIterator for ChunkIter {}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn lens(total_len: u64, chunk_size: u64, rule: ChunkRule) -> Vec<u64> {
        ChunkPlan::new(total_len, chunk_size, rule)
            .expect("valid plan")
            .iter()
            .map(|c| c.len)
            .collect()
    }

    #[test]
    fn in_memory_examples() {
        assert_eq!(lens(25, 10, ChunkRule::InMemory), [10, 15]);
        assert_eq!(lens(19_999, 10_000, ChunkRule::InMemory), [19_999]);
        assert_eq!(lens(20_001, 10_000, ChunkRule::InMemory), [10_000, 10_001]);
        assert_eq!(lens(40_000, 10_000, ChunkRule::InMemory), [10_000; 4]);
        assert_eq!(lens(25_000, 10_000, ChunkRule::InMemory), [10_000, 15_000]);
        assert_eq!(lens(9, 10, ChunkRule::InMemory), [9]);
        assert_eq!(lens(10, 10, ChunkRule::InMemory), [10]);
    }

    #[test]
    fn file_examples() {
        assert_eq!(lens(11, 5, ChunkRule::File), [5, 5, 1]);
        assert_eq!(lens(10, 2, ChunkRule::File), [2; 5]);
        assert_eq!(lens(3, 10, ChunkRule::File), [3]);
        assert_eq!(lens(1, 1, ChunkRule::File), [1]);
    }

    #[test]
    fn empty_ball_is_one_empty_chunk() {
        for rule in [ChunkRule::InMemory, ChunkRule::File] {
            let plan = ChunkPlan::new(0, 10, rule).expect("valid plan");
            assert_eq!(plan.num_chunks(), 1);
            let empty = ChunkRange {
                index: 0,
                offset: 0,
                len: 0,
            };
            assert_eq!(plan.chunk(0), Some(empty));
            assert_eq!(plan.iter().collect::<Vec<_>>(), [empty]);
            assert_eq!(plan.chunk_index_at(0), None);
            assert_eq!(empty.as_usize_range(), Some(0..0));
        }
    }

    #[test]
    fn zero_chunk_size_and_count_are_errors() {
        for rule in [ChunkRule::InMemory, ChunkRule::File] {
            assert_eq!(
                ChunkPlan::new(10, 0, rule),
                Err(ChunkingError::ZeroChunkSize)
            );
            assert_eq!(
                ChunkPlan::with_num_chunks(10, 0, rule),
                Err(ChunkingError::ZeroChunkCount)
            );
        }
        assert_eq!(
            ChunkPlan::in_memory(0, 0),
            Err(ChunkingError::ZeroChunkSize)
        );
        assert_eq!(ChunkPlan::file(0, 0), Err(ChunkingError::ZeroChunkSize));
    }

    #[test]
    fn with_num_chunks_follows_reference() {
        let plan = ChunkPlan::with_num_chunks(100, 4, ChunkRule::InMemory).expect("plan");
        assert_eq!(plan.chunk_size(), 25);
        assert_eq!(plan.num_chunks(), 4);
        // c = 10 / 4 = 2 → five chunks under the in-memory rule.
        let plan = ChunkPlan::with_num_chunks(10, 4, ChunkRule::InMemory).expect("plan");
        assert_eq!((plan.chunk_size(), plan.num_chunks()), (2, 5));
        // n < k: c raised to 1.
        let plan = ChunkPlan::with_num_chunks(3, 10, ChunkRule::InMemory).expect("plan");
        assert_eq!((plan.chunk_size(), plan.num_chunks()), (1, 3));
        let plan = ChunkPlan::with_num_chunks(0, 3, ChunkRule::InMemory).expect("plan");
        assert_eq!((plan.chunk_size(), plan.num_chunks()), (1, 1));
        // File: c = max(1024, n / k).
        let plan = ChunkPlan::with_num_chunks(10_000, 2, ChunkRule::File).expect("plan");
        assert_eq!((plan.chunk_size(), plan.num_chunks()), (5000, 2));
        let plan = ChunkPlan::with_num_chunks(100, 2, ChunkRule::File).expect("plan");
        assert_eq!((plan.chunk_size(), plan.num_chunks()), (1024, 1));
        let plan = ChunkPlan::with_num_chunks(0, 2, ChunkRule::File).expect("plan");
        assert_eq!((plan.chunk_size(), plan.num_chunks()), (1024, 1));
    }

    #[test]
    fn extreme_values_do_not_panic() {
        for rule in [ChunkRule::InMemory, ChunkRule::File] {
            for (n, c) in [
                (u64::MAX, 1),
                (u64::MAX, u64::MAX),
                (u64::MAX - 1, u64::MAX),
                (1, u64::MAX),
                (u64::MAX, 2),
                (u64::MAX, 3),
            ] {
                let plan = ChunkPlan::new(n, c, rule).expect("plan");
                let last = plan.num_chunks() - 1;
                let tail = plan.chunk(last).expect("last chunk");
                assert_eq!(tail.end(), n);
                assert_eq!(plan.chunk(last.wrapping_add(1)), None);
                assert_eq!(plan.chunk_index_at(n - 1), Some(last));
                assert_eq!(plan.iter().next_back(), Some(tail));
                assert_eq!(plan.iter().nth(usize::MAX), None);
                let _ = plan.iter().size_hint();
            }
            let plan = ChunkPlan::with_num_chunks(u64::MAX, u64::MAX, rule).expect("plan");
            assert!(plan.num_chunks() >= 1);
        }
    }

    #[test]
    fn as_usize_range_and_end() {
        let r = ChunkRange {
            index: 2,
            offset: 10,
            len: 5,
        };
        assert_eq!(r.end(), 15);
        assert_eq!(r.as_usize_range(), Some(10..15));
        let huge = ChunkRange {
            index: 0,
            offset: u64::MAX,
            len: 1,
        };
        assert_eq!(huge.end(), u64::MAX);
        assert_eq!(huge.as_usize_range(), None);
    }

    #[test]
    fn iterator_is_double_ended_and_sized() {
        let plan = ChunkPlan::file(11, 5).expect("plan");
        let mut it = plan.iter();
        assert_eq!(it.size_hint(), (3, Some(3)));
        assert_eq!(it.next_back().map(|c| c.len), Some(1));
        assert_eq!(it.next().map(|c| c.index), Some(0));
        assert_eq!(it.size_hint(), (1, Some(1)));
        assert_eq!(it.next().map(|c| c.index), Some(1));
        assert_eq!(it.next(), None);
        assert_eq!(it.next_back(), None);
        assert_eq!(plan.iter().nth(2).map(|c| c.index), Some(2));
        assert_eq!(plan.iter().nth(3), None);
        let rev: Vec<u64> = plan.iter().rev().map(|c| c.index).collect();
        assert_eq!(rev, [2, 1, 0]);
        let by_ref: Vec<ChunkRange> = (&plan).into_iter().collect();
        assert_eq!(by_ref, plan.into_iter().collect::<Vec<_>>());
    }

    /// Checks every invariant of a plan by walking all of its chunks.
    fn check_full(plan: &ChunkPlan, probes: &[u64]) -> Result<(), TestCaseError> {
        let n = plan.total_len();
        let c = plan.chunk_size();
        let count = plan.num_chunks();
        prop_assert!(count >= 1);
        let mut expected_offset = 0u64;
        let mut seen = 0u64;
        for chunk in plan.iter() {
            prop_assert_eq!(chunk.index, seen);
            prop_assert_eq!(chunk.offset, expected_offset);
            prop_assert_eq!(plan.chunk(chunk.index), Some(chunk));
            let is_last = chunk.index + 1 == count;
            match plan.rule() {
                ChunkRule::InMemory if !is_last => prop_assert_eq!(chunk.len, c),
                ChunkRule::InMemory if n >= c => {
                    prop_assert!(chunk.len >= c && chunk.len < 2 * c)
                }
                ChunkRule::InMemory => prop_assert_eq!(chunk.len, n),
                ChunkRule::File if !is_last => prop_assert_eq!(chunk.len, c),
                ChunkRule::File if n > 0 => prop_assert!(chunk.len >= 1 && chunk.len <= c),
                ChunkRule::File => prop_assert_eq!(chunk.len, 0),
            }
            if chunk.len > 0 {
                prop_assert_eq!(plan.chunk_index_at(chunk.offset), Some(chunk.index));
                prop_assert_eq!(plan.chunk_index_at(chunk.end() - 1), Some(chunk.index));
            }
            expected_offset = chunk.end();
            seen += 1;
        }
        prop_assert_eq!(seen, count);
        prop_assert_eq!(expected_offset, n);
        prop_assert_eq!(plan.chunk(count), None);
        prop_assert_eq!(plan.chunk_index_at(n), None);
        for &p in probes {
            let o = if n == 0 { 0 } else { p % n };
            match plan.chunk_index_at(o) {
                Some(i) => {
                    let chunk = plan.chunk(i).expect("index in range");
                    prop_assert!(chunk.offset <= o && o < chunk.end());
                }
                None => prop_assert_eq!(n, 0),
            }
        }
        Ok(())
    }

    /// Checks the invariants of a plan too large to walk, at sampled indices.
    fn check_sampled(plan: &ChunkPlan, samples: &[u64]) -> Result<(), TestCaseError> {
        let n = plan.total_len();
        let c = plan.chunk_size();
        let count = plan.num_chunks();
        let first = plan.chunk(0).expect("first chunk");
        prop_assert_eq!(first.offset, 0);
        let last = plan.chunk(count - 1).expect("last chunk");
        prop_assert_eq!(last.end(), n);
        prop_assert_eq!(plan.iter().next_back(), Some(last));
        prop_assert_eq!(plan.chunk(count), None);
        match plan.rule() {
            ChunkRule::InMemory if n >= c => prop_assert!(last.len >= c && last.len < 2 * c),
            ChunkRule::InMemory => prop_assert_eq!(last.len, n),
            ChunkRule::File => prop_assert!(last.len >= 1 && last.len <= c),
        }
        for &s in samples {
            let i = s % count;
            let chunk = plan.chunk(i).expect("index in range");
            prop_assert_eq!(chunk.index, i);
            prop_assert_eq!(chunk.offset, i * c);
            prop_assert_eq!(plan.iter().nth(i as usize), Some(chunk));
            if i + 1 < count {
                prop_assert_eq!(chunk.len, c);
                let next = plan.chunk(i + 1).expect("next chunk");
                prop_assert_eq!(next.offset, chunk.end());
            }
            let o = s % n;
            let holder = plan.chunk_index_at(o).and_then(|j| plan.chunk(j));
            prop_assert!(holder.is_some_and(|h| h.offset <= o && o < h.end()));
        }
        Ok(())
    }

    fn any_rule() -> impl Strategy<Value = ChunkRule> {
        prop_oneof![Just(ChunkRule::InMemory), Just(ChunkRule::File)]
    }

    proptest! {
        #[test]
        fn plans_cover_every_byte_once(
            n in 0u64..5_000_000,
            c in 1u64..100_000,
            rule in any_rule(),
            probes in proptest::collection::vec(any::<u64>(), 0..16),
        ) {
            let plan = ChunkPlan::new(n, c, rule).expect("valid plan");
            check_full(&plan, &probes)?;
        }

        #[test]
        fn small_plans_cover_every_byte_once(
            n in 0u64..2_000,
            c in 1u64..64,
            rule in any_rule(),
            probes in proptest::collection::vec(any::<u64>(), 0..16),
        ) {
            let plan = ChunkPlan::new(n, c, rule).expect("valid plan");
            check_full(&plan, &probes)?;
        }

        #[test]
        fn with_num_chunks_plans_are_valid(
            n in 0u64..5_000_000,
            k in 1u64..10_000,
            rule in any_rule(),
        ) {
            let plan = ChunkPlan::with_num_chunks(n, k, rule).expect("valid plan");
            check_full(&plan, &[])?;
        }

        #[test]
        fn huge_plans_hold_their_invariants(
            n in 10_000_000_000_000u64..20_000_000_000_000,
            c in 1u64..4_096,
            rule in any_rule(),
            samples in proptest::collection::vec(any::<u64>(), 1..32),
        ) {
            let plan = ChunkPlan::new(n, c, rule).expect("valid plan");
            check_sampled(&plan, &samples)?;
        }
    }
}
