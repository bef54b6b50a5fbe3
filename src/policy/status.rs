//! What the router reports about a policy (`GET /api/v4/policies/{id}`): wire types shared
//! by the router and the client.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Where a policy is in its life.
///
/// `waiting` → (a trigger holds) → `triggered` → `replicating` → `done` or `failed` for
/// `ACTIVE`; a `PASSIVE` policy stays `triggered` and replicates each ball on its next
/// access, and is `done` once every `what` ball named one by one has been replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyState {
    /// No trigger has held yet.
    Waiting,
    /// A trigger held; replication is about to start (ACTIVE) or happens on access (PASSIVE).
    Triggered,
    /// Copies are being written (`replicas_done` of `replicas_total`).
    Replicating,
    /// Every replica asked for is written.
    Done,
    /// Replication stopped with an error (`error`).
    Failed,
}

impl fmt::Display for PolicyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyState::Waiting => "waiting",
            PolicyState::Triggered => "triggered",
            PolicyState::Replicating => "replicating",
            PolicyState::Done => "done",
            PolicyState::Failed => "failed",
        })
    }
}

/// The last evaluation of one trigger.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TriggerEvaluation {
    /// The `what` item it watches.
    pub target: String,
    /// The variable (as resolved: a lenient policy's typo reads as the nearest name).
    pub variable: String,
    /// `>`, `<`, `>=`, `<=`, `==` or `!=`.
    pub operator: String,
    /// The threshold.
    pub threshold: f64,
    /// The value measured at the last evaluation (`null` before the first).
    #[serde(default)]
    pub observed: Option<f64>,
    /// Whether the predicate held at the last evaluation.
    #[serde(default)]
    pub fired: bool,
    /// When it was last evaluated, in milliseconds since the Unix epoch (0: never).
    #[serde(default)]
    pub evaluated_at: u64,
}

/// A policy as the router holds it.
///
/// # Examples
///
/// ```
/// use mictlanx::policy::{PolicyState, PolicyStatus};
/// let s: PolicyStatus = serde_json::from_str(r#"{"id":"p1","state":"replicating",
///     "how":"ACTIVE","policy":"...","replicas_done":2,"replicas_total":6}"#)?;
/// assert_eq!(s.state, PolicyState::Replicating);
/// assert_eq!(s.state_label(), "replicating 2/6");
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyStatus {
    /// The id the router gave it.
    pub id: String,
    /// Its state.
    pub state: PolicyState,
    /// `ACTIVE` or `PASSIVE`.
    pub how: String,
    /// The policy, in canonical text.
    pub policy: String,
    /// Replicas written so far.
    #[serde(default)]
    pub replicas_done: u64,
    /// Replicas to write (for PASSIVE, those of the balls accessed since it triggered).
    #[serde(default)]
    pub replicas_total: u64,
    /// The last evaluation of each trigger, in the order of `when`.
    #[serde(default)]
    pub triggers: Vec<TriggerEvaluation>,
    /// When it was applied (ms since the Unix epoch).
    #[serde(default)]
    pub created_at: u64,
    /// When a trigger first held (ms since the Unix epoch), if it has.
    #[serde(default)]
    pub triggered_at: Option<u64>,
    /// Why it failed, or the last copy that failed.
    #[serde(default)]
    pub error: Option<String>,
    /// What a lenient check let through (`LINE:COL: message`).
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl PolicyStatus {
    /// The state as people read it: `replicating n/m` while copying, else the state's name.
    pub fn state_label(&self) -> String {
        match self.state {
            PolicyState::Replicating => {
                format!("replicating {}/{}", self.replicas_done, self.replicas_total)
            }
            other => other.to_string(),
        }
    }
}
