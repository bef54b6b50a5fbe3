//! Deletes (R8 by key, R9 by ball) and disable (R10).
//!
//! Deletes go to every healthy peer rather than to the replicas the map knows: a peer
//! without the key answers 404 cheaply, and a replica written through another router is not
//! missed. Each delete carries a version; the peers keep a tombstone of it, so a replica on
//! a peer that was down during the delete, older than the tombstone, is never served again
//! (reads and listings take the newest version of each key).

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use mictlanx::id::{BallId, BucketId, Key};
use mictlanx::model::{DeletedByBallIdResponse, DeletedByKeyResponse};

use crate::error::{ApiError, ApiPath};
use crate::storage::Deletion;
use crate::version::Version;

use super::super::headers::{flag, FORCE};
use super::super::lookup::{locate, places};
use super::super::peers::PeerView;
use super::super::state::RouterState;
use super::all_refused;

/// R8 `DELETE /api/v4/buckets/{bucket_id}/{key}` (header `Force`, default 1, forwarded).
pub(crate) async fn delete_key(
    State(st): State<RouterState>,
    ApiPath((bucket, key)): ApiPath<(BucketId, Key)>,
    headers: HeaderMap,
) -> Result<Json<DeletedByKeyResponse>, ApiError> {
    delete_key_in(&st, &bucket, &key, &headers).await.map(Json)
}

/// R8 for ids given by the caller (also reached through the paths the original routes
/// elsewhere, such as `DELETE /buckets/data/{key}`).
pub(crate) async fn delete_key_in(
    st: &RouterState,
    bucket: &BucketId,
    key: &Key,
    headers: &HeaderMap,
) -> Result<DeletedByKeyResponse, ApiError> {
    let started = Instant::now();
    let force = flag(headers, FORCE, true);
    let peers = st.require_healthy()?;
    let version = st.clock.now();
    // The key's places record the delete even where they hold nothing, so that a copy
    // placed there later (by repair or a returning peer) is refused as older.
    let places = places(st, bucket, key);
    let down: Vec<String> = places
        .iter()
        .filter(|id| !peers.iter().any(|p| &p.id == *id))
        .cloned()
        .collect();
    let mut n_deletes = 0i64;
    let mut deleted = Vec::new();
    let mut settled = Vec::new();
    let errors = st
        .ask_each(
            &peers,
            |p| {
                let deletion = Deletion {
                    version: Some(version),
                    tombstone_always: places.contains(&p.id),
                };
                st.client.delete(p, bucket, key, force, deletion)
            },
            |peer, answer| {
                if let Some(n) = answer {
                    // A peer that does not send `n-deletes` still deleted one replica.
                    n_deletes += if n >= 0 { n } else { 1 };
                    deleted.push(peer.id.clone());
                }
                settled.push(peer.id.clone());
            },
        )
        .await;
    st.replicas.remove_peer(bucket, key, &settled);
    if deleted.is_empty() {
        // A place that is down may still hold an older copy; the tombstones the others
        // recorded win over it wherever it shows up again, so the key is gone all the same.
        if errors.is_empty() {
            return Err(ApiError::not_found(format!("{bucket}@{key} not found")));
        }
        return Err(all_refused(
            &format!("No replica of {bucket}@{key} was deleted"),
            &errors,
            &[],
        ));
    }
    if !down.is_empty() || !errors.is_empty() {
        tracing::warn!(event = "DELETE.INCOMPLETE", bucket_id = %bucket, key = %key, down = ?down, failed = errors.len());
    }
    tracing::info!(
        event = "DELETE",
        bucket_id = %bucket,
        key = %key,
        n_deletes,
        %version,
        peers = ?deleted,
        response_time = started.elapsed().as_secs_f64()
    );
    Ok(DeletedByKeyResponse {
        n_deletes,
        key: key.to_string(),
    })
}

/// R9 `DELETE /api/v4/buckets/{bucket_id}/bid/{ball_id}`: every key of the ball on every
/// healthy peer; 200 with `n_deletes: 0` when there was nothing.
pub(crate) async fn delete_ball(
    State(st): State<RouterState>,
    ApiPath((bucket, ball)): ApiPath<(BucketId, BallId)>,
    headers: HeaderMap,
) -> Result<Json<DeletedByBallIdResponse>, ApiError> {
    let started = Instant::now();
    let force = flag(&headers, FORCE, true);
    let peers = st.require_healthy()?;
    let version = st.clock.now();
    let mut n_deletes = 0i64;
    let errors = st
        .ask_each(
            &peers,
            |p| delete_ball_on(&st, p, &bucket, &ball, force, version),
            |_, n| n_deletes += n,
        )
        .await;
    if errors.len() == peers.len() {
        return Err(all_refused(
            &format!("No peer deleted {bucket}@{ball}"),
            &errors,
            &[],
        ));
    }
    tracing::info!(
        event = "DELETE",
        bucket_id = %bucket,
        ball_id = %ball,
        n_deletes,
        failed = errors.len(),
        response_time = started.elapsed().as_secs_f64()
    );
    Ok(Json(DeletedByBallIdResponse {
        n_deletes,
        ball_id: ball.into_inner(),
    }))
}

/// Lists the ball's keys on one peer (to drop them from the map), then deletes them there.
async fn delete_ball_on(
    st: &RouterState,
    peer: &PeerView,
    bucket: &str,
    ball: &str,
    force: bool,
    version: Version,
) -> Result<i64, super::super::peer_client::PeerError> {
    let keys: Vec<String> = st
        .client
        .ball_group(peer, bucket, ball)
        .await?
        .map(|g| g.balls.into_iter().map(|m| m.key).collect())
        .unwrap_or_default();
    let n = st
        .client
        .delete_ball(peer, bucket, ball, force, version)
        .await?;
    for key in &keys {
        st.replicas.remove_peer(bucket, key, &[peer.id.as_str()]);
    }
    Ok(n)
}

/// R10 `POST /api/v4/buckets/{bucket_id}/{key}/disable`: 204 when at least one replica
/// disabled it, 404 when none has it.
pub(crate) async fn disable(
    State(st): State<RouterState>,
    ApiPath((bucket, key)): ApiPath<(BucketId, Key)>,
) -> Result<StatusCode, ApiError> {
    disable_in(&st, &bucket, &key).await
}

/// R10 for ids given by the caller (also reached through `POST /buckets/{b}/metadata/disable`).
pub(crate) async fn disable_in(
    st: &RouterState,
    bucket: &BucketId,
    key: &Key,
) -> Result<StatusCode, ApiError> {
    st.require_healthy()?;
    let holders = locate(st, bucket, key).await;
    let (replicas, down): (Vec<String>, Vec<String>) = holders
        .into_iter()
        .partition(|id| st.peers.view(id).is_some_and(|p| p.up));
    let replicas: Vec<PeerView> = replicas.iter().filter_map(|id| st.peers.view(id)).collect();
    // A disable is a write: with its own version, replicas that missed it lose to it.
    let version = st.clock.now();
    let mut disabled = Vec::new();
    let errors = st
        .ask_each(
            &replicas,
            |p| st.client.disable(p, bucket, key, version),
            |peer, had_it| {
                if had_it {
                    disabled.push(peer.id.clone());
                } else {
                    st.replicas.remove_peer(bucket, key, &[peer.id.as_str()]);
                }
            },
        )
        .await;
    if disabled.is_empty() {
        if errors.is_empty() && down.is_empty() {
            return Err(ApiError::not_found(format!("{bucket}@{key} not found")));
        }
        let down: Vec<String> = down.iter().map(|p| format!("{p} is down")).collect();
        return Err(all_refused(
            &format!("No replica of {bucket}@{key} was disabled"),
            &errors,
            &down,
        ));
    }
    tracing::info!(event = "DISABLE", bucket_id = %bucket, key = %key, peers = ?disabled);
    Ok(StatusCode::NO_CONTENT)
}
