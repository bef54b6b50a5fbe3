//! Block checksums: a CRC32C per [`BLOCK_SIZE`] bytes of a stored object.
//!
//! A whole-object SHA-256 can only be checked once every byte has been read, so it cannot
//! vouch for a range, nor for the first bytes of a stream before its end. A CRC32C per block
//! can: a peer computes them while it stores an object, and checks every block it reads
//! before any byte of that block leaves it, for whole and ranged reads alike. It also sends
//! the sums of the blocks a ranged answer covers (header [`HEADER`]), so a reader that asks
//! for whole blocks checks them again end to end (see `Client::get_range`).
//!
//! CRC32C catches every burst error up to 32 bits and all but 2⁻³² of random damage to a
//! block, which is what disks and transports do; it is not a defence against an attacker who
//! rewrites stored bytes (the whole-object SHA-256 of a whole read still is).
//!
//! ```
//! use mictlanx::blocks::{BlockSummer, BLOCK_SIZE};
//!
//! let data = vec![7u8; BLOCK_SIZE as usize + 10];
//! let mut summer = BlockSummer::new();
//! summer.update(&data[..100]);
//! summer.update(&data[100..]);
//! let sums = summer.finish();
//! assert_eq!(sums.len(), 2);
//! assert!(sums.check(1, &data[BLOCK_SIZE as usize..]));
//! assert!(!sums.check(1, b"something else"));
//! ```

use std::fmt;

/// Bytes per block: 256 KiB (a 1 GiB object has 4,096 sums, 32 KiB of hex in its record).
pub const BLOCK_SIZE: u64 = 256 * 1024;

/// Response header of a ranged read carrying the sums of the blocks it covers:
/// `<block size> <index of the first block> <8 hex digits per block>`.
pub const HEADER: &str = "x-mictlanx-block-crc32c";

/// Most blocks one [`HEADER`] lists (8 KiB of hex, a 256 MiB range); longer ranges are
/// answered without it.
pub const MAX_HEADER_BLOCKS: u64 = 1024;

/// The CRC32C of each block of an object, in order; the last block may be short.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BlockSums {
    sums: Vec<u32>,
}

impl BlockSums {
    /// Sums computed elsewhere, in block order.
    pub fn from_sums(sums: Vec<u32>) -> Self {
        BlockSums { sums }
    }

    /// Sums of `data`, cut in blocks of [`BLOCK_SIZE`].
    ///
    /// ```
    /// let sums = mictlanx::blocks::BlockSums::of(b"abc");
    /// assert_eq!(sums.len(), 1);
    /// ```
    pub fn of(data: &[u8]) -> Self {
        let mut summer = BlockSummer::new();
        summer.update(data);
        summer.finish()
    }

    /// Number of blocks.
    pub fn len(&self) -> usize {
        self.sums.len()
    }

    /// Whether there are no blocks (an empty object).
    pub fn is_empty(&self) -> bool {
        self.sums.is_empty()
    }

    /// The sum of block `index`.
    pub fn get(&self, index: u64) -> Option<u32> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.sums.get(i))
            .copied()
    }

    /// The sums of blocks `first..first + count` (fewer past the end).
    pub fn slice(&self, first: u64, count: u64) -> &[u32] {
        let start = usize::try_from(first).unwrap_or(usize::MAX).min(self.len());
        let end = usize::try_from(first.saturating_add(count))
            .unwrap_or(usize::MAX)
            .min(self.len());
        &self.sums[start..end]
    }

    /// Whether `data` is block `index`.
    pub fn check(&self, index: u64, data: &[u8]) -> bool {
        self.get(index) == Some(crc32c::crc32c(data))
    }

    /// The sums as hex, 8 digits per block (how records store them).
    ///
    /// ```
    /// use mictlanx::blocks::BlockSums;
    /// let sums = BlockSums::of(b"abc");
    /// assert_eq!(BlockSums::from_hex(&sums.to_hex()), Some(sums));
    /// ```
    pub fn to_hex(&self) -> String {
        hex_of(&self.sums)
    }

    /// Sums from [`to_hex`](Self::to_hex); `None` if `hex` is not made of 8-digit groups.
    pub fn from_hex(hex: &str) -> Option<Self> {
        parse_hex(hex).map(|sums| BlockSums { sums })
    }

    /// The [`HEADER`] value for blocks `first..first + count`.
    pub fn header_value(&self, first: u64, count: u64) -> String {
        format!("{BLOCK_SIZE} {first} {}", hex_of(self.slice(first, count)))
    }
}

/// The sums as hex: each one big-endian, 8 digits.
fn hex_of(sums: &[u32]) -> String {
    let bytes: Vec<u8> = sums.iter().flat_map(|s| s.to_be_bytes()).collect();
    hex::encode(bytes)
}

/// Sums from [`hex_of`]; `None` unless `hex` is whole 8-digit groups of hex digits.
fn parse_hex(hex: &str) -> Option<Vec<u32>> {
    let bytes = hex::decode(hex).ok()?;
    if bytes.len() % 4 != 0 {
        return None;
    }
    Some(
        bytes
            .chunks_exact(4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
    )
}

/// Computes [`BlockSums`] from bytes fed in pieces of any size.
#[derive(Debug, Clone, Default)]
pub struct BlockSummer {
    sums: Vec<u32>,
    current: u32,
    filled: u64,
}

impl BlockSummer {
    /// An empty summer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next bytes.
    pub fn update(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let room = usize::try_from(BLOCK_SIZE - self.filled).unwrap_or(usize::MAX);
            let (head, rest) = data.split_at(room.min(data.len()));
            self.current = crc32c::crc32c_append(self.current, head);
            self.filled += head.len() as u64;
            if self.filled == BLOCK_SIZE {
                self.sums.push(self.current);
                self.current = 0;
                self.filled = 0;
            }
            data = rest;
        }
    }

    /// The sums of everything fed.
    pub fn finish(mut self) -> BlockSums {
        if self.filled > 0 {
            self.sums.push(self.current);
        }
        BlockSums { sums: self.sums }
    }
}

/// A parsed [`HEADER`]: the sums of consecutive blocks starting at `first`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockHeader {
    /// Bytes per block.
    pub block_size: u64,
    /// Index of the first block listed.
    pub first: u64,
    /// The sums, from block `first` on.
    pub sums: Vec<u32>,
}

/// A [`HEADER`] value that is not `<size> <first> <hex>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadBlockHeader;

impl fmt::Display for BadBlockHeader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "malformed {HEADER} header")
    }
}

impl std::error::Error for BadBlockHeader {}

impl std::str::FromStr for BlockHeader {
    type Err = BadBlockHeader;

    /// ```
    /// use mictlanx::blocks::{BlockHeader, BlockSums};
    /// let sums = BlockSums::of(b"abc");
    /// let h: BlockHeader = sums.header_value(0, 1).parse().unwrap();
    /// assert_eq!((h.first, h.sums.len()), (0, 1));
    /// assert!("262144 x 00".parse::<BlockHeader>().is_err());
    /// ```
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(' ');
        let block_size = parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .ok_or(BadBlockHeader)?;
        let first = parts
            .next()
            .and_then(|p| p.parse::<u64>().ok())
            .ok_or(BadBlockHeader)?;
        let sums = parse_hex(parts.next().unwrap_or("")).ok_or(BadBlockHeader)?;
        if parts.next().is_some() {
            return Err(BadBlockHeader);
        }
        Ok(BlockHeader {
            block_size,
            first,
            sums,
        })
    }
}

impl BlockHeader {
    /// Whether `data`, the bytes of an answer that starts at byte `offset` of the object,
    /// is made of whole listed blocks (the last may be short only if `object_size` ends it)
    /// whose sums all match.
    ///
    /// ```
    /// use mictlanx::blocks::{BlockHeader, BlockSums};
    /// let data = b"hello";
    /// let h: BlockHeader = BlockSums::of(data).header_value(0, 1).parse().unwrap();
    /// assert!(h.verifies(0, data, 5));
    /// assert!(!h.verifies(0, b"hellO", 5));
    /// assert!(!h.verifies(0, b"hell", 5));
    /// ```
    pub fn verifies(&self, offset: u64, data: &[u8], object_size: u64) -> bool {
        if offset % self.block_size != 0 || offset / self.block_size != self.first {
            return false;
        }
        let size = usize::try_from(self.block_size).unwrap_or(usize::MAX);
        let blocks: Vec<&[u8]> = data.chunks(size).collect();
        if blocks.len() != self.sums.len() {
            return false;
        }
        let end = offset + data.len() as u64;
        let whole_or_last = |b: &[u8]| b.len() == size || end == object_size;
        blocks
            .iter()
            .zip(&self.sums)
            .all(|(b, s)| whole_or_last(b) && crc32c::crc32c(b) == *s)
    }
}

/// The block-aligned span `(start, end)` (end exclusive) covering bytes `start..end` of an
/// object of `size` bytes.
///
/// ```
/// use mictlanx::blocks::{aligned_span, BLOCK_SIZE};
/// assert_eq!(aligned_span(10, 20, 1000), (0, 1000));
/// assert_eq!(aligned_span(BLOCK_SIZE + 1, BLOCK_SIZE + 2, 3 * BLOCK_SIZE), (BLOCK_SIZE, 2 * BLOCK_SIZE));
/// ```
pub fn aligned_span(start: u64, end: u64, size: u64) -> (u64, u64) {
    let first = start - start % BLOCK_SIZE;
    let last = end
        .div_ceil(BLOCK_SIZE)
        .saturating_mul(BLOCK_SIZE)
        .min(size);
    (first, last.max(first))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_of_any_size_give_the_same_sums() {
        let data: Vec<u8> = (0..(3 * BLOCK_SIZE + 17))
            .map(|i| (i % 251) as u8)
            .collect();
        let whole = BlockSums::of(&data);
        assert_eq!(whole.len(), 4);
        for piece in [1usize, 1000, 65_536, 262_143, 262_145, 1 << 20] {
            let mut s = BlockSummer::new();
            for p in data.chunks(piece) {
                s.update(p);
            }
            assert_eq!(s.finish(), whole, "pieces of {piece}");
        }
        for (i, block) in data.chunks(BLOCK_SIZE as usize).enumerate() {
            assert!(whole.check(i as u64, block));
        }
        assert!(BlockSums::of(b"").is_empty());
    }

    #[test]
    fn hex_round_trip_and_bad_hex() {
        let sums = BlockSums::from_sums(vec![0, 1, u32::MAX]);
        assert_eq!(sums.to_hex(), "0000000000000001ffffffff");
        assert_eq!(BlockSums::from_hex(&sums.to_hex()), Some(sums));
        assert_eq!(BlockSums::from_hex(""), Some(BlockSums::default()));
        assert_eq!(BlockSums::from_hex("123"), None);
        assert_eq!(BlockSums::from_hex("zzzzzzzz"), None);
        assert_eq!(BlockSums::from_hex("ééééé\u{0}"), None);
    }

    #[test]
    fn header_checks_whole_blocks_only() {
        let data: Vec<u8> = (0..(2 * BLOCK_SIZE + 5)).map(|i| (i % 13) as u8).collect();
        let size = data.len() as u64;
        let sums = BlockSums::of(&data);
        let h: BlockHeader = sums.header_value(1, 2).parse().unwrap();
        let tail = &data[BLOCK_SIZE as usize..];
        assert!(h.verifies(BLOCK_SIZE, tail, size));
        // Not starting at the listed block, a partial block, a damaged byte.
        assert!(!h.verifies(0, tail, size));
        assert!(!h.verifies(BLOCK_SIZE, &tail[..tail.len() - 1], size));
        let mut bad = tail.to_vec();
        bad[10] ^= 1;
        assert!(!h.verifies(BLOCK_SIZE, &bad, size));
        for hostile in [
            "",
            "0 0 ",
            "x 0 00000000",
            "262144 0 0000000",
            "1 2 00000000 x",
        ] {
            assert!(hostile.parse::<BlockHeader>().is_err(), "{hostile:?}");
        }
    }

    #[test]
    fn spans_cover_and_stay_inside() {
        assert_eq!(aligned_span(0, 0, 0), (0, 0));
        assert_eq!(aligned_span(0, 1, 1), (0, 1));
        let size = 5 * BLOCK_SIZE + 3;
        assert_eq!(
            aligned_span(BLOCK_SIZE, 2 * BLOCK_SIZE, size),
            (BLOCK_SIZE, 2 * BLOCK_SIZE)
        );
        assert_eq!(
            aligned_span(5 * BLOCK_SIZE, size, size),
            (5 * BLOCK_SIZE, size)
        );
        assert_eq!(
            aligned_span(BLOCK_SIZE - 1, BLOCK_SIZE + 1, size),
            (0, 2 * BLOCK_SIZE)
        );
    }
}
