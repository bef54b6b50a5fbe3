//! `mictlanx up`: a persistent local cluster in the foreground.
//!
//! Every peer it ever ran on a data directory, those availability policies started
//! included, is listed in `DATA_DIR/cluster.json` and comes back at the next `up` on that
//! directory, even when `--peers` asks for fewer: a peer may hold the only copy of a ball.

use std::path::PathBuf;

use mictlanx_server::args::LocalClusterArgs;
use mictlanx_server::LocalCluster;

use crate::output::Output;

/// The flags of `mictlanx up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Number of peers (peer-0 ...). Every peer remembered in DATA_DIR/cluster.json
    /// starts too, even more than this, so that every ball stays readable.
    #[arg(long, default_value_t = 3)]
    peers: usize,
    /// Router port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 60666)]
    port: u16,
    /// Where the peers keep their data (DIR/peer-0, ..., DIR/cluster.json).
    #[arg(long, default_value = "./mictlanx-data")]
    data_dir: PathBuf,
    #[command(flatten)]
    cluster: LocalClusterArgs,
}

/// Runs a router and its peers until Ctrl-C or SIGTERM.
pub async fn up(args: UpArgs, out: Output) -> Result<(), String> {
    let builder = LocalCluster::builder()
        .peers(args.peers)
        .router_port(args.port)
        .data_dir(&args.data_dir);
    let cluster = args
        .cluster
        .configure(builder)
        .map_err(|e| format!("up: {e}"))?
        .start()
        .await
        .map_err(|e| format!("starting the local cluster failed: {e}"))?;
    let elastic: Vec<String> = cluster
        .provisioned_peers()
        .await
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let base = cluster.peer_ids().len();
    let total = base + elastic.len();
    out.emit(
        serde_json::json!({
            "uri": cluster.uri(),
            "peers": total,
            "elastic_peers": elastic,
            "data_dir": args.data_dir,
        }),
        || cluster.export_line(),
    );
    if base > args.peers {
        eprintln!(
            "--peers {} asked for, but {} remembers {base}: all of them run, since a peer \
             may hold the only copy of a ball",
            args.peers,
            cluster.state_file().display()
        );
    }
    let restored = if elastic.is_empty() {
        String::new()
    } else {
        format!(
            " ({} started by policies: {})",
            elastic.len(),
            elastic.join(", ")
        )
    };
    eprintln!(
        "router + {total} peers up{restored}, data in {}; Ctrl-C to stop",
        args.data_dir.display()
    );
    mictlanx_server::serve::shutdown_signal().await;
    cluster.shutdown().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        up: UpArgs,
    }

    #[test]
    fn up_takes_the_cluster_flags() {
        let c = Cli::try_parse_from(["up"]).unwrap().up;
        assert_eq!((c.peers, c.port), (3, 60666));
        assert_eq!(c.cluster.capacity(), None);
        let c = Cli::try_parse_from([
            "up",
            "--capacity",
            "1GiB",
            "--auth-tokens",
            "tokens",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
            "--ca-file",
            "ca.pem",
            "--max-connections",
            "10",
        ])
        .unwrap()
        .up;
        assert_eq!(c.cluster.capacity(), Some(1 << 30));
        assert!(c.cluster.tls());
        assert!(Cli::try_parse_from(["up", "--tls-key", "k.pem"]).is_err());
    }
}
