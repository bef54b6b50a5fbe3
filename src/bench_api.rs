//! Internals exposed for the criterion benches in `benches/` only. Not part of the API: no
//! stability promise, hidden from the docs.

use std::time::Duration;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::queue::status;
use crate::routers::balancer::{self, PickRequest, RouterSnapshot};
use crate::{LbAlgorithm, TaskId, TaskKind, TaskProgress, TaskState, TaskStatus};

/// The client's router choice over a fixed set of synthetic routers.
pub struct Balancer {
    algorithm: LbAlgorithm,
    routers: Vec<RouterSnapshot>,
    rng: StdRng,
}

impl Balancer {
    /// `routers` candidates with different loads, latencies and disk use.
    pub fn new(algorithm: LbAlgorithm, routers: usize) -> Self {
        let routers = (0..routers as u64)
            .map(|i| RouterSnapshot {
                in_flight: i % 4,
                ops: 100 + i * 7,
                latency_us: Some(200 + i * 50),
                disk_used: 1_000_000 * (i + 1),
                disk_total: 100_000_000,
            })
            .collect();
        Self {
            algorithm,
            routers,
            rng: StdRng::seed_from_u64(7),
        }
    }

    /// One choice, as the client makes before every request.
    pub fn pick(&mut self, bucket: &str, key: &str, size: u64) -> Option<usize> {
        let req = PickRequest { bucket, key, size };
        let pick = balancer::choose(self.algorithm, &self.routers, &req, &mut self.rng)?;
        // The client counts the operation against the chosen router.
        self.routers[pick].ops += 1;
        Some(pick)
    }
}

/// The `AsyncClient`'s status table.
pub struct StatusTable(status::StatusTable);

impl Default for StatusTable {
    fn default() -> Self {
        Self(status::StatusTable::new(Duration::from_secs(60)))
    }
}

impl StatusTable {
    /// Registers a queued put task, as `AsyncClient::put` does.
    pub fn enqueue(&self) -> TaskId {
        let id = TaskId::new();
        self.0
            .insert(TaskStatus::queued(id, TaskKind::Put, "bench", "ball"));
        id
    }

    /// A worker's progress report.
    pub fn progress(&self, id: &TaskId, chunks_done: u64) -> bool {
        self.0.update(id, |s| {
            s.state = TaskState::Running(TaskProgress {
                chunks_done,
                chunks_total: 8,
                bytes_done: chunks_done * 1024,
                bytes_total: 8 * 1024,
                attempt: 1,
            })
        })
    }

    /// `AsyncClient::task_status`.
    pub fn status(&self, id: &TaskId) -> Option<TaskStatus> {
        self.0.get(id)
    }

    /// Tasks in the table.
    pub fn len(&self) -> usize {
        let c = self.0.counts();
        c.queued + c.running + c.completed + c.failed + c.cancelled
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
