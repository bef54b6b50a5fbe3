//! `X-Mictlanx-Metadata`: an object's metadata sent along with its bytes.
//!
//! A MictlanX read of one key is two exchanges: R4 for the metadata (size, checksum, tags),
//! then R5 for the bytes. Our peers put the metadata of the object they serve on the data
//! answer (PD3) and our routers pass it on (R5), so this SDK reads a chunk in one exchange
//! when its router sends the header, and falls back to R4 then R5 when it does not (a
//! MictlanX router). The metadata then also describes exactly the version whose bytes came
//! with it, where R4 then R5 can straddle an overwrite.
//!
//! The value is the compact JSON of [`Metadata`] with `%`, control and non-ASCII bytes
//! percent-encoded, so it is a valid header value and still readable. Metadata whose
//! encoding is longer than [`MAX_ENCODED_LEN`] is not sent (readers then ask R4).

use percent_encoding::{percent_decode, utf8_percent_encode, AsciiSet, CONTROLS};

use super::Metadata;

/// The header's name (lowercase, as HTTP/2 and `http` want it).
pub const NAME: &str = "x-mictlanx-metadata";

/// The longest value sent or accepted, in bytes.
pub const MAX_ENCODED_LEN: usize = 16 * 1024;

/// Encoded besides non-ASCII: the control bytes (not allowed in a header value) and `%`
/// (so that decoding is exact).
const ENCODED: &AsciiSet = &CONTROLS.add(b'%');

/// The header value for `metadata`, or `None` when it would exceed [`MAX_ENCODED_LEN`].
///
/// # Examples
///
/// ```
/// use mictlanx::model::{metadata_header, Metadata};
///
/// let meta: Metadata = serde_json::from_str(r#"{"key":"k_0","size":3,"checksum":"abc"}"#)?;
/// let value = metadata_header::encode(&meta).expect("small enough");
/// assert_eq!(metadata_header::decode(value.as_bytes())?, meta);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode(metadata: &Metadata) -> Option<String> {
    let json = serde_json::to_string(metadata).ok()?;
    let value = utf8_percent_encode(&json, ENCODED).to_string();
    (value.len() <= MAX_ENCODED_LEN).then_some(value)
}

/// Reads a header value written by [`encode`].
///
/// # Errors
///
/// A message saying what is wrong when the value is too long, is not percent-encoded UTF-8
/// or is not the JSON of a [`Metadata`].
///
/// # Examples
///
/// ```
/// assert!(mictlanx::model::metadata_header::decode(b"{not json").is_err());
/// ```
pub fn decode(value: &[u8]) -> Result<Metadata, String> {
    if value.len() > MAX_ENCODED_LEN {
        return Err(format!(
            "{NAME} is {} bytes, more than {MAX_ENCODED_LEN}",
            value.len()
        ));
    }
    let json = percent_decode(value)
        .decode_utf8()
        .map_err(|e| format!("{NAME} is not UTF-8: {e}"))?;
    serde_json::from_str(&json).map_err(|e| format!("{NAME} is not metadata: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Metadata {
        serde_json::from_value(serde_json::json!({
            "key": "ball_0",
            "size": 4096,
            "checksum": "a".repeat(64),
            "tags": {"name": "año 100% \"quoted\"\n", "num_chunks": "1"},
            "content_type": "text/plain",
            "ball_id": "ball",
            "bucket_id": "b",
        }))
        .expect("valid metadata")
    }

    #[test]
    fn round_trips_non_ascii_percent_quotes_and_newlines() {
        let meta = sample();
        let value = encode(&meta).expect("small");
        assert!(value.bytes().all(|b| (0x20..0x7f).contains(&b)), "{value}");
        assert!(axum_like_header_value_ok(&value));
        assert_eq!(decode(value.as_bytes()), Ok(meta));
    }

    /// What `http::HeaderValue::from_str` accepts: visible ASCII, space and tab.
    fn axum_like_header_value_ok(v: &str) -> bool {
        v.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b))
    }

    #[test]
    fn too_large_is_not_encoded_nor_accepted() {
        let mut meta = sample();
        meta.tags.insert("big".into(), "x".repeat(MAX_ENCODED_LEN));
        assert_eq!(encode(&meta), None);
        let long = vec![b'{'; MAX_ENCODED_LEN + 1];
        assert!(decode(&long).unwrap_err().contains("more than"));
    }

    #[test]
    fn malformed_values_are_errors() {
        assert!(decode(b"").is_err());
        assert!(decode(b"%FF%FE").unwrap_err().contains("UTF-8"));
        assert!(decode(b"{\"key\":1}").unwrap_err().contains("not metadata"));
        assert!(decode(b"[]").is_err());
    }
}
