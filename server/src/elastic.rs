//! The elastic side of [`LocalCluster`](crate::LocalCluster): peers started in this process
//! when an availability policy declares them (the original summoned one container per new
//! `pool.peer` id; here it is one in-process peer on a free loopback port).

use std::collections::HashMap;
use std::path::PathBuf;

use futures::future::BoxFuture;
use mictlanx::uri::{NodeAddress, Protocol};
use tokio::sync::Mutex;

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
    /// The peers started so far, by id. A tokio mutex: held while one starts, so two
    /// policies naming the same new peer start it once.
    started: Mutex<HashMap<String, ServerHandle>>,
}

impl LocalProvisioner {
    pub(crate) fn new(root: PathBuf, template: PeerConfig) -> Self {
        Self {
            root,
            template,
            started: Mutex::new(HashMap::new()),
        }
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
            let protocol = if self.template.tls.is_some() {
                Protocol::Https
            } else {
                Protocol::Http
            };
            let mut started = self.started.lock().await;
            if let Some(handle) = started.get(peer_id) {
                return Ok(address(peer_id, handle, protocol));
            }
            // Ids reach here validated (`pool.peer` of names without `/`), so the id is a
            // safe directory name.
            let mut config = self.template.clone();
            config.id = peer_id.to_string();
            config.data_dir = self.root.join(peer_id);
            let handle = peer::start(config)
                .await
                .map_err(|e| ProvisionError::new(peer_id, e))?;
            let out = address(peer_id, &handle, protocol);
            tracing::info!(event = "CLUSTER.PEER.PROVISIONED", peer = peer_id, addr = %handle.addr());
            started.insert(peer_id.to_string(), handle);
            Ok(out)
        })
    }
}
