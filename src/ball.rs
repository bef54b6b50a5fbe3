//! Client-side aggregates: a [`Ball`] (one logical object and its chunks) and a [`Bucket`]
//! (the balls of a bucket), built from the chunk metadata routers list (reference §4.7).
//!
//! Routers list chunks flatly and, with several replicas, more than once; these types group
//! them by ball id, drop the duplicates (the copy with the newest `updated_at` tag wins, as
//! the router's own listing does) and order the chunks by their `index` tag.
//!
//! # Examples
//!
//! ```
//! use mictlanx::ball::Bucket;
//! use mictlanx::model::Metadata;
//!
//! let chunk = |key: &str, ball: &str, index: u32| -> serde_json::Result<Metadata> {
//!     serde_json::from_value(serde_json::json!({
//!         "key": key, "size": 10, "checksum": "", "ball_id": ball,
//!         "tags": {"index": index.to_string(), "num_chunks": "2"}
//!     }))
//! };
//! let listing = vec![chunk("a_1", "a", 1)?, chunk("a_0", "a", 0)?, chunk("a_0", "a", 0)?, chunk("b_0", "b", 0)?];
//! let bucket = Bucket::from_chunks("photos", listing);
//! assert_eq!(bucket.len(), 2);
//! assert_eq!(bucket.get("a").map(|b| b.size), Some(20));
//! assert_eq!(bucket.get("a").map(|b| b.chunks.len()), Some(2));
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::collections::btree_map::{self, BTreeMap};

use crate::id::split_chunk_key;
use crate::model::{Metadata, Tags};

/// One logical object: its chunks' metadata, de-duplicated and in index order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ball {
    /// The bucket it lives in.
    pub bucket_id: String,
    /// Its id.
    pub ball_id: String,
    /// Sum of the sizes of its (distinct) chunks, in bytes.
    pub size: u64,
    /// Its `full_checksum` tag (SHA-256 of the whole ball), when the chunks carry one.
    pub checksum: Option<String>,
    /// Metadata of each chunk, one per key, sorted by the `index` tag (then by key).
    pub chunks: Vec<Metadata>,
    /// The tags of the first chunk (user tags such as `extension` or `fullname` live here).
    pub tags: Tags,
    /// The newest `updated_at` tag of its chunks (epoch milliseconds), `-1` when none has one.
    /// The original averages them; the newest write is what a reader wants to know.
    pub updated_at: i64,
}

impl Ball {
    /// Builds a ball from the metadata of its chunks, in any order and with duplicates.
    ///
    /// Chunks with the same key are kept once (the newest `updated_at` wins; on a tie the
    /// first seen).
    pub fn from_chunks(
        bucket_id: impl Into<String>,
        ball_id: impl Into<String>,
        chunks: impl IntoIterator<Item = Metadata>,
    ) -> Self {
        let mut by_key: BTreeMap<String, Metadata> = BTreeMap::new();
        for chunk in chunks {
            match by_key.entry(chunk.key.clone()) {
                btree_map::Entry::Vacant(slot) => {
                    slot.insert(chunk);
                }
                btree_map::Entry::Occupied(mut slot) => {
                    if chunk.updated_at() > slot.get().updated_at() {
                        slot.insert(chunk);
                    }
                }
            }
        }
        let mut chunks: Vec<Metadata> = by_key.into_values().collect();
        chunks.sort_by(|a, b| {
            let ia = a.index().unwrap_or(u64::MAX);
            let ib = b.index().unwrap_or(u64::MAX);
            ia.cmp(&ib).then_with(|| a.key.cmp(&b.key))
        });
        let size = chunks.iter().fold(0u64, |s, c| s.saturating_add(c.size));
        let first = chunks.first();
        let checksum = first.and_then(|c| c.full_checksum()).map(str::to_owned);
        let tags = first.map(|c| c.tags.clone()).unwrap_or_default();
        let updated_at = chunks.iter().map(Metadata::updated_at).max().unwrap_or(-1);
        Self {
            bucket_id: bucket_id.into(),
            ball_id: ball_id.into(),
            size,
            checksum,
            chunks,
            tags,
            updated_at,
        }
    }

    /// The `num_chunks` tag of the first chunk.
    pub fn num_chunks(&self) -> Option<u64> {
        self.chunks.first().and_then(Metadata::num_chunks)
    }

    /// Whether every chunk `0..num_chunks` is listed.
    pub fn is_complete(&self) -> bool {
        let Some(n) = self.num_chunks() else {
            return false;
        };
        u64::try_from(self.chunks.len()).is_ok_and(|len| len == n)
            && self
                .chunks
                .iter()
                .zip(0u64..)
                .all(|(c, i)| c.index() == Some(i))
    }

    /// The value of tag `name` on the first chunk.
    pub fn tag(&self, name: &str) -> Option<&str> {
        self.tags.get(name).map(String::as_str)
    }
}

/// The balls of a bucket, by ball id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bucket {
    /// The bucket's id.
    pub bucket_id: String,
    /// Its balls, by ball id.
    pub balls: BTreeMap<String, Ball>,
}

impl Bucket {
    /// Groups a flat chunk listing (as R7 returns it, duplicates included) into balls.
    ///
    /// A chunk's ball is its `ball_id` field; when that is empty, the ball id is taken from
    /// the key (`<ball_id>_<index>`), else the key itself.
    pub fn from_chunks(
        bucket_id: impl Into<String>,
        chunks: impl IntoIterator<Item = Metadata>,
    ) -> Self {
        let bucket_id = bucket_id.into();
        let mut groups: BTreeMap<String, Vec<Metadata>> = BTreeMap::new();
        for chunk in chunks {
            let ball_id = if chunk.ball_id.is_empty() {
                split_chunk_key(&chunk.key)
                    .map_or_else(|| chunk.key.clone(), |(ball, _)| ball.to_owned())
            } else {
                chunk.ball_id.clone()
            };
            groups.entry(ball_id).or_default().push(chunk);
        }
        let balls = groups
            .into_iter()
            .map(|(ball_id, chunks)| {
                let ball = Ball::from_chunks(bucket_id.clone(), ball_id.clone(), chunks);
                (ball_id, ball)
            })
            .collect();
        Self { bucket_id, balls }
    }

    /// Number of balls.
    pub fn len(&self) -> usize {
        self.balls.len()
    }

    /// Whether the bucket has no ball.
    pub fn is_empty(&self) -> bool {
        self.balls.is_empty()
    }

    /// The ball with this id.
    pub fn get(&self, ball_id: &str) -> Option<&Ball> {
        self.balls.get(ball_id)
    }

    /// Total bytes of all balls.
    pub fn size_bytes(&self) -> u64 {
        self.balls
            .values()
            .fold(0u64, |s, b| s.saturating_add(b.size))
    }

    /// The balls, in ball id order.
    pub fn iter(&self) -> impl Iterator<Item = &Ball> {
        self.balls.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn chunk(key: &str, ball: &str, index: u64, size: u64, updated_at: i64) -> Metadata {
        serde_json::from_value(json!({
            "key": key, "size": size, "checksum": format!("c-{key}-{updated_at}"),
            "ball_id": ball, "bucket_id": "b",
            "tags": {"index": index.to_string(), "num_chunks": "3", "updated_at": updated_at.to_string(),
                     "full_checksum": "f".repeat(64), "extension": "png"}
        }))
        .unwrap()
    }

    #[test]
    fn ball_sorts_dedups_and_sums() {
        let ball = Ball::from_chunks(
            "b",
            "pic",
            vec![
                chunk("pic_2", "pic", 2, 5, 10),
                chunk("pic_0", "pic", 0, 10, 10),
                chunk("pic_1", "pic", 1, 10, 10),
                chunk("pic_0", "pic", 0, 10, 30),
                chunk("pic_0", "pic", 0, 10, 20),
            ],
        );
        let keys: Vec<&str> = ball.chunks.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, ["pic_0", "pic_1", "pic_2"]);
        assert_eq!(ball.size, 25);
        // The newest copy of a duplicated key wins.
        assert_eq!(ball.chunks[0].checksum, "c-pic_0-30");
        assert_eq!(ball.updated_at, 30);
        assert_eq!(ball.checksum.as_deref(), Some("f".repeat(64).as_str()));
        assert_eq!(ball.tag("extension"), Some("png"));
        assert_eq!(ball.num_chunks(), Some(3));
        assert!(ball.is_complete());
    }

    #[test]
    fn incomplete_and_empty_balls() {
        let ball = Ball::from_chunks(
            "b",
            "pic",
            vec![
                chunk("pic_0", "pic", 0, 1, 1),
                chunk("pic_2", "pic", 2, 1, 1),
            ],
        );
        assert!(!ball.is_complete());
        let empty = Ball::from_chunks("b", "none", Vec::new());
        assert_eq!((empty.size, empty.updated_at), (0, -1));
        assert_eq!(empty.checksum, None);
        assert!(!empty.is_complete());
    }

    #[test]
    fn bucket_groups_by_ball_and_removes_cross_peer_duplicates() {
        let mut listing = Vec::new();
        for _peer in 0..3 {
            for ball in ["a", "b", "c"] {
                for i in 0..3 {
                    listing.push(chunk(&format!("{ball}_{i}"), ball, i, 7, 1));
                }
            }
        }
        let bucket = Bucket::from_chunks("b", listing);
        assert_eq!(bucket.len(), 3);
        assert!(!bucket.is_empty());
        for ball in bucket.iter() {
            assert_eq!(ball.chunks.len(), 3);
            assert_eq!(ball.size, 21);
            assert_eq!(ball.bucket_id, "b");
        }
        assert_eq!(bucket.size_bytes(), 63);
        assert!(bucket.get("a").is_some() && bucket.get("z").is_none());
    }

    #[test]
    fn ball_id_falls_back_to_the_key() {
        let mut no_ball = chunk("x_y_4", "", 4, 1, 1);
        no_ball.ball_id.clear();
        let mut plain = chunk("lonely", "", 0, 1, 1);
        plain.ball_id.clear();
        let bucket = Bucket::from_chunks("b", vec![no_ball, plain]);
        let ids: Vec<&str> = bucket.balls.keys().map(String::as_str).collect();
        assert_eq!(ids, ["lonely", "x_y"]);
    }
}
