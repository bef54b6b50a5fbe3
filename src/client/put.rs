//! Puts: `put_bytes`, `put_file`, `put_stream`.
//!
//! Each chunk is R1 (`POST .../metadata`, which places the replicas and returns a task id)
//! then R2 (the bytes, to that task) on the same router, retried as one unit. Chunks go up
//! concurrently. A put that fails or is cancelled deletes what it created; a chunk that the
//! cluster already holds with the same size and checksum counts as stored, so re-putting a
//! ball is idempotent.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::CONTENT_TYPE;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::builder::{LARGE_BALL_CHUNK_SIZE, LARGE_BALL_THRESHOLD};
use super::encryption::{check_user_tags, seal_ball};
use super::http::{check, decode, send, send_json};
use super::options::{Hooks, Progress, PutOptions, PutResult};
use super::retry::{self, CallSpec};
use super::source::{spool, ChunkSource};
use super::tags::{chunk_tags, now_ms, ChunkFacts};
use super::{cancelled, digest, paths, Client, Inner};
use crate::blocking;
use crate::checksum::{digest_bytes, digest_file, BallDigest};
use crate::chunking::{ChunkPlan, ChunkRange};
use crate::id::{chunk_key, BallId, BucketId};
use crate::model::{
    DeletedByBallIdResponse, DeletedByKeyResponse, ErrorBody, GetMetadataResponse,
    NoAvailablePeersDetail, PutMetadataRequest, PutMetadataResponse, RouterPutChunkedResponse,
    Tags, DEFAULT_CONTENT_TYPE,
};
use crate::routers::RouterState;
use crate::Error;

const JSON: &str = "application/json";
const OCTET_STREAM: &str = "application/octet-stream";

/// A ball ready to go up: ids checked, plan made, full checksum known.
struct BallPlan {
    bucket: BucketId,
    ball_id: BallId,
    plan: ChunkPlan,
    full_checksum: String,
    /// Per-chunk checksums when known up front; otherwise computed as each chunk is read.
    chunk_checksums: Option<Vec<String>>,
    source: ChunkSource,
    /// The encryption's tags on every chunk (empty for a plain ball).
    encryption_tags: Tags,
}

impl BallPlan {
    /// A ball hashed in full before its upload: its checksum and every chunk's are known.
    fn hashed(
        bucket: BucketId,
        ball_id: BallId,
        plan: ChunkPlan,
        digest: BallDigest,
        source: ChunkSource,
    ) -> Self {
        Self {
            bucket,
            ball_id,
            plan,
            full_checksum: digest.full_checksum,
            chunk_checksums: Some(digest.chunk_checksums),
            source,
            encryption_tags: Tags::new(),
        }
    }
}

/// What the chunks of one put have done so far, shared by its uploads.
#[derive(Debug, Default)]
struct PutState {
    /// Keys whose metadata this put created (stored or half-stored).
    created: BTreeSet<String>,
    /// Whether some key already existed before this put (then cleanup must spare the ball).
    preexisting: bool,
    replicas: BTreeSet<String>,
    chunks_done: u64,
    bytes_done: u64,
    already_stored: u64,
}

/// How one chunk ended up stored.
enum ChunkOutcome {
    Uploaded { peers: Vec<String> },
    AlreadyStored { peers: Vec<String> },
}

fn lock(state: &Mutex<PutState>) -> std::sync::MutexGuard<'_, PutState> {
    // Plain bookkeeping updated in one step: usable even after a panic elsewhere.
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Client {
    /// Stores `data` as ball `ball_id` of `bucket`.
    ///
    /// The bytes are cut with the in-memory rule of the original client (a short tail joins
    /// the previous chunk; a 0-byte ball is one 0-byte chunk) and uploaded
    /// [`PutOptions::max_concurrency`] chunks at a time. Ids are validated and sanitised
    /// (`mictlanx::id`) before any request; the result carries the sanitised ids.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`] for a refused id; [`Error::MaxAvailabilityReached`] when the
    /// router cannot place the replicas (fewer healthy peers than the replication factor,
    /// or the key already stored with other content); the last error of a chunk that failed
    /// after its retries; a cancelled put's error (see [`Error::is_cancelled`](crate::Error::is_cancelled)).
    /// On any failure, what this put stored is deleted (best effort). With
    /// [`PutOptions::encrypt_to`]: [`Error::Validation`] for a chunk size of 16 bytes or
    /// less, no recipient or more than 64, an unusable key, or a user tag named `xolo_*`.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mictlanx::{Client, PutOptions};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = Client::builder().routers_uri("mictlanx://r0@127.0.0.1:60666/?protocol=http").build()?;
    /// let opts = PutOptions::default().with_replication_factor(2).with_tag("extension", "txt");
    /// let put = client.put_bytes("notes", "monday", "buy milk", opts).await?;
    /// println!("{} bytes in {} chunks on {:?}", put.size, put.num_chunks, put.replicas);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_bytes(
        &self,
        bucket: &str,
        ball_id: &str,
        data: impl Into<Bytes>,
        opts: PutOptions,
    ) -> Result<PutResult, Error> {
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        let data: Bytes = data.into();
        let chunk_size = self.chunk_size(&opts, len_u64(data.len()))?;
        if !opts.recipients.is_empty() {
            let len = len_u64(data.len());
            let source = ChunkSource::Memory(data);
            return self.put_sealed(bucket, ball_id, source, len, opts).await;
        }
        let plan = ChunkPlan::in_memory(len_u64(data.len()), chunk_size)?;
        let ball_digest = if data.len() <= digest::INLINE_LIMIT {
            // Cheaper than a trip to the blocking pool.
            digest_bytes(plan, &data)?
        } else {
            let hashed = data.clone();
            blocking::run("hashing", move || digest_bytes(plan, &hashed)).await??
        };
        let ball = BallPlan::hashed(
            bucket,
            ball_id,
            plan,
            ball_digest,
            ChunkSource::Memory(data),
        );
        self.inner.put_ball(ball, &opts).await
    }

    /// Stores the file at `path` as ball `ball_id` of `bucket`, streaming it from disk.
    ///
    /// The file is hashed first in one pass on the blocking pool (every chunk's checksum and
    /// the full checksum, which every chunk's tags carry), then each chunk's range is read
    /// when its upload starts, so memory is about `max_concurrency × chunk_size`. Chunks
    /// follow the file rule of the original client (fixed size, short last chunk).
    ///
    /// # Errors
    ///
    /// As [`put_bytes`](Self::put_bytes), plus [`Error::Io`] when the file cannot be read
    /// (or changes size while it is put).
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use mictlanx::{Client, PutOptions};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = Client::from_env()?;
    /// let put = client
    ///     .put_file("videos", "intro", "intro.mp4", PutOptions::default().with_chunk_size(25_000_000))
    ///     .await?;
    /// println!("stored {} as {}", put.full_checksum, put.ball_id);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_file(
        &self,
        bucket: &str,
        ball_id: &str,
        path: impl AsRef<Path>,
        opts: PutOptions,
    ) -> Result<PutResult, Error> {
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        self.chunk_size(&opts, 0)?;
        let path = path.as_ref().to_path_buf();
        if !opts.recipients.is_empty() {
            let len = tokio::fs::metadata(&path).await?.len();
            let source = ChunkSource::File(path);
            return self.put_sealed(bucket, ball_id, source, len, opts).await;
        }
        let ball_digest = digest_file(&path, |len| {
            ChunkPlan::file(len, self.chunk_size(&opts, len).unwrap_or(1))
        })
        .await?;
        let chunk_size = self.chunk_size(&opts, ball_digest.total_len)?;
        let plan = ChunkPlan::file(ball_digest.total_len, chunk_size)?;
        let ball = BallPlan::hashed(bucket, ball_id, plan, ball_digest, ChunkSource::File(path));
        self.inner.put_ball(ball, &opts).await
    }

    /// Stores a stream of unknown length as ball `ball_id` of `bucket`.
    ///
    /// Every chunk's tags carry the ball's length (`num_chunks`) and checksum, which are only
    /// known at the end of the stream, so the stream is first **spooled to a temporary file**
    /// in [`std::env::temp_dir`] while it is hashed (memory stays bounded), then put as
    /// [`put_file`](Self::put_file) does; the temporary file is removed in every case.
    ///
    /// # Errors
    ///
    /// As [`put_file`](Self::put_file); an error item of the stream ends the put with
    /// [`Error::Io`] wrapping it.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use bytes::Bytes;
    /// use mictlanx::{Client, PutOptions};
    ///
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = Client::from_env()?;
    /// let pieces = futures::stream::iter(vec![
    ///     Ok::<_, std::io::Error>(Bytes::from("part one, ")),
    ///     Ok(Bytes::from("part two")),
    /// ]);
    /// let put = client.put_stream("logs", "today", pieces, PutOptions::default()).await?;
    /// assert_eq!(put.size, 18);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn put_stream<S, E>(
        &self,
        bucket: &str,
        ball_id: &str,
        stream: S,
        opts: PutOptions,
    ) -> Result<PutResult, Error>
    where
        S: Stream<Item = Result<Bytes, E>>,
        E: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        // Refuses a zero chunk size before the stream is read.
        self.chunk_size(&opts, 0)?;
        let spooled = spool(stream, &opts.hooks().token()).await?;
        let chunk_size = self.chunk_size(&opts, spooled.len)?;
        if !opts.recipients.is_empty() {
            let source = ChunkSource::File(spooled.guard.path().to_path_buf());
            let result = self
                .put_sealed(bucket, ball_id, source, spooled.len, opts)
                .await;
            drop(spooled);
            return result;
        }
        let plan = ChunkPlan::file(spooled.len, chunk_size)?;
        let ball = BallPlan {
            bucket,
            ball_id,
            plan,
            full_checksum: spooled.full_checksum.clone(),
            chunk_checksums: None,
            source: ChunkSource::File(spooled.guard.path().to_path_buf()),
            encryption_tags: Tags::new(),
        };
        let result = self.inner.put_ball(ball, &opts).await;
        drop(spooled);
        result
    }

    /// An encrypted put ([`PutOptions::encrypt_to`]): the ball is sealed chunk by chunk as
    /// it goes up (see `client::encryption`).
    async fn put_sealed(
        &self,
        bucket: BucketId,
        ball_id: BallId,
        plain: ChunkSource,
        plain_len: u64,
        opts: PutOptions,
    ) -> Result<PutResult, Error> {
        check_user_tags(&opts.tags)?;
        let chunk_size = self.chunk_size(&opts, plain_len)?;
        let sealed = seal_ball(
            &bucket,
            &ball_id,
            plain,
            plain_len,
            chunk_size,
            &opts.recipients,
        )
        .await?;
        let mut ball = BallPlan::hashed(bucket, ball_id, sealed.plan, sealed.digest, sealed.source);
        ball.encryption_tags = sealed.tags;
        self.inner.put_ball(ball, &opts).await
    }

    /// Chunk size of a ball of `len` bytes: the put's own, else the configured one; with
    /// nothing configured, 256 kB or, for balls over [`LARGE_BALL_THRESHOLD`] bytes,
    /// [`LARGE_BALL_CHUNK_SIZE`].
    fn chunk_size(&self, opts: &PutOptions, len: u64) -> Result<u64, Error> {
        let config = &self.inner.config;
        match opts.chunk_size {
            Some(0) => Err(Error::Validation {
                message: "chunk size must be at least 1 byte".into(),
            }),
            Some(n) => Ok(n),
            None if config.auto_chunk_size && len > LARGE_BALL_THRESHOLD => {
                Ok(LARGE_BALL_CHUNK_SIZE.max(config.chunk_size))
            }
            None => Ok(config.chunk_size),
        }
    }
}

/// Checks a bucket id and a ball id.
pub(crate) fn ball_ids(bucket: &str, ball_id: &str) -> Result<(BucketId, BallId), Error> {
    Ok((BucketId::new(bucket)?, BallId::new(ball_id)?))
}

fn len_u64(n: usize) -> u64 {
    u64::try_from(n).unwrap_or(u64::MAX)
}

/// Cleans up after a put whose future was dropped mid-way (a put cancelled through its token
/// or failing cleans up itself and disarms this): the cleanup runs as a task on the current
/// runtime, because `Drop` cannot await.
struct CleanupOnDrop {
    inner: Arc<Inner>,
    bucket: BucketId,
    ball_id: BallId,
    state: Arc<Mutex<PutState>>,
    armed: bool,
}

impl Drop for CleanupOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (created, preexisting) = {
            let s = lock(&self.state);
            (s.created.clone(), s.preexisting)
        };
        if created.is_empty() {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let inner = Arc::clone(&self.inner);
        let bucket = self.bucket.clone();
        let ball_id = self.ball_id.clone();
        tracing::warn!(event = "PUT.DROPPED", bucket_id = %bucket, key = %ball_id);
        runtime.spawn(async move {
            inner.cleanup(&bucket, &ball_id, created, preexisting).await;
        });
    }
}

impl Inner {
    async fn put_ball(
        self: &Arc<Self>,
        ball: BallPlan,
        opts: &PutOptions,
    ) -> Result<PutResult, Error> {
        if opts.replication_factor == 0 {
            return Err(Error::Validation {
                message: "replication factor must be at least 1".into(),
            });
        }
        check_user_tags(&opts.tags)?;
        let started = Instant::now();
        let hooks = opts.hooks();
        let cancel = hooks.token();
        let state = Arc::new(Mutex::new(PutState::default()));
        let mut on_drop = CleanupOnDrop {
            inner: Arc::clone(self),
            bucket: ball.bucket.clone(),
            ball_id: ball.ball_id.clone(),
            state: Arc::clone(&state),
            armed: true,
        };
        let updated_at_ms = now_ms();
        let limit = opts
            .max_concurrency
            .unwrap_or(self.config.max_concurrency)
            .max(1);
        let failure = {
            let mut uploads = futures::stream::iter(ball.plan.iter())
                .map(|range| {
                    self.put_chunk(&ball, range, opts, updated_at_ms, &state, &hooks, &cancel)
                })
                .buffer_unordered(limit);
            loop {
                let next = tokio::select! {
                    biased;
                    () = cancel.cancelled() => break Some(cancelled()),
                    next = uploads.next() => next,
                };
                match next {
                    None => break None,
                    Some(Ok(())) => {}
                    Some(Err(e)) => break Some(e),
                }
            }
            // Leaving the block drops the other uploads still in flight.
        };
        let elapsed = started.elapsed();
        on_drop.armed = false;
        if let Some(err) = failure {
            tracing::error!(
                event = "PUT.FAILED",
                bucket_id = %ball.bucket,
                key = %ball.ball_id,
                size = ball.plan.total_len(),
                response_time = elapsed.as_secs_f64(),
                error = %err,
            );
            let (created, preexisting) = {
                let s = lock(&state);
                (s.created.clone(), s.preexisting)
            };
            self.cleanup(&ball.bucket, &ball.ball_id, created, preexisting)
                .await;
            return Err(err);
        }
        let s = lock(&state);
        tracing::info!(
            event = "PUT",
            bucket_id = %ball.bucket,
            key = %ball.ball_id,
            size = ball.plan.total_len(),
            num_chunks = ball.plan.num_chunks(),
            replicas = s.replicas.len(),
            response_time = elapsed.as_secs_f64(),
        );
        Ok(PutResult {
            bucket_id: ball.bucket.to_string(),
            ball_id: ball.ball_id.to_string(),
            size: ball.plan.total_len(),
            num_chunks: ball.plan.num_chunks(),
            full_checksum: ball.full_checksum.clone(),
            replicas: s.replicas.clone(),
            already_stored: s.already_stored,
            elapsed,
        })
    }

    #[allow(clippy::too_many_arguments)]
    async fn put_chunk(
        &self,
        ball: &BallPlan,
        range: ChunkRange,
        opts: &PutOptions,
        updated_at_ms: u128,
        state: &Mutex<PutState>,
        hooks: &Hooks,
        cancel: &CancellationToken,
    ) -> Result<(), Error> {
        let started = Instant::now();
        let data = ball.source.read(range).await?;
        let checksum = match ball
            .chunk_checksums
            .as_ref()
            .and_then(|sums| sums.get(usize::try_from(range.index).ok()?))
        {
            Some(sum) => sum.clone(),
            None => digest::sha256(data.clone()).await?,
        };
        let key = chunk_key(&ball.ball_id, range.index);
        let facts = ChunkFacts {
            index: range.index,
            chunk_len: range.len,
            ball_id: &ball.ball_id,
            num_chunks: ball.plan.num_chunks(),
            full_checksum: &ball.full_checksum,
            updated_at_ms,
        };
        let request = PutMetadataRequest {
            bucket_id: ball.bucket.to_string(),
            key: key.clone(),
            ball_id: ball.ball_id.to_string(),
            checksum: checksum.clone(),
            size: range.len,
            producer_id: self.config.client_id.clone(),
            tags: {
                let mut tags = chunk_tags(&opts.tags, &facts);
                tags.extend(ball.encryption_tags.clone());
                tags
            },
            content_type: opts
                .content_type
                .clone()
                .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_owned()),
            is_disabled: false,
            replication_factor: opts.replication_factor,
        };
        let metadata_body =
            Bytes::from(serde_json::to_vec(&request).map_err(|e| Error::Validation {
                message: format!("cannot encode the metadata of {key}: {e}"),
            })?);
        let spec = CallSpec {
            event: "PUT.CHUNK",
            bucket: &ball.bucket,
            key: &key,
            size: range.len,
            cancel: Some(cancel),
        };
        let chunk = ChunkUpload {
            bucket: &ball.bucket,
            key: &key,
            checksum: &checksum,
            metadata_body,
            data,
        };
        let (outcome, attempt) = retry::run(self, spec, |router| {
            self.put_chunk_once(router, &chunk, state)
        })
        .await?;
        let progress = {
            let mut s = lock(state);
            let (peers, reused) = match outcome {
                ChunkOutcome::Uploaded { peers } => (peers, false),
                ChunkOutcome::AlreadyStored { peers } => (peers, true),
            };
            s.replicas.extend(peers);
            s.already_stored += u64::from(reused);
            s.chunks_done += 1;
            s.bytes_done = s.bytes_done.saturating_add(range.len);
            Progress {
                chunks_done: s.chunks_done,
                chunks_total: ball.plan.num_chunks(),
                bytes_done: s.bytes_done,
                bytes_total: ball.plan.total_len(),
                attempt,
            }
        };
        tracing::debug!(
            event = "PUT.CHUNK",
            bucket_id = %ball.bucket,
            key = %key,
            size = range.len,
            attempt,
            response_time = started.elapsed().as_secs_f64(),
        );
        hooks.report(progress);
        Ok(())
    }

    /// One attempt of one chunk on one router: R1 then R2.
    async fn put_chunk_once(
        &self,
        router: Arc<RouterState>,
        chunk: &ChunkUpload<'_>,
        state: &Mutex<PutState>,
    ) -> Result<ChunkOutcome, Error> {
        let resp = send(
            self.http
                .post(paths::url(&router, &paths::bucket_metadata(chunk.bucket)))
                .header(CONTENT_TYPE, JSON)
                .body(chunk.metadata_body.clone()),
        )
        .await?;
        if resp.status().as_u16() == 404 {
            let body = resp.bytes().await.unwrap_or_default();
            return self.max_availability(&router, chunk, &body, state).await;
        }
        let placed: PutMetadataResponse = decode(check(resp).await?).await?;
        lock(state).created.insert(chunk.key.to_owned());
        let Some(task_id) = placed.tasks_ids.first() else {
            return Err(Error::UpstreamProtocol {
                message: format!("the router gave no task id for {}", chunk.key),
            });
        };
        let upload = send_json::<RouterPutChunkedResponse>(
            self.http
                .post(paths::url(&router, &paths::put_chunked(task_id)))
                .header(CONTENT_TYPE, OCTET_STREAM)
                .body(chunk.data.clone()),
        )
        .await
        .map_err(|err| match err {
            // The task is gone (the router restarted, or expired it): the chunk is not lost,
            // its upload must start over with R1 (on any router).
            Error::NotFound { message } => Error::Unavailable {
                message: format!("upload task of {} vanished: {message}", chunk.key),
            },
            other => other,
        })
        .and_then(|stored| {
            if stored.peer_ids.is_empty() {
                // The original router answers 200 even when every peer write failed.
                Err(Error::Unavailable {
                    message: format!("no peer stored {}", chunk.key),
                })
            } else {
                Ok(stored)
            }
        });
        match upload {
            Ok(stored) => {
                self.add_bytes_up(chunk.data.len());
                Ok(ChunkOutcome::Uploaded {
                    peers: stored.peer_ids,
                })
            }
            Err(err) => {
                // The key exists now (metadata without bytes): remove it so that the retry's
                // R1 can place it again instead of hitting "already there".
                self.delete_key_once(&router, chunk.bucket, chunk.key).await;
                Err(err)
            }
        }
    }

    /// R1 answered 404: not enough peers for the replicas. If every peer already holds this
    /// key with our size and checksum, the chunk is stored (idempotent re-put); otherwise
    /// this is [`Error::MaxAvailabilityReached`].
    async fn max_availability(
        &self,
        router: &RouterState,
        chunk: &ChunkUpload<'_>,
        body: &[u8],
        state: &Mutex<PutState>,
    ) -> Result<ChunkOutcome, Error> {
        let parsed = serde_json::from_slice::<ErrorBody>(body).ok();
        let message = parsed
            .as_ref()
            .map(ErrorBody::text)
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| format!("No available peers for {}/{}.", chunk.bucket, chunk.key));
        let holders = parsed
            .and_then(|p| serde_json::from_value::<NoAvailablePeersDetail>(p.detail).ok())
            .map(|d| d.replicas)
            .unwrap_or_default();
        let existing = send_json::<GetMetadataResponse>(self.http.get(paths::url(
            router,
            &paths::key_metadata(chunk.bucket, chunk.key),
        )))
        .await;
        if let Ok(found) = existing {
            lock(state).preexisting = true;
            let same = found.metadata.size == len_u64(chunk.data.len())
                && found.metadata.checksum.eq_ignore_ascii_case(chunk.checksum);
            if same {
                let mut peers = holders;
                if peers.is_empty() && !found.peer_id.is_empty() {
                    peers.push(found.peer_id);
                }
                tracing::debug!(event = "PUT.CHUNK.ALREADY.STORED", bucket_id = %chunk.bucket, key = %chunk.key);
                return Ok(ChunkOutcome::AlreadyStored { peers });
            }
        }
        tracing::warn!(event = "MAX.AVAILABILITY.REACHED", bucket_id = %chunk.bucket, key = %chunk.key, router_id = %router.id);
        Err(Error::MaxAvailabilityReached { message })
    }

    /// R8 once, on one router, ignoring the outcome (cleanup of a half-stored key).
    async fn delete_key_once(&self, router: &RouterState, bucket: &str, key: &str) {
        let result = send_json::<DeletedByKeyResponse>(
            self.http
                .delete(paths::url(router, &paths::key_data(bucket, key)))
                .header("Force", "1"),
        )
        .await;
        if let Err(e) = result {
            tracing::debug!(event = "PUT.CHUNK.CLEANUP.FAILED", bucket_id = bucket, key, error = %e);
        }
    }

    /// Deletes what a failed put created: the whole ball (R9) when nothing of it existed
    /// before, else only the keys it created (R8). Best effort: failures are logged.
    async fn cleanup(
        &self,
        bucket: &str,
        ball_id: &str,
        created: BTreeSet<String>,
        preexisting: bool,
    ) {
        if created.is_empty() {
            return;
        }
        let result = if preexisting {
            let mut n = 0i64;
            let mut last = Ok(());
            for key in &created {
                let spec = CallSpec {
                    event: "PUT.CLEANUP",
                    bucket,
                    key,
                    size: 0,
                    cancel: None,
                };
                match retry::run(self, spec, |router| {
                    send_json::<DeletedByKeyResponse>(
                        self.http
                            .delete(paths::url(&router, &paths::key_data(bucket, key)))
                            .header("Force", "1"),
                    )
                })
                .await
                {
                    Ok((r, _)) => n += r.n_deletes.max(0),
                    Err(e) => last = Err(e),
                }
            }
            last.map(|()| n)
        } else {
            let spec = CallSpec {
                event: "PUT.CLEANUP",
                bucket,
                key: ball_id,
                size: 0,
                cancel: None,
            };
            retry::run(self, spec, |router| {
                send_json::<DeletedByBallIdResponse>(
                    self.http
                        .delete(paths::url(&router, &paths::ball_delete(bucket, ball_id)))
                        .header("Force", "1"),
                )
            })
            .await
            .map(|(r, _)| r.n_deletes)
        };
        match result {
            Ok(n_deletes) => {
                tracing::info!(
                    event = "PUT.CLEANUP",
                    bucket_id = bucket,
                    key = ball_id,
                    n_deletes
                )
            }
            Err(e) => {
                tracing::warn!(event = "PUT.CLEANUP.FAILED", bucket_id = bucket, key = ball_id, error = %e)
            }
        }
    }
}

/// One chunk's requests, ready to send (and resend).
struct ChunkUpload<'a> {
    bucket: &'a str,
    key: &'a str,
    checksum: &'a str,
    metadata_body: Bytes,
    data: Bytes,
}

#[cfg(test)]
mod chunk_size_tests {
    use super::*;

    fn client(chunk_size: Option<&str>) -> Client {
        let mut b = Client::builder()
            .routers_uri("mictlanx://r0@127.0.0.1:9")
            .heartbeat_interval(std::time::Duration::ZERO);
        if let Some(c) = chunk_size {
            b = b.chunk_size(c);
        }
        b.build().unwrap()
    }

    #[tokio::test]
    async fn large_balls_get_larger_chunks_only_when_nothing_is_configured() {
        let auto = client(None);
        let none = PutOptions::default();
        assert_eq!(auto.chunk_size(&none, 0).unwrap(), 256_000);
        assert_eq!(
            auto.chunk_size(&none, LARGE_BALL_THRESHOLD).unwrap(),
            256_000
        );
        assert_eq!(
            auto.chunk_size(&none, LARGE_BALL_THRESHOLD + 1).unwrap(),
            LARGE_BALL_CHUNK_SIZE
        );
        // The put's own size always wins.
        let own = PutOptions::default().with_chunk_size(10_000);
        assert_eq!(auto.chunk_size(&own, 1 << 40).unwrap(), 10_000);
        // A configured size is kept for every ball, even when it is the default's value.
        let fixed = client(Some("256kb"));
        assert_eq!(fixed.chunk_size(&none, 1 << 40).unwrap(), 256_000);
        let zero = PutOptions::default().with_chunk_size(0);
        assert!(auto.chunk_size(&zero, 1).is_err());
    }
}
