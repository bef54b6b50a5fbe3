//! Embedding `AsyncClient` in an axum service: `POST /files/{name}` queues an upload and
//! answers `202` with the task id at once; `GET /tasks/{id}` reports its status.
//!
//! Run: `cargo run --example axum_service` (embedded cluster, or `MICTLANX_URI`). It serves
//! on 127.0.0.1:0, calls itself once to show the flow, and exits.

#[path = "support/mod.rs"]
mod support;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use mictlanx::{AsyncClient, AsyncClientConfig, PutJob, TaskId, TaskState};
use serde_json::{json, Value};

async fn upload(
    State(queue): State<AsyncClient>,
    Path(name): Path<String>,
    body: Bytes,
) -> (StatusCode, Json<Value>) {
    match queue.put(PutJob::bytes("uploads", &name, body)).await {
        Ok(id) => (
            StatusCode::ACCEPTED,
            Json(json!({ "task_id": id.to_string() })),
        ),
        Err(e) => (
            StatusCode::BAD_REQUEST,
            Json(json!({ "detail": e.to_string() })),
        ),
    }
}

async fn status(
    State(queue): State<AsyncClient>,
    Path(id): Path<String>,
) -> (StatusCode, Json<Value>) {
    let Ok(id) = id.parse::<TaskId>() else {
        return (
            StatusCode::BAD_REQUEST,
            Json(json!({ "detail": "not a task id" })),
        );
    };
    match queue.task_status(&id) {
        None => (
            StatusCode::NOT_FOUND,
            Json(json!({ "detail": "unknown task" })),
        ),
        Some(s) => {
            let progress = match s.state {
                TaskState::Running(p) => {
                    json!({ "bytes_done": p.bytes_done, "bytes_total": p.bytes_total })
                }
                TaskState::Failed(ref e) => json!({ "error": e.to_string() }),
                _ => Value::Null,
            };
            (
                StatusCode::OK,
                Json(json!({ "state": s.state.name(), "progress": progress })),
            )
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, cluster) = support::connect().await?;
    let queue = AsyncClient::new(client, AsyncClientConfig::default());
    let app = Router::new()
        .route("/files/{name}", post(upload))
        .route("/tasks/{id}", get(status))
        .with_state(queue.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    println!("serving on http://{addr}");

    let http = reqwest::Client::new();
    let accepted: Value = serde_json::from_slice(
        &http
            .post(format!("http://{addr}/files/report"))
            .body(vec![42u8; 2_000_000])
            .send()
            .await?
            .bytes()
            .await?,
    )?;
    let id = accepted["task_id"].as_str().unwrap_or_default().to_string();
    println!("POST /files/report -> 202 {accepted}");
    loop {
        let status: Value = serde_json::from_slice(
            &http
                .get(format!("http://{addr}/tasks/{id}"))
                .send()
                .await?
                .bytes()
                .await?,
        )?;
        println!("GET /tasks/{id} -> {status}");
        if status["state"] != "queued" && status["state"] != "running" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    server.abort();
    queue.shutdown().await;
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    Ok(())
}
