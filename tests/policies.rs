//! Availability policies end to end on a real `LocalCluster`: a ball put with rf=1, a policy
//! that fires at an access frequency of 50 %, reads until it fires, replicas on every
//! `where` peer (started on demand by the cluster), the original peer killed, the ball
//! still read. A PASSIVE variant, and a policy that never fires.

use std::time::Duration;

use mictlanx::model::GroupedBallResponse;
use mictlanx::policy::{PolicyState, PolicyStatus};
use mictlanx::{Client, Error, PutOptions, RetryConfig};
use mictlanx_server::LocalCluster;

/// Bound of every wait in these tests.
const WAIT: Duration = Duration::from_secs(30);

const BUCKET: &str = "cubeta";

fn data(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ 0x5a)
        .collect()
}

fn policy(how: &str, trigger: &str) -> String {
    format!(
        "tlaloc: v1
available-resources:
    pool-1:
        - peer-1
        - peer-2
who: pool-1.peer-1
what:
    - cubeta.red_file
where:
    - pool-1.peer-1
    - pool-1.peer-2
how: {how}
when:
    -cubeta.red_file:{trigger}
"
    )
}

async fn setup() -> (LocalCluster, Client, Vec<u8>) {
    let cluster = LocalCluster::builder()
        .peers(1)
        .policy_interval(Duration::from_millis(50))
        .policy_window(Duration::from_secs(120))
        // Repair would copy the chunks that a new peer now leads (rebalancing) as soon as
        // the policy starts its peers; these tests count the copies the policy makes.
        .repair_interval(None)
        .start()
        .await
        .expect("cluster starts");
    let client = Client::builder()
        .routers_uri(&cluster.uri())
        .retry(RetryConfig {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..RetryConfig::default()
        })
        .heartbeat_interval(Duration::from_millis(200))
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client");
    // Three chunks of 256 kB.
    let red = data(768_000);
    let opts = || PutOptions {
        chunk_size: Some(256_000),
        replication_factor: 1,
        ..PutOptions::default()
    };
    client
        .put_bytes(BUCKET, "red_file", red.clone(), opts())
        .await
        .expect("put red");
    client
        .put_bytes(BUCKET, "blue_file", b"blue".to_vec(), opts())
        .await
        .expect("put blue");
    // Three reads of blue: red's share of the bucket's reads starts at 0 %.
    for _ in 0..3 {
        client
            .get_bytes(BUCKET, "blue_file")
            .await
            .expect("get blue");
    }
    (cluster, client, red)
}

/// Polls the policy until `done` says so.
async fn wait_for(client: &Client, id: &str, done: impl Fn(&PolicyStatus) -> bool) -> PolicyStatus {
    tokio::time::timeout(WAIT, async {
        loop {
            let s = client.policies().get(id).await.expect("status");
            assert_ne!(s.state, PolicyState::Failed, "{s:?}");
            if done(&s) {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the policy reaches the state in time")
}

/// Reads red until the policy leaves `waiting`; returns how many reads it took.
async fn read_until_triggered(client: &Client, id: &str, red: &[u8]) -> usize {
    tokio::time::timeout(WAIT, async {
        let mut reads = 0;
        loop {
            let got = client.get_bytes(BUCKET, "red_file").await.expect("get red");
            assert_eq!(&got.data[..], red);
            reads += 1;
            let s = client.policies().get(id).await.expect("status");
            if s.state != PolicyState::Waiting {
                return reads;
            }
        }
    })
    .await
    .expect("the trigger fires in time")
}

/// The chunks of red each provisioned peer holds (0 when none).
async fn chunks_on_provisioned_peers(cluster: &LocalCluster) -> Vec<(String, usize)> {
    let http = reqwest::Client::new();
    let mut out = Vec::new();
    for (id, url) in cluster.provisioned_peers().await {
        let resp = http
            .get(format!(
                "{url}/api/v4/buckets/{BUCKET}/metadata/red_file/group"
            ))
            .send()
            .await
            .expect("peer answers");
        let n = if resp.status() == 404 {
            0
        } else {
            let body = resp.bytes().await.expect("body");
            let group: GroupedBallResponse = serde_json::from_slice(&body).expect("group json");
            group.balls.len()
        };
        out.push((id, n));
    }
    out
}

fn everywhere(n: usize) -> Vec<(String, usize)> {
    vec![
        ("pool-1.peer-1".to_string(), n),
        ("pool-1.peer-2".to_string(), n),
    ]
}

#[tokio::test]
async fn active_policy_replicates_onto_every_where_peer_and_survives_the_original() {
    let (mut cluster, client, red) = setup().await;
    let applied = client
        .policies()
        .apply(&policy("ACTIVE", "$ACCESS_FREQUENCY>=50%"))
        .await
        .expect("apply");
    assert_eq!(applied.state, PolicyState::Waiting);
    assert_eq!(applied.triggers[0].variable, "ACCESS_FREQUENCY");
    assert_eq!(applied.triggers[0].observed, Some(0.0));
    // The declared peers were started in-process and hold nothing yet.
    assert_eq!(chunks_on_provisioned_peers(&cluster).await, everywhere(0));

    // A read of a ball counts once whatever its chunks: 3 reads of red against blue's 3
    // make 50 %.
    let reads = read_until_triggered(&client, &applied.id, &red).await;
    assert_eq!(reads, 3);
    let done = wait_for(&client, &applied.id, |s| s.state == PolicyState::Done).await;
    assert_eq!((done.replicas_done, done.replicas_total), (6, 6));
    assert!(done.triggers[0].fired);
    assert!(done.triggers[0].observed.is_some_and(|v| v >= 50.0));
    assert!(done.triggered_at.is_some());
    assert_eq!(done.state_label(), "done");
    assert_eq!(chunks_on_provisioned_peers(&cluster).await, everywhere(3));

    // The only original replica dies; the new replicas serve the read.
    cluster.kill_peer(0).await.expect("kill peer-0");
    let got = client
        .get_bytes(BUCKET, "red_file")
        .await
        .expect("read after the kill");
    assert_eq!(got.data.len(), red.len());
    assert_eq!(&got.data[..], &red[..]);
    // Blue had no policy: it is gone with peer-0.
    assert!(client.get_bytes(BUCKET, "blue_file").await.is_err());

    let listed = client.policies().list().await.expect("list");
    assert_eq!(listed.len(), 1);
    client.policies().remove(&applied.id).await.expect("remove");
    assert!(matches!(
        client.policies().get(&applied.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        client.policies().remove(&applied.id).await,
        Err(Error::NotFound { .. })
    ));
    cluster.shutdown().await;
}

#[tokio::test]
async fn passive_policy_replicates_on_the_next_read_after_it_fires() {
    let (mut cluster, client, red) = setup().await;
    let applied = client
        .policies()
        .apply(&policy("PASSIVE", "$ACCESS_FREQUENCY>=50%"))
        .await
        .expect("apply");
    read_until_triggered(&client, &applied.id, &red).await;
    let s = client.policies().get(&applied.id).await.expect("status");
    assert_eq!(s.state, PolicyState::Triggered);
    // Triggered, but nothing copied until the ball is read again.
    assert_eq!(chunks_on_provisioned_peers(&cluster).await, everywhere(0));
    assert_eq!(s.replicas_total, 0);

    client
        .get_bytes(BUCKET, "red_file")
        .await
        .expect("the next read");
    let done = wait_for(&client, &applied.id, |s| s.state == PolicyState::Done).await;
    assert_eq!((done.replicas_done, done.replicas_total), (6, 6));
    assert_eq!(chunks_on_provisioned_peers(&cluster).await, everywhere(3));

    cluster.kill_peer(0).await.expect("kill peer-0");
    let got = client
        .get_bytes(BUCKET, "red_file")
        .await
        .expect("read after the kill");
    assert_eq!(&got.data[..], &red[..]);
    cluster.shutdown().await;
}

#[tokio::test]
async fn a_policy_that_never_fires_stays_waiting_and_copies_nothing() {
    let (cluster, client, red) = setup().await;
    let applied = client
        .policies()
        .apply(&policy("ACTIVE", "$ACCESS_COUNT > 1000000"))
        .await
        .expect("apply");
    for _ in 0..3 {
        let got = client.get_bytes(BUCKET, "red_file").await.expect("get red");
        assert_eq!(&got.data[..], &red[..]);
    }
    // Let the interval evaluate it again after the reads (not only the reads themselves).
    let first = client.policies().get(&applied.id).await.expect("status");
    let later = wait_for(&client, &applied.id, |s| {
        s.triggers[0].evaluated_at > first.triggers[0].evaluated_at
    })
    .await;
    assert_eq!(later.state, PolicyState::Waiting);
    assert_eq!(later.triggers[0].observed, Some(3.0));
    assert!(!later.triggers[0].fired);
    assert!(later.triggered_at.is_none());
    assert_eq!((later.replicas_done, later.replicas_total), (0, 0));
    assert_eq!(chunks_on_provisioned_peers(&cluster).await, everywhere(0));
    cluster.shutdown().await;
}

#[tokio::test]
async fn invalid_policies_are_refused_with_their_positions() {
    let (cluster, client, _) = setup().await;
    // The README's typo: refused unless lenient.
    let text = policy("ACTIVE", "$ACCESS_FREQUENNCY>=60.6%");
    match client.policies().apply(&text).await {
        Err(Error::Validation { message }) => {
            assert!(
                message.contains(
                    "14:23: unknown variable $ACCESS_FREQUENNCY (did you mean ACCESS_FREQUENCY?)"
                ),
                "{message}"
            );
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    let lenient = client
        .policies()
        .lenient(true)
        .apply(&text)
        .await
        .expect("lenient apply");
    assert_eq!(lenient.triggers[0].variable, "ACCESS_FREQUENCY");
    assert_eq!(lenient.warnings.len(), 1);
    assert!(lenient.warnings[0].starts_with("14:23:"));
    // Syntax errors, and hostile input.
    for bad in [
        "",
        "tlaloc: v1\nwho: x",
        &"\u{0}".repeat(10),
        &"a".repeat(2_000_000),
    ] {
        assert!(matches!(
            client.policies().apply(bad).await,
            Err(Error::Validation { .. } | Error::PayloadTooLarge { .. })
        ));
    }
    cluster.shutdown().await;
}
