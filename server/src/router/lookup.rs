//! Finding the replicas of a key, and turning a round of failed replica calls into one
//! precise error.
//!
//! The replica map is only a cache. When it knows no healthy holder of a key (or all the
//! ones it knew turned out not to have it), the router asks every healthy peer's metadata
//! endpoint at once and records the answers: that is how a restarted router, or a second
//! router, finds balls written through another one, and how keys whose bytes have not
//! arrived yet (not in any `xballs` listing) are found.

use std::collections::{HashSet, VecDeque};

use crate::error::ApiError;

use super::peer_client::PeerError;
use super::peers::PeerView;
use super::state::RouterState;

/// Asks every healthy peer not in `exclude` whether it holds the key; records and returns
/// those that do.
pub(crate) async fn ask_all(
    st: &RouterState,
    bucket: &str,
    key: &str,
    exclude: &HashSet<String>,
) -> Vec<PeerView> {
    let peers: Vec<PeerView> = st
        .peers
        .healthy()
        .into_iter()
        .filter(|p| !exclude.contains(&p.id))
        .collect();
    let answers =
        futures::future::join_all(peers.iter().map(|p| st.client.get_metadata(p, bucket, key)))
            .await;
    let mut found = Vec::new();
    for (peer, answer) in peers.into_iter().zip(answers) {
        match answer {
            Ok(Some(_)) => found.push(peer),
            Ok(None) => {}
            Err(e) => {
                st.note_failure(&e);
                tracing::debug!(event = "LOOKUP.FAILED", peer = %peer.id, bucket_id = bucket, key, error = %e);
            }
        }
    }
    let ids: Vec<&str> = found.iter().map(|p| p.id.as_str()).collect();
    st.replicas.add(bucket, key, &ids);
    found
}

/// The peers holding a key, as far as the router can tell: the map's entry when it names
/// at least one healthy peer, else the map's entry plus whatever [`ask_all`] finds.
/// Down peers are included (callers decide what to do with them).
pub(crate) async fn locate(st: &RouterState, bucket: &str, key: &str) -> Vec<String> {
    let known = st.replicas.get(bucket, key);
    if known
        .iter()
        .any(|id| st.peers.view(id).is_some_and(|p| p.up))
    {
        return known;
    }
    let exclude: HashSet<String> = known.iter().cloned().collect();
    let mut all = known;
    all.extend(
        ask_all(st, bucket, key, &exclude)
            .await
            .into_iter()
            .map(|p| p.id),
    );
    all
}

/// Healthy views of `ids`, least loaded first (reads in flight); ties keep the given order.
/// Returns the ids that are down (or unknown) separately.
pub(crate) fn order_for_read(st: &RouterState, ids: &[String]) -> (Vec<PeerView>, Vec<String>) {
    let mut healthy = Vec::new();
    let mut down = Vec::new();
    for id in ids {
        match st.peers.view(id) {
            Some(p) if p.up => healthy.push(p),
            _ => down.push(id.clone()),
        }
    }
    healthy.sort_by_key(|p| p.in_flight);
    (healthy, down)
}

/// Walks the replicas of one key for a read, one at a time, healthy and least loaded
/// first. When the known ones are used up it asks the other peers once (see [`ask_all`]).
pub(crate) struct ReplicaCursor<'a> {
    st: &'a RouterState,
    bucket: &'a str,
    key: &'a str,
    queue: VecDeque<PeerView>,
    tried: HashSet<String>,
    asked: bool,
    down: Vec<String>,
}

impl<'a> ReplicaCursor<'a> {
    /// Starts from the replica map (asking the peers if it knows no healthy holder).
    pub(crate) async fn new(st: &'a RouterState, bucket: &'a str, key: &'a str) -> Self {
        let known = st.replicas.get(bucket, key);
        let (healthy, down) = order_for_read(st, &known);
        let mut cursor = Self {
            st,
            bucket,
            key,
            queue: healthy.into(),
            tried: known.into_iter().collect(),
            asked: false,
            down,
        };
        if cursor.queue.is_empty() {
            cursor.ask().await;
        }
        cursor
    }

    async fn ask(&mut self) {
        self.asked = true;
        let mut found = ask_all(self.st, self.bucket, self.key, &self.tried).await;
        found.sort_by_key(|p| p.in_flight);
        for p in found {
            self.tried.insert(p.id.clone());
            self.queue.push_back(p);
        }
    }

    /// The next replica to try, or `None` when there is none left.
    pub(crate) async fn next(&mut self) -> Option<PeerView> {
        if self.queue.is_empty() && !self.asked {
            self.ask().await;
        }
        self.queue.pop_front()
    }

    /// The replica did not have the key after all: forget it.
    pub(crate) fn not_found(&self, peer: &PeerView) {
        self.st
            .replicas
            .remove_peer(self.bucket, self.key, &[peer.id.as_str()]);
    }

    /// Replicas known to the map whose peers are down.
    pub(crate) fn down(&self) -> &[String] {
        &self.down
    }
}

/// The failures of one round of replica calls.
#[derive(Debug, Default)]
pub(crate) struct Failures {
    errors: Vec<PeerError>,
}

impl Failures {
    /// Records a failed call (and logs the failover to the next replica).
    pub(crate) fn push(&mut self, st: &RouterState, bucket: &str, key: &str, e: PeerError) {
        st.note_failure(&e);
        tracing::warn!(event = "FAILOVER", peer = e.peer(), bucket_id = bucket, key, reason = %e);
        self.errors.push(e);
    }

    /// The error for "no replica could serve": `not_found` when no replica failed (none
    /// had it, or there were none), else 503 when no replica answered at all (down or
    /// unreachable), else 502 with every peer's reason.
    pub(crate) fn into_error(self, down: &[String], not_found: ApiError) -> ApiError {
        if self.errors.is_empty() && down.is_empty() {
            return not_found;
        }
        let mut reasons: Vec<String> = down.iter().map(|p| format!("{p} is down")).collect();
        reasons.extend(self.errors.iter().map(ToString::to_string));
        let reasons = reasons.join("; ");
        if self.errors.iter().all(PeerError::is_no_answer) {
            ApiError::unavailable(format!("No replica is reachable: {reasons}"))
        } else {
            ApiError::bad_gateway(format!("Every replica failed: {reasons}"))
        }
    }
}
