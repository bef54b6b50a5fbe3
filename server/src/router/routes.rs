//! The route table, with the original's route precedence.
//!
//! MictlanX's router is FastAPI/Starlette, which takes the first registered route that
//! matches; axum's router prefers static segments over parameters. The two agree except
//! where a bucket is named `data` or a key is named `metadata`, `bid`, `size` or `disable`.
//! For those paths axum picks a route that the original would not, and the handlers below
//! named `*_fixup` send the request where Starlette would (server reference §2.1):
//!
//! | request | original's route |
//! |---|---|
//! | `GET /buckets/data/{k}` | R5 get `data/{k}` (`k == "metadata"`: R7 listing of `data`) |
//! | `DELETE /buckets/data/{k}` | R8 delete `data/{k}` |
//! | `POST /buckets/data/metadata` | R1 put-metadata into bucket `data` |
//! | `GET /buckets/{b}/metadata/size` | B1 sizes of key `metadata` |
//! | `POST /buckets/{b}/metadata/disable` | R10 disable key `metadata` |
//! | `DELETE /buckets/{b}/metadata` | R8 delete key `metadata` |
//! | `GET /buckets/{b}/bid/size`, `.../bid/merge` | B1 / B10 of key `bid` |
//! | `POST /buckets/{b}/bid/disable` | R10 disable key `bid` |
//!
//! Deeper paths under `buckets/data/...` reach the right route by axum's own backtracking.

use axum::extract::multipart::MultipartRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use mictlanx::id::{BucketId, Key};

use crate::error::{route_not_found, ApiError, ApiJson, ApiPath, ApiQuery};
use crate::metrics;

use super::handlers::get::ReadQuery;
use super::handlers::{delete as del, fixed, get as read, health, list, peers, put};
use super::state::RouterState;

/// The router's HTTP API: `/api/v4/...` (R1–R13, B1, B10, the peers controller), `/health`
/// and `/metrics`, with metrics on every route and JSON errors for unknown routes and
/// methods.
///
/// It holds no loops: [`crate::router::start`] runs the probes that bring the peers up,
/// and wraps the app in the token check of `RouterConfig::auth`. Tests can serve it
/// directly (every peer stays down until probed; no token is checked).
pub fn app(state: RouterState) -> Router {
    let uploads = Router::new()
        .route(
            "/api/v4/buckets/data/{task_id}",
            post(upload_or_put_metadata_fixup)
                .get(get_data_bucket_fixup)
                .delete(delete_data_bucket_fixup),
        )
        .route(
            "/api/v4/buckets/data/{task_id}/chunked",
            post(put::put_chunked),
        )
        // Uploads stream; the 2 MB default limit of buffering extractors must not apply.
        .layer(DefaultBodyLimit::disable());

    Router::new()
        .route("/health", get(health::health))
        .route("/metrics", get(health::metrics))
        .route("/api/v4/repair", get(health::repair))
        .route("/api/v4/peers/stats", get(peers::stats))
        .route(
            "/api/v4/peers",
            get(peers::list_peers).post(peers::add_peer),
        )
        .route("/api/v4/peers/{peer_id}", delete(peers::remove_peer))
        .route(
            "/api/v4/xpeers",
            post(peers::add_peers).delete(peers::remove_peers),
        )
        .route("/api/v4/buckets/{bucket_id}/{key}/size", get(read::sizes))
        .route(
            "/api/v4/buckets/{bucket_id}/metadata",
            get(list::bucket_listing)
                .post(put::put_metadata)
                .delete(delete_metadata_key_fixup),
        )
        .route(
            "/api/v4/buckets/{bucket_id}/metadata/{key}",
            get(read::get_metadata).post(disable_metadata_key_fixup),
        )
        .route(
            "/api/v4/u/buckets/{bucket_id}/{key}",
            post(put::update_metadata),
        )
        .route(
            "/api/v4/buckets/{bucket_id}/{key}/disable",
            post(del::disable),
        )
        .route("/api/v4/buckets/{bucket_id}/{key}/merge", get(read::merge))
        .route(
            "/api/v4/buckets/{bucket_id}/{key}",
            get(read::get_object).delete(del::delete_key),
        )
        .route(
            "/api/v4/buckets/{bucket_id}/metadata/{key}/chunks",
            get(list::ball_chunks),
        )
        .route(
            "/api/v4/buckets/{bucket_id}/bid/{ball_id}",
            delete(del::delete_ball)
                .get(bid_key_get_fixup)
                .post(bid_key_disable_fixup),
        )
        .merge(uploads)
        .merge(super::policy::routes())
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::track,
        ))
        .with_state(state)
}

/// axum's default body limit, kept for JSON bodies on routes that lift it.
const JSON_BODY_LIMIT: usize = 2 * 1024 * 1024;

async fn method_not_allowed() -> ApiError {
    ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
}

/// `POST /buckets/data/{task_id}`: R3, except `POST /buckets/data/metadata`, which is R1
/// into bucket `data`.
async fn upload_or_put_metadata_fixup(
    State(st): State<RouterState>,
    ApiPath(task_id): ApiPath<String>,
    headers: HeaderMap,
    request: Request,
) -> Result<Response, ApiError> {
    if task_id == "metadata" {
        // This route has no body limit (it is also the multipart upload), so the JSON body
        // is read here with the limit JSON bodies have elsewhere.
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, JSON_BODY_LIMIT)
            .await
            .map_err(|_| ApiError::too_large("The JSON body is over 2 MiB or was cut short"))?;
        let limited = Request::from_parts(parts, axum::body::Body::from(bytes));
        let ApiJson(body) = ApiJson::from_request(limited, &st).await?;
        let answer = put::put_metadata_in(&st, &fixed("data")?, &headers, body).await?;
        return Ok(Json(answer).into_response());
    }
    let multipart: Result<Multipart, MultipartRejection> =
        Multipart::from_request(request, &st).await;
    put::put_multipart_in(&st, &task_id, multipart)
        .await
        .map(IntoResponse::into_response)
}

/// `GET /buckets/data/{key}`: R5 on bucket `data` (R7 for `data/metadata`).
async fn get_data_bucket_fixup(
    State(st): State<RouterState>,
    ApiPath(key): ApiPath<Key>,
    ApiQuery(query): ApiQuery<ReadQuery>,
    ApiQuery(listing): ApiQuery<crate::paging::ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let bucket = fixed("data")?;
    if key == *"metadata" {
        return list::bucket_listing_in(&st, &bucket, &listing).await;
    }
    read::get_object_in(&st, &bucket, &key, &query, &headers).await
}

/// `DELETE /buckets/data/{key}`: R8 on bucket `data`.
async fn delete_data_bucket_fixup(
    State(st): State<RouterState>,
    ApiPath(key): ApiPath<Key>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    del::delete_key_in(&st, &fixed("data")?, &key, &headers)
        .await
        .map(|d| Json(d).into_response())
}

/// `DELETE /buckets/{b}/metadata`: R8 of the key `metadata`.
async fn delete_metadata_key_fixup(
    State(st): State<RouterState>,
    ApiPath(bucket): ApiPath<BucketId>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    del::delete_key_in(&st, &bucket, &fixed("metadata")?, &headers)
        .await
        .map(|d| Json(d).into_response())
}

/// `POST /buckets/{b}/metadata/disable`: R10 of the key `metadata`.
async fn disable_metadata_key_fixup(
    State(st): State<RouterState>,
    ApiPath((bucket, key)): ApiPath<(BucketId, String)>,
) -> Result<StatusCode, ApiError> {
    if key != "disable" {
        return Err(method_not_allowed().await);
    }
    del::disable_in(&st, &bucket, &fixed("metadata")?).await
}

/// `GET /buckets/{b}/bid/size` and `/bid/merge`: B1 / B10 of the key `bid`.
async fn bid_key_get_fixup(
    state: State<RouterState>,
    ApiPath((bucket, what)): ApiPath<(BucketId, String)>,
    query: ApiQuery<ReadQuery>,
) -> Result<Response, ApiError> {
    match what.as_str() {
        "size" => read::sizes(state, ApiPath((bucket, fixed("bid")?)))
            .await
            .map(IntoResponse::into_response),
        "merge" => read::merge(state, ApiPath((bucket, fixed("bid")?)), query).await,
        _ => Err(method_not_allowed().await),
    }
}

/// `POST /buckets/{b}/bid/disable`: R10 of the key `bid`.
async fn bid_key_disable_fixup(
    State(st): State<RouterState>,
    ApiPath((bucket, what)): ApiPath<(BucketId, String)>,
) -> Result<StatusCode, ApiError> {
    if what != "disable" {
        return Err(method_not_allowed().await);
    }
    del::disable_in(&st, &bucket, &fixed("bid")?).await
}
