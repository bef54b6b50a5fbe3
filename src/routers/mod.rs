//! The routers a client talks to: their live state, the balancer that picks one per request,
//! and the heartbeat that keeps their health and statistics fresh.
//!
//! Every router's state is a set of atomics (healthy flag, in-flight and operation counters,
//! latency EWMA, disk use), read without locks by the balancer and written by requests and
//! the heartbeat. No lock is ever held across an `.await`.

pub(crate) mod balancer;
pub(crate) mod heartbeat;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::uri::NodeAddress;

pub(crate) use balancer::{choose, PickRequest, RouterSnapshot};
pub use balancer::{LbAlgorithm, ParseLbError};

/// Weight of a new latency sample in the EWMA.
const EWMA_ALPHA: f64 = 0.3;

/// Live state of one router.
#[derive(Debug)]
pub(crate) struct RouterState {
    /// Position in the pool.
    pub index: usize,
    /// Name for logs and metrics (the id, else `host:port`).
    pub id: String,
    /// `scheme://host[:port][/path]`.
    pub base_url: String,
    /// API version for paths (`/api/v{n}`).
    pub api_version: u32,
    healthy: AtomicBool,
    in_flight: AtomicU64,
    ops: AtomicU64,
    requests: AtomicU64,
    failures: AtomicU64,
    retries: AtomicU64,
    /// Heartbeat latency EWMA in microseconds; 0 = not measured yet.
    latency_us: AtomicU64,
    disk_used: AtomicU64,
    disk_total: AtomicU64,
}

impl RouterState {
    fn new(index: usize, address: &NodeAddress) -> Self {
        Self {
            index,
            id: address.label(),
            base_url: address.base_url(),
            api_version: address.api_version,
            // Assumed healthy until a probe or a request says otherwise.
            healthy: AtomicBool::new(true),
            in_flight: AtomicU64::new(0),
            ops: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            latency_us: AtomicU64::new(0),
            disk_used: AtomicU64::new(0),
            disk_total: AtomicU64::new(0),
        }
    }

    /// Whether the last probe or request found it healthy.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// Sets the healthy flag; returns the previous value.
    pub fn set_healthy(&self, healthy: bool) -> bool {
        self.healthy.swap(healthy, Ordering::Relaxed)
    }

    /// Counts a retry made after a failure on this router.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Marks a request as started; the guard ends it (also when the future is dropped).
    pub fn begin_request(self: &Arc<Self>) -> InFlight {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight {
            router: Arc::clone(self),
        }
    }

    /// Counts a failed request.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Folds a heartbeat latency sample into the EWMA.
    pub fn record_latency(&self, sample: Duration) {
        let sample_us = u64::try_from(sample.as_micros()).unwrap_or(u64::MAX).max(1);
        // fetch_update never fails with a closure that always returns Some.
        let _ = self
            .latency_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                if old == 0 {
                    return Some(sample_us);
                }
                // Precision loss is fine for a smoothed latency.
                let next = EWMA_ALPHA * sample_us as f64 + (1.0 - EWMA_ALPHA) * old as f64;
                Some((next as u64).max(1))
            });
    }

    /// Records the disk use of the router's peers.
    pub fn record_disk(&self, used: u64, total: u64) {
        self.disk_used.store(used, Ordering::Relaxed);
        self.disk_total.store(total, Ordering::Relaxed);
    }

    /// The balancer's view of this router.
    pub fn snapshot(&self) -> RouterSnapshot {
        let latency = self.latency_us.load(Ordering::Relaxed);
        RouterSnapshot {
            in_flight: self.in_flight.load(Ordering::Relaxed),
            ops: self.ops.load(Ordering::Relaxed),
            latency_us: (latency > 0).then_some(latency),
            disk_used: self.disk_used.load(Ordering::Relaxed),
            disk_total: self.disk_total.load(Ordering::Relaxed),
        }
    }

    /// The public metrics of this router.
    pub fn metrics(&self) -> RouterMetrics {
        let latency = self.latency_us.load(Ordering::Relaxed);
        RouterMetrics {
            router_id: self.id.clone(),
            base_url: self.base_url.clone(),
            healthy: self.is_healthy(),
            latency_ewma: (latency > 0).then(|| Duration::from_micros(latency)),
            requests: self.requests.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            disk_used: self.disk_used.load(Ordering::Relaxed),
            disk_total: self.disk_total.load(Ordering::Relaxed),
        }
    }
}

/// A request in flight on a router; dropping it ends the request.
#[derive(Debug)]
pub(crate) struct InFlight {
    router: Arc<RouterState>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.router.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A snapshot of one router's counters, from [`Client::metrics`](crate::Client::metrics).
#[derive(Debug, Clone, PartialEq)]
pub struct RouterMetrics {
    /// The router's id (or `host:port` when it has none).
    pub router_id: String,
    /// Its base URL.
    pub base_url: String,
    /// Whether the last heartbeat or request found it healthy.
    pub healthy: bool,
    /// Heartbeat latency, exponentially weighted; `None` before the first probe.
    pub latency_ewma: Option<Duration>,
    /// Attempts made on it (every retry counts; a chunk upload's metadata and data requests
    /// are one attempt).
    pub requests: u64,
    /// Requests that failed (HTTP error or transport error).
    pub failures: u64,
    /// Retries made after a failure on it.
    pub retries: u64,
    /// Requests in flight now.
    pub in_flight: u64,
    /// Bytes used by its peers (0 unless a `_UF` balancer asked for stats, or the router has
    /// no `/health`).
    pub disk_used: u64,
    /// Capacity of its peers in bytes (0 when unknown).
    pub disk_total: u64,
}

/// The client's routers and its balancer.
#[derive(Debug)]
pub(crate) struct RouterPool {
    routers: Vec<Arc<RouterState>>,
    lb: LbAlgorithm,
}

impl RouterPool {
    /// A pool over `addresses` (never empty: the builder checks it).
    pub fn new(addresses: &[NodeAddress], lb: LbAlgorithm) -> Self {
        let routers = addresses
            .iter()
            .enumerate()
            .map(|(i, a)| Arc::new(RouterState::new(i, a)))
            .collect();
        Self { routers, lb }
    }

    /// Every router, in configuration order.
    pub fn all(&self) -> &[Arc<RouterState>] {
        &self.routers
    }

    /// The router with this id, counted as one more operation on it (the HEAD client's
    /// explicit pick).
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn pick_by_id(&self, id: &str) -> Option<Arc<RouterState>> {
        let router = self.routers.iter().find(|r| r.id == id)?;
        router.ops.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(router))
    }

    /// Picks a router for one attempt of a request.
    ///
    /// Candidates are the healthy routers not in `avoid` (those that already failed this
    /// request); when there are none, every router not in `avoid` (the heartbeat may be
    /// stale); when `avoid` covers all, every router. `None` only for an empty pool.
    pub fn pick(&self, req: &PickRequest<'_>, avoid: &[usize]) -> Option<Arc<RouterState>> {
        let not_avoided = |r: &&Arc<RouterState>| !avoid.contains(&r.index);
        let mut candidates: Vec<&Arc<RouterState>> = self
            .routers
            .iter()
            .filter(not_avoided)
            .filter(|r| r.is_healthy())
            .collect();
        if candidates.is_empty() {
            candidates = self.routers.iter().filter(not_avoided).collect();
        }
        if candidates.is_empty() {
            candidates = self.routers.iter().collect();
        }
        let snapshots: Vec<RouterSnapshot> = candidates.iter().map(|r| r.snapshot()).collect();
        let i = choose(self.lb, &snapshots, req, &mut rand::thread_rng())?;
        let router = candidates.get(i)?;
        router.ops.fetch_add(1, Ordering::Relaxed);
        Some(Arc::clone(router))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::uri::Protocol;

    fn pool(n: usize, lb: LbAlgorithm) -> RouterPool {
        let addresses: Vec<NodeAddress> = (0..n)
            .map(|i| {
                NodeAddress::new("127.0.0.1", Some(60_000 + i as u16), Protocol::Http)
                    .with_id(format!("r{i}"))
            })
            .collect();
        RouterPool::new(&addresses, lb)
    }

    const REQ: PickRequest<'static> = PickRequest {
        bucket: "b",
        key: "k",
        size: 0,
    };

    /// Reference §13: an explicit pick returns that router and bumps only its counter; the
    /// next default picks go to the other one.
    #[test]
    fn explicit_pick_then_default_picks() {
        let pool = pool(2, LbAlgorithm::RoundRobin);
        for _ in 0..3 {
            assert_eq!(pool.pick_by_id("r0").map(|r| r.index), Some(0));
        }
        assert_eq!(pool.all()[0].snapshot().ops, 3);
        assert_eq!(pool.all()[1].snapshot().ops, 0);
        assert_eq!(pool.pick(&REQ, &[]).map(|r| r.index), Some(1));
        assert!(pool.pick_by_id("nope").is_none());
    }

    #[test]
    fn six_picks_over_two_routers_are_three_each() {
        let pool = pool(2, LbAlgorithm::RoundRobin);
        let mut counts = [0; 2];
        for _ in 0..6 {
            counts[pool.pick(&REQ, &[]).map_or(9, |r| r.index)] += 1;
        }
        assert_eq!(counts, [3, 3]);
    }

    #[test]
    fn empty_pool_picks_nothing() {
        let pool = RouterPool::new(&[], LbAlgorithm::RoundRobin);
        assert!(pool.pick(&REQ, &[]).is_none());
    }

    #[test]
    fn unhealthy_and_avoided_routers_are_skipped_until_none_is_left() {
        let pool = pool(3, LbAlgorithm::RoundRobin);
        pool.all()[0].set_healthy(false);
        for _ in 0..6 {
            let r = pool.pick(&REQ, &[1]).map(|r| r.index);
            assert_eq!(r, Some(2));
        }
        // Every healthy one avoided: fall back to the unhealthy one (heartbeat may be stale).
        assert_eq!(pool.pick(&REQ, &[1, 2]).map(|r| r.index), Some(0));
        // Everything avoided: anything.
        assert!(pool.pick(&REQ, &[0, 1, 2]).is_some());
        // Nobody healthy: still an answer.
        for r in pool.all() {
            r.set_healthy(false);
        }
        assert!(pool.pick(&REQ, &[]).is_some());
    }

    #[test]
    fn in_flight_guard_and_metrics() {
        let pool = pool(1, LbAlgorithm::RoundRobin);
        let r = Arc::clone(&pool.all()[0]);
        let guard = r.begin_request();
        assert_eq!(r.metrics().in_flight, 1);
        drop(guard);
        r.record_failure();
        r.record_retry();
        let m = r.metrics();
        assert_eq!(
            (m.requests, m.failures, m.retries, m.in_flight),
            (1, 1, 1, 0)
        );
        assert_eq!(m.router_id, "r0");
        assert!(m.healthy);
        assert_eq!(m.latency_ewma, None);
    }

    #[test]
    fn latency_ewma_smooths() {
        let pool = pool(1, LbAlgorithm::LeastLatency);
        let r = &pool.all()[0];
        r.record_latency(Duration::from_millis(10));
        assert_eq!(r.snapshot().latency_us, Some(10_000));
        r.record_latency(Duration::from_millis(20));
        // 0.3 * 20000 + 0.7 * 10000
        assert_eq!(r.snapshot().latency_us, Some(13_000));
        r.record_disk(5, 10);
        assert_eq!((r.snapshot().disk_used, r.snapshot().disk_total), (5, 10));
    }
}
