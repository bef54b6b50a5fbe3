//! Bearer-token authentication for the router and the peer.
//!
//! - [`TokenSet`]: the token file (`ROLE TOKEN [NAME]` per line), roles
//!   `read < write < admin`, kept as SHA-256 digests and compared in constant time.
//! - [`ClusterToken`]: the secret routers send to peers; a peer that has one takes changes
//!   only from its holders.
//! - [`access_for`]: the role each route needs (the table is in `docs/security.md`).
//! - [`AuthConfig`]: what a server enforces; `peer::start` and `router::start` add the
//!   middleware that enforces it.
//!
//! Without tokens a server is open, as the original is, except for membership, policy and
//! disable routes ([`loopback_only`]): those answer only callers on the server's own host
//! (their address comes from `ConnectInfo<SocketAddr>`, which `serve` sets per connection).

mod access;
mod cluster_token;
mod guard;
mod tokens;

use std::sync::Arc;

use axum::Router;

pub use access::{access_for, loopback_only, Access, Service};
pub use cluster_token::ClusterToken;
pub use tokens::{validate_token, Grant, Role, TokenFileError, TokenSet};

/// What a server enforces. The default enforces nothing.
///
/// On a **router**, `tokens` guard every route but `/health` (and `/metrics` unless
/// `protect_metrics`); `cluster_token` is what it sends to its peers.
/// On a **peer**, `tokens` guard it the same way, and with a `cluster_token` every change
/// (uploads, deletes, disables) needs that token: only routers and peers can write.
///
/// # Examples
///
/// ```
/// use std::sync::Arc;
/// use mictlanx_server::auth::{AuthConfig, ClusterToken, Role, TokenSet};
///
/// let auth = AuthConfig {
///     tokens: Some(Arc::new(TokenSet::new().with(Role::Admin, "admin-token-0123456789", None)?)),
///     cluster_token: Some(ClusterToken::new("cluster-token-0123456789")?),
///     protect_metrics: true,
/// };
/// assert!(!format!("{auth:?}").contains("token-0123456789"));
/// # Ok::<(), mictlanx_server::auth::TokenFileError>(())
/// ```
#[derive(Debug, Clone, Default)]
pub struct AuthConfig {
    /// Tokens accepted from callers, with their roles (`--auth-tokens`).
    pub tokens: Option<Arc<TokenSet>>,
    /// The routers' and peers' shared secret (`--cluster-token`).
    pub cluster_token: Option<ClusterToken>,
    /// Whether `/metrics` needs a `read` token (`--protect-metrics`).
    pub protect_metrics: bool,
}

/// Wraps `app` in the auth middleware of `service` under `config`, as `router::start` and
/// `peer::start` do.
///
/// The middleware reads the caller's address from `axum::extract::ConnectInfo<SocketAddr>`
/// (set by [`crate::serve`]); a request without it is treated as remote.
///
/// ```
/// use axum::{routing::delete, Router};
/// use mictlanx_server::auth::{layer, AuthConfig, Service};
///
/// let app = Router::new().route("/api/v4/peers/{id}", delete(|| async { "gone" }));
/// let guarded: Router = layer(app, Service::Router, AuthConfig::default());
/// # drop(guarded);
/// ```
pub fn layer(app: Router, service: Service, config: AuthConfig) -> Router {
    let guard = Arc::new(guard::Guard::new(service, config));
    app.layer(axum::middleware::from_fn_with_state(guard, guard::enforce))
}
