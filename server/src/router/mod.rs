//! The router: MictlanX's client-facing API (R1–R13), in front of the storage peers.
//!
//! The router places `rf` replicas of each key on the healthy peers with the lowest
//! projected disk use, streams each upload to all of them at once, reads from one replica and
//! fails over to the next (verifying the bytes, so a corrupt replica is skipped), and merges
//! the peers' listings. It holds no durable state: the peers it knows come from its
//! configuration and `POST /api/v4/xpeers`, and its replica map is rebuilt from the peers'
//! own listings, so a restarted router, or a second one beside it, serves every ball.
//!
//! # Examples
//!
//! ```no_run
//! use mictlanx::uri::parse_peers;
//! use mictlanx_server::router;
//! use mictlanx_server::RouterConfig;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let peers = parse_peers("mictlanx://peer-0@127.0.0.1:25000?protocol=http")?;
//! let handle = router::start(RouterConfig::new("router-0", peers)).await?;
//! println!("router on {}", handle.base_url());
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! Module map: `peers` (registry and health), `probe` (background loops), `peer_client`
//! (the peer API), `replicas` and `lookup` (who holds what, at which version), `placement`
//! (where replicas go: rendezvous order), `tasks` (pending uploads), `fanout` (one body to N
//! peers), `copy` (one replica to another peer), `read` (verified failover reads of the
//! newest version), `listing` (merged listings), `policy` (availability policies),
//! `headers`, `handlers`, `routes`. Versions and tombstones: `crate::version` and
//! `docs/consistency.md`.

mod bucket_pages;
mod copy;
mod fanout;
mod handlers;
mod headers;
mod listing;
mod lookup;
mod peer_client;
mod peers;
mod placement;
mod policy;
mod probe;
mod read;
mod repair;
mod replicas;
mod resume;
mod routes;
mod state;
mod tasks;

use std::net::SocketAddr;

use tokio_util::sync::CancellationToken;

use crate::config::RouterConfig;
use crate::serve::{self, ServerHandle};

pub(crate) use peers::valid_peer_id;
pub use policy::{PeerProvisioner, PolicyConfig, ProvisionError};
pub use routes::app;
pub use state::RouterState;

/// Why a router could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The listening address could not be bound.
    #[error("cannot bind the router to {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP client for the peers could not be built.
    #[error("cannot build the HTTP client for the peers: {0}")]
    Client(#[source] reqwest::Error),
    /// The TLS certificate, key or CA file could not be loaded.
    #[error("router TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    /// The bound listener could not be served.
    #[error("cannot serve the router: {0}")]
    Serve(#[source] std::io::Error),
}

/// Starts a router: binds `config.bind`, serves [`app`], and runs the background loops
/// (peer probes every `probe_interval`, replica-map sync of peers that come up, expiry of
/// abandoned uploads, repair every `repair_interval`), which stop with the returned handle. With `config.auth` set, every
/// request passes the token check first; with `config.tls`, it serves HTTPS.
///
/// The router answers at once; its peers count as down until their first probe succeeds
/// (poll `GET /health` for `peers_up`).
///
/// # Errors
///
/// [`StartError`] if the address cannot be bound, the TLS files cannot be loaded or the
/// HTTP client cannot be built.
pub async fn start(config: RouterConfig) -> Result<ServerHandle, StartError> {
    let addr = config.bind;
    let tls = config
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let auth = config.auth.clone();
    let limits = config.connections;
    let state = RouterState::new(config)?;
    let listener = serve::bind(addr).map_err(|source| StartError::Bind { addr, source })?;
    let stop = CancellationToken::new();
    let app = crate::auth::layer(app(state.clone()), crate::auth::Service::Router, auth);
    let handle =
        serve::spawn_with(listener, app, stop.clone(), tls, limits).map_err(StartError::Serve)?;
    policy::spawn_loop(state.clone(), stop.clone());
    repair::spawn_loop(state.clone(), stop.clone());
    probe::spawn_loops(state.clone(), stop);
    let (_, peers) = state.peers.counts();
    tracing::info!(event = "ROUTER.START", router_id = state.id(), addr = %handle.addr(), peers);
    Ok(handle)
}
