//! Shared by the examples: a client for `MICTLANX_URI` when it is set, otherwise for an
//! embedded `LocalCluster` started here (kept alive by the returned guard).

use mictlanx::Client;
use mictlanx_server::LocalCluster;

/// The client, and the embedded cluster when one was started.
pub async fn connect() -> Result<(Client, Option<LocalCluster>), Box<dyn std::error::Error>> {
    if let Ok(uri) = std::env::var("MICTLANX_URI") {
        println!("using MICTLANX_URI={uri}");
        let client = Client::builder()
            .routers_uri(&uri)
            .client_id("example")
            .build()?;
        return Ok((client, None));
    }
    let cluster = LocalCluster::builder().peers(3).start().await?;
    println!("started an embedded cluster: {}", cluster.uri());
    let client = Client::builder()
        .routers_uri(&cluster.uri())
        .client_id("example")
        .build()?;
    Ok((client, Some(cluster)))
}
