//! A ball stays readable when a peer holding one of its replicas dies.
//!
//! Run: `cargo run --example availability` (always on an embedded cluster: it kills a peer).

use mictlanx::{Client, PutOptions};
use mictlanx_server::LocalCluster;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cluster = LocalCluster::builder().peers(3).start().await?;
    let client = Client::builder().routers_uri(&cluster.uri()).build()?;

    let data = b"replicated bytes ".repeat(100_000);
    let put = client
        .put_bytes(
            "availability",
            "precious",
            data.clone(),
            PutOptions::default().with_replication_factor(2),
        )
        .await?;
    println!("stored {} bytes on {:?}", put.size, put.replicas);

    // Kill one peer that holds a replica, as a crash would.
    let victim = put.replicas.iter().next().cloned().unwrap_or_default();
    let index = cluster
        .peer_ids()
        .iter()
        .position(|id| *id == victim)
        .unwrap_or(0);
    cluster.kill_peer(index).await?;
    println!("killed {victim}");

    // The router fails over to the other replica; the bytes are verified end to end.
    let got = client.get_bytes("availability", "precious").await?;
    assert_eq!(got.data, data);
    println!("read back {} bytes intact without {victim}", got.data.len());

    cluster.restart_peer(index).await?;
    cluster.shutdown().await;
    Ok(())
}
