//! Request headers the router understands: the MictlanX flags (`Force`, `Force-Get`,
//! `Update`) and the ones it forwards (`Range`).
//!
//! The original reads `Force` and `Force-Get` as integers and answers 422 to anything else;
//! we never fail on a header (DESIGN §2): a value we cannot read falls back to the default.

use axum::http::{HeaderMap, HeaderValue};

/// `Update: 1` on put-metadata: overwrite the existing replicas.
pub(crate) const UPDATE: &str = "update";
/// `Force: 0|1` on deletes (forwarded to the peers; default 1).
pub(crate) const FORCE: &str = "force";
/// `Task-Id` sent to the peers on put-metadata.
pub(crate) const TASK_ID: &str = "task-id";
/// The SHA-256 a peer computed when it stored an object.
pub(crate) const X_SHA256: &str = "x-mictlanx-sha256";
/// `committed` or `pending`, on a peer's metadata answer.
pub(crate) const X_STATE: &str = "x-mictlanx-state";
/// Replicas deleted, on a peer's delete answer.
pub(crate) const N_DELETES: &str = "n-deletes";

/// Reads a boolean flag header.
///
/// `1`, `true`, `yes`, `on` (any case, any integer other than 0) are true; `0`, `false`,
/// `no`, `off` and an empty value are false; a missing or unreadable header is `default`.
pub(crate) fn flag(headers: &HeaderMap, name: &str, default: bool) -> bool {
    let Some(value) = headers.get(name).and_then(|v| v.to_str().ok()) else {
        return default;
    };
    parse_flag(value).unwrap_or(default)
}

fn parse_flag(value: &str) -> Option<bool> {
    let v = value.trim().to_ascii_lowercase();
    match v.as_str() {
        "1" | "true" | "yes" | "on" => Some(true),
        "0" | "false" | "no" | "off" | "" => Some(false),
        other => other.parse::<i64>().ok().map(|n| n != 0),
    }
}

/// The wire form of a flag sent to a peer.
pub(crate) fn flag_value(on: bool) -> &'static str {
    if on {
        "1"
    } else {
        "0"
    }
}

/// The `Range` header of a data read, if any, to forward to the replica.
pub(crate) fn range(headers: &HeaderMap) -> Option<HeaderValue> {
    headers
        .get(axum::http::header::RANGE)
        .filter(|v| !v.as_bytes().is_empty())
        .cloned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(name: &'static str, value: &'static str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(name, HeaderValue::from_static(value));
        h
    }

    #[test]
    fn truthy_and_falsy_values() {
        for v in ["1", "true", "TRUE", "Yes", "on", " 1 ", "2", "-1"] {
            assert!(flag(&headers("force", v), FORCE, false), "{v}");
        }
        for v in ["0", "false", "No", "off", "", "00"] {
            assert!(!flag(&headers("force", v), FORCE, true), "{v}");
        }
    }

    #[test]
    fn missing_or_unreadable_is_the_default() {
        assert!(flag(&HeaderMap::new(), FORCE, true));
        assert!(!flag(&HeaderMap::new(), UPDATE, false));
        assert!(flag(&headers("force", "maybe"), FORCE, true));
        assert!(!flag(&headers("force", "maybe"), FORCE, false));
        let mut h = HeaderMap::new();
        h.insert("force", HeaderValue::from_bytes(b"\xff").unwrap());
        assert!(flag(&h, FORCE, true));
    }

    #[test]
    fn header_names_are_case_insensitive() {
        let mut h = HeaderMap::new();
        h.insert("Force-Get", HeaderValue::from_static("true"));
        assert!(flag(&h, "force-get", false));
    }

    #[test]
    fn range_is_forwarded_only_when_present() {
        assert!(range(&HeaderMap::new()).is_none());
        assert!(range(&headers("range", "")).is_none());
        assert_eq!(range(&headers("range", "bytes=0-9")).unwrap(), "bytes=0-9");
    }
}
