//! Which role each route needs.
//!
//! Decided from the method and the path alone, so the rule is one table that holds for the
//! route fix-ups too (see `router::routes`) and for paths that match no route (they need
//! `read`, so an anonymous caller cannot even learn which routes exist).
//!
//! | route | router | peer |
//! |---|---|---|
//! | `GET /health` | open | open |
//! | `GET /metrics` | open (`read` with `--protect-metrics`) | same |
//! | `GET`/`HEAD` anything else (data, metadata, listings, stats, peer lists) | read | read |
//! | `POST`/`PUT` metadata and uploads (`/buckets/...`, `/u/buckets/...`) | write | write (cluster token when set) |
//! | `POST .../{key}/disable` | admin | admin (cluster token when set) |
//! | `DELETE` anything (keys, balls, buckets, peers, tasks) | admin | admin (cluster token when set) |
//! | `POST /api/v4/peers`, `/api/v4/xpeers`; peer `POST /api/v4/nodes` | admin | admin (cluster token when set) |
//! | `POST /api/v4/policies` (a policy can start peers and copy data) | admin | — |
//!
//! Without `--auth-tokens`, the routes of [`loopback_only`] (membership, policies,
//! disables) are still refused to callers that are not on the server's own host.

use axum::http::Method;

use super::tokens::Role;

/// What a request needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Anyone may call it.
    Open,
    /// A token with at least this role.
    Need(Role),
}

/// Which server answers: the rules differ a little.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// The client-facing router.
    Router,
    /// A storage peer.
    Peer,
}

/// The access `method path` needs on `service`.
///
/// ```
/// use axum::http::Method;
/// use mictlanx_server::auth::{access_for, Access, Role, Service};
///
/// let get = access_for(Service::Router, &Method::GET, "/api/v4/buckets/b/k", false);
/// assert_eq!(get, Access::Need(Role::Read));
/// let health = access_for(Service::Peer, &Method::GET, "/health", true);
/// assert_eq!(health, Access::Open);
/// ```
pub fn access_for(service: Service, method: &Method, path: &str, protect_metrics: bool) -> Access {
    match path {
        "/health" => return Access::Open,
        "/metrics" if !protect_metrics => return Access::Open,
        "/metrics" => return Access::Need(Role::Read),
        _ => {}
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let role = match *method {
        Method::GET | Method::HEAD | Method::OPTIONS => Role::Read,
        Method::DELETE => Role::Admin,
        _ if is_disable(&segments) || is_admin_post(service, &segments) => Role::Admin,
        _ => Role::Write,
    };
    Access::Need(role)
}

/// Whether `method path` changes who is in the cluster, its policies, or disables a ball:
/// with no token file, only loopback callers may do it.
///
/// On a router: `POST /api/v4/peers`, `DELETE /api/v4/peers/{id}`, `POST`/`DELETE
/// /api/v4/xpeers`, `POST`/`DELETE /api/v4/policies...` and `POST .../{key}/disable`. On a
/// peer: `POST /api/v4/nodes` (its disables and deletes come from routers on other hosts).
///
/// ```
/// use axum::http::Method;
/// use mictlanx_server::auth::{loopback_only, Service};
///
/// assert!(loopback_only(Service::Router, &Method::DELETE, "/api/v4/peers/peer-0"));
/// assert!(!loopback_only(Service::Router, &Method::DELETE, "/api/v4/buckets/b/k"));
/// assert!(!loopback_only(Service::Router, &Method::GET, "/api/v4/peers"));
/// ```
pub fn loopback_only(service: Service, method: &Method, path: &str) -> bool {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return false;
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    match service {
        Service::Router => is_disable(&segments) || is_admin_post(service, &segments),
        Service::Peer => is_admin_post(service, &segments),
    }
}

/// `/api/v4/buckets/{bucket}/{key}/disable`.
fn is_disable(segments: &[&str]) -> bool {
    matches!(segments, ["api", "v4", "buckets", _, _, "disable"])
}

/// Peer management: the router's `/api/v4/peers` and `/api/v4/xpeers` and availability
/// policies (which can start peers), the peer's `/api/v4/nodes` handshake.
fn is_admin_post(service: Service, segments: &[&str]) -> bool {
    match service {
        Service::Router => matches!(segments, ["api", "v4", "peers" | "xpeers" | "policies", ..]),
        Service::Peer => matches!(segments, ["api", "v4", "nodes", ..]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(service: Service, method: Method, path: &str) -> Access {
        access_for(service, &method, path, false)
    }

    #[test]
    fn router_table() {
        use Service::Router as R;
        let read = Access::Need(Role::Read);
        let write = Access::Need(Role::Write);
        let admin = Access::Need(Role::Admin);
        assert_eq!(need(R, Method::GET, "/health"), Access::Open);
        assert_eq!(need(R, Method::GET, "/metrics"), Access::Open);
        assert_eq!(access_for(R, &Method::GET, "/metrics", true), read);
        assert_eq!(need(R, Method::GET, "/api/v4/buckets/b/k"), read);
        assert_eq!(need(R, Method::GET, "/api/v4/buckets/b/metadata/k"), read);
        assert_eq!(need(R, Method::GET, "/api/v4/peers/stats"), read);
        assert_eq!(need(R, Method::GET, "/no/such/route"), read);
        assert_eq!(need(R, Method::POST, "/api/v4/buckets/b/metadata"), write);
        assert_eq!(
            need(R, Method::POST, "/api/v4/buckets/data/t1/chunked"),
            write
        );
        assert_eq!(need(R, Method::POST, "/api/v4/buckets/data/t1"), write);
        assert_eq!(need(R, Method::POST, "/api/v4/u/buckets/b/k"), write);
        assert_eq!(need(R, Method::POST, "/api/v4/buckets/b/k/disable"), admin);
        assert_eq!(
            need(R, Method::POST, "/api/v4/buckets/b/metadata/disable"),
            admin
        );
        assert_eq!(need(R, Method::DELETE, "/api/v4/buckets/b/k"), admin);
        assert_eq!(need(R, Method::DELETE, "/api/v4/buckets/b/bid/ball"), admin);
        assert_eq!(need(R, Method::POST, "/api/v4/peers"), admin);
        assert_eq!(need(R, Method::POST, "/api/v4/xpeers"), admin);
        assert_eq!(need(R, Method::POST, "/api/v4/policies"), admin);
        assert_eq!(need(R, Method::DELETE, "/api/v4/policies/p1"), admin);
        assert_eq!(need(R, Method::GET, "/api/v4/policies/p1"), read);
        assert_eq!(need(R, Method::DELETE, "/api/v4/peers/p0"), admin);
        assert_eq!(need(R, Method::PATCH, "/api/v4/buckets/b/k"), write);
    }

    #[test]
    fn loopback_only_routes() {
        use Service::{Peer as P, Router as R};
        for (method, path) in [
            (Method::POST, "/api/v4/peers"),
            (Method::DELETE, "/api/v4/peers/peer-0"),
            (Method::POST, "/api/v4/xpeers"),
            (Method::DELETE, "/api/v4/xpeers"),
            (Method::POST, "/api/v4/policies"),
            (Method::DELETE, "/api/v4/policies/p1"),
            (Method::POST, "/api/v4/buckets/b/k/disable"),
            (Method::POST, "/api/v4/buckets/b/metadata/disable"),
            (Method::POST, "/api/v4/buckets/b/bid/disable"),
        ] {
            assert!(loopback_only(R, &method, path), "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "/api/v4/peers"),
            (Method::GET, "/api/v4/policies/p1"),
            (Method::POST, "/api/v4/buckets/b/metadata"),
            (Method::POST, "/api/v4/buckets/data/t1/chunked"),
            (Method::DELETE, "/api/v4/buckets/b/k"),
            (Method::DELETE, "/api/v4/buckets/b/bid/ball"),
            (Method::GET, "/health"),
        ] {
            assert!(!loopback_only(R, &method, path), "{method} {path}");
        }
        assert!(loopback_only(P, &Method::POST, "/api/v4/nodes"));
        assert!(!loopback_only(
            P,
            &Method::POST,
            "/api/v4/buckets/b/k/disable"
        ));
        assert!(!loopback_only(P, &Method::DELETE, "/api/v4/buckets/b/k"));
    }

    #[test]
    fn peer_table() {
        use Service::Peer as P;
        assert_eq!(
            need(P, Method::GET, "/api/v4/stats/ufs"),
            Access::Need(Role::Read)
        );
        assert_eq!(
            need(P, Method::POST, "/api/v4/buckets/b/metadata"),
            Access::Need(Role::Write)
        );
        assert_eq!(
            need(P, Method::POST, "/api/v4/nodes"),
            Access::Need(Role::Admin)
        );
        assert_eq!(
            need(P, Method::DELETE, "/api/v4/tasks"),
            Access::Need(Role::Admin)
        );
        // The router's peer-management paths are not special on a peer.
        assert_eq!(
            need(P, Method::POST, "/api/v4/peers"),
            Access::Need(Role::Write)
        );
    }
}
