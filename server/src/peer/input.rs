//! Validating what callers send besides ids (those are checked by the `mictlanx::id`
//! newtypes the paths and bodies deserialise into): reserved names, task ids, and the request
//! headers the peer understands (`Task-Id`, `Update`, `Range`). Unknown headers are never
//! looked at.

use axum::http::{header, HeaderMap};

use crate::error::ApiError;
use crate::storage::{parse_range, RangeSpec};

/// Longest task id accepted from a `Task-Id` header or a path.
const MAX_TASK_ID_LEN: usize = 128;

/// Keys the peer's URL scheme cannot address: `GET .../{bucket}/metadata` is the bucket
/// listing, and `.../{bucket}/bid/...` is the delete-by-ball route, so objects with these
/// keys could be stored but not read, sized, disabled or deleted.
const RESERVED_KEYS: [&str; 2] = ["metadata", "bid"];
/// Bucket ids the URL scheme cannot address: `.../buckets/data/...` are the upload routes.
const RESERVED_BUCKETS: [&str; 1] = ["data"];

/// Refuses (400) a put whose bucket or key the API could not address afterwards.
pub(crate) fn addressable(bucket_id: &str, key: &str) -> Result<(), ApiError> {
    if RESERVED_BUCKETS.contains(&bucket_id) {
        return Err(ApiError::bad_request(format!(
            "bucket id {bucket_id:?} is reserved by the peer API"
        )));
    }
    if RESERVED_KEYS.contains(&key) {
        return Err(ApiError::bad_request(format!(
            "key {key:?} is reserved by the peer API"
        )));
    }
    Ok(())
}

/// Whether `s` can be a task id: 1..=128 characters of `[A-Za-z0-9_-]` (uuids, and the
/// router's 21-character nanoid group ids).
pub(crate) fn is_task_id(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_TASK_ID_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The task id of a data upload path. One that cannot exist is simply not found.
pub(crate) fn task_id(raw: &str) -> Result<String, ApiError> {
    if is_task_id(raw) {
        Ok(raw.to_string())
    } else {
        let shown: String = raw.chars().take(MAX_TASK_ID_LEN).collect();
        Err(ApiError::not_found(format!("Task({shown}) not found")))
    }
}

/// The `Task-Id` header, when it is a valid task id; otherwise the peer picks one.
pub(crate) fn task_id_header(headers: &HeaderMap) -> Option<String> {
    headers
        .get("task-id")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|s| is_task_id(s))
        .map(str::to_string)
}

/// The replicas the writer asked for (`X-Mictlanx-Replication-Factor`); 0 when not said.
pub(crate) fn replication_factor(headers: &HeaderMap) -> u32 {
    headers
        .get(crate::version::REPLICATION_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// `Update: 1` (also `true`): the put may replace an existing key.
pub(crate) fn update_flag(headers: &HeaderMap) -> bool {
    headers
        .get("update")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// The `Range` header, when it holds one byte range this peer serves.
pub(crate) fn range(headers: &HeaderMap) -> Option<RangeSpec> {
    headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .and_then(parse_range)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn task_ids() {
        assert!(is_task_id("V1StGXR8_Z5jdHi6B-myT"));
        assert!(is_task_id(&"a".repeat(128)));
        assert!(!is_task_id(&"a".repeat(129)));
        assert!(!is_task_id(""));
        assert!(!is_task_id("a b"));
        assert!(!is_task_id("../x"));
        let e = task_id(&"x/".repeat(200)).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::NOT_FOUND);
    }

    #[test]
    fn headers() {
        let mut h = HeaderMap::new();
        assert_eq!(task_id_header(&h), None);
        assert!(!update_flag(&h));
        h.insert("Task-Id", HeaderValue::from_static("group-1"));
        h.insert("Update", HeaderValue::from_static("1"));
        assert_eq!(task_id_header(&h).as_deref(), Some("group-1"));
        assert!(update_flag(&h));
        h.insert("Task-Id", HeaderValue::from_static("not valid!"));
        h.insert("Update", HeaderValue::from_static("0"));
        assert_eq!(task_id_header(&h), None);
        assert!(!update_flag(&h));
        h.insert("Range", HeaderValue::from_static("bytes=1-2"));
        assert_eq!(range(&h), Some(RangeSpec::FromTo(1, 2)));
    }

    #[test]
    fn refused_ids_are_bad_requests() {
        use mictlanx::id::{BucketId, Key};
        for raw in ["..", "a/b", "a\0b", &"x".repeat(10_000)] {
            let e = ApiError::from(BucketId::new(raw).unwrap_err());
            assert_eq!(e.status, axum::http::StatusCode::BAD_REQUEST, "{raw:?}");
        }
        assert_eq!(Key::new("ball.txt").unwrap(), *"ball.txt");
    }

    #[test]
    fn reserved_names() {
        assert!(addressable("b", "k").is_ok());
        assert!(addressable("b", "metadata").is_err());
        assert!(addressable("b", "bid").is_err());
        assert!(addressable("data", "k").is_err());
        assert!(addressable("b", "data").is_ok());
    }
}
