//! The elastic hook: how a router starts a peer that a policy declares and nobody runs yet.

use std::fmt;

use futures::future::BoxFuture;
use mictlanx::uri::NodeAddress;

/// Starts peers on demand for availability policies.
///
/// A router with a provisioner accepts policies whose `available-resources` name peers it
/// does not know: it asks the provisioner for each missing `pool.peer` id, registers the
/// address it gets back, and probes it like any other peer. Without one, such a policy is
/// refused (400). [`LocalCluster`](crate::LocalCluster) (and so `mictlanx-server cluster`
/// and `mictlanx up`) provides one that starts peers in the same process.
///
/// # Examples
///
/// ```
/// use futures::future::BoxFuture;
/// use mictlanx::uri::{NodeAddress, Protocol};
/// use mictlanx_server::router::{PeerProvisioner, ProvisionError};
///
/// /// Peers that already run on known ports, "started" by naming them.
/// #[derive(Debug)]
/// struct Fixed(u16);
///
/// impl PeerProvisioner for Fixed {
///     fn provision<'a>(&'a self, peer_id: &'a str) -> BoxFuture<'a, Result<NodeAddress, ProvisionError>> {
///         Box::pin(async move {
///             Ok(NodeAddress::new("127.0.0.1", Some(self.0), Protocol::Http).with_id(peer_id))
///         })
///     }
/// }
/// ```
pub trait PeerProvisioner: Send + Sync + fmt::Debug {
    /// Starts a peer whose id is `peer_id` and returns its address (with that id).
    fn provision<'a>(
        &'a self,
        peer_id: &'a str,
    ) -> BoxFuture<'a, Result<NodeAddress, ProvisionError>>;
}

/// Why a peer could not be started.
#[derive(Debug, thiserror::Error)]
#[error("cannot start peer {peer_id}: {reason}")]
pub struct ProvisionError {
    /// The peer asked for.
    pub peer_id: String,
    /// Why.
    pub reason: String,
}

impl ProvisionError {
    /// An error for `peer_id`.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = mictlanx_server::router::ProvisionError::new("pool-1.peer-1", "no space");
    /// assert_eq!(e.to_string(), "cannot start peer pool-1.peer-1: no space");
    /// ```
    pub fn new(peer_id: impl Into<String>, reason: impl fmt::Display) -> Self {
        Self {
            peer_id: peer_id.into(),
            reason: reason.to_string(),
        }
    }
}
