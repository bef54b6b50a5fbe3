//! HTTP handlers of the router, one file per area of the API.

pub(crate) mod delete;
pub(crate) mod get;
pub(crate) mod health;
pub(crate) mod list;
pub(crate) mod peers;
pub(crate) mod put;

use axum::http::StatusCode;
use mictlanx::id::IdError;

use crate::error::ApiError;

use super::peer_client::PeerError;

/// A bucket id or key fixed by the route table (bucket `data`, key `metadata` or `bid`,
/// which some routes mean without naming them in a parameter).
pub(crate) fn fixed<T: TryFrom<&'static str, Error = IdError>>(
    raw: &'static str,
) -> Result<T, ApiError> {
    Ok(T::try_from(raw)?)
}

/// The answer for "no replica accepted": when every replica refused with the same client
/// error (say 400 for a checksum mismatch, 409 for a conflict), that status and the first
/// refusal's detail; otherwise 503 when none answered at all (down, unreachable, timed
/// out; `extra` lists peers that were down), else 502 with every reason.
pub(crate) fn all_refused(what: &str, errors: &[PeerError], extra: &[String]) -> ApiError {
    if extra.is_empty() {
        if let Some(first) = errors.first().and_then(PeerError::status) {
            let same = errors.iter().all(|e| e.status() == Some(first));
            if same && first.is_client_error() {
                return ApiError::new(first, errors[0].detail());
            }
            if same && first == StatusCode::INSUFFICIENT_STORAGE {
                return ApiError::no_space(errors[0].detail());
            }
        }
    }
    let mut reasons: Vec<String> = extra.to_vec();
    reasons.extend(errors.iter().map(ToString::to_string));
    let reasons = reasons.join("; ");
    // Only "down" reasons, or only peers that never answered: nobody could be asked.
    if errors.iter().all(PeerError::is_no_answer) {
        ApiError::unavailable(format!("{what}: {reasons}"))
    } else {
        ApiError::bad_gateway(format!("{what}: {reasons}"))
    }
}

/// A peer's refusal of put-metadata, mapped for the client: its 400, 409, 413 and 507 pass
/// through with its detail; no answer is 503; anything else is 502.
pub(crate) fn put_metadata_error(e: &PeerError) -> ApiError {
    match e.status() {
        Some(
            s @ (StatusCode::BAD_REQUEST
            | StatusCode::CONFLICT
            | StatusCode::PAYLOAD_TOO_LARGE
            | StatusCode::INSUFFICIENT_STORAGE),
        ) => ApiError::new(s, e.detail()),
        _ if e.is_no_answer() => ApiError::unavailable(e.to_string()),
        _ => ApiError::bad_gateway(e.to_string()),
    }
}
