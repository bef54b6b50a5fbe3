//! Deletes: a ball, a whole bucket, and disabling one key.

use std::collections::BTreeSet;

use futures::StreamExt;
use tokio::time::Instant;

use super::http::{check, send, send_json};
use super::options::DeleteBucketResult;
use super::put::ball_ids;
use super::retry::{self, CallSpec};
use super::{paths, Client};
use crate::id::{BucketId, Key};
use crate::model::{BallMetadata, DeletedByBallIdResponse, DeletedByKeyResponse};
use crate::Error;

impl Client {
    /// Deletes every chunk of a ball on every replica (R9 on one router).
    ///
    /// A router without R9 (404 on the route) is handled by listing the ball's chunks (R6)
    /// and deleting each key (R8). Deleting a ball that does not exist succeeds with
    /// `n_deletes == 0`.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], transport and server errors after retries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let deleted = client.delete("photos", "pic_b").await?;
    /// println!("{} objects deleted", deleted.n_deletes);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete(
        &self,
        bucket: &str,
        ball_id: &str,
    ) -> Result<DeletedByBallIdResponse, Error> {
        let started = Instant::now();
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        let inner = &self.inner;
        let spec = CallSpec {
            event: "DELETE",
            bucket: &bucket,
            key: &ball_id,
            size: 0,
            cancel: None,
        };
        let by_ball = retry::run(inner, spec, |router| {
            send_json::<DeletedByBallIdResponse>(
                inner
                    .http
                    .delete(paths::url(&router, &paths::ball_delete(&bucket, &ball_id)))
                    .header("Force", "1"),
            )
        })
        .await;
        let n_deletes = match by_ball {
            Ok((r, _)) => r.n_deletes.max(0),
            Err(Error::NotFound { .. }) => self.delete_chunk_by_chunk(&bucket, &ball_id).await?,
            Err(e) => return Err(e),
        };
        tracing::info!(
            event = "DELETE",
            bucket_id = %bucket,
            key = %ball_id,
            n_deletes,
            response_time = started.elapsed().as_secs_f64(),
        );
        Ok(DeletedByBallIdResponse {
            n_deletes,
            ball_id: ball_id.into_inner(),
        })
    }

    /// R6 then R8 per chunk key; a missing ball deletes nothing.
    async fn delete_chunk_by_chunk(&self, bucket: &str, ball_id: &str) -> Result<i64, Error> {
        let inner = &self.inner;
        let spec = CallSpec {
            event: "DELETE",
            bucket,
            key: ball_id,
            size: 0,
            cancel: None,
        };
        let listing = retry::run(inner, spec, |router| {
            send_json::<BallMetadata>(
                inner
                    .http
                    .get(paths::url(&router, &paths::ball_chunks(bucket, ball_id))),
            )
        })
        .await;
        let chunks = match listing {
            Ok((l, _)) => l.chunks,
            Err(Error::NotFound { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        let keys: BTreeSet<String> = chunks.into_iter().map(|c| c.key).collect();
        let mut n_deletes = 0i64;
        for key in &keys {
            let spec = CallSpec {
                event: "DELETE",
                bucket,
                key,
                size: 0,
                cancel: None,
            };
            let deleted = retry::run(inner, spec, |router| {
                send_json::<DeletedByKeyResponse>(
                    inner
                        .http
                        .delete(paths::url(&router, &paths::key_data(bucket, key)))
                        .header("Force", "1"),
                )
            })
            .await;
            match deleted {
                Ok((r, _)) => n_deletes += r.n_deletes.max(0),
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(n_deletes)
    }

    /// Deletes every ball of a bucket: lists it (R7) and deletes the balls, `max_concurrency`
    /// at a time. Failures are counted, not returned.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], or the listing's error.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let r = client.delete_bucket("scratch").await?;
    /// println!("{}/{} deleted, {} failed", r.deleted, r.total, r.failed);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn delete_bucket(&self, bucket: &str) -> Result<DeleteBucketResult, Error> {
        let started = Instant::now();
        let listing = self.bucket(bucket).await?;
        let bucket_id = listing.bucket_id.clone();
        let total = u64::try_from(listing.len()).unwrap_or(u64::MAX);
        let limit = self.inner.config.max_concurrency;
        let results: Vec<Result<DeletedByBallIdResponse, Error>> =
            futures::stream::iter(listing.balls.keys())
                .map(|ball_id| self.delete(&bucket_id, ball_id))
                .buffer_unordered(limit)
                .collect()
                .await;
        let failed = results.iter().filter(|r| r.is_err()).count();
        let failed = u64::try_from(failed).unwrap_or(u64::MAX);
        let result = DeleteBucketResult {
            bucket_id,
            deleted: total.saturating_sub(failed),
            failed,
            total,
            elapsed: started.elapsed(),
        };
        tracing::info!(
            event = "DELETED.BUCKET",
            bucket_id = %result.bucket_id,
            deleted = result.deleted,
            failed = result.failed,
            total = result.total,
            response_time = result.elapsed.as_secs_f64(),
        );
        Ok(result)
    }

    /// Disables (soft-deletes) one key on all its replicas (R10).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], [`Error::NotFound`] when the router reports the key missing,
    /// transport and server errors after retries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// client.disable("photos", "pic_b_0").await?;
    /// # Ok(())
    /// # }
    /// ```
    pub async fn disable(&self, bucket: &str, key: &str) -> Result<(), Error> {
        let bucket = BucketId::new(bucket)?;
        let key = Key::new(key)?;
        let inner = &self.inner;
        let spec = CallSpec {
            event: "DISABLE",
            bucket: &bucket,
            key: &key,
            size: 0,
            cancel: None,
        };
        retry::run(inner, spec, |router| {
            let request = inner
                .http
                .post(paths::url(&router, &paths::disable(&bucket, &key)));
            async move { check(send(request).await?).await.map(drop) }
        })
        .await?;
        tracing::info!(event = "DISABLE", bucket_id = %bucket, key = %key);
        Ok(())
    }
}
