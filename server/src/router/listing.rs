//! Merging the peers' listings (R6, R7) into one answer.
//!
//! Every replica of a key lists it, so the union has duplicates, and a replica that missed
//! writes lists older copies. Of each key we keep the copy with the newest version (our
//! peers list each key's version and their tombstones); a key whose newest version is a
//! deletion is left out, so a returning peer cannot list a deleted ball again. Copies of
//! equal version (MictlanX peers list none) are ordered by their `updated_at` tag, as the
//! original did. Then only **complete** balls are kept: the chunks of a ball's newest put
//! (its `full_checksum` and `num_chunks` tags), and only when all `num_chunks` of them are
//! there, so an interrupted put is not listed. Zero-size objects stay (the original dropped
//! them although they are valid).

use std::collections::{BTreeMap, HashMap};

use mictlanx::model::{sort_chunks, BallMetadata, Metadata};
use mictlanx::size::format_size;

use crate::version::Version;

/// The newest known state of one key.
struct Entry {
    version: Version,
    /// `None`: deleted.
    copy: Option<Metadata>,
}

/// Listings of several peers, merged key by key.
#[derive(Default)]
pub(crate) struct Merge {
    by_key: HashMap<String, Entry>,
}

impl Merge {
    /// Adds one peer's listing: its copies with their versions (missing: `Version::ZERO`),
    /// and its tombstones.
    pub(crate) fn add_listing(
        &mut self,
        balls: Vec<Metadata>,
        versions: &BTreeMap<String, String>,
        tombstones: &BTreeMap<String, String>,
    ) {
        for m in balls {
            let version = parse(versions.get(&m.key));
            self.add(m.key.clone(), version, Some(m));
        }
        for (key, v) in tombstones {
            self.add(key.clone(), parse(Some(v)), None);
        }
    }

    /// [`add_listing`](Self::add_listing) of the keys in `range` only: a page of a peer
    /// may reach past what the other peers have listed so far, and a MictlanX peer
    /// answers every key whatever the page.
    pub(crate) fn add_listing_in(
        &mut self,
        balls: Vec<Metadata>,
        versions: &BTreeMap<String, String>,
        tombstones: &BTreeMap<String, String>,
        range: &KeyRange,
    ) {
        let balls = balls
            .into_iter()
            .filter(|m| range.contains(&m.key))
            .collect();
        let tombstones: BTreeMap<String, String> = tombstones
            .iter()
            .filter(|(k, _)| range.contains(k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        self.add_listing(balls, versions, &tombstones);
    }

    /// The live copies, by ball, with their versions.
    pub(crate) fn live_by_ball(self) -> HashMap<String, Vec<(Version, Metadata)>> {
        let mut by_ball: HashMap<String, Vec<(Version, Metadata)>> = HashMap::new();
        for entry in self.by_key.into_values() {
            if let Some(m) = entry.copy {
                by_ball
                    .entry(m.ball_id.clone())
                    .or_default()
                    .push((entry.version, m));
            }
        }
        by_ball
    }

    fn add(&mut self, key: String, version: Version, copy: Option<Metadata>) {
        let replace = match self.by_key.get(&key) {
            None => true,
            Some(current) if version != current.version => version > current.version,
            // Equal versions (peers without versions): the later `updated_at` wins, a
            // tombstone wins over a copy, and on a full tie the first one seen stays.
            Some(current) => match (&current.copy, &copy) {
                (Some(a), Some(b)) => b.updated_at() > a.updated_at(),
                (Some(_), None) => true,
                (None, _) => false,
            },
        };
        if replace {
            self.by_key.insert(key, Entry { version, copy });
        }
    }

    /// The live records of complete balls, sorted by key.
    pub(crate) fn records(self) -> Vec<Metadata> {
        let by_ball = self.live_by_ball();
        let mut out: Vec<Metadata> = by_ball.into_values().flat_map(complete_ball).collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        out
    }
}

/// Keys after `after` (exclusive) up to `until` (inclusive); `None`: unbounded.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct KeyRange {
    /// The last key of the previous page.
    pub(crate) after: Option<String>,
    /// The last key every peer has listed so far.
    pub(crate) until: Option<String>,
}

impl KeyRange {
    /// Whether `key` is in the range.
    pub(crate) fn contains(&self, key: &str) -> bool {
        self.after.as_deref().map_or(true, |a| key > a)
            && self.until.as_deref().map_or(true, |u| key <= u)
    }
}

/// Whether the chunks of a ball seen in a page may not tell which of its puts is complete:
/// some put has fewer chunks there than its `num_chunks`, so its other chunks may lie in
/// other pages (or never arrived).
pub(crate) fn needs_whole_ball(chunks: &[(Version, Metadata)]) -> bool {
    let mut puts: HashMap<PutId, usize> = HashMap::new();
    for (_, m) in chunks {
        if m.num_chunks().is_some() {
            let (checksum, n) = generation(m);
            *puts.entry((checksum.map(str::to_string), n)).or_default() += 1;
        }
    }
    puts.iter().any(|((_, n), seen)| {
        n.and_then(|n| usize::try_from(n).ok())
            .is_some_and(|n| *seen < n)
    })
}

fn parse(v: Option<&String>) -> Version {
    v.and_then(|v| v.parse().ok()).unwrap_or(Version::ZERO)
}

/// What tells the puts of a ball apart: every chunk of one put carries the same
/// `full_checksum` and `num_chunks` tags (not always the same `updated_at`: MictlanX
/// clients stamp each chunk). Two puts of the same bytes look alike, which is harmless.
fn generation(m: &Metadata) -> (Option<&str>, Option<u64>) {
    (m.full_checksum(), m.num_chunks())
}

/// A put of a ball, as its chunks' tags tell it: `full_checksum` and `num_chunks`.
type PutId = (Option<String>, Option<u64>);

/// The chunks of the ball's newest complete put (the complete put whose newest chunk is
/// the newest), so an overwrite in progress leaves the previous version listed and an
/// interrupted put is never listed. Records without a `num_chunks` tag are objects of their
/// own and stay as they are.
pub(crate) fn complete_ball(chunks: Vec<(Version, Metadata)>) -> Vec<Metadata> {
    let (plain, chunked): (Vec<_>, Vec<_>) = chunks
        .into_iter()
        .partition(|(_, m)| m.num_chunks().is_none());
    let mut out: Vec<Metadata> = plain.into_iter().map(|(_, m)| m).collect();
    let mut puts: HashMap<PutId, Vec<(Version, Metadata)>> = HashMap::new();
    for (v, m) in chunked {
        let (checksum, n) = generation(&m);
        puts.entry((checksum.map(str::to_string), n))
            .or_default()
            .push((v, m));
    }
    let newest_complete = puts
        .into_iter()
        .filter(|((_, n), members)| {
            n.and_then(|n| usize::try_from(n).ok())
                .is_some_and(|n| members.len() >= n)
        })
        .max_by_key(|(_, members)| members.iter().map(|(v, _)| *v).max());
    if let Some((_, members)) = newest_complete {
        out.extend(members.into_iter().map(|(_, m)| m));
    }
    out
}

/// The R6 answer for the chunks of a ball: deduplicated, sorted by the numeric `index` tag
/// (chunks without one last, by key), `size_bytes` summed over the chunks and `checksum`
/// the `full_checksum` of chunk 0 (or of the first chunk, or `""`).
pub(crate) fn ball_metadata(bucket_id: &str, ball_id: &str, merged: Merge) -> BallMetadata {
    let mut chunks = merged.records();
    sort_chunks(&mut chunks);
    let size_bytes = chunks.iter().map(|c| c.size).sum();
    let checksum = chunks
        .first()
        .and_then(|c| c.full_checksum())
        .unwrap_or_default()
        .to_string();
    BallMetadata {
        bucket_id: bucket_id.to_string(),
        ball_id: ball_id.to_string(),
        size: format_size(size_bytes),
        size_bytes,
        checksum,
        chunks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mictlanx::model::tag;

    fn meta(key: &str, size: u64, tags: &[(&str, &str)]) -> Metadata {
        Metadata {
            key: key.to_string(),
            size,
            checksum: String::new(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            content_type: "application/octet-stream".into(),
            producer_id: "p".into(),
            ball_id: key.split('_').next().unwrap_or(key).into(),
            bucket_id: "b".into(),
            is_disabled: false,
        }
    }

    /// One peer's listing: its records, their versions and its tombstones.
    type Listing<'a> = (
        Vec<Metadata>,
        &'a [(&'a str, &'a str)],
        &'a [(&'a str, &'a str)],
    );

    fn merged(listings: Vec<Listing<'_>>) -> Merge {
        let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let mut m = Merge::default();
        for (balls, versions, tombstones) in listings {
            m.add_listing(balls, &map(versions), &map(tombstones));
        }
        m
    }

    fn keys_and_sizes(records: &[Metadata]) -> Vec<(&str, u64)> {
        records.iter().map(|m| (m.key.as_str(), m.size)).collect()
    }

    #[test]
    fn without_versions_the_highest_updated_at_wins_and_zero_sizes_stay() {
        let m = merged(vec![(
            vec![
                meta("k", 1, &[(tag::UPDATED_AT, "10")]),
                meta("k", 2, &[(tag::UPDATED_AT, "30")]),
                meta("k", 3, &[(tag::UPDATED_AT, "20")]),
                meta("empty", 0, &[]),
                meta("a", 5, &[(tag::UPDATED_AT, "garbage")]),
                meta("a", 6, &[]),
            ],
            &[],
            &[],
        )]);
        // "a": both count as -1, the first one seen stays.
        assert_eq!(
            keys_and_sizes(&m.records()),
            vec![("a", 5), ("empty", 0), ("k", 2)]
        );
    }

    #[test]
    fn the_newest_version_wins_and_a_newer_tombstone_hides_the_key() {
        // Peer A missed an overwrite of "k" and the delete of "gone"; B saw both.
        let a = vec![
            meta("k", 1, &[(tag::UPDATED_AT, "99")]),
            meta("gone", 1, &[]),
            meta("kept", 1, &[]),
        ];
        let b = vec![
            meta("k", 2, &[(tag::UPDATED_AT, "1")]),
            meta("kept", 7, &[]),
        ];
        let m = merged(vec![
            (a, &[("k", "10.1"), ("gone", "10.1"), ("kept", "30.1")], &[]),
            (b, &[("k", "20.1"), ("kept", "25.1")], &[("gone", "20.1")]),
        ]);
        assert_eq!(keys_and_sizes(&m.records()), vec![("k", 2), ("kept", 1)]);
        // A write after the delete brings the key back.
        let m = merged(vec![
            (vec![meta("gone", 3, &[])], &[("gone", "30.1")], &[]),
            (vec![], &[], &[("gone", "20.1")]),
        ]);
        assert_eq!(keys_and_sizes(&m.records()), vec![("gone", 3)]);
    }

    fn chunk(ball: &str, i: usize, n: usize, put: &str) -> Metadata {
        let key = format!("{ball}_{i}");
        let (i, n) = (i.to_string(), n.to_string());
        meta(
            &key,
            1,
            &[
                (tag::INDEX, &i),
                (tag::NUM_CHUNKS, &n),
                (tag::UPDATED_AT, &format!("{put}{i}")),
                (tag::FULL_CHECKSUM, put),
            ],
        )
    }

    #[test]
    fn only_complete_balls_of_their_newest_put_are_listed() {
        // "full": 3 of 3; "cut": 2 of 3 (an interrupted put); "mixed": overwritten by a
        // put of 2 chunks, its old third chunk left behind.
        let balls = vec![
            chunk("full", 0, 3, "1"),
            chunk("full", 1, 3, "1"),
            chunk("full", 2, 3, "1"),
            chunk("cut", 0, 3, "1"),
            chunk("cut", 1, 3, "1"),
            chunk("mixed", 0, 2, "2"),
            chunk("mixed", 1, 2, "2"),
            chunk("mixed", 2, 3, "1"),
        ];
        let versions = [
            ("full_0", "1.0"),
            ("full_1", "1.0"),
            ("full_2", "1.0"),
            ("cut_0", "1.0"),
            ("cut_1", "1.0"),
            ("mixed_0", "5.0"),
            ("mixed_1", "6.0"),
            ("mixed_2", "1.0"),
        ];
        let m = merged(vec![(balls, &versions, &[])]);
        let keys: Vec<String> = m.records().into_iter().map(|r| r.key).collect();
        assert_eq!(
            keys,
            ["full_0", "full_1", "full_2", "mixed_0", "mixed_1"].map(String::from)
        );
        // An overwrite of "old" (3 chunks) by a put of 4 chunks, 2 of them there so far:
        // the old version stays listed until the new one is complete.
        let balls = vec![
            chunk("old", 0, 3, "1"),
            chunk("old", 1, 3, "1"),
            chunk("old", 2, 3, "1"),
            chunk("new", 0, 4, "2"),
            chunk("new", 1, 4, "2"),
        ]
        .into_iter()
        .map(|mut m| {
            m.ball_id = "ball".into();
            m
        })
        .collect();
        let versions = [
            ("old_0", "1.0"),
            ("old_1", "1.0"),
            ("old_2", "1.0"),
            ("new_0", "9.0"),
            ("new_1", "9.0"),
        ];
        let m = merged(vec![(balls, &versions, &[])]);
        let keys: Vec<String> = m.records().into_iter().map(|r| r.key).collect();
        assert_eq!(keys, ["old_0", "old_1", "old_2"].map(String::from));
    }

    #[test]
    fn chunks_sorted_numerically_and_summed_once() {
        let fc = "f".repeat(64);
        let c = |key: &str, size: u64, index: &str| {
            let mut m = meta(key, size, &[(tag::INDEX, index), (tag::FULL_CHECKSUM, &fc)]);
            m.ball_id = "ball".into();
            m
        };
        let records = vec![
            c("ball_10", 5, "10"),
            c("ball_2", 5, "2"),
            c("ball_0", 10, "0"),
            c("ball_2", 5, "2"), // the other replica
            {
                let mut stray = meta("stray", 1, &[]);
                stray.ball_id = "ball".into();
                stray
            },
        ];
        let ball = ball_metadata("b", "ball", merged(vec![(records, &[], &[])]));
        let keys: Vec<&str> = ball.chunks.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, vec!["ball_0", "ball_2", "ball_10", "stray"]);
        assert_eq!(ball.size_bytes, 21);
        assert_eq!(ball.size, "21 bytes");
        assert_eq!(ball.checksum, fc);
    }

    #[test]
    fn key_ranges_and_balls_cut_by_a_page() {
        let r = KeyRange {
            after: Some("b".into()),
            until: Some("d".into()),
        };
        assert!(!r.contains("b") && r.contains("c") && r.contains("d") && !r.contains("e"));
        assert!(KeyRange::default().contains(""));
        let v = Version::ZERO;
        let whole: Vec<_> = (0..3).map(|i| (v, chunk("x", i, 3, "1"))).collect();
        assert!(!needs_whole_ball(&whole));
        assert!(needs_whole_ball(&whole[1..]));
        assert!(!needs_whole_ball(&[(v, meta("plain", 1, &[]))]));
    }

    #[test]
    fn checksum_is_empty_without_full_checksum() {
        let m = merged(vec![(
            vec![meta("x_0", 1_500_000, &[(tag::INDEX, "0")])],
            &[],
            &[],
        )]);
        let ball = ball_metadata("b", "x", m);
        assert_eq!(ball.checksum, "");
        assert_eq!(ball.size, "1.5 MB");
    }
}
