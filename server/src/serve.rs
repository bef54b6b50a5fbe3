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

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// How long a graceful stop waits for in-flight requests before it drops them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

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

/// Serves `app` on `listener` until `stop` is cancelled.
pub fn spawn(
    listener: TcpListener,
    app: Router,
    stop: CancellationToken,
) -> std::io::Result<ServerHandle> {
    spawn_tls(listener, app, stop, None)
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
    let addr = listener.local_addr()?;
    let kill = CancellationToken::new();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let task = tokio::spawn(accept_loop(listener, app, tls, stop.clone(), kill.clone()));
    Ok(ServerHandle {
        addr,
        scheme,
        stop,
        kill,
        task,
    })
}

/// Serves one connection (plain or TLS) until it closes or the graceful stop ends it.
async fn serve_connection<S>(
    builder: Builder<TokioExecutor>,
    watcher: hyper_util::server::graceful::Watcher,
    io: S,
    app: Router,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
        let app = app.clone();
        async move {
            Ok::<_, Infallible>(
                app.oneshot(req.map(Body::new))
                    .await
                    .unwrap_or_else(|e| match e {}),
            )
        }
    });
    let conn = builder
        .serve_connection_with_upgrades(TokioIo::new(io), service)
        .into_owned();
    let _ = watcher.watch(conn).await;
}

async fn accept_loop(
    listener: TcpListener,
    app: Router,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: CancellationToken,
    kill: CancellationToken,
) {
    let builder = Builder::new(TokioExecutor::new());
    let graceful = GracefulShutdown::new();
    // Owning the connection tasks is the point: dropping this set aborts them all.
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            () = stop.cancelled() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => {
                let (stream, remote) = match accepted {
                    Ok(pair) => pair,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(event = "ACCEPT.ERROR", error = %e);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let (app, builder, watcher) = (app.clone(), builder.clone(), graceful.watcher());
                match tls.clone() {
                    None => {
                        connections.spawn(serve_connection(builder, watcher, stream, app));
                    }
                    Some(acceptor) => {
                        connections.spawn(async move {
                            let handshake = acceptor.accept(stream);
                            match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, handshake).await {
                                Ok(Ok(tls_stream)) => {
                                    serve_connection(builder, watcher, tls_stream, app).await;
                                }
                                Ok(Err(e)) => {
                                    tracing::debug!(event = "TLS.HANDSHAKE.FAILED", remote = %remote, error = %e);
                                }
                                Err(_) => {
                                    tracing::debug!(event = "TLS.HANDSHAKE.TIMEOUT", remote = %remote);
                                }
                            }
                        });
                    }
                }
            }
        }
    }
    drop(listener);
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
