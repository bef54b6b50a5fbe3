//! `mictlanx policy check|apply|ls|status|rm`: availability policies.
//!
//! `check` works offline (parse and validate, errors as `FILE:LINE:COL: message`, exit 2
//! when invalid); the others talk to the routers.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use mictlanx::policy::{check as check_text, CheckOptions, PolicyError, PolicyStatus};
use mictlanx::Client;
use serde_json::{json, Value};

use crate::output::{failure, Output};

/// The subcommands of `mictlanx policy`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Parse and validate a policy file offline; exit 2 when it is invalid.
    Check {
        /// The policy file.
        file: PathBuf,
        /// Accept an unknown variable close to a known one (a warning).
        #[arg(long)]
        lenient: bool,
    },
    /// Send a policy file to the routers.
    Apply {
        /// The policy file.
        file: PathBuf,
        /// Accept an unknown variable close to a known one (a warning).
        #[arg(long)]
        lenient: bool,
    },
    /// List the policies of every router.
    Ls,
    /// Show a policy's state and the last evaluation of each trigger.
    Status {
        /// The policy's id.
        id: String,
    },
    /// Remove a policy.
    Rm {
        /// The policy's id.
        id: String,
    },
}

fn read(file: &Path) -> Result<String, String> {
    std::fs::read_to_string(file).map_err(|e| format!("cannot read {}: {e}", file.display()))
}

fn error_json(e: &PolicyError) -> Value {
    json!({"line": e.position.line, "column": e.position.column, "message": e.kind.to_string()})
}

/// `policy check FILE`: 0 when valid, 2 when invalid, 1 when the file cannot be read.
pub fn check(out: Output, file: &Path, lenient: bool) -> ExitCode {
    let name = file.display().to_string();
    let text = match read(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("mictlanx: {e}");
            return ExitCode::FAILURE;
        }
    };
    match check_text(&text, &CheckOptions::default().lenient(lenient)) {
        Ok(checked) => {
            for w in &checked.warnings {
                eprintln!("{name}:{w} (accepted: --lenient)");
            }
            let p = &checked.policy;
            out.emit(
                json!({
                    "file": name,
                    "valid": true,
                    "how": p.how.to_string(),
                    "where": p.where_peers,
                    "triggers": p.when.len(),
                    "warnings": checked.warnings.iter().map(error_json).collect::<Vec<_>>(),
                    "policy": p.to_string(),
                }),
                || {
                    format!(
                        "{name}: valid ({}, {} where peers, {} triggers)",
                        p.how,
                        p.where_peers.len(),
                        p.when.len()
                    )
                },
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            for e in errors.iter() {
                eprintln!("{name}:{e}");
            }
            if out.json {
                let list: Vec<Value> = errors.iter().map(error_json).collect();
                println!("{}", json!({"file": name, "valid": false, "errors": list}));
            }
            ExitCode::from(2)
        }
    }
}

fn status_json(s: &PolicyStatus) -> Value {
    serde_json::to_value(s).unwrap_or(Value::Null)
}

fn status_text(s: &PolicyStatus) -> String {
    let mut lines = vec![format!("{}  {}  {}", s.id, s.how, s.state_label())];
    for t in &s.triggers {
        let observed = t
            .observed
            .map_or_else(|| "not evaluated".to_string(), |v| format!("{v:.2}"));
        lines.push(format!(
            "  when {}: ${} {} {} (observed {observed}{})",
            t.target,
            t.variable,
            t.operator,
            t.threshold,
            if t.fired { ", fired" } else { "" }
        ));
    }
    if let Some(e) = &s.error {
        lines.push(format!("  error: {e}"));
    }
    for w in &s.warnings {
        lines.push(format!("  warning: {w}"));
    }
    lines.join("\n")
}

/// `policy apply FILE`.
pub async fn apply(client: &Client, out: Output, file: &Path, lenient: bool) -> Result<(), String> {
    let text = read(file)?;
    let status = client
        .policies()
        .lenient(lenient)
        .apply(&text)
        .await
        .map_err(|e| failure(&format!("applying {}", file.display()), &e))?;
    out.emit(status_json(&status), || status_text(&status));
    Ok(())
}

/// `policy ls`.
pub async fn ls(client: &Client, out: Output) -> Result<(), String> {
    let list = client
        .policies()
        .list()
        .await
        .map_err(|e| failure("listing policies", &e))?;
    if list.is_empty() && !out.json {
        println!("no policies");
    }
    for s in &list {
        out.emit(status_json(s), || {
            format!("{}  {}  {}", s.id, s.how, s.state_label())
        });
    }
    Ok(())
}

/// `policy status ID`.
pub async fn status(client: &Client, out: Output, id: &str) -> Result<(), String> {
    let s = client
        .policies()
        .get(id)
        .await
        .map_err(|e| failure(&format!("reading policy {id}"), &e))?;
    out.emit(status_json(&s), || status_text(&s));
    Ok(())
}

/// `policy rm ID`.
pub async fn rm(client: &Client, out: Output, id: &str) -> Result<(), String> {
    client
        .policies()
        .remove(id)
        .await
        .map_err(|e| failure(&format!("removing policy {id}"), &e))?;
    out.emit(json!({"id": id, "removed": true}), || {
        format!("removed policy {id}")
    });
    Ok(())
}

/// Runs the subcommands that talk to the routers (`check` runs before the runtime starts).
pub async fn run(cmd: PolicyCommand, uri: Option<&str>, out: Output) -> Result<(), String> {
    match cmd {
        PolicyCommand::Check { file, lenient } => match check(out, &file, lenient) {
            code if code == ExitCode::SUCCESS => Ok(()),
            _ => Err(format!("{} is not a valid policy", file.display())),
        },
        PolicyCommand::Apply { file, lenient } => {
            apply(&crate::connect::client(uri)?, out, &file, lenient).await
        }
        PolicyCommand::Ls => ls(&crate::connect::client(uri)?, out).await,
        PolicyCommand::Status { id } => status(&crate::connect::client(uri)?, out, &id).await,
        PolicyCommand::Rm { id } => rm(&crate::connect::client(uri)?, out, &id).await,
    }
}
