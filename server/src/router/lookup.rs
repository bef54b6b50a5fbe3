//! Finding the replicas of a key and its newest version, and turning a round of failed
//! replica calls into one precise error.
//!
//! A key's **places** are the first `read_width` peers of its placement order (where every
//! router writes it) followed by the peers the replica map knows (fallbacks that took a
//! write while a place was down, policy replicas, keys written before placement was
//! deterministic). A **survey** asks the places for the key's metadata at once; the newest
//! version among the answers (a copy or a tombstone) is the key's state. When no place
//! knows the key at all and every place answered, the other healthy peers are asked once
//! ([`ask_all`]), for keys put on a peer behind the routers' back.

use std::collections::HashSet;

use mictlanx::model::GetMetadataResponse;

use crate::error::ApiError;

use super::peer_client::{KeyReport, PeerError};
use super::peers::PeerView;
use super::state::RouterState;
use crate::version::Version;

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

/// The key's places: the first `read_width` peers of its placement order, then the other
/// peers the replica map names, without repeats.
pub(crate) fn places(st: &RouterState, bucket: &str, key: &str) -> Vec<String> {
    let width = st.config.read_width.max(1);
    let order = st.placement_order(bucket, key);
    let mut ids: Vec<String> = order.iter().take(width).map(|c| c.id.clone()).collect();
    for id in st.replicas.get(bucket, key) {
        if !ids.contains(&id) {
            ids.push(id);
        }
    }
    ids
}

/// The places split into the ones that are up (views, in place order) and the ids of the
/// ones that are down or no longer registered.
pub(crate) fn up_and_down(st: &RouterState, ids: &[String]) -> (Vec<PeerView>, Vec<String>) {
    let mut up = Vec::new();
    let mut down = Vec::new();
    for id in ids {
        match st.peers.view(id) {
            Some(p) if p.up => up.push(p),
            _ => down.push(id.clone()),
        }
    }
    (up, down)
}

/// The peers holding a key, as far as the router can tell: the up places that hold it
/// (committed or pending; the other peers, through [`ask_all`], when none does), then the
/// places that are down (callers decide what to do with them).
pub(crate) async fn locate(st: &RouterState, bucket: &str, key: &str) -> Vec<String> {
    let ids = places(st, bucket, key);
    let (up, down) = up_and_down(st, &ids);
    let found = survey(st, bucket, key, &up).await;
    let holders: Vec<String> = found
        .iter()
        .filter(|(_, r)| matches!(r, Ok(KeyReport::Present { .. })))
        .map(|(p, _)| p.id.clone())
        .collect();
    let holders = if holders.is_empty() {
        let exclude: HashSet<String> = ids.iter().cloned().collect();
        ask_all(st, bucket, key, &exclude)
            .await
            .into_iter()
            .map(|p| p.id)
            .collect()
    } else {
        holders
    };
    holders.into_iter().chain(down).collect()
}

/// One place's answer to a survey.
pub(crate) type Sighting = (PeerView, Result<KeyReport, PeerError>);

/// Asks each of `peers` for the key's metadata and version at once.
pub(crate) async fn survey(
    st: &RouterState,
    bucket: &str,
    key: &str,
    peers: &[PeerView],
) -> Vec<Sighting> {
    let answers =
        futures::future::join_all(peers.iter().map(|p| st.client.key_report(p, bucket, key))).await;
    peers.iter().cloned().zip(answers).collect()
}

/// The newest state of a key among what its places said.
#[derive(Debug)]
pub(crate) enum Newest {
    /// A committed copy at `version`; `holders` have it, first seen first, with the
    /// metadata of the first.
    Object {
        version: Version,
        holders: Vec<PeerView>,
        metadata: Box<GetMetadataResponse>,
    },
    /// Deleted at this version, after every copy seen.
    Deleted(Version),
    /// No place has a copy or a tombstone.
    Nothing,
}

impl Newest {
    /// The newest state among `sightings`; failed calls are pushed to `failures`. Pending
    /// uploads do not count: their bytes are not there yet.
    pub(crate) fn of(
        st: &RouterState,
        bucket: &str,
        key: &str,
        sightings: Vec<Sighting>,
        failures: &mut Failures,
    ) -> Newest {
        let mut newest = Newest::Nothing;
        newest.add(st, bucket, key, sightings, failures);
        newest
    }

    /// Takes more sightings into account (see [`Newest::of`]).
    pub(crate) fn add(
        &mut self,
        st: &RouterState,
        bucket: &str,
        key: &str,
        sightings: Vec<Sighting>,
        failures: &mut Failures,
    ) {
        for (peer, report) in sightings {
            match report {
                Ok(KeyReport::Present {
                    metadata,
                    pending: false,
                    version,
                }) => self.saw_object(peer, version, metadata),
                Ok(KeyReport::Deleted(v)) => self.saw_deletion(v),
                Ok(KeyReport::Present { pending: true, .. }) | Ok(KeyReport::Absent) => {}
                Err(e) => failures.push(st, bucket, key, e),
            }
        }
    }

    /// Takes a copy at `version` held by `peer` into account.
    pub(crate) fn saw_object(
        &mut self,
        peer: PeerView,
        version: Version,
        metadata: Box<GetMetadataResponse>,
    ) {
        match self {
            Newest::Object {
                version: v,
                holders,
                ..
            } if *v == version => holders.push(peer),
            Newest::Object { version: v, .. } | Newest::Deleted(v) if *v > version => {}
            _ => {
                *self = Newest::Object {
                    version,
                    holders: vec![peer],
                    metadata,
                }
            }
        }
    }

    /// Takes a tombstone at `version` into account.
    pub(crate) fn saw_deletion(&mut self, version: Version) {
        match self {
            Newest::Object { version: v, .. } | Newest::Deleted(v) if *v >= version => {}
            _ => *self = Newest::Deleted(version),
        }
    }

    /// The version of the newest state, if any.
    pub(crate) fn version(&self) -> Option<Version> {
        match self {
            Newest::Object { version, .. } | Newest::Deleted(version) => Some(*version),
            Newest::Nothing => None,
        }
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

    /// Whether no call failed.
    pub(crate) fn is_empty(&self) -> bool {
        self.errors.is_empty()
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
