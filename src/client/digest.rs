//! SHA-256 of received or read bytes, off the async threads when the input is large.

use bytes::Bytes;

use crate::blocking;
use crate::checksum::{sha256_hex, Sha256Stream};
use crate::Error;

/// Inputs up to this size are hashed in place: handing them to the blocking pool costs more
/// than hashing them (about 50 µs).
pub(crate) const INLINE_LIMIT: usize = 64 * 1024;

/// Lowercase hex SHA-256 of `data`.
pub(crate) async fn sha256(data: Bytes) -> Result<String, Error> {
    if data.len() <= INLINE_LIMIT {
        return Ok(sha256_hex(&data));
    }
    blocking::run("hashing", move || sha256_hex(&data)).await
}

/// Feeds `data` to a running hash.
pub(crate) async fn update(mut hasher: Sha256Stream, data: Bytes) -> Result<Sha256Stream, Error> {
    if data.len() <= INLINE_LIMIT {
        hasher.update(&data);
        return Ok(hasher);
    }
    blocking::run("hashing", move || {
        hasher.update(&data);
        hasher
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn small_and_large_inputs_hash_alike() {
        let big = Bytes::from(vec![7u8; INLINE_LIMIT * 3]);
        assert_eq!(sha256(big.clone()).await.unwrap(), sha256_hex(&big));
        let small = Bytes::from_static(b"abc");
        assert_eq!(sha256(small.clone()).await.unwrap(), sha256_hex(b"abc"));
        let h = update(Sha256Stream::new(), small).await.unwrap();
        let h = update(h, big.clone()).await.unwrap();
        let mut all = b"abc".to_vec();
        all.extend_from_slice(&big);
        assert_eq!(h.finalize_hex(), sha256_hex(&all));
    }
}
