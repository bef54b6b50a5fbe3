//! Ranged reads of a ball (`get_range`), verified block by block end to end.
//!
//! A byte range of a ball maps to ranges of its chunks (all as long as chunk 0 but the
//! last). Each chunk range is widened to whole blocks of
//! [`BLOCK_SIZE`](crate::blocks::BLOCK_SIZE) and asked for with `Range`; the answer carries
//! the CRC32C of those blocks ([`crate::blocks::HEADER`]), which the bytes must match before
//! they are cut to the range and returned. A chunk's SHA-256 cannot vouch for part of it;
//! these sums can. An answer without sums (a router or peer that does not send them) is
//! refused rather than returned unchecked.

use std::ops::Range;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

use super::get::num_chunks;
use super::http::{check, read_exact, send};
use super::put::ball_ids;
use super::retry::{self, CallSpec};
use super::{paths, Client, Inner};
use crate::blocks::{aligned_span, BlockHeader, HEADER};
use crate::id::chunk_key;
use crate::model::Metadata;
use crate::routers::RouterState;
use crate::Error;

/// Most bytes one ranged request asks for: 64 MiB (256 blocks, 2 KiB of sums).
const MAX_REQUEST: u64 = 64 << 20;

impl Client {
    /// Bytes `range` (end exclusive) of a ball, each of them checked against the CRC32C of
    /// its stored block before it is returned.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`]; [`Error::Validation`] when the range is not inside the ball
    /// (or the ball is encrypted: read it whole with
    /// [`get_bytes_opts`](Self::get_bytes_opts)); [`Error::NotFound`]; [`Error::Integrity`]
    /// when bytes do not match their block sums (or come without them) after the retries;
    /// transport and server errors after retries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let header = client.get_range("videos", "intro", 0..1024).await?;
    /// assert!(header.len() <= 1024);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_range(
        &self,
        bucket: &str,
        ball_id: &str,
        range: Range<u64>,
    ) -> Result<Bytes, Error> {
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        let inner = &self.inner;
        let first = inner
            .fetch_metadata(&bucket, &chunk_key(&ball_id, 0), None)
            .await?
            .metadata;
        if crate::xolo::format::is_sealed(&first.tags) {
            return Err(Error::Validation {
                message: format!(
                    "{bucket}@{ball_id} is encrypted: ranges of encrypted balls are not supported, read it whole with a key"
                ),
            });
        }
        let layout = Layout::of(inner, &bucket, &ball_id, &first).await?;
        if range.start > range.end || range.end > layout.size {
            return Err(Error::Validation {
                message: format!(
                    "range {}..{} is not inside {bucket}@{ball_id} ({} bytes)",
                    range.start, range.end, layout.size
                ),
            });
        }
        let mut out =
            BytesMut::with_capacity(usize::try_from(range.end - range.start).unwrap_or(0));
        for (index, within) in layout.pieces(range) {
            let key = chunk_key(&ball_id, index);
            let chunk_len = layout.chunk_len(index);
            out.extend_from_slice(
                &inner
                    .fetch_verified_range(&bucket, &key, within, chunk_len)
                    .await?,
            );
        }
        Ok(out.freeze())
    }
}

/// How a ball's bytes are laid out in its chunks.
struct Layout {
    chunks: u64,
    chunk_size: u64,
    size: u64,
}

impl Layout {
    /// Learned from chunk 0's metadata (and the last chunk's, for the total size).
    async fn of(
        inner: &Inner,
        bucket: &str,
        ball_id: &str,
        first: &Metadata,
    ) -> Result<Self, Error> {
        let chunks = num_chunks(first)?;
        if chunks <= 1 {
            return Ok(Layout {
                chunks: 1,
                chunk_size: first.size.max(1),
                size: first.size,
            });
        }
        // Every chunk but the last is as long as chunk 0 (whatever a `chunk_size` tag says).
        let chunk_size = first.size.max(1);
        let last = inner
            .fetch_metadata(bucket, &chunk_key(ball_id, chunks - 1), None)
            .await?
            .metadata;
        let size = (chunks - 1)
            .checked_mul(chunk_size)
            .and_then(|s| s.checked_add(last.size))
            .ok_or_else(|| Error::Validation {
                message: format!("{bucket}@{ball_id}: chunk sizes overflow"),
            })?;
        Ok(Layout {
            chunks,
            chunk_size,
            size,
        })
    }

    /// Bytes in chunk `index`.
    fn chunk_len(&self, index: u64) -> u64 {
        let start = index * self.chunk_size;
        if index + 1 == self.chunks {
            self.size - start
        } else {
            self.chunk_size
        }
    }

    /// The chunks `range` touches, each with the range within it.
    fn pieces(&self, range: Range<u64>) -> Vec<(u64, Range<u64>)> {
        let mut out = Vec::new();
        let mut at = range.start;
        while at < range.end {
            let index = (at / self.chunk_size).min(self.chunks - 1);
            let chunk_start = index * self.chunk_size;
            let chunk_end = chunk_start + self.chunk_len(index);
            let end = range.end.min(chunk_end);
            out.push((index, at - chunk_start..end - chunk_start));
            at = end;
        }
        out
    }
}

impl Inner {
    /// Bytes `within` of `key` (a chunk of `chunk_len` bytes), fetched as whole blocks in
    /// requests of at most [`MAX_REQUEST`], checked against their sums, with retries.
    async fn fetch_verified_range(
        &self,
        bucket: &str,
        key: &str,
        within: Range<u64>,
        chunk_len: u64,
    ) -> Result<Bytes, Error> {
        let (start, end) = aligned_span(within.start, within.end, chunk_len);
        let mut out =
            BytesMut::with_capacity(usize::try_from(within.end - within.start).unwrap_or(0));
        let mut at = start;
        while at < end {
            let upto = end.min(at + MAX_REQUEST);
            let spec = CallSpec {
                event: "GET.RANGE",
                bucket,
                key,
                size: upto - at,
                cancel: None,
            };
            let (blocks, _) = retry::run(self, spec, |router| {
                self.fetch_blocks_once(router, bucket, key, at..upto, chunk_len)
            })
            .await?;
            // Cut the checked blocks to the bytes asked for.
            let from = within.start.max(at) - at;
            let to = within.end.min(upto) - at;
            let (from, to) = (
                usize::try_from(from).unwrap_or(0),
                usize::try_from(to).unwrap_or(0),
            );
            out.extend_from_slice(&blocks[from..to.min(blocks.len())]);
            at = upto;
        }
        Ok(out.freeze())
    }

    /// One ranged request for the whole blocks `span` of `key`, checked.
    async fn fetch_blocks_once(
        &self,
        router: Arc<RouterState>,
        bucket: &str,
        key: &str,
        span: Range<u64>,
        chunk_len: u64,
    ) -> Result<Bytes, Error> {
        if span.is_empty() {
            return Ok(Bytes::new());
        }
        let resp = check(
            send(
                self.http
                    .get(paths::url(&router, &paths::key_data(bucket, key)))
                    .header("Accept-Encoding", "identity")
                    .header("Range", format!("bytes={}-{}", span.start, span.end - 1)),
            )
            .await?,
        )
        .await?;
        let integrity = |message: String| Error::Integrity {
            message: format!(
                "range {}..{} of {bucket}@{key} from {}: {message}",
                span.start, span.end, router.id
            ),
        };
        if resp.status().as_u16() != 206 {
            return Err(integrity(format!(
                "answered {} instead of 206",
                resp.status()
            )));
        }
        let header: BlockHeader = resp
            .headers()
            .get(HEADER)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| integrity("no block sums sent".into()))?
            .parse()
            .map_err(|e| integrity(format!("{e}")))?;
        let data = read_exact(resp, span.end - span.start).await?;
        self.add_bytes_down(data.len());
        if !header.verifies(span.start, &data, chunk_len) {
            return Err(integrity("bytes do not match their block sums".into()));
        }
        Ok(data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_range_maps_to_the_chunks_it_touches() {
        let l = Layout {
            chunks: 3,
            chunk_size: 10,
            size: 25,
        };
        assert_eq!(l.chunk_len(2), 5);
        assert_eq!(l.pieces(0..0), vec![]);
        assert_eq!(l.pieces(3..7), vec![(0, 3..7)]);
        assert_eq!(l.pieces(8..22), vec![(0, 8..10), (1, 0..10), (2, 0..2)]);
        assert_eq!(l.pieces(20..25), vec![(2, 0..5)]);
        let one = Layout {
            chunks: 1,
            chunk_size: 7,
            size: 7,
        };
        assert_eq!(one.pieces(0..7), vec![(0, 0..7)]);
    }
}
