//! Configuration of the peer and the router: plain structs with documented defaults.
//! The binary fills them from flags and `MICTLANX_*` variables; `LocalCluster` in code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mictlanx::uri::NodeAddress;

use crate::auth::AuthConfig;
use crate::paging::ListingLimits;
use crate::serve::ConnectionLimits;
use crate::tls::TlsFiles;

/// Configuration of a storage peer.
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Peer id, e.g. `peer-0`.
    pub id: String,
    /// Address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// Where data files and the metadata database live.
    pub data_dir: PathBuf,
    /// Bytes this peer may store; a put beyond it gets 507.
    pub capacity: u64,
    /// How long metadata may wait for its bytes before the pending upload expires.
    pub pending_ttl: Duration,
    /// Objects up to this size are verified against their SHA-256 before a GET answers;
    /// larger ones are verified while streaming and the stream is cut on a mismatch.
    pub verify_before_send_limit: u64,
    /// An upload whose body sends nothing for this long is abandoned (its temp file
    /// removed, its pending record kept so the client can retry).
    pub upload_idle_timeout: Duration,
    /// Objects up to this size are kept in the metadata database instead of a file of their
    /// own (default 64 KiB; 0 turns it off).
    pub inline_limit: u64,
    /// Tokens, cluster token and `/metrics` protection (default: open).
    pub auth: AuthConfig,
    /// Serve HTTPS with this certificate and key (default: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// Listings answered at once, and how long one waits for a slot (default 16, 2 s).
    pub listing: ListingLimits,
    /// Bytes of the filesystem kept free for the metadata database, so that deletes can
    /// always commit (default 64 MiB); the peer's capacity is at most what the filesystem
    /// has free beyond it.
    pub meta_reserve: u64,
    /// How long `/health` says `degraded` after a metadata I/O error (default 1 min).
    pub degraded_hold: Duration,
    /// Tests only: a simulated small disk (see `storage::SimulatedDisk`).
    #[doc(hidden)]
    pub simulated_disk: Option<std::sync::Arc<crate::storage::SimulatedDisk>>,
    /// Header, idle and body timeouts and the connection cap. The body timeout in effect is
    /// at least `upload_idle_timeout`, so that the upload's own rule decides.
    pub connections: ConnectionLimits,
}

impl PeerConfig {
    /// A peer with the defaults: loopback, ephemeral port, 10 GB, pending uploads kept 1 h,
    /// objects up to 64 MiB verified before they are sent, idle uploads dropped after 2 min.
    pub fn new(id: impl Into<String>, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            id: id.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir: data_dir.into(),
            capacity: 10_000_000_000,
            pending_ttl: Duration::from_secs(3600),
            verify_before_send_limit: 64 * 1024 * 1024,
            upload_idle_timeout: crate::storage::DEFAULT_UPLOAD_IDLE_TIMEOUT,
            inline_limit: crate::storage::DEFAULT_INLINE_LIMIT,
            auth: AuthConfig::default(),
            tls: None,
            listing: ListingLimits::default(),
            meta_reserve: crate::storage::DEFAULT_META_RESERVE,
            degraded_hold: crate::storage::DEFAULT_DEGRADED_HOLD,
            simulated_disk: None,
            connections: ConnectionLimits::default(),
        }
    }
}

impl PeerConfig {
    /// The data directory of peer `id` when none is given: `./mictlanx-data/<id>`, so that
    /// peers started side by side with different ids never share one. `None` when the id
    /// cannot name a directory (empty, `.`, `..`, or characters a peer id may not have).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::PathBuf;
    /// use mictlanx_server::PeerConfig;
    ///
    /// assert_eq!(
    ///     PeerConfig::default_data_dir("peer-7"),
    ///     Some(PathBuf::from("./mictlanx-data/peer-7"))
    /// );
    /// assert_eq!(PeerConfig::default_data_dir("../etc"), None);
    /// ```
    pub fn default_data_dir(id: &str) -> Option<PathBuf> {
        crate::cluster::state::is_folder_id(id).then(|| PathBuf::from("./mictlanx-data").join(id))
    }
}

/// Configuration of a router.
#[derive(Debug, Clone)]
pub struct RouterConfig {
    /// Router id, e.g. `router-0`.
    pub id: String,
    /// Address to bind; port 0 picks a free port.
    pub bind: SocketAddr,
    /// The peers it starts with (more can be added with `POST /api/v4/xpeers`).
    pub peers: Vec<NodeAddress>,
    /// How often each peer is probed.
    pub probe_interval: Duration,
    /// Timeout of one probe.
    pub probe_timeout: Duration,
    /// Timeout to connect to a peer.
    pub peer_connect_timeout: Duration,
    /// A peer that sends nothing for this long during a read or an upload is given up on
    /// (the read fails over to the next replica).
    pub peer_idle_timeout: Duration,
    /// Upload task groups not completed in this time expire.
    pub task_ttl: Duration,
    /// Replica reads up to this size are buffered and checked against their SHA-256 before
    /// anything is sent, so a corrupt replica can be skipped; larger ones stream and are cut
    /// on a mismatch.
    pub verify_buffer_limit: u64,
    /// In-flight pieces buffered per replica while an upload fans out (bounded memory).
    pub fanout_buffer_pieces: usize,
    /// How many peers of a key's placement order a read consults for the newest version
    /// (at least 1; more when a key was written with a larger replication factor is not
    /// known before the first answer). With the default 3, a key written with `rf` up to 2
    /// is found, in its newest version, even when one of its places was down at the write.
    pub read_width: usize,
    /// How many places besides the one read are asked for their version along with a read
    /// (the rest of `read_width` only when the first place has no copy to serve). The
    /// default, 2, asks every place of the default `read_width`. 1 halves the extra calls
    /// and still catches a put or delete one replica missed (those reach the next place of
    /// the order), but not a disable or metadata update (those reach only the holders).
    pub read_survey: usize,
    /// How often the repair loop compares every key's replicas and restores missing or
    /// stale ones (`None`: never). A round also starts when a peer comes up.
    pub repair_interval: Option<Duration>,
    /// Repair copies are paced to this many bytes per second, so that they leave room for
    /// client traffic.
    pub repair_bytes_per_sec: u64,
    /// How long until a write is no longer on its way: a tombstone applied by every
    /// registered peer is collected once its delete is this old, and the chunks of a
    /// multi-chunk put that never completed once its last chunk is this old.
    pub settle_time: Duration,
    /// Availability policies: evaluation interval, statistics window, elastic provisioner.
    pub policy: crate::router::PolicyConfig,
    /// Tokens accepted from clients, the cluster token sent to the peers, and `/metrics`
    /// protection (default: open).
    pub auth: AuthConfig,
    /// Serve HTTPS with this certificate and key (default: plain HTTP).
    pub tls: Option<TlsFiles>,
    /// PEM bundle of the CAs trusted for `https` peers, besides the public roots.
    pub ca_file: Option<PathBuf>,
    /// Listings answered at once, and how long one waits for a slot (default 16, 2 s).
    pub listing: ListingLimits,
    /// Header, idle and body timeouts and the connection cap of the client-facing side.
    pub connections: ConnectionLimits,
}

impl RouterConfig {
    /// A router with the defaults: loopback, ephemeral port, probes every 2 s.
    pub fn new(id: impl Into<String>, peers: Vec<NodeAddress>) -> Self {
        Self {
            id: id.into(),
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            peers,
            probe_interval: Duration::from_secs(2),
            probe_timeout: Duration::from_secs(2),
            peer_connect_timeout: Duration::from_secs(3),
            peer_idle_timeout: Duration::from_secs(30),
            task_ttl: Duration::from_secs(3600),
            verify_buffer_limit: 64 * 1024 * 1024,
            fanout_buffer_pieces: 8,
            read_width: 3,
            read_survey: 2,
            repair_interval: Some(Duration::from_secs(30)),
            repair_bytes_per_sec: 64 * 1024 * 1024,
            settle_time: Duration::from_secs(3600),
            policy: crate::router::PolicyConfig::default(),
            auth: AuthConfig::default(),
            tls: None,
            ca_file: None,
            listing: ListingLimits::default(),
            connections: ConnectionLimits::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_peer_id_has_its_own_default_data_dir() {
        let a = PeerConfig::default_data_dir("peer-0").unwrap();
        let b = PeerConfig::default_data_dir("peer-7").unwrap();
        assert_ne!(a, b);
        assert_eq!(b, PathBuf::from("./mictlanx-data/peer-7"));
        assert_eq!(
            PeerConfig::default_data_dir("pool-1.peer-1"),
            Some(PathBuf::from("./mictlanx-data/pool-1.peer-1"))
        );
        for bad in ["", ".", "..", "a/b", "a\\b", "x y"] {
            assert_eq!(PeerConfig::default_data_dir(bad), None, "{bad:?}");
        }
    }
}
