//! Health, metrics, usage and the small housekeeping endpoints (PS2, PS3, PS7, PS8; the
//! listings are in `listings`).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use mictlanx::model::{
    BallsLenResponse, KeyVersionEntry, KeyVersionsPage, NodeHandshake, UfsResponse,
};
use serde::Deserialize;
use serde_json::{json, Value};

use super::state::PeerState;
use crate::error::{ApiError, ApiJson, ApiQuery};

/// `GET /health`: always 200 with `"status": "ok"` (the peer answers); `state` says
/// `"ok"`, `"full"` (no room for new puts) or `"degraded"` (metadata I/O errors seen
/// recently), with `full`, `degraded` and `free_bytes` beside it.
pub(crate) async fn health(State(st): State<PeerState>) -> ApiJson<Value> {
    let store = st.store.clone();
    // `condition` asks the filesystem (statvfs): off the async threads.
    let c = tokio::task::spawn_blocking(move || store.condition())
        .await
        .unwrap_or_default();
    ApiJson(json!({
        "status": "ok",
        "peer_id": &*st.id,
        "state": c.state(),
        "full": c.full,
        "degraded": c.degraded,
        "free_bytes": c.free_bytes,
    }))
}

/// `GET /metrics`: refreshes the storage gauges, then renders everything.
pub(crate) async fn metrics(State(st): State<PeerState>) -> impl IntoResponse {
    let u = st.store.usage();
    let m = &st.metrics;
    m.set_gauge(
        "disk_used_bytes",
        "Bytes committed or reserved by pending uploads.",
        u.used() as f64,
    );
    m.set_gauge(
        "disk_capacity_bytes",
        "Bytes this peer may store.",
        u.capacity as f64,
    );
    m.set_gauge("objects", "Committed objects.", u.objects as f64);
    let c = st.store.condition();
    m.set_gauge(
        "disk_free_bytes",
        "Bytes new puts may still use (capacity and real free space, less the reserve).",
        c.free_bytes as f64,
    );
    m.set_gauge(
        "disk_full",
        "1 when there is no room for new puts.",
        f64::from(u8::from(c.full)),
    );
    m.set_gauge(
        "metadata_degraded",
        "1 when the metadata database failed recently.",
        f64::from(u8::from(c.degraded)),
    );
    m.set_gauge(
        "metadata_io_errors",
        "Metadata database I/O errors since the peer started.",
        c.db_errors as f64,
    );
    m.set_gauge(
        "metadata_reopens",
        "Times the metadata database was reopened after an I/O error.",
        c.db_reopens as f64,
    );
    m.set_gauge(
        "pending_uploads",
        "Accepted metadata waiting for its bytes.",
        u.pending_uploads as f64,
    );
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

/// PS2 `GET /api/v4/stats/ufs`.
pub(crate) async fn ufs(State(st): State<PeerState>) -> ApiJson<UfsResponse> {
    let u = st.store.usage();
    ApiJson(UfsResponse {
        total_disk: u.capacity,
        used_disk: u.used(),
        disk_uf: u.utilisation(),
        // `storage::upload` checks every declared SHA-256 before it commits.
        verifies_uploads: true,
    })
}

/// PS3 `GET /api/v4/balls/len`.
pub(crate) async fn balls_len(
    State(st): State<PeerState>,
) -> Result<ApiJson<BallsLenResponse>, ApiError> {
    Ok(ApiJson(BallsLenResponse {
        len: st.store.object_count().await?,
    }))
}

/// Query of `GET /api/v4/xversions`: the page after `(after_bucket, after_key)`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct VersionsQuery {
    #[serde(default)]
    after_bucket: Option<String>,
    #[serde(default)]
    after_key: Option<String>,
    #[serde(default)]
    limit: Option<usize>,
}

/// Keys per page of `xversions` unless asked for fewer; also the most a page holds.
const VERSIONS_PAGE: usize = 1000;

/// `GET /api/v4/xversions?after_bucket=&after_key=&limit=`: every key this peer holds or
/// deleted, with its version, a page at a time in key order (routers compare these pages to
/// repair replicas).
pub(crate) async fn xversions(
    State(st): State<PeerState>,
    ApiQuery(q): ApiQuery<VersionsQuery>,
) -> Result<ApiJson<KeyVersionsPage>, ApiError> {
    let after = match (q.after_bucket, q.after_key) {
        (Some(b), Some(k)) => Some((b, k)),
        (None, None) => None,
        _ => {
            return Err(ApiError::bad_request(
                "after_bucket and after_key go together",
            ))
        }
    };
    let limit = q.limit.unwrap_or(VERSIONS_PAGE).clamp(1, VERSIONS_PAGE);
    let (entries, more) = st.store.versions_page(after, limit).await?;
    Ok(ApiJson(KeyVersionsPage {
        entries: entries
            .into_iter()
            .map(|e| KeyVersionEntry {
                ball_id: e
                    .metadata
                    .as_ref()
                    .map(|m| m.ball_id.clone())
                    .unwrap_or_default(),
                num_chunks: e
                    .metadata
                    .as_ref()
                    .and_then(|m| m.num_chunks())
                    .unwrap_or(0),
                full_checksum: e
                    .metadata
                    .as_ref()
                    .and_then(|m| m.full_checksum())
                    .unwrap_or_default()
                    .to_string(),
                bucket_id: e.bucket_id,
                key: e.key,
                version: e.version.to_string(),
                deleted: e.deleted,
                size: e.size,
                replication_factor: e.replication_factor,
                written_at_ms: e.written_at_ms,
            })
            .collect(),
        more,
    }))
}

/// PS7 `POST /api/v4/nodes`: remembers the peer (in memory) and echoes it.
pub(crate) async fn add_node(
    State(st): State<PeerState>,
    ApiJson(node): ApiJson<NodeHandshake>,
) -> ApiJson<NodeHandshake> {
    tracing::info!(event = "NODE.HANDSHAKE", node_id = %node.id, ip_addr = %node.ip_addr, port = node.port);
    st.nodes.remember(node.clone());
    ApiJson(node)
}

/// PS8 `DELETE /api/v4/tasks`: drops every pending upload.
pub(crate) async fn flush_tasks(State(st): State<PeerState>) -> Result<StatusCode, ApiError> {
    let n = st.store.clear_pending().await?;
    tracing::info!(event = "TASKS.FLUSHED", n);
    Ok(StatusCode::NO_CONTENT)
}
