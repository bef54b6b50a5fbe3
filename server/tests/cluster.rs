//! LocalCluster: starts, reports a usable URI, survives a peer crash and restart, and runs
//! several routers over the same peers.

use std::time::Duration;

use mictlanx_server::LocalCluster;

async fn health(client: &reqwest::Client, url: &str) -> serde_json::Value {
    let body = client
        .get(format!("{url}/health"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn cluster_starts_and_survives_member_restarts() {
    let mut cluster = LocalCluster::builder()
        .peers(3)
        .probe_interval(Duration::from_millis(50))
        .start()
        .await
        .unwrap();
    let uri = cluster.uri();
    let routers = mictlanx::uri::parse_routers(&uri).unwrap();
    assert_eq!(routers.len(), 1);
    assert_eq!(routers[0].base_url(), cluster.router_url());
    assert_eq!(cluster.peer_ids(), ["peer-0", "peer-1", "peer-2"]);

    let client = reqwest::Client::new();
    let h = health(&client, &cluster.router_url()).await;
    assert_eq!(h["peers_up"], 3);

    // A crashed peer is seen down, then up again after a restart on the same port.
    cluster.kill_peer(1).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(&client, &cluster.router_url()).await;
        if h["peers_up"] == 2 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "peer never seen down"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    cluster.restart_peer(1).await.unwrap();
    let second = cluster.add_router().await.unwrap();
    assert_eq!(health(&client, &second).await["peers_up"], 3);
    assert_eq!(
        mictlanx::uri::parse_routers(&cluster.uri()).unwrap().len(),
        2
    );
    cluster.kill_router(0).await.unwrap();
    assert!(client
        .get(format!("{}/health", cluster.router_url()))
        .send()
        .await
        .is_err());
    cluster.restart_router(0).await.unwrap();
    assert_eq!(health(&client, &cluster.router_url()).await["peers_up"], 3);
    // A restarted router keeps its id: the URI names each router once.
    let ids: Vec<_> = mictlanx::uri::parse_routers(&cluster.uri())
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, [Some("router-0".into()), Some("router-1".into())]);
    assert!(cluster.kill_peer(7).await.is_err());
    cluster.shutdown().await;
}
