//! Metadata endpoints: put (PM1), get (PM2), ball group and chunks (PM4, PM5), size (PM6)
//! and disable (PM7); the bucket listing (PM3) is in `listings`.

use mictlanx::id::{BallId, BucketId, Key};
use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use mictlanx::model::{
    GetMetadataResponse, GroupedBallResponse, Metadata, PeerPutMetadataRequest,
    PeerPutMetadataResponse, SizeByKey,
};

use super::state::PeerState;
use super::{elapsed_ms, input};
use crate::error::{ApiError, ApiJson, ApiPath};
use crate::storage::{KeyState, NewPut, StoreError};
use crate::version::{Version, VERSION_HEADER};

/// Response header telling whether metadata is of a committed or a pending key.
pub(crate) const STATE_HEADER: HeaderName = HeaderName::from_static("x-mictlanx-state");

/// PM1 `POST /api/v4/buckets/{bucket_id}/metadata`.
pub(crate) async fn put(
    State(st): State<PeerState>,
    ApiPath(bucket_id): ApiPath<BucketId>,
    headers: HeaderMap,
    ApiJson(req): ApiJson<PeerPutMetadataRequest>,
) -> Result<ApiJson<PeerPutMetadataResponse>, ApiError> {
    let started = Instant::now();
    let body_bucket = if req.bucket_id.is_empty() {
        bucket_id.clone()
    } else {
        BucketId::new(req.bucket_id)?
    };
    if body_bucket != bucket_id {
        return Err(ApiError::bad_request(format!(
            "Bucket ID mismatch: {bucket_id} != {body_bucket}"
        )));
    }
    let key = Key::new(req.key)?;
    input::addressable(&bucket_id, &key)?;
    // An empty ball id makes the key a ball of its own, as a single-chunk put would.
    let ball_id = if req.ball_id.is_empty() {
        key.to_string()
    } else {
        BallId::new(req.ball_id)?.into_inner()
    };
    let size = req.size;
    let metadata = Metadata {
        key: key.to_string(),
        size,
        checksum: req.checksum,
        tags: req.tags,
        content_type: req.content_type,
        producer_id: req.producer_id,
        ball_id,
        bucket_id: bucket_id.to_string(),
        is_disabled: req.is_disable,
    };
    let outcome = st
        .store
        .put_metadata(NewPut {
            metadata,
            task_id: input::task_id_header(&headers),
            update: input::update_flag(&headers),
            version: Version::from_headers(&headers),
            replication_factor: input::replication_factor(&headers),
        })
        .await
        .inspect_err(|e| {
            tracing::debug!(event = "PUT.METADATA.REFUSED", %bucket_id, %key, size, reason = %e);
        })?;
    let service_time = elapsed_ms(started);
    tracing::info!(
        event = "PUT.METADATA",
        %bucket_id,
        %key,
        size,
        task_id = outcome.task_id(),
        response_time = service_time,
    );
    Ok(ApiJson(PeerPutMetadataResponse {
        key: key.to_string(),
        service_time,
        task_id: outcome.task_id().to_string(),
        node_id: st.id.to_string(),
    }))
}

/// PM2 `GET /api/v4/buckets/{bucket_id}/metadata/{key}`.
pub(crate) async fn get(
    State(st): State<PeerState>,
    ApiPath((bucket_id, key)): ApiPath<(BucketId, Key)>,
) -> Result<Response, ApiError> {
    let started = Instant::now();
    let (metadata, state, version) = match st.store.key_state(&bucket_id, &key).await? {
        KeyState::Committed(rec) => (rec.metadata, "committed", rec.version),
        KeyState::Pending(rec) => (rec.metadata, "pending", rec.version),
        KeyState::Deleted(t) => {
            return Err(StoreError::Deleted {
                bucket_id: bucket_id.to_string(),
                key: key.to_string(),
                version: t.version,
            }
            .into())
        }
        KeyState::Absent => {
            return Err(ApiError::not_found(format!("{bucket_id}@{key} not found")))
        }
    };
    let body = GetMetadataResponse {
        service_time: elapsed_ms(started),
        peer_id: st.id.to_string(),
        local_peer_id: st.id.to_string(),
        metadata,
    };
    Ok((
        [
            (STATE_HEADER, HeaderValue::from_static(state)),
            (VERSION_HEADER, version.header_value()),
        ],
        ApiJson(body),
    )
        .into_response())
}

/// PM4 `GET /api/v4/buckets/{bucket_id}/metadata/{ball_id}/group`. Empty when unknown.
pub(crate) async fn group(
    State(st): State<PeerState>,
    ApiPath((bucket_id, ball_id)): ApiPath<(BucketId, BallId)>,
) -> Result<ApiJson<GroupedBallResponse>, ApiError> {
    let (objects, tombstones) = st.store.ball_state(&bucket_id, &ball_id).await?;
    let mut balls: Vec<Metadata> = objects.iter().map(|o| o.metadata.clone()).collect();
    mictlanx::model::sort_chunks(&mut balls);
    Ok(ApiJson(GroupedBallResponse {
        bucket_id: bucket_id.to_string(),
        ball_id: ball_id.to_string(),
        size: balls.iter().map(|m| m.size).sum(),
        balls,
        versions: objects
            .iter()
            .map(|o| (o.metadata.key.clone(), o.version.to_string()))
            .collect(),
        tombstones: tombstones
            .into_iter()
            .map(|(key, t)| (key, t.version.to_string()))
            .collect(),
    }))
}

/// PM5 `GET /api/v4/buckets/{bucket_id}/metadata/{ball_id}/chunks`: PM4's list, bare.
pub(crate) async fn chunks(
    State(st): State<PeerState>,
    ApiPath((bucket_id, ball_id)): ApiPath<(BucketId, BallId)>,
) -> Result<ApiJson<Vec<Metadata>>, ApiError> {
    Ok(ApiJson(st.store.ball_metadata(&bucket_id, &ball_id).await?))
}

/// PM6 `GET /api/v4/buckets/{bucket_id}/{key}/size`: 0 when this peer holds no bytes.
pub(crate) async fn size(
    State(st): State<PeerState>,
    ApiPath((bucket_id, key)): ApiPath<(BucketId, Key)>,
) -> Result<ApiJson<SizeByKey>, ApiError> {
    let size = match st.store.key_state(&bucket_id, &key).await? {
        KeyState::Committed(rec) => rec.stored_size,
        KeyState::Pending(_) | KeyState::Deleted(_) | KeyState::Absent => 0,
    };
    Ok(ApiJson(SizeByKey {
        bucket_id: bucket_id.to_string(),
        key: key.to_string(),
        peer_id: st.id.to_string(),
        size,
    }))
}

/// PM7 `POST /api/v4/buckets/{bucket_id}/{key}/disable`.
pub(crate) async fn disable(
    State(st): State<PeerState>,
    ApiPath((bucket_id, key)): ApiPath<(BucketId, Key)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let version = Version::from_headers(&headers);
    if st.store.disable_at(&bucket_id, &key, version).await? {
        tracing::info!(event = "DISABLE", %bucket_id, %key);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("{bucket_id}@{key} not found")))
    }
}
