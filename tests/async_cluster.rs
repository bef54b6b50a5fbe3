//! `AsyncClient` against a real `LocalCluster` with two routers: one crashes while a hundred
//! puts run and comes back later; and the reference client's bulk case (§13 "bulk").

use std::future::Future;
use std::time::Duration;

use mictlanx::checksum::sha256_hex;
use mictlanx::{
    AsyncClient, AsyncClientConfig, Client, GetJob, JobOutput, PutJob, PutOptions, RetryConfig,
    TaskId,
};
use mictlanx_server::LocalCluster;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ ((i >> 8) as u8))
        .collect()
}

fn client(uri: &str, heartbeat: Duration) -> Client {
    Client::builder()
        .routers_uri(uri)
        .client_id("async-cluster-tests")
        .retry(RetryConfig {
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(100),
            ..RetryConfig::default()
        })
        .heartbeat_interval(heartbeat)
        .timeout(Duration::from_secs(20))
        .build()
        .expect("client")
}

/// Waits until `done()` holds, checking every few milliseconds, for at most 10 s.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Bounds a step of a test.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| panic!("timed out: {what}"))
}

async fn wait_put(queue: &AsyncClient, id: &TaskId) -> String {
    match within("a put", queue.wait(id)).await {
        Ok(JobOutput::Put(put)) => put.full_checksum,
        other => panic!("task {id}: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_router_crash_mid_run_loses_no_job_and_the_heartbeat_sees_it_return() {
    const JOBS: usize = 100;
    let mut cluster = LocalCluster::builder()
        .peers(2)
        .start()
        .await
        .expect("cluster");
    cluster.add_router().await.expect("second router");
    let heartbeat = Duration::from_millis(200);
    let c = client(&cluster.uri(), heartbeat);
    assert_eq!(c.config().routers.len(), 2);
    let queue = AsyncClient::new(
        c,
        AsyncClientConfig::default()
            .with_workers(4)
            .with_queue_capacity(JOBS),
    );

    // Multi-chunk balls, so that a crash cuts some of them between chunks.
    let balls: Vec<Vec<u8>> = (0..JOBS).map(|i| data(40_000, i as u8)).collect();
    let mut ids = Vec::with_capacity(JOBS);
    for (i, bytes) in balls.iter().enumerate() {
        let job = PutJob::bytes("failover", &format!("b{i}"), bytes.clone())
            .with_options(PutOptions::default().with_chunk_size(10_000));
        ids.push(queue.try_put(job).expect("room for every job"));
    }

    // Crash router 0 once a few jobs are done and the rest are queued or running.
    let mut sums: Vec<Option<String>> = vec![None; JOBS];
    sums[9] = Some(wait_put(&queue, &ids[9]).await);
    let before = queue.metrics();
    assert!(before.client.routers[0].requests > 0, "router 0 was in use");
    within("kill", cluster.kill_router(0)).await.unwrap();
    let done_at_kill = queue.metrics().completed;
    assert!(done_at_kill < JOBS as u64, "the crash came after the run");

    for (i, id) in ids.iter().enumerate() {
        let sum = match sums[i].take() {
            Some(sum) => sum,
            None => wait_put(&queue, id).await,
        };
        assert_eq!(sum, sha256_hex(&balls[i]), "b{i}");
    }
    let m = queue.metrics();
    assert_eq!((m.completed, m.failed), (JOBS as u64, 0));
    // Requests cut or refused by the crash failed on router 0 and were retried elsewhere.
    assert!(m.client.routers[0].failures > 0, "{:?}", m.client.routers);
    // The jobs after the crash went to router 1; router 0 is down.
    eventually("router 0 marked down", || {
        !queue.metrics().client.routers[0].healthy
    })
    .await;
    assert!(m.client.routers[1].requests > before.client.routers[1].requests);

    // Every ball reads back, through the queue.
    let gets: Vec<TaskId> = within("enqueue gets", async {
        let mut gets = Vec::with_capacity(JOBS);
        for i in 0..JOBS {
            gets.push(
                queue
                    .get(GetJob::to_memory("failover", &format!("b{i}")))
                    .await
                    .unwrap(),
            );
        }
        gets
    })
    .await;
    for (i, id) in gets.iter().enumerate() {
        match within("a get", queue.wait(id)).await {
            Ok(JobOutput::Get(got)) => assert!(got.data == balls[i], "b{i} differs"),
            other => panic!("get b{i}: {other:?}"),
        }
    }

    // The router comes back on its port; the heartbeat alone marks it up (requests avoid
    // a router believed down), and then it takes requests again.
    within("restart", cluster.restart_router(0)).await.unwrap();
    eventually("router 0 marked up", || {
        queue.metrics().client.routers[0].healthy
    })
    .await;
    let requests = queue.metrics().client.routers[0].requests;
    for (i, bytes) in balls.iter().enumerate().take(4) {
        let got = within(
            "a direct get",
            queue.client().get_bytes("failover", &format!("b{i}")),
        )
        .await
        .unwrap();
        assert!(got.data == *bytes);
    }
    assert!(queue.metrics().client.routers[0].requests > requests);
    queue.shutdown().await;
}

/// Reference §13 "bulk" (`test_put_bulk.py`): five in-memory items with concurrency 3 give
/// five successes and no failure.
#[tokio::test]
async fn reference_bulk_five_items_three_workers() {
    let cluster = LocalCluster::builder()
        .peers(2)
        .start()
        .await
        .expect("cluster");
    let queue = AsyncClient::new(
        client(&cluster.uri(), Duration::ZERO),
        AsyncClientConfig::default().with_workers(3),
    );
    let items: Vec<Vec<u8>> = (0..5).map(|i| data(1000 + 100 * i, i as u8)).collect();
    let mut ids = Vec::new();
    for (i, bytes) in items.iter().enumerate() {
        let job = PutJob::bytes("bulk01", &format!("item-{i}"), bytes.clone());
        ids.push(queue.put(job).await.expect("registered"));
    }
    let mut successes = 0;
    let mut failures = 0;
    for id in &ids {
        match within("a bulk item", queue.wait(id)).await {
            Ok(JobOutput::Put(_)) => successes += 1,
            _ => failures += 1,
        }
    }
    assert_eq!((successes, failures), (5, 0));
    let m = queue.metrics();
    assert_eq!((m.completed, m.failed, m.cancelled), (5, 0, 0));
    for (i, bytes) in items.iter().enumerate() {
        let got = queue
            .client()
            .get_bytes("bulk01", &format!("item-{i}"))
            .await
            .unwrap();
        assert!(got.data == *bytes, "item-{i}");
    }
    queue.shutdown().await;
}
