//! The storage peer: the HTTP API of MictlanX peers (server reference §4) over a
//! [`Store`].
//!
//! [`start`] is the one entry point the binary and `LocalCluster` use; [`app`] builds the
//! router alone, for tests that drive it without a socket.
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use mictlanx_server::{peer, PeerConfig};
//!
//! let handle = peer::start(PeerConfig::new("peer-0", "/tmp/peer-0")).await?;
//! println!("peer-0 on {}", handle.base_url());
//! handle.shutdown().await;
//! # Ok(())
//! # }
//! ```

mod data;
mod input;
mod listings;
mod metadata;
mod state;
mod stats;
mod sweeper;

use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::DefaultBodyLimit;
use axum::routing::{delete, get, post};
use axum::Router;
use tokio_util::sync::CancellationToken;

pub use state::PeerState;

use crate::auth;
use crate::config::PeerConfig;
use crate::error::{route_not_found, ApiError};
use crate::metrics::{track, Metrics};
use crate::serve::{self, ServerHandle};
use crate::storage::{OpenError, Store, StoreConfig};

/// Why a peer could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// The data directory or the metadata database could not be opened.
    #[error("peer storage: {0}")]
    Storage(#[from] OpenError),
    /// The listen address could not be bound.
    #[error("cannot bind {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The TLS certificate or key could not be loaded.
    #[error("peer TLS: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Starts a peer: opens its storage (creating the directories and recovering from a crash),
/// binds `config.bind`, serves the API and runs the pending-upload sweeper until the handle's
/// stop token is cancelled. With `config.auth` set, every request passes the token check
/// first; with `config.tls`, it serves HTTPS.
///
/// # Errors
///
/// [`StartError::Storage`] when the data directory or database cannot be opened (for
/// example, another process is using it); [`StartError::Bind`] when the address is taken;
/// [`StartError::Tls`] when the certificate or key cannot be loaded.
pub async fn start(config: PeerConfig) -> Result<ServerHandle, StartError> {
    let tls = config
        .tls
        .as_ref()
        .map(crate::tls::server_config)
        .transpose()?;
    let store = Store::open(StoreConfig::from(&config)).await?;
    let bind = |source| StartError::Bind {
        addr: config.bind,
        source,
    };
    let listener = serve::bind(config.bind).map_err(bind)?;
    let state = PeerState::new(
        config.id.clone(),
        store.clone(),
        Metrics::new("mictlanx_peer"),
    )
    .with_listing_limits(config.listing);
    let app = auth::layer(app(state), auth::Service::Peer, config.auth.clone());
    let mut limits = config.connections;
    // The upload's idle rule (which keeps its pending record) must not be preempted.
    limits.body_timeout = limits.body_timeout.max(config.upload_idle_timeout);
    let handle =
        serve::spawn_with(listener, app, CancellationToken::new(), tls, limits).map_err(bind)?;
    sweeper::spawn(store.downgrade(), handle.stop_token());
    tracing::info!(event = "PEER.STARTED", peer_id = %config.id, addr = %handle.addr(), data_dir = %config.data_dir.display());
    Ok(handle)
}

/// Milliseconds since `started`, for the `response_time` log field and `service_time`.
fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// 405 in our error shape (axum's own has an empty body).
async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed on this route",
    )
}

/// The peer's HTTP API as an axum router ([`start`] wraps it in the token check of
/// `PeerConfig::auth`; served directly, it checks no token).
pub fn app(state: PeerState) -> Router {
    // Uploads are bounded by their declared size, not by axum's 2 MB default.
    let unlimited = DefaultBodyLimit::disable();
    let api = Router::new()
        .route(
            "/buckets/{bucket_id}/metadata",
            post(metadata::put).get(listings::bucket),
        )
        .route("/buckets/{bucket_id}/metadata/{key}", get(metadata::get))
        .route(
            "/buckets/{bucket_id}/metadata/{key}/group",
            get(metadata::group),
        )
        .route(
            "/buckets/{bucket_id}/metadata/{key}/chunks",
            get(metadata::chunks),
        )
        .route(
            "/buckets/{bucket_id}/{key}",
            get(data::get).delete(data::delete_key),
        )
        .route("/buckets/{bucket_id}/{key}/size", get(metadata::size))
        .route(
            "/buckets/{bucket_id}/{key}/disable",
            post(metadata::disable),
        )
        .route("/buckets/{bucket_id}/bid/{key}", delete(data::delete_ball))
        .route(
            "/buckets/data/{task_id}",
            post(data::upload_multipart).layer(unlimited),
        )
        .route(
            "/buckets/data/{task_id}/chunked",
            post(data::upload_chunked).layer(unlimited),
        )
        .route("/stats", get(listings::stats))
        .route("/stats/ufs", get(stats::ufs))
        .route("/balls/len", get(stats::balls_len))
        .route("/xballs", get(listings::xballs))
        .route("/xballs/size", get(listings::xballs_size))
        .route("/xversions", get(stats::xversions))
        .route(
            "/xtombstones/{bucket_id}/{key}",
            delete(data::purge_tombstone),
        )
        .route("/peers/state", get(listings::peers_state))
        .route("/nodes", post(stats::add_node))
        .route("/tasks", delete(stats::flush_tasks))
        .method_not_allowed_fallback(method_not_allowed);
    let metrics = state.metrics.clone();
    Router::new()
        .nest("/api/v4", api)
        .route("/health", get(stats::health))
        .route("/metrics", get(stats::metrics))
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(metrics, track))
        .with_state(state)
}
