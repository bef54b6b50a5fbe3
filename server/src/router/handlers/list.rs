//! Listings merged from every healthy peer: the chunks of a ball (R6) and a bucket (R7).

use axum::extract::State;
use axum::response::{AppendHeaders, IntoResponse, Response};
use axum::Json;
use mictlanx::id::{BallId, BucketId};
use mictlanx::model::{BallMetadata, RouterBucketMetadata};

use crate::error::{ApiError, ApiPath, ApiQuery};
use crate::paging::{encode_token, page_headers, JsonStream, ListMode, ListQuery, MAX_LIMIT};

use super::super::bucket_pages::bucket_page;
use super::super::listing::{ball_metadata, Merge};
use super::super::state::RouterState;
use super::all_refused;

/// R6 `GET /api/v4/buckets/{bucket_id}/metadata/{ball_id}/chunks`.
pub(crate) async fn ball_chunks(
    State(st): State<RouterState>,
    ApiPath((bucket, ball)): ApiPath<(BucketId, BallId)>,
) -> Result<Json<BallMetadata>, ApiError> {
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
/// With `limit` or `continuation_token`, one page; without, the whole bucket, streamed a
/// page at a time (the Python client reads it whole).
pub(crate) async fn bucket_listing(
    State(st): State<RouterState>,
    ApiPath(bucket): ApiPath<BucketId>,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Response, ApiError> {
    bucket_listing_in(&st, &bucket, &q).await
}

/// R7 for a bucket given by the caller (also reached through `GET /buckets/data/metadata`).
pub(crate) async fn bucket_listing_in(
    st: &RouterState,
    bucket: &BucketId,
    q: &ListQuery,
) -> Result<Response, ApiError> {
    let mode = q.mode()?;
    let peers = st.require_healthy()?;
    let slot = st.listings.enter().await?;
    let (after, limit, whole) = match mode {
        ListMode::Page { limit, after } => (after, limit, false),
        ListMode::Whole { .. } => (None, MAX_LIMIT, true),
    };
    let first = bucket_page(st, &peers, bucket, after, limit).await;
    if first.answered.is_empty() {
        return Err(all_refused(
            &format!("No peer listed bucket {bucket}"),
            &first.errors,
            &[],
        ));
    }
    if !whole {
        drop(slot);
        let token = first.next.as_deref().map(encode_token);
        let body = RouterBucketMetadata {
            bucket_id: bucket.to_string(),
            peers_ids: first.answered,
            balls: first.records,
            is_truncated: token.is_some(),
            next_continuation_token: token.clone(),
        };
        return Ok((AppendHeaders(page_headers(token.as_deref())), Json(body)).into_response());
    }
    let prefix = serde_json::to_string(&bucket)
        .map(|b| format!(r#"{{"bucket_id":{b},"balls":["#))
        .map_err(|e| ApiError::internal("listing", e))?;
    let st = st.clone();
    let bucket = bucket.clone();
    Ok(JsonStream::respond(
        page_headers(None),
        move |mut out| async move {
            let _slot = slot;
            let mut page = first;
            let mut answered = page.answered.clone();
            if out.raw(prefix.as_bytes()).await.is_err() {
                return;
            }
            loop {
                for record in &page.records {
                    if out.element(record).await.is_err() {
                        return;
                    }
                }
                answered.retain(|id| page.answered.contains(id));
                let Some(next) = page.next.take() else { break };
                page = bucket_page(&st, &peers, &bucket, Some(next), MAX_LIMIT).await;
                if page.answered.is_empty() {
                    return out
                        .fail(format!("no peer listed bucket {bucket} any more"))
                        .await;
                }
            }
            match serde_json::to_string(&answered) {
                Ok(ids) => {
                    let tail = format!(r#"],"peers_ids":{ids},"is_truncated":false}}"#);
                    if out.raw(tail.as_bytes()).await.is_ok() {
                        out.finish().await;
                    }
                }
                Err(e) => out.fail(e).await,
            }
        },
    ))
}
