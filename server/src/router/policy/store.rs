//! The policies a router holds, each with its state. In memory only: like the replica map,
//! nothing here survives a restart (apply the policies again).

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use mictlanx::policy::{
    AvailabilityPolicy, How, PolicyState, PolicyStatus, TriggerEvaluation, Variable, WhatItem,
};
use tokio_util::sync::CancellationToken;

/// Milliseconds since the Unix epoch.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

/// `(bucket, ball)`.
pub(crate) type BallId = (String, String);

/// One policy and what became of it.
#[derive(Debug)]
pub(crate) struct PolicyRecord {
    pub policy: AvailabilityPolicy,
    /// The variable of each trigger, resolved (a lenient typo reads as the nearest name).
    pub variables: Vec<Variable>,
    /// The wire view, kept current.
    pub status: PolicyStatus,
    /// Cancelled when the policy is removed: its copies stop.
    pub cancel: CancellationToken,
    /// PASSIVE: balls replicated, and balls being replicated.
    pub passive_done: HashSet<BallId>,
    pub passive_running: HashSet<BallId>,
}

impl PolicyRecord {
    /// A new, waiting record.
    pub(crate) fn new(
        id: String,
        policy: AvailabilityPolicy,
        variables: Vec<Variable>,
        warnings: Vec<String>,
        cancel: CancellationToken,
    ) -> Self {
        let triggers = policy
            .when
            .iter()
            .zip(&variables)
            .map(|(t, v)| TriggerEvaluation {
                target: t.target.clone(),
                variable: v.name().to_string(),
                operator: t.predicate.operator.to_string(),
                threshold: t.predicate.value,
                observed: None,
                fired: false,
                evaluated_at: 0,
            })
            .collect();
        let status = PolicyStatus {
            id,
            state: PolicyState::Waiting,
            how: policy.how.to_string(),
            policy: policy.to_string(),
            replicas_done: 0,
            replicas_total: 0,
            triggers,
            created_at: now_ms(),
            triggered_at: None,
            error: None,
            warnings,
        };
        Self {
            policy,
            variables,
            status,
            cancel,
            passive_done: HashSet::new(),
            passive_running: HashSet::new(),
        }
    }

    /// Whether a PASSIVE policy has nothing left to do: every `what` item is a ball and each
    /// has been replicated (a bucket can always get new balls).
    pub(crate) fn passive_complete(&self) -> bool {
        self.policy.what_items().iter().all(|item| match item {
            WhatItem::Ball { bucket, ball } => {
                self.passive_done.contains(&(bucket.clone(), ball.clone()))
            }
            WhatItem::Bucket(_) => false,
        })
    }
}

/// The store. Cheap to clone; locked only inside its small methods, never across `.await`.
#[derive(Debug, Clone, Default)]
pub(crate) struct PolicyStore {
    inner: Arc<Mutex<BTreeMap<String, PolicyRecord>>>,
}

/// What the evaluator needs of a waiting policy.
#[derive(Debug, Clone)]
pub(crate) struct Waiting {
    pub id: String,
    pub policy: AvailabilityPolicy,
    pub variables: Vec<Variable>,
}

impl PolicyStore {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, PolicyRecord>> {
        // Each method leaves every record consistent; a poisoned lock is usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a record unless `max` are held already; returns its status.
    pub(crate) fn insert(&self, record: PolicyRecord, max: usize) -> Option<PolicyStatus> {
        let mut map = self.lock();
        if map.len() >= max {
            return None;
        }
        let status = record.status.clone();
        map.insert(status.id.clone(), record);
        Some(status)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    pub(crate) fn list(&self) -> Vec<PolicyStatus> {
        self.lock().values().map(|r| r.status.clone()).collect()
    }

    pub(crate) fn get(&self, id: &str) -> Option<PolicyStatus> {
        self.lock().get(id).map(|r| r.status.clone())
    }

    /// Removes a policy and stops its copies.
    pub(crate) fn remove(&self, id: &str) -> bool {
        match self.lock().remove(id) {
            Some(record) => {
                record.cancel.cancel();
                true
            }
            None => false,
        }
    }

    /// Runs `f` on a record, if it still exists.
    pub(crate) fn with<R>(&self, id: &str, f: impl FnOnce(&mut PolicyRecord) -> R) -> Option<R> {
        self.lock().get_mut(id).map(f)
    }

    /// The waiting policies (those whose triggers still need evaluating); only those with
    /// a trigger on `bucket`, when given (a read evaluates only what it can change).
    pub(crate) fn waiting(&self, bucket: Option<&str>) -> Vec<Waiting> {
        let names = |r: &PolicyRecord, b: &str| {
            r.policy
                .when
                .iter()
                .any(|t| WhatItem::parse(&t.target).is_some_and(|i| i.bucket() == b))
        };
        self.lock()
            .iter()
            .filter(|(_, r)| r.status.state == PolicyState::Waiting)
            .filter(|(_, r)| bucket.map_or(true, |b| names(r, b)))
            .map(|(id, r)| Waiting {
                id: id.clone(),
                policy: r.policy.clone(),
                variables: r.variables.clone(),
            })
            .collect()
    }

    /// Records one evaluation; returns true when it moved the policy from waiting to
    /// triggered (a trigger held).
    pub(crate) fn evaluated(&self, id: &str, results: &[(f64, bool)]) -> bool {
        self.with(id, |r| {
            let at = now_ms();
            for (t, (observed, fired)) in r.status.triggers.iter_mut().zip(results) {
                t.observed = Some(*observed);
                t.fired = *fired;
                t.evaluated_at = at;
            }
            let fired = results.iter().any(|(_, f)| *f);
            if fired && r.status.state == PolicyState::Waiting {
                r.status.state = PolicyState::Triggered;
                r.status.triggered_at = Some(at);
                true
            } else {
                false
            }
        })
        .unwrap_or(false)
    }

    /// PASSIVE policies that were triggered and cover `(bucket, ball)` and have not
    /// replicated it, nor are doing so: each is marked as running it, and returned with its
    /// `who`, `where` and cancel token.
    pub(crate) fn claim_passive(
        &self,
        bucket: &str,
        ball: &str,
    ) -> Vec<(String, AvailabilityPolicy, CancellationToken)> {
        let id: BallId = (bucket.to_string(), ball.to_string());
        let mut out = Vec::new();
        for (pid, r) in self.lock().iter_mut() {
            let live = matches!(
                r.status.state,
                PolicyState::Triggered | PolicyState::Replicating
            );
            if r.policy.how != How::Passive || !live {
                continue;
            }
            let covers = r.policy.what_items().iter().any(|item| match item {
                WhatItem::Bucket(b) => b == bucket,
                WhatItem::Ball { bucket: b, ball: k } => b == bucket && k == ball,
            });
            if covers && !r.passive_done.contains(&id) && r.passive_running.insert(id.clone()) {
                out.push((pid.clone(), r.policy.clone(), r.cancel.clone()));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(id: &str, how: &str, what: &str) -> PolicyRecord {
        let text = format!(
            "apac: v1 available-resources: p: - a who: p.a what: {what} where: - p.a
             how: {how} when: - b.k: $ACCESS_COUNT > 1"
        );
        let policy = mictlanx::policy::parse(&text).expect("valid");
        PolicyRecord::new(
            id.to_string(),
            policy,
            vec![Variable::AccessCount],
            vec![],
            CancellationToken::new(),
        )
    }

    #[test]
    fn a_policy_fires_once_and_keeps_its_last_evaluation() {
        let store = PolicyStore::default();
        store
            .insert(record("x", "ACTIVE", "- b.k"), 10)
            .expect("room");
        assert_eq!(store.waiting(None).len(), 1);
        assert_eq!(store.waiting(Some("b")).len(), 1);
        assert!(store.waiting(Some("other")).is_empty());
        assert!(!store.evaluated("x", &[(1.0, false)]));
        let s = store.get("x").expect("held");
        assert_eq!(s.state, PolicyState::Waiting);
        assert_eq!(s.triggers[0].observed, Some(1.0));
        assert!(s.triggers[0].evaluated_at > 0);
        assert!(store.evaluated("x", &[(2.0, true)]));
        // Triggered: no longer waiting, and firing again changes nothing.
        assert!(store.waiting(None).is_empty());
        assert!(!store.evaluated("x", &[(3.0, true)]));
        assert_eq!(
            store.get("x").map(|s| s.state),
            Some(PolicyState::Triggered)
        );
        assert!(!store.evaluated("missing", &[(1.0, true)]));
    }

    #[test]
    fn the_store_is_bounded_and_removal_cancels() {
        let store = PolicyStore::default();
        let r = record("x", "ACTIVE", "- b.k");
        let cancel = r.cancel.clone();
        assert!(store.insert(r, 1).is_some());
        assert!(store.insert(record("y", "ACTIVE", "- b.k"), 1).is_none());
        assert_eq!(store.list().len(), 1);
        assert!(store.remove("x"));
        assert!(cancel.is_cancelled());
        assert!(!store.remove("x"));
        assert!(store.is_empty());
    }

    #[test]
    fn passive_balls_are_claimed_once_and_only_after_the_trigger() {
        let store = PolicyStore::default();
        store
            .insert(record("p", "PASSIVE", "- b.k - c"), 10)
            .expect("room");
        store
            .insert(record("a", "ACTIVE", "- b.k"), 10)
            .expect("room");
        // Waiting: nothing to claim yet.
        assert!(store.claim_passive("b", "k").is_empty());
        store.evaluated("p", &[(5.0, true)]);
        store.evaluated("a", &[(5.0, true)]);
        let claimed = store.claim_passive("b", "k");
        assert_eq!(claimed.len(), 1, "only the PASSIVE policy");
        assert_eq!(claimed[0].0, "p");
        // Running: not claimed twice; other balls of a named bucket are.
        assert!(store.claim_passive("b", "k").is_empty());
        assert_eq!(store.claim_passive("c", "anything").len(), 1);
        assert!(store.claim_passive("b", "other").is_empty());
        store.with("p", |r| {
            r.passive_running.clear();
            r.passive_done.insert(("b".into(), "k".into()));
            // A bucket item can always get new balls.
            assert!(!r.passive_complete());
        });
        assert!(store.claim_passive("b", "k").is_empty());
    }

    #[test]
    fn a_passive_policy_of_single_balls_completes() {
        let mut r = record("p", "PASSIVE", "- b.k - b.j");
        assert!(!r.passive_complete());
        r.passive_done.insert(("b".into(), "k".into()));
        assert!(!r.passive_complete());
        r.passive_done.insert(("b".into(), "j".into()));
        assert!(r.passive_complete());
    }
}
