//! What the peer's handlers share: its id, the store, metrics, and the peers it has met.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use mictlanx::model::NodeHandshake;

use crate::metrics::Metrics;
use crate::paging::{ListingGate, ListingLimits};
use crate::storage::Store;

/// The state of a running peer. Cheap to clone.
#[derive(Clone, Debug)]
pub struct PeerState {
    pub(crate) id: Arc<str>,
    pub(crate) store: Store,
    pub(crate) metrics: Metrics,
    pub(crate) nodes: Nodes,
    /// Slots of the listings answered at once.
    pub(crate) listings: ListingGate,
}

impl PeerState {
    /// The state of peer `id` serving `store`.
    pub fn new(id: impl Into<String>, store: Store, metrics: Metrics) -> Self {
        Self {
            id: Arc::from(id.into()),
            store,
            metrics,
            nodes: Nodes::default(),
            listings: ListingGate::new(ListingLimits::default()),
        }
    }

    /// The same state, answering at most `limits.max_concurrent` listings at once.
    #[must_use]
    pub fn with_listing_limits(mut self, limits: ListingLimits) -> Self {
        self.listings = ListingGate::new(limits);
        self
    }

    /// The peer id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }
}

/// Peers that introduced themselves through `POST /api/v4/nodes`, by id (in memory only).
#[derive(Clone, Debug, Default)]
pub(crate) struct Nodes(Arc<Mutex<BTreeMap<String, NodeHandshake>>>);

impl Nodes {
    /// Remembers (or refreshes) a peer.
    pub(crate) fn remember(&self, node: NodeHandshake) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(node.id.clone(), node);
    }

    /// Every known peer, ordered by id.
    pub(crate) fn all(&self) -> Vec<NodeHandshake> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .values()
            .cloned()
            .collect()
    }
}
