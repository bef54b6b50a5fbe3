//! `ls`, `stat`, `routers`.

use mictlanx::Client;
use serde_json::json;

use crate::output::{failure, Output};

/// `mictlanx ls BUCKET`: the balls of a bucket.
pub async fn ls(client: &Client, out: Output, bucket: &str) -> Result<(), String> {
    let listing = client
        .bucket(bucket)
        .await
        .map_err(|e| failure(&format!("listing bucket {bucket}"), &e))?;
    for ball in listing.balls.values() {
        out.emit(
            json!({"bucket_id": ball.bucket_id, "ball_id": ball.ball_id, "size": ball.size,
                   "chunks": ball.chunks.len(), "checksum": ball.checksum,
                   "updated_at": ball.updated_at}),
            || {
                format!(
                    "{:>12}  {:>4} chunks  {}",
                    ball.size,
                    ball.chunks.len(),
                    ball.ball_id
                )
            },
        );
    }
    Ok(())
}

/// `mictlanx stat BUCKET KEY`: a ball's size, checksum, chunks and tags.
pub async fn stat(client: &Client, out: Output, bucket: &str, key: &str) -> Result<(), String> {
    let ball = client
        .ball(bucket, key)
        .await
        .map_err(|e| failure(&format!("stat of {bucket}/{key}"), &e))?;
    let chunks: Vec<_> = ball
        .chunks
        .iter()
        .map(|c| json!({"key": c.key, "size": c.size, "checksum": c.checksum}))
        .collect();
    out.emit(
        json!({"bucket_id": ball.bucket_id, "ball_id": ball.ball_id, "size": ball.size,
               "checksum": ball.checksum, "tags": ball.tags, "chunks": chunks,
               "updated_at": ball.updated_at}),
        || {
            let mut s = format!(
                "{}/{}\n  size      {} bytes\n  checksum  {}\n  chunks    {}",
                ball.bucket_id,
                ball.ball_id,
                ball.size,
                ball.checksum.as_deref().unwrap_or("-"),
                ball.chunks.len()
            );
            for (k, v) in &ball.tags {
                s.push_str(&format!("\n  tag       {k}={v}"));
            }
            s
        },
    );
    Ok(())
}

/// `mictlanx routers`: each router's health, latency and disk use, as the client sees them.
/// The client is built with a disk-use balancer, so its heartbeat also reads each router's
/// peer stats; this waits (at most 3 s) until every router has been probed once.
pub async fn routers(client: &Client, out: Output) -> Result<(), String> {
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
    let metrics = loop {
        let m = client.metrics();
        let probed = m
            .routers
            .iter()
            .all(|r| r.latency_ewma.is_some() || !r.healthy);
        if probed || tokio::time::Instant::now() >= deadline {
            break m;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    for r in &metrics.routers {
        out.emit(
            json!({"router_id": r.router_id, "base_url": r.base_url, "healthy": r.healthy,
                   "latency_ms": r.latency_ewma.map(|d| d.as_secs_f64() * 1e3),
                   "requests": r.requests, "failures": r.failures, "retries": r.retries,
                   "disk_used": r.disk_used, "disk_total": r.disk_total}),
            || {
                format!(
                    "{:<12} {:<28} {:<9} latency {:>8}  disk {}/{}",
                    r.router_id,
                    r.base_url,
                    if r.healthy { "up" } else { "DOWN" },
                    r.latency_ewma
                        .map(|d| format!("{:.2} ms", d.as_secs_f64() * 1e3))
                        .unwrap_or_else(|| "-".into()),
                    r.disk_used,
                    r.disk_total
                )
            },
        );
    }
    if metrics.routers.iter().any(|r| r.healthy) {
        Ok(())
    } else {
        Err("no router is reachable".to_string())
    }
}
