//! Serving an axum app on a bound listener, with a handle to stop it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a graceful stop waits for in-flight requests before it drops them.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(10);

/// A running server: its address, and the means to stop it.
///
/// Dropping the handle does **not** stop the server; call [`ServerHandle::shutdown`]
/// (graceful) or [`ServerHandle::abort`] (like a crash: connections cut mid-request).
#[derive(Debug)]
pub struct ServerHandle {
    addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl ServerHandle {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A token that is cancelled when the server begins to stop; background loops of the
    /// server watch it.
    pub fn stop_token(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops accepting, lets in-flight requests finish (up to 10 s), and waits.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let mut task = self.task;
        if tokio::time::timeout(DRAIN_TIMEOUT, &mut task)
            .await
            .is_err()
        {
            task.abort();
            let _ = task.await;
        }
    }

    /// Stops at once: open connections are cut, in-flight uploads are lost.
    pub async fn abort(self) {
        self.stop.cancel();
        self.task.abort();
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
    let addr = listener.local_addr()?;
    let token = stop.clone();
    let task = tokio::spawn(async move {
        let result = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { token.cancelled().await })
        .await;
        if let Err(e) = result {
            tracing::error!(event = "SERVER.ERROR", %addr, error = %e);
        }
    });
    Ok(ServerHandle { addr, stop, task })
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
