//! Evaluating triggers and acting on them.
//!
//! Waiting policies are evaluated on every tick of the policy loop and on each read of a
//! bucket they name. When any trigger holds the policy is `triggered`: an `ACTIVE` policy
//! then replicates every `what` item at once (`replicating n/m` → `done` or `failed`); a
//! `PASSIVE` one replicates each ball on its next read, in the background.

use futures::StreamExt;
use mictlanx::id::chunk_key;
use mictlanx::policy::{AvailabilityPolicy, PolicyState, Variable, WhatItem};
use tokio_util::sync::CancellationToken;

use super::super::state::RouterState;
use super::replicate::{self, Copy};
use super::stats::{ball_of, is_ball_access};
use super::store::Waiting;
use super::PolicyEngine;

impl PolicyEngine {
    /// Notes a read the router served; when it is an access of a ball (its first chunk),
    /// lets the policies react: PASSIVE policies already triggered replicate the ball, and
    /// waiting policies naming the bucket are evaluated. Never waits for any of it.
    pub(crate) fn on_read(&self, st: &RouterState, bucket: &str, key: &str) {
        self.stats.record(bucket, key);
        if self.store.is_empty() || !is_ball_access(key) {
            return;
        }
        let ball = ball_of(key);
        for (id, policy, cancel) in self.store.claim_passive(bucket, ball) {
            let st = st.clone();
            let item = WhatItem::Ball {
                bucket: bucket.to_string(),
                ball: ball.to_string(),
            };
            self.spawn(
                cancel,
                async move { run_passive(&st, &id, &policy, item).await },
            );
        }
        self.evaluate(st, Some(bucket));
    }

    /// Evaluates the waiting policies (only those naming `bucket`, when given) and starts
    /// the ACTIVE ones that fire.
    pub(crate) fn evaluate(&self, st: &RouterState, bucket: Option<&str>) {
        for w in self.store.waiting(bucket) {
            let results = self.measure_all(st, &w);
            if self.store.evaluated(&w.id, &results) {
                tracing::info!(event = "POLICY.TRIGGERED", policy_id = %w.id, how = %w.policy.how);
                if w.policy.how == mictlanx::policy::How::Active {
                    let cancel = self
                        .store
                        .with(&w.id, |r| r.cancel.clone())
                        .unwrap_or_default();
                    let st = st.clone();
                    let (id, policy) = (w.id.clone(), w.policy.clone());
                    self.spawn(cancel, async move { run_active(&st, &id, &policy).await });
                }
            }
        }
    }

    /// Each trigger's observed value and whether it holds.
    fn measure_all(&self, st: &RouterState, w: &Waiting) -> Vec<(f64, bool)> {
        w.policy
            .when
            .iter()
            .zip(&w.variables)
            .map(|(t, v)| {
                let value = WhatItem::parse(&t.target)
                    .map(|item| self.measure(st, &item, *v))
                    .unwrap_or(0.0);
                (value, t.predicate.operator.holds(value, t.predicate.value))
            })
            .collect()
    }

    /// The value of `variable` for `item` now.
    pub(crate) fn measure(&self, st: &RouterState, item: &WhatItem, variable: Variable) -> f64 {
        let share = |part: u64, whole: u64| {
            if whole == 0 {
                0.0
            } else {
                part as f64 * 100.0 / whole as f64
            }
        };
        match (variable, item) {
            (Variable::AccessCount, WhatItem::Ball { bucket, ball }) => {
                self.stats.ball_count(bucket, ball) as f64
            }
            (Variable::AccessCount, WhatItem::Bucket(bucket)) => {
                self.stats.bucket_count(bucket) as f64
            }
            (Variable::AccessFrequency, WhatItem::Ball { bucket, ball }) => share(
                self.stats.ball_count(bucket, ball),
                self.stats.bucket_count(bucket),
            ),
            (Variable::AccessFrequency, WhatItem::Bucket(bucket)) => {
                share(self.stats.bucket_count(bucket), self.stats.total_count())
            }
            (Variable::Replicas, item) => {
                let keys = match item {
                    WhatItem::Ball { bucket, ball } => {
                        let seen = self.stats.ball_keys(bucket, ball);
                        if seen.is_empty() {
                            vec![chunk_key(ball, 0)]
                        } else {
                            seen
                        }
                    }
                    WhatItem::Bucket(bucket) => self.stats.bucket_keys(bucket),
                };
                keys.iter()
                    .map(|k| {
                        st.replicas
                            .get(item.bucket(), k)
                            .iter()
                            .filter(|id| st.peers.view(id).is_some_and(|p| p.up))
                            .count()
                    })
                    .min()
                    .unwrap_or(0) as f64
            }
        }
    }

    /// Runs `work` as a task of the engine, stopped by `cancel` or the router's stop.
    fn spawn<F>(&self, cancel: CancellationToken, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = cancel.cancelled() => {}
                _ = stop.cancelled() => {}
                _ = work => {}
            }
        });
    }
}

/// Copies `items` onto the policy's `where` peers; `on_total` is told how many copies are
/// needed before they start, `on_done` after each one.
async fn replicate_items(
    st: &RouterState,
    policy: &AvailabilityPolicy,
    items: &[WhatItem],
    on_total: impl FnOnce(u64),
    on_done: impl Fn(),
) -> Result<(), String> {
    let cfg = &st.config.policy;
    let targets =
        replicate::wait_for_peers(st, &policy.where_peers, cfg.peer_ready_timeout).await?;
    let plan = replicate::plan(st, items).await?;
    let copies: Vec<Copy> = replicate::missing(plan, &targets);
    let total = copies.len();
    on_total(total as u64);
    // Owned futures: a stream of borrowing ones is not `Send` for every lifetime.
    let jobs = copies.into_iter().map(|c| {
        let st = st.clone();
        let who = policy.who.clone();
        async move { replicate::copy(&st, &c, &who).await }
    });
    let mut results = futures::stream::iter(jobs).buffer_unordered(cfg.copy_concurrency.max(1));
    let mut failures = Vec::new();
    while let Some(result) = results.next().await {
        match result {
            Ok(()) => on_done(),
            Err(e) => failures.push(e),
        }
    }
    match failures.first() {
        None => Ok(()),
        Some(first) => Err(format!(
            "{} of {total} copies failed; first: {first}",
            failures.len()
        )),
    }
}

async fn run_active(st: &RouterState, id: &str, policy: &AvailabilityPolicy) {
    let store = &st.policies.store;
    let items = policy.what_items();
    let result = replicate_items(
        st,
        policy,
        &items,
        |total| {
            store.with(id, |r| {
                r.status.state = PolicyState::Replicating;
                r.status.replicas_total = total;
            });
        },
        || {
            store.with(id, |r| r.status.replicas_done += 1);
        },
    )
    .await;
    store.with(id, |r| match &result {
        Ok(()) => r.status.state = PolicyState::Done,
        Err(e) => {
            r.status.state = PolicyState::Failed;
            r.status.error = Some(e.clone());
        }
    });
    match result {
        Ok(()) => tracing::info!(event = "POLICY.DONE", policy_id = id),
        Err(e) => tracing::warn!(event = "POLICY.FAILED", policy_id = id, error = %e),
    }
}

async fn run_passive(st: &RouterState, id: &str, policy: &AvailabilityPolicy, item: WhatItem) {
    let store = &st.policies.store;
    let WhatItem::Ball { bucket, ball } = &item else {
        return;
    };
    let key = (bucket.clone(), ball.clone());
    let result = replicate_items(
        st,
        policy,
        std::slice::from_ref(&item),
        |total| {
            store.with(id, |r| {
                r.status.state = PolicyState::Replicating;
                r.status.replicas_total += total;
            });
        },
        || {
            store.with(id, |r| r.status.replicas_done += 1);
        },
    )
    .await;
    store.with(id, |r| {
        r.passive_running.remove(&key);
        match &result {
            Ok(()) => {
                r.passive_done.insert(key.clone());
            }
            // Not marked done: the next read tries again.
            Err(e) => r.status.error = Some(e.clone()),
        }
        if r.passive_complete() {
            r.status.state = PolicyState::Done;
        } else if r.passive_running.is_empty() {
            r.status.state = PolicyState::Triggered;
        }
    });
    match result {
        Ok(()) => {
            tracing::info!(event = "POLICY.PASSIVE.DONE", policy_id = id, bucket_id = %bucket, ball_id = %ball)
        }
        Err(e) => {
            tracing::warn!(event = "POLICY.PASSIVE.FAILED", policy_id = id, bucket_id = %bucket, ball_id = %ball, error = %e)
        }
    }
}
