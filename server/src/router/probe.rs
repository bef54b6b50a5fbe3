//! The router's background loops: peer probes (with the replica-map sync of peers that come
//! up) and the expiry of abandoned upload groups. Both stop when the stop token is
//! cancelled, and the sync tasks they start are aborted with them.

use std::collections::HashSet;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::peers::PeerView;
use super::state::RouterState;

/// Starts the loops; they run until `stop` is cancelled.
pub(crate) fn spawn_loops(st: RouterState, stop: CancellationToken) {
    tokio::spawn(probe_loop(st.clone(), stop.clone()));
    tokio::spawn(expiry_loop(st, stop));
}

async fn probe_loop(st: RouterState, stop: CancellationToken) {
    // At most one sync per peer at a time: a peer that flaps while a sync of it runs is
    // synced again afterwards instead of twice at once.
    let mut syncs: JoinSet<String> = JoinSet::new();
    let mut syncing: HashSet<String> = HashSet::new();
    loop {
        if stop.run_until_cancelled(probe_round(&st)).await.is_none() {
            break;
        }
        while let Some(done) = syncs.try_join_next() {
            if let Ok(id) = done {
                syncing.remove(&id);
            }
        }
        let came_up = st.peers.take_needs_sync();
        if !came_up.is_empty() {
            // A returning or wiped peer catches up on what it missed.
            st.repair_now.notify_one();
        }
        for peer in came_up {
            if syncing.contains(&peer.id) {
                st.peers.retry_sync(&peer.id);
                continue;
            }
            syncing.insert(peer.id.clone());
            syncs.spawn(sync_peer(st.clone(), peer, stop.clone()));
        }
        st.update_gauges();
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(st.config.probe_interval) => {}
            () = st.probe_now.notified() => {}
        }
    }
    syncs.shutdown().await;
}

/// Probes every peer at once (`GET /api/v4/stats/ufs`, bounded by the probe timeout).
pub(crate) async fn probe_round(st: &RouterState) {
    let peers = st.peers.all();
    let answers = futures::future::join_all(peers.iter().map(|p| st.client.ufs(p))).await;
    for (peer, answer) in peers.iter().zip(answers) {
        match answer {
            Ok(ufs) => {
                st.peers.probe_ok(&peer.id, &ufs);
            }
            Err(e) => {
                st.peers.mark_down(&peer.id, &e.to_string());
            }
        }
    }
}

/// Fills the replica map from a peer's committed keys, page by page. On failure the peer
/// is synced again after the next probe round. Returns the peer's id.
async fn sync_peer(st: RouterState, peer: PeerView, stop: CancellationToken) -> String {
    let outcome = stop
        .run_until_cancelled(async {
            let mut token = None;
            let mut total = 0usize;
            loop {
                let (page, next) = st.client.xballs_page(&peer, token.as_deref()).await?;
                total += page.len();
                for ball in &page {
                    st.replicas
                        .add(&ball.bucket_id, &ball.key, &[peer.id.as_str()]);
                }
                match next {
                    Some(t) => token = Some(t),
                    None => return Ok(total),
                }
            }
        })
        .await;
    match outcome {
        None => {}
        Some(Ok(keys)) => tracing::info!(event = "REPLICAS.SYNC", peer = %peer.id, keys),
        Some(Err(e)) => {
            let e: super::peer_client::PeerError = e;
            tracing::warn!(event = "REPLICAS.SYNC.FAILED", peer = %peer.id, error = %e);
            st.peers.retry_sync(&peer.id);
        }
    }
    peer.id
}

/// How often abandoned groups are looked for: a quarter of their TTL, within [100 ms, 30 s].
fn expiry_period(ttl: Duration) -> Duration {
    (ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(30))
}

async fn expiry_loop(st: RouterState, stop: CancellationToken) {
    let period = expiry_period(st.config.task_ttl);
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            () = tokio::time::sleep(period) => {}
        }
        for task in st.tasks.expire() {
            // The peers expire their own pending records; the router only gives back the
            // space it had promised.
            st.peers.release(&task.reserved_peers, task.size);
            tracing::info!(
                event = "TASK.EXPIRED",
                group_id = %task.group_id,
                bucket_id = %task.bucket_id,
                key = %task.key
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_period_is_bounded() {
        assert_eq!(
            expiry_period(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(
            expiry_period(Duration::from_secs(4)),
            Duration::from_secs(1)
        );
        assert_eq!(
            expiry_period(Duration::from_millis(10)),
            Duration::from_millis(100)
        );
    }
}
