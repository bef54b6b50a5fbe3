//! The supervisor: takes jobs from the bounded queue and runs at most `workers` of them at
//! once, each in its own task of a `JoinSet`, so that a job that panics fails alone and its
//! slot is given to the next job.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::job::{GetDestination, JobOutput, PutSource};
use super::status::{JobResult, StatusTable, TaskProgress, TaskState, TaskSummary};
use super::Job;
use crate::id::TaskId;
use crate::{Client, Error, ProgressFn};

/// How long an abort waits for cancelled jobs to clean up before it drops them.
const ABORT_GRACE: Duration = Duration::from_secs(5);

/// A job in the queue, with its id and its cancellation token.
pub(crate) struct Queued {
    pub id: TaskId,
    pub job: Job,
    pub cancel: CancellationToken,
}

/// State the supervisor and the job tasks share with the `AsyncClient` handles.
pub(crate) struct Shared {
    pub client: Client,
    pub table: Arc<StatusTable>,
    pub cancels: DashMap<TaskId, CancellationToken>,
    pub counters: Counters,
}

/// Cumulative counts since the client started.
#[derive(Default)]
pub(crate) struct Counters {
    pub completed: AtomicU64,
    pub failed: AtomicU64,
    pub cancelled: AtomicU64,
    pub panicked: AtomicU64,
}

/// Runs until the queue is closed and empty and every job has finished (drain), or until
/// `abort` fires.
pub(crate) async fn supervise(
    mut rx: mpsc::Receiver<Queued>,
    shared: Arc<Shared>,
    workers: usize,
    drain: CancellationToken,
    abort: CancellationToken,
) {
    let mut running: JoinSet<()> = JoinSet::new();
    let mut ids: HashMap<tokio::task::Id, TaskId> = HashMap::new();
    let mut open = true;
    let mut closing = false;
    loop {
        if !open && running.is_empty() {
            break;
        }
        tokio::select! {
            biased;
            () = abort.cancelled() => break,
            () = drain.cancelled(), if open && !closing => {
                // No new jobs; those already queued still run, then `recv` says None.
                rx.close();
                closing = true;
            }
            Some(joined) = running.join_next_with_id(), if !running.is_empty() => {
                let (task, outcome) = match joined {
                    Ok((task, ())) => (task, None),
                    Err(e) => (e.id(), Some(e)),
                };
                if let (Some(id), Some(e)) = (ids.remove(&task), outcome) {
                    job_task_died(&shared, id, e);
                }
            }
            next = rx.recv(), if open && running.len() < workers => match next {
                Some(queued) => {
                    let id = queued.id;
                    let handle = running.spawn(run(shared.clone(), queued));
                    ids.insert(handle.id(), id);
                }
                None => open = false,
            },
        }
    }
    if abort.is_cancelled() {
        abort_everything(&shared, &mut rx, &mut running).await;
    }
}

/// A job task ended without reporting: it panicked (or was aborted).
fn job_task_died(shared: &Shared, id: TaskId, e: tokio::task::JoinError) {
    let why = if e.is_panic() {
        shared.counters.panicked.fetch_add(1, Ordering::Relaxed);
        "the worker running this task panicked".to_string()
    } else {
        "the worker running this task was stopped".to_string()
    };
    tracing::error!(event = "TASK.WORKER.DIED", task_id = %id, reason = %why);
    let error = Arc::new(Error::Io(std::io::Error::other(why)));
    finish(shared, id, Err(error));
}

/// Cancels every queued and running job, lets the running ones clean up (bounded), and marks
/// what is left cancelled.
async fn abort_everything(
    shared: &Shared,
    rx: &mut mpsc::Receiver<Queued>,
    running: &mut JoinSet<()>,
) {
    rx.close();
    while let Ok(queued) = rx.try_recv() {
        queued.cancel.cancel();
        finish(shared, queued.id, Err(Arc::new(Error::Cancelled)));
    }
    for entry in shared.cancels.iter() {
        entry.value().cancel();
    }
    let drained = tokio::time::timeout(ABORT_GRACE, async {
        while running.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        running.shutdown().await;
    }
    for id in shared.table.unfinished() {
        finish(shared, id, Err(Arc::new(Error::Cancelled)));
    }
}

/// Runs one job and records its outcome.
async fn run(shared: Arc<Shared>, queued: Queued) {
    let Queued { id, job, cancel } = queued;
    if cancel.is_cancelled() {
        finish(&shared, id, Err(Arc::new(Error::Cancelled)));
        return;
    }
    shared.table.update(&id, |s| {
        s.started_at = Some(SystemTime::now());
        s.state = TaskState::Running(TaskProgress::default());
    });
    let table = shared.table.clone();
    let progress: ProgressFn = Arc::new(move |p| {
        table.update(&id, |s| {
            s.state = TaskState::Running(TaskProgress {
                chunks_done: p.chunks_done,
                chunks_total: p.chunks_total,
                bytes_done: p.bytes_done,
                bytes_total: p.bytes_total,
                attempt: p.attempt,
            });
        });
    });
    let client = &shared.client;
    let outcome = match job {
        Job::Put(put) => {
            let mut opts = put.options;
            opts.cancel = Some(cancel);
            opts.progress = Some(progress);
            let (b, k) = (put.bucket_id.as_str(), put.ball_id.as_str());
            match put.source {
                PutSource::Bytes(data) => client.put_bytes(b, k, data, opts).await,
                PutSource::File(path) => client.put_file(b, k, path, opts).await,
                PutSource::Stream(stream) => client.put_stream(b, k, stream, opts).await,
            }
            .map(JobOutput::Put)
        }
        Job::Get(get) => {
            let mut opts = get.options;
            opts.cancel = Some(cancel);
            opts.progress = Some(progress);
            let (b, k) = (get.bucket_id.as_str(), get.ball_id.as_str());
            match get.destination {
                GetDestination::Memory => {
                    client.get_bytes_opts(b, k, opts).await.map(JobOutput::Get)
                }
                GetDestination::File(path) => client
                    .get_to_file_opts(b, k, path, opts)
                    .await
                    .map(JobOutput::GetFile),
            }
        }
    };
    finish(&shared, id, outcome.map_err(Arc::new));
}

/// Records a job's outcome: the status becomes terminal and the result waits for `wait`.
pub(crate) fn finish(shared: &Shared, id: TaskId, outcome: JobResult) {
    shared.cancels.remove(&id);
    let (state, counter) = match &outcome {
        Ok(output) => (
            TaskState::Completed(summary(output, elapsed_since_start(shared, &id))),
            &shared.counters.completed,
        ),
        Err(e) if e.is_cancelled() => (TaskState::Cancelled, &shared.counters.cancelled),
        Err(e) => (TaskState::Failed(e.clone()), &shared.counters.failed),
    };
    // Only the first outcome counts: a late report never overwrites a result.
    shared.table.finish(&id, state, outcome, || {
        counter.fetch_add(1, Ordering::Relaxed);
    });
}

fn elapsed_since_start(shared: &Shared, id: &TaskId) -> Duration {
    shared
        .table
        .get(id)
        .and_then(|s| s.started_at)
        .and_then(|t| t.elapsed().ok())
        .unwrap_or_default()
}

fn summary(output: &JobOutput, elapsed: Duration) -> TaskSummary {
    match output {
        JobOutput::Put(p) => TaskSummary {
            bytes: p.size,
            chunks: p.num_chunks,
            full_checksum: p.full_checksum.clone(),
            replicas: p.replicas.iter().cloned().collect(),
            elapsed: p.elapsed,
            path: None,
        },
        JobOutput::Get(g) => TaskSummary {
            bytes: g.data.len() as u64,
            chunks: g.chunks.len() as u64,
            full_checksum: g
                .chunks
                .first()
                .and_then(|m| m.full_checksum())
                .unwrap_or_default()
                .to_string(),
            replicas: Vec::new(),
            elapsed,
            path: None,
        },
        JobOutput::GetFile(f) => TaskSummary {
            bytes: f.size,
            chunks: 0,
            full_checksum: String::new(),
            replicas: Vec::new(),
            elapsed,
            path: Some(f.path.clone()),
        },
    }
}

/// Removes expired statuses (with their unclaimed results) every `every`, until `stop`.
pub(crate) async fn sweep(
    shared: std::sync::Weak<Shared>,
    every: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let started = Instant::now();
        let removed = shared.table.sweep();
        if removed > 0 {
            tracing::debug!(
                event = "TASKS.EXPIRED",
                removed,
                took_us = started.elapsed().as_micros() as u64
            );
        }
    }
}
