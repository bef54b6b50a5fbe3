//! [`ClientBuilder`]: configuration in code or from `MICTLANX_*` variables, validated once in
//! [`ClientBuilder::build`].
//!
//! Setters never fail: values that need parsing (router lists, sizes, names from the
//! environment) are kept as given and parsed in `build()`, which is the one place that
//! reports configuration errors. Later calls override earlier ones.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::credentials::BearerToken;
use super::retry::RetryConfig;
use super::Client;
use crate::routers::LbAlgorithm;
use crate::size::parse_size;
use crate::uri::{parse_legacy, parse_routers, NodeAddress, Protocol, SCHEME};
use crate::Error;

/// Default chunk size: `"256kb"` (256 000 bytes), as the original client.
pub const DEFAULT_CHUNK_SIZE: &str = "256kb";
/// Balls larger than this use [`LARGE_BALL_CHUNK_SIZE`] when no chunk size was configured.
pub const LARGE_BALL_THRESHOLD: u64 = 16_000_000;
/// Chunk size of balls over [`LARGE_BALL_THRESHOLD`] when no chunk size was configured
/// (1 MB). Each chunk costs the peers a file, two fsyncs and a metadata record, so a 256 MB
/// ball put as 1 MB chunks is stored about 1.6 times as fast as in 256 kB chunks (measured
/// with `mictlanx bench put-large --chunk-size`), while memory stays at about
/// `max_concurrency × 1 MB`.
pub const LARGE_BALL_CHUNK_SIZE: u64 = 1_000_000;
/// Default chunks in flight per operation.
pub const DEFAULT_MAX_CONCURRENCY: usize = 8;
/// Default per-request timeout (the original's 120 s: whole chunks of 25 MB are normal).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(120);
/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default heartbeat interval (the original's 5 s).
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// The validated configuration of a [`Client`], as [`Client::config`] shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientConfig {
    /// The routers, in configuration order.
    pub routers: Vec<NodeAddress>,
    /// Client id, sent as `producer_id` of every chunk.
    pub client_id: String,
    /// Load balancer.
    pub lb: LbAlgorithm,
    /// Per-request timeout.
    pub timeout: Duration,
    /// Connect timeout.
    pub connect_timeout: Duration,
    /// Default chunk size in bytes.
    pub chunk_size: u64,
    /// No chunk size was configured (builder or `MICTLANX_CHUNK_SIZE`): balls over
    /// [`LARGE_BALL_THRESHOLD`] then use [`LARGE_BALL_CHUNK_SIZE`] instead of `chunk_size`.
    pub auto_chunk_size: bool,
    /// Default chunks in flight per operation.
    pub max_concurrency: usize,
    /// `MICTLANX_MAX_WORKERS`: worker count for a task queue built on the client (the direct
    /// client does not use it).
    pub max_workers: Option<usize>,
    /// Retry policy.
    pub retry: RetryConfig,
    /// Heartbeat interval; `None` when the heartbeat is off.
    pub heartbeat_interval: Option<Duration>,
    /// `MICTLANX_LOG_PATH`: where a binary may write logs. The library installs no subscriber.
    pub log_path: Option<PathBuf>,
    /// `MICTLANX_TOKEN`: sent as `Authorization: Bearer` on every request.
    pub token: Option<BearerToken>,
    /// `MICTLANX_CA_FILE`: PEM certificates trusted for `https` routers, besides the public
    /// roots.
    pub ca_file: Option<PathBuf>,
    /// Certificates are not verified at all ([`ClientBuilder::danger_accept_invalid_certs`]).
    pub danger_accept_invalid_certs: bool,
}

#[derive(Debug, Clone)]
enum RoutersSpec {
    Uri(String),
    Legacy {
        routers: String,
        protocol: Option<String>,
    },
    List(Vec<NodeAddress>),
}

/// A value set in code, or text from the environment still to parse.
#[derive(Debug, Clone)]
enum Setting<T> {
    Value(T),
    Raw { var: &'static str, text: String },
}

/// Builds a [`Client`]. Obtain one with [`Client::builder`] or [`ClientBuilder::from_env`].
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use mictlanx::{Client, LbAlgorithm};
///
/// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
/// let client = Client::builder()
///     .routers_uri("mictlanx://router-0@127.0.0.1:60666/?protocol=http")
///     .client_id("reports-service")
///     .lb(LbAlgorithm::LeastLatency)
///     .chunk_size("1MB")
///     .timeout(Duration::from_secs(30))
///     .build()?;
/// # let _ = client;
/// # Ok(())
/// # }
/// ```
#[must_use]
#[derive(Debug, Clone, Default)]
pub struct ClientBuilder {
    routers: Option<RoutersSpec>,
    client_id: Option<String>,
    lb: Option<Setting<LbAlgorithm>>,
    timeout: Option<Setting<Duration>>,
    connect_timeout: Option<Duration>,
    chunk_size: Option<String>,
    max_concurrency: Option<usize>,
    max_workers: Option<Setting<usize>>,
    retry: Option<RetryConfig>,
    heartbeat_interval: Option<Duration>,
    log_path: Option<PathBuf>,
    token: Option<BearerToken>,
    ca_file: Option<PathBuf>,
    danger_accept_invalid_certs: bool,
    /// Problems found before `build()` (an unreadable `.env`), reported by it.
    deferred_errors: Vec<String>,
}

impl ClientBuilder {
    /// An empty builder: every setting at its default, no routers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reads the configuration from the process environment and a `.env` file in the working
    /// directory (read with `dotenvy`; a process variable always wins over the file).
    ///
    /// Variables, all optional (see [`from_vars`](Self::from_vars) for their meaning):
    /// `MICTLANX_URI`, `MICTLANX_ROUTERS`, `MICTLANX_PROTOCOL`, `MICTLANX_CLIENT_ID`,
    /// `MICTLANX_MAX_WORKERS`, `MICTLANX_LOG_PATH`, `MICTLANX_LB`, `MICTLANX_TIMEOUT_SECS`,
    /// `MICTLANX_CHUNK_SIZE`, `MICTLANX_TOKEN`, `MICTLANX_CA_FILE`. Variables whose value is not UTF-8 are ignored.
    pub fn from_env() -> Self {
        let process = std::env::vars_os().filter_map(utf8_pair);
        Self::from_env_file_and_vars(Path::new(".env"), process)
    }

    /// As [`from_env`](Self::from_env), with the `.env` path and the process variables given,
    /// so that precedence is testable without touching the real environment.
    pub(crate) fn from_env_file_and_vars(
        dotenv: &Path,
        process: impl Iterator<Item = (String, String)>,
    ) -> Self {
        let mut vars = BTreeMap::new();
        let mut errors = Vec::new();
        if dotenv.is_file() {
            match dotenvy::from_path_iter(dotenv) {
                Ok(items) => {
                    for item in items {
                        match item {
                            Ok((k, v)) => {
                                vars.insert(k, v);
                            }
                            Err(e) => errors.push(format!("{}: {e}", dotenv.display())),
                        }
                    }
                }
                Err(e) => errors.push(format!("{}: {e}", dotenv.display())),
            }
        }
        // Process variables override the file.
        vars.extend(process);
        let mut builder = Self::from_vars(vars);
        builder.deferred_errors.extend(errors);
        builder
    }

    /// Configuration from `(name, value)` pairs, e.g. a parsed `.env` file or a test's
    /// variables. Unknown names and empty values are ignored. Values are parsed by
    /// [`build`](Self::build).
    ///
    /// | variable | meaning |
    /// |---|---|
    /// | `MICTLANX_URI` | `mictlanx://id@host:port,...?protocol=http` (wins over `MICTLANX_ROUTERS`) |
    /// | `MICTLANX_ROUTERS` | legacy `id:host:port` list, whitespace-separated (port `-1` = none) |
    /// | `MICTLANX_PROTOCOL` | protocol of the legacy list (`http` by default) |
    /// | `MICTLANX_CLIENT_ID` | client id |
    /// | `MICTLANX_MAX_WORKERS` | worker count for a task queue ([`ClientConfig::max_workers`]) |
    /// | `MICTLANX_LOG_PATH` | log directory for binaries ([`ClientConfig::log_path`]) |
    /// | `MICTLANX_LB` | load balancer name ([`LbAlgorithm`]) |
    /// | `MICTLANX_TIMEOUT_SECS` | per-request timeout in seconds (decimals allowed) |
    /// | `MICTLANX_CHUNK_SIZE` | default chunk size (`"256kb"`, `"1MiB"`) |
    /// | `MICTLANX_TOKEN` | bearer token sent on every request ([`token`](Self::token)) |
    /// | `MICTLANX_CA_FILE` | PEM CA certificates for `https` routers ([`ca_file`](Self::ca_file)) |
    ///
    /// # Examples
    ///
    /// ```
    /// use mictlanx::ClientBuilder;
    ///
    /// let vars = [
    ///     ("MICTLANX_ROUTERS".to_string(), "router-0:localhost:60666".to_string()),
    ///     ("MICTLANX_PROTOCOL".to_string(), "http".to_string()),
    ///     ("MICTLANX_LB".to_string(), "2choices".to_string()),
    /// ];
    /// let builder = ClientBuilder::from_vars(vars);
    /// # let _ = builder;
    /// ```
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut builder = Self::new();
        let mut uri = None;
        let mut legacy = None;
        let mut protocol = None;
        for (name, value) in vars {
            let value = value.trim().to_owned();
            if value.is_empty() {
                continue;
            }
            match name.as_str() {
                "MICTLANX_URI" => uri = Some(value),
                "MICTLANX_ROUTERS" => legacy = Some(value),
                "MICTLANX_PROTOCOL" => protocol = Some(value),
                "MICTLANX_CLIENT_ID" => builder.client_id = Some(value),
                "MICTLANX_MAX_WORKERS" => {
                    builder.max_workers = Some(Setting::Raw {
                        var: "MICTLANX_MAX_WORKERS",
                        text: value,
                    })
                }
                "MICTLANX_LOG_PATH" => builder.log_path = Some(PathBuf::from(value)),
                "MICTLANX_LB" => {
                    builder.lb = Some(Setting::Raw {
                        var: "MICTLANX_LB",
                        text: value,
                    })
                }
                "MICTLANX_TIMEOUT_SECS" => {
                    builder.timeout = Some(Setting::Raw {
                        var: "MICTLANX_TIMEOUT_SECS",
                        text: value,
                    })
                }
                "MICTLANX_CHUNK_SIZE" => builder.chunk_size = Some(value),
                "MICTLANX_TOKEN" => builder.token = Some(BearerToken::new(value)),
                "MICTLANX_CA_FILE" => builder.ca_file = Some(PathBuf::from(value)),
                _ => {}
            }
        }
        builder.routers = match (uri, legacy) {
            (Some(uri), _) => Some(RoutersSpec::Uri(uri)),
            (None, Some(routers)) => Some(RoutersSpec::Legacy { routers, protocol }),
            (None, None) => None,
        };
        builder
    }

    /// The routers, as a `mictlanx://` URI (protocol `https` unless its query says otherwise)
    /// or a legacy `id:host:port` list (protocol `http`).
    pub fn routers_uri(mut self, uri: &str) -> Self {
        self.routers = Some(RoutersSpec::Uri(uri.to_owned()));
        self
    }

    /// The routers, as parsed addresses.
    pub fn routers(mut self, routers: Vec<NodeAddress>) -> Self {
        self.routers = Some(RoutersSpec::List(routers));
        self
    }

    /// The client id (default `client-<random>`), sent as `producer_id`.
    pub fn client_id(mut self, id: impl Into<String>) -> Self {
        self.client_id = Some(id.into());
        self
    }

    /// The client id to use when none was set, e.g. by `MICTLANX_CLIENT_ID` in the process
    /// environment or `.env` (a program's own default, which configuration overrides).
    ///
    /// ```
    /// use mictlanx::ClientBuilder;
    ///
    /// let vars = [("MICTLANX_CLIENT_ID".to_string(), "from-env".to_string())];
    /// let b = ClientBuilder::from_vars(vars)
    ///     .routers_uri("mictlanx://r@127.0.0.1:1/?protocol=http")
    ///     .default_client_id("my-tool");
    /// # let _ = b;
    /// ```
    pub fn default_client_id(mut self, id: impl Into<String>) -> Self {
        if self.client_id.is_none() {
            self.client_id = Some(id.into());
        }
        self
    }

    /// The load balancer (default [`LbAlgorithm::RoundRobin`]).
    pub fn lb(mut self, lb: LbAlgorithm) -> Self {
        self.lb = Some(Setting::Value(lb));
        self
    }

    /// The per-request timeout (default 120 s).
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(Setting::Value(timeout));
        self
    }

    /// The connect timeout (default 5 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = Some(timeout);
        self
    }

    /// The chunk size of every ball, a human size such as `"256kb"` or `"1MiB"`. Without it
    /// (and without `MICTLANX_CHUNK_SIZE`), balls use 256 kB chunks, or
    /// [`LARGE_BALL_CHUNK_SIZE`] when they are larger than [`LARGE_BALL_THRESHOLD`].
    pub fn chunk_size(mut self, size: impl Into<String>) -> Self {
        self.chunk_size = Some(size.into());
        self
    }

    /// Default chunks in flight per operation (default 8).
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = Some(n);
        self
    }

    /// The retry policy (default [`RetryConfig::default`]).
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = Some(retry);
        self
    }

    /// How often the heartbeat probes the routers (default 5 s); [`Duration::ZERO`] turns the
    /// heartbeat off (routers are then judged by requests alone).
    pub fn heartbeat_interval(mut self, interval: Duration) -> Self {
        self.heartbeat_interval = Some(interval);
        self
    }

    /// The bearer token sent as `Authorization: Bearer` on every request (routers started
    /// with `--auth-tokens` need one). Never shown by `Debug` or in logs.
    ///
    /// ```
    /// use mictlanx::Client;
    ///
    /// let builder = Client::builder()
    ///     .routers_uri("mictlanx://router-0@127.0.0.1:60666/?protocol=https")
    ///     .token("ingest-token-0123456789");
    /// assert!(!format!("{builder:?}").contains("ingest-token"));
    /// ```
    pub fn token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(BearerToken::new(token));
        self
    }

    /// A PEM file of CA certificates to trust for `https` routers, besides the public roots
    /// (e.g. the CA that signed a private cluster's certificates).
    ///
    /// ```
    /// use mictlanx::Client;
    ///
    /// let builder = Client::builder()
    ///     .routers_uri("mictlanx://router-0@127.0.0.1:60666/?protocol=https")
    ///     .ca_file("/etc/mictlanx/ca.pem");
    /// # let _ = builder;
    /// ```
    pub fn ca_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.ca_file = Some(path.into());
        self
    }

    /// Turns certificate verification **off**: any certificate, for any name, is accepted,
    /// so anyone on the path can read and change the traffic. For throwaway test setups
    /// only; [`build`](Self::build) logs a warning (`event = "TLS.VERIFY.OFF"`). There is no
    /// environment variable for it, on purpose.
    ///
    /// ```
    /// use mictlanx::Client;
    ///
    /// let builder = Client::builder()
    ///     .routers_uri("mictlanx://router-0@127.0.0.1:60666/?protocol=https")
    ///     .danger_accept_invalid_certs(true);
    /// # let _ = builder;
    /// ```
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.danger_accept_invalid_certs = accept;
        self
    }

    /// Validates everything and builds the client.
    ///
    /// The heartbeat task is spawned on the current tokio runtime; called outside a runtime,
    /// the client is built without heartbeat (a warning is logged).
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] naming the bad setting (no routers, a zero chunk size or
    /// concurrency, a bad number or balancer name, an unreadable `.env`),
    /// [`Error::InvalidUri`] for a router list that does not parse, [`Error::InvalidSize`]
    /// for a chunk size that does not parse, [`Error::Validation`] for a token a header
    /// cannot carry or a CA file that cannot be read, [`Error::Network`] if the HTTP client
    /// cannot be created.
    pub fn build(self) -> Result<Client, Error> {
        let config = self.into_config()?;
        Client::from_config(config)
    }

    /// Everything `build()` checks, without starting anything.
    pub(crate) fn into_config(self) -> Result<ClientConfig, Error> {
        if let Some(first) = self.deferred_errors.first() {
            return Err(invalid(format!("cannot read the environment file {first}")));
        }
        let routers = match self.routers {
            None => {
                return Err(invalid(
                    "no routers configured: call routers_uri()/routers() or set MICTLANX_URI or MICTLANX_ROUTERS",
                ))
            }
            Some(RoutersSpec::List(list)) => list,
            Some(RoutersSpec::Uri(uri)) => parse_router_text(&uri, Protocol::Http)?,
            Some(RoutersSpec::Legacy { routers, protocol }) => {
                let protocol = match protocol {
                    Some(p) => p
                        .parse::<Protocol>()
                        .map_err(|_| invalid(format!("MICTLANX_PROTOCOL {p:?} is not http or https")))?,
                    None => Protocol::Http,
                };
                parse_router_text(&routers, protocol)?
            }
        };
        if routers.is_empty() {
            return Err(invalid("the router list is empty"));
        }
        let lb = match self.lb {
            None => LbAlgorithm::default(),
            Some(Setting::Value(lb)) => lb,
            Some(Setting::Raw { var, text }) => {
                text.parse().map_err(|e| invalid(format!("{var}: {e}")))?
            }
        };
        let timeout = match self.timeout {
            None => DEFAULT_TIMEOUT,
            Some(Setting::Value(t)) => t,
            Some(Setting::Raw { var, text }) => text
                .parse::<f64>()
                .ok()
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .ok_or_else(|| invalid(format!("{var} {text:?} is not a number of seconds")))?,
        };
        if timeout.is_zero() {
            return Err(invalid("the request timeout must be larger than zero"));
        }
        let connect_timeout = self.connect_timeout.unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout.is_zero() {
            return Err(invalid("the connect timeout must be larger than zero"));
        }
        let chunk_text = self.chunk_size.as_deref().unwrap_or(DEFAULT_CHUNK_SIZE);
        let chunk_size = parse_size(chunk_text)?;
        if chunk_size == 0 {
            return Err(invalid(format!("chunk size {chunk_text:?} is zero bytes")));
        }
        let max_concurrency = self.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
        if max_concurrency == 0 {
            return Err(invalid("max_concurrency must be at least 1"));
        }
        let max_workers = match self.max_workers {
            None => None,
            Some(Setting::Value(n)) => Some(n),
            Some(Setting::Raw { var, text }) => Some(
                text.parse::<usize>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| invalid(format!("{var} {text:?} is not a positive integer")))?,
            ),
        };
        let retry = self.retry.unwrap_or_default();
        retry.validate().map_err(invalid)?;
        let heartbeat_interval = match self.heartbeat_interval {
            None => Some(DEFAULT_HEARTBEAT_INTERVAL),
            Some(d) if d.is_zero() => None,
            Some(d) => Some(d),
        };
        let client_id = match self.client_id {
            Some(id) if id.trim().is_empty() => return Err(invalid("the client id is empty")),
            Some(id) => id,
            None => format!("client-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]),
        };
        if let Some(token) = &self.token {
            token.authorization()?;
        }
        Ok(ClientConfig {
            routers,
            client_id,
            lb,
            timeout,
            connect_timeout,
            chunk_size,
            auto_chunk_size: self.chunk_size.is_none(),
            max_concurrency,
            max_workers,
            retry,
            heartbeat_interval,
            log_path: self.log_path,
            token: self.token,
            ca_file: self.ca_file,
            danger_accept_invalid_certs: self.danger_accept_invalid_certs,
        })
    }
}

/// A `mictlanx://` URI or a legacy list (with `legacy_protocol`).
fn parse_router_text(text: &str, legacy_protocol: Protocol) -> Result<Vec<NodeAddress>, Error> {
    let text = text.trim();
    if text.starts_with(SCHEME) {
        Ok(parse_routers(text)?)
    } else {
        Ok(parse_legacy(text, legacy_protocol)?)
    }
}

fn invalid(message: impl Into<String>) -> Error {
    Error::Validation {
        message: message.into(),
    }
}

fn utf8_pair((k, v): (OsString, OsString)) -> Option<(String, String)> {
    Some((k.into_string().ok()?, v.into_string().ok()?))
}

#[cfg(test)]
mod default_client_id_tests {
    use super::*;

    #[test]
    fn configuration_wins_over_a_program_default() {
        let vars = [("MICTLANX_CLIENT_ID".to_string(), "from-env".to_string())];
        let b = ClientBuilder::from_vars(vars).default_client_id("tool");
        assert_eq!(b.client_id.as_deref(), Some("from-env"));
        let b = ClientBuilder::new().default_client_id("tool");
        assert_eq!(b.client_id.as_deref(), Some("tool"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn a_configured_chunk_size_is_kept_for_every_ball() {
        let base = || ClientBuilder::new().routers_uri("mictlanx://r0@127.0.0.1:60666");
        let by_builder = base().chunk_size("256kb").into_config().unwrap();
        assert!(!by_builder.auto_chunk_size);
        let by_env = ClientBuilder::from_vars(vars(&[
            ("MICTLANX_URI", "mictlanx://r0@127.0.0.1:60666"),
            ("MICTLANX_CHUNK_SIZE", "2MB"),
        ]))
        .into_config()
        .unwrap();
        assert!(!by_env.auto_chunk_size);
        assert_eq!(by_env.chunk_size, 2_000_000);
    }

    #[test]
    fn defaults() {
        let config = ClientBuilder::new()
            .routers_uri("mictlanx://r0@127.0.0.1:60666/?protocol=http")
            .into_config()
            .unwrap();
        assert_eq!(config.routers.len(), 1);
        assert_eq!(config.routers[0].base_url(), "http://127.0.0.1:60666");
        assert_eq!(config.chunk_size, 256_000);
        assert!(
            config.auto_chunk_size,
            "nothing configured: large balls get larger chunks"
        );
        assert_eq!(config.max_concurrency, 8);
        assert_eq!(config.lb, LbAlgorithm::RoundRobin);
        assert_eq!(config.timeout, DEFAULT_TIMEOUT);
        assert_eq!(config.heartbeat_interval, Some(Duration::from_secs(5)));
        assert_eq!(config.retry, RetryConfig::default());
        assert!(config.client_id.starts_with("client-"));
        assert_eq!(config.max_workers, None);
    }

    #[test]
    fn every_variable_is_read() {
        let config = ClientBuilder::from_vars(vars(&[
            (
                "MICTLANX_ROUTERS",
                "r0:localhost:60666 r1:example.org/v0/router:-1",
            ),
            ("MICTLANX_PROTOCOL", "HTTPS"),
            ("MICTLANX_CLIENT_ID", "client-7"),
            ("MICTLANX_MAX_WORKERS", "4"),
            ("MICTLANX_LOG_PATH", "/tmp/mictlanx-logs"),
            ("MICTLANX_LB", "sort_uf"),
            ("MICTLANX_TIMEOUT_SECS", "2.5"),
            ("MICTLANX_CHUNK_SIZE", "1MiB"),
            ("UNRELATED", "x"),
        ]))
        .into_config()
        .unwrap();
        assert_eq!(config.routers[0].base_url(), "https://localhost:60666");
        assert_eq!(
            config.routers[1].base_url(),
            "https://example.org/v0/router"
        );
        assert_eq!(config.client_id, "client-7");
        assert_eq!(config.max_workers, Some(4));
        assert_eq!(config.log_path, Some(PathBuf::from("/tmp/mictlanx-logs")));
        assert_eq!(config.lb, LbAlgorithm::SortUf);
        assert_eq!(config.timeout, Duration::from_millis(2500));
        assert_eq!(config.chunk_size, 1_048_576);
    }

    #[test]
    fn uri_wins_over_legacy_and_empty_values_are_ignored() {
        let config = ClientBuilder::from_vars(vars(&[
            ("MICTLANX_ROUTERS", "r0:localhost:1"),
            ("MICTLANX_URI", "mictlanx://r9@127.0.0.1:9/?protocol=http"),
            ("MICTLANX_CHUNK_SIZE", "  "),
        ]))
        .into_config()
        .unwrap();
        assert_eq!(config.routers[0].id.as_deref(), Some("r9"));
        assert_eq!(config.chunk_size, 256_000);
        // A legacy list given to routers_uri() works too, with http.
        let config = ClientBuilder::new()
            .routers_uri("r0:localhost:60666")
            .into_config()
            .unwrap();
        assert_eq!(config.routers[0].base_url(), "http://localhost:60666");
    }

    #[test]
    fn code_setters_override_the_environment() {
        let config = ClientBuilder::from_vars(vars(&[
            ("MICTLANX_URI", "mictlanx://r0@h:1"),
            ("MICTLANX_LB", "HASH"),
        ]))
        .lb(LbAlgorithm::LeastLatency)
        .chunk_size("10kb")
        .max_concurrency(2)
        .heartbeat_interval(Duration::ZERO)
        .into_config()
        .unwrap();
        assert_eq!(config.lb, LbAlgorithm::LeastLatency);
        assert_eq!(config.chunk_size, 10_000);
        assert_eq!(config.max_concurrency, 2);
        assert_eq!(config.heartbeat_interval, None);
    }

    #[test]
    fn build_reports_each_bad_setting() {
        let base = || ClientBuilder::new().routers_uri("mictlanx://r0@h:1");
        let message = |b: ClientBuilder| {
            b.into_config()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        assert!(message(ClientBuilder::new()).contains("no routers"));
        assert!(matches!(
            ClientBuilder::new()
                .routers_uri("mictlanx://")
                .into_config(),
            Err(Error::InvalidUri(_))
        ));
        assert!(matches!(
            base().chunk_size("ten").into_config(),
            Err(Error::InvalidSize(_))
        ));
        assert!(message(base().chunk_size("0")).contains("zero"));
        assert!(message(base().max_concurrency(0)).contains("max_concurrency"));
        assert!(message(base().timeout(Duration::ZERO)).contains("timeout"));
        assert!(message(base().client_id(" ")).contains("client id"));
        assert!(message(base().routers(Vec::new())).contains("empty"));
        assert!(message(base().retry(RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        }))
        .contains("max_attempts"));
        let env = |pairs: &[(&str, &str)]| {
            let mut all = vars(&[("MICTLANX_URI", "mictlanx://r0@h:1")]);
            all.extend(vars(pairs));
            message(ClientBuilder::from_vars(all))
        };
        assert!(env(&[("MICTLANX_LB", "FASTEST")]).contains("MICTLANX_LB"));
        assert!(env(&[("MICTLANX_TIMEOUT_SECS", "soon")]).contains("MICTLANX_TIMEOUT_SECS"));
        assert!(env(&[("MICTLANX_TIMEOUT_SECS", "-1")]).contains("MICTLANX_TIMEOUT_SECS"));
        assert!(env(&[("MICTLANX_MAX_WORKERS", "0")]).contains("MICTLANX_MAX_WORKERS"));
        let legacy = message(ClientBuilder::from_vars(vars(&[
            ("MICTLANX_ROUTERS", "r0:h:1"),
            ("MICTLANX_PROTOCOL", "ftp"),
        ])));
        assert!(legacy.contains("MICTLANX_PROTOCOL"));
    }

    #[test]
    fn token_and_ca_file_come_from_the_environment_and_never_show() {
        let config = ClientBuilder::from_vars(vars(&[
            ("MICTLANX_URI", "mictlanx://r0@h:1/?protocol=https"),
            ("MICTLANX_TOKEN", "env-token-0123456789"),
            ("MICTLANX_CA_FILE", "/etc/mictlanx/ca.pem"),
        ]))
        .into_config()
        .unwrap();
        assert_eq!(
            config.token.as_ref().map(BearerToken::secret),
            Some("env-token-0123456789")
        );
        assert_eq!(config.ca_file, Some(PathBuf::from("/etc/mictlanx/ca.pem")));
        assert!(!config.danger_accept_invalid_certs);
        assert!(!format!("{config:?}").contains("env-token"));
        // Code wins over the environment, and a bad token is refused without quoting it.
        let builder = ClientBuilder::from_vars(vars(&[
            ("MICTLANX_URI", "mictlanx://r0@h:1"),
            ("MICTLANX_TOKEN", "env-token-0123456789"),
        ]))
        .token("code-token-0123456789");
        assert!(!format!("{builder:?}").contains("token-0123456789"));
        let config = builder.into_config().unwrap();
        assert_eq!(config.token.unwrap().secret(), "code-token-0123456789");
        let err = ClientBuilder::new()
            .routers_uri("mictlanx://r0@h:1")
            .token("two words")
            .into_config()
            .unwrap_err();
        assert!(matches!(err, Error::Validation { .. }));
        assert!(!err.to_string().contains("two words"), "{err}");
    }

    #[test]
    fn an_unreadable_or_empty_ca_file_fails_the_build() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let base = || ClientBuilder::new().routers_uri("mictlanx://r0@h:1/?protocol=https");
        let err = base().ca_file(&missing).build().unwrap_err();
        assert!(err.to_string().contains("MICTLANX_CA_FILE"), "{err}");
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificates here\n").unwrap();
        let err = base().ca_file(&empty).build().unwrap_err();
        assert!(matches!(err, Error::Validation { .. }), "{err}");
    }

    #[test]
    fn dotenv_file_is_read_and_process_variables_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "MICTLANX_URI=mictlanx://file-router@127.0.0.1:1/?protocol=http\nMICTLANX_CLIENT_ID=from-file\nMICTLANX_CHUNK_SIZE=10kb\n",
        )
        .unwrap();
        let process = vars(&[("MICTLANX_CLIENT_ID", "from-process")]);
        let config = ClientBuilder::from_env_file_and_vars(&path, process.into_iter())
            .into_config()
            .unwrap();
        assert_eq!(config.client_id, "from-process");
        assert_eq!(config.routers[0].id.as_deref(), Some("file-router"));
        assert_eq!(config.chunk_size, 10_000);
        // A missing file is no error.
        let missing = dir.path().join("nope.env");
        let builder = ClientBuilder::from_env_file_and_vars(
            &missing,
            vars(&[("MICTLANX_URI", "mictlanx://r@h:1")]).into_iter(),
        );
        assert!(builder.into_config().is_ok());
        // A malformed file is reported by build().
        std::fs::write(&path, "MICTLANX_URI='unterminated\n").unwrap();
        let err = ClientBuilder::from_env_file_and_vars(&path, std::iter::empty())
            .into_config()
            .unwrap_err();
        assert!(err.to_string().contains(".env"), "{err}");
    }
}
