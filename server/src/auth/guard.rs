//! The middleware that enforces tokens: 401 without a valid `Authorization: Bearer`, 403
//! with a token whose role is too low, and 403 for a membership, policy or disable change
//! from another host when there are no tokens. Denials are logged once, here, by token name
//! (never by token).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header::{AUTHORIZATION, WWW_AUTHENTICATE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::access::{access_for, loopback_only, Access, Service};
use super::tokens::{Role, MAX_TOKEN_LEN};
use super::AuthConfig;
use crate::error::ApiError;

/// Why a request was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Denial {
    status: StatusCode,
    /// Short machine-readable reason, also the `error` of `WWW-Authenticate`.
    reason: &'static str,
    message: String,
    /// Name of the (valid) token that lacked the role, for the log.
    token_name: Option<String>,
}

impl Denial {
    fn unauthenticated(reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            reason,
            message: message.into(),
            token_name: None,
        }
    }

    fn forbidden(message: impl Into<String>, token_name: Option<String>) -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason: "insufficient_scope",
            message: message.into(),
            token_name,
        }
    }

    /// A change only loopback callers may make while no tokens are configured.
    fn loopback_only() -> Self {
        Self {
            status: StatusCode::FORBIDDEN,
            reason: LOOPBACK_ONLY,
            message: "without --auth-tokens, membership, policy and disable changes are taken \
                      only from this server's own host (loopback); start the server with \
                      --auth-tokens FILE and send an admin token (see docs/security.md)"
                .into(),
            token_name: None,
        }
    }

    fn into_response(self) -> Response {
        let mut resp = ApiError::new(self.status, self.message).into_response();
        if self.reason == LOOPBACK_ONLY {
            // No token is accepted at all, so there is nothing to challenge for.
            return resp;
        }
        // RFC 6750 §3: a missing token gets a bare challenge, a bad one its error code.
        let challenge = match self.reason {
            "missing_token" => "Bearer realm=\"mictlanx\"".to_string(),
            other => format!("Bearer realm=\"mictlanx\", error=\"{other}\""),
        };
        if let Ok(v) = HeaderValue::from_str(&challenge) {
            resp.headers_mut().insert(WWW_AUTHENTICATE, v);
        }
        resp
    }
}

/// Reason of [`Denial::loopback_only`].
const LOOPBACK_ONLY: &str = "loopback_only";

/// Whether `remote` is on this host: `127.0.0.0/8`, `::1`, or `::ffff:127.x.y.z`.
fn is_loopback(remote: SocketAddr) -> bool {
    match remote.ip() {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The rules of one server: what it is and its [`AuthConfig`].
#[derive(Debug, Clone)]
pub(crate) struct Guard {
    service: Service,
    config: AuthConfig,
}

impl Guard {
    pub(crate) fn new(service: Service, config: AuthConfig) -> Self {
        Self { service, config }
    }

    /// Whether this guard checks anything at all.
    fn enforcing(&self) -> bool {
        self.config.tokens.is_some() || self.cluster_guard().is_some()
    }

    /// The cluster token that guards a peer's changes (routers take none).
    fn cluster_guard(&self) -> Option<&super::ClusterToken> {
        match self.service {
            Service::Peer => self.config.cluster_token.as_ref(),
            Service::Router => None,
        }
    }

    /// Allows or refuses `method path` from `remote` (unknown: not loopback) with the
    /// given `Authorization` header.
    pub(crate) fn check(
        &self,
        method: &Method,
        path: &str,
        authorization: Option<&HeaderValue>,
        remote: Option<SocketAddr>,
    ) -> Result<(), Denial> {
        let need = match access_for(self.service, method, path, self.config.protect_metrics) {
            Access::Open => return Ok(()),
            Access::Need(role) => role,
        };
        let cluster_only = need >= Role::Write && self.cluster_guard().is_some();
        if !cluster_only && self.config.tokens.is_none() {
            // Open, as the original, except what changes the cluster itself.
            if loopback_only(self.service, method, path) && !remote.is_some_and(is_loopback) {
                return Err(Denial::loopback_only());
            }
            return Ok(());
        }
        let token = bearer(authorization)?;
        if self.cluster_guard().is_some_and(|c| c.matches(token)) {
            return Ok(());
        }
        let grant = self
            .config
            .tokens
            .as_ref()
            .and_then(|t| t.lookup(token))
            .ok_or_else(|| Denial::unauthenticated("invalid_token", "invalid bearer token"))?;
        if cluster_only {
            return Err(Denial::forbidden(
                "changes to a peer need the cluster token (go through a router)",
                grant.name,
            ));
        }
        if grant.role < need {
            return Err(Denial::forbidden(
                format!("this token has the {} role; {need} is needed", grant.role),
                grant.name,
            ));
        }
        Ok(())
    }
}

/// The token of `Authorization: Bearer TOKEN` (scheme case-insensitive).
fn bearer(header: Option<&HeaderValue>) -> Result<&str, Denial> {
    let malformed = || {
        Denial::unauthenticated(
            "invalid_request",
            "malformed Authorization header: expected `Bearer TOKEN`",
        )
    };
    let Some(header) = header else {
        return Err(Denial::unauthenticated(
            "missing_token",
            "missing Authorization: Bearer token",
        ));
    };
    if header.len() > MAX_TOKEN_LEN + 16 {
        return Err(malformed());
    }
    let text = header.to_str().map_err(|_| malformed())?;
    let (scheme, token) = text.split_once(' ').ok_or_else(malformed)?;
    let token = token.trim_start_matches(' ');
    if !scheme.eq_ignore_ascii_case("bearer") || token.is_empty() || token.contains(' ') {
        return Err(malformed());
    }
    Ok(token)
}

/// axum middleware: runs [`Guard::check`] and answers 401/403 in our error shape.
pub(crate) async fn enforce(State(guard): State<Arc<Guard>>, req: Request, next: Next) -> Response {
    if !guard.enforcing() && !loopback_only(guard.service, req.method(), req.uri().path()) {
        return next.run(req).await;
    }
    let remote = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0);
    match guard.check(
        req.method(),
        req.uri().path(),
        req.headers().get(AUTHORIZATION),
        remote,
    ) {
        Ok(()) => next.run(req).await,
        Err(denial) => {
            tracing::info!(
                event = "AUTH.DENIED",
                method = %req.method(),
                path = req.uri().path(),
                status = denial.status.as_u16(),
                reason = denial.reason,
                token_name = denial.token_name.as_deref().unwrap_or("-"),
            );
            denial.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::{ClusterToken, TokenSet};

    const READ: &str = "read-token-0123456789";
    const WRITE: &str = "write-token-0123456789";
    const ADMIN: &str = "admin-token-0123456789";
    const CLUSTER: &str = "cluster-token-0123456789";
    const LOCAL: SocketAddr = SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9);

    fn tokens() -> Arc<TokenSet> {
        Arc::new(
            TokenSet::new()
                .with(Role::Read, READ, Some("reader"))
                .and_then(|t| t.with(Role::Write, WRITE, None))
                .and_then(|t| t.with(Role::Admin, ADMIN, None))
                .unwrap(),
        )
    }

    fn header(text: &str) -> HeaderValue {
        HeaderValue::from_str(text).unwrap()
    }

    fn status(guard: &Guard, method: Method, path: &str, auth: Option<&str>) -> u16 {
        let h = auth.map(header);
        match guard.check(&method, path, h.as_ref(), Some(LOCAL)) {
            Ok(()) => 200,
            Err(d) => d.status.as_u16(),
        }
    }

    #[test]
    fn roles_on_a_router() {
        let g = Guard::new(
            Service::Router,
            AuthConfig {
                tokens: Some(tokens()),
                ..AuthConfig::default()
            },
        );
        let data = "/api/v4/buckets/b/k";
        assert_eq!(status(&g, Method::GET, "/health", None), 200);
        assert_eq!(status(&g, Method::GET, data, None), 401);
        assert_eq!(
            status(&g, Method::GET, data, Some(&format!("Bearer {READ}"))),
            200
        );
        assert_eq!(
            status(&g, Method::GET, data, Some(&format!("bearer  {READ}"))),
            200
        );
        assert_eq!(
            status(&g, Method::DELETE, data, Some(&format!("Bearer {READ}"))),
            403
        );
        assert_eq!(
            status(&g, Method::DELETE, data, Some(&format!("Bearer {WRITE}"))),
            403
        );
        assert_eq!(
            status(&g, Method::DELETE, data, Some(&format!("Bearer {ADMIN}"))),
            200
        );
        let upload = "/api/v4/buckets/b/metadata";
        assert_eq!(
            status(&g, Method::POST, upload, Some(&format!("Bearer {READ}"))),
            403
        );
        assert_eq!(
            status(&g, Method::POST, upload, Some(&format!("Bearer {WRITE}"))),
            200
        );
        // The cluster token means nothing to a router.
        assert_eq!(
            status(&g, Method::GET, data, Some(&format!("Bearer {CLUSTER}"))),
            401
        );
    }

    #[test]
    fn malformed_headers_are_401() {
        let g = Guard::new(
            Service::Router,
            AuthConfig {
                tokens: Some(tokens()),
                ..AuthConfig::default()
            },
        );
        let data = "/api/v4/buckets/b/k";
        let long = format!("Bearer {}", "x".repeat(10_000));
        for bad in [
            "",
            "Bearer",
            "Bearer ",
            READ,
            &format!("Basic {READ}"),
            &format!("Bearer {READ} extra"),
            &long,
        ] {
            let d = g
                .check(&Method::GET, data, Some(&header(bad)), None)
                .unwrap_err();
            assert_eq!(d.status, StatusCode::UNAUTHORIZED, "{bad:?}");
        }
        let non_ascii = HeaderValue::from_bytes(b"Bearer \xff\xfe").unwrap();
        assert!(g.check(&Method::GET, data, Some(&non_ascii), None).is_err());
        let d = g.check(&Method::GET, data, None, None).unwrap_err();
        assert_eq!(d.reason, "missing_token");
        let resp = d.into_response();
        assert_eq!(
            resp.headers()[WWW_AUTHENTICATE],
            "Bearer realm=\"mictlanx\""
        );
    }

    #[test]
    fn a_peer_with_a_cluster_token_takes_changes_only_from_it() {
        let cluster = ClusterToken::new(CLUSTER).unwrap();
        let g = Guard::new(
            Service::Peer,
            AuthConfig {
                tokens: Some(tokens()),
                cluster_token: Some(cluster.clone()),
                protect_metrics: false,
            },
        );
        let upload = "/api/v4/buckets/data/t1/chunked";
        assert_eq!(status(&g, Method::POST, upload, None), 401);
        assert_eq!(
            status(&g, Method::POST, upload, Some(&format!("Bearer {ADMIN}"))),
            403
        );
        assert_eq!(
            status(&g, Method::POST, upload, Some(&format!("Bearer {CLUSTER}"))),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::GET,
                "/api/v4/stats/ufs",
                Some(&format!("Bearer {READ}"))
            ),
            200
        );
        assert_eq!(
            status(
                &g,
                Method::GET,
                "/api/v4/stats/ufs",
                Some(&format!("Bearer {CLUSTER}"))
            ),
            200
        );
        assert_eq!(status(&g, Method::GET, "/api/v4/stats/ufs", None), 401);
        // Without a token file, reads are open and changes still need the cluster token.
        let g = Guard::new(
            Service::Peer,
            AuthConfig {
                cluster_token: Some(cluster),
                ..AuthConfig::default()
            },
        );
        assert_eq!(status(&g, Method::GET, "/api/v4/buckets/b/k", None), 200);
        assert_eq!(status(&g, Method::DELETE, "/api/v4/buckets/b/k", None), 401);
        assert_eq!(
            status(
                &g,
                Method::DELETE,
                "/api/v4/buckets/b/k",
                Some(&format!("Bearer {ADMIN}"))
            ),
            401
        );
        assert_eq!(
            status(
                &g,
                Method::DELETE,
                "/api/v4/buckets/b/k",
                Some(&format!("Bearer {CLUSTER}"))
            ),
            200
        );
    }

    #[test]
    fn loopback_is_this_host() {
        for local in [
            "127.0.0.1:1",
            "127.9.9.9:1",
            "[::1]:1",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback(local.parse().unwrap()), "{local}");
        }
        for remote in [
            "10.0.0.7:5000",
            "[::ffff:10.0.0.7]:1",
            "[fe80::1]:1",
            "0.0.0.0:1",
        ] {
            assert!(!is_loopback(remote.parse().unwrap()), "{remote}");
        }
    }

    #[test]
    fn without_tokens_cluster_changes_need_loopback() {
        let g = Guard::new(Service::Router, AuthConfig::default());
        let far: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        let peer = "/api/v4/peers/peer-0";
        let d = g.check(&Method::DELETE, peer, None, Some(far)).unwrap_err();
        assert_eq!(d.status, StatusCode::FORBIDDEN);
        assert!(d.message.contains("--auth-tokens"), "{}", d.message);
        assert!(!d.into_response().headers().contains_key(WWW_AUTHENTICATE));
        assert!(g.check(&Method::DELETE, peer, None, None).is_err());
        assert!(g.check(&Method::DELETE, peer, None, Some(LOCAL)).is_ok());
        // Data stays open to everyone.
        let key = "/api/v4/buckets/b/k";
        assert!(g.check(&Method::DELETE, key, None, Some(far)).is_ok());
        assert!(g
            .check(&Method::GET, "/api/v4/peers", None, Some(far))
            .is_ok());
        // With tokens, the token decides, wherever the caller is.
        let g = Guard::new(
            Service::Router,
            AuthConfig {
                tokens: Some(tokens()),
                ..AuthConfig::default()
            },
        );
        let admin = header(&format!("Bearer {ADMIN}"));
        assert!(g
            .check(&Method::DELETE, peer, Some(&admin), Some(far))
            .is_ok());
        let local = g
            .check(&Method::DELETE, peer, None, Some(LOCAL))
            .unwrap_err();
        assert_eq!(local.status, StatusCode::UNAUTHORIZED);
    }

    #[test]
    fn no_configuration_means_open() {
        let g = Guard::new(Service::Router, AuthConfig::default());
        assert!(!g.enforcing());
        assert_eq!(
            status(&g, Method::DELETE, "/api/v4/buckets/b/k", Some("garbage")),
            200
        );
    }
}
