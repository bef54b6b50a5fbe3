//! Merging the peers' listings (R6, R7) into one answer.
//!
//! Every replica of a key lists it, so the union has duplicates; the original kept them (and
//! in R7 even appended the list once per peer). We keep one record per key, the one with the
//! highest `updated_at` tag (last writer wins, as in the original), and keep zero-size
//! objects, which the original dropped although they are valid.

use std::collections::HashMap;

use mictlanx::model::{BallMetadata, Metadata};
use mictlanx::size::format_size;

/// One record per key: the highest `updated_at` wins; on a tie the first one seen stays.
/// The result is sorted by key.
pub(crate) fn latest_per_key(records: impl IntoIterator<Item = Metadata>) -> Vec<Metadata> {
    let mut by_key: HashMap<String, Metadata> = HashMap::new();
    for m in records {
        match by_key.get(&m.key) {
            Some(current) if current.updated_at() >= m.updated_at() => {}
            _ => {
                by_key.insert(m.key.clone(), m);
            }
        }
    }
    let mut out: Vec<Metadata> = by_key.into_values().collect();
    out.sort_by(|a, b| a.key.cmp(&b.key));
    out
}

/// The R6 answer for the chunks of a ball: deduplicated, sorted by the numeric `index` tag
/// (chunks without one last, by key), `size_bytes` summed over the chunks and `checksum`
/// the `full_checksum` of chunk 0 (or of the first chunk, or `""`).
pub(crate) fn ball_metadata(
    bucket_id: &str,
    ball_id: &str,
    records: impl IntoIterator<Item = Metadata>,
) -> BallMetadata {
    let mut chunks = latest_per_key(records);
    chunks.sort_by(|a, b| match (a.index(), b.index()) {
        (Some(x), Some(y)) => x.cmp(&y).then_with(|| a.key.cmp(&b.key)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.key.cmp(&b.key),
    });
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
            ball_id: "ball".into(),
            bucket_id: "b".into(),
            is_disabled: false,
        }
    }

    #[test]
    fn highest_updated_at_wins_and_zero_sizes_stay() {
        let merged = latest_per_key(vec![
            meta("k", 1, &[(tag::UPDATED_AT, "10")]),
            meta("k", 2, &[(tag::UPDATED_AT, "30")]),
            meta("k", 3, &[(tag::UPDATED_AT, "20")]),
            meta("empty", 0, &[]),
            meta("a", 5, &[(tag::UPDATED_AT, "garbage")]),
            meta("a", 6, &[]),
        ]);
        let got: Vec<(&str, u64)> = merged.iter().map(|m| (m.key.as_str(), m.size)).collect();
        // "a": both count as -1, the first one seen stays.
        assert_eq!(got, vec![("a", 5), ("empty", 0), ("k", 2)]);
    }

    #[test]
    fn chunks_sorted_numerically_and_summed_once() {
        let fc = "f".repeat(64);
        let records = vec![
            meta("ball_10", 5, &[(tag::INDEX, "10")]),
            meta("ball_2", 5, &[(tag::INDEX, "2")]),
            meta(
                "ball_0",
                10,
                &[(tag::INDEX, "0"), (tag::FULL_CHECKSUM, &fc)],
            ),
            meta("ball_2", 5, &[(tag::INDEX, "2")]), // the other replica
            meta("stray", 1, &[]),
        ];
        let ball = ball_metadata("b", "ball", records);
        let keys: Vec<&str> = ball.chunks.iter().map(|c| c.key.as_str()).collect();
        assert_eq!(keys, vec!["ball_0", "ball_2", "ball_10", "stray"]);
        assert_eq!(ball.size_bytes, 21);
        assert_eq!(ball.size, "21 bytes");
        assert_eq!(ball.checksum, fc);
    }

    #[test]
    fn checksum_is_empty_without_full_checksum() {
        let ball = ball_metadata("b", "x", vec![meta("x_0", 1_500_000, &[(tag::INDEX, "0")])]);
        assert_eq!(ball.checksum, "");
        assert_eq!(ball.size, "1.5 MB");
    }
}
