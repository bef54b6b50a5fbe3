//! Availability policies in the router: access statistics, the policy store, trigger
//! evaluation, and the replication that acts on them (see `mictlanx::policy` for the
//! language and `docs/policies.md` for the semantics).
//!
//! Module map: `config` (settings), `provision` (the elastic hook), `stats` (sliding
//! window of reads), `store` (policies and their states), `engine` (evaluation, ACTIVE and
//! PASSIVE runs), `replicate` (planning and copying chunks), `handlers` (the HTTP API).

mod config;
mod engine;
mod handlers;
mod provision;
mod replicate;
mod stats;
mod store;

use axum::routing::get;
use axum::Router;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::PolicyConfig;
pub use provision::{PeerProvisioner, ProvisionError};

use super::state::RouterState;
use stats::AccessStats;
use store::PolicyStore;

/// The router's policy engine. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct PolicyEngine {
    stats: AccessStats,
    store: PolicyStore,
    /// Replication runs; each stops with its policy's token or with `stop`.
    tasks: TaskTracker,
    stop: CancellationToken,
}

impl PolicyEngine {
    pub(crate) fn new(config: &PolicyConfig) -> Self {
        Self {
            stats: AccessStats::new(config.window, config.max_tracked_balls),
            store: PolicyStore::default(),
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        }
    }
}

/// Starts the evaluation loop: every `eval_interval` it evaluates the waiting policies and
/// forgets idle statistics. When `stop` is cancelled it stops, with every replication run.
pub(crate) fn spawn_loop(st: RouterState, stop: CancellationToken) {
    tokio::spawn(async move {
        let engine = st.policies.clone();
        let mut tick = tokio::time::interval(st.config.policy.eval_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {
                    engine.evaluate(&st, None);
                    engine.stats.prune();
                }
            }
        }
        engine.stop.cancel();
        engine.tasks.close();
        engine.tasks.wait().await;
    });
}

/// The routes of `/api/v4/policies`.
pub(crate) fn routes() -> Router<RouterState> {
    Router::new()
        .route(
            "/api/v4/policies",
            get(handlers::list).post(handlers::apply),
        )
        .route(
            "/api/v4/policies/{id}",
            get(handlers::status).delete(handlers::remove),
        )
}
