//! The heartbeat: a background task that probes every router on an interval.
//!
//! A probe is `GET /health`; a MictlanX router that has no such route (404/405) is probed with
//! `GET /api/v4/peers/stats` instead, which `deploy.sh` also uses as its health check. The
//! stats (sum of the peers' used and total disk) are fetched on every probe when the balancer
//! needs them (`SORT_UF`, `2CHOICES_UF`). The loop is generic over its probe, so that its
//! schedule is tested without network, on tokio's paused clock.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::{RouterPool, RouterState};
use crate::model::PeersStatsResponse;

/// What one probe learned.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct ProbeOutcome {
    /// Whether the router answered as alive.
    pub healthy: bool,
    /// How long the probe took (meaningful only when healthy).
    pub latency: Duration,
    /// `(used, total)` disk of the router's peers, when fetched.
    pub disk: Option<(u64, u64)>,
}

impl ProbeOutcome {
    fn down() -> Self {
        Self {
            healthy: false,
            latency: Duration::ZERO,
            disk: None,
        }
    }
}

/// Probes every router of `pool` now and then every `interval`, until `cancel` fires.
///
/// A round that runs late (a slow probe) delays the next ones rather than bursting to catch
/// up.
pub(crate) async fn run<P, Fut>(
    pool: Arc<RouterPool>,
    interval: Duration,
    cancel: CancellationToken,
    probe: P,
) where
    P: Fn(Arc<RouterState>) -> Fut,
    Fut: Future<Output = ProbeOutcome>,
{
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let probes = pool.all().iter().map(|router| {
            let router = Arc::clone(router);
            let outcome = probe(Arc::clone(&router));
            async move { apply(&router, outcome.await) }
        });
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            _ = join_all(probes) => {}
        }
    }
}

/// Records a probe's outcome on the router, logging health transitions.
fn apply(router: &RouterState, outcome: ProbeOutcome) {
    let was_healthy = router.set_healthy(outcome.healthy);
    if outcome.healthy {
        router.record_latency(outcome.latency);
        if let Some((used, total)) = outcome.disk {
            router.record_disk(used, total);
        }
        if !was_healthy {
            tracing::info!(event = "ROUTER.UP", router_id = %router.id);
        }
    } else if was_healthy {
        tracing::warn!(event = "ROUTER.DOWN", router_id = %router.id);
    }
}

/// Probes one router over HTTP (see the module docs).
pub(crate) async fn probe_http(
    http: reqwest::Client,
    router: Arc<RouterState>,
    timeout: Duration,
    want_stats: bool,
) -> ProbeOutcome {
    let started = Instant::now();
    let health = http
        .get(format!("{}/health", router.base_url))
        .timeout(timeout)
        .send()
        .await;
    match health {
        Ok(resp) if resp.status().is_success() => {
            let latency = started.elapsed();
            let disk = if want_stats {
                disk_stats(&http, &router, timeout).await
            } else {
                None
            };
            ProbeOutcome {
                healthy: true,
                latency,
                disk,
            }
        }
        Ok(resp) if matches!(resp.status().as_u16(), 404 | 405) => {
            let started = Instant::now();
            match disk_stats(&http, &router, timeout).await {
                Some(disk) => ProbeOutcome {
                    healthy: true,
                    latency: started.elapsed(),
                    disk: Some(disk),
                },
                None => ProbeOutcome::down(),
            }
        }
        _ => ProbeOutcome::down(),
    }
}

/// `GET /api/v{n}/peers/stats`: the summed `(used, total)` disk of the router's peers.
async fn disk_stats(
    http: &reqwest::Client,
    router: &RouterState,
    timeout: Duration,
) -> Option<(u64, u64)> {
    // One ball per peer at most: only the disk figures are wanted.
    let url = format!(
        "{}/api/v{}/peers/stats?start=0&end=1",
        router.base_url, router.api_version
    );
    let resp = http.get(url).timeout(timeout).send().await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.bytes().await.ok()?;
    let stats: PeersStatsResponse = serde_json::from_slice(&body).ok()?;
    Some(stats.values().fold((0u64, 0u64), |(used, total), s| {
        (
            used.saturating_add(s.used_disk),
            total.saturating_add(s.total_disk),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::routers::LbAlgorithm;
    use crate::uri::{NodeAddress, Protocol};
    use futures::future::BoxFuture;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use tokio::sync::mpsc;
    use tokio::time::advance;

    const INTERVAL: Duration = Duration::from_secs(5);

    /// Probe calls as `(router index, virtual time since the test started)`.
    type Calls = mpsc::UnboundedReceiver<(usize, Duration)>;

    fn pool(n: usize) -> Arc<RouterPool> {
        let addresses: Vec<NodeAddress> = (0..n)
            .map(|i| NodeAddress::new("127.0.0.1", Some(1 + i as u16), Protocol::Http))
            .collect();
        Arc::new(RouterPool::new(&addresses, LbAlgorithm::RoundRobin))
    }

    fn up(latency_ms: u64) -> ProbeOutcome {
        ProbeOutcome {
            healthy: true,
            latency: Duration::from_millis(latency_ms),
            disk: Some((1, 4)),
        }
    }

    /// A probe that reports `(router index, virtual time since start)` of every call, then
    /// answers `outcome(call number)` after `takes(call number)` of (virtual) time.
    fn recording_probe(
        start: Instant,
        outcome: impl Fn(usize) -> ProbeOutcome + Send + Sync + 'static,
        takes: impl Fn(usize) -> Duration + Send + Sync + 'static,
    ) -> (
        Calls,
        impl Fn(Arc<RouterState>) -> BoxFuture<'static, ProbeOutcome>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let calls = Arc::new(AtomicUsize::new(0));
        let outcome = Arc::new(outcome);
        let takes = Arc::new(takes);
        let probe = move |router: Arc<RouterState>| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            let _ = tx.send((router.index, start.elapsed()));
            let (outcome, takes) = (Arc::clone(&outcome), Arc::clone(&takes));
            let fut: BoxFuture<'static, ProbeOutcome> = Box::pin(async move {
                let pause = takes(n);
                if !pause.is_zero() {
                    tokio::time::sleep(pause).await;
                }
                outcome(n)
            });
            fut
        };
        (rx, probe)
    }

    /// The next `n` probes as `(router, offset)`, sorted by router within the batch.
    async fn next_probes(rx: &mut Calls, n: usize) -> Vec<(usize, Duration)> {
        let mut got = Vec::with_capacity(n);
        for _ in 0..n {
            got.push(rx.recv().await.expect("the heartbeat is running"));
        }
        got.sort();
        got
    }

    /// Lets every ready task run, without letting (paused) time pass.
    async fn settle() {
        for _ in 0..10 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn probes_every_router_exactly_every_interval_until_cancelled() {
        let start = Instant::now();
        let pool = pool(2);
        let cancel = CancellationToken::new();
        let (mut rx, probe) = recording_probe(start, |_| up(3), |_| Duration::ZERO);
        let task = tokio::spawn(run(Arc::clone(&pool), INTERVAL, cancel.clone(), probe));

        // The first round is at once.
        let zero = Duration::ZERO;
        assert_eq!(next_probes(&mut rx, 2).await, [(0, zero), (1, zero)]);
        for round in 1..=3u32 {
            // Nothing a millisecond before the interval is up ...
            advance(INTERVAL - Duration::from_millis(1)).await;
            settle().await;
            assert!(rx.try_recv().is_err(), "round {round} came early");
            // ... and every router exactly on it.
            advance(Duration::from_millis(1)).await;
            let at = INTERVAL * round;
            assert_eq!(next_probes(&mut rx, 2).await, [(0, at), (1, at)]);
        }
        settle().await;
        let m = pool.all()[1].metrics();
        assert_eq!(m.latency_ewma, Some(Duration::from_millis(3)));
        assert_eq!((m.disk_used, m.disk_total), (1, 4));

        cancel.cancel();
        task.await.unwrap();
        advance(INTERVAL * 10).await;
        settle().await;
        assert!(rx.try_recv().is_err(), "no probe after cancel");
        assert_eq!(start.elapsed(), INTERVAL * 13);
    }

    #[tokio::test(start_paused = true)]
    async fn a_down_router_comes_back_up_after_one_successful_probe() {
        let start = Instant::now();
        let pool = pool(1);
        let router = Arc::clone(&pool.all()[0]);
        let alive = Arc::new(AtomicBool::new(false));
        let a = Arc::clone(&alive);
        let (mut rx, probe) = recording_probe(
            start,
            move |_| {
                if a.load(Ordering::SeqCst) {
                    up(1)
                } else {
                    ProbeOutcome::down()
                }
            },
            |_| Duration::ZERO,
        );
        let cancel = CancellationToken::new();
        let task = tokio::spawn(run(Arc::clone(&pool), INTERVAL, cancel.clone(), probe));

        next_probes(&mut rx, 1).await;
        settle().await;
        assert!(!router.is_healthy(), "a failed probe marks it down");
        assert_eq!(router.metrics().latency_ewma, None);

        // It recovers; until the next probe it is still believed down.
        alive.store(true, Ordering::SeqCst);
        advance(INTERVAL - Duration::from_millis(1)).await;
        settle().await;
        assert!(!router.is_healthy());
        advance(Duration::from_millis(1)).await;
        assert_eq!(next_probes(&mut rx, 1).await, [(0, INTERVAL)]);
        settle().await;
        assert!(router.is_healthy(), "one good probe marks it up");
        assert_eq!(
            router.metrics().latency_ewma,
            Some(Duration::from_millis(1))
        );

        // A router that requests marked down is also back at the next probe.
        router.set_healthy(false);
        advance(INTERVAL).await;
        assert_eq!(next_probes(&mut rx, 1).await, [(0, INTERVAL * 2)]);
        settle().await;
        assert!(router.is_healthy());
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_round_delays_the_next_rounds_instead_of_bursting() {
        let start = Instant::now();
        let pool = pool(1);
        let cancel = CancellationToken::new();
        // The first probe takes 12 s: the rounds due at 5 s and 10 s are missed.
        let (mut rx, probe) = recording_probe(
            start,
            |_| up(1),
            |n| {
                if n == 0 {
                    Duration::from_secs(12)
                } else {
                    Duration::ZERO
                }
            },
        );
        let task = tokio::spawn(run(Arc::clone(&pool), INTERVAL, cancel.clone(), probe));
        let mut offsets = Vec::new();
        for _ in 0..4 {
            offsets.push(rx.recv().await.unwrap().1.as_secs());
        }
        // One catch-up round when the slow one ends, then the interval again from there.
        assert_eq!(offsets, [0, 12, 17, 22]);
        cancel.cancel();
        task.await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn cancelling_stops_a_round_in_flight() {
        let start = Instant::now();
        let pool = pool(2);
        let cancel = CancellationToken::new();
        // Probes that would take an hour.
        let (mut rx, probe) = recording_probe(start, |_| up(1), |_| Duration::from_secs(3600));
        let task = tokio::spawn(run(Arc::clone(&pool), INTERVAL, cancel.clone(), probe));
        next_probes(&mut rx, 2).await;
        advance(Duration::from_secs(1)).await;
        cancel.cancel();
        task.await.unwrap();
        // It returned at once, without waiting for the probes.
        assert_eq!(start.elapsed(), Duration::from_secs(1));
        // The unfinished round recorded nothing: the routers keep their initial state.
        assert!(pool
            .all()
            .iter()
            .all(|r| r.metrics().latency_ewma.is_none()));
    }

    #[tokio::test]
    async fn http_probe_of_a_closed_port_is_down() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let pool = Arc::new(RouterPool::new(
            &[NodeAddress::new("127.0.0.1", Some(port), Protocol::Http)],
            LbAlgorithm::RoundRobin,
        ));
        let out = probe_http(
            reqwest::Client::new(),
            Arc::clone(&pool.all()[0]),
            Duration::from_secs(2),
            true,
        )
        .await;
        assert_eq!(out, ProbeOutcome::down());
    }
}
