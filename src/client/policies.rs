//! Availability policies on the routers: apply, list, status, remove
//! (`/api/v4/policies`, see [`crate::policy`]).
//!
//! A policy lives on the router that received it (in memory, like its replica map). `apply`
//! sends it to one router; `list`, `get` and `remove` ask every healthy router, so they find
//! a policy whichever router holds it.

use std::sync::Arc;

use super::http::{check, send, send_json};
use super::retry::{self, CallSpec};
use super::{paths, Client};
use crate::policy::PolicyStatus;
use crate::routers::RouterState;
use crate::Error;

/// The policy calls of a [`Client`]; get it with [`Client::policies`]. Cheap to clone.
///
/// # Examples
///
/// ```no_run
/// # #[tokio::main] async fn main() -> Result<(), mictlanx::Error> {
/// let client = mictlanx::Client::from_env()?;
/// let text = std::fs::read_to_string("policy.tlaloc").map_err(|e| mictlanx::Error::Validation {
///     message: e.to_string(),
/// })?;
/// let applied = client.policies().apply(&text).await?;
/// println!("{} is {}", applied.id, applied.state_label());
/// for p in client.policies().list().await? {
///     println!("{} {}", p.id, p.state_label());
/// }
/// client.policies().remove(&applied.id).await?;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Policies {
    client: Client,
    lenient: bool,
}

impl std::fmt::Debug for Policies {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policies")
            .field("lenient", &self.lenient)
            .finish()
    }
}

impl Client {
    /// The availability-policy calls.
    pub fn policies(&self) -> Policies {
        Policies {
            client: self.clone(),
            lenient: false,
        }
    }
}

fn policies_path() -> String {
    "/policies".to_string()
}

fn policy_path(id: &str) -> String {
    format!("/policies/{}", paths::segment(id))
}

impl Policies {
    /// Applies policies leniently: an unknown variable close to a known one is read as it
    /// (the router reports a warning in [`PolicyStatus::warnings`]).
    #[must_use]
    pub fn lenient(mut self, lenient: bool) -> Self {
        self.lenient = lenient;
        self
    }

    fn healthy_routers(&self) -> Vec<Arc<RouterState>> {
        let all = self.client.inner.routers.all();
        let healthy: Vec<_> = all.iter().filter(|r| r.is_healthy()).cloned().collect();
        if healthy.is_empty() {
            // Nobody looks healthy (yet): ask them all rather than nobody.
            all.to_vec()
        } else {
            healthy
        }
    }

    /// Sends a policy's text to a router, which validates it, starts the peers it declares
    /// when it can (a local cluster), and evaluates it.
    ///
    /// # Errors
    ///
    /// [`Error::Validation`] for an invalid policy, with one `LINE:COL: message` per line;
    /// [`Error::Unavailable`] when a declared peer could not be started; transport and
    /// server errors after retries.
    pub async fn apply(&self, text: &str) -> Result<PolicyStatus, Error> {
        let inner = &self.client.inner;
        let spec = CallSpec {
            event: "POLICY.APPLY",
            bucket: "",
            key: "",
            size: text.len() as u64,
            cancel: None,
        };
        let query = if self.lenient { "?lenient=true" } else { "" };
        let (status, _) = retry::run(inner, spec, |router| {
            let url = format!("{}{query}", paths::url(&router, &policies_path()));
            send_json::<PolicyStatus>(
                inner
                    .http
                    .post(url)
                    .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
                    .body(text.to_string()),
            )
        })
        .await?;
        tracing::info!(event = "POLICY.APPLY", policy_id = %status.id, state = %status.state);
        Ok(status)
    }

    /// Every policy of every healthy router.
    ///
    /// # Errors
    ///
    /// The first router's error when no router answered.
    pub async fn list(&self) -> Result<Vec<PolicyStatus>, Error> {
        let inner = &self.client.inner;
        let mut out = Vec::new();
        let mut first_error = None;
        let mut answered = false;
        for router in self.healthy_routers() {
            let req = inner.http.get(paths::url(&router, &policies_path()));
            match send_json::<Vec<PolicyStatus>>(req).await {
                Ok(list) => {
                    answered = true;
                    out.extend(list);
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        match (answered, first_error) {
            (false, Some(e)) => Err(e),
            _ => Ok(out),
        }
    }

    /// One policy's status: its state and the last evaluation of each trigger.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no router holds it; a router's error when none answered.
    pub async fn get(&self, id: &str) -> Result<PolicyStatus, Error> {
        let inner = &self.client.inner;
        let mut last = None;
        for router in self.healthy_routers() {
            let req = inner.http.get(paths::url(&router, &policy_path(id)));
            match send_json::<PolicyStatus>(req).await {
                Ok(status) => return Ok(status),
                Err(e) => last = Some(e),
            }
        }
        Err(not_found_or(id, last))
    }

    /// Removes a policy (its copies in progress stop; replicas already written stay).
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no router holds it; a router's error when none answered.
    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        let inner = &self.client.inner;
        let mut last = None;
        for router in self.healthy_routers() {
            let req = inner.http.delete(paths::url(&router, &policy_path(id)));
            match async { check(send(req).await?).await }.await {
                Ok(_) => {
                    tracing::info!(event = "POLICY.REMOVE", policy_id = id);
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(not_found_or(id, last))
    }
}

/// "Not found" when every router said so (or there were none); otherwise the last other
/// error, which says more.
fn not_found_or(id: &str, last: Option<Error>) -> Error {
    match last {
        Some(e) if !matches!(e, Error::NotFound { .. }) => e,
        _ => Error::NotFound {
            message: format!("no policy {id}"),
        },
    }
}
