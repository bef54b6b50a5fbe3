//! The one error type of the SDK.
//!
//! Every kind carries the class and codes of the original MictlanX client (client reference
//! §10), so logs and tools that look for `NotFoundError (status=404,code=404)` keep working.
//! Unlike the original, an error built from an HTTP response is classified by its **status
//! and** its body (a router 404 with a string detail is a `NotFound`, not an "unknown error").

use std::fmt;

use crate::checksum::ChecksumError;
use crate::chunking::ChunkingError;
use crate::id::IdError;
use crate::model::{ErrorBody, NO_AVAILABLE_PEERS_CODE};
use crate::size::SizeError;
use crate::uri::UriError;
use crate::xolo::KeyError;

/// `Result` with [`Error`] as the default error type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest response body text kept in an error message; the rest is cut.
const MAX_BODY_TEXT: usize = 512;

/// Everything that can go wrong in the SDK.
///
/// Match on the variant to act; use [`Error::is_retryable`] to decide whether trying again can
/// help, and [`Error::status_code`] / [`Error::error_code`] for the original's numeric codes.
///
/// # Examples
///
/// ```
/// use mictlanx::Error;
///
/// let err = Error::from_response(404, br#"{"detail":"b@k not found"}"#);
/// assert!(matches!(err, Error::NotFound { .. }));
/// assert_eq!(err.to_string(), "NotFoundError (status=404,code=404): b@k not found");
/// assert!(!err.is_retryable());
///
/// let busy = Error::from_response(503, b"no healthy peer");
/// assert!(busy.is_retryable());
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// Bad input, refused before or by the server (400, 422). Class `ValidationError`.
    Validation {
        /// What is wrong.
        message: String,
    },
    /// A bucket id, ball id, key or task id that is not acceptable.
    InvalidId(IdError),
    /// A size string that does not parse.
    InvalidSize(SizeError),
    /// A router or peer address that does not parse.
    InvalidUri(UriError),
    /// A chunk size or count that cannot make a plan.
    InvalidChunking(ChunkingError),
    /// Missing or invalid credentials (401). Class `AuthenticationError`.
    Authentication {
        /// Server message.
        message: String,
    },
    /// Credentials without the needed role (403). Class `PermissionError`.
    PermissionDenied {
        /// Server message.
        message: String,
    },
    /// The bucket, ball, key or task does not exist (404). Class `NotFoundError`.
    NotFound {
        /// What was not found.
        message: String,
    },
    /// A local file that would be overwritten already exists. Class `FileAlreadyExists` (405).
    AlreadyExists {
        /// Which file.
        message: String,
    },
    /// The request conflicts with the current state (409).
    Conflict {
        /// Server message.
        message: String,
    },
    /// Not enough healthy peers for the asked replication (router 404 with code 666).
    /// Class `MaxAvailabilityReachedError` (status 409, code 666).
    MaxAvailabilityReached {
        /// Server message.
        message: String,
    },
    /// The body is larger than the server accepts (413).
    PayloadTooLarge {
        /// Server message.
        message: String,
    },
    /// The peers have no space left (507).
    InsufficientStorage {
        /// Server message.
        message: String,
    },
    /// No healthy router or peer could serve the request (503).
    Unavailable {
        /// What was unavailable.
        message: String,
    },
    /// Bytes whose SHA-256 or length does not match their metadata. Class `IntegrityError` (501).
    Integrity {
        /// What did not match.
        message: String,
    },
    /// Some chunks of a put failed after their retries. Class `PutChunksError` (502).
    PutChunks {
        /// The failures, one per chunk.
        message: String,
    },
    /// A chunk of a get failed after its retries. Class `GetChunkError` (503).
    GetChunk {
        /// The failure.
        message: String,
    },
    /// Any other HTTP error status. Class `UnknownError` (500) with the real status kept.
    Http {
        /// The HTTP status.
        status: u16,
        /// `detail.code` of the body, or 0.
        code: i64,
        /// The body's message.
        message: String,
    },
    /// A transport error that fits no narrower kind. Class `NetworkError` (1000).
    Network {
        /// Where and what.
        message: String,
        /// The transport's error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The TCP/TLS connection could not be made. Class `ConnectFailedError` (1001).
    ConnectFailed {
        /// Where and why.
        message: String,
        /// The transport's error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The TLS handshake failed: most often the server's certificate is not trusted (give
    /// its CA with `MICTLANX_CA_FILE` / [`ClientBuilder::ca_file`](crate::ClientBuilder::ca_file)).
    /// Class `ConnectFailedError` (1001), as a connection that could not be made; unlike
    /// other connect failures it is never retried (the certificate will not change).
    Tls {
        /// Where and why.
        message: String,
        /// The transport's error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The host name did not resolve. Class `DNSResolutionError` (1002).
    DnsResolution {
        /// Which host.
        message: String,
        /// The transport's error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The request did not finish in time. Class `RequestTimeoutError` (1004).
    Timeout {
        /// Where.
        message: String,
        /// The transport's error.
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// The server answered something that is not the protocol (bad JSON, cut body).
    /// Class `UpstreamProtocolError` (1005).
    UpstreamProtocol {
        /// What was wrong.
        message: String,
    },
    /// The operation was stopped by its cancellation token (or its task was cancelled);
    /// what it had stored was cleaned up.
    Cancelled,
    /// A local file operation failed.
    Io(std::io::Error),
    /// A Xolo key that cannot be made, read or parsed. Class `KeyError` (400).
    Key(KeyError),
    /// An encrypted ball that does not open: a segment tampered with, reordered, truncated
    /// or from another ball, a wrapped key that does not open with the given key, or
    /// unusable encryption tags. Class `DecryptionError` (1100). Never retried.
    Decryption {
        /// What did not open.
        message: String,
    },
    /// The ball is encrypted, but not to the given key. Class `NotARecipientError` (1101).
    NotARecipient {
        /// The key and the recipients the ball lists (fingerprints).
        message: String,
    },
    /// A key was given to open a ball that is not encrypted. Class `NotEncryptedError` (1102).
    NotEncrypted {
        /// Which ball.
        message: String,
    },
    /// The ball is encrypted and no key was given to open it (its sealed bytes are never
    /// handed out as if they were the data). Class `MissingKeyError` (1103).
    MissingKey {
        /// Which ball.
        message: String,
    },
}

impl Error {
    /// The original client's class name, e.g. `"NotFoundError"`.
    pub fn class_name(&self) -> &'static str {
        match self {
            Error::Validation { .. }
            | Error::InvalidId(_)
            | Error::InvalidSize(_)
            | Error::InvalidUri(_)
            | Error::InvalidChunking(_) => "ValidationError",
            Error::Authentication { .. } => "AuthenticationError",
            Error::PermissionDenied { .. } => "PermissionError",
            Error::NotFound { .. } => "NotFoundError",
            Error::AlreadyExists { .. } => "FileAlreadyExists",
            Error::MaxAvailabilityReached { .. } => "MaxAvailabilityReachedError",
            Error::Integrity { .. } => "IntegrityError",
            Error::PutChunks { .. } => "PutChunksError",
            Error::GetChunk { .. } => "GetChunkError",
            Error::Network { .. } => "NetworkError",
            Error::ConnectFailed { .. } | Error::Tls { .. } => "ConnectFailedError",
            Error::DnsResolution { .. } => "DNSResolutionError",
            Error::Timeout { .. } => "RequestTimeoutError",
            Error::UpstreamProtocol { .. } => "UpstreamProtocolError",
            Error::Cancelled => "CancelledError",
            Error::Key(_) => "KeyError",
            Error::Decryption { .. } => "DecryptionError",
            Error::NotARecipient { .. } => "NotARecipientError",
            Error::NotEncrypted { .. } => "NotEncryptedError",
            Error::MissingKey { .. } => "MissingKeyError",
            Error::Conflict { .. }
            | Error::PayloadTooLarge { .. }
            | Error::InsufficientStorage { .. }
            | Error::Unavailable { .. }
            | Error::Http { .. }
            | Error::Io(_) => "UnknownError",
        }
    }

    /// The status of the original's class table (§10.1): an HTTP status for HTTP kinds, the
    /// original's 1000-range codes for transport kinds. For the real HTTP status of a response,
    /// see [`Error::http_status`].
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Validation { .. }
            | Error::InvalidId(_)
            | Error::InvalidSize(_)
            | Error::InvalidUri(_)
            | Error::InvalidChunking(_) => 400,
            Error::Authentication { .. } => 401,
            Error::PermissionDenied { .. } => 403,
            Error::NotFound { .. } => 404,
            Error::AlreadyExists { .. } => 405,
            Error::Conflict { .. } | Error::MaxAvailabilityReached { .. } => 409,
            Error::PayloadTooLarge { .. } => 413,
            Error::Integrity { .. } => 501,
            Error::PutChunks { .. } => 502,
            Error::GetChunk { .. } | Error::Unavailable { .. } => 503,
            Error::InsufficientStorage { .. } => 507,
            Error::Http { status, .. } => *status,
            Error::Network { .. } => 1000,
            Error::ConnectFailed { .. } | Error::Tls { .. } => 1001,
            Error::DnsResolution { .. } => 1002,
            Error::Timeout { .. } => 1004,
            Error::UpstreamProtocol { .. } => 1005,
            // nginx's "client closed request": the caller stopped it.
            Error::Cancelled => 499,
            Error::Io(_) => 500,
            Error::Key(_) => 400,
            // Client-side Xolo kinds, numbered after the original's transport range.
            Error::Decryption { .. } => 1100,
            Error::NotARecipient { .. } => 1101,
            Error::NotEncrypted { .. } => 1102,
            Error::MissingKey { .. } => 1103,
        }
    }

    /// The original's error code (§10.1): 666 for max availability, the status otherwise
    /// (0-coded bodies of unknown HTTP errors keep their body code).
    pub fn error_code(&self) -> i64 {
        match self {
            Error::MaxAvailabilityReached { .. } => NO_AVAILABLE_PEERS_CODE,
            Error::Http { code, status, .. } => {
                if *code != 0 {
                    *code
                } else {
                    i64::from(*status)
                }
            }
            other => i64::from(other.status_code()),
        }
    }

    /// The HTTP status of this kind of error (a 422 is reported as the 400 of a
    /// validation error), or `None` for kinds that do not come from an HTTP answer.
    pub fn http_status(&self) -> Option<u16> {
        match self {
            Error::Validation { .. } => Some(400),
            Error::Authentication { .. } => Some(401),
            Error::PermissionDenied { .. } => Some(403),
            Error::NotFound { .. } => Some(404),
            Error::Conflict { .. } => Some(409),
            Error::PayloadTooLarge { .. } => Some(413),
            Error::Unavailable { .. } => Some(503),
            Error::InsufficientStorage { .. } => Some(507),
            Error::MaxAvailabilityReached { .. } => Some(404),
            Error::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The message, without the class prefix.
    pub fn message(&self) -> String {
        match self {
            Error::Validation { message }
            | Error::Authentication { message }
            | Error::PermissionDenied { message }
            | Error::NotFound { message }
            | Error::AlreadyExists { message }
            | Error::Conflict { message }
            | Error::MaxAvailabilityReached { message }
            | Error::PayloadTooLarge { message }
            | Error::InsufficientStorage { message }
            | Error::Unavailable { message }
            | Error::Integrity { message }
            | Error::PutChunks { message }
            | Error::GetChunk { message }
            | Error::Http { message, .. }
            | Error::Network { message, .. }
            | Error::ConnectFailed { message, .. }
            | Error::Tls { message, .. }
            | Error::DnsResolution { message, .. }
            | Error::Timeout { message, .. }
            | Error::UpstreamProtocol { message }
            | Error::Decryption { message }
            | Error::NotARecipient { message }
            | Error::NotEncrypted { message }
            | Error::MissingKey { message } => message.clone(),
            Error::Key(e) => e.to_string(),
            Error::InvalidId(e) => e.to_string(),
            Error::InvalidSize(e) => e.to_string(),
            Error::InvalidUri(e) => e.to_string(),
            Error::InvalidChunking(e) => e.to_string(),
            Error::Cancelled => "operation cancelled".to_string(),
            Error::Io(e) => e.to_string(),
        }
    }

    /// Whether the operation was stopped by its cancellation token.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, Error::Cancelled)
    }

    /// Whether trying the same request again can succeed: transport failures, timeouts, 408,
    /// 429, 5xx (integrity failures included: another replica may be sound; 507 included: the
    /// router may place the retry on other peers). Never other 4xx,
    /// never bad input, never "not enough peers".
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Network { .. }
            | Error::ConnectFailed { .. }
            | Error::DnsResolution { .. }
            | Error::Timeout { .. }
            | Error::UpstreamProtocol { .. }
            | Error::Unavailable { .. }
            | Error::InsufficientStorage { .. }
            | Error::Integrity { .. } => true,
            Error::Http { status, .. } => matches!(*status, 408 | 429 | 500..=599),
            Error::Io(e) => matches!(
                e.kind(),
                std::io::ErrorKind::Interrupted | std::io::ErrorKind::TimedOut
            ),
            _ => false,
        }
    }

    /// Builds the error for an HTTP response that is not a success, from its status **and**
    /// body. The body may be `{"detail": "msg"}`, `{"detail": {"msg": .., "code": ..}}`, or
    /// anything else (kept as text, cut to 512 bytes).
    pub fn from_response(status: u16, body: &[u8]) -> Error {
        let (message, code) = match serde_json::from_slice::<ErrorBody>(body) {
            Ok(parsed) => (parsed.text(), parsed.code().unwrap_or(0)),
            Err(_) => (body_text(body), 0),
        };
        let message = if message.is_empty() {
            format!("HTTP {status}")
        } else {
            message
        };
        if code == NO_AVAILABLE_PEERS_CODE {
            return Error::MaxAvailabilityReached { message };
        }
        match status {
            400 | 422 => Error::Validation { message },
            401 => Error::Authentication { message },
            403 => Error::PermissionDenied { message },
            404 | 410 => Error::NotFound { message },
            409 => Error::Conflict { message },
            413 => Error::PayloadTooLarge { message },
            503 => Error::Unavailable { message },
            507 => Error::InsufficientStorage { message },
            _ => Error::Http {
                status,
                code,
                message,
            },
        }
    }

    /// Maps a transport (reqwest) error, naming the endpoint as `scheme://host:port` (never
    /// the path or query, which may carry ids the caller did not want in logs).
    pub fn from_transport(err: reqwest::Error) -> Error {
        let endpoint = err
            .url()
            .map(|u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_else(|| "<unknown endpoint>".to_string());
        let root = root_cause_text(&err);
        if let Some(reason) = tls_failure(&err) {
            return Error::Tls {
                message: format!("TLS handshake with {endpoint} failed: {reason}"),
                source: Some(Box::new(err)),
            };
        }
        if err.is_timeout() {
            let phase = if err.is_connect() {
                "Timeout connecting to"
            } else {
                "Timeout during request to"
            };
            return Error::Timeout {
                message: format!("{phase} {endpoint}: {root}"),
                source: Some(Box::new(err)),
            };
        }
        if err.is_connect() {
            let lower = root.to_ascii_lowercase();
            if lower.contains("dns")
                || lower.contains("failed to lookup address")
                || lower.contains("name or service not known")
            {
                return Error::DnsResolution {
                    message: format!("DNS resolution failed for {endpoint}: {root}"),
                    source: Some(Box::new(err)),
                };
            }
            let what = if lower.contains("refused") {
                "Connection refused to"
            } else {
                "Failed to connect to"
            };
            return Error::ConnectFailed {
                message: format!("{what} {endpoint}: {root}"),
                source: Some(Box::new(err)),
            };
        }
        if err.is_decode() || err.is_body() {
            return Error::UpstreamProtocol {
                message: format!("Bad response from {endpoint}: {root}"),
            };
        }
        Error::Network {
            message: format!("Request to {endpoint} failed: {root}"),
            source: Some(Box::new(err)),
        }
    }
}

/// The rustls error somewhere in `err`'s chain, explained. `io::Error::source()` skips the
/// error it wraps (and reqwest nests an `io::Error` in another), so wrapped errors are
/// followed through `get_ref()`.
fn tls_failure(err: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(match tls {
                rustls::Error::InvalidCertificate(cert) => format!(
                    "the server's certificate is not trusted ({cert:?}); give its CA with \
                     MICTLANX_CA_FILE or ClientBuilder::ca_file"
                ),
                other => other.to_string(),
            });
        }
        current = match e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => e.source(),
        };
    }
    None
}

/// The deepest error of a `source()` chain, as text.
fn root_cause_text(err: &(dyn std::error::Error + 'static)) -> String {
    let mut current = err;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

fn body_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.len() <= MAX_BODY_TEXT {
        return text.to_string();
    }
    let mut cut = MAX_BODY_TEXT;
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &text[..cut])
}

impl fmt::Display for Error {
    /// `"{Class} (status={status},code={code}): {message}"`, as the original prints errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} (status={},code={}): {}",
            self.class_name(),
            self.status_code(),
            self.error_code(),
            self.message()
        )
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::InvalidId(e) => Some(e),
            Error::InvalidSize(e) => Some(e),
            Error::InvalidUri(e) => Some(e),
            Error::InvalidChunking(e) => Some(e),
            Error::Io(e) => Some(e),
            Error::Key(e) => Some(e),
            Error::Network { source, .. }
            | Error::ConnectFailed { source, .. }
            | Error::Tls { source, .. }
            | Error::DnsResolution { source, .. }
            | Error::Timeout { source, .. } => source
                .as_deref()
                .map(|s| s as &(dyn std::error::Error + 'static)),
            _ => None,
        }
    }
}

impl From<IdError> for Error {
    fn from(e: IdError) -> Self {
        Error::InvalidId(e)
    }
}

impl From<SizeError> for Error {
    fn from(e: SizeError) -> Self {
        Error::InvalidSize(e)
    }
}

impl From<UriError> for Error {
    fn from(e: UriError) -> Self {
        Error::InvalidUri(e)
    }
}

impl From<ChunkingError> for Error {
    fn from(e: ChunkingError) -> Self {
        Error::InvalidChunking(e)
    }
}

impl From<ChecksumError> for Error {
    fn from(e: ChecksumError) -> Self {
        Error::Integrity {
            message: e.to_string(),
        }
    }
}

impl From<KeyError> for Error {
    fn from(e: KeyError) -> Self {
        Error::Key(e)
    }
}

impl From<std::io::Error> for Error {
    fn from(e: std::io::Error) -> Self {
        Error::Io(e)
    }
}

impl From<reqwest::Error> for Error {
    fn from(e: reqwest::Error) -> Self {
        Error::from_transport(e)
    }
}

impl From<Error> for std::io::Error {
    /// Keeps "not found" a `NotFound` io error, as object_store does.
    fn from(e: Error) -> Self {
        let kind = match &e {
            Error::NotFound { .. } => std::io::ErrorKind::NotFound,
            Error::AlreadyExists { .. } => std::io::ErrorKind::AlreadyExists,
            Error::PermissionDenied { .. } | Error::Authentication { .. } => {
                std::io::ErrorKind::PermissionDenied
            }
            Error::Timeout { .. } => std::io::ErrorKind::TimedOut,
            Error::Validation { .. } | Error::InvalidId(_) | Error::InvalidSize(_) => {
                std::io::ErrorKind::InvalidInput
            }
            _ => std::io::ErrorKind::Other,
        };
        match e {
            Error::Io(io) => io,
            other => std::io::Error::new(kind, other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn not_found_prints_like_the_original() {
        let e = Error::NotFound {
            message: "Missing file".into(),
        };
        assert_eq!(
            e.to_string(),
            "NotFoundError (status=404,code=404): Missing file"
        );
    }

    #[test]
    fn string_detail_404_is_not_found_not_unknown() {
        // The original maps this to UnknownError(500); we look at the status too.
        let e = Error::from_response(404, br#"{"detail":"No metadata found for b@k"}"#);
        assert!(
            matches!(e, Error::NotFound { ref message } if message == "No metadata found for b@k")
        );
    }

    #[test]
    fn object_detail_code_666_is_max_availability() {
        let body = br#"{"detail":{"msg":"No available peers.","suggestion":"Add more peers",
            "bucket_id":"b","key":"k","replicas":[],"code":666}}"#;
        let e = Error::from_response(404, body);
        assert!(matches!(e, Error::MaxAvailabilityReached { .. }));
        assert_eq!(e.status_code(), 409);
        assert_eq!(e.error_code(), 666);
        assert_eq!(e.http_status(), Some(404));
        assert_eq!(e.message(), "No available peers.");
        assert!(!e.is_retryable());
    }

    #[test]
    fn validation_from_object_detail() {
        let e = Error::from_response(400, br#"{"detail":{"msg":"Invalid UUID","code":400}}"#);
        assert!(matches!(e, Error::Validation { ref message } if message == "Invalid UUID"));
        assert_eq!(e.class_name(), "ValidationError");
    }

    #[test]
    fn status_decides_the_kind() {
        let cases: [(u16, &str); 9] = [
            (401, "AuthenticationError"),
            (403, "PermissionError"),
            (404, "NotFoundError"),
            (409, "UnknownError"),
            (413, "UnknownError"),
            (422, "ValidationError"),
            (500, "UnknownError"),
            (503, "UnknownError"),
            (507, "UnknownError"),
        ];
        for (status, class) in cases {
            let e = Error::from_response(status, b"{\"detail\":\"x\"}");
            assert_eq!(e.class_name(), class, "status {status}");
            let expected = if status == 422 { 400 } else { status };
            assert_eq!(e.http_status(), Some(expected));
        }
    }

    #[test]
    fn retryable_classification() {
        for status in [408u16, 429, 500, 502, 503, 504, 507] {
            assert!(Error::from_response(status, b"").is_retryable(), "{status}");
        }
        for status in [400u16, 401, 403, 404, 405, 409, 413, 422] {
            assert!(
                !Error::from_response(status, b"").is_retryable(),
                "{status}"
            );
        }
        assert!(Error::Timeout {
            message: "t".into(),
            source: None
        }
        .is_retryable());
        assert!(Error::ConnectFailed {
            message: "c".into(),
            source: None
        }
        .is_retryable());
        assert!(!Error::Validation {
            message: "v".into()
        }
        .is_retryable());
    }

    #[test]
    fn non_json_body_is_kept_as_text_and_cut() {
        let e = Error::from_response(500, b"Internal Server Error");
        assert_eq!(e.message(), "Internal Server Error");
        let long = vec![b'x'; 10_000];
        let e = Error::from_response(502, &long);
        assert!(e.message().len() <= MAX_BODY_TEXT + 3);
        let e = Error::from_response(502, b"");
        assert_eq!(e.message(), "HTTP 502");
        // Invalid UTF-8 never panics.
        let e = Error::from_response(500, &[0xff, 0xfe, b'a']);
        assert!(e.message().contains('a'));
    }

    #[test]
    fn unknown_error_keeps_body_code() {
        let e = Error::from_response(500, br#"{"detail":{"msg":"boom","code":501}}"#);
        assert_eq!(e.error_code(), 501);
        assert_eq!(e.status_code(), 500);
    }

    #[tokio::test]
    async fn connection_refused_is_connect_failed() {
        // Bind then drop a listener so the port is (very likely) closed.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let err = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}/health"))
            .send()
            .await
            .unwrap_err();
        let e = Error::from_transport(err);
        assert!(matches!(e, Error::ConnectFailed { .. }), "{e}");
        assert!(e.message().contains(&format!("127.0.0.1:{port}")));
        assert!(e.is_retryable());
        assert_eq!(e.error_code(), 1001);
    }

    #[test]
    fn a_certificate_failure_is_found_through_nested_io_errors() {
        // The shape reqwest produces: io::Error(Other, io::Error(InvalidData, rustls::Error)).
        let rustls_error =
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, rustls_error);
        let outer = std::io::Error::other(inner);
        let reason = tls_failure(&outer).expect("found");
        assert!(
            reason.contains("not trusted") && reason.contains("MICTLANX_CA_FILE"),
            "{reason}"
        );
        let other =
            std::io::Error::new(std::io::ErrorKind::InvalidData, rustls::Error::DecryptError);
        assert!(tls_failure(&other).is_some());
        assert!(tls_failure(&std::io::Error::other("refused")).is_none());
        let tls = Error::Tls {
            message: reason,
            source: None,
        };
        assert_eq!(tls.class_name(), "ConnectFailedError");
        assert_eq!(tls.status_code(), 1001);
        assert!(!tls.is_retryable());
    }

    #[test]
    fn io_conversion_keeps_not_found() {
        let e: std::io::Error = Error::NotFound {
            message: "x".into(),
        }
        .into();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound);
    }
}
