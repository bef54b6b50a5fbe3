//! The direct async [`Client`]: one method per operation, each returning
//! `Result<_, mictlanx::Error>`.
//!
//! A ball is split into chunks; each chunk is two router calls (R1 metadata, R2 bytes) and is
//! retried on its own, on another router after a router failure. Reads verify every chunk's
//! SHA-256 and the whole ball's before returning anything. Memory is bounded by the
//! concurrency times the chunk size, never by the ball's size (except for `get_bytes` and
//! `put_bytes`, which hold the ball by definition).
//!
//! Every transfer takes a [`CancellationToken`](tokio_util::sync::CancellationToken) and a
//! progress callback in its options ([`PutOptions`], [`GetOptions`]), for callers such as a
//! task queue that report progress and cancel jobs. The client itself has no queue.

mod builder;
mod credentials;
mod delete;
mod digest;
mod encryption;
mod file_writer;
mod get;
mod get_file;
mod get_range;
mod get_stream;
mod http;
mod listing;
mod options;
mod paths;
mod policies;
mod put;
mod retry;
mod source;
mod tags;
mod temp_file;
mod transport;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio_util::sync::{CancellationToken, DropGuard};

use crate::routers::heartbeat;
use crate::routers::{RouterMetrics, RouterPool};
use crate::Error;

pub use builder::{
    ClientBuilder, ClientConfig, DEFAULT_CHUNK_SIZE, DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT, LARGE_BALL_CHUNK_SIZE,
    LARGE_BALL_THRESHOLD,
};
pub use credentials::BearerToken;
pub use get_file::GetFileResult;
pub use options::{
    DeleteBucketResult, GetOptions, GetResult, Progress, ProgressFn, PutOptions, PutResult,
};
pub use policies::Policies;
pub use retry::RetryConfig;

/// An async MictlanX client.
///
/// Cheap to clone (an `Arc` inside; no need to wrap it in one): clones share one pooled HTTP
/// client, the routers' state, the retry budget and the heartbeat. The heartbeat task stops
/// when the last clone is dropped.
///
/// # Examples
///
/// ```no_run
/// use mictlanx::{Client, PutOptions};
///
/// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
/// let client = Client::builder()
///     .routers_uri("mictlanx://router-0@127.0.0.1:60666/?protocol=http")
///     .build()?;
/// let put = client
///     .put_bytes("reports", "q3", b"hello".to_vec(), PutOptions::default())
///     .await?;
/// assert_eq!(put.size, 5);
/// let got = client.get_bytes("reports", "q3").await?;
/// assert_eq!(&got.data[..], b"hello");
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

/// What every clone of a client shares.
pub(crate) struct Inner {
    pub config: ClientConfig,
    pub http: reqwest::Client,
    pub routers: Arc<RouterPool>,
    pub budget: retry::RetryBudget,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    /// Cancels the heartbeat when the last clone goes.
    _heartbeat: Option<DropGuard>,
    #[cfg(test)]
    heartbeat_token: Option<CancellationToken>,
}

impl Inner {
    pub fn add_bytes_up(&self, n: usize) {
        self.bytes_up
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn add_bytes_down(&self, n: usize) {
        self.bytes_down
            .fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
    }
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("client_id", &self.inner.config.client_id)
            .field("routers", &self.inner.config.routers.len())
            .field("lb", &self.inner.config.lb)
            .finish_non_exhaustive()
    }
}

/// A snapshot of a client's counters, from [`Client::metrics`].
#[derive(Debug, Clone, PartialEq)]
pub struct ClientMetrics {
    /// One entry per router, in configuration order.
    pub routers: Vec<RouterMetrics>,
    /// Chunk bytes uploaded (each chunk once, whatever its replication).
    pub bytes_up: u64,
    /// Chunk bytes downloaded (verified or not).
    pub bytes_down: u64,
    /// Retries the retry budget refused.
    pub retries_denied: u64,
}

impl Client {
    /// A builder with every setting at its default.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::new()
    }

    /// A client configured from `MICTLANX_*` variables and `./.env` (see
    /// [`ClientBuilder::from_env`]).
    ///
    /// # Errors
    ///
    /// As [`ClientBuilder::build`].
    pub fn from_env() -> Result<Client, Error> {
        ClientBuilder::from_env().build()
    }

    fn from_config(config: ClientConfig) -> Result<Client, Error> {
        let http = transport::configure(reqwest::Client::builder(), &config)?
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .user_agent(concat!("mictlanx-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::from_transport)?;
        let routers = Arc::new(RouterPool::new(&config.routers, config.lb));
        let token = CancellationToken::new();
        let heartbeat_started = match (
            config.heartbeat_interval,
            tokio::runtime::Handle::try_current(),
        ) {
            (Some(interval), Ok(runtime)) => {
                let probe_http = http.clone();
                // A probe must end before the next one is due.
                let probe_timeout = interval.min(config.timeout);
                let want_stats = config.lb.needs_disk_stats();
                runtime.spawn(heartbeat::run(
                    Arc::clone(&routers),
                    interval,
                    token.clone(),
                    move |router| {
                        heartbeat::probe_http(probe_http.clone(), router, probe_timeout, want_stats)
                    },
                ));
                true
            }
            (Some(_), Err(_)) => {
                tracing::warn!("no tokio runtime: the client is built without heartbeat");
                false
            }
            (None, _) => false,
        };
        let budget = retry::RetryBudget::new(&config.retry);
        Ok(Client {
            inner: Arc::new(Inner {
                config,
                http,
                routers,
                budget,
                bytes_up: AtomicU64::new(0),
                bytes_down: AtomicU64::new(0),
                #[cfg(test)]
                heartbeat_token: heartbeat_started.then(|| token.clone()),
                _heartbeat: heartbeat_started.then(|| token.drop_guard()),
            }),
        })
    }

    /// The validated configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// A snapshot of the counters: per router (health, latency, requests, failures,
    /// retries) and bytes moved.
    pub fn metrics(&self) -> ClientMetrics {
        ClientMetrics {
            routers: self
                .inner
                .routers
                .all()
                .iter()
                .map(|r| r.metrics())
                .collect(),
            bytes_up: self.inner.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.inner.bytes_down.load(Ordering::Relaxed),
            retries_denied: self.inner.budget.denied(),
        }
    }
}

/// The error a cancelled operation returns.
pub(crate) fn cancelled() -> Error {
    Error::Cancelled
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn dropping_the_last_clone_stops_the_heartbeat() {
        let client = Client::builder()
            .routers_uri("mictlanx://r0@127.0.0.1:9/?protocol=http")
            .heartbeat_interval(Duration::from_secs(3600))
            .build()
            .unwrap();
        let token = client.inner.heartbeat_token.clone().unwrap();
        let clone = client.clone();
        drop(client);
        assert!(!token.is_cancelled());
        drop(clone);
        assert!(token.is_cancelled());
    }

    #[tokio::test]
    async fn no_heartbeat_when_disabled() {
        let client = Client::builder()
            .routers_uri("mictlanx://r0@127.0.0.1:9/?protocol=http")
            .heartbeat_interval(Duration::ZERO)
            .build()
            .unwrap();
        assert!(client.inner.heartbeat_token.is_none());
        let m = client.metrics();
        assert_eq!(m.routers.len(), 1);
        assert_eq!((m.bytes_up, m.bytes_down, m.retries_denied), (0, 0, 0));
        assert!(format!("{client:?}").contains("client_id"));
    }

    #[test]
    fn built_outside_a_runtime_has_no_heartbeat() {
        let client = Client::builder()
            .routers_uri("mictlanx://r0@127.0.0.1:9/?protocol=http")
            .build()
            .unwrap();
        assert!(client.inner.heartbeat_token.is_none());
    }

    #[test]
    fn cancelled_errors_are_recognised() {
        assert!(cancelled().is_cancelled());
        assert!(!cancelled().is_retryable());
        assert!(!Error::Io(std::io::Error::other("x")).is_cancelled());
    }
}
