//! Listings merged from every healthy peer: the chunks of a ball (R6) and a bucket (R7).

use axum::extract::State;
use axum::Json;
use mictlanx::id::{validate, IdKind};
use mictlanx::model::{BallMetadata, RouterBucketMetadata};

use crate::error::{ApiError, ApiPath};

use super::super::listing::{ball_metadata, Merge};
use super::super::state::RouterState;
use super::all_refused;

/// R6 `GET /api/v4/buckets/{bucket_id}/metadata/{ball_id}/chunks`.
pub(crate) async fn ball_chunks(
    State(st): State<RouterState>,
    ApiPath((bucket, ball)): ApiPath<(String, String)>,
) -> Result<Json<BallMetadata>, ApiError> {
    let bucket = validate(IdKind::Bucket, &bucket)?;
    let ball = validate(IdKind::Ball, &ball)?;
    let peers = st.require_healthy()?;
    let mut merged = Merge::default();
    let errors = st
        .ask_each(
            &peers,
            |p| st.client.ball_group(p, &bucket, &ball),
            |peer, group| {
                if let Some(group) = group {
                    let keys: Vec<&str> = group.balls.iter().map(|m| m.key.as_str()).collect();
                    for k in keys {
                        st.replicas.add(&bucket, k, &[peer.id.as_str()]);
                    }
                    merged.add_listing(group.balls, &group.versions, &group.tombstones);
                }
            },
        )
        .await;
    let ball_metadata = ball_metadata(&bucket, &ball, merged);
    if ball_metadata.chunks.is_empty() {
        if errors.len() == peers.len() {
            return Err(all_refused(
                &format!("No peer listed {bucket}@{ball}"),
                &errors,
                &[],
            ));
        }
        return Err(ApiError::not_found(format!("{bucket}@{ball} not found")));
    }
    Ok(Json(ball_metadata))
}

/// R7 `GET /api/v4/buckets/{bucket_id}/metadata`: one record per key (its newest version;
/// deleted keys and incomplete balls left out), from the peers that answered (`peers_ids`).
pub(crate) async fn bucket_listing(
    State(st): State<RouterState>,
    ApiPath(bucket): ApiPath<String>,
) -> Result<Json<RouterBucketMetadata>, ApiError> {
    bucket_listing_in(&st, &bucket).await.map(Json)
}

/// R7 for a bucket given by the caller (also reached through `GET /buckets/data/metadata`).
pub(crate) async fn bucket_listing_in(
    st: &RouterState,
    bucket: &str,
) -> Result<RouterBucketMetadata, ApiError> {
    let bucket = validate(IdKind::Bucket, bucket)?;
    let peers = st.require_healthy()?;
    let mut answered = Vec::new();
    let mut merged = Merge::default();
    let errors = st
        .ask_each(
            &peers,
            |p| st.client.bucket_metadata(p, &bucket),
            |peer, listing| {
                answered.push(peer.id.clone());
                merged.add_listing(listing.balls, &listing.versions, &listing.tombstones);
            },
        )
        .await;
    if answered.is_empty() {
        return Err(all_refused(
            &format!("No peer listed bucket {bucket}"),
            &errors,
            &[],
        ));
    }
    Ok(RouterBucketMetadata {
        bucket_id: bucket,
        peers_ids: answered,
        balls: merged.records(),
    })
}
