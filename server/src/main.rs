//! `mictlanx-server`: run a storage peer, a router, or a whole local cluster.
//!
//! Every flag also reads a `MICTLANX_*` environment variable. When ready, `peer` and
//! `router` print `LISTENING HOST:PORT` on stdout; `cluster` prints `MICTLANX_URI=...`.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use mictlanx::uri::{parse_addresses, Protocol};
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
    /// Peer id.
    #[arg(long, env = "MICTLANX_PEER_ID", default_value = "peer-0")]
    id: String,
    /// Address to bind.
    #[arg(long, env = "MICTLANX_PEER_HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to bind (0: any free port).
    #[arg(long, env = "MICTLANX_PEER_PORT", default_value_t = 25000)]
    port: u16,
    /// Where data files and the metadata database live.
    #[arg(
        long,
        env = "MICTLANX_DATA_DIR",
        default_value = "./mictlanx-data/peer-0"
    )]
    data_dir: PathBuf,
    /// Bytes this peer may store (e.g. 10GB, 512MiB).
    #[arg(long, env = "MICTLANX_CAPACITY", default_value = "10GB", value_parser = parse_size_arg)]
    capacity: u64,
    /// Seconds a metadata record waits for its bytes before the pending upload expires.
    #[arg(long, env = "MICTLANX_PENDING_TTL_SECS", default_value_t = 3600)]
    pending_ttl_secs: u64,
    /// Seconds an upload may send nothing before it is abandoned.
    #[arg(long, env = "MICTLANX_UPLOAD_IDLE_TIMEOUT_SECS", default_value_t = 120)]
    upload_idle_timeout_secs: u64,
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
}

#[derive(Debug, clap::Args)]
struct ClusterArgs {
    /// Number of peers.
    #[arg(long, env = "MICTLANX_CLUSTER_PEERS", default_value_t = 3)]
    peers: usize,
    /// The router's port on 127.0.0.1.
    #[arg(long, env = "MICTLANX_ROUTER_PORT", default_value_t = 60666)]
    port: u16,
    /// Where the peers keep their data (a temporary directory when absent).
    #[arg(long, env = "MICTLANX_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Bytes each peer may store.
    #[arg(long, env = "MICTLANX_CAPACITY", default_value = "10GB", value_parser = parse_size_arg)]
    capacity: u64,
}

fn parse_size_arg(s: &str) -> Result<u64, String> {
    mictlanx::size::parse_size(s).map_err(|e| e.to_string())
}

/// The log file's name: the component's id.
fn log_name(command: &Command) -> String {
    match command {
        Command::Peer(p) => p.id.clone(),
        Command::Router(r) => r.id.clone(),
        Command::Cluster(_) => "cluster".to_string(),
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _log = mictlanx_server::logging::init(&log_name(&cli.command), "info");
    match run(cli.command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("mictlanx-server: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> Result<(), String> {
    match command {
        Command::Peer(args) => {
            let mut config = PeerConfig::new(args.id, args.data_dir);
            config.bind = SocketAddr::new(args.host, args.port);
            config.capacity = args.capacity;
            config.pending_ttl = Duration::from_secs(args.pending_ttl_secs);
            config.upload_idle_timeout = Duration::from_secs(args.upload_idle_timeout_secs.max(1));
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
                .capacity(args.capacity)
                .probe_interval(Duration::from_secs(1));
            if let Some(dir) = args.data_dir {
                builder = builder.data_dir(dir);
            }
            let cluster = builder.start().await.map_err(|e| e.to_string())?;
            println!("MICTLANX_URI={}", cluster.uri());
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
}
