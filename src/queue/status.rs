//! The task status table: what each queued job is doing, readable at any time.
//!
//! A `DashMap<TaskId, Entry>` where each entry owns a `watch` channel of the task's status:
//! [`StatusTable::get`] copies the current value out (no guard outlives the call, so no guard
//! is ever held across an `.await`), and subscribers see every change. Finished entries
//! expire after a TTL so a long-running service does not grow the table forever.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dashmap::DashMap;
use tokio::sync::watch;
use tokio::time::Instant;

use super::job::JobOutput;
use crate::id::TaskId;
use crate::Error;

/// What a finished job leaves for `wait`: its output or its error.
pub(crate) type JobResult = Result<JobOutput, Arc<Error>>;

/// What a task does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskKind {
    /// Stores a ball.
    Put,
    /// Reads a ball.
    Get,
}

/// How far a running task is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskProgress {
    /// Chunks transferred and verified.
    pub chunks_done: u64,
    /// Chunks in the ball (0 until known).
    pub chunks_total: u64,
    /// Bytes transferred.
    pub bytes_done: u64,
    /// Bytes in the ball (0 until known).
    pub bytes_total: u64,
    /// Highest attempt number of any chunk so far (1 = no retry yet).
    pub attempt: u32,
}

/// What a finished task did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskSummary {
    /// Bytes of the ball.
    pub bytes: u64,
    /// Chunks of the ball.
    pub chunks: u64,
    /// SHA-256 of the whole ball.
    pub full_checksum: String,
    /// Peers that hold replicas (puts; empty for gets).
    pub replicas: Vec<String>,
    /// How long the task ran.
    pub elapsed: Duration,
    /// Where a get to a file wrote the ball.
    pub path: Option<PathBuf>,
}

/// The state of a task.
#[derive(Debug, Clone)]
pub enum TaskState {
    /// Waiting in the queue.
    Queued,
    /// A worker is on it.
    Running(TaskProgress),
    /// Done.
    Completed(TaskSummary),
    /// Gave up; the error says why.
    Failed(Arc<Error>),
    /// Cancelled before it finished; what it had stored was removed.
    Cancelled,
}

impl TaskState {
    /// Whether the task will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            TaskState::Completed(_) | TaskState::Failed(_) | TaskState::Cancelled
        )
    }

    /// A short name: `queued`, `running`, `completed`, `failed`, `cancelled`.
    pub fn name(&self) -> &'static str {
        match self {
            TaskState::Queued => "queued",
            TaskState::Running(_) => "running",
            TaskState::Completed(_) => "completed",
            TaskState::Failed(_) => "failed",
            TaskState::Cancelled => "cancelled",
        }
    }
}

/// A task's status, with its timestamps.
#[derive(Debug, Clone)]
pub struct TaskStatus {
    /// The task.
    pub id: TaskId,
    /// Put or get.
    pub kind: TaskKind,
    /// Bucket of the ball.
    pub bucket_id: String,
    /// The ball.
    pub ball_id: String,
    /// Where it is.
    pub state: TaskState,
    /// When it was queued.
    pub queued_at: SystemTime,
    /// When a worker took it.
    pub started_at: Option<SystemTime>,
    /// When it reached a terminal state.
    pub finished_at: Option<SystemTime>,
}

impl TaskStatus {
    /// A freshly queued task.
    pub fn queued(id: TaskId, kind: TaskKind, bucket_id: &str, ball_id: &str) -> Self {
        Self {
            id,
            kind,
            bucket_id: bucket_id.to_string(),
            ball_id: ball_id.to_string(),
            state: TaskState::Queued,
            queued_at: SystemTime::now(),
            started_at: None,
            finished_at: None,
        }
    }
}

struct Entry {
    tx: watch::Sender<TaskStatus>,
    /// The job's output, stored before the terminal state is announced so that a waiter
    /// woken by that state always finds it; taken by the first `wait`.
    result: Option<JobResult>,
    /// Set when the task reached a terminal state; the TTL counts from here.
    finished: Option<Instant>,
}

/// Counts of the tasks in the table, by state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskCounts {
    /// Waiting in the queue.
    pub queued: usize,
    /// Being worked on.
    pub running: usize,
    /// Completed and not yet expired.
    pub completed: usize,
    /// Failed and not yet expired.
    pub failed: usize,
    /// Cancelled and not yet expired.
    pub cancelled: usize,
}

/// The table of task statuses. Cheap to share behind an `Arc`.
pub(crate) struct StatusTable {
    map: DashMap<TaskId, Entry>,
    ttl: Duration,
}

impl StatusTable {
    /// A table whose finished entries live `ttl` after they finish.
    pub(crate) fn new(ttl: Duration) -> Self {
        Self {
            map: DashMap::new(),
            ttl,
        }
    }

    /// Adds a task (normally [`TaskState::Queued`]).
    pub(crate) fn insert(&self, status: TaskStatus) {
        let id = status.id;
        let (tx, _rx) = watch::channel(status);
        self.map.insert(
            id,
            Entry {
                tx,
                result: None,
                finished: None,
            },
        );
    }

    /// A copy of the task's current status.
    pub(crate) fn get(&self, id: &TaskId) -> Option<TaskStatus> {
        self.map.get(id).map(|e| e.tx.borrow().clone())
    }

    /// A receiver that sees every later change of the task.
    pub(crate) fn subscribe(&self, id: &TaskId) -> Option<watch::Receiver<TaskStatus>> {
        self.map.get(id).map(|e| e.tx.subscribe())
    }

    /// Changes a task's status, unless it is already terminal (a late progress report never
    /// overwrites a result). Returns false when the task is unknown or already finished.
    pub(crate) fn update(&self, id: &TaskId, change: impl FnOnce(&mut TaskStatus)) -> bool {
        let Some(mut entry) = self.map.get_mut(id) else {
            return false;
        };
        if entry.tx.borrow().state.is_terminal() {
            return false;
        }
        let mut now_terminal = false;
        entry.tx.send_modify(|status| {
            change(status);
            if status.state.is_terminal() {
                status.finished_at.get_or_insert_with(SystemTime::now);
                now_terminal = true;
            }
        });
        if now_terminal {
            entry.finished = Some(Instant::now());
        }
        true
    }

    /// Moves the task to its terminal `state` and keeps `result` for `wait`, unless the task
    /// is unknown or already finished; `counted` runs when it does, before anyone waiting
    /// on the task sees the outcome.
    pub(crate) fn finish(
        &self,
        id: &TaskId,
        state: TaskState,
        result: JobResult,
        counted: impl FnOnce(),
    ) {
        let Some(mut entry) = self.map.get_mut(id) else {
            return;
        };
        if entry.tx.borrow().state.is_terminal() {
            return;
        }
        entry.result = Some(result);
        entry.finished = Some(Instant::now());
        counted();
        entry.tx.send_modify(|status| {
            status.state = state;
            status.finished_at.get_or_insert_with(SystemTime::now);
        });
    }

    /// Takes a finished task's result (once).
    pub(crate) fn take_result(&self, id: &TaskId) -> Option<JobResult> {
        self.map.get_mut(id).and_then(|mut e| e.result.take())
    }

    /// Removes finished entries older than the TTL; returns how many went.
    pub(crate) fn sweep(&self) -> usize {
        let now = Instant::now();
        let before = self.map.len();
        self.map.retain(|_, e| match e.finished {
            Some(at) => now.saturating_duration_since(at) < self.ttl,
            None => true,
        });
        before.saturating_sub(self.map.len())
    }

    /// How many tasks are in each state.
    pub(crate) fn counts(&self) -> TaskCounts {
        let mut c = TaskCounts::default();
        for e in self.map.iter() {
            match e.tx.borrow().state {
                TaskState::Queued => c.queued += 1,
                TaskState::Running(_) => c.running += 1,
                TaskState::Completed(_) => c.completed += 1,
                TaskState::Failed(_) => c.failed += 1,
                TaskState::Cancelled => c.cancelled += 1,
            }
        }
        c
    }

    /// Ids of the tasks not yet finished.
    pub(crate) fn unfinished(&self) -> Vec<TaskId> {
        self.map
            .iter()
            .filter(|e| !e.tx.borrow().state.is_terminal())
            .map(|e| *e.key())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued() -> TaskStatus {
        TaskStatus::queued(TaskId::new(), TaskKind::Put, "b", "ball")
    }

    #[tokio::test]
    async fn progress_then_completion_is_seen_by_subscribers() {
        let table = StatusTable::new(Duration::from_secs(60));
        let status = queued();
        let id = status.id;
        table.insert(status);
        let mut rx = table.subscribe(&id).unwrap();
        assert!(table.update(&id, |s| {
            s.started_at = Some(SystemTime::now());
            s.state = TaskState::Running(TaskProgress {
                chunks_done: 1,
                chunks_total: 4,
                ..Default::default()
            });
        }));
        rx.changed().await.unwrap();
        assert!(matches!(rx.borrow().state, TaskState::Running(p) if p.chunks_done == 1));
        assert!(table.update(&id, |s| s.state = TaskState::Cancelled));
        rx.changed().await.unwrap();
        let now = table.get(&id).unwrap();
        assert!(now.state.is_terminal());
        assert!(now.finished_at.is_some());
    }

    #[test]
    fn terminal_state_is_never_overwritten() {
        let table = StatusTable::new(Duration::from_secs(60));
        let status = queued();
        let id = status.id;
        table.insert(status);
        assert!(table.update(&id, |s| s.state = TaskState::Cancelled));
        assert!(!table.update(&id, |s| s.state = TaskState::Queued));
        assert_eq!(table.get(&id).unwrap().state.name(), "cancelled");
        assert!(!table.update(&TaskId::new(), |_| {}));
    }

    #[tokio::test(start_paused = true)]
    async fn finished_entries_expire_after_the_ttl_and_running_ones_stay() {
        let table = StatusTable::new(Duration::from_secs(30));
        let done = queued();
        let running = queued();
        let (done_id, running_id) = (done.id, running.id);
        table.insert(done);
        table.insert(running);
        table.update(&done_id, |s| s.state = TaskState::Cancelled);
        table.update(&running_id, |s| {
            s.state = TaskState::Running(TaskProgress::default())
        });
        tokio::time::advance(Duration::from_secs(29)).await;
        assert_eq!(table.sweep(), 0);
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(table.sweep(), 1);
        assert!(table.get(&done_id).is_none());
        assert!(table.get(&running_id).is_some());
        assert_eq!(table.unfinished(), vec![running_id]);
        assert_eq!(
            table.counts(),
            TaskCounts {
                running: 1,
                ..Default::default()
            }
        );
    }
}
