//! `AsyncClient`: a bounded task queue over [`Client`](crate::Client).
//!
//! [`AsyncClient::put`] and [`AsyncClient::get`] validate the job, push it into a **bounded**
//! `tokio::mpsc` queue and return a [`TaskId`] as soon as it is queued (`put` waits for room,
//! `try_put` gives the job back when the queue is full). A supervisor runs at most `workers`
//! jobs at once; each reports its progress into a `DashMap`-backed status table that
//! [`AsyncClient::task_status`] reads at any time. [`AsyncClient::wait`] returns a job's
//! result, [`AsyncClient::subscribe`] follows its progress, [`AsyncClient::cancel`] stops it
//! (what it stored is removed), and [`AsyncClient::shutdown`] drains the queue while
//! [`AsyncClient::abort`] stops everything.

mod job;
pub(crate) mod status;
mod supervisor;

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use job::{ByteStream, EnqueueError, GetDestination, GetJob, JobOutput, PutJob, PutSource};
pub use status::{TaskCounts, TaskKind, TaskProgress, TaskState, TaskStatus, TaskSummary};

use crate::id::{BallId, BucketId, TaskId};
use crate::{Client, ClientMetrics, Error};
use status::StatusTable;
use supervisor::{Counters, Queued, Shared};

/// Default number of jobs run at once.
pub const DEFAULT_WORKERS: usize = 4;
/// Default number of jobs the queue holds.
pub const DEFAULT_QUEUE_CAPACITY: usize = 1024;
/// Default time a finished task's status (and unclaimed result) is kept.
pub const DEFAULT_STATUS_TTL: Duration = Duration::from_secs(600);

/// A job of either kind, as queued.
pub(crate) enum Job {
    Put(job::PutJob),
    Get(job::GetJob),
}

/// Settings of an [`AsyncClient`].
///
/// # Examples
///
/// ```
/// use mictlanx::AsyncClientConfig;
///
/// let config = AsyncClientConfig::default().with_workers(8).with_queue_capacity(10_000);
/// assert_eq!(config.workers, 8);
/// ```
#[derive(Debug, Clone)]
pub struct AsyncClientConfig {
    /// Jobs run at once (default 4, or `MICTLANX_MAX_WORKERS` through the client's config).
    pub workers: usize,
    /// Jobs the queue holds before `put`/`get` wait (default 1024).
    pub queue_capacity: usize,
    /// How long a finished task stays readable (default 10 minutes).
    pub status_ttl: Duration,
}

impl Default for AsyncClientConfig {
    fn default() -> Self {
        Self {
            workers: DEFAULT_WORKERS,
            queue_capacity: DEFAULT_QUEUE_CAPACITY,
            status_ttl: DEFAULT_STATUS_TTL,
        }
    }
}

impl AsyncClientConfig {
    /// Sets the number of jobs run at once (at least 1).
    #[must_use]
    pub fn with_workers(mut self, n: usize) -> Self {
        self.workers = n.max(1);
        self
    }

    /// Sets the queue's capacity (at least 1).
    #[must_use]
    pub fn with_queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = n.max(1);
        self
    }

    /// Sets how long finished tasks stay readable.
    #[must_use]
    pub fn with_status_ttl(mut self, ttl: Duration) -> Self {
        self.status_ttl = ttl;
        self
    }
}

/// Counters of an [`AsyncClient`], from [`AsyncClient::metrics`].
#[derive(Debug, Clone, PartialEq)]
pub struct QueueMetrics {
    /// Jobs waiting in the queue.
    pub queued: usize,
    /// Jobs being run.
    pub running: usize,
    /// Jobs completed since the client started.
    pub completed: u64,
    /// Jobs failed since the client started.
    pub failed: u64,
    /// Jobs cancelled since the client started.
    pub cancelled: u64,
    /// Jobs whose worker panicked (counted in `failed` too).
    pub panicked: u64,
    /// The underlying client's counters: bytes up and down, retries, per-router latency.
    pub client: ClientMetrics,
}

struct Lifecycle {
    drain: CancellationToken,
    abort: CancellationToken,
    supervisor: Mutex<Option<JoinHandle<()>>>,
    stop_sweeper: CancellationToken,
    sweeper: Mutex<Option<JoinHandle<()>>>,
}

/// A task queue over a [`Client`]: enqueue puts and gets, poll or await their status.
///
/// Cheap to clone; every clone shares the queue. Must be created inside a tokio runtime.
///
/// # Examples
///
/// ```no_run
/// use mictlanx::{AsyncClient, AsyncClientConfig, Client, PutJob, TaskState};
///
/// # #[tokio::main] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let client = Client::builder().routers_uri("mictlanx://router-0@127.0.0.1:60666/?protocol=http").build()?;
/// let queue = AsyncClient::new(client, AsyncClientConfig::default());
/// let id = queue.put(PutJob::bytes("photos", "cat", b"meow".to_vec())).await?;
/// if let Some(status) = queue.task_status(&id) {
///     println!("{id}: {}", status.state.name());
/// }
/// let output = queue.wait(&id).await?;
/// println!("{output:?}");
/// queue.shutdown().await;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct AsyncClient {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Queued>,
    life: Arc<Lifecycle>,
}

impl std::fmt::Debug for AsyncClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncClient")
            .field("client", &self.shared.client)
            .field("tasks", &self.shared.table.counts())
            .finish_non_exhaustive()
    }
}

impl AsyncClient {
    /// Starts the supervisor and the status sweeper on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// When called outside a tokio runtime.
    pub fn new(client: Client, config: AsyncClientConfig) -> Self {
        let workers = config.workers.max(1);
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let shared = Arc::new(Shared {
            client,
            table: Arc::new(StatusTable::new(config.status_ttl)),
            cancels: DashMap::new(),
            counters: Counters::default(),
        });
        let drain = CancellationToken::new();
        let abort = CancellationToken::new();
        let stop_sweeper = CancellationToken::new();
        let supervisor = tokio::spawn(supervisor::supervise(
            rx,
            shared.clone(),
            workers,
            drain.clone(),
            abort.clone(),
        ));
        let every =
            (config.status_ttl / 4).clamp(Duration::from_millis(100), Duration::from_secs(60));
        let sweeper = tokio::spawn(supervisor::sweep(
            Arc::downgrade(&shared),
            every,
            stop_sweeper.clone(),
        ));
        Self {
            shared,
            tx,
            life: Arc::new(Lifecycle {
                drain,
                abort,
                supervisor: Mutex::new(Some(supervisor)),
                stop_sweeper,
                sweeper: Mutex::new(Some(sweeper)),
            }),
        }
    }

    /// Like [`AsyncClient::new`], with the worker count of the client's configuration
    /// (`MICTLANX_MAX_WORKERS`) when it has one.
    pub fn with_client_defaults(client: Client) -> Self {
        let mut config = AsyncClientConfig::default();
        if let Some(n) = client.config().max_workers {
            config.workers = n.max(1);
        }
        Self::new(client, config)
    }

    /// The underlying direct client.
    pub fn client(&self) -> &Client {
        &self.shared.client
    }

    /// Queues a put, waiting for room when the queue is full; returns its task id as soon as
    /// it is queued.
    ///
    /// # Errors
    ///
    /// [`EnqueueError::Invalid`] for bad ids (nothing queued), [`EnqueueError::Closed`] after
    /// `shutdown`/`abort`. The job is given back in both.
    ///
    /// # Cancel safety
    ///
    /// Cancelling this future while it waits for room queues nothing.
    pub async fn put(&self, job: PutJob) -> Result<TaskId, EnqueueError<PutJob>> {
        if let Err(e) = check_ids(&job.bucket_id, &job.ball_id) {
            return Err(EnqueueError::Invalid(job, e));
        }
        match self.tx.reserve().await {
            Ok(permit) => Ok(self.enqueue(permit, TaskKind::Put, Job::Put(job))),
            Err(_) => Err(EnqueueError::Closed(job)),
        }
    }

    /// Queues a put if there is room now.
    ///
    /// # Errors
    ///
    /// [`EnqueueError::Full`] when the queue is full, and as [`AsyncClient::put`].
    // The job comes back by value, as tokio's `TrySendError<T>` does: boxing it would cost
    // every successful call an allocation to spare the rare refusal a move.
    #[allow(clippy::result_large_err)]
    pub fn try_put(&self, job: PutJob) -> Result<TaskId, EnqueueError<PutJob>> {
        if let Err(e) = check_ids(&job.bucket_id, &job.ball_id) {
            return Err(EnqueueError::Invalid(job, e));
        }
        match self.tx.try_reserve() {
            Ok(permit) => Ok(self.enqueue(permit, TaskKind::Put, Job::Put(job))),
            Err(mpsc::error::TrySendError::Full(())) => Err(EnqueueError::Full(job)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(EnqueueError::Closed(job)),
        }
    }

    /// Queues a get, waiting for room when the queue is full.
    ///
    /// # Errors
    ///
    /// As [`AsyncClient::put`].
    pub async fn get(&self, job: GetJob) -> Result<TaskId, EnqueueError<GetJob>> {
        if let Err(e) = check_ids(&job.bucket_id, &job.ball_id) {
            return Err(EnqueueError::Invalid(job, e));
        }
        match self.tx.reserve().await {
            Ok(permit) => Ok(self.enqueue(permit, TaskKind::Get, Job::Get(job))),
            Err(_) => Err(EnqueueError::Closed(job)),
        }
    }

    /// Queues a get if there is room now.
    ///
    /// # Errors
    ///
    /// As [`AsyncClient::try_put`].
    // The job comes back by value, as tokio's `TrySendError<T>` does: boxing it would cost
    // every successful call an allocation to spare the rare refusal a move.
    #[allow(clippy::result_large_err)]
    pub fn try_get(&self, job: GetJob) -> Result<TaskId, EnqueueError<GetJob>> {
        if let Err(e) = check_ids(&job.bucket_id, &job.ball_id) {
            return Err(EnqueueError::Invalid(job, e));
        }
        match self.tx.try_reserve() {
            Ok(permit) => Ok(self.enqueue(permit, TaskKind::Get, Job::Get(job))),
            Err(mpsc::error::TrySendError::Full(())) => Err(EnqueueError::Full(job)),
            Err(mpsc::error::TrySendError::Closed(())) => Err(EnqueueError::Closed(job)),
        }
    }

    fn enqueue(&self, permit: mpsc::Permit<'_, Queued>, kind: TaskKind, job: Job) -> TaskId {
        let id = TaskId::new();
        let (bucket, ball) = match &job {
            Job::Put(p) => (p.bucket_id.as_str(), p.ball_id.as_str()),
            Job::Get(g) => (g.bucket_id.as_str(), g.ball_id.as_str()),
        };
        self.shared
            .table
            .insert(TaskStatus::queued(id, kind, bucket, ball));
        let cancel = CancellationToken::new();
        self.shared.cancels.insert(id, cancel.clone());
        permit.send(Queued { id, job, cancel });
        id
    }

    /// The task's current status; `None` for an unknown or expired task.
    pub fn task_status(&self, id: &TaskId) -> Option<TaskStatus> {
        self.shared.table.get(id)
    }

    /// A watch receiver that sees every status change of the task (progress included).
    pub fn subscribe(&self, id: &TaskId) -> Option<watch::Receiver<TaskStatus>> {
        self.shared.table.subscribe(id)
    }

    /// Waits for the task to finish and returns its output. The output is handed out once:
    /// a second `wait` on the same task gets [`Error::NotFound`].
    ///
    /// # Errors
    ///
    /// The job's own error (shared, hence the `Arc`), [`Error::Cancelled`], or
    /// [`Error::NotFound`] for an unknown or expired task.
    pub async fn wait(&self, id: &TaskId) -> Result<JobOutput, Arc<Error>> {
        let not_found = || {
            Arc::new(Error::NotFound {
                message: format!("task {id} is unknown, expired, or its result was already taken"),
            })
        };
        let mut rx = self.shared.table.subscribe(id).ok_or_else(not_found)?;
        // `wait_for` checks the current value first, so a finished task returns at once.
        let finished = rx.wait_for(|s| s.state.is_terminal()).await.is_ok();
        drop(rx);
        if !finished {
            return Err(not_found());
        }
        self.shared
            .table
            .take_result(id)
            .unwrap_or_else(|| Err(not_found()))
    }

    /// Stops a queued or running task. A running put deletes what it had stored; a get to a
    /// file leaves no partial file. Returns false when the task is unknown or already done.
    pub fn cancel(&self, id: &TaskId) -> bool {
        let Some(token) = self.shared.cancels.get(id).map(|t| t.clone()) else {
            return false;
        };
        token.cancel();
        // A queued task will never start: say so now rather than when a worker reaches it.
        let queued = self
            .shared
            .table
            .get(id)
            .is_some_and(|s| matches!(s.state, TaskState::Queued));
        if queued {
            supervisor::finish(&self.shared, *id, Err(Arc::new(Error::Cancelled)));
        }
        true
    }

    /// How many tasks are in each state (finished ones until they expire).
    pub fn task_counts(&self) -> TaskCounts {
        self.shared.table.counts()
    }

    /// A snapshot of the queue's and the client's counters.
    pub fn metrics(&self) -> QueueMetrics {
        let counts = self.shared.table.counts();
        let c = &self.shared.counters;
        QueueMetrics {
            queued: counts.queued,
            running: counts.running,
            completed: c.completed.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            cancelled: c.cancelled.load(Ordering::Relaxed),
            panicked: c.panicked.load(Ordering::Relaxed),
            client: self.shared.client.metrics(),
        }
    }

    /// Refuses new jobs, runs every job already queued to its end, and waits for the workers.
    pub async fn shutdown(&self) {
        self.life.drain.cancel();
        self.join().await;
    }

    /// Refuses new jobs, cancels every queued and running job (each cleans up what it
    /// stored, for up to 5 s), and waits for the workers.
    pub async fn abort(&self) {
        self.life.abort.cancel();
        self.join().await;
    }

    /// Waits for the supervisor (and so every job task), then stops and joins the sweeper.
    async fn join(&self) {
        let supervisor = self.life.supervisor.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = supervisor {
            let _ = handle.await;
        }
        self.life.stop_sweeper.cancel();
        let sweeper = self.life.sweeper.lock().ok().and_then(|mut h| h.take());
        if let Some(handle) = sweeper {
            let _ = handle.await;
        }
    }
}

fn check_ids(bucket: &str, ball: &str) -> Result<(), Error> {
    BucketId::new(bucket)?;
    BallId::new(ball)?;
    Ok(())
}
