//! The one HTTP error type of the router and the peer.
//!
//! Every error answers JSON `{"detail": ...}` with a precise status (DESIGN §2): 400 bad input,
//! 401/403 auth, 404 not found, 409 conflict, 413 too large, 507 no space, 503 no healthy
//! peer. A 5xx body never carries internals; those are logged once, here.

use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use mictlanx::model::{ErrorBody, NoAvailablePeersDetail, NO_AVAILABLE_PEERS_CODE};
use serde_json::Value;

/// An error answer: a status and a `detail` (a message or an object).
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// The `detail` of the body.
    pub detail: Value,
    /// Headers sent with the answer (such as the version a stale write must beat).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    /// An error with a message detail.
    pub fn new(status: StatusCode, msg: impl Into<String>) -> Self {
        Self {
            status,
            detail: Value::String(msg.into()),
            headers: Vec::new(),
        }
    }

    /// The same error, answered with one more header.
    #[must_use]
    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }

    /// 400: the caller sent something wrong.
    pub fn bad_request(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, msg)
    }

    /// 404.
    pub fn not_found(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, msg)
    }

    /// 409.
    pub fn conflict(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, msg)
    }

    /// 413.
    pub fn too_large(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, msg)
    }

    /// 507: no space left.
    pub fn no_space(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::INSUFFICIENT_STORAGE, msg)
    }

    /// 503: no healthy peer (or router) can serve this.
    pub fn unavailable(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, msg)
    }

    /// 502: every upstream peer failed.
    pub fn bad_gateway(msg: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_GATEWAY, msg)
    }

    /// 500: our fault. The cause is logged here; the body says only `what` failed.
    pub fn internal(what: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(event = "INTERNAL.ERROR", what, cause = %cause);
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, format!("{what} failed"))
    }

    /// The router's "not enough peers" answer: 404 with an object detail and `code` 666,
    /// exactly as MictlanX clients expect it.
    pub fn no_available_peers(bucket_id: &str, key: &str, replicas: Vec<String>) -> Self {
        let detail = NoAvailablePeersDetail {
            msg: "No available peers.".to_string(),
            suggestion: "Add more peers or delete replicas.".to_string(),
            bucket_id: bucket_id.to_string(),
            key: key.to_string(),
            replicas,
            code: NO_AVAILABLE_PEERS_CODE,
        };
        Self {
            status: StatusCode::NOT_FOUND,
            detail: serde_json::to_value(detail).unwrap_or(Value::Null),
            headers: Vec::new(),
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.status, self.detail)
    }
}

impl std::error::Error for ApiError {}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (
            self.status,
            Json(ErrorBody {
                detail: self.detail,
            }),
        )
            .into_response();
        response.headers_mut().extend(self.headers);
        response
    }
}

impl From<mictlanx::id::IdError> for ApiError {
    fn from(e: mictlanx::id::IdError) -> Self {
        ApiError::bad_request(e.to_string())
    }
}

/// Turns axum's own rejections (bad JSON, wrong content type, bad path or query) into our
/// JSON error shape with a 400 (or the rejection's own 4xx, e.g. 413, 415).
pub fn from_rejection(status: StatusCode, text: String) -> ApiError {
    let status = if status.is_client_error() {
        match status {
            StatusCode::UNPROCESSABLE_ENTITY => StatusCode::BAD_REQUEST,
            s => s,
        }
    } else {
        StatusCode::BAD_REQUEST
    };
    ApiError::new(status, text)
}

impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(r: axum::extract::rejection::JsonRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::PathRejection> for ApiError {
    fn from(r: axum::extract::rejection::PathRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(r: axum::extract::rejection::QueryRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

impl From<axum::extract::multipart::MultipartRejection> for ApiError {
    fn from(r: axum::extract::multipart::MultipartRejection) -> Self {
        from_rejection(r.status(), r.body_text())
    }
}

/// `axum::Json` with our rejection, so malformed JSON gets `{"detail": ...}` and a 400.
#[derive(Debug, Clone, Copy, Default, axum::extract::FromRequest)]
#[from_request(via(axum::Json), rejection(ApiError))]
pub struct ApiJson<T>(pub T);

impl<T: serde::Serialize> IntoResponse for ApiJson<T> {
    fn into_response(self) -> Response {
        Json(self.0).into_response()
    }
}

/// `axum::extract::Path` with our rejection.
#[derive(Debug, Clone, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(ApiError))]
pub struct ApiPath<T>(pub T);

/// `axum::extract::Query` with our rejection.
#[derive(Debug, Clone, axum::extract::FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(ApiError))]
pub struct ApiQuery<T>(pub T);

/// The fallback for unknown routes: 404 in our error shape.
pub async fn route_not_found() -> ApiError {
    ApiError::not_found("no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_available_peers_has_code_666() {
        let e = ApiError::no_available_peers("b", "k", vec!["peer-0".into()]);
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(e.detail["code"], 666);
        assert_eq!(e.detail["msg"], "No available peers.");
        assert_eq!(e.detail["replicas"][0], "peer-0");
    }
}
