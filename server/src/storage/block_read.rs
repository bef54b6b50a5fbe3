//! Reading a data file block by block, each block checked against its CRC32C before any of
//! its bytes is handed on.
//!
//! A read (whole or ranged) is widened to the blocks that cover it ([`BlockSpan`]); every
//! block is read whole, checked, and only then cut to the bytes asked for. A block that does
//! not match quarantines the object (so repair replaces it from another replica) and ends
//! the read with an error: no byte of a damaged block ever leaves the peer.

use std::fs::File;
use std::io::{self, Read};

use bytes::Bytes;
use mictlanx::blocks::{BlockSums, BLOCK_SIZE};

use super::meta::ObjectRecord;
use super::read::ObjectStream;
use super::{Store, StoreError};

/// Blocks read per trip to the blocking pool (1 MiB).
const BLOCKS_PER_PIECE: u64 = 4;

/// The whole blocks covering a byte range of an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BlockSpan {
    /// First byte (a block boundary).
    start: u64,
    /// One past the last byte (a block boundary, or the object's end).
    end: u64,
}

impl BlockSpan {
    /// The blocks covering bytes `start..end` of an object of `size` bytes.
    pub(crate) fn covering(start: u64, end: u64, size: u64) -> Self {
        let (start, end) = mictlanx::blocks::aligned_span(start, end, size);
        BlockSpan { start, end }
    }

    /// Bytes in the span.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Index of its first block.
    pub(crate) fn first_block(&self) -> u64 {
        self.start / BLOCK_SIZE
    }

    /// Number of blocks.
    pub(crate) fn blocks(&self) -> u64 {
        self.len().div_ceil(BLOCK_SIZE)
    }

    /// Where byte `at` of the object (inside the span) lies in the span.
    pub(crate) fn offset_of(&self, at: u64) -> usize {
        usize::try_from(at.saturating_sub(self.start)).unwrap_or(usize::MAX)
    }
}

/// What checks blocks, and quarantines the object when one fails.
pub(crate) struct BlockCheck {
    store: Store,
    record: ObjectRecord,
    sums: BlockSums,
}

impl BlockCheck {
    pub(crate) fn new(store: Store, record: ObjectRecord, sums: BlockSums) -> Self {
        BlockCheck {
            store,
            record,
            sums,
        }
    }

    /// Reads the `count` bytes of blocks from `first` on at `file`'s position and checks
    /// them. Blocking.
    fn read_blocks(&self, file: &mut File, first: u64, count: u64) -> Result<Bytes, StoreError> {
        let mut buf = Vec::with_capacity(usize::try_from(count).unwrap_or(0));
        file.take(count)
            .read_to_end(&mut buf)
            .map_err(StoreError::io("reading an object"))?;
        if buf.len() as u64 != count {
            return Err(self.fail("file shorter than recorded"));
        }
        let size = usize::try_from(BLOCK_SIZE).unwrap_or(usize::MAX);
        for (i, block) in buf.chunks(size).enumerate() {
            if !self.sums.check(first + i as u64, block) {
                return Err(self.fail("block checksum mismatch"));
            }
        }
        Ok(Bytes::from(buf))
    }

    /// The bytes of `span`, checked, reading from `file`'s position (the span's start).
    /// Blocking.
    pub(crate) fn read_verified(
        &self,
        file: &mut File,
        span: BlockSpan,
    ) -> Result<Bytes, StoreError> {
        seek(file, span.start)?;
        self.read_blocks(file, span.first_block(), span.len())
    }

    /// Checks every block of `span` without keeping the bytes. Blocking.
    pub(crate) fn verify(&self, file: &mut File, span: BlockSpan) -> Result<(), StoreError> {
        seek(file, span.start)?;
        let piece = BLOCKS_PER_PIECE * BLOCK_SIZE;
        let mut at = span.start;
        while at < span.end {
            let n = piece.min(span.end - at);
            self.read_blocks(file, at / BLOCK_SIZE, n)?;
            at += n;
        }
        Ok(())
    }

    /// Quarantines the object (logging if that fails too) and returns the error to answer.
    fn fail(&self, what: &str) -> StoreError {
        let meta = &self.record.metadata;
        tracing::error!(event = "BLOCK.CORRUPT", bucket_id = %meta.bucket_id, key = %meta.key, file = %self.record.file, what);
        if let Err(e) =
            self.store
                .quarantine_blocking(&meta.bucket_id, &meta.key, &self.record.file)
        {
            tracing::error!(event = "QUARANTINE.FAILED", error = %e);
        }
        StoreError::Corrupt {
            bucket_id: meta.bucket_id.clone(),
            key: meta.key.clone(),
        }
    }
}

/// Positions `file` at byte `at`. Blocking.
pub(crate) fn seek(file: &mut File, at: u64) -> Result<(), StoreError> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(at))
        .map(drop)
        .map_err(StoreError::io("seeking in an object"))
}

/// A block-checked read of bytes `from..to` of a file, streamed in pieces of
/// [`BLOCKS_PER_PIECE`] blocks.
pub(crate) struct BlockStream {
    check: BlockCheck,
    file: File,
    /// Next byte of the file to read (a block boundary).
    at: u64,
    span_end: u64,
    /// Bytes of the first piece before the range starts.
    skip: usize,
    /// Bytes of the range still to hand on.
    remaining: u64,
}

impl BlockStream {
    /// Reads `from..to` (inside `span`), positioning `file` at the span's start. Blocking.
    pub(crate) fn new(
        check: BlockCheck,
        mut file: File,
        span: BlockSpan,
        from: u64,
        to: u64,
    ) -> Result<Self, StoreError> {
        seek(&mut file, span.start)?;
        Ok(BlockStream {
            check,
            file,
            at: span.start,
            span_end: span.end,
            skip: span.offset_of(from),
            remaining: to.saturating_sub(from),
        })
    }

    /// The next checked piece of the range. Blocking.
    fn next_piece(&mut self) -> Result<Bytes, StoreError> {
        let n = (BLOCKS_PER_PIECE * BLOCK_SIZE).min(self.span_end - self.at);
        let bytes = self
            .check
            .read_blocks(&mut self.file, self.at / BLOCK_SIZE, n)?;
        self.at += n;
        let skip = std::mem::take(&mut self.skip).min(bytes.len());
        let keep = usize::try_from(self.remaining)
            .unwrap_or(usize::MAX)
            .min(bytes.len() - skip);
        self.remaining -= keep as u64;
        Ok(bytes.slice(skip..skip + keep))
    }

    /// The range as a stream; a damaged block ends it with an error in its place.
    pub(crate) fn into_stream(self) -> ObjectStream {
        Box::pin(futures::stream::unfold(Some(self), |state| async move {
            let mut reader = state?;
            if reader.remaining == 0 {
                return None;
            }
            let trip = tokio::task::spawn_blocking(move || {
                let piece = reader.next_piece();
                (reader, piece)
            })
            .await;
            match trip {
                Ok((reader, Ok(piece))) => Some((Ok(piece), Some(reader))),
                Ok((_, Err(e))) => Some((
                    Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
                    None,
                )),
                Err(e) => Some((Err(io::Error::other(e)), None)),
            }
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_and_offsets() {
        let size = 3 * BLOCK_SIZE + 10;
        let s = BlockSpan::covering(BLOCK_SIZE + 5, BLOCK_SIZE + 6, size);
        assert_eq!((s.first_block(), s.blocks(), s.len()), (1, 1, BLOCK_SIZE));
        assert_eq!(s.offset_of(BLOCK_SIZE + 5), 5);
        let tail = BlockSpan::covering(3 * BLOCK_SIZE, size, size);
        assert_eq!((tail.first_block(), tail.blocks(), tail.len()), (3, 1, 10));
        let all = BlockSpan::covering(0, size, size);
        assert_eq!((all.blocks(), all.len()), (4, size));
        let empty = BlockSpan::covering(0, 0, 0);
        assert_eq!((empty.blocks(), empty.len()), (0, 0));
    }
}
