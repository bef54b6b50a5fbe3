//! Making sure every chunk of some balls has a replica on every `where` peer.
//!
//! The plan comes from the peers themselves (each healthy peer's listing of the ball, or of
//! the bucket), so it sees replicas the router's map does not know. Each missing
//! `(key, peer)` is one copy: the router reads the key from a holder (`who` first, when it
//! holds it, else the others in turn) and uploads it to the target with the same peer calls
//! it uses for a client's put (metadata, then the streamed bytes, which the target verifies
//! against the declared checksum). A written copy joins the replica map, so reads use it.

use std::collections::BTreeMap;
use std::time::Duration;

use mictlanx::model::Metadata;
use mictlanx::policy::WhatItem;

use crate::paging::MAX_LIMIT;

use super::super::bucket_pages::last_key;
use super::super::copy::{announcement_of, copy_replica};
use super::super::peer_client::PeerError;
use super::super::peers::PeerView;
use super::super::state::RouterState;

/// How often a replication looks again for `where` peers that are not up yet.
const PEER_POLL: Duration = Duration::from_millis(50);

/// One key and the peers that hold it.
#[derive(Debug, Clone)]
pub(crate) struct KeyPlan {
    pub bucket: String,
    pub metadata: Metadata,
    pub holders: Vec<String>,
}

/// One copy to make.
#[derive(Debug, Clone)]
pub(crate) struct Copy {
    pub key: KeyPlan,
    pub target: PeerView,
}

/// Waits until every `where` peer is registered and up, for at most `timeout`.
pub(crate) async fn wait_for_peers(
    st: &RouterState,
    ids: &[String],
    timeout: Duration,
) -> Result<Vec<PeerView>, String> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let views: Vec<Option<PeerView>> = ids.iter().map(|id| st.peers.view(id)).collect();
        let missing: Vec<&String> = ids
            .iter()
            .zip(&views)
            .filter(|(_, v)| !v.as_ref().is_some_and(|p| p.up))
            .map(|(id, _)| id)
            .collect();
        if missing.is_empty() {
            return Ok(views.into_iter().flatten().collect());
        }
        if tokio::time::Instant::now() >= deadline {
            let names: Vec<&str> = missing.iter().map(|s| s.as_str()).collect();
            return Err(format!(
                "where peers not up after {timeout:?}: {}",
                names.join(", ")
            ));
        }
        st.probe_now.notify_one();
        tokio::time::sleep(PEER_POLL).await;
    }
}

/// Every key of the `items` on the healthy peers, with its holders.
///
/// # Errors
///
/// A message when a ball item has no key on any healthy peer (nothing to copy from).
pub(crate) async fn plan(st: &RouterState, items: &[WhatItem]) -> Result<Vec<KeyPlan>, String> {
    let peers = st.peers.healthy();
    let mut keys: BTreeMap<(String, String), KeyPlan> = BTreeMap::new();
    let mut add = |bucket: &str, metadata: Metadata, peer: &str| {
        let entry = keys
            .entry((bucket.to_string(), metadata.key.clone()))
            .or_insert_with(|| KeyPlan {
                bucket: bucket.to_string(),
                metadata,
                holders: Vec::new(),
            });
        entry.holders.push(peer.to_string());
    };
    for item in items {
        match item {
            WhatItem::Ball { bucket, ball } => {
                let mut found = false;
                st.ask_each(
                    &peers,
                    |p| st.client.ball_group(p, bucket, ball),
                    |peer, group| {
                        for m in group.into_iter().flat_map(|g| g.balls) {
                            found = true;
                            add(bucket, m, &peer.id);
                        }
                    },
                )
                .await;
                if !found {
                    return Err(format!("{bucket}@{ball}: no healthy peer holds it"));
                }
            }
            WhatItem::Bucket(bucket) => {
                // Each peer's bucket a page at a time; a peer failing mid-way keeps what
                // it listed so far, as a peer failing at once is left out.
                for peer in &peers {
                    let mut after: Option<String> = None;
                    loop {
                        let page = match st
                            .client
                            .bucket_page(peer, bucket, after.as_deref(), MAX_LIMIT)
                            .await
                        {
                            Ok(page) => page,
                            Err(e) => {
                                st.note_failure(&e);
                                break;
                            }
                        };
                        let last = last_key(&page);
                        for m in page.balls {
                            add(bucket, m, &peer.id);
                        }
                        match last {
                            Some(k) if page.is_truncated => after = Some(k),
                            _ => break,
                        }
                    }
                }
            }
        }
    }
    Ok(keys.into_values().collect())
}

/// The copies that `plan` lacks on `targets`.
pub(crate) fn missing(plan: Vec<KeyPlan>, targets: &[PeerView]) -> Vec<Copy> {
    let mut out = Vec::new();
    for key in plan {
        for target in targets {
            if !key.holders.contains(&target.id) {
                out.push(Copy {
                    key: key.clone(),
                    target: target.clone(),
                });
            }
        }
    }
    out
}

/// Makes one copy, trying the holders in turn (`who` first).
pub(crate) async fn copy(st: &RouterState, c: &Copy, who: &str) -> Result<(), String> {
    let mut sources = st.peers.up_views(&c.key.holders);
    // Stable: `who` first, the others in the order they were found.
    sources.sort_by_key(|p| p.id != who);
    let mut last = format!("{}@{}: no healthy holder", c.key.bucket, c.key.metadata.key);
    for source in &sources {
        match copy_from(st, c, source).await {
            Ok(()) => {
                st.replicas
                    .add(&c.key.bucket, &c.key.metadata.key, &[c.target.id.as_str()]);
                tracing::info!(
                    event = "POLICY.COPY",
                    bucket_id = %c.key.bucket,
                    key = %c.key.metadata.key,
                    from = %source.id,
                    to = %c.target.id,
                    size = c.key.metadata.size
                );
                return Ok(());
            }
            Err(e) => {
                st.note_failure(&e);
                tracing::warn!(event = "POLICY.COPY.FAILED", bucket_id = %c.key.bucket, key = %c.key.metadata.key, from = %source.id, to = %c.target.id, error = %e);
                last = e.to_string();
            }
        }
    }
    Err(last)
}

async fn copy_from(st: &RouterState, c: &Copy, source: &PeerView) -> Result<(), PeerError> {
    let request = announcement_of(&c.key.bucket, &c.key.metadata);
    copy_replica(st, source, &c.target, &c.key.bucket, &request)
        .await
        .map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(id: &str) -> PeerView {
        PeerView {
            id: id.to_string(),
            base_url: format!("http://{id}"),
            up: true,
            verifies_uploads: true,
        }
    }

    fn key(name: &str, holders: &[&str]) -> KeyPlan {
        KeyPlan {
            bucket: "b".to_string(),
            metadata: Metadata {
                key: name.to_string(),
                size: 1,
                checksum: String::new(),
                tags: Default::default(),
                content_type: String::new(),
                producer_id: String::new(),
                ball_id: "k".to_string(),
                bucket_id: "b".to_string(),
                is_disabled: false,
            },
            holders: holders.iter().map(|h| h.to_string()).collect(),
        }
    }

    #[test]
    fn only_missing_pairs_are_copied() {
        let plan = vec![key("k_0", &["p.a"]), key("k_1", &["p.a", "p.b"])];
        let targets = [view("p.a"), view("p.b"), view("p.c")];
        let copies: Vec<(String, String)> = missing(plan, &targets)
            .into_iter()
            .map(|c| (c.key.metadata.key, c.target.id))
            .collect();
        assert_eq!(
            copies,
            vec![
                ("k_0".to_string(), "p.b".to_string()),
                ("k_0".to_string(), "p.c".to_string()),
                ("k_1".to_string(), "p.c".to_string()),
            ]
        );
        assert!(missing(vec![], &targets).is_empty());
        assert!(missing(vec![key("k_0", &[])], &[]).is_empty());
    }
}
