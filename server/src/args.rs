//! Command-line flags shared by `mictlanx-server` (`peer`, `router`, `cluster`) and
//! `mictlanx up`: clap [`Args`](clap::Args) structs to `#[command(flatten)]`, each of which
//! turns itself into configuration. Every flag also reads a `MICTLANX_*` variable
//! (docs/configuration.md).
//!
//! # Examples
//!
//! ```
//! use clap::Parser;
//! use mictlanx_server::args::LocalClusterArgs;
//!
//! #[derive(Parser)]
//! struct Up {
//!     #[command(flatten)]
//!     cluster: LocalClusterArgs,
//! }
//!
//! let up = Up::try_parse_from(["up", "--capacity", "1GB"])?;
//! let builder = up.cluster.configure(mictlanx_server::LocalCluster::builder())?;
//! # let _ = builder;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{AuthConfig, ClusterToken, TokenFileError, TokenSet};
use crate::serve::ConnectionLimits;
use crate::tls::TlsFiles;
use crate::LocalClusterBuilder;

/// The variable holding the cluster token itself (read from the environment, never a flag,
/// so that it does not show in the process list).
pub const CLUSTER_TOKEN_VAR: &str = "MICTLANX_CLUSTER_TOKEN";

/// Why flags could not become configuration. Messages never hold a token.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ArgsError {
    /// `--auth-tokens` or `--cluster-token` named a file that cannot be used.
    #[error("{0}")]
    TokenFile(#[source] TokenFileError),
    /// `MICTLANX_CLUSTER_TOKEN` holds no usable token.
    #[error("{CLUSTER_TOKEN_VAR}: {0}")]
    ClusterTokenVar(#[source] TokenFileError),
    /// A local cluster serving TLS needs the CA that signed its certificate.
    #[error("--tls-cert needs --ca-file (the CA that signed it)")]
    TlsWithoutCa,
}

/// `--capacity 10GB`, `--inline-limit 64KiB`: a size in bytes.
///
/// # Errors
///
/// The parser's message, for clap to show.
pub fn parse_size_arg(s: &str) -> Result<u64, String> {
    mictlanx::size::parse_size(s).map_err(|e| e.to_string())
}

/// Timeouts and the connection cap, shared by `peer`, `router`, `cluster` and `up`
/// (docs/configuration.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectionArgs {
    /// Milliseconds a client may take to send its request headers; also the longest wait
    /// for the next request on an idle HTTP/1.1 keep-alive connection.
    #[arg(
        long,
        env = "MICTLANX_HEADER_READ_TIMEOUT_MS",
        default_value_t = 10_000
    )]
    header_read_timeout_ms: u64,
    /// Milliseconds a connection with no request in progress may move nothing (idle HTTP/2,
    /// clients that stop reading) before it is closed.
    #[arg(long, env = "MICTLANX_IDLE_TIMEOUT_MS", default_value_t = 60_000)]
    idle_timeout_ms: u64,
    /// Milliseconds allowed between two pieces of a request body.
    #[arg(long, env = "MICTLANX_BODY_TIMEOUT_MS", default_value_t = 30_000)]
    body_timeout_ms: u64,
    /// Connections served at once; past it a client gets 503 (0: three quarters of the
    /// file-descriptor limit).
    #[arg(long, env = "MICTLANX_MAX_CONNECTIONS", default_value_t = 0)]
    max_connections: usize,
}

impl ConnectionArgs {
    /// The limits these flags ask for (a zero timeout is read as 1 ms).
    pub fn limits(&self) -> ConnectionLimits {
        let ms = |v: u64| Duration::from_millis(v.max(1));
        let mut limits = ConnectionLimits {
            header_read_timeout: ms(self.header_read_timeout_ms),
            idle_timeout: ms(self.idle_timeout_ms),
            body_timeout: ms(self.body_timeout_ms),
            ..ConnectionLimits::default()
        };
        if self.max_connections > 0 {
            limits.max_connections = self.max_connections;
        }
        limits
    }
}

/// Tokens and TLS, shared by `peer`, `router`, `cluster` and `up` (see docs/security.md).
#[derive(Debug, Clone, clap::Args)]
pub struct SecurityArgs {
    /// Token file: one `ROLE TOKEN [NAME]` per line (roles read, write, admin).
    #[arg(long, env = "MICTLANX_AUTH_TOKENS")]
    auth_tokens: Option<PathBuf>,
    /// File holding the cluster token of routers and peers (or set MICTLANX_CLUSTER_TOKEN
    /// to the token itself).
    #[arg(long, env = "MICTLANX_CLUSTER_TOKEN_FILE")]
    cluster_token: Option<PathBuf>,
    /// Require a read token for /metrics too.
    #[arg(long, env = "MICTLANX_PROTECT_METRICS")]
    protect_metrics: bool,
    /// TLS certificate chain (PEM); serve HTTPS.
    #[arg(long, env = "MICTLANX_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, env = "MICTLANX_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
}

impl SecurityArgs {
    /// Loads the token files; the cluster token comes from `--cluster-token FILE` or else
    /// from `cluster_token_var`, the value of [`CLUSTER_TOKEN_VAR`].
    ///
    /// # Errors
    ///
    /// [`ArgsError`] when a token file cannot be read or holds no valid token.
    pub fn load(
        &self,
        cluster_token_var: Option<String>,
    ) -> Result<(AuthConfig, Option<TlsFiles>), ArgsError> {
        let tokens = match &self.auth_tokens {
            Some(path) => Some(Arc::new(
                TokenSet::load(path).map_err(ArgsError::TokenFile)?,
            )),
            None => None,
        };
        let cluster_token = match (&self.cluster_token, cluster_token_var) {
            (Some(path), _) => Some(ClusterToken::load(path).map_err(ArgsError::TokenFile)?),
            (None, Some(text)) if !text.trim().is_empty() => {
                Some(ClusterToken::new(text.trim()).map_err(ArgsError::ClusterTokenVar)?)
            }
            (None, _) => None,
        };
        let tls = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => Some(TlsFiles::new(cert, key)),
            _ => None,
        };
        let auth = AuthConfig {
            tokens,
            cluster_token,
            protect_metrics: self.protect_metrics,
        };
        Ok((auth, tls))
    }

    /// [`load`](Self::load) with the cluster token variable of this process's environment.
    ///
    /// # Errors
    ///
    /// As [`load`](Self::load).
    pub fn load_from_env(&self) -> Result<(AuthConfig, Option<TlsFiles>), ArgsError> {
        self.load(std::env::var(CLUSTER_TOKEN_VAR).ok())
    }
}

/// The flags of a local cluster (`mictlanx-server cluster`, `mictlanx up`) besides its
/// size, port and data directory: capacity, tokens, TLS, connection limits.
#[derive(Debug, Clone, clap::Args)]
pub struct LocalClusterArgs {
    /// Bytes each peer may store (e.g. 10GB, 512MiB). Default: on a data directory used
    /// before, what its cluster.json remembers for each peer; else 10GB.
    #[arg(long, env = "MICTLANX_CAPACITY", value_parser = parse_size_arg)]
    capacity: Option<u64>,
    /// With --tls-cert: the CA that signed the certificate (the router trusts it for the
    /// peers; ignored without --tls-cert).
    #[arg(long, env = "MICTLANX_CA_FILE")]
    ca_file: Option<PathBuf>,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
}

impl LocalClusterArgs {
    /// The capacity asked for, if any.
    pub fn capacity(&self) -> Option<u64> {
        self.capacity
    }

    /// Whether the cluster serves HTTPS.
    pub fn tls(&self) -> bool {
        self.security.tls_cert.is_some()
    }

    /// Applies the flags to `builder` (the cluster token variable read from the
    /// environment).
    ///
    /// # Errors
    ///
    /// [`ArgsError`] when a token file cannot be used, or `--tls-cert` comes without
    /// `--ca-file`.
    pub fn configure(
        &self,
        mut builder: LocalClusterBuilder,
    ) -> Result<LocalClusterBuilder, ArgsError> {
        if let Some(bytes) = self.capacity {
            builder = builder.capacity(bytes);
        }
        let (auth, tls) = self.security.load_from_env()?;
        builder = builder
            .auth(auth)
            .connection_limits(self.connections.limits());
        match (tls, &self.ca_file) {
            (Some(files), Some(ca)) => Ok(builder.tls(files, ca)),
            (Some(_), None) => Err(ArgsError::TlsWithoutCa),
            (None, _) => Ok(builder),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cluster {
        #[command(flatten)]
        cluster: LocalClusterArgs,
    }

    #[test]
    fn the_cluster_flags_parse_and_check_tls() {
        let c = Cluster::try_parse_from(["c"]).unwrap().cluster;
        assert_eq!(c.capacity(), None);
        assert!(!c.tls());
        assert_eq!(c.connections.limits(), ConnectionLimits::default());
        let c = Cluster::try_parse_from([
            "c",
            "--capacity",
            "2GB",
            "--tls-cert",
            "/c.pem",
            "--tls-key",
            "/k.pem",
        ])
        .unwrap()
        .cluster;
        assert_eq!(c.capacity(), Some(2_000_000_000));
        assert!(c.tls());
        let err = c.configure(crate::LocalCluster::builder()).unwrap_err();
        assert!(matches!(err, ArgsError::TlsWithoutCa), "{err}");
        assert!(Cluster::try_parse_from(["c", "--capacity", "lots"]).is_err());
        // A missing token file is an error naming it.
        let c = Cluster::try_parse_from(["c", "--auth-tokens", "/no/such/tokens"])
            .unwrap()
            .cluster;
        let err = c.configure(crate::LocalCluster::builder()).unwrap_err();
        assert!(err.to_string().contains("/no/such/tokens"), "{err}");
    }
}
