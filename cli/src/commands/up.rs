//! `mictlanx up`: a persistent local cluster in the foreground.

use std::path::PathBuf;

use mictlanx_server::LocalCluster;

use crate::output::Output;

/// Runs a router and `peers` peers until Ctrl-C or SIGTERM.
pub async fn up(peers: usize, port: u16, data_dir: PathBuf, out: Output) -> Result<(), String> {
    let cluster = LocalCluster::builder()
        .peers(peers)
        .router_port(port)
        .data_dir(&data_dir)
        .start()
        .await
        .map_err(|e| format!("starting the local cluster failed: {e}"))?;
    let uri = cluster.uri();
    out.emit(
        serde_json::json!({"uri": uri, "peers": peers, "data_dir": data_dir}),
        || format!("export MICTLANX_URI='{uri}'"),
    );
    eprintln!(
        "router + {peers} peers up, data in {}; Ctrl-C to stop",
        data_dir.display()
    );
    mictlanx_server::serve::shutdown_signal().await;
    cluster.shutdown().await;
    Ok(())
}
