//! JSON answers written as their entries are read, through a small bounded channel.

use std::future::Future;
use std::io;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc;

use super::{IS_TRUNCATED_HEADER, NEXT_TOKEN_HEADER};

/// Bytes gathered before they are handed to the connection.
const FLUSH_AT: usize = 32 * 1024;

/// Pieces in flight between the producer and the connection: with [`FLUSH_AT`], at most
/// about 160 KiB per answer, however long the listing.
const PIECES_IN_FLIGHT: usize = 4;

/// A client that reads nothing of a listing for this long is given up on (its slot of the
/// listing gate is freed).
const IDLE_CLIENT: Duration = Duration::from_secs(30);

/// The client went away or stopped reading: the producer stops.
#[derive(Debug)]
pub(crate) struct Gone;

/// The writing end of a streamed JSON answer.
pub(crate) struct JsonStream {
    tx: mpsc::Sender<io::Result<Bytes>>,
    buf: Vec<u8>,
    first: bool,
}

impl JsonStream {
    /// A `200` JSON answer whose body `produce` writes. `produce` runs in its own task,
    /// which ends with the answer: when it returns, or at its next write once the client
    /// has gone.
    pub(crate) fn respond<F, Fut>(headers: Vec<(HeaderName, HeaderValue)>, produce: F) -> Response
    where
        F: FnOnce(JsonStream) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let (tx, rx) = mpsc::channel(PIECES_IN_FLIGHT);
        let stream = JsonStream {
            tx,
            buf: Vec::with_capacity(FLUSH_AT * 2),
            first: true,
        };
        // Not detached in effect: the task's only output is this answer's channel, so it
        // stops when the body is dropped (the client left) or idles out.
        tokio::spawn(produce(stream));
        let body = futures::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|piece| (piece, rx))
        });
        let mut response = Body::from_stream(body).into_response();
        let h = response.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        for (name, value) in headers {
            h.insert(name, value);
        }
        response
    }

    /// Writes `text` as is; the entries after it are a new comma-separated sequence.
    pub(crate) async fn raw(&mut self, text: &[u8]) -> Result<(), Gone> {
        self.buf.extend_from_slice(text);
        self.first = true;
        self.maybe_flush().await
    }

    /// Writes one element of a JSON array.
    pub(crate) async fn element<T: Serialize>(&mut self, value: &T) -> Result<(), Gone> {
        self.separator();
        self.serialize(value)?;
        self.maybe_flush().await
    }

    /// Writes one `"key": value` member of a JSON object.
    pub(crate) async fn member<T: Serialize>(&mut self, key: &str, value: &T) -> Result<(), Gone> {
        self.separator();
        self.serialize(key)?;
        self.buf.push(b':');
        self.serialize(value)?;
        self.maybe_flush().await
    }

    /// Sends what is left; the answer is complete.
    pub(crate) async fn finish(mut self) {
        let _ = self.flush().await;
    }

    /// Cuts the answer short: the client sees a broken body, never a well-formed partial
    /// listing.
    pub(crate) async fn fail(self, why: impl std::fmt::Display) {
        tracing::warn!(event = "LISTING.CUT", reason = %why);
        let _ = self
            .tx
            .send_timeout(Err(io::Error::other(why.to_string())), IDLE_CLIENT)
            .await;
    }

    fn separator(&mut self) {
        if !self.first {
            self.buf.push(b',');
        }
        self.first = false;
    }

    fn serialize<T: Serialize + ?Sized>(&mut self, value: &T) -> Result<(), Gone> {
        // Serializing our own model types into memory cannot fail; if it ever does, the
        // answer is cut rather than malformed.
        serde_json::to_writer(&mut self.buf, value).map_err(|_| Gone)
    }

    async fn maybe_flush(&mut self) -> Result<(), Gone> {
        if self.buf.len() >= FLUSH_AT {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> Result<(), Gone> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let piece = Bytes::from(std::mem::replace(
            &mut self.buf,
            Vec::with_capacity(FLUSH_AT * 2),
        ));
        self.tx
            .send_timeout(Ok(piece), IDLE_CLIENT)
            .await
            .map_err(|_| Gone)
    }
}

/// The paging headers of a page: `X-Mictlanx-Is-Truncated` and, when more follow,
/// `X-Mictlanx-Next-Continuation-Token`.
pub(crate) fn page_headers(next_token: Option<&str>) -> Vec<(HeaderName, HeaderValue)> {
    let mut out = vec![(
        IS_TRUNCATED_HEADER,
        HeaderValue::from_static(if next_token.is_some() {
            "true"
        } else {
            "false"
        }),
    )];
    // Tokens are hex with a digit prefix, always a valid header value.
    if let Some(v) = next_token.and_then(|t| HeaderValue::from_str(t).ok()) {
        out.push((NEXT_TOKEN_HEADER, v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn writes_arrays_and_objects() {
        let response = JsonStream::respond(page_headers(None), |mut s| async move {
            s.raw(br#"{"a":["#).await.unwrap();
            for i in 0..3 {
                s.element(&i).await.unwrap();
            }
            s.raw(br#"],"m":{"#).await.unwrap();
            s.member("x", &1).await.unwrap();
            s.member("y", &"z").await.unwrap();
            s.raw(b"}}").await.unwrap();
            s.finish().await;
        });
        assert_eq!(response.headers()[IS_TRUNCATED_HEADER], "false");
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"a": [0, 1, 2], "m": {"x": 1, "y": "z"}})
        );
    }
}
