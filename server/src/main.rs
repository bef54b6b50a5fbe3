//! `mictlanx-server`: run a storage peer, a router, or a whole local cluster.
//!
//! Every flag also reads a `MICTLANX_*` environment variable. When ready, `peer` and
//! `router` print `LISTENING HOST:PORT` on stdout; `cluster` prints
//! `export MICTLANX_URI='...'` (quoted: the URI holds `?` and `&`), ready to paste.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mictlanx::uri::{parse_addresses, Protocol};
use mictlanx_server::args::{parse_size_arg, ConnectionArgs, LocalClusterArgs, SecurityArgs};
use mictlanx_server::serve::shutdown_signal;
use mictlanx_server::{LocalCluster, PeerConfig, RouterConfig};

/// MictlanX storage peer, router and local cluster.
#[derive(Debug, Parser)]
#[command(name = "mictlanx-server", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a storage peer.
    Peer(PeerArgs),
    /// Run a router in front of peers.
    Router(RouterArgs),
    /// Run a router and N peers in this process (a local cluster).
    Cluster(ClusterArgs),
}

#[derive(Debug, clap::Args)]
struct PeerArgs {
    /// Peer id (also names its default data directory).
    #[arg(long, env = "MICTLANX_PEER_ID", default_value = "peer-0")]
    id: String,
    /// Address to bind.
    #[arg(long, env = "MICTLANX_PEER_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0: any free port).
    #[arg(long, env = "MICTLANX_PEER_PORT", default_value_t = 25000)]
    port: u16,
    /// Where data files and the metadata database live [default: ./mictlanx-data/<ID>].
    #[arg(long, env = "MICTLANX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Bytes this peer may store (e.g. 10GB, 512MiB).
    #[arg(long, env = "MICTLANX_CAPACITY", default_value = "10GB", value_parser = parse_size_arg)]
    capacity: u64,
    /// Seconds a metadata record waits for its bytes before the pending upload expires.
    #[arg(long, env = "MICTLANX_PENDING_TTL_SECS", default_value_t = 3600)]
    pending_ttl_secs: u64,
    /// Seconds an upload may send nothing before it is abandoned.
    #[arg(long, env = "MICTLANX_UPLOAD_IDLE_TIMEOUT_SECS", default_value_t = 120)]
    upload_idle_timeout_secs: u64,
    /// Objects up to this size are kept in the metadata database, not in files (0: off).
    #[arg(long, env = "MICTLANX_INLINE_LIMIT", default_value = "64KiB", value_parser = parse_size_arg)]
    inline_limit: u64,
    /// Disk space kept free for the metadata database, so that deletes always commit on a
    /// full disk; the capacity is at most the filesystem's free space beyond it.
    #[arg(long, env = "MICTLANX_META_RESERVE", default_value = "64MiB", value_parser = parse_size_arg)]
    meta_reserve: u64,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    listing: ListingArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
}

#[derive(Debug, clap::Args)]
struct RouterArgs {
    /// Router id.
    #[arg(long, env = "MICTLANX_ROUTER_ID", default_value = "router-0")]
    id: String,
    /// Address to bind.
    #[arg(long, env = "MICTLANX_ROUTER_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0: any free port).
    #[arg(long, env = "MICTLANX_ROUTER_PORT", default_value_t = 60666)]
    port: u16,
    /// Peers: `mictlanx://peer-0@host:25000,...?protocol=http` or `peer-0:host:25000 ...`.
    #[arg(long, env = "MICTLANX_PEERS", default_value = "")]
    peers: String,
    /// Milliseconds between peer probes.
    #[arg(long, env = "MICTLANX_PROBE_INTERVAL_MS", default_value_t = 2000)]
    probe_interval_ms: u64,
    #[command(flatten)]
    replication: ReplicationArgs,
    /// CA certificates (PEM) trusted for https peers, besides the public roots.
    #[arg(long, env = "MICTLANX_CA_FILE")]
    ca_file: Option<PathBuf>,
    #[command(flatten)]
    security: SecurityArgs,
    #[command(flatten)]
    listing: ListingArgs,
    #[command(flatten)]
    connections: ConnectionArgs,
}

/// How a router keeps replicas correct (docs/consistency.md).
#[derive(Debug, clap::Args)]
struct ReplicationArgs {
    /// Milliseconds between repair rounds, which restore missing and stale replicas
    /// (0: no repair). A round also starts when a peer comes up.
    #[arg(long, env = "MICTLANX_REPAIR_INTERVAL_MS", default_value_t = 30_000)]
    repair_interval_ms: u64,
    /// Bytes per second repair copies may use (e.g. 64MiB).
    #[arg(long, env = "MICTLANX_REPAIR_RATE", default_value = "64MiB", value_parser = parse_size_arg)]
    repair_rate: u64,
    /// Milliseconds until a write is no longer on its way: tombstones applied everywhere,
    /// and the chunks of puts that never completed, are collected after that.
    #[arg(long, env = "MICTLANX_SETTLE_TIME_MS", default_value_t = 3_600_000)]
    settle_time_ms: u64,
    /// How many peers of a key's placement order a read asks for the newest version.
    #[arg(long, env = "MICTLANX_READ_WIDTH", default_value_t = 3)]
    read_width: usize,
    /// How many of them are asked along with every read (the others only when the first
    /// has no copy).
    #[arg(long, env = "MICTLANX_READ_SURVEY", default_value_t = 2)]
    read_survey: usize,
}

impl ReplicationArgs {
    fn apply(&self, config: &mut RouterConfig) {
        config.repair_interval =
            (self.repair_interval_ms > 0).then(|| Duration::from_millis(self.repair_interval_ms));
        config.repair_bytes_per_sec = self.repair_rate.max(1);
        config.read_width = self.read_width.max(1);
        config.read_survey = self.read_survey;
        config.settle_time = Duration::from_millis(self.settle_time_ms);
    }
}

#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Number of peers (a data directory used before also brings back every peer its
    /// cluster.json remembers, even more than this).
    #[arg(long, env = "MICTLANX_CLUSTER_PEERS", default_value_t = 3)]
    peers: usize,
    /// The router's port on 127.0.0.1.
    #[arg(long, env = "MICTLANX_ROUTER_PORT", default_value_t = 60666)]
    port: u16,
    /// Where the peers keep their data (a temporary directory when absent).
    #[arg(long, env = "MICTLANX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(flatten)]
    cluster: LocalClusterArgs,
}

/// The log file's name: the component's id.
fn log_name(command: &Command) -> String {
    match command {
        Command::Peer(p) => p.id.clone(),
        Command::Router(r) => r.id.clone(),
        Command::Cluster(_) => "cluster".to_string(),
    }
}

fn main() -> ExitCode {
    mictlanx_server::alloc::limit_malloc_arenas();
    let cli = Cli::parse();
    let _log = mictlanx_server::logging::init(&log_name(&cli.command), "info");
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mictlanx-server: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mictlanx-server: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Bounds of the listings, shared by `peer` and `router` (see docs/configuration.md).
#[derive(Debug, clap::Args)]
struct ListingArgs {
    /// Listings answered at once; more wait for a slot.
    #[arg(long, env = "MICTLANX_MAX_LISTINGS", default_value_t = 16)]
    max_listings: usize,
    /// Milliseconds a listing waits for a slot before it is answered 503 with Retry-After.
    #[arg(long, env = "MICTLANX_LISTING_WAIT_MS", default_value_t = 2000)]
    listing_wait_ms: u64,
}

impl ListingArgs {
    fn limits(&self) -> mictlanx_server::paging::ListingLimits {
        mictlanx_server::paging::ListingLimits {
            max_concurrent: self.max_listings.max(1),
            wait: Duration::from_millis(self.listing_wait_ms),
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Peer(args) => {
            let data_dir = match args.data_dir {
                Some(dir) => dir,
                None => PeerConfig::default_data_dir(&args.id).ok_or_else(|| {
                    format!(
                        "peer id {:?} cannot name a directory; give --data-dir",
                        args.id
                    )
                })?,
            };
            let mut config = PeerConfig::new(args.id, data_dir);
            config.bind = SocketAddr::new(args.host, args.port);
            config.capacity = args.capacity;
            config.pending_ttl = Duration::from_secs(args.pending_ttl_secs);
            config.upload_idle_timeout = Duration::from_secs(args.upload_idle_timeout_secs.max(1));
            config.inline_limit = args.inline_limit;
            config.listing = args.listing.limits();
            config.meta_reserve = args.meta_reserve;
            config.connections = args.connections.limits();
            (config.auth, config.tls) = args.security.load_from_env().map_err(|e| e.to_string())?;
            let handle = mictlanx_server::peer::start(config)
                .await
                .map_err(|e| e.to_string())?;
            println!("LISTENING {}", handle.addr());
            serve_until_signal(handle).await;
        }
        Command::Router(args) => {
            let peers = if args.peers.trim().is_empty() {
                Vec::new()
            } else {
                parse_addresses(&args.peers, Protocol::Http).map_err(|e| e.to_string())?
            };
            let mut config = RouterConfig::new(args.id, peers);
            config.bind = SocketAddr::new(args.host, args.port);
            config.probe_interval = Duration::from_millis(args.probe_interval_ms.max(10));
            args.replication.apply(&mut config);
            (config.auth, config.tls) = args.security.load_from_env().map_err(|e| e.to_string())?;
            config.ca_file = args.ca_file;
            config.listing = args.listing.limits();
            config.connections = args.connections.limits();
            let handle = mictlanx_server::router::start(config)
                .await
                .map_err(|e| e.to_string())?;
            println!("LISTENING {}", handle.addr());
            serve_until_signal(handle).await;
        }
        Command::Cluster(args) => {
            let mut builder = LocalCluster::builder()
                .peers(args.peers)
                .router_port(args.port)
                .probe_interval(Duration::from_secs(1));
            if let Some(dir) = args.data_dir {
                builder = builder.data_dir(dir);
            }
            builder = args
                .cluster
                .configure(builder)
                .map_err(|e| format!("cluster: {e}"))?;
            let cluster = builder.start().await.map_err(|e| e.to_string())?;
            println!("{}", cluster.export_line());
            shutdown_signal().await;
            tracing::info!(event = "SHUTDOWN", "signal received, stopping the cluster");
            cluster.shutdown().await;
        }
    }
    Ok(())
}

async fn serve_until_signal(handle: mictlanx_server::ServerHandle) {
    let stop = handle.stop_token();
    tokio::select! {
        _ = shutdown_signal() => {
            tracing::info!(event = "SHUTDOWN", "signal received, draining");
            handle.shutdown().await;
        }
        _ = stop.cancelled() => {
            handle.wait().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;
    use mictlanx_server::tls::TlsFiles;

    #[test]
    fn cli_definition_is_valid() {
        Cli::command().debug_assert();
    }

    #[test]
    fn capacity_accepts_human_sizes() {
        let cli = Cli::try_parse_from([
            "mictlanx-server",
            "peer",
            "--capacity",
            "1GB",
            "--data-dir",
            "/tmp/x",
        ])
        .unwrap();
        match cli.command {
            Command::Peer(p) => assert_eq!(p.capacity, 1_000_000_000),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Cli::try_parse_from(["mictlanx-server", "peer", "--capacity", "lots"]).is_err());
    }

    #[test]
    fn a_peer_without_data_dir_gets_one_of_its_own() {
        let cli = Cli::try_parse_from(["mictlanx-server", "peer", "--id", "peer-7"]).unwrap();
        let Command::Peer(p) = cli.command else {
            panic!("not a peer")
        };
        assert_eq!(p.data_dir, None);
        assert_eq!(
            PeerConfig::default_data_dir(&p.id),
            Some(PathBuf::from("./mictlanx-data/peer-7"))
        );
    }

    #[test]
    fn security_flags_load_their_files() {
        let dir = tempfile::tempdir().unwrap();
        let tokens = dir.path().join("tokens");
        let cluster = dir.path().join("cluster");
        std::fs::write(&tokens, "admin admin-token-0123456789 ops\n").unwrap();
        std::fs::write(&cluster, "cluster-token-0123456789\n").unwrap();
        let cli = Cli::try_parse_from([
            "mictlanx-server",
            "router",
            "--auth-tokens",
            tokens.to_str().unwrap(),
            "--cluster-token",
            cluster.to_str().unwrap(),
            "--protect-metrics",
            "--tls-cert",
            "/c.pem",
            "--tls-key",
            "/k.pem",
        ])
        .unwrap();
        let Command::Router(r) = cli.command else {
            panic!("not a router")
        };
        let (auth, tls) = r.security.load(None).unwrap();
        // (the flags are mictlanx_server::args's, shared with `mictlanx up`)
        assert_eq!(auth.tokens.map(|t| t.len()), Some(1));
        assert!(auth
            .cluster_token
            .unwrap()
            .matches("cluster-token-0123456789"));
        assert!(auth.protect_metrics);
        assert_eq!(tls, Some(TlsFiles::new("/c.pem", "/k.pem")));
        // The variable is used when no file is given; a bad one is an error naming it.
        let cli = Cli::try_parse_from(["mictlanx-server", "peer"]).unwrap();
        let Command::Peer(p) = cli.command else {
            panic!("not a peer")
        };
        let (auth, tls) = p
            .security
            .load(Some("env-token-0123456789".into()))
            .unwrap();
        assert!(auth.cluster_token.unwrap().matches("env-token-0123456789"));
        assert!(tls.is_none() && auth.tokens.is_none());
        let err = p
            .security
            .load(Some("tiny".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("MICTLANX_CLUSTER_TOKEN") && !err.contains("tiny"),
            "{err}"
        );
        // A key without a certificate is a usage error.
        assert!(Cli::try_parse_from(["mictlanx-server", "peer", "--tls-key", "/k.pem"]).is_err());
    }

    #[test]
    fn connection_flags_set_the_limits() {
        let cli = Cli::try_parse_from([
            "mictlanx-server",
            "router",
            "--header-read-timeout-ms",
            "1500",
            "--idle-timeout-ms",
            "0",
            "--body-timeout-ms",
            "2000",
            "--max-connections",
            "100",
        ])
        .unwrap();
        let Command::Router(r) = cli.command else {
            panic!("not a router")
        };
        let limits = r.connections.limits();
        assert_eq!(limits.header_read_timeout, Duration::from_millis(1500));
        assert_eq!(limits.idle_timeout, Duration::from_millis(1));
        assert_eq!(limits.body_timeout, Duration::from_secs(2));
        assert_eq!(limits.max_connections, 100);
        let cli = Cli::try_parse_from(["mictlanx-server", "cluster"]).unwrap();
        let Command::Cluster(c) = cli.command else {
            panic!("not a cluster")
        };
        assert_eq!(c.cluster.capacity(), None);
    }
}
