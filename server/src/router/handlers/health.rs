//! `GET /health` and `GET /metrics`.

use axum::extract::State;
use axum::response::IntoResponse;
use axum::Json;
use serde::Serialize;

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

/// `GET /metrics`: Prometheus text, gauges refreshed at scrape time.
pub(crate) async fn metrics(State(st): State<RouterState>) -> impl IntoResponse {
    st.update_gauges();
    crate::metrics::render_handler(State(st.metrics.clone())).await
}
