//! `LocalCluster`: a router and N peers in one process, on loopback, for tests, examples,
//! benches and `mictlanx up`. Its peers, those availability policies started included, are
//! remembered in `DATA_DIR/cluster.json` ([`state`]) and all come back at the next start.

pub(crate) mod state;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mictlanx::uri::{NodeAddress, Protocol};

use crate::auth::{AuthConfig, ClusterToken, TokenSet};
use crate::config::{PeerConfig, RouterConfig};
use crate::elastic::LocalProvisioner;
use crate::serve::{ConnectionLimits, ServerHandle};
use crate::tls::{TlsError, TlsFiles};
use crate::{peer, router};
use state::{ClusterState, PeerRecord, StateFile};

pub use state::ClusterStateError;

/// How long [`LocalClusterBuilder::start`] waits for the router to see every peer.
const READY_TIMEOUT: Duration = Duration::from_secs(15);

/// Why a cluster could not start or a member could not (re)start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClusterError {
    /// The data directory could not be created or read.
    #[error("cannot create or read the cluster data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A peer did not start.
    #[error("peer {id} did not start: {source}")]
    Peer {
        /// The peer's id.
        id: String,
        /// Why.
        source: peer::StartError,
    },
    /// The router did not start.
    #[error("router {id} did not start: {source}")]
    Router {
        /// The router's id.
        id: String,
        /// Why.
        source: router::StartError,
    },
    /// The router did not report every peer up in time.
    #[error(
        "the router did not see {expected} peers up within {0:?}",
        READY_TIMEOUT
    )]
    NotReady {
        /// Peers expected up.
        expected: usize,
    },
    /// No peer with that index.
    #[error("no peer with index {0}")]
    NoSuchPeer(usize),
    /// No router with that index.
    #[error("no router with index {0}")]
    NoSuchRouter(usize),
    /// The CA file given to [`LocalClusterBuilder::tls`] could not be used.
    #[error("cluster TLS: {0}")]
    Tls(#[from] TlsError),
    /// `cluster.json`, the list of the cluster's peers, could not be read or written.
    #[error(transparent)]
    State(#[from] ClusterStateError),
    /// The HTTP client that checks the router's health could not be built.
    #[error("cannot build the cluster's health client: {0}")]
    HealthClient(#[source] reqwest::Error),
}

/// Builds a [`LocalCluster`].
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = mictlanx_server::LocalCluster::builder().peers(3).start().await?;
/// println!("export MICTLANX_URI='{}'", cluster.uri());
/// cluster.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct LocalClusterBuilder {
    peers: usize,
    data_dir: Option<PathBuf>,
    router_port: u16,
    /// `None`: remembered peers keep theirs, new ones get 10 GB (see [`state::plan`]).
    capacity: Option<u64>,
    probe_interval: Duration,
    verify_limit: Option<u64>,
    inline_limit: Option<u64>,
    policy_interval: Option<Duration>,
    policy_window: Option<Duration>,
    /// `None`: the router's default; `Some(None)`: no repair.
    repair_interval: Option<Option<Duration>>,
    auth: AuthConfig,
    tls: Option<ClusterTls>,
    connections: Option<ConnectionLimits>,
}

/// The TLS files of a cluster: one certificate for every member (they all listen on
/// 127.0.0.1), and the CA that signed it.
#[derive(Debug, Clone)]
struct ClusterTls {
    files: TlsFiles,
    ca_file: PathBuf,
}

impl Default for LocalClusterBuilder {
    fn default() -> Self {
        Self {
            peers: 3,
            data_dir: None,
            router_port: 0,
            capacity: None,
            probe_interval: Duration::from_millis(250),
            verify_limit: None,
            inline_limit: None,
            policy_interval: None,
            policy_window: None,
            repair_interval: None,
            auth: AuthConfig::default(),
            tls: None,
            connections: None,
        }
    }
}

impl LocalClusterBuilder {
    /// Number of peers (default 3): `peer-0` .. `peer-{n-1}`.
    ///
    /// On a data directory used before, every peer its `cluster.json` remembers starts
    /// too, the ones availability policies started included, even when that is more than
    /// `n`: a peer may hold the only copy of a ball, so none is ever dropped (a warning says
    /// so when more `peer-N` are remembered than asked for).
    pub fn peers(mut self, n: usize) -> Self {
        self.peers = n;
        self
    }

    /// Where the peers keep their data (`DIR/peer-0`, ..., `DIR/<id>` for elastic peers)
    /// and where `DIR/cluster.json` lists them. Default: a temporary directory removed when
    /// the cluster is dropped.
    pub fn data_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.data_dir = Some(dir.into());
        self
    }

    /// The router's port on 127.0.0.1 (default 0: any free port).
    pub fn router_port(mut self, port: u16) -> Self {
        self.router_port = port;
        self
    }

    /// Capacity of each peer in bytes, remembered ones included. Default: each remembered
    /// peer keeps the capacity `cluster.json` records, new ones get that of the first
    /// remembered peer, else 10 GB.
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// How often the router probes the peers (default 250 ms).
    pub fn probe_interval(mut self, every: Duration) -> Self {
        self.probe_interval = every;
        self
    }

    /// Largest object the router (and the peers) buffer to verify before sending; larger
    /// ones are verified while streaming. Default: the configs' defaults (64 MiB).
    pub fn verify_before_send_limit(mut self, bytes: u64) -> Self {
        self.verify_limit = Some(bytes);
        self
    }

    /// Objects up to this size are kept in the peers' databases instead of files (default
    /// [`PeerConfig`]'s, 64 KiB; 0: every object gets a file, e.g. for tests that damage
    /// stored files).
    pub fn inline_limit(mut self, bytes: u64) -> Self {
        self.inline_limit = Some(bytes);
        self
    }

    /// How often the router evaluates availability policies (default: the router's, 5 s).
    pub fn policy_interval(mut self, every: Duration) -> Self {
        self.policy_interval = Some(every);
        self
    }

    /// The sliding window of the router's access statistics (default: the router's, 5 min).
    pub fn policy_window(mut self, window: Duration) -> Self {
        self.policy_window = Some(window);
        self
    }

    /// How often the router's repair loop runs (`None`: never; default: the router's,
    /// 30 s). See `docs/consistency.md`.
    pub fn repair_interval(mut self, every: Option<Duration>) -> Self {
        self.repair_interval = Some(every);
        self
    }

    /// Everything at once: tokens, cluster token and `/metrics` protection for the router
    /// and every peer (replaces what [`auth_tokens`](Self::auth_tokens),
    /// [`cluster_token`](Self::cluster_token) and [`protect_metrics`](Self::protect_metrics)
    /// set before).
    pub fn auth(mut self, auth: AuthConfig) -> Self {
        self.auth = auth;
        self
    }

    /// Timeouts and connection cap of the router and every peer (default:
    /// [`ConnectionLimits::default`]).
    pub fn connection_limits(mut self, limits: ConnectionLimits) -> Self {
        self.connections = Some(limits);
        self
    }

    /// Tokens the router and the peers accept (default: none, everything open). Without a
    /// [`cluster_token`](Self::cluster_token), the members share a random one.
    pub fn auth_tokens(mut self, tokens: TokenSet) -> Self {
        self.auth.tokens = Some(std::sync::Arc::new(tokens));
        self
    }

    /// The cluster token: the peers take changes only with it and the routers send it.
    pub fn cluster_token(mut self, token: ClusterToken) -> Self {
        self.auth.cluster_token = Some(token);
        self
    }

    /// Whether `/metrics` needs a `read` token (default: open).
    pub fn protect_metrics(mut self, protect: bool) -> Self {
        self.auth.protect_metrics = protect;
        self
    }

    /// Serve HTTPS on the router and every peer with `files` (a certificate valid for
    /// `127.0.0.1`); the router, and the cluster's own readiness checks, trust `ca_file`.
    /// The cluster's URIs then say `https`.
    ///
    /// ```no_run
    /// use mictlanx_server::auth::{ClusterToken, Role, TokenSet};
    /// use mictlanx_server::tls::TlsFiles;
    /// use mictlanx_server::LocalCluster;
    ///
    /// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = LocalCluster::builder()
    ///     .auth_tokens(TokenSet::load("tokens".as_ref())?)
    ///     .cluster_token(ClusterToken::new("cluster-token-0123456789")?)
    ///     .tls(TlsFiles::new("cert.pem", "key.pem"), "ca.pem")
    ///     .start()
    ///     .await?;
    /// assert!(cluster.uri().contains("protocol=https"));
    /// # Ok(()) }
    /// ```
    pub fn tls(mut self, files: TlsFiles, ca_file: impl Into<PathBuf>) -> Self {
        self.tls = Some(ClusterTls {
            files,
            ca_file: ca_file.into(),
        });
        self
    }

    /// Starts the peers, then the router, and waits until the router sees every peer up.
    ///
    /// # Errors
    ///
    /// [`ClusterError`] when a directory, a port, a database or the TLS files cannot be had,
    /// when `cluster.json` is damaged ([`ClusterError::State`]: nothing is started then, so
    /// that no peer is forgotten), or when the router does not see the peers within 15 s.
    pub async fn start(mut self) -> Result<LocalCluster, ClusterError> {
        if self.auth.tokens.is_some() && self.auth.cluster_token.is_none() {
            // Peers with a token file refuse the router's calls unless it sends the cluster
            // token; members of one process can share a random one nobody else sees.
            let secret = hex::encode(rand::random::<[u8; 32]>());
            let token = ClusterToken::new(&secret).expect("64 hex digits are a valid token");
            self.auth.cluster_token = Some(token);
        }
        let health_client = self.health_client()?;
        let (root, tempdir) = match &self.data_dir {
            Some(dir) => (dir.clone(), None),
            None => {
                let t = tempfile::Builder::new()
                    .prefix("mictlanx-cluster-")
                    .tempdir()
                    .map_err(|source| ClusterError::DataDir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        std::fs::create_dir_all(&root).map_err(|source| ClusterError::DataDir {
            path: root.clone(),
            source,
        })?;

        let loaded = ClusterState::load(&root)?;
        let remembered = match &loaded {
            Some(state) => state.peers.clone(),
            // A directory from before `cluster.json`: its peer folders.
            None => {
                let capacity = self.capacity.unwrap_or(state::DEFAULT_CAPACITY);
                state::adopt_folders(&root, capacity).map_err(|source| ClusterError::DataDir {
                    path: root.clone(),
                    source,
                })?
            }
        };
        let plan = state::plan(&remembered, self.peers, self.capacity);
        log_remembered(&remembered, self.peers, &root);
        let state_file = Arc::new(StateFile::new(
            root.clone(),
            loaded.unwrap_or_else(ClusterState::new),
        ));
        // Written before any peer starts: whatever takes data from now on is listed.
        state_file.record(plan.peers.iter().cloned()).await?;

        // Every peer, including those policies start later, is configured alike.
        let mut template = PeerConfig::new("peer", root.join("peer"));
        template.capacity = plan.capacity;
        if let Some(limit) = self.verify_limit {
            template.verify_before_send_limit = limit;
        }
        if let Some(limit) = self.inline_limit {
            template.inline_limit = limit;
        }
        template.auth = self.auth.clone();
        if let Some(limits) = self.connections {
            template.connections = limits;
        }
        template.tls = self.tls.as_ref().map(|t| t.files.clone());
        let provisioner = Arc::new(LocalProvisioner::new(
            root.clone(),
            template.clone(),
            state_file,
        ));
        let mut peers = Vec::with_capacity(plan.peers.len());
        for record in &plan.peers {
            if record.elastic {
                provisioner
                    .restore(record)
                    .await
                    .map_err(|source| ClusterError::Peer {
                        id: record.id.clone(),
                        source,
                    })?;
                continue;
            }
            let mut config = template.clone();
            config.id = record.id.clone();
            config.data_dir = root.join(&record.id);
            config.capacity = record.capacity;
            config.bind = SocketAddr::from(([127, 0, 0, 1], record.port.unwrap_or(0)));
            let handle = start_peer(config.clone()).await?;
            config.bind = handle.addr();
            peers.push(PeerSlot {
                config,
                handle: Some(handle),
            });
        }

        let mut cluster = LocalCluster {
            health_client,
            routers: Vec::new(),
            peers,
            provisioner,
            root,
            builder: self,
            _tempdir: tempdir,
        };
        let port = cluster.builder.router_port;
        let router = cluster.start_router("router-0".to_string(), port).await?;
        cluster.routers.push(router);
        cluster.wait_ready(0).await?;
        Ok(cluster)
    }
}

/// Says when a start runs more peers than asked for, because `cluster.json` remembers them.
fn log_remembered(remembered: &[PeerRecord], wanted: usize, root: &Path) {
    let base = remembered.iter().filter(|p| !p.elastic).count();
    let elastic = remembered.len() - base;
    if base > wanted {
        tracing::warn!(
            event = "CLUSTER.PEERS.KEPT",
            asked = wanted,
            remembered = base,
            elastic,
            state = %ClusterState::path(root).display(),
            "more peers remembered than asked for: all start (one may hold a ball's only copy)"
        );
    } else if elastic > 0 {
        tracing::info!(
            event = "CLUSTER.PEERS.RESTORED",
            elastic,
            state = %ClusterState::path(root).display(),
            "peers started by availability policies come back"
        );
    }
}

impl LocalClusterBuilder {
    /// `http` or `https`.
    fn protocol(&self) -> Protocol {
        if self.tls.is_some() {
            Protocol::Https
        } else {
            Protocol::Http
        }
    }

    /// The client that polls `/health`: it trusts the cluster's CA.
    fn health_client(&self) -> Result<reqwest::Client, ClusterError> {
        let mut builder = reqwest::Client::builder().no_proxy();
        if let Some(tls) = &self.tls {
            for ca in crate::tls::load_certificates(&tls.ca_file)? {
                let cert = reqwest::Certificate::from_der(&ca).map_err(|e| TlsError::Pem {
                    what: "certificate",
                    path: tls.ca_file.clone(),
                    reason: e.to_string(),
                })?;
                builder = builder.add_root_certificate(cert);
            }
        }
        builder.build().map_err(ClusterError::HealthClient)
    }
}

struct PeerSlot {
    config: PeerConfig,
    handle: Option<ServerHandle>,
}

struct RouterSlot {
    id: String,
    /// Kept when the router is killed, so it can come back on the same port.
    addr: SocketAddr,
    handle: Option<ServerHandle>,
}

/// A router and N peers running in this process on 127.0.0.1.
///
/// Peers can be stopped (as by a crash) and restarted on the same port and data, and more
/// routers can be started over the same peers, which is what the fault tests need.
pub struct LocalCluster {
    health_client: reqwest::Client,
    routers: Vec<RouterSlot>,
    peers: Vec<PeerSlot>,
    /// Starts the peers that availability policies declare (elastic).
    provisioner: Arc<LocalProvisioner>,
    root: PathBuf,
    builder: LocalClusterBuilder,
    _tempdir: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for LocalCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCluster")
            .field("uri", &self.uri())
            .field("peers", &self.peers.len())
            .field("data_dir", &self.root)
            .finish()
    }
}

impl LocalCluster {
    /// A builder with the defaults: 3 peers, a temporary directory, any free port.
    pub fn builder() -> LocalClusterBuilder {
        LocalClusterBuilder::default()
    }

    /// The `mictlanx://` URI of every running router, for `MICTLANX_URI`.
    pub fn uri(&self) -> String {
        let nodes: Vec<NodeAddress> = self
            .routers
            .iter()
            .map(|r| {
                NodeAddress::new("127.0.0.1", Some(r.addr.port()), self.builder.protocol())
                    .with_id(r.id.clone())
            })
            .collect();
        mictlanx::uri::build_uri(&nodes)
    }

    /// `export MICTLANX_URI='mictlanx://...'`: the line to paste in a shell. The URI is
    /// single-quoted, since its `?` and `&` mean something to the shell.
    ///
    /// # Examples
    ///
    /// ```no_run
    /// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let cluster = mictlanx_server::LocalCluster::builder().start().await?;
    /// assert!(cluster.export_line().starts_with("export MICTLANX_URI='mictlanx://"));
    /// # Ok(()) }
    /// ```
    pub fn export_line(&self) -> String {
        format!("export MICTLANX_URI={}", shell_quote(&self.uri()))
    }

    /// Base URL of the first router, `http://127.0.0.1:PORT` (`https` with TLS).
    pub fn router_url(&self) -> String {
        self.router_urls().into_iter().next().unwrap_or_default()
    }

    /// Base URLs of every router.
    pub fn router_urls(&self) -> Vec<String> {
        self.routers
            .iter()
            .map(|r| format!("{}://{}", self.scheme(), r.addr))
            .collect()
    }

    /// Address of the first router.
    pub fn router_addr(&self) -> Option<SocketAddr> {
        self.routers.first().map(|r| r.addr)
    }

    /// Base URLs of the peers, running or not, by index.
    pub fn peer_urls(&self) -> Vec<String> {
        self.peers
            .iter()
            .map(|p| format!("{}://{}", self.scheme(), p.config.bind))
            .collect()
    }

    /// `http`, or `https` when the cluster runs with TLS.
    pub fn scheme(&self) -> &'static str {
        self.builder.protocol().as_str()
    }

    /// Ids of the peers (`peer-0`, ...).
    pub fn peer_ids(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.config.id.clone()).collect()
    }

    /// Data directory of peer `index`.
    pub fn peer_data_dir(&self, index: usize) -> Option<&Path> {
        self.peers.get(index).map(|p| p.config.data_dir.as_path())
    }

    /// The cluster's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.root
    }

    /// `DATA_DIR/cluster.json`: every peer of the cluster, for the next start.
    pub fn state_file(&self) -> PathBuf {
        ClusterState::path(&self.root)
    }

    /// Stops peer `index` at once, cutting its connections, as a crash would.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchPeer`] for an unknown index.
    pub async fn kill_peer(&mut self, index: usize) -> Result<(), ClusterError> {
        let slot = self
            .peers
            .get_mut(index)
            .ok_or(ClusterError::NoSuchPeer(index))?;
        if let Some(handle) = slot.handle.take() {
            handle.abort().await;
        }
        Ok(())
    }

    /// Starts peer `index` again on its port and data directory.
    ///
    /// # Errors
    ///
    /// [`ClusterError`] when the index is unknown or the peer cannot start.
    pub async fn restart_peer(&mut self, index: usize) -> Result<(), ClusterError> {
        let slot = self
            .peers
            .get_mut(index)
            .ok_or(ClusterError::NoSuchPeer(index))?;
        if let Some(handle) = slot.handle.take() {
            handle.shutdown().await;
        }
        slot.handle = Some(start_peer(slot.config.clone()).await?);
        Ok(())
    }

    /// Starts another router over the same peers and returns its base URL.
    ///
    /// # Errors
    ///
    /// [`ClusterError`] when it cannot start or does not see the running peers.
    pub async fn add_router(&mut self) -> Result<String, ClusterError> {
        let router = self
            .start_router(format!("router-{}", self.routers.len()), 0)
            .await?;
        let url = format!("{}://{}", self.scheme(), router.addr);
        self.routers.push(router);
        self.wait_ready(self.routers.len() - 1).await?;
        Ok(url)
    }

    /// Stops router `index` at once, cutting its connections, as a crash would. Its URL
    /// stays in [`LocalCluster::uri`] (clients keep it and must fail over), and
    /// [`LocalCluster::restart_router`] brings it back on the same port.
    ///
    /// # Errors
    ///
    /// [`ClusterError::NoSuchRouter`] for an unknown index.
    pub async fn kill_router(&mut self, index: usize) -> Result<(), ClusterError> {
        let slot = self
            .routers
            .get_mut(index)
            .ok_or(ClusterError::NoSuchRouter(index))?;
        if let Some(handle) = slot.handle.take() {
            handle.abort().await;
        }
        Ok(())
    }

    /// Stops router `index` and starts a fresh one (no state carried over) on the same port.
    ///
    /// # Errors
    ///
    /// [`ClusterError`] when it cannot start again.
    pub async fn restart_router(&mut self, index: usize) -> Result<(), ClusterError> {
        if index >= self.routers.len() {
            return Err(ClusterError::NoSuchRouter(index));
        }
        let old = self.routers.remove(index);
        let port = old.addr.port();
        if let Some(handle) = old.handle {
            handle.shutdown().await;
        }
        let router = self.start_router(old.id, port).await?;
        self.routers.insert(index, router);
        self.wait_ready(index).await
    }

    /// Stops every router and peer gracefully. The temporary directory, if any, is removed.
    pub async fn shutdown(mut self) {
        for r in self.routers.drain(..) {
            if let Some(handle) = r.handle {
                handle.shutdown().await;
            }
        }
        for p in &mut self.peers {
            if let Some(h) = p.handle.take() {
                h.shutdown().await;
            }
        }
        self.provisioner.shutdown().await;
    }

    /// The peers started for availability policies: `(id, base URL)`, sorted by id
    /// (`pool.peer`), those remembered from an earlier run on the same data directory
    /// included. They stop with the cluster.
    pub async fn provisioned_peers(&self) -> Vec<(String, String)> {
        self.provisioner.peers().await
    }

    async fn start_router(&self, id: String, port: u16) -> Result<RouterSlot, ClusterError> {
        let mut peers: Vec<NodeAddress> = self
            .peers
            .iter()
            .map(|p| {
                NodeAddress::new(
                    "127.0.0.1",
                    Some(p.config.bind.port()),
                    self.builder.protocol(),
                )
                .with_id(p.config.id.clone())
            })
            .collect();
        // The elastic peers, so that a new or restarted router places on them too.
        peers.extend(self.provisioner.addresses().await);
        let mut config = RouterConfig::new(id.clone(), peers);
        config.bind = SocketAddr::from(([127, 0, 0, 1], port));
        config.probe_interval = self.builder.probe_interval;
        if let Some(limit) = self.builder.verify_limit {
            config.verify_buffer_limit = limit;
        }
        if let Some(every) = self.builder.policy_interval {
            config.policy.eval_interval = every;
        }
        if let Some(window) = self.builder.policy_window {
            config.policy.window = window;
        }
        if let Some(every) = self.builder.repair_interval {
            config.repair_interval = every;
        }
        config.policy.provisioner = Some(self.provisioner.clone());
        config.auth = self.builder.auth.clone();
        if let Some(limits) = self.builder.connections {
            config.connections = limits;
        }
        if let Some(tls) = &self.builder.tls {
            config.tls = Some(tls.files.clone());
            config.ca_file = Some(tls.ca_file.clone());
        }
        let handle = router::start(config)
            .await
            .map_err(|source| ClusterError::Router {
                id: id.clone(),
                source,
            })?;
        Ok(RouterSlot {
            id,
            addr: handle.addr(),
            handle: Some(handle),
        })
    }

    /// Polls the router's `/health` until it reports every running peer up.
    async fn wait_ready(&self, router: usize) -> Result<(), ClusterError> {
        let expected = self.peers.iter().filter(|p| p.handle.is_some()).count()
            + self.provisioner.addresses().await.len();
        let Some(slot) = self.routers.get(router) else {
            return Ok(());
        };
        let url = format!("{}://{}/health", self.scheme(), slot.addr);
        let client = &self.health_client;
        let deadline = Instant::now() + READY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(resp) = client.get(&url).send().await {
                let body = resp.bytes().await.unwrap_or_default();
                if let Ok(body) = serde_json::from_slice::<serde_json::Value>(&body) {
                    let up = body.get("peers_up").and_then(|v| v.as_u64()).unwrap_or(0);
                    if up as usize >= expected {
                        return Ok(());
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(ClusterError::NotReady { expected })
    }
}

/// `text` in single quotes for a POSIX shell (a `'` inside becomes `'\''`).
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "'\\''"))
}

async fn start_peer(config: PeerConfig) -> Result<ServerHandle, ClusterError> {
    let id = config.id.clone();
    peer::start(config)
        .await
        .map_err(|source| ClusterError::Peer { id, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_export_line_quotes_the_uri_for_a_shell() {
        let uri = "mictlanx://router-0@127.0.0.1:60666/?protocol=http&api_version=4";
        assert_eq!(
            shell_quote(uri),
            "'mictlanx://router-0@127.0.0.1:60666/?protocol=http&api_version=4'"
        );
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
    }

    #[tokio::test]
    async fn a_cluster_prints_an_export_line_with_its_uri() {
        let cluster = LocalCluster::builder().peers(1).start().await.unwrap();
        let line = cluster.export_line();
        assert_eq!(line, format!("export MICTLANX_URI='{}'", cluster.uri()));
        assert!(line.contains('?'), "{line}");
        assert!(cluster.state_file().is_file());
        cluster.shutdown().await;
    }
}
