//! Continuation tokens: opaque to clients, the last key listed inside.

use crate::error::ApiError;

/// Tokens start with their format's version, so the format may change without old tokens
/// being misread.
const PREFIX: &str = "1";

/// The token of the page after `last_key` (a listing's own key: `key` in a bucket,
/// `bucket\0key` across buckets).
pub(crate) fn encode_token(last_key: &str) -> String {
    format!("{PREFIX}{}", hex::encode(last_key.as_bytes()))
}

/// The last key listed, from a token [`encode_token`] made.
///
/// # Errors
///
/// 400 when the token is not one of ours.
pub(crate) fn decode_token(token: &str) -> Result<String, ApiError> {
    let bad = || ApiError::bad_request("continuation_token is not a token this server gave out");
    let body = token.strip_prefix(PREFIX).ok_or_else(bad)?;
    let bytes = hex::decode(body).map_err(|_| bad())?;
    let key = String::from_utf8(bytes).map_err(|_| bad())?;
    if key.is_empty() {
        return Err(bad());
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_garbage() {
        for key in ["k", "b\0k", "ñ/…"] {
            assert_eq!(decode_token(&encode_token(key)).unwrap(), key);
        }
        for bad in ["", "1", "2abcd", "1zz", "1ff", "abc"] {
            let e = decode_token(bad).unwrap_err();
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{bad:?}");
        }
    }
}
