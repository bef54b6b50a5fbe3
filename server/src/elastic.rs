//! The elastic side of [`LocalCluster`](crate::LocalCluster): peers started in this process
//! when an availability policy declares them (the original summoned one container per new
//! `pool.peer` id; here it is one in-process peer on a free loopback port).
//!
//! Each one is remembered in the cluster's `cluster.json` before the router hears of it,
//! so that no ball is placed on a peer the next start would not bring back.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use mictlanx::uri::{NodeAddress, Protocol};
use tokio::sync::Mutex;

use crate::cluster::state::{PeerRecord, StateFile};
use crate::config::PeerConfig;
use crate::peer;
use crate::router::{PeerProvisioner, ProvisionError};
use crate::serve::ServerHandle;

/// Starts peers next to a local cluster's, under its data directory, configured like its
/// own peers (capacity, verification limit, tokens, TLS).
#[derive(Debug)]
pub(crate) struct LocalProvisioner {
    root: PathBuf,
    /// The configuration of the cluster's peers; each new peer gets its own id and folder.
    template: PeerConfig,
    /// Where every peer the cluster runs is remembered.
    state: Arc<StateFile>,
    /// The peers started so far, by id. A tokio mutex: held while one starts, so two
    /// policies naming the same new peer start it once.
    started: Mutex<HashMap<String, ServerHandle>>,
}

impl LocalProvisioner {
    pub(crate) fn new(root: PathBuf, template: PeerConfig, state: Arc<StateFile>) -> Self {
        Self {
            root,
            template,
            state,
            started: Mutex::new(HashMap::new()),
        }
    }

    fn protocol(&self) -> Protocol {
        if self.template.tls.is_some() {
            Protocol::Https
        } else {
            Protocol::Http
        }
    }

    /// The configuration of peer `id`: the template's, with its id, folder and capacity,
    /// on `port` (0: any free one).
    fn config(&self, id: &str, capacity: u64, port: u16) -> PeerConfig {
        let mut config = self.template.clone();
        config.id = id.to_string();
        config.data_dir = self.root.join(id);
        config.capacity = capacity;
        config.bind = SocketAddr::from(([127, 0, 0, 1], port));
        config
    }

    /// Starts a peer a policy had started before this process (remembered in
    /// `cluster.json`) on its folder.
    pub(crate) async fn restore(&self, record: &PeerRecord) -> Result<(), peer::StartError> {
        let mut started = self.started.lock().await;
        if started.contains_key(&record.id) {
            return Ok(());
        }
        let config = self.config(&record.id, record.capacity, record.port.unwrap_or(0));
        let handle = peer::start(config).await?;
        tracing::info!(event = "CLUSTER.PEER.RESTORED", peer = %record.id, addr = %handle.addr());
        started.insert(record.id.clone(), handle);
        Ok(())
    }

    /// `(id, base URL)` of the peers started so far, by id.
    pub(crate) async fn peers(&self) -> Vec<(String, String)> {
        let mut peers: Vec<(String, String)> = self
            .started
            .lock()
            .await
            .iter()
            .map(|(id, h)| (id.clone(), h.base_url()))
            .collect();
        peers.sort();
        peers
    }

    /// The addresses of the peers started so far, by id, for a router's initial list.
    pub(crate) async fn addresses(&self) -> Vec<NodeAddress> {
        let protocol = self.protocol();
        let mut out: Vec<NodeAddress> = self
            .started
            .lock()
            .await
            .iter()
            .map(|(id, h)| address(id, h, protocol))
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Stops every peer it started.
    pub(crate) async fn shutdown(&self) {
        let handles: Vec<ServerHandle> =
            self.started.lock().await.drain().map(|(_, h)| h).collect();
        for h in handles {
            h.shutdown().await;
        }
    }
}

fn address(id: &str, handle: &ServerHandle, protocol: Protocol) -> NodeAddress {
    NodeAddress::new("127.0.0.1", Some(handle.addr().port()), protocol).with_id(id)
}

impl PeerProvisioner for LocalProvisioner {
    fn provision<'a>(
        &'a self,
        peer_id: &'a str,
    ) -> BoxFuture<'a, Result<NodeAddress, ProvisionError>> {
        Box::pin(async move {
            let protocol = self.protocol();
            let mut started = self.started.lock().await;
            if let Some(handle) = started.get(peer_id) {
                return Ok(address(peer_id, handle, protocol));
            }
            // Ids reach here validated (`pool.peer` of names without `/`); the state file
            // checks again that the id can name a folder.
            if !crate::cluster::state::is_folder_id(peer_id) {
                return Err(ProvisionError::new(peer_id, "not a valid peer id"));
            }
            let capacity = self.template.capacity;
            let handle = peer::start(self.config(peer_id, capacity, 0))
                .await
                .map_err(|e| ProvisionError::new(peer_id, e))?;
            // Remembered before anyone can place a ball on it; a peer the next start would
            // not bring back must not take data.
            if let Err(e) = self
                .state
                .record([PeerRecord::elastic(peer_id, capacity)])
                .await
            {
                handle.shutdown().await;
                return Err(ProvisionError::new(peer_id, e));
            }
            let out = address(peer_id, &handle, protocol);
            tracing::info!(event = "CLUSTER.PEER.PROVISIONED", peer = peer_id, addr = %handle.addr());
            started.insert(peer_id.to_string(), handle);
            Ok(out)
        })
    }
}
