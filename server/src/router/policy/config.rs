//! Settings of the policy engine.

use std::sync::Arc;
use std::time::Duration;

use super::provision::PeerProvisioner;

/// How the router runs availability policies (part of [`RouterConfig`](crate::RouterConfig)).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// let mut config = mictlanx_server::RouterConfig::new("router-0", vec![]);
/// config.policy.eval_interval = Duration::from_millis(100);
/// assert_eq!(config.policy.window, Duration::from_secs(300));
/// ```
#[derive(Debug, Clone)]
pub struct PolicyConfig {
    /// How often every waiting policy is evaluated (they are also evaluated on each read of
    /// a ball or bucket they name). Default 5 s.
    pub eval_interval: Duration,
    /// The sliding window of the access statistics (`ACCESS_FREQUENCY`, `ACCESS_COUNT`).
    /// Default 5 min.
    pub window: Duration,
    /// Chunk copies run at once per policy. Default 4.
    pub copy_concurrency: usize,
    /// How long a replication waits for a `where` peer to come up (a peer just started by
    /// the provisioner needs its first probe). Default 30 s.
    pub peer_ready_timeout: Duration,
    /// Policies a router holds at most. Default 1000.
    pub max_policies: usize,
    /// Peers one policy may ask the provisioner to start. Default 16.
    pub max_provisioned_per_policy: usize,
    /// Balls whose reads are counted at once; reads of further balls are not counted until
    /// old ones leave the window (bounded memory). Default 100 000.
    pub max_tracked_balls: usize,
    /// Starts declared peers the router does not know (elastic); `None` refuses them.
    pub provisioner: Option<Arc<dyn PeerProvisioner>>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            eval_interval: Duration::from_secs(5),
            window: Duration::from_secs(300),
            copy_concurrency: 4,
            peer_ready_timeout: Duration::from_secs(30),
            max_policies: 1000,
            max_provisioned_per_policy: 16,
            max_tracked_balls: 100_000,
            provisioner: None,
        }
    }
}
