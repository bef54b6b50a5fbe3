//! Queues many puts and gets on an `AsyncClient`, polls their status, then waits for them.
//!
//! Run: `cargo run --example async_queue` (embedded cluster), or with `MICTLANX_URI` set.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use mictlanx::{AsyncClient, AsyncClientConfig, GetJob, JobOutput, PutJob, TaskState};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (client, cluster) = support::connect().await?;
    let queue = AsyncClient::new(client, AsyncClientConfig::default().with_workers(4));

    // `put` returns a task id as soon as the job is queued.
    let mut ids = Vec::new();
    for i in 0..20u32 {
        let data = format!("ball number {i}\n").repeat(5_000);
        ids.push(
            queue
                .put(PutJob::bytes("queue-demo", &format!("ball-{i}"), data))
                .await?,
        );
    }
    println!("queued {} puts", ids.len());

    // Poll: the status table can be read at any time, from any task.
    loop {
        let counts = queue.task_counts();
        println!(
            "queued {:>2}  running {:>2}  completed {:>2}  failed {}",
            counts.queued, counts.running, counts.completed, counts.failed
        );
        if counts.queued == 0 && counts.running == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for id in &ids {
        if let Some(status) = queue.task_status(id) {
            if let TaskState::Failed(e) = status.state {
                println!("{id} failed: {e}");
            }
        }
    }

    // A get, awaited.
    let id = queue.get(GetJob::to_memory("queue-demo", "ball-7")).await?;
    if let JobOutput::Get(got) = queue.wait(&id).await? {
        println!("ball-7: {} bytes, verified", got.data.len());
    }
    println!("{:?}", queue.metrics());

    queue.shutdown().await;
    if let Some(cluster) = cluster {
        cluster.shutdown().await;
    }
    Ok(())
}
