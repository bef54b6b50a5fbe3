//! Retries: the backoff schedule and the per-client retry budget.
//!
//! Only errors for which [`Error::is_retryable`](crate::Error::is_retryable) holds are retried
//! (transport failures, timeouts, 408, 429, 5xx, integrity failures). Delays grow
//! exponentially from [`RetryConfig::initial_backoff`], capped at
//! [`RetryConfig::max_backoff`], optionally with full jitter (`tokio-retry`'s `jitter`, a
//! random factor in `[0, 1)`), so that many clients failing at once do not retry in step.
//!
//! Retries also spend a **budget** shared by every operation of a client: each request
//! deposits [`RetryConfig::budget_ratio`] tokens, each retry withdraws one, and at least
//! [`RetryConfig::min_retries_per_sec`] retries per second are always allowed. Against a dead
//! cluster this turns "every request retries N times" into "about 20 % more requests", which
//! is what keeps a client from amplifying an outage (reqwest and Finagle use the same idea).

use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;
use tokio_retry::strategy::{jitter, ExponentialBackoff};
use tokio_retry::RetryIf;
use tokio_util::sync::CancellationToken;

use super::{cancelled, Inner};
use crate::routers::{PickRequest, RouterState};
use crate::Error;

/// Most tokens a budget can hold: after a long healthy run, at most this many retries can
/// be spent in a burst beyond the per-second floor.
const MAX_BUDGET_TOKENS: u64 = 100;

/// Tokens are counted in thousandths, so that ten deposits of 0.2 make exactly two.
const MILLI: u64 = 1000;

/// How failed requests are retried.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use mictlanx::RetryConfig;
///
/// let retry = RetryConfig { max_attempts: 3, jitter: false, ..RetryConfig::default() };
/// assert_eq!(retry.delays(), [Duration::from_millis(100), Duration::from_millis(200)]);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts per request, the first included (default 5; 1 disables retries).
    pub max_attempts: u32,
    /// Delay before the first retry (default 100 ms); each next delay doubles.
    pub initial_backoff: Duration,
    /// Largest delay (default 5 s). Bounded so that a long outage does not park requests
    /// for minutes: the caller's own timeout should decide when to give up.
    pub max_backoff: Duration,
    /// Multiply each delay by a random factor in `[0, 1)` (default true).
    pub jitter: bool,
    /// Tokens each request deposits in the retry budget (default 0.2: retries may add 20 %).
    pub budget_ratio: f64,
    /// Retries per second allowed even with an empty budget (default 10).
    pub min_retries_per_sec: u32,
}

impl Default for RetryConfig {
    fn default() -> Self {
        Self {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            jitter: true,
            budget_ratio: 0.2,
            min_retries_per_sec: 10,
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn never() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The delays before retries 1, 2, ... (`max_attempts - 1` of them): `initial_backoff *
    /// 2^(n-1)` capped at `max_backoff`, jittered when [`jitter`](Self::jitter) is set.
    pub fn delays(&self) -> Vec<Duration> {
        let initial_ms = u64::try_from(self.initial_backoff.as_millis()).unwrap_or(u64::MAX);
        let max = self.max_backoff;
        let jittered = self.jitter;
        // tokio-retry's ExponentialBackoff yields base^n * factor ms: 2^n * initial, so halve
        // each value to start at `initial`. It saturates instead of overflowing.
        ExponentialBackoff::from_millis(2)
            .factor(initial_ms)
            .map(|d| (d / 2).min(max))
            .map(|d| if jittered { jitter(d) } else { d })
            .take(self.max_attempts.saturating_sub(1) as usize)
            .collect()
    }

    /// Checks the values; the message says which one is wrong.
    pub(crate) fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("retry max_attempts must be at least 1".into());
        }
        if self.initial_backoff > self.max_backoff {
            return Err(format!(
                "retry initial_backoff ({:?}) is larger than max_backoff ({:?})",
                self.initial_backoff, self.max_backoff
            ));
        }
        if !(self.budget_ratio.is_finite() && self.budget_ratio >= 0.0) {
            return Err("retry budget_ratio must be a finite number >= 0".into());
        }
        Ok(())
    }
}

/// A token bucket that bounds retries per client (see the module docs).
#[derive(Debug)]
pub(crate) struct RetryBudget {
    /// Deposit per request, in thousandths of a token.
    deposit_milli: u64,
    min_per_sec: u32,
    state: Mutex<BudgetState>,
}

#[derive(Debug)]
struct BudgetState {
    /// Balance in thousandths of a token.
    milli_tokens: u64,
    window_start: Instant,
    used_in_window: u32,
    denied: u64,
}

impl RetryBudget {
    pub fn new(config: &RetryConfig) -> Self {
        // The ratio is validated finite and non-negative; the cast saturates.
        let deposit_milli = (config.budget_ratio * MILLI as f64).round() as u64;
        Self {
            deposit_milli,
            min_per_sec: config.min_retries_per_sec,
            state: Mutex::new(BudgetState {
                milli_tokens: 0,
                window_start: Instant::now(),
                used_in_window: 0,
                denied: 0,
            }),
        }
    }

    /// A new request: deposit its share.
    pub fn deposit(&self) {
        let mut s = self.lock();
        s.milli_tokens = s
            .milli_tokens
            .saturating_add(self.deposit_milli)
            .min(MAX_BUDGET_TOKENS * MILLI);
    }

    /// Asks for one retry; `false` means the budget is spent and the error must be returned.
    pub fn try_withdraw(&self) -> bool {
        let now = Instant::now();
        let mut s = self.lock();
        if now.duration_since(s.window_start) >= Duration::from_secs(1) {
            s.window_start = now;
            s.used_in_window = 0;
        }
        if s.used_in_window < self.min_per_sec {
            s.used_in_window += 1;
            return true;
        }
        if s.milli_tokens >= MILLI {
            s.milli_tokens -= MILLI;
            return true;
        }
        s.denied += 1;
        false
    }

    /// Retries refused so far.
    pub fn denied(&self) -> u64 {
        self.lock().denied
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BudgetState> {
        // The state is a few numbers updated atomically under the lock: a panic elsewhere
        // cannot leave it inconsistent, so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// What the retry loop needs to know about a request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallSpec<'a> {
    /// Event name for logs; retries log `{event}.RETRY`.
    pub event: &'static str,
    /// Bucket id (logs, `HASH`).
    pub bucket: &'a str,
    /// Key or ball id (logs, `HASH`).
    pub key: &'a str,
    /// Bytes to store (`_UF` balancers).
    pub size: u64,
    /// Stops the request (and its retries) when fired.
    pub cancel: Option<&'a CancellationToken>,
}

/// Which routers one request has tried, and how many attempts it made.
#[derive(Debug, Default)]
struct Attempts {
    count: AtomicU32,
    state: Mutex<AttemptsState>,
}

#[derive(Debug, Default)]
struct AttemptsState {
    /// Routers that failed this request with a retryable error.
    avoid: Vec<usize>,
    /// Routers tried at all.
    tried: Vec<usize>,
    /// The router of the latest attempt.
    last: Option<Arc<RouterState>>,
}

impl Attempts {
    fn lock(&self) -> std::sync::MutexGuard<'_, AttemptsState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// A transport failure: the router itself could not be reached or did not answer.
fn is_transport(err: &Error) -> bool {
    matches!(
        err,
        Error::ConnectFailed { .. }
            | Error::DnsResolution { .. }
            | Error::Timeout { .. }
            | Error::Network { .. }
    )
}

/// Runs `op` against a router picked by the balancer, retrying retryable errors with backoff
/// (tokio-retry's `RetryIf`) on another router while the client's budget allows.
///
/// A retryable failure makes the request avoid that router from then on; a transport failure
/// also marks it unhealthy for every request until the heartbeat sees it again. When every
/// router failed with a transport error the result is [`Error::Unavailable`]. Returns the
/// value and the attempt (1-based) that produced it.
pub(crate) async fn run<T, F, Fut>(
    inner: &Inner,
    spec: CallSpec<'_>,
    mut op: F,
) -> Result<(T, u32), Error>
where
    F: FnMut(Arc<RouterState>) -> Fut,
    Fut: Future<Output = Result<T, Error>>,
{
    let delays = inner.config.retry.delays();
    let attempts = Attempts::default();
    inner.budget.deposit();
    let pick = PickRequest {
        bucket: spec.bucket,
        key: spec.key,
        size: spec.size,
    };
    let action = || {
        attempts.count.fetch_add(1, Ordering::Relaxed);
        let avoid = attempts.lock().avoid.clone();
        let router = inner.routers.pick(&pick, &avoid);
        let future = router.clone().map(&mut op);
        let attempts = &attempts;
        async move {
            let (Some(router), Some(future)) = (router, future) else {
                return Err(Error::Unavailable {
                    message: "the client has no routers".into(),
                });
            };
            {
                let mut state = attempts.lock();
                if !state.tried.contains(&router.index) {
                    state.tried.push(router.index);
                }
                state.last = Some(Arc::clone(&router));
            }
            let in_flight = router.begin_request();
            let result = future.await;
            drop(in_flight);
            if let Err(err) = &result {
                if err.is_retryable() {
                    router.record_failure();
                    attempts.lock().avoid.push(router.index);
                    if is_transport(err) && router.set_healthy(false) {
                        tracing::warn!(event = "ROUTER.DOWN", router_id = %router.id, error = %err);
                    }
                }
            }
            result
        }
    };
    let condition = |err: &Error| {
        if !err.is_retryable() {
            return false;
        }
        let attempt = attempts.count.load(Ordering::Relaxed);
        let Some(backoff) = delays.get(attempt.saturating_sub(1) as usize) else {
            return false;
        };
        let router = attempts.lock().last.clone();
        let router_id = router.as_ref().map_or("", |r| r.id.as_str());
        if !inner.budget.try_withdraw() {
            tracing::warn!(
                event = "RETRY.BUDGET.EXHAUSTED",
                bucket_id = spec.bucket,
                key = spec.key,
                attempt,
                router_id,
                error = %err,
            );
            return false;
        }
        if let Some(r) = &router {
            r.record_retry();
        }
        let backoff_ms = u64::try_from(backoff.as_millis()).unwrap_or(u64::MAX);
        tracing::warn!(
            event = spec.event,
            bucket_id = spec.bucket,
            key = spec.key,
            attempt,
            backoff_ms,
            router_id,
            error = %err,
            "{}.RETRY",
            spec.event
        );
        true
    };
    let retrying = RetryIf::start(delays.clone(), action, condition);
    let result = match spec.cancel {
        Some(token) => tokio::select! {
            biased;
            () = token.cancelled() => Err(cancelled()),
            r = retrying => r,
        },
        None => retrying.await,
    };
    let attempt = attempts.count.load(Ordering::Relaxed);
    match result {
        Ok(value) => Ok((value, attempt)),
        Err(err) if is_transport(&err) => {
            let state = attempts.lock();
            if state.tried.len() >= inner.routers.all().len() {
                let ids: Vec<&str> = inner.routers.all().iter().map(|r| r.id.as_str()).collect();
                Err(Error::Unavailable {
                    message: format!(
                        "no router could be reached (tried {}) after {attempt} attempts: {err}",
                        ids.join(", ")
                    ),
                })
            } else {
                Err(err)
            }
        }
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_doubles_and_caps() {
        let config = RetryConfig {
            max_attempts: 8,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            jitter: false,
            ..RetryConfig::default()
        };
        let ms: Vec<u128> = config.delays().iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1000, 1000, 1000]);
        assert!(RetryConfig::never().delays().is_empty());
        // Odd initial values are exact too.
        let odd = RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(7),
            jitter: false,
            ..RetryConfig::default()
        };
        assert_eq!(
            odd.delays(),
            [Duration::from_millis(7), Duration::from_millis(14)]
        );
    }

    #[test]
    fn jitter_stays_below_the_plain_schedule() {
        let config = RetryConfig {
            max_attempts: 30,
            ..RetryConfig::default()
        };
        let plain = RetryConfig {
            jitter: false,
            ..config.clone()
        };
        for (j, p) in config.delays().iter().zip(plain.delays()) {
            assert!(*j <= p, "{j:?} > {p:?}");
        }
        assert_eq!(plain.delays().last(), Some(&Duration::from_secs(5)));
    }

    #[test]
    fn validation() {
        assert!(RetryConfig::default().validate().is_ok());
        assert!(RetryConfig {
            max_attempts: 0,
            ..RetryConfig::default()
        }
        .validate()
        .is_err());
        assert!(RetryConfig {
            initial_backoff: Duration::from_secs(10),
            ..RetryConfig::default()
        }
        .validate()
        .is_err());
        assert!(RetryConfig {
            budget_ratio: f64::NAN,
            ..RetryConfig::default()
        }
        .validate()
        .is_err());
    }

    /// A client whose routers are never contacted (the tests' operations do not touch the
    /// network), without heartbeat.
    fn offline_client(routers: usize, retry: RetryConfig) -> crate::Client {
        let nodes: Vec<String> = (0..routers)
            .map(|i| format!("r{i}@127.0.0.1:{}", 9 + i))
            .collect();
        crate::Client::builder()
            .routers_uri(&format!("mictlanx://{}/?protocol=http", nodes.join(",")))
            .retry(retry)
            .heartbeat_interval(Duration::ZERO)
            .build()
            .unwrap()
    }

    fn spec<'a>(cancel: Option<&'a CancellationToken>) -> CallSpec<'a> {
        CallSpec {
            event: "TEST",
            bucket: "b",
            key: "k",
            size: 0,
            cancel,
        }
    }

    /// `run` sleeps exactly the schedule between attempts (no jitter), moves to another
    /// router after a failure, and does not sleep after the last attempt.
    #[tokio::test(start_paused = true)]
    async fn attempts_land_on_the_schedule() {
        let retry = RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(250),
            jitter: false,
            ..RetryConfig::default()
        };
        let client = offline_client(2, retry);
        let start = Instant::now();
        let seen = Mutex::new(Vec::new());
        let result: Result<((), u32), Error> = run(&client.inner, spec(None), |router| {
            seen.lock().unwrap().push((router.index, start.elapsed()));
            async { Err(Error::from_response(503, b"")) }
        })
        .await;
        assert!(matches!(result, Err(Error::Unavailable { .. })));
        let seen = seen.into_inner().unwrap();
        let offsets: Vec<u128> = seen.iter().map(|(_, at)| at.as_millis()).collect();
        // Delays 100, 200, 250 (capped), 250.
        assert_eq!(offsets, [0, 100, 300, 550, 800]);
        assert_eq!(start.elapsed(), Duration::from_millis(800));
        assert_ne!(seen[0].0, seen[1].0, "the retry goes to the other router");
        let m = client.metrics();
        let retries: u64 = m.routers.iter().map(|r| r.retries).sum();
        let requests: u64 = m.routers.iter().map(|r| r.requests).sum();
        assert_eq!((retries, requests, m.retries_denied), (4, 5, 0));
    }

    /// A success ends the loop at once; a non-retryable error is not retried at all.
    #[tokio::test(start_paused = true)]
    async fn success_and_permanent_errors_stop_the_schedule() {
        let retry = RetryConfig {
            max_attempts: 5,
            initial_backoff: Duration::from_millis(40),
            jitter: false,
            ..RetryConfig::default()
        };
        let client = offline_client(1, retry);
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let (value, attempt) = run(&client.inner, spec(None), |_| {
            let n = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 2 {
                    Err(Error::from_response(502, b""))
                } else {
                    Ok(n)
                }
            }
        })
        .await
        .unwrap();
        assert_eq!((value, attempt), (2, 3));
        assert_eq!(start.elapsed(), Duration::from_millis(40 + 80));

        let start = Instant::now();
        let result: Result<((), u32), Error> = run(&client.inner, spec(None), |_| async {
            Err(Error::from_response(409, b""))
        })
        .await;
        assert!(matches!(result, Err(Error::Conflict { .. })));
        assert_eq!(start.elapsed(), Duration::ZERO);
    }

    /// With jitter every delay is at most the plain one: the attempts land no later.
    #[tokio::test(start_paused = true)]
    async fn jittered_attempts_land_no_later_than_the_plain_schedule() {
        let retry = RetryConfig {
            max_attempts: 6,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            ..RetryConfig::default()
        };
        assert!(retry.jitter);
        let client = offline_client(1, retry);
        let start = Instant::now();
        let seen = Mutex::new(Vec::new());
        let _: Result<((), u32), Error> = run(&client.inner, spec(None), |_| {
            seen.lock().unwrap().push(start.elapsed());
            async { Err(Error::from_response(503, b"")) }
        })
        .await;
        let seen = seen.into_inner().unwrap();
        assert_eq!(seen.len(), 6);
        let plain = [0u64, 100, 300, 700, 1500, 2500];
        for (at, max) in seen.iter().zip(plain) {
            assert!(*at <= Duration::from_millis(max), "{seen:?}");
        }
    }

    /// A cancel during a backoff ends the request at that instant, without another attempt.
    #[tokio::test(start_paused = true)]
    async fn cancel_during_a_backoff_stops_at_once() {
        let retry = RetryConfig {
            max_attempts: 3,
            initial_backoff: Duration::from_secs(10),
            max_backoff: Duration::from_secs(10),
            jitter: false,
            ..RetryConfig::default()
        };
        let client = offline_client(1, retry);
        let token = CancellationToken::new();
        let trigger = token.clone();
        let start = Instant::now();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            trigger.cancel();
        });
        let calls = AtomicU32::new(0);
        let result: Result<((), u32), Error> = run(&client.inner, spec(Some(&token)), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Error::from_response(503, b"")) }
        })
        .await;
        assert!(result.unwrap_err().is_cancelled());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }

    #[tokio::test(start_paused = true)]
    async fn budget_allows_the_floor_then_only_deposits() {
        let budget = RetryBudget::new(&RetryConfig::default());
        let advance = tokio::time::advance;
        // The floor: 10 retries in a second with an empty bucket.
        for _ in 0..10 {
            assert!(budget.try_withdraw());
        }
        assert!(!budget.try_withdraw());
        // 10 requests deposit 2 tokens: two more retries.
        for _ in 0..10 {
            budget.deposit();
        }
        advance(Duration::from_millis(500)).await;
        assert!(budget.try_withdraw());
        assert!(budget.try_withdraw());
        assert!(!budget.try_withdraw());
        assert_eq!(budget.denied(), 2);
        // A second after the window opened the floor is back, for one more second.
        advance(Duration::from_millis(500)).await;
        for _ in 0..10 {
            assert!(budget.try_withdraw());
        }
        advance(Duration::from_millis(999)).await;
        assert!(!budget.try_withdraw());
        advance(Duration::from_millis(1)).await;
        assert!(budget.try_withdraw());
        assert_eq!(budget.denied(), 3);
    }

    /// The budget inside the retry loop: with no floor and nothing deposited beyond the
    /// request's own share, a failing request gets no retry and no backoff.
    #[tokio::test(start_paused = true)]
    async fn an_empty_budget_returns_the_first_error() {
        let retry = RetryConfig {
            max_attempts: 5,
            jitter: false,
            min_retries_per_sec: 0,
            ..RetryConfig::default()
        };
        let client = offline_client(1, retry);
        let start = Instant::now();
        let calls = AtomicU32::new(0);
        let result: Result<((), u32), Error> = run(&client.inner, spec(None), |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Err(Error::from_response(503, b"")) }
        })
        .await;
        assert!(matches!(result, Err(Error::Unavailable { .. })));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        assert_eq!(start.elapsed(), Duration::ZERO);
        assert_eq!(client.metrics().retries_denied, 1);
    }

    #[test]
    fn budget_is_capped() {
        let config = RetryConfig {
            min_retries_per_sec: 0,
            ..RetryConfig::default()
        };
        let budget = RetryBudget::new(&config);
        for _ in 0..100_000 {
            budget.deposit();
        }
        let mut granted = 0;
        while budget.try_withdraw() {
            granted += 1;
        }
        assert_eq!(granted, 100);
    }
}
