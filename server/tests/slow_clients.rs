//! Slow and numerous clients against a router on loopback (issue 15, point 4), and the
//! loopback-only rule for anonymous cluster changes (point 5).
//!
//! Every test bounds itself: slow sockets are cut by the server within seconds, and each
//! wait is under a `timeout`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode};
use mictlanx_server::auth::{self, AuthConfig, Role, Service, TokenSet};
use mictlanx_server::router::{self, RouterState};
use mictlanx_server::serve::ConnectionLimits;
use mictlanx_server::{RouterConfig, ServerHandle};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::task::JoinSet;
use tower::ServiceExt;

/// A router without peers, serving with `limits`.
async fn router_with(limits: ConnectionLimits) -> ServerHandle {
    let mut config = RouterConfig::new("router-slow", Vec::new());
    config.repair_interval = None;
    config.connections = limits;
    router::start(config).await.expect("router starts")
}

/// Short timeouts, so that the tests take seconds.
fn short_limits() -> ConnectionLimits {
    ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        idle_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_millis(500),
        max_connections: 700,
    }
}

/// Reads until the server closes; how long that took.
async fn until_closed(stream: &mut tokio::net::tcp::OwnedReadHalf) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return started.elapsed(),
            Ok(_) => {}
        }
    }
}

/// How one slow socket behaves.
#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Sends one header line every 400 ms, never the blank line.
    Trickle,
    /// Connects and sends nothing.
    Silent,
    /// Sends one full request, reads the answer, then holds the connection.
    KeepAliveIdle,
}

/// Opens a slow socket of `kind` and returns how long the server took to close it.
async fn slow_socket(addr: SocketAddr, kind: Slow) -> Duration {
    let stream = TcpStream::connect(addr).await.expect("connects");
    let (mut read, mut write) = stream.into_split();
    match kind {
        Slow::Silent => until_closed(&mut read).await,
        Slow::KeepAliveIdle => {
            let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
            write.write_all(request).await.expect("sends");
            let mut buf = [0u8; 4096];
            let n = read.read(&mut buf).await.expect("answer");
            assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "answered");
            until_closed(&mut read).await
        }
        Slow::Trickle => {
            let trickle = async {
                let _ = write.write_all(b"GET /health HTTP/1.1\r\n").await;
                for i in 0u32.. {
                    tokio::time::sleep(Duration::from_millis(400)).await;
                    let line = format!("X-Slow-{i}: x\r\n");
                    if write.write_all(line.as_bytes()).await.is_err() {
                        break;
                    }
                }
                std::future::pending::<()>().await;
            };
            tokio::select! {
                closed = until_closed(&mut read) => closed,
                () = trickle => unreachable!("the trickle never ends by itself"),
            }
        }
    }
}

/// 300 slow sockets (a third trickling headers, a third silent, a third idle after one
/// request) while a client keeps asking `/health`: every normal request is answered within
/// 2 s, and every slow socket is closed soon after the 1 s header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_sockets_are_cut_and_others_are_served() {
    let router = router_with(short_limits()).await;
    let addr = router.addr();
    let mut slow = JoinSet::new();
    for i in 0..300 {
        let kind = [Slow::Trickle, Slow::Silent, Slow::KeepAliveIdle][i % 3];
        slow.spawn(async move { (kind, slow_socket(addr, kind).await) });
    }

    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("{}/health", router.base_url());
    let mut worst = Duration::ZERO;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        // A fresh connection each time, as a new client would need.
        let fresh = reqwest::Client::builder()
            .no_proxy()
            .pool_max_idle_per_host(0)
            .build()
            .expect("client");
        for c in [&client, &fresh] {
            let asked = Instant::now();
            let answer = tokio::time::timeout(Duration::from_secs(2), c.get(&url).send())
                .await
                .expect("answered within 2 s")
                .expect("answered");
            assert_eq!(answer.status(), 200);
            worst = worst.max(asked.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let mut slowest = [Duration::ZERO; 3];
    let all_closed = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(joined) = slow.join_next().await {
            let (kind, closed_after) = joined.expect("slow socket task");
            assert!(
                closed_after < Duration::from_secs(4),
                "{kind:?} closed only after {closed_after:?}"
            );
            let at = kind as usize;
            slowest[at] = slowest[at].max(closed_after);
        }
    })
    .await;
    assert!(all_closed.is_ok(), "slow sockets still open after 10 s");
    println!(
        "FIGURES worst /health latency {worst:?}; slowest close: trickle {:?}, silent {:?}, \
         keep-alive idle {:?}",
        slowest[0], slowest[1], slowest[2]
    );
    router.abort().await;
}

/// Past the cap a client reads a plain 503 and is closed; once the others leave, the
/// router answers again.
#[tokio::test]
async fn connections_past_the_cap_get_503() {
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(30),
        max_connections: 8,
        ..short_limits()
    };
    let router = router_with(limits).await;
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(TcpStream::connect(router.addr()).await.expect("connects"));
    }
    // Let the accept loop take them all.
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let mut extra = TcpStream::connect(router.addr()).await.expect("connects");
    let _ = extra
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .await;
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(3), extra.read_to_end(&mut answer))
        .await
        .expect("closed within 3 s")
        .expect("read");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
        "{text}"
    );
    assert!(text.contains("Connection: close"), "{text}");
    println!("FIGURES 503 past the cap after {:?}", started.elapsed());

    drop(held);
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("{}/health", router.base_url());
    let served = tokio::time::timeout(Duration::from_secs(3), async {
        loop {
            match client.get(&url).send().await {
                Ok(r) if r.status() == 200 => return,
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    })
    .await;
    assert!(
        served.is_ok(),
        "router answers again once the held sockets close"
    );
    router.abort().await;
}

/// A body that stops halfway is cut after the body timeout: the request fails with an
/// answer (or a close) instead of holding the connection.
#[tokio::test]
async fn a_stalled_body_is_cut_after_the_body_timeout() {
    let router = router_with(short_limits()).await;
    let mut stream = TcpStream::connect(router.addr()).await.expect("connects");
    let head = "POST /api/v4/buckets/b/metadata HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"key\":";
    stream.write_all(head.as_bytes()).await.expect("sends");
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => answer.extend_from_slice(&buf[..n]),
            }
            if answer.windows(4).any(|w| w == b"\r\n\r\n") {
                return;
            }
        }
    })
    .await;
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the stalled request still holds after 5 s");
    assert!(
        elapsed >= Duration::from_millis(400),
        "cut too early: {elapsed:?}"
    );
    let text = String::from_utf8_lossy(&answer);
    assert!(
        !text.starts_with("HTTP/1.1 2"),
        "a cut body is not a success: {text}"
    );
    println!(
        "FIGURES stalled body cut after {elapsed:?}: {:?}",
        text.lines().next()
    );
    router.abort().await;
}

const ADMIN: &str = "admin-token-0123456789";

/// The router's app with its auth middleware, as `router::start` serves it.
fn guarded_router(auth: AuthConfig) -> axum::Router {
    let mut config = RouterConfig::new("router-auth", Vec::new());
    config.repair_interval = None;
    let state = RouterState::new(config).expect("state");
    auth::layer(router::app(state), Service::Router, auth)
}

/// A request as `serve` hands it to the app: with the caller's address.
fn request(
    method: Method,
    path: &str,
    body: &str,
    from: &str,
    token: Option<&str>,
) -> Request<Body> {
    let from: SocketAddr = from.parse().expect("address");
    let mut builder = Request::builder().method(method).uri(path);
    if body.starts_with('{') || body.starts_with('[') {
        builder = builder.header("content-type", "application/json");
    } else {
        builder = builder.header("content-type", "text/plain");
    }
    if let Some(token) = token {
        builder = builder.header("authorization", format!("Bearer {token}"));
    }
    let mut req = builder.body(Body::from(body.to_string())).expect("request");
    req.extensions_mut().insert(ConnectInfo(from));
    req
}

/// The membership, policy and disable changes the rule covers.
fn cluster_changes() -> Vec<(Method, &'static str, &'static str)> {
    vec![
        (Method::DELETE, "/api/v4/peers/peer-0", ""),
        (
            Method::POST,
            "/api/v4/peers",
            r#"{"protocol":"http","peer_id":"peer-9","hostname":"127.0.0.1","port":25999}"#,
        ),
        (Method::POST, "/api/v4/policies", "apac: v1\n"),
        (Method::POST, "/api/v4/buckets/b/k/disable", ""),
    ]
}

async fn status_of(app: &axum::Router, req: Request<Body>) -> (StatusCode, String) {
    let resp = app.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .expect("body");
    (status, String::from_utf8_lossy(&body).into_owned())
}

/// Without tokens, a cluster change from another host is refused with 403 naming
/// `--auth-tokens`; from loopback it goes through; data routes stay open to everyone.
#[tokio::test]
async fn anonymous_cluster_changes_only_from_loopback() {
    let app = guarded_router(AuthConfig::default());
    for (method, path, body) in cluster_changes() {
        let far = request(method.clone(), path, body, "10.0.0.7:5000", None);
        let (status, text) = status_of(&app, far).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {text}");
        assert!(text.contains("--auth-tokens"), "{method} {path}: {text}");

        for local in ["127.0.0.1:5000", "[::1]:5000"] {
            let near = request(method.clone(), path, body, local, None);
            let (status, text) = status_of(&app, near).await;
            assert!(
                status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                "{method} {path} from {local}: {status} {text}"
            );
        }
    }
    // Reads and normal deletes from afar are as open as before.
    for (method, path) in [
        (Method::GET, "/api/v4/peers"),
        (Method::GET, "/health"),
        (Method::DELETE, "/api/v4/buckets/b/k"),
    ] {
        let (status, text) = status_of(
            &app,
            request(method.clone(), path, "", "10.0.0.7:5000", None),
        )
        .await;
        assert!(
            status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
            "{method} {path}: {status} {text}"
        );
    }
}

/// With tokens, the token rules apply wherever the caller is.
#[tokio::test]
async fn with_tokens_the_token_decides() {
    let tokens = TokenSet::new()
        .with(Role::Admin, ADMIN, Some("ops"))
        .expect("token");
    let app = guarded_router(AuthConfig {
        tokens: Some(std::sync::Arc::new(tokens)),
        ..AuthConfig::default()
    });
    for (method, path, body) in cluster_changes() {
        for from in ["10.0.0.7:5000", "127.0.0.1:5000"] {
            let anonymous = request(method.clone(), path, body, from, None);
            let (status, _) = status_of(&app, anonymous).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path} from {from}"
            );
            let admin = request(method.clone(), path, body, from, Some(ADMIN));
            let (status, text) = status_of(&app, admin).await;
            assert!(
                status != StatusCode::FORBIDDEN && status != StatusCode::UNAUTHORIZED,
                "{method} {path} from {from} with admin: {status} {text}"
            );
        }
    }
}
