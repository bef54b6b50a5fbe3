//! `AsyncClient` against a real `LocalCluster`: queued jobs run to the end, statuses move
//! through their states, back-pressure, cancel, shutdown, abort, panics, and expiry.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use mictlanx::checksum::sha256_hex;
use mictlanx::{
    AsyncClient, AsyncClientConfig, ByteStream, Client, EnqueueError, Error, GetJob, JobOutput,
    PutJob, RetryConfig, TaskId, TaskState,
};
use mictlanx_server::LocalCluster;
use tokio::sync::Notify;

fn data(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

async fn setup(config: AsyncClientConfig) -> (LocalCluster, AsyncClient) {
    let cluster = LocalCluster::builder().peers(2).start().await.unwrap();
    let client = Client::builder()
        .routers_uri(&cluster.uri())
        .client_id("async-tests")
        .retry(RetryConfig {
            initial_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
            ..RetryConfig::default()
        })
        .build()
        .unwrap();
    (cluster, AsyncClient::new(client, config))
}

/// A stream that yields nothing until `gate` is notified, then `data` in one piece.
fn gated_stream(gate: Arc<Notify>, data: Vec<u8>) -> ByteStream {
    futures::stream::once(async move {
        gate.notified().await;
        Ok(Bytes::from(data))
    })
    .boxed()
}

async fn wait_for_state(queue: &AsyncClient, id: &TaskId, name: &str) {
    let mut rx = queue.subscribe(id).expect("task known");
    tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| s.state.name() == name),
    )
    .await
    .expect("state reached in time")
    .expect("status channel open");
}

#[tokio::test]
async fn a_put_and_a_get_run_through_the_queue() {
    let (_cluster, queue) = setup(AsyncClientConfig::default()).await;
    let bytes = data(700_000, 1);
    let put = queue
        .put(PutJob::bytes("q", "ball", bytes.clone()))
        .await
        .unwrap();
    // The id comes back at once; the status is readable right away.
    assert!(queue.task_status(&put).is_some());
    let JobOutput::Put(result) = queue.wait(&put).await.unwrap() else {
        panic!("a put returns a put result");
    };
    assert_eq!(result.num_chunks, 2);
    let status = queue.task_status(&put).unwrap();
    let TaskState::Completed(summary) = &status.state else {
        panic!("completed, got {:?}", status.state);
    };
    assert_eq!(summary.bytes, 700_000);
    assert_eq!(summary.full_checksum, sha256_hex(&bytes));
    assert!(status.started_at.is_some() && status.finished_at.is_some());

    let get = queue.get(GetJob::to_memory("q", "ball")).await.unwrap();
    let JobOutput::Get(got) = queue.wait(&get).await.unwrap() else {
        panic!("a get to memory returns bytes");
    };
    assert_eq!(got.data, bytes);

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    let get = queue
        .get(GetJob::to_file("q", "ball", &path))
        .await
        .unwrap();
    queue.wait(&get).await.unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);

    // The output is handed out once.
    assert!(matches!(
        *queue.wait(&get).await.unwrap_err(),
        Error::NotFound { .. }
    ));
    queue.shutdown().await;
}

#[tokio::test]
async fn a_thousand_small_jobs_queued_at_once_all_complete() {
    let (_cluster, queue) = setup(
        AsyncClientConfig::default()
            .with_workers(16)
            .with_queue_capacity(1000),
    )
    .await;
    let mut ids = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let job = PutJob::bytes("many", &format!("b{i}"), i.to_le_bytes().to_vec());
        // The queue holds all of them: try_put never finds it full.
        ids.push(queue.try_put(job).unwrap());
    }
    for id in &ids {
        queue.wait(id).await.unwrap();
    }
    let m = queue.metrics();
    assert_eq!(m.completed, 1000);
    assert_eq!(m.failed, 0);
    assert!(m.client.bytes_up >= 4000);
    queue.shutdown().await;
}

#[tokio::test]
async fn a_full_queue_gives_the_job_back_and_put_waits_for_room() {
    let (_cluster, queue) = setup(
        AsyncClientConfig::default()
            .with_workers(1)
            .with_queue_capacity(1),
    )
    .await;
    let gate = Arc::new(Notify::new());
    // The only worker is stuck on this stream; the next job fills the queue.
    let stuck = queue
        .put(PutJob::stream(
            "bp",
            "stuck",
            gated_stream(gate.clone(), data(10, 0)),
        ))
        .await
        .unwrap();
    wait_for_state(&queue, &stuck, "running").await;
    let second = queue
        .try_put(PutJob::bytes("bp", "second", vec![1]))
        .unwrap();
    match queue.try_put(PutJob::bytes("bp", "third", vec![2])) {
        Err(EnqueueError::Full(job)) => assert_eq!(job.ball_id, "third"),
        other => panic!("expected Full, got {other:?}"),
    }
    // `put` waits for room instead; it gets it once the gate opens.
    let waiting = {
        let queue = queue.clone();
        tokio::spawn(async move { queue.put(PutJob::bytes("bp", "third", vec![2])).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished());
    gate.notify_one();
    let third = waiting.await.unwrap().unwrap();
    for id in [stuck, second, third] {
        queue.wait(&id).await.unwrap();
    }
    queue.shutdown().await;
}

#[tokio::test]
async fn cancel_stops_queued_and_running_tasks_and_removes_what_they_stored() {
    let (_cluster, queue) = setup(AsyncClientConfig::default().with_workers(1)).await;
    let gate = Arc::new(Notify::new());
    let running = queue
        .put(PutJob::stream(
            "cx",
            "running",
            gated_stream(gate.clone(), data(10, 0)),
        ))
        .await
        .unwrap();
    wait_for_state(&queue, &running, "running").await;
    let queued = queue
        .put(PutJob::bytes("cx", "queued", vec![1, 2]))
        .await
        .unwrap();

    assert!(queue.cancel(&queued));
    assert_eq!(
        queue.task_status(&queued).unwrap().state.name(),
        "cancelled"
    );
    assert!(queue.cancel(&running));
    assert!(queue.wait(&running).await.unwrap_err().is_cancelled());
    assert!(queue.wait(&queued).await.unwrap_err().is_cancelled());
    assert!(
        !queue.cancel(&running),
        "a finished task cannot be cancelled"
    );

    // Neither left anything behind.
    for ball in ["running", "queued"] {
        let err = queue.client().get_bytes("cx", ball).await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{ball}: {err}");
    }
    // A cancelled large put that had stored chunks is cleaned up too.
    let big = queue
        .put(PutJob::bytes("cx", "big", data(3_000_000, 7)))
        .await
        .unwrap();
    let mut rx = queue.subscribe(&big).unwrap();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        rx.wait_for(|s| {
            matches!(s.state, TaskState::Running(p) if p.chunks_done >= 1) || s.state.is_terminal()
        }),
    )
    .await;
    drop(rx);
    // The put may finish before the cancel lands; when the cancel wins, nothing remains.
    let big_cancelled = match queue.cancel(&big).then_some(()) {
        Some(()) => match queue.wait(&big).await {
            Err(e) if e.is_cancelled() => true,
            Ok(_) => false,
            Err(e) => panic!("unexpected {e}"),
        },
        None => false,
    };
    if big_cancelled {
        let err = queue.client().get_bytes("cx", "big").await.unwrap_err();
        assert!(matches!(err, Error::NotFound { .. }), "{err}");
    }
    assert_eq!(queue.metrics().cancelled, 2 + u64::from(big_cancelled));
    queue.shutdown().await;
}

#[tokio::test]
async fn shutdown_drains_the_queue_then_refuses_new_jobs() {
    let (_cluster, queue) = setup(AsyncClientConfig::default().with_workers(2)).await;
    let ids: Vec<_> = futures::future::join_all(
        (0..20u8).map(|i| queue.put(PutJob::bytes("drain", &format!("b{i}"), vec![i; 100]))),
    )
    .await
    .into_iter()
    .map(Result::unwrap)
    .collect();
    queue.shutdown().await;
    for id in &ids {
        assert_eq!(queue.task_status(id).unwrap().state.name(), "completed");
    }
    match queue.put(PutJob::bytes("drain", "late", vec![0])).await {
        Err(EnqueueError::Closed(_)) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
}

#[tokio::test]
async fn abort_cancels_running_and_queued_tasks() {
    let (_cluster, queue) = setup(AsyncClientConfig::default().with_workers(1)).await;
    let gate = Arc::new(Notify::new());
    let running = queue
        .put(PutJob::stream(
            "ab",
            "stuck",
            gated_stream(gate, data(10, 0)),
        ))
        .await
        .unwrap();
    wait_for_state(&queue, &running, "running").await;
    let queued = queue
        .put(PutJob::bytes("ab", "queued", vec![1]))
        .await
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), queue.abort())
        .await
        .expect("abort is prompt");
    for id in [running, queued] {
        assert_eq!(queue.task_status(&id).unwrap().state.name(), "cancelled");
    }
    assert!(matches!(
        queue.try_put(PutJob::bytes("ab", "late", vec![0])),
        Err(EnqueueError::Closed(_))
    ));
}

#[tokio::test]
async fn a_panicking_job_fails_alone_and_the_queue_goes_on() {
    let (_cluster, queue) = setup(AsyncClientConfig::default().with_workers(1)).await;
    let boom: ByteStream = futures::stream::poll_fn(|_| -> std::task::Poll<Option<_>> {
        panic!("a source that panics")
    })
    .boxed();
    let bad = queue.put(PutJob::stream("pn", "boom", boom)).await.unwrap();
    let good = queue
        .put(PutJob::bytes("pn", "fine", vec![9; 10]))
        .await
        .unwrap();
    let err = queue.wait(&bad).await.unwrap_err();
    assert!(err.to_string().contains("panicked"), "{err}");
    assert_eq!(queue.task_status(&bad).unwrap().state.name(), "failed");
    queue.wait(&good).await.unwrap();
    let m = queue.metrics();
    assert_eq!((m.panicked, m.failed, m.completed), (1, 1, 1));
    queue.shutdown().await;
}

#[tokio::test]
async fn bad_ids_are_refused_before_queueing_and_errors_are_reported() {
    let (_cluster, queue) = setup(AsyncClientConfig::default()).await;
    match queue.put(PutJob::bytes("../etc", "x", vec![1])).await {
        Err(EnqueueError::Invalid(_, Error::InvalidId(_))) => {}
        other => panic!("expected Invalid, got {other:?}"),
    }
    let missing = queue
        .get(GetJob::to_memory("nothing", "here"))
        .await
        .unwrap();
    let err = queue.wait(&missing).await.unwrap_err();
    assert!(matches!(*err, Error::NotFound { .. }), "{err}");
    let status = queue.task_status(&missing).unwrap();
    assert!(matches!(status.state, TaskState::Failed(_)));
    queue.shutdown().await;
}

#[tokio::test]
async fn finished_statuses_expire_after_their_ttl() {
    let (_cluster, queue) =
        setup(AsyncClientConfig::default().with_status_ttl(Duration::from_millis(300))).await;
    let id = queue.put(PutJob::bytes("ttl", "b", vec![1])).await.unwrap();
    queue.wait(&id).await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while queue.task_status(&id).is_some() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "status never expired"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(queue.subscribe(&id).is_none());
    queue.shutdown().await;
}
