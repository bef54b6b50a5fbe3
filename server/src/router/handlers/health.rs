//! `GET /health`, `GET /metrics` and `GET /api/v4/repair`.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

use super::super::repair::RepairStatus;
use super::super::state::RouterState;

/// The `/health` answer.
#[derive(Debug, Serialize)]
pub(crate) struct Health {
    status: &'static str,
    router_id: String,
    peers_up: usize,
    peers_total: usize,
}

/// `GET /health`: always 200 while the router runs; says how many peers are up.
pub(crate) async fn health(State(st): State<RouterState>) -> Json<Health> {
    let (up, total) = st.peers.counts();
    Json(Health {
        status: "ok",
        router_id: st.config.id.clone(),
        peers_up: up,
        peers_total: total,
    })
}

/// `GET /api/v4/repair`: what the repair loop has done (rounds, keys compared, copies and
/// deletes sent, the last round's duration) and its settings.
pub(crate) async fn repair(State(st): State<RouterState>) -> Json<RepairStatus> {
    Json(st.repair.status(&st))
}

/// `GET /metrics`: Prometheus text, gauges refreshed at scrape time.
pub(crate) async fn metrics(State(st): State<RouterState>) -> impl IntoResponse {
    st.update_gauges();
    st.repair.publish(&st);
    crate::metrics::render_handler(State(st.metrics.clone())).await
}
