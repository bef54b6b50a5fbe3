//! One HTTP exchange: send, classify the status, read and decode the body.
//!
//! Bodies of successful data GETs are read with a hard limit (the metadata size): a router
//! that sends fewer or more bytes than it promised is an error, never silently truncated.

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::model::ErrorBody;
use crate::Error;

/// Sends a request, mapping transport failures.
pub(crate) async fn send(req: reqwest::RequestBuilder) -> Result<reqwest::Response, Error> {
    req.send().await.map_err(Error::from_transport)
}

/// Passes a 2xx response through; turns any other into its [`Error`].
pub(crate) async fn check(resp: reqwest::Response) -> Result<reqwest::Response, Error> {
    let status = resp.status().as_u16();
    if resp.status().is_success() {
        return Ok(resp);
    }
    let body = resp.bytes().await.unwrap_or_default();
    Err(classify(status, &body))
}

/// [`Error::from_response`], plus one MictlanX router quirk: several of its handlers re-raise
/// their own 404 as `500 {"detail": "404: No metadata found for b@k"}` (server reference
/// §2.1, B3). That is a "not found", and retrying it cannot help.
pub(crate) fn classify(status: u16, body: &[u8]) -> Error {
    if status == 500 {
        if let Ok(parsed) = serde_json::from_slice::<ErrorBody>(body) {
            let text = parsed.text();
            if let Some(rest) = text.strip_prefix("404:") {
                return Error::NotFound {
                    message: rest.trim().to_owned(),
                };
            }
        }
    }
    Error::from_response(status, body)
}

/// Sends, checks the status and decodes a JSON body.
pub(crate) async fn send_json<T: DeserializeOwned>(
    req: reqwest::RequestBuilder,
) -> Result<T, Error> {
    let resp = check(send(req).await?).await?;
    decode(resp).await
}

/// Decodes a JSON body.
pub(crate) async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, Error> {
    let body = resp.bytes().await.map_err(Error::from_transport)?;
    serde_json::from_slice(&body).map_err(|e| Error::UpstreamProtocol {
        message: format!("unexpected JSON from the router: {e}"),
    })
}

/// Reads a body that must be exactly `expected` bytes long.
///
/// # Errors
///
/// [`Error::Integrity`] when the body is shorter or longer (retryable: another replica may be
/// sound), transport errors as they come.
pub(crate) async fn read_exact(resp: reqwest::Response, expected: u64) -> Result<Bytes, Error> {
    let capacity = usize::try_from(expected).map_err(|_| Error::Validation {
        message: format!("a chunk of {expected} bytes does not fit in memory on this platform"),
    })?;
    let mut body = resp.bytes_stream();
    let mut buf = BytesMut::with_capacity(capacity);
    while let Some(piece) = body.next().await {
        let piece = piece.map_err(Error::from_transport)?;
        if buf.len().saturating_add(piece.len()) > capacity {
            return Err(Error::Integrity {
                message: format!("received more than the {expected} bytes of the metadata"),
            });
        }
        buf.extend_from_slice(&piece);
    }
    if buf.len() != capacity {
        return Err(Error::Integrity {
            message: format!("received {} bytes, expected {expected}", buf.len()),
        });
    }
    Ok(buf.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn router_500_with_404_detail_is_not_found() {
        let e = classify(500, br#"{"detail":"404: No metadata found for b@k"}"#);
        assert!(
            matches!(e, Error::NotFound { ref message } if message == "No metadata found for b@k")
        );
        assert!(!e.is_retryable());
        // Other 500s stay retryable server errors.
        let e = classify(500, br#"{"detail":"boom"}"#);
        assert!(matches!(e, Error::Http { status: 500, .. }));
        assert!(e.is_retryable());
        assert!(matches!(
            classify(500, b"Internal Server Error"),
            Error::Http { .. }
        ));
        assert!(matches!(classify(404, b"{}"), Error::NotFound { .. }));
    }
}
