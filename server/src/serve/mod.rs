//! Serving an axum app on a bound listener, with a handle to stop it.
//!
//! We run our own accept loop (hyper-util) instead of `axum::serve` so that every connection
//! task is owned: `axum::serve` detaches them, and after an abort a "dead" server kept
//! answering on its open keep-alive connections (and kept its database open). Here a graceful
//! stop lets in-flight requests finish, and an abort drops every connection at once, as a
//! crash would.
//!
//! With TLS ([`spawn_tls`]) each connection's handshake runs in that connection's task,
//! bounded by [`TLS_HANDSHAKE_TIMEOUT`], so a silent client cannot stall the accept loop.
//!
//! Slow and numerous clients are bounded by [`ConnectionLimits`] ([`spawn_with`]):
//!
//! - a header-read timeout: hyper's (with a timer), which we checked also covers a client
//!   that trickles one header line at a time and the wait on an idle HTTP/1.1 keep-alive
//!   connection, but not a client that never sends a byte (hyper-util first reads to tell
//!   HTTP/1.1 from HTTP/2, untimed); our watchdog cuts those after the same time;
//! - an idle timeout of our own for connections that move nothing with no request open
//!   (idle HTTP/2, clients that stop reading a response);
//! - a timeout between two body frames;
//! - a cap on open connections, past which a client gets a plain `503` and is closed.

mod body;
mod limits;
mod watch;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

pub use body::BodyTimeout;
use body::TimeoutBody;
pub use limits::{default_max_connections, ConnectionLimits, FALLBACK_MAX_CONNECTIONS};
use watch::{Activity, Tracked};

/// How long a graceful stop waits for in-flight requests before it drops them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause after a failed accept (out of file descriptors, mostly), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How long a client may take to finish its TLS handshake.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server: its address, and the means to stop it.
///
/// Dropping the handle does **not** stop the server; call [`ServerHandle::shutdown`]
/// (graceful) or [`ServerHandle::abort`] (like a crash: connections cut mid-request).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    scheme: &'static str,
    stop: CancellationToken,
    kill: CancellationToken,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`, or `https://...` when the server speaks TLS.
    pub fn base_url(&self) -> String {
        format!("{}://{}", self.scheme, self.addr)
    }

    /// Whether the server speaks TLS.
    pub fn is_tls(&self) -> bool {
        self.scheme == "https"
    }

    /// A token that is cancelled when the server begins to stop; background loops of the
    /// server watch it.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s), and waits.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Stops at once: open connections are cut, in-flight uploads are lost.
    pub async fn abort(self) {
        self.kill.cancel();
        self.stop.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server stops (after a shutdown signal or a fatal error).
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Connections the kernel may queue before the accept loop takes them. The standard
/// library's (and tokio's) 128 overflows under a burst of a few hundred connects, and a
/// dropped handshake is retried by the client only after a second.
pub const LISTEN_BACKLOG: u32 = 1024;

/// Binds `addr` for [`spawn_with`], with a listen queue of [`LISTEN_BACKLOG`].
///
/// ```
/// # #[tokio::main] async fn main() -> std::io::Result<()> {
/// let listener = mictlanx_server::serve::bind("127.0.0.1:0".parse().unwrap())?;
/// assert_ne!(listener.local_addr()?.port(), 0);
/// # Ok(()) }
/// ```
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    // As tokio's own bind: a restarted server can take its port back at once.
    #[cfg(not(windows))]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// Serves `app` on `listener` until `stop` is cancelled, with the default
/// [`ConnectionLimits`].
pub fn spawn(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
) -> std::io::Result<ServerHandle> {
    spawn_with(listener, app, stop, None, ConnectionLimits::default())
}

/// As [`spawn`], speaking TLS with `tls` when given (plain HTTP otherwise).
///
/// ```no_run
/// use axum::{routing::get, Router};
/// use mictlanx_server::serve::spawn_tls;
/// use mictlanx_server::tls::{server_config, TlsFiles};
/// use tokio_util::sync::CancellationToken;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = server_config(&TlsFiles::new("cert.pem", "key.pem"))?;
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let app = Router::new().route("/", get(|| async { "ok" }));
/// let handle = spawn_tls(listener, app, CancellationToken::new(), Some(tls))?;
/// assert!(handle.base_url().starts_with("https://"));
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
pub fn spawn_tls(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
) -> std::io::Result<ServerHandle> {
    spawn_with(listener, app, stop, tls, ConnectionLimits::default())
}

/// As [`spawn_tls`], with the given timeouts and connection cap.
///
/// Every request carries `axum::extract::ConnectInfo<SocketAddr>`, the caller's address.
///
/// ```
/// use std::time::Duration;
/// use axum::{routing::get, Router};
/// use mictlanx_server::serve::{spawn_with, ConnectionLimits};
/// use tokio_util::sync::CancellationToken;
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let limits = ConnectionLimits {
///     header_read_timeout: Duration::from_secs(2),
///     max_connections: 100,
///     ..ConnectionLimits::default()
/// };
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let app = Router::new().route("/", get(|| async { "ok" }));
/// let handle = spawn_with(listener, app, CancellationToken::new(), None, limits)?;
/// assert_eq!(reqwest::get(handle.base_url()).await?.text().await?, "ok");
/// handle.shutdown().await;
/// # Ok(()) }
/// ```
pub fn spawn_with(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: ConnectionLimits,
) -> std::io::Result<ServerHandle> {
    let addr = listener.local_addr()?;
    let kill = CancellationToken::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let server = Server {
        app,
        tls: tls.map(tokio_rustls::TlsAcceptor::from),
        builder: http_builder(&limits),
        limits,
    };
    let task = tokio::spawn(accept_loop(listener, server, stop.clone(), kill.clone()));
    Ok(ServerHandle {
        addr,
        scheme,
        stop,
        kill,
        task,
    })
}

/// hyper's connection settings: HTTP/1.1 and HTTP/2, with the header timeout.
fn http_builder(limits: &ConnectionLimits) -> Builder<TokioExecutor> {
    let mut builder = Builder::new(TokioExecutor::new());
    // hyper starts this timer whenever it waits for a request head, so it bounds both a
    // client that trickles its headers and an idle keep-alive connection.
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    builder
}

/// What every connection of one server shares.
#[derive(Clone)]
struct Server {
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    builder: Builder<TokioExecutor>,
    limits: ConnectionLimits,
}

/// Serves one connection (plain or TLS) until it closes, idles out, or the graceful stop
/// ends it.
async fn serve_connection<S>(
    server: Server,
    watcher: hyper_util::server::graceful::Watcher,
    io: S,
    remote: SocketAddr,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Activity::new();
    let (app, body_timeout) = (server.app.clone(), server.limits.body_timeout);
    let requests = activity.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let (app, in_flight) = (app.clone(), requests.begin());
        async move {
            let mut req = req.map(|b| Body::new(TimeoutBody::new(b, body_timeout)));
            req.extensions_mut().insert(ConnectInfo(remote));
            let response = app.oneshot(req).await.unwrap_or_else(|e| match e {});
            drop(in_flight);
            Ok::<_, Infallible>(response)
        }
    });
    let io = TokioIo::new(Tracked::new(io, activity.clone()));
    let conn = server
        .builder
        .serve_connection_with_upgrades(io, service)
        .into_owned();
    tokio::select! {
        _ = watcher.watch(conn) => {}
        () = activity.idle_for(server.limits.idle_timeout, server.limits.header_read_timeout) => {
            tracing::debug!(event = "CONNECTION.IDLE", remote = %remote);
        }
    }
}

/// What a client past the connection cap reads before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\
Content-Type: text/plain\r\nContent-Length: 21\r\nRetry-After: 1\r\n\r\n\
too many connections\n";

/// Time a turned-away client gets to read its 503.
const BUSY_LINGER: Duration = Duration::from_millis(500);

/// At most this many turned-away clients are being answered; others are just closed.
const MAX_BUSY_ANSWERS: usize = 64;

/// Answers `503` on a plain connection past the cap and closes it, without hyper.
async fn turn_away(mut stream: TcpStream) {
    let answer = async {
        stream.write_all(BUSY).await?;
        stream.shutdown().await?;
        // Read what the client sent until it closes: closing with unread bytes would reset
        // the connection, and the client could lose the 503.
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(BUSY_LINGER, answer).await;
}

async fn accept_loop(
    listener: TcpListener,
    server: Server,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(server.limits.max_connections.max(1)));
    // Owning the connection tasks is the point: dropping this set aborts them all.
    let mut connections = JoinSet::new();
    let mut turned_away = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            Some(_) = turned_away.join_next(), if !turned_away.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(event = "ACCEPT.ERROR", error = %e);
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                        continue;
                    }
                };
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    tracing::warn!(event = "CONNECTION.LIMIT", remote = %remote, max = server.limits.max_connections);
                    // TLS clients would not understand a plain answer: they are just closed.
                    if server.tls.is_none() && turned_away.len() < MAX_BUSY_ANSWERS {
                        turned_away.spawn(turn_away(stream));
                    }
                    continue;
                };
                let _ = stream.set_nodelay(true);
                let (server, watcher) = (server.clone(), graceful.watcher());
                connections.spawn(async move {
                    let _slot = slot;
                    match server.tls.clone() {
                        None => serve_connection(server, watcher, stream, remote).await,
                        Some(acceptor) => {
                            let handshake = acceptor.accept(stream);
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(tls_stream)) => {
                                    serve_connection(server, watcher, tls_stream, remote).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(event = "TLS.HANDSHAKE.FAILED", remote = %remote, error = %e);
                                }
                                Err(_) => {
                                    tracing::debug!(event = "TLS.HANDSHAKE.TIMEOUT", remote = %remote);
                                }
                            }
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    turned_away.shutdown().await;
    if kill.is_cancelled() {
        connections.shutdown().await;
        return;
    }
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {}
        () = kill.cancelled() => {}
    }
    connections.shutdown().await;
}

/// Resolves when the process gets Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    fn quick() -> ConnectionLimits {
        ConnectionLimits {
            header_read_timeout: Duration::from_millis(300),
            idle_timeout: Duration::from_millis(300),
            body_timeout: Duration::from_millis(300),
            max_connections: 64,
        }
    }

    /// The timeouts are about clients that stall, not about handlers that take their time
    /// or answers that stream slowly: both outlast every timeout here.
    #[tokio::test]
    async fn slow_handlers_and_slow_answers_are_not_cut() {
        let slow_answer = || {
            let pieces = futures::stream::unfold(0u8, |i| async move {
                if i == 4 {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                Some((Ok::<_, Infallible>(bytes::Bytes::from_static(b"x")), i + 1))
            });
            Body::from_stream(pieces)
        };
        let app = Router::new()
            .route(
                "/think",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(900)).await;
                    "thought"
                }),
            )
            .route("/stream", get(move || async move { slow_answer() }));
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let handle = spawn_with(listener, app, CancellationToken::new(), None, quick()).unwrap();
        let client = reqwest::Client::new();
        let url = handle.base_url();
        let think = client.get(format!("{url}/think")).send().await.unwrap();
        assert_eq!(think.text().await.unwrap(), "thought");
        let stream = client.get(format!("{url}/stream")).send().await.unwrap();
        assert_eq!(stream.text().await.unwrap(), "xxxx");
        // HTTP/2 (prior knowledge on plain TCP) is served too, with the same limits.
        let h2 = reqwest::Client::builder()
            .http2_prior_knowledge()
            .build()
            .unwrap();
        let answer = h2.get(format!("{url}/think")).send().await.unwrap();
        assert_eq!(answer.version(), reqwest::Version::HTTP_2);
        assert_eq!(answer.text().await.unwrap(), "thought");
        handle.abort().await;
    }

    /// An HTTP/2 connection with no stream open is closed after the idle timeout (hyper has
    /// no such timeout for HTTP/2).
    #[tokio::test]
    async fn an_idle_http2_connection_is_closed() {
        let app = Router::new().route("/", get(|| async { "ok" }));
        let listener = bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let handle = spawn_with(listener, app, CancellationToken::new(), None, quick()).unwrap();
        let mut stream = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
        // The client preface and an empty SETTINGS frame: a valid HTTP/2 start, then nothing.
        stream
            .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00")
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let mut sink = [0u8; 1024];
        let closed = tokio::time::timeout(Duration::from_secs(3), async {
            while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
        })
        .await;
        assert!(
            closed.is_ok(),
            "idle HTTP/2 connection still open after 3 s"
        );
        assert!(started.elapsed() >= Duration::from_millis(250));
        handle.abort().await;
    }

    /// After an abort, a client holding a keep-alive connection gets no answer from the old
    /// server: its connections died with it.
    #[tokio::test]
    async fn abort_cuts_open_keep_alive_connections() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let handle = spawn(listener, app, CancellationToken::new()).unwrap();
        let url = handle.base_url();
        let client = reqwest::Client::new();
        assert_eq!(client.get(&url).send().await.unwrap().status(), 200);
        handle.abort().await;
        assert!(client.get(&url).send().await.is_err());
    }

    /// A client that opens a TLS port and never says anything holds only its own task: the
    /// server keeps accepting and answering others (the handshake is not in the accept loop).
    #[tokio::test]
    async fn a_silent_tls_client_does_not_stall_the_server() {
        let dir = tempfile::tempdir().unwrap();
        let generated = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into()]).unwrap();
        let files = crate::tls::TlsFiles::new(dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&files.cert, generated.cert.pem()).unwrap();
        std::fs::write(&files.key, generated.signing_key.serialize_pem()).unwrap();
        let tls = crate::tls::server_config(&files).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let app = Router::new().route("/", get(|| async { "ok" }));
        let handle = spawn_tls(listener, app, CancellationToken::new(), Some(tls)).unwrap();
        assert!(handle.is_tls() && handle.base_url().starts_with("https://"));
        let _silent = tokio::net::TcpStream::connect(handle.addr()).await.unwrap();
        let client = reqwest::Client::builder()
            .danger_accept_invalid_certs(true)
            .build()
            .unwrap();
        let answer = tokio::time::timeout(Duration::from_secs(5), async {
            client.get(handle.base_url()).send().await?.text().await
        })
        .await
        .expect("answered while a silent client holds a connection");
        assert_eq!(answer.unwrap(), "ok");
        handle.abort().await;
    }

    #[tokio::test]
    async fn shutdown_lets_a_slow_request_finish() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (started_tx, started_rx) = tokio::sync::oneshot::channel::<()>();
        let started_tx = std::sync::Arc::new(std::sync::Mutex::new(Some(started_tx)));
        let app = Router::new().route(
            "/slow",
            get(move || {
                let started = started_tx.lock().unwrap().take();
                async move {
                    if let Some(tx) = started {
                        let _ = tx.send(());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    "done"
                }
            }),
        );
        let handle = spawn(listener, app, CancellationToken::new()).unwrap();
        let url = format!("{}/slow", handle.base_url());
        let request = tokio::spawn(async move { reqwest::get(url).await?.text().await });
        started_rx.await.unwrap();
        handle.shutdown().await;
        assert_eq!(request.await.unwrap().unwrap(), "done");
    }
}
