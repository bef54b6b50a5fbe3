//! The heartbeat: a background task that probes every router on an interval.
//!
//! A probe is `GET /health`; a MictlanX router that has no such route (404/405) is probed with
//! `GET /api/v4/peers/stats` instead, which `deploy.sh` also uses as its health check. The
//! stats (sum of the peers' used and total disk) are fetched on every probe when the balancer
//! needs them (`SORT_UF`, `2CHOICES_UF`). The loop is generic over its clock (a stream of
//! ticks) and its probe, so that it is tested deterministically, without sleeping and without
//! network.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;
use futures::{Stream, StreamExt};
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

/// Ticks now and then every `interval`; a late tick delays the next ones rather than
/// bursting to catch up.
pub(crate) fn ticks(interval: Duration) -> impl Stream<Item = ()> + Send + 'static {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    futures::stream::unfold(ticker, |mut ticker| async move {
        ticker.tick().await;
        Some(((), ticker))
    })
}

/// Probes every router of `pool` at every tick, until `cancel` fires or the ticks end.
pub(crate) async fn run<T, P, Fut>(
    pool: Arc<RouterPool>,
    ticks: T,
    cancel: CancellationToken,
    probe: P,
) where
    T: Stream<Item = ()>,
    P: Fn(Arc<RouterState>) -> Fut,
    Fut: Future<Output = ProbeOutcome>,
{
    let mut ticks = std::pin::pin!(ticks);
    loop {
        tokio::select! {
            biased;
            () = cancel.cancelled() => return,
            tick = ticks.next() => if tick.is_none() { return },
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
            tracing::info!(router_id = %router.id, "ROUTER.UP");
        }
    } else if was_healthy {
        tracing::warn!(router_id = %router.id, "ROUTER.DOWN");
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
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::mpsc;

    fn pool(n: usize) -> Arc<RouterPool> {
        let addresses: Vec<NodeAddress> = (0..n)
            .map(|i| NodeAddress::new("127.0.0.1", Some(1 + i as u16), Protocol::Http))
            .collect();
        Arc::new(RouterPool::new(&addresses, LbAlgorithm::RoundRobin))
    }

    /// A tick source driven by the test, and a way to wait until a round of probes is done.
    fn manual_ticks() -> (mpsc::Sender<()>, impl Stream<Item = ()>) {
        let (tx, rx) = mpsc::channel(1);
        let stream =
            futures::stream::unfold(
                rx,
                |mut rx| async move { rx.recv().await.map(|()| ((), rx)) },
            );
        (tx, stream)
    }

    async fn wait_for(counter: &AtomicUsize, value: usize) {
        for _ in 0..1000 {
            if counter.load(Ordering::SeqCst) >= value {
                return;
            }
            tokio::task::yield_now().await;
        }
        panic!("counter stuck at {}", counter.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn probes_every_router_at_every_tick_until_cancelled() {
        let pool = pool(2);
        let probes = Arc::new(AtomicUsize::new(0));
        let cancel = CancellationToken::new();
        let (tick, ticks) = manual_ticks();
        let counter = Arc::clone(&probes);
        let task = tokio::spawn(run(
            Arc::clone(&pool),
            ticks,
            cancel.clone(),
            move |_router| {
                counter.fetch_add(1, Ordering::SeqCst);
                async {
                    ProbeOutcome {
                        healthy: true,
                        latency: Duration::from_millis(3),
                        disk: Some((1, 4)),
                    }
                }
            },
        ));
        for round in 1..=3 {
            tick.send(()).await.unwrap();
            wait_for(&probes, 2 * round).await;
        }
        assert_eq!(probes.load(Ordering::SeqCst), 6);
        let m = pool.all()[1].metrics();
        assert_eq!(m.latency_ewma, Some(Duration::from_millis(3)));
        assert_eq!((m.disk_used, m.disk_total), (1, 4));
        cancel.cancel();
        task.await.unwrap();
        // Stopped: a tick nobody receives changes nothing.
        assert!(tick.send(()).await.is_err());
        assert_eq!(probes.load(Ordering::SeqCst), 6);
    }

    #[tokio::test]
    async fn a_failed_probe_marks_down_and_a_good_one_up() {
        let pool = pool(1);
        let round = Arc::new(AtomicUsize::new(0));
        let (tick, ticks) = manual_ticks();
        let r = Arc::clone(&round);
        let task = tokio::spawn(run(
            Arc::clone(&pool),
            ticks,
            CancellationToken::new(),
            move |_router| {
                let n = r.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 0 {
                        ProbeOutcome::down()
                    } else {
                        ProbeOutcome {
                            healthy: true,
                            latency: Duration::from_millis(1),
                            disk: None,
                        }
                    }
                }
            },
        ));
        tick.send(()).await.unwrap();
        wait_for(&round, 1).await;
        tokio::task::yield_now().await;
        assert!(!pool.all()[0].is_healthy());
        tick.send(()).await.unwrap();
        wait_for(&round, 2).await;
        // The loop ends when its ticks do.
        drop(tick);
        task.await.unwrap();
        assert!(pool.all()[0].is_healthy());
    }

    #[tokio::test]
    async fn ticks_start_at_once_then_keep_the_interval() {
        let started = Instant::now();
        let mut t = std::pin::pin!(ticks(Duration::from_millis(20)));
        t.next().await;
        assert!(started.elapsed() < Duration::from_millis(20));
        t.next().await;
        t.next().await;
        assert!(started.elapsed() >= Duration::from_millis(40));
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
