//! Listings: a ball's chunks (R6) and a bucket's balls (R7).

use tokio::time::Instant;

use super::http::send_json;
use super::put::ball_ids;
use super::retry::{self, CallSpec};
use super::{paths, Client};
use crate::ball::{Ball, Bucket};
use crate::id::{validate, IdKind};
use crate::model::{BallMetadata, RouterBucketMetadata};
use crate::Error;

impl Client {
    /// A ball's metadata: its chunks (de-duplicated across replicas, in index order), size,
    /// full checksum and the tags of its first chunk (R6).
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], [`Error::NotFound`] when no chunk of the ball exists, transport
    /// and server errors after retries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let ball = client.ball("photos", "pic_b").await?;
    /// println!("{} bytes, {:?}", ball.size, ball.tag("fullname"));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn ball(&self, bucket: &str, ball_id: &str) -> Result<Ball, Error> {
        let (bucket, ball_id) = ball_ids(bucket, ball_id)?;
        let spec = CallSpec {
            event: "GET.BALL",
            bucket: &bucket,
            key: &ball_id,
            size: 0,
            cancel: None,
        };
        let inner = &self.inner;
        let (listing, _) = retry::run(inner, spec, |router| {
            send_json::<BallMetadata>(
                inner
                    .http
                    .get(paths::url(&router, &paths::ball_chunks(&bucket, &ball_id))),
            )
        })
        .await?;
        if listing.chunks.is_empty() {
            return Err(Error::NotFound {
                message: format!("{bucket}@{ball_id} not found"),
            });
        }
        Ok(Ball::from_chunks(
            bucket.as_str(),
            ball_id.as_str(),
            listing.chunks,
        ))
    }

    /// The balls of a bucket, grouped from the router's chunk listing (R7), duplicates across
    /// peers removed.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], transport and server errors after retries. An unknown bucket is
    /// an empty [`Bucket`].
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let bucket = client.bucket("photos").await?;
    /// for ball in bucket.iter() {
    ///     println!("{} {} bytes", ball.ball_id, ball.size);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bucket(&self, bucket: &str) -> Result<Bucket, Error> {
        let started = Instant::now();
        let bucket = validate(IdKind::Bucket, bucket)?;
        let spec = CallSpec {
            event: "GET.BUCKET.METADATA",
            bucket: &bucket,
            key: "",
            size: 0,
            cancel: None,
        };
        let inner = &self.inner;
        let (listing, _) = retry::run(inner, spec, |router| {
            send_json::<RouterBucketMetadata>(
                inner
                    .http
                    .get(paths::url(&router, &paths::bucket_metadata(&bucket))),
            )
        })
        .await?;
        let result = Bucket::from_chunks(bucket.as_str(), listing.balls);
        tracing::info!(
            event = "GET.BUCKET.METADATA",
            bucket_id = %bucket,
            balls = result.len(),
            response_time = started.elapsed().as_secs_f64(),
        );
        Ok(result)
    }
}
