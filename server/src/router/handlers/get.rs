//! Reads: metadata of a key (R4), the bytes of a key (R5), the sizes of its replicas (B1),
//! and a whole chunked ball (B10).

use std::io;
use std::time::Instant;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::stream::BoxStream;
use futures::StreamExt;
use mictlanx::id::{chunk_key, BallId, BucketId, Key};
use mictlanx::model::{metadata_header, tag, Metadata, SizeByKey, DEFAULT_CONTENT_TYPE};
use serde::Deserialize;

use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::metrics::Metrics;

use super::super::headers::{self, X_SHA256};
use super::super::lookup::locate;
use super::super::read::{read_metadata, read_object, ReadBody};
use super::super::state::RouterState;
use super::fixed;

/// Query of R5 and B10.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReadQuery {
    /// Overrides the `Content-Type` of the answer.
    #[serde(default)]
    content_type: String,
    /// File name for `Content-Disposition`.
    #[serde(default)]
    filename: String,
    /// `true` adds `Content-Disposition: attachment`. Read leniently (`1`, `yes`, ...): a
    /// value we cannot read is false rather than an error.
    #[serde(default)]
    attachment: Option<String>,
}

impl ReadQuery {
    fn attachment(&self) -> bool {
        self.attachment.as_deref().is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    }
}

/// R4 `GET /api/v4/buckets/{bucket_id}/metadata/{key}`.
///
/// `GET .../metadata/size` is, in the original's route order, the size of the key
/// `metadata` (B1 is registered first); we keep that.
pub(crate) async fn get_metadata(
    State(st): State<RouterState>,
    ApiPath((bucket, key)): ApiPath<(BucketId, Key)>,
) -> Result<Response, ApiError> {
    if key == *"size" {
        return sizes_in(&st, &bucket, &fixed("metadata")?)
            .await
            .map(|s| Json(s).into_response());
    }
    let (_, meta) = read_metadata(
        &st,
        &bucket,
        &key,
        ApiError::not_found(format!("No metadata found for {bucket}@{key}")),
    )
    .await?;
    Ok(Json(meta).into_response())
}

/// B1 `GET /api/v4/buckets/{bucket_id}/{key}/size`.
pub(crate) async fn sizes(
    State(st): State<RouterState>,
    ApiPath((bucket, key)): ApiPath<(BucketId, Key)>,
) -> Result<Json<Vec<SizeByKey>>, ApiError> {
    sizes_in(&st, &bucket, &key).await.map(Json)
}

async fn sizes_in(
    st: &RouterState,
    bucket: &BucketId,
    key: &Key,
) -> Result<Vec<SizeByKey>, ApiError> {
    let peers = st.peers.up_views(&locate(st, bucket, key).await);
    let mut out = Vec::new();
    // Peers that fail are left out; the failures are only noted.
    st.ask_each(
        &peers,
        |p| st.client.size(p, bucket, key),
        |_, size| out.push(size),
    )
    .await;
    Ok(out)
}

/// R5 `GET /api/v4/buckets/{bucket_id}/{key}`.
pub(crate) async fn get_object(
    State(st): State<RouterState>,
    ApiPath((bucket, key)): ApiPath<(BucketId, Key)>,
    ApiQuery(query): ApiQuery<ReadQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    get_object_in(&st, &bucket, &key, &query, &headers).await
}

/// R5 for ids given by the caller (also reached through `GET /buckets/data/{key}`).
pub(crate) async fn get_object_in(
    st: &RouterState,
    bucket: &BucketId,
    key: &Key,
    query: &ReadQuery,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let range = headers::range(headers);
    // The metadata is needed only for the tags of a download name; the bytes carry their
    // own size and checksum headers.
    let metadata = if query.attachment() {
        Some(
            read_metadata(
                st,
                bucket,
                key,
                ApiError::not_found(format!("{bucket}@{key} not found")),
            )
            .await?
            .1
            .metadata,
        )
    } else {
        None
    };
    let read = read_object(st, bucket, key, range.as_ref(), metadata.as_ref()).await?;
    st.policies.on_read(st, bucket, key);
    tracing::info!(
        event = "GET",
        bucket_id = %bucket,
        key = %key,
        size = read.length.unwrap_or_default(),
        peer = %read.peer,
        range = range.is_some(),
        response_time = started.elapsed().as_secs_f64()
    );

    let mut response = Response::builder()
        .status(read.status)
        .header(header::ACCEPT_RANGES, "bytes");
    if let Some(length) = read.length {
        response = response.header(header::CONTENT_LENGTH, length);
    }
    let content_type = content_type_of(query, read.content_type, metadata.as_ref());
    response = response.header(header::CONTENT_TYPE, content_type);
    if let Some(etag) = read.etag {
        response = response.header(header::ETAG, etag);
    }
    if let Some(range) = read.content_range {
        response = response.header(header::CONTENT_RANGE, range);
    }
    if let Some(blocks) = read.blocks {
        response = response.header(mictlanx::blocks::HEADER, blocks);
    }
    if let Some(sha) = read.sha256 {
        response = response.header(X_SHA256, sha);
    }
    if let Some(metadata) = read.metadata {
        response = response.header(metadata_header::NAME, metadata);
    }
    if query.attachment() {
        let tags = metadata.as_ref().map(|m| &m.tags);
        let name = [
            Some(query.filename.as_str()),
            tags.and_then(|t| t.get(tag::FULLNAME)).map(String::as_str),
            tags.and_then(|t| t.get(tag::FILENAME)).map(String::as_str),
        ]
        .into_iter()
        .flatten()
        .find(|n| !n.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("{bucket}_{key}"));
        response = response.header(header::CONTENT_DISPOSITION, disposition(&name));
    }
    let body = match read.body {
        ReadBody::Full(pieces) => {
            let len: u64 = pieces.iter().map(|p| p.len() as u64).sum();
            st.metrics.add_bytes_out(len);
            whole_body(pieces)
        }
        ReadBody::Stream(stream) => Body::from_stream(counted(stream, st.metrics.clone())),
    };
    response
        .body(body)
        .map_err(|e| ApiError::internal("building the response", e))
}

fn content_type_of(
    query: &ReadQuery,
    from_replica: Option<HeaderValue>,
    metadata: Option<&Metadata>,
) -> HeaderValue {
    if let Ok(v) = HeaderValue::from_str(query.content_type.trim()) {
        if !v.is_empty() {
            return v;
        }
    }
    from_replica
        .or_else(|| metadata.and_then(|m| HeaderValue::from_str(&m.content_type).ok()))
        .unwrap_or_else(|| HeaderValue::from_static(DEFAULT_CONTENT_TYPE))
}

/// Keeps the characters a quoted header parameter can carry as they are.
fn header_safe(name: &str) -> String {
    name.chars()
        .filter(|c| (' '..='~').contains(c) && *c != '"' && *c != '\\')
        .collect::<String>()
        .trim()
        .to_string()
}

/// `attachment` with the download name (its last `/` part, as ball ids may hold paths):
/// as a quoted ASCII `filename` for old clients, and as RFC 5987 `filename*` in UTF-8 when
/// the name has characters a quoted parameter cannot carry (RFC 6266 §4.3).
fn disposition(name: &str) -> HeaderValue {
    let name = name
        .rsplit('/')
        .find(|p| !p.trim().is_empty())
        .unwrap_or(name);
    let ascii = header_safe(name);
    let ascii = if ascii.is_empty() { "download" } else { &ascii };
    let mut value = format!("attachment; filename=\"{ascii}\"");
    if ascii != name {
        value.push_str("; filename*=UTF-8''");
        value.push_str(&mictlanx::id::url_segment(name));
    }
    HeaderValue::from_str(&value).unwrap_or_else(|_| HeaderValue::from_static("attachment"))
}

/// Counts the bytes that go out.
fn counted(
    stream: BoxStream<'static, Result<Bytes, io::Error>>,
    metrics: Metrics,
) -> BoxStream<'static, Result<Bytes, io::Error>> {
    stream
        .inspect(move |piece| {
            if let Ok(b) = piece {
                metrics.add_bytes_out(b.len() as u64);
            }
        })
        .boxed()
}

/// B10 `GET /api/v4/buckets/{bucket_id}/{ball_id}/merge`: the chunks `<ball>_0 ..
/// <ball>_{n-1}` in order, each read with the verified failover of R5. A chunk that cannot
/// be read once the answer has started cuts it (the status is already sent).
pub(crate) async fn merge(
    State(st): State<RouterState>,
    ApiPath((bucket, ball)): ApiPath<(BucketId, BallId)>,
    ApiQuery(query): ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let first_key = chunk_key(&ball, 0);
    let (_, first_meta) = read_metadata(
        &st,
        &bucket,
        &first_key,
        ApiError::not_found(format!("{bucket}@{ball} not found")),
    )
    .await?;
    let first_meta = first_meta.metadata;
    let Some(num_chunks) = first_meta.num_chunks() else {
        return Err(ApiError::not_found("Invalid number of chunks."));
    };
    let first = read_object(&st, &bucket, &first_key, None, Some(&first_meta)).await?;
    st.policies.on_read(&st, &bucket, &first_key);
    tracing::info!(
        event = "GET.MERGE",
        bucket_id = %bucket,
        ball_id = %ball,
        num_chunks,
        peer = %first.peer,
        response_time = started.elapsed().as_secs_f64()
    );

    let rest = {
        let st = st.clone();
        let bucket = bucket.clone();
        let ball = ball.clone();
        futures::stream::unfold(1u64, move |i| {
            let st = st.clone();
            let bucket = bucket.clone();
            let ball = ball.clone();
            async move {
                if i >= num_chunks {
                    return None;
                }
                let key = chunk_key(&ball, i);
                match read_object(&st, &bucket, &key, None, None).await {
                    Ok(read) => Some((read.body.into_stream(), i + 1)),
                    Err(e) => {
                        tracing::warn!(event = "GET.MERGE.CUT", bucket_id = %bucket, key = %key, reason = %e);
                        let failed = futures::stream::once(async move {
                            Err(io::Error::other(format!("chunk {key} unavailable: {e}")))
                        })
                        .boxed();
                        // Stop after this chunk: nothing may follow a hole.
                        Some((failed, num_chunks))
                    }
                }
            }
        })
        .flatten()
    };
    let body = first.body.into_stream().chain(rest).boxed();

    let mut response = Response::builder().status(StatusCode::OK).header(
        header::CONTENT_TYPE,
        content_type_of(&query, None, Some(&first_meta)),
    );
    if query.attachment() {
        let name = [
            Some(query.filename.as_str()),
            first_meta.tags.get(tag::FULLNAME).map(String::as_str),
        ]
        .into_iter()
        .flatten()
        .find(|n| !n.trim().is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| ball.to_string());
        response = response.header(header::CONTENT_DISPOSITION, disposition(&name));
    }
    response
        .body(Body::from_stream(counted(body, st.metrics.clone())))
        .map_err(|e| ApiError::internal("building the response", e))
}

/// The body of a whole read from its pieces, without copying them into one buffer.
fn whole_body(pieces: Vec<Bytes>) -> Body {
    match <[Bytes; 1]>::try_from(pieces) {
        Ok([one]) => Body::from(one),
        Err(pieces) => Body::from_stream(futures::stream::iter(
            pieces.into_iter().map(Ok::<_, std::io::Error>),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_flag_is_lenient() {
        let q = |v: Option<&str>| ReadQuery {
            attachment: v.map(str::to_string),
            ..ReadQuery::default()
        };
        assert!(q(Some("true")).attachment());
        assert!(q(Some("1")).attachment());
        assert!(!q(Some("false")).attachment());
        assert!(!q(Some("maybe")).attachment());
        assert!(!q(None).attachment());
    }

    #[test]
    fn download_names_are_header_safe() {
        assert_eq!(header_safe(" a\"b\\c\u{7f}ñ.txt "), "abc.txt");
        assert_eq!(disposition("x y.bin"), "attachment; filename=\"x y.bin\"");
        assert_eq!(
            disposition("dir/sub/日本.txt"),
            "attachment; filename=\".txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"
        );
        assert_eq!(
            disposition("中"),
            "attachment; filename=\"download\"; filename*=UTF-8''%E4%B8%AD"
        );
    }

    #[test]
    fn content_type_prefers_the_query_then_the_replica() {
        let q = ReadQuery {
            content_type: "text/plain".into(),
            ..ReadQuery::default()
        };
        assert_eq!(
            content_type_of(&q, Some(HeaderValue::from_static("a/b")), None),
            "text/plain"
        );
        let q = ReadQuery::default();
        assert_eq!(
            content_type_of(&q, Some(HeaderValue::from_static("a/b")), None),
            "a/b"
        );
        assert_eq!(content_type_of(&q, None, None), DEFAULT_CONTENT_TYPE);
    }
}
