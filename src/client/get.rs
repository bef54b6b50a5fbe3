//! Gets into memory (`get_bytes`, `get_chunk`) and the chunk fetch every read shares.
//!
//! A chunk is its metadata and its bytes: one exchange (R5) with a router that sends the
//! metadata along (`X-Mictlanx-Metadata`, see [`crate::model::metadata_header`]), else R4
//! and R5. The bytes must be exactly `metadata.size` long and, when the metadata's checksum is a SHA-256, hash to it; a
//! mismatch is an [`Error::Integrity`], which is retried (the router may read another
//! replica) and returned only when the retries are spent. Unverified bytes are never returned.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::encryption::{open_all, opener_for};
use super::http::{check, read_exact, send, send_json};
use super::options::{GetOptions, GetResult, Progress};
use super::put::ball_ids;
use super::retry::{self, CallSpec};
use super::{cancelled, digest, paths, Client, Inner};
use crate::checksum::is_sha256_hex;
use crate::id::{chunk_key, BucketId, Key};
use crate::model::{metadata_header, GetMetadataResponse, Metadata};
use crate::routers::RouterState;
use crate::Error;

/// A fetched, verified chunk.
#[derive(Debug, Clone)]
pub(crate) struct FetchedChunk {
    pub metadata: Metadata,
    pub data: Bytes,
    pub attempt: u32,
}

impl Client {
    /// Reads a whole ball into memory, verified.
    ///
    /// Learns the number of chunks from chunk `0`'s metadata, fetches the chunks
    /// concurrently, checks each one's SHA-256 and the whole ball's `full_checksum`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`]; [`Error::NotFound`] when the ball (or one of its chunks) does
    /// not exist; [`Error::Integrity`] when bytes do not match their checksums after the
    /// retries; [`Error::Validation`] when chunk 0 has no `num_chunks` tag (not a chunked
    /// ball: read its key with [`metadata`](Self::metadata) and
    /// [`get_chunk`](Self::get_chunk)); transport and server errors after retries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let ball = client.get_bytes("photos", "pic_b").await?;
    /// println!("{} bytes in {} chunks", ball.data.len(), ball.chunks.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_bytes(&self, bucket: &str, ball_id: &str) -> Result<GetResult, Error> {
        self.get_bytes_opts(bucket, ball_id, GetOptions::default())
            .await
    }

    /// [`get_bytes`](Self::get_bytes) with options: concurrency, cancellation, progress, and
    /// the key that opens an encrypted ball ([`GetOptions::decrypt_with`]).
    ///
    /// # Errors
    ///
    /// As [`get_bytes`](Self::get_bytes), or a cancelled error (see
    /// [`Error::is_cancelled`](crate::Error::is_cancelled)). For encryption:
    /// [`Error::MissingKey`] (an encrypted ball and no key), [`Error::NotEncrypted`] (a key
    /// and a plain ball), [`Error::NotARecipient`] (the ball is not encrypted to the key),
    /// [`Error::Decryption`] (tampered, reordered or truncated chunks, or a wrong key).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mictlanx::xolo::{default_key_dir, KeyPair};
    /// use mictlanx::GetOptions;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let alice = KeyPair::load(default_key_dir()?, "alice")?;
    /// let opts = GetOptions::default().decrypt_with(&alice);
    /// let ball = client.get_bytes_opts("secrets", "plan", opts).await?;
    /// println!("{} bytes of plaintext", ball.data.len());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_bytes_opts(
        &self,
        bucket: &str,
        ball_id: &str,
        opts: GetOptions,
    ) -> Result<GetResult, Error> {
        let started = Instant::now();
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        let hooks = opts.hooks();
        let cancel = hooks.token();
        let chunk0 = self
            .inner
            .fetch_chunk(&bucket, &chunk_key(&ball_id, 0), Some(&cancel))
            .await?;
        let first = chunk0.metadata.clone();
        let n = num_chunks(&first)?;
        // Decided before any byte is fetched: a missing or wrong key fails fast.
        let opener = opener_for(&bucket, &ball_id, &first, n, &opts)?;
        let limit = opts
            .max_concurrency
            .unwrap_or(self.inner.config.max_concurrency)
            .max(1);
        let expected_full = first.full_checksum().map(str::to_owned);
        let mut slots: Vec<Option<FetchedChunk>> = vec![None; usize::try_from(n).unwrap_or(0)];
        {
            let inner = &self.inner;
            let (bucket, ball_id, cancel) = (&bucket, &ball_id, &cancel);
            let mut fetches = futures::stream::iter(1..n)
                .map(|i| async move {
                    inner
                        .fetch_chunk(bucket, &chunk_key(ball_id, i), Some(cancel))
                        .await
                        .map(|f| (i, f))
                })
                .buffer_unordered(limit);
            let (mut done, mut bytes_done) = (1u64, chunk0.metadata.size);
            hooks.report(Progress {
                chunks_done: done,
                chunks_total: n,
                bytes_done,
                bytes_total: 0,
                attempt: chunk0.attempt,
            });
            if let Some(slot) = slots.first_mut() {
                *slot = Some(chunk0);
            }
            loop {
                let next = tokio::select! {
                    biased;
                    () = cancel.cancelled() => return Err(cancelled()),
                    next = fetches.next() => next,
                };
                let Some(fetched) = next else { break };
                let (i, chunk) = fetched?;
                done += 1;
                bytes_done = bytes_done.saturating_add(chunk.metadata.size);
                hooks.report(Progress {
                    chunks_done: done,
                    chunks_total: n,
                    bytes_done,
                    bytes_total: 0,
                    attempt: chunk.attempt,
                });
                if let Some(slot) = usize::try_from(i).ok().and_then(|i| slots.get_mut(i)) {
                    *slot = Some(chunk);
                }
            }
        }
        let chunks: Vec<FetchedChunk> = slots.into_iter().flatten().collect();
        if u64::try_from(chunks.len()).ok() != Some(n) {
            return Err(Error::NotFound {
                message: format!("{bucket}/{ball_id}: some of its {n} chunks are missing"),
            });
        }
        let data = assemble(&chunks);
        if let Some(expected) = expected_full
            .filter(|c| is_sha256_hex(c))
            .filter(|c| !already_verified_whole(&chunks, c))
        {
            let actual = digest::sha256(data.clone()).await?;
            if !actual.eq_ignore_ascii_case(&expected) {
                tracing::warn!(
                    event = "INTEGRITY.CHECK.FAILED",
                    bucket_id = %bucket,
                    key = %ball_id,
                    remote_checksum = %expected,
                    local_checksum = %actual,
                );
                return Err(Error::Integrity {
                    message: format!(
                        "{bucket}/{ball_id}: the ball hashes to {actual}, its full_checksum is {expected}"
                    ),
                });
            }
        }
        let data = match opener {
            Some(opener) => open_all(opener, data).await?,
            None => data,
        };
        tracing::info!(
            event = "GET",
            bucket_id = %bucket,
            key = %ball_id,
            size = data.len(),
            response_time = started.elapsed().as_secs_f64(),
        );
        Ok(GetResult {
            data,
            chunks: chunks.into_iter().map(|c| c.metadata).collect(),
        })
    }

    /// Reads chunk `index` of a ball (key `<ball_id>_<index>`), verified against its
    /// metadata. These are the stored bytes: for an encrypted ball, a sealed segment (its
    /// metadata's `xolo_*` tags say so); open encrypted balls with
    /// [`get_bytes_opts`](Self::get_bytes_opts) and a key.
    ///
    /// # Errors
    ///
    /// As [`get_bytes`](Self::get_bytes).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let (bytes, metadata) = client.get_chunk("data", "big", 1).await?;
    /// assert_eq!(bytes.len() as u64, metadata.size);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn get_chunk(
        &self,
        bucket: &str,
        ball_id: &str,
        index: u64,
    ) -> Result<(Bytes, Metadata), Error> {
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        let chunk = self
            .inner
            .fetch_chunk(&bucket, &chunk_key(&ball_id, index), None)
            .await?;
        Ok((chunk.data, chunk.metadata))
    }

    /// The metadata of one key (R4), e.g. `"report_c_0"`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], [`Error::NotFound`], transport and server errors after retries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let meta = client.metadata("reports", "report_c_0").await?;
    /// println!("{:?}", meta.metadata.tags.get("fullname"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn metadata(&self, bucket: &str, key: &str) -> Result<GetMetadataResponse, Error> {
        let bucket = BucketId::new(bucket)?;
        let key = Key::new(key)?;
        self.inner.fetch_metadata(&bucket, &key, None).await
    }
}

/// `num_chunks` of chunk 0, required to read a chunked ball.
pub(crate) fn num_chunks(first: &Metadata) -> Result<u64, Error> {
    first.num_chunks().ok_or_else(|| Error::Validation {
        message: format!(
            "{} has no valid num_chunks tag: not a chunked ball (read the key itself)",
            first.key
        ),
    })
}

/// Whether `full` was already checked: a single chunk is the whole ball, and its bytes were
/// verified against its own checksum when it was fetched; when that is the same SHA-256,
/// hashing the same bytes again would tell nothing new.
fn already_verified_whole(chunks: &[FetchedChunk], full: &str) -> bool {
    matches!(chunks, [only] if is_sha256_hex(&only.metadata.checksum)
        && only.metadata.checksum.eq_ignore_ascii_case(full))
}

/// The chunks' bytes, concatenated (no copy for a single chunk).
fn assemble(chunks: &[FetchedChunk]) -> Bytes {
    if let [only] = chunks {
        return only.data.clone();
    }
    let total = chunks.iter().map(|c| c.data.len()).sum();
    let mut buf = BytesMut::with_capacity(total);
    for c in chunks {
        buf.extend_from_slice(&c.data);
    }
    buf.freeze()
}

impl Inner {
    /// R4 with retries.
    pub(crate) async fn fetch_metadata(
        &self,
        bucket: &str,
        key: &str,
        cancel: Option<&CancellationToken>,
    ) -> Result<GetMetadataResponse, Error> {
        let spec = CallSpec {
            event: "GET.METADATA",
            bucket,
            key,
            size: 0,
            cancel,
        };
        let (meta, _) = retry::run(self, spec, |router| {
            send_json::<GetMetadataResponse>(
                self.http
                    .get(paths::url(&router, &paths::key_metadata(bucket, key))),
            )
        })
        .await?;
        Ok(meta)
    }

    /// One key's metadata and bytes, verified, with retries.
    ///
    /// R5 first: our routers send the metadata with the bytes (`X-Mictlanx-Metadata`), so
    /// that is the whole exchange. Otherwise (a MictlanX router, or metadata too large for
    /// the header) R4 is asked on the same router while the bytes wait, and the bytes are
    /// then read, bounded by the size R4 gave.
    pub(crate) async fn fetch_chunk(
        &self,
        bucket: &str,
        key: &str,
        cancel: Option<&CancellationToken>,
    ) -> Result<FetchedChunk, Error> {
        let started = Instant::now();
        let spec = CallSpec {
            event: "GET.CHUNK",
            bucket,
            key,
            size: 0,
            cancel,
        };
        let ((metadata, data), attempt) = retry::run(self, spec, |router| {
            self.fetch_chunk_once(router, bucket, key)
        })
        .await?;
        tracing::debug!(
            event = "GET.CHUNK",
            bucket_id = bucket,
            key,
            size = data.len(),
            attempt,
            response_time = started.elapsed().as_secs_f64(),
        );
        Ok(FetchedChunk {
            metadata,
            data,
            attempt,
        })
    }

    /// One attempt of [`fetch_chunk`](Self::fetch_chunk) on one router.
    async fn fetch_chunk_once(
        &self,
        router: Arc<RouterState>,
        bucket: &str,
        key: &str,
    ) -> Result<(Metadata, Bytes), Error> {
        let resp = check(
            send(
                self.http
                    .get(paths::url(&router, &paths::key_data(bucket, key)))
                    .header("Accept-Encoding", "identity"),
            )
            .await?,
        )
        .await?;
        let metadata = match metadata_sent_with(&resp, key)? {
            Some(metadata) => metadata,
            None => {
                send_json::<GetMetadataResponse>(
                    self.http
                        .get(paths::url(&router, &paths::key_metadata(bucket, key))),
                )
                .await?
                .metadata
            }
        };
        let data = read_exact(resp, metadata.size).await?;
        self.add_bytes_down(data.len());
        let data = verify_chunk(bucket, &metadata, data, &router.id).await?;
        Ok((metadata, data))
    }
}

/// The metadata a data answer carries for `key` (`None`: it carries none).
fn metadata_sent_with(resp: &reqwest::Response, key: &str) -> Result<Option<Metadata>, Error> {
    let Some(value) = resp.headers().get(metadata_header::NAME) else {
        return Ok(None);
    };
    // Integrity errors, like bytes that do not match: the next attempt may be served by
    // another replica.
    let metadata =
        metadata_header::decode(value.as_bytes()).map_err(|message| Error::Integrity {
            message: format!("the data answer of {key}: {message}"),
        })?;
    if metadata.key != key {
        return Err(Error::Integrity {
            message: format!(
                "asked for the bytes of {key}, the answer describes {}",
                metadata.key
            ),
        });
    }
    Ok(Some(metadata))
}

/// Checks a chunk's bytes against its metadata checksum (when that is a SHA-256).
async fn verify_chunk(
    bucket: &str,
    metadata: &Metadata,
    data: Bytes,
    router_id: &str,
) -> Result<Bytes, Error> {
    if !is_sha256_hex(&metadata.checksum) {
        return Ok(data);
    }
    let actual = digest::sha256(data.clone()).await?;
    if actual.eq_ignore_ascii_case(&metadata.checksum) {
        return Ok(data);
    }
    tracing::warn!(
        event = "INTEGRITY.CHECK.FAILED",
        bucket_id = bucket,
        key = %metadata.key,
        router_id,
        remote_checksum = %metadata.checksum,
        local_checksum = %actual,
    );
    Err(Error::Integrity {
        message: format!(
            "{bucket}/{}: received bytes hash to {actual}, the metadata says {}",
            metadata.key, metadata.checksum
        ),
    })
}
