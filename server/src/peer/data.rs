//! Data endpoints: uploads (PD1 multipart, PD2 streamed), reads (PD3) and deletes (PD4, PD5).

use mictlanx::id::{BallId, BucketId, Key};
use std::time::Instant;

use axum::body::Body;
use axum::extract::multipart::MultipartRejection;
use axum::extract::{Multipart, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use futures::TryStreamExt;
use mictlanx::model::{
    metadata_header, DeletedByBallIdResponse, DeletedByKeyResponse, PeerPutChunkedResponse,
    DEFAULT_CONTENT_TYPE,
};

use super::state::PeerState;
use super::{elapsed_ms, input};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::storage::{Deletion, StoreError, StoredObject};
use crate::version::{Version, REPLICATION_HEADER, TOMBSTONE_HEADER, VERSION_HEADER};

/// Response header with the number of deleted keys (MictlanX clients read it, not the body).
pub(crate) const N_DELETES: HeaderName = HeaderName::from_static("n-deletes");
/// Response header with the SHA-256 the peer computed for the object (routers verify
/// replicas with it).
pub(crate) const SHA256_HEADER: HeaderName = HeaderName::from_static("x-mictlanx-sha256");

/// Streams a body into the store and logs the outcome.
async fn store_upload<S, E>(
    st: &PeerState,
    task_id: &str,
    body: S,
) -> Result<StoredObject, ApiError>
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>>,
    E: std::fmt::Display,
{
    let started = Instant::now();
    let metrics = st.metrics.clone();
    let body = body.inspect_ok(move |piece| metrics.add_bytes_in(piece.len() as u64));
    match st.store.upload(task_id, body).await {
        Ok(stored) => {
            tracing::info!(
                event = "PUT.DATA",
                bucket_id = %stored.metadata.bucket_id,
                key = %stored.metadata.key,
                size = stored.size,
                verified = stored.verified,
                replaced = stored.replaced,
                response_time = elapsed_ms(started),
            );
            Ok(stored)
        }
        Err(e) => {
            if e.is_client_error() {
                tracing::info!(event = "PUT.DATA.REFUSED", task_id, reason = %e);
            }
            Err(e.into())
        }
    }
}

/// PD2 `POST /api/v4/buckets/data/{task_id}/chunked`: the raw body is the object.
pub(crate) async fn upload_chunked(
    State(st): State<PeerState>,
    ApiPath(task_raw): ApiPath<String>,
    body: Body,
) -> Result<ApiJson<PeerPutChunkedResponse>, ApiError> {
    let started = Instant::now();
    let task_id = input::task_id(&task_raw)?;
    let stored = store_upload(&st, &task_id, body.into_data_stream()).await?;
    let service_time = started.elapsed().as_secs_f64();
    let m = &stored.metadata;
    Ok(ApiJson(PeerPutChunkedResponse {
        node_id: st.id.to_string(),
        combined_key: format!("{}@{}", m.bucket_id, m.key),
        bucket_id: m.bucket_id.clone(),
        key: m.key.clone(),
        size: stored.size,
        throughput: if service_time > 0.0 {
            stored.size as f64 / service_time
        } else {
            0.0
        },
        service_time,
    }))
}

/// PD1 `POST /api/v4/buckets/data/{task_id}`: multipart, the object is the field `data`.
pub(crate) async fn upload_multipart(
    State(st): State<PeerState>,
    ApiPath(task_raw): ApiPath<String>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<StatusCode, ApiError> {
    let task_id = input::task_id(&task_raw)?;
    let mut multipart = multipart?;
    loop {
        let field = multipart
            .next_field()
            .await
            .map_err(|e| ApiError::bad_request(e.body_text()))?;
        let Some(field) = field else {
            return Err(ApiError::bad_request(
                "multipart body has no field named data",
            ));
        };
        if field.name() == Some("data") {
            store_upload(&st, &task_id, field).await?;
            return Ok(StatusCode::CREATED);
        }
        // Other fields are skipped; dropping one makes the parser discard its bytes.
    }
}

/// PD3 `GET /api/v4/buckets/{bucket_id}/{key}`: the bytes, whole (200) or one range (206).
pub(crate) async fn get(
    State(st): State<PeerState>,
    ApiPath((bucket_id, key)): ApiPath<(BucketId, Key)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let read = match st
        .store
        .read(&bucket_id, &key, input::range(&headers))
        .await
    {
        Ok(read) => read,
        Err(StoreError::RangeNotSatisfiable { size }) => {
            let e = StoreError::RangeNotSatisfiable { size };
            return Ok((
                [(header::CONTENT_RANGE, format!("bytes */{size}"))],
                ApiError::from(e),
            )
                .into_response());
        }
        Err(e) => {
            if e.is_client_error() {
                tracing::debug!(event = "GET.REFUSED", %bucket_id, %key, reason = %e);
            }
            return Err(e.into());
        }
    };
    let rec = &read.record;
    tracing::info!(
        event = "GET",
        %bucket_id,
        %key,
        size = rec.stored_size,
        range = ?read.range.map(|r| (r.start, r.end)),
        response_time = elapsed_ms(started),
    );
    let content_type = HeaderValue::from_str(&rec.metadata.content_type)
        .unwrap_or(HeaderValue::from_static(DEFAULT_CONTENT_TYPE));
    let etag = HeaderValue::from_str(&format!("\"{}\"", rec.sha256))
        .map_err(|e| ApiError::internal("etag", e))?;
    let sha = HeaderValue::from_str(&rec.sha256).map_err(|e| ApiError::internal("etag", e))?;
    let mut response = Response::builder()
        .status(if read.range.is_some() {
            StatusCode::PARTIAL_CONTENT
        } else {
            StatusCode::OK
        })
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, read.len)
        .header(header::ETAG, etag)
        .header(header::ACCEPT_RANGES, "bytes")
        .header(SHA256_HEADER, sha)
        .header(VERSION_HEADER, rec.version.header_value())
        .header(REPLICATION_HEADER, rec.replication_factor);
    match read.range {
        Some(r) => {
            response = response.header(header::CONTENT_RANGE, r.content_range(rec.stored_size));
            if let Some(sums) = &read.block_header {
                response = response.header(mictlanx::blocks::HEADER, sums);
            }
        }
        None => {
            // Our routers pass it on, so that a reader needs no separate metadata call.
            if let Some(value) = metadata_header::encode(&rec.metadata) {
                response = response.header(metadata_header::NAME, value);
            }
        }
    }
    let metrics = st.metrics.clone();
    let body = read
        .body
        .inspect_ok(move |piece| metrics.add_bytes_out(piece.len() as u64));
    response
        .body(Body::from_stream(body))
        .map_err(|e| ApiError::internal("building a response", e))
}

fn n_deletes(n: u64) -> [(HeaderName, HeaderValue); 1] {
    [(N_DELETES, HeaderValue::from(n))]
}

/// PD4 `DELETE /api/v4/buckets/{bucket_id}/{key}`: the header `Force` is accepted and
/// ignored (a delete is always complete).
pub(crate) async fn delete_key(
    State(st): State<PeerState>,
    ApiPath((bucket_id, key)): ApiPath<(BucketId, Key)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let n = match input::task_id_header(&headers) {
        // A router withdrawing its announcement: only that pending upload goes.
        Some(task_id) => {
            st.store
                .withdraw_pending(&bucket_id, &key, &task_id)
                .await?
        }
        None => {
            let deletion = Deletion {
                version: Version::from_headers(&headers),
                tombstone_always: headers.contains_key(TOMBSTONE_HEADER),
            };
            st.store.delete_key_at(&bucket_id, &key, deletion).await?
        }
    };
    tracing::info!(
        event = "DELETE",
        %bucket_id,
        %key,
        n_deletes = n,
        response_time = elapsed_ms(started),
    );
    if n == 0 {
        let e = ApiError::not_found(format!("{bucket_id}@{key} not found"));
        return Ok((n_deletes(0), e).into_response());
    }
    let body = DeletedByKeyResponse {
        n_deletes: i64::try_from(n).unwrap_or(i64::MAX),
        key: key.to_string(),
    };
    Ok((n_deletes(n), ApiJson(body)).into_response())
}

/// `DELETE /api/v4/xtombstones/{bucket_id}/{key}` with `X-Mictlanx-Version`: forgets the
/// key's tombstone if it is of that version (204), else 404. Routers send it once every
/// replica has applied the delete (tombstone collection, see `router::repair`).
pub(crate) async fn purge_tombstone(
    State(st): State<PeerState>,
    ApiPath((bucket_id, key)): ApiPath<(BucketId, Key)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let version = Version::from_headers(&headers)
        .ok_or_else(|| ApiError::bad_request("X-Mictlanx-Version is required"))?;
    if st.store.purge_tombstone(&bucket_id, &key, version).await? {
        tracing::info!(event = "TOMBSTONE.PURGED", %bucket_id, %key, %version);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "{bucket_id}@{key} has no tombstone of version {version}"
        )))
    }
}

/// PD5 `DELETE /api/v4/buckets/{bucket_id}/bid/{ball_id}`: 200 even when nothing matched.
pub(crate) async fn delete_ball(
    State(st): State<PeerState>,
    ApiPath((bucket_id, ball_id)): ApiPath<(BucketId, BallId)>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let version = Version::from_headers(&headers);
    let n = st
        .store
        .delete_ball_at(&bucket_id, &ball_id, version)
        .await?;
    tracing::info!(
        event = "DELETE.BALL",
        %bucket_id,
        %ball_id,
        n_deletes = n,
        response_time = elapsed_ms(started),
    );
    let body = DeletedByBallIdResponse {
        n_deletes: i64::try_from(n).unwrap_or(i64::MAX),
        ball_id: ball_id.to_string(),
    };
    Ok((n_deletes(n), ApiJson(body)).into_response())
}
