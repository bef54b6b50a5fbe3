//! The router's shared state: cheap handles to its parts, one per job.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use crate::config::RouterConfig;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::version::Hlc;

use super::peer_client::{PeerClient, PeerError};
use super::peers::{PeerRegistry, PeerView};
use super::placement::{self, Candidate};
use super::policy::PolicyEngine;
use super::repair::RepairStats;
use super::replicas::ReplicaMap;
use super::tasks::TaskStore;
use super::StartError;

/// Everything a router handler or background loop needs. Cloning is cheap (a few `Arc`s).
///
/// Build it with [`RouterState::new`] and serve it with [`crate::router::app`]; or let
/// [`crate::router::start`] do both and run the background loops.
#[derive(Clone)]
pub struct RouterState {
    pub(crate) config: Arc<RouterConfig>,
    pub(crate) peers: PeerRegistry,
    pub(crate) replicas: ReplicaMap,
    pub(crate) tasks: TaskStore,
    pub(crate) client: PeerClient,
    pub(crate) metrics: Metrics,
    /// Availability policies and the access statistics they read.
    pub(crate) policies: PolicyEngine,
    /// Wakes the probe loop early (a peer was just added).
    pub(crate) probe_now: Arc<Notify>,
    /// Versions of the writes and deletes this router sends.
    pub(crate) clock: Arc<Hlc>,
    /// What the repair loop has done.
    pub(crate) repair: Arc<RepairStats>,
    /// Starts a repair round early (a peer just came up).
    pub(crate) repair_now: Arc<Notify>,
    /// Slots of the listings answered at once.
    pub(crate) listings: crate::paging::ListingGate,
}

impl std::fmt::Debug for RouterState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (up, total) = self.peers.counts();
        f.debug_struct("RouterState")
            .field("id", &self.config.id)
            .field("peers_up", &up)
            .field("peers_total", &total)
            .finish()
    }
}

impl RouterState {
    /// The state of a router with `config`: its peers registered (all down until probed),
    /// an empty replica map and no pending uploads.
    ///
    /// # Errors
    ///
    /// [`StartError::Client`] if the HTTP client for the peers cannot be built (no TLS
    /// backend), [`StartError::Tls`] if `config.ca_file` cannot be read.
    pub fn new(config: RouterConfig) -> Result<Self, StartError> {
        // Small calls (metadata, deletes, listings) get the idle timeout as their whole
        // budget: a peer that cannot answer one in that time is as good as stalled.
        let call_timeout = config.peer_idle_timeout.max(Duration::from_millis(100));
        let trust = match &config.ca_file {
            Some(path) => crate::tls::load_certificates(path)?,
            None => Vec::new(),
        };
        let client = PeerClient::new(
            config.peer_connect_timeout,
            call_timeout,
            config.probe_timeout,
            config.auth.cluster_token.as_ref(),
            &trust,
        )
        .map_err(StartError::Client)?;
        let peers = PeerRegistry::default();
        for address in &config.peers {
            peers.add(address.clone());
        }
        let config_id = config.id.clone();
        let listings = crate::paging::ListingGate::new(config.listing);
        Ok(Self {
            listings,
            tasks: TaskStore::new(config.task_ttl),
            policies: PolicyEngine::new(&config.policy),
            config: Arc::new(config),
            peers,
            replicas: ReplicaMap::default(),
            client,
            metrics: Metrics::new("mictlanx_router"),
            probe_now: Arc::new(Notify::new()),
            clock: Arc::new(Hlc::new(&config_id)),
            repair: Arc::default(),
            repair_now: Arc::new(Notify::new()),
        })
    }

    /// The router's id.
    pub fn id(&self) -> &str {
        &self.config.id
    }

    /// Marks the peer of a failed call down when it could not be connected to, and full
    /// (skipped by placement until its next probe) when it answered 507.
    pub(crate) fn note_failure(&self, e: &PeerError) {
        if e.is_connect_failure() {
            self.peers.mark_down(e.peer(), &e.to_string());
        }
        if e.status() == Some(axum::http::StatusCode::INSUFFICIENT_STORAGE) {
            self.peers.mark_full(e.peer());
        }
    }

    /// Calls every peer of `peers` at once, then hands each answer to `on_answer` in the
    /// order of `peers`; each failed call is noted ([`note_failure`](Self::note_failure))
    /// and returned instead, in the same order.
    pub(crate) async fn ask_each<'p, T, Fut>(
        &self,
        peers: &'p [PeerView],
        call: impl FnMut(&'p PeerView) -> Fut,
        mut on_answer: impl FnMut(&'p PeerView, T),
    ) -> Vec<PeerError>
    where
        Fut: Future<Output = Result<T, PeerError>>,
    {
        let answers = futures::future::join_all(peers.iter().map(call)).await;
        let mut errors = Vec::new();
        for (peer, answer) in peers.iter().zip(answers) {
            match answer {
                Ok(value) => on_answer(peer, value),
                Err(e) => {
                    self.note_failure(&e);
                    errors.push(e);
                }
            }
        }
        errors
    }

    /// The key's placement order over every registered peer, up or down (see `placement`).
    pub(crate) fn placement_order(&self, bucket: &str, key: &str) -> Vec<Candidate> {
        let candidates = self.peers.candidates();
        placement::order(&candidates, placement::key_hash(bucket, key))
            .into_iter()
            .cloned()
            .collect()
    }

    /// The healthy peers; 503 when there are none.
    pub(crate) fn require_healthy(&self) -> Result<Vec<PeerView>, ApiError> {
        let healthy = self.peers.healthy();
        if healthy.is_empty() {
            let (_, total) = self.peers.counts();
            return Err(ApiError::unavailable(format!(
                "No available peers: 0 of {total} peers are up"
            )));
        }
        Ok(healthy)
    }

    /// Publishes the gauges; called before each `/metrics` scrape and each probe round.
    pub(crate) fn update_gauges(&self) {
        let (up, total) = self.peers.counts();
        let m = &self.metrics;
        m.set_gauge("peers_up", "Peers that answered the last probe.", up as f64);
        m.set_gauge("peers_total", "Peers the router knows.", total as f64);
        m.set_gauge(
            "replicas_known",
            "Keys with at least one known replica.",
            self.replicas.len() as f64,
        );
        m.set_gauge(
            "tasks_pending",
            "Upload groups waiting for their bytes.",
            self.tasks.len() as f64,
        );
    }
}
