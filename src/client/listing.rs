//! Listings: a ball's chunks (R6) and a bucket's balls (R7).

use tokio::time::Instant;

use super::http::send_json;
use super::put::ball_ids;
use super::retry::{self, CallSpec};
use super::{paths, Client};
use crate::ball::{Ball, Bucket};
use crate::id::BucketId;
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
    /// peers removed. The listing is read page by page ([`Client::bucket_page`], 1,000
    /// records each) until the last, so it holds every ball however large the bucket.
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
        let bucket = BucketId::new(bucket)?;
        let mut records = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .bucket_page(bucket.as_str(), PAGE_LIMIT, token.as_deref())
                .await?;
            records.extend(page.balls);
            match page.next_continuation_token {
                Some(next) if page.is_truncated => token = Some(next),
                _ => break,
            }
        }
        let result = Bucket::from_chunks(bucket.as_str(), records);
        tracing::info!(
            event = "GET.BUCKET.METADATA",
            bucket_id = %bucket,
            balls = result.len(),
            response_time = started.elapsed().as_secs_f64(),
        );
        Ok(result)
    }

    /// One page of a bucket's chunk listing (R7): up to `limit` records (1 to 1,000; more
    /// is 1,000) in key order after the page `continuation_token` names (`None`: the first
    /// page). While `is_truncated`, ask again with its `next_continuation_token`. A router
    /// without paging (the original MictlanX) answers the whole bucket in one page.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidId`], [`Error::Validation`] (400) for a `limit` of 0 or a token
    /// the router did not give out, transport and server errors after retries.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
    /// let client = mictlanx::Client::from_env()?;
    /// let mut token = None;
    /// loop {
    ///     let page = client.bucket_page("photos", 100, token.as_deref()).await?;
    ///     for chunk in &page.balls {
    ///         println!("{} {} bytes", chunk.key, chunk.size);
    ///     }
    ///     match page.next_continuation_token {
    ///         Some(next) if page.is_truncated => token = Some(next),
    ///         _ => break,
    ///     }
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub async fn bucket_page(
        &self,
        bucket: &str,
        limit: usize,
        continuation_token: Option<&str>,
    ) -> Result<RouterBucketMetadata, Error> {
        let bucket = BucketId::new(bucket)?;
        let spec = CallSpec {
            event: "GET.BUCKET.PAGE",
            bucket: &bucket,
            key: "",
            size: 0,
            cancel: None,
        };
        let inner = &self.inner;
        let limit = limit.to_string();
        let (page, _) = retry::run(inner, spec, |router| {
            let mut query = vec![("limit", limit.as_str())];
            if let Some(t) = continuation_token {
                query.push(("continuation_token", t));
            }
            send_json::<RouterBucketMetadata>(
                inner
                    .http
                    .get(paths::url(&router, &paths::bucket_metadata(&bucket)))
                    .query(&query),
            )
        })
        .await?;
        Ok(page)
    }
}

/// Records asked for per page by [`Client::bucket`]: the most a router gives.
const PAGE_LIMIT: usize = 1000;
