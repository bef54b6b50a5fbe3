//! `POST /api/v4/policies` (the policy's text; `?lenient=true` accepts near-miss variable
//! names), `GET /api/v4/policies`, `GET /api/v4/policies/{id}`, `DELETE
//! /api/v4/policies/{id}`.

use std::collections::BTreeSet;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use mictlanx::policy::{check, CheckOptions, PolicyErrors, PolicyStatus};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiPath, ApiQuery};

use super::super::state::RouterState;
use super::super::tasks::new_group_id;
use super::store::PolicyRecord;

/// Query of `POST /api/v4/policies`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ApplyQuery {
    /// `true` (or `1`, `yes`, `on`): unknown variables close to a known one are read as it.
    #[serde(default)]
    lenient: Option<String>,
}

impl ApplyQuery {
    fn lenient(&self) -> bool {
        self.lenient.as_deref().is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "1" | "true" | "yes" | "on"
            )
        })
    }
}

/// 400 with every error and its place: `detail.msg` (all of them, one per line) and
/// `detail.errors` (`line`, `column`, `message` each).
pub(crate) fn invalid(errors: &PolicyErrors) -> ApiError {
    let list: Vec<_> = errors
        .iter()
        .map(|e| {
            json!({
                "line": e.position.line,
                "column": e.position.column,
                "message": e.kind.to_string(),
            })
        })
        .collect();
    ApiError {
        status: StatusCode::BAD_REQUEST,
        detail: json!({
            "msg": format!("invalid policy:\n{errors}"),
            "code": 400,
            "errors": list,
        }),
        headers: Default::default(),
    }
}

/// `POST /api/v4/policies`: validates, starts declared peers the router lacks (when it has
/// a provisioner), stores the policy and evaluates it once. 201 with its status.
pub(crate) async fn apply(
    State(st): State<RouterState>,
    ApiQuery(query): ApiQuery<ApplyQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<PolicyStatus>), ApiError> {
    let text = std::str::from_utf8(&body)
        .map_err(|_| ApiError::bad_request("the policy is not UTF-8 text"))?;
    let cfg = &st.config.policy;
    let known: BTreeSet<String> = st.peers.all().into_iter().map(|p| p.id).collect();
    let mut options = CheckOptions::default().lenient(query.lenient());
    if cfg.provisioner.is_none() {
        options.known_peers = Some(known.clone());
    }
    let checked = check(text, &options).map_err(|e| invalid(&e))?;
    let policy = checked.policy;
    let variables: Vec<_> = policy
        .when
        .iter()
        .filter_map(|t| t.predicate.resolve())
        .collect();
    if variables.len() != policy.when.len() {
        // `check` refuses a variable with nothing to read it as; this cannot be reached.
        return Err(ApiError::bad_request("a trigger has an unknown variable"));
    }

    if let Some(provisioner) = &cfg.provisioner {
        let missing: Vec<String> = policy
            .declared_peers()
            .into_iter()
            .filter(|p| !known.contains(p))
            .collect();
        if missing.len() > cfg.max_provisioned_per_policy {
            return Err(ApiError::bad_request(format!(
                "the policy declares {} peers this router does not run; it starts at most {}",
                missing.len(),
                cfg.max_provisioned_per_policy
            )));
        }
        for id in &missing {
            let address = provisioner
                .provision(id)
                .await
                .map_err(|e| ApiError::unavailable(e.to_string()))?;
            let address = address.with_id(id.clone());
            tracing::info!(event = "POLICY.PEER.STARTED", peer = %id, address = %address.label());
            st.peers.add(address);
        }
        if !missing.is_empty() {
            st.probe_now.notify_one();
        }
    }

    let id = new_group_id();
    let warnings = checked.warnings.iter().map(ToString::to_string).collect();
    let record = PolicyRecord::new(
        id.clone(),
        policy,
        variables,
        warnings,
        st.policies.stop.child_token(),
    );
    let engine = &st.policies;
    engine
        .store
        .insert(record, cfg.max_policies)
        .ok_or_else(|| {
            ApiError::conflict(format!(
                "this router holds {} policies already; remove some first",
                cfg.max_policies
            ))
        })?;
    tracing::info!(event = "POLICY.APPLIED", policy_id = %id);
    engine.evaluate(&st, None);
    let status = engine
        .store
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("policy {id} was removed")))?;
    Ok((StatusCode::CREATED, Json(status)))
}

/// `GET /api/v4/policies`.
pub(crate) async fn list(State(st): State<RouterState>) -> Json<Vec<PolicyStatus>> {
    Json(st.policies.store.list())
}

/// `GET /api/v4/policies/{id}`.
pub(crate) async fn status(
    State(st): State<RouterState>,
    ApiPath(id): ApiPath<String>,
) -> Result<Json<PolicyStatus>, ApiError> {
    st.policies
        .store
        .get(&id)
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no policy {id}")))
}

/// `DELETE /api/v4/policies/{id}`: forgets it and stops its copies (replicas already
/// written stay). 204.
pub(crate) async fn remove(
    State(st): State<RouterState>,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    if st.policies.store.remove(&id) {
        tracing::info!(event = "POLICY.REMOVED", policy_id = %id);
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!("no policy {id}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_flag_reads_like_the_other_flags() {
        let q = |v: Option<&str>| ApplyQuery {
            lenient: v.map(str::to_string),
        };
        assert!(q(Some("true")).lenient());
        assert!(q(Some("1")).lenient());
        assert!(!q(Some("no")).lenient());
        assert!(!q(None).lenient());
    }

    #[test]
    fn validation_errors_carry_line_and_column_in_the_body() {
        let errors = check("tlaloc: v1\nwho", &CheckOptions::default()).unwrap_err();
        let e = invalid(&errors);
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.detail["errors"][0]["line"], 2);
        assert_eq!(e.detail["errors"][0]["column"], 1);
        assert!(e.detail["msg"]
            .as_str()
            .is_some_and(|m| m.contains("2:1: expected")));
    }
}
