//! `get_stream`: a ball as a stream of verified chunks, in order, with a bounded number
//! fetched ahead.

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};
use tokio_util::sync::CancellationToken;

use super::encryption::{open, opener_for};
use super::get::{num_chunks, FetchedChunk};
use super::options::{GetOptions, Hooks, Progress};
use super::put::ball_ids;
use super::{cancelled, digest, Client};
use crate::checksum::{is_sha256_hex, Sha256Stream};
use crate::id::{chunk_key, BallId, BucketId};
use crate::xolo::seal::Opener;
use crate::Error;

/// Where a ball stream is.
enum Phase {
    /// Nothing fetched yet.
    Start,
    /// Yielding chunks.
    Chunks(Box<Running>),
    /// Ended (after the last chunk, the full-checksum check, or an error).
    Done,
}

struct Running {
    chunks: BoxStream<'static, Result<FetchedChunk, Error>>,
    hasher: Sha256Stream,
    expected_full: Option<String>,
    /// Opens each chunk of an encrypted ball (`None`: chunks are handed out as stored).
    opener: Option<Opener>,
    total: u64,
    done: u64,
    bytes_done: u64,
}

struct StreamState {
    client: Client,
    bucket: BucketId,
    ball_id: BallId,
    ahead: usize,
    hooks: Hooks,
    cancel: CancellationToken,
    opts: GetOptions,
    phase: Phase,
}

impl Client {
    /// A ball as a stream of its chunks' bytes, in index order.
    ///
    /// A bounded number of chunks (the client's `max_concurrency`) is fetched ahead; each is
    /// verified before it is yielded. After the last chunk the whole ball's `full_checksum`
    /// is checked, and an [`Error::Integrity`] item is yielded on a mismatch, so a consumer
    /// must treat the data as unconfirmed until the stream ends without error. The stream
    /// ends after its first error. Dropping it cancels the fetches.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// use futures::StreamExt;
    ///
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let mut chunks = client.get_stream("videos", "intro");
    /// let mut total = 0;
    /// while let Some(chunk) = chunks.next().await {
    ///     total += chunk?.len();
    /// }
    /// println!("{total} bytes");
    /// # Ok(())
    /// # }
    /// ```
    pub fn get_stream(
        &self,
        bucket: &str,
        ball_id: &str,
    ) -> impl Stream<Item = Result<Bytes, Error>> + Send + Unpin + 'static {
        self.get_stream_opts(bucket, ball_id, GetOptions::default())
    }

    /// [`get_stream`](Self::get_stream) with options: chunks fetched ahead, cancellation
    /// (yields a cancelled error, see [`Error::is_cancelled`](crate::Error::is_cancelled)),
    /// progress, and the key that opens an encrypted ball
    /// ([`GetOptions::decrypt_with`](crate::GetOptions::decrypt_with)): each chunk is then
    /// opened (authenticated) before it is yielded, and a truncated ball ends the stream
    /// with an [`Error::Decryption`] item. The errors are those of
    /// [`get_bytes_opts`](Self::get_bytes_opts).
    pub fn get_stream_opts(
        &self,
        bucket: &str,
        ball_id: &str,
        opts: GetOptions,
    ) -> impl Stream<Item = Result<Bytes, Error>> + Send + Unpin + 'static {
        let (bucket, ball_id) = match ball_ids(bucket, ball_id) {
            Ok(ids) => ids,
            Err(e) => return futures::stream::once(async { Err(e) }).boxed(),
        };
        let hooks = opts.hooks();
        let state = StreamState {
            client: self.clone(),
            bucket,
            ball_id,
            ahead: opts
                .max_concurrency
                .unwrap_or(self.inner.config.max_concurrency)
                .max(1),
            cancel: hooks.token(),
            hooks,
            opts,
            phase: Phase::Start,
        };
        futures::stream::unfold(state, step).boxed()
    }

    /// The verified chunks of a ball, in order: chunk 0 (already fetched), then the others
    /// `ahead` at a time.
    fn ordered_chunks(
        &self,
        bucket: BucketId,
        ball_id: BallId,
        chunk0: FetchedChunk,
        n: u64,
        ahead: usize,
        cancel: CancellationToken,
    ) -> BoxStream<'static, Result<FetchedChunk, Error>> {
        let client = self.clone();
        let rest = futures::stream::iter(1..n)
            .map(move |i| {
                let client = client.clone();
                let bucket = bucket.clone();
                let key = chunk_key(&ball_id, i);
                let cancel = cancel.clone();
                async move { client.inner.fetch_chunk(&bucket, &key, Some(&cancel)).await }
            })
            .buffered(ahead);
        futures::stream::once(async move { Ok(chunk0) })
            .chain(rest)
            .boxed()
    }
}

/// One step of the stream: the next item and the state after it.
async fn step(mut st: StreamState) -> Option<(Result<Bytes, Error>, StreamState)> {
    loop {
        match std::mem::replace(&mut st.phase, Phase::Done) {
            Phase::Done => return None,
            Phase::Start => {
                let key0 = chunk_key(&st.ball_id, 0);
                let chunk0 = tokio::select! {
                    biased;
                    () = st.cancel.cancelled() => Err(cancelled()),
                    chunk0 = st.client.inner.fetch_chunk(&st.bucket, &key0, Some(&st.cancel)) => chunk0,
                };
                let started = chunk0.and_then(|chunk0| {
                    let n = num_chunks(&chunk0.metadata)?;
                    let opener =
                        opener_for(&st.bucket, &st.ball_id, &chunk0.metadata, n, &st.opts)?;
                    Ok((chunk0, n, opener))
                });
                match started {
                    Err(e) => return Some((Err(e), st)),
                    Ok((chunk0, n, opener)) => {
                        let expected_full = chunk0
                            .metadata
                            .full_checksum()
                            .filter(|c| is_sha256_hex(c))
                            .map(str::to_owned);
                        let chunks = st.client.ordered_chunks(
                            st.bucket.clone(),
                            st.ball_id.clone(),
                            chunk0,
                            n,
                            st.ahead,
                            st.cancel.clone(),
                        );
                        st.phase = Phase::Chunks(Box::new(Running {
                            chunks,
                            hasher: Sha256Stream::new(),
                            expected_full,
                            opener,
                            total: n,
                            done: 0,
                            bytes_done: 0,
                        }));
                    }
                }
            }
            Phase::Chunks(mut run) => {
                let next = tokio::select! {
                    biased;
                    () = st.cancel.cancelled() => Some(Err(cancelled())),
                    next = run.chunks.next() => next,
                };
                match next {
                    Some(Ok(chunk)) => {
                        let hasher = std::mem::take(&mut run.hasher);
                        run.hasher = match digest::update(hasher, chunk.data.clone()).await {
                            Ok(h) => h,
                            Err(e) => return Some((Err(e), st)),
                        };
                        run.done += 1;
                        run.bytes_done = run.bytes_done.saturating_add(chunk.metadata.size);
                        st.hooks.report(Progress {
                            chunks_done: run.done,
                            chunks_total: run.total,
                            bytes_done: run.bytes_done,
                            bytes_total: 0,
                            attempt: chunk.attempt,
                        });
                        let data = match run.opener.take() {
                            None => chunk.data,
                            Some(opener) => match open(opener, chunk.data).await {
                                Ok((opener, plain)) => {
                                    run.opener = Some(opener);
                                    plain
                                }
                                Err(e) => return Some((Err(e), st)),
                            },
                        };
                        st.phase = Phase::Chunks(run);
                        return Some((Ok(data), st));
                    }
                    Some(Err(e)) => return Some((Err(e), st)),
                    None => {
                        let Running {
                            hasher,
                            expected_full,
                            opener,
                            bytes_done,
                            ..
                        } = *run;
                        // All segments opened, none missing after the last one yielded.
                        if let Some(Err(e)) = opener.as_ref().map(Opener::finish) {
                            return Some((Err(e), st));
                        }
                        let actual = hasher.finalize_hex();
                        let expected = expected_full?;
                        if actual.eq_ignore_ascii_case(&expected) {
                            tracing::info!(event = "GET", bucket_id = %st.bucket, key = %st.ball_id, size = bytes_done);
                            return None;
                        }
                        tracing::warn!(
                            event = "INTEGRITY.CHECK.FAILED",
                            bucket_id = %st.bucket,
                            key = %st.ball_id,
                            remote_checksum = %expected,
                            local_checksum = %actual,
                        );
                        let err = Error::Integrity {
                            message: format!(
                                "{}/{}: the ball hashes to {actual}, its full_checksum is {expected}",
                                st.bucket, st.ball_id
                            ),
                        };
                        return Some((Err(err), st));
                    }
                }
            }
        }
    }
}
