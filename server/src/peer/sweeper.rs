//! The background loop that expires pending uploads whose bytes never came.

use std::time::{Duration, SystemTime};

use tokio_util::sync::CancellationToken;

use crate::storage::WeakStore;

/// How often pending uploads are checked for expiry.
pub(crate) const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Spawns the sweeper. It stops when `stop` is cancelled or the store is closed; it holds
/// the store only during a sweep, so a stopped peer releases its database at once.
pub(crate) fn spawn(store: WeakStore, stop: CancellationToken) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(SWEEP_INTERVAL);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick is immediate; opening the store already expired stale uploads.
        ticks.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = ticks.tick() => {}
            }
            let Some(store) = store.upgrade() else { break };
            match store.expire_pending(SystemTime::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(event = "PENDING.SWEEP", expired = n),
                Err(e) => tracing::warn!(event = "PENDING.SWEEP.FAILED", error = %e),
            }
        }
    })
}
