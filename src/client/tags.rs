//! The tags written on every chunk: the caller's, then the system's on top (system wins).
//!
//! The original client merges the other way round, so a user tag named `index` or
//! `num_chunks` silently breaks reads (reference §4.3, §15); the newer fork already lets the
//! system win, and so do we.

use crate::model::{tag, Tags};

/// What the system knows about one chunk.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ChunkFacts<'a> {
    pub index: u64,
    pub chunk_len: u64,
    pub ball_id: &'a str,
    pub num_chunks: u64,
    pub full_checksum: &'a str,
    /// Epoch milliseconds of the put (one value for all its chunks).
    pub updated_at_ms: u128,
}

/// The caller's tags with the system tags written over them.
pub(crate) fn chunk_tags(user: &Tags, facts: &ChunkFacts<'_>) -> Tags {
    let mut tags = user.clone();
    let system = [
        (tag::INDEX, facts.index.to_string()),
        (tag::CHUNK_SIZE, facts.chunk_len.to_string()),
        (tag::GROUP_ID, facts.ball_id.to_owned()),
        (tag::NUM_CHUNKS, facts.num_chunks.to_string()),
        (tag::FULL_CHECKSUM, facts.full_checksum.to_owned()),
        (tag::UPDATED_AT, facts.updated_at_ms.to_string()),
    ];
    for (name, value) in system {
        tags.insert(name.to_owned(), value);
    }
    tags
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn now_ms() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_tags_win_and_user_tags_stay() {
        let mut user = Tags::new();
        user.insert("index".into(), "99".into());
        user.insert("num_chunks".into(), "1".into());
        user.insert("full_checksum".into(), "abc".into());
        user.insert("updated_at".into(), "0".into());
        user.insert("extension".into(), "png".into());
        let facts = ChunkFacts {
            index: 2,
            chunk_len: 10,
            ball_id: "pic",
            num_chunks: 3,
            full_checksum: "f00d",
            updated_at_ms: 1_700_000_000_123,
        };
        let tags = chunk_tags(&user, &facts);
        let get = |k: &str| tags.get(k).map(String::as_str);
        assert_eq!(get("index"), Some("2"));
        assert_eq!(get("chunk_size"), Some("10"));
        assert_eq!(get("group_id"), Some("pic"));
        assert_eq!(get("num_chunks"), Some("3"));
        assert_eq!(get("full_checksum"), Some("f00d"));
        assert_eq!(get("updated_at"), Some("1700000000123"));
        assert_eq!(get("extension"), Some("png"));
        assert_eq!(tags.len(), 7);
    }

    #[test]
    fn clock_is_after_2020() {
        assert!(now_ms() > 1_577_836_800_000);
    }
}
