//! The peers controller: list, add and remove peers (P1–P5) and their stats (R12).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mictlanx::model::{PeerPayload, PeersListResponse, PeersStatsResponse};
use serde::Deserialize;

use crate::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::paging::MAX_LIMIT;

use super::super::peers::{address_from_payload, valid_peer_id};
use super::super::state::RouterState;

/// R13 / P1 `POST /api/v4/xpeers`: registers every peer (all or none: any invalid payload
/// is a 400). They become available after their first successful probe.
pub(crate) async fn add_peers(
    State(st): State<RouterState>,
    ApiJson(payloads): ApiJson<Vec<PeerPayload>>,
) -> Result<StatusCode, ApiError> {
    let addresses = payloads
        .iter()
        .map(address_from_payload)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    for a in addresses {
        tracing::info!(event = "PEER.ADD", peer = %a.label(), url = %a.base_url());
        st.peers.add(a);
    }
    st.probe_now.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// P3 `POST /api/v4/peers`: registers one peer.
pub(crate) async fn add_peer(
    State(st): State<RouterState>,
    ApiJson(payload): ApiJson<PeerPayload>,
) -> Result<StatusCode, ApiError> {
    let a = address_from_payload(&payload).map_err(|e| ApiError::bad_request(e.to_string()))?;
    tracing::info!(event = "PEER.ADD", peer = %a.label(), url = %a.base_url());
    st.peers.add(a);
    st.probe_now.notify_one();
    Ok(StatusCode::NO_CONTENT)
}

/// P2 `GET /api/v4/peers`.
pub(crate) async fn list_peers(State(st): State<RouterState>) -> Json<PeersListResponse> {
    Json(st.peers.list())
}

fn forget(st: &RouterState, id: &str) {
    if st.peers.remove(id) {
        st.replicas.remove_peer_everywhere(id);
        tracing::info!(event = "PEER.REMOVE", peer = id);
    }
}

/// P4 `DELETE /api/v4/peers/{peer_id}`: 204 whether or not it was known.
pub(crate) async fn remove_peer(
    State(st): State<RouterState>,
    ApiPath(id): ApiPath<String>,
) -> StatusCode {
    forget(&st, &id);
    StatusCode::NO_CONTENT
}

/// P5 `DELETE /api/v4/xpeers?peers=a&peers=b`: 204 whether or not they were known.
pub(crate) async fn remove_peers(
    State(st): State<RouterState>,
    ApiQuery(pairs): ApiQuery<Vec<(String, String)>>,
) -> Result<StatusCode, ApiError> {
    for (name, id) in pairs {
        if name == "peers" {
            if !valid_peer_id(&id) && !id.is_empty() {
                return Err(ApiError::bad_request(format!(
                    "invalid peer id {:?}",
                    id.chars().take(64).collect::<String>()
                )));
            }
            forget(&st, &id);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Query of R12.
#[derive(Debug, Deserialize)]
pub(crate) struct StatsQuery {
    #[serde(default)]
    start: i64,
    #[serde(default = "default_end")]
    end: i64,
}

fn default_end() -> i64 {
    100
}

/// R12 `GET /api/v4/peers/stats?start&end`: each healthy peer's stats, by peer id. Peers
/// that fail to answer are left out. A request for more than a page of objects (no `end`,
/// as the Python client asks) takes a listing slot; the SDK's heartbeat (`end=1`) does not,
/// so that a flood of listings cannot make a router look down.
pub(crate) async fn stats(
    State(st): State<RouterState>,
    ApiQuery(q): ApiQuery<StatsQuery>,
) -> Result<Json<PeersStatsResponse>, ApiError> {
    let small = q.end > 0 && q.end.saturating_sub(q.start.max(0)) <= MAX_LIMIT as i64;
    let _slot = if small {
        None
    } else {
        Some(st.listings.enter().await?)
    };
    let peers = st.peers.healthy();
    let answers = futures::future::join_all(
        peers
            .iter()
            .map(|p| st.client.stats(p, q.start.max(0), q.end)),
    )
    .await;
    let mut out = PeersStatsResponse::new();
    for (peer, answer) in peers.into_iter().zip(answers) {
        match answer {
            Ok(stats) => {
                out.insert(peer.id, stats);
            }
            Err(e) => {
                st.note_failure(&e);
                tracing::warn!(event = "STATS.FAILED", peer = %peer.id, error = %e);
            }
        }
    }
    Ok(Json(out))
}
