//! `mictlanx demo`: the whole product in one command, on an embedded `LocalCluster`.
//!
//! Starts a router and peers in this process, writes a generated file, stores it through
//! `AsyncClient` with a progress bar, reads it back into another file, verifies it, and
//! prints what happened.

use std::time::Instant;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use mictlanx::checksum::sha256_file;
use mictlanx::size::format_size;
use mictlanx::{
    AsyncClient, AsyncClientConfig, Client, GetJob, JobOutput, PutJob, PutOptions, TaskId,
    TaskState,
};
use mictlanx_server::LocalCluster;

use crate::generate::write_generated_file;

/// What the demo does, from its flags.
#[derive(Debug, Clone)]
pub struct DemoConfig {
    /// Bytes of the generated file.
    pub size: u64,
    /// Peers in the embedded cluster.
    pub peers: usize,
    /// Replicas of each chunk.
    pub replication_factor: u32,
    /// Bytes per chunk.
    pub chunk_size: u64,
    /// No progress bars.
    pub quiet: bool,
    /// Print the summary as one JSON object (and nothing else on stdout).
    pub json: bool,
}

/// Runs the demo; every failure is one line saying what failed.
pub async fn run(config: DemoConfig) -> Result<(), String> {
    let started = Instant::now();
    let cluster = LocalCluster::builder()
        .peers(config.peers)
        .start()
        .await
        .map_err(|e| format!("starting the embedded cluster failed: {e}"))?;
    let say = |line: String| {
        if !config.json {
            println!("{line}");
        }
    };
    say(format!(
        "cluster: router + {} peers on loopback ({})",
        config.peers,
        cluster.uri()
    ));

    let work = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let source = work.path().join("demo-input.bin");
    let target = work.path().join("demo-output.bin");
    write_generated_file(&source, config.size)
        .await
        .map_err(|e| format!("writing the generated file failed: {e}"))?;
    say(format!(
        "file:    {} ({} bytes)",
        format_size(config.size),
        config.size
    ));

    let client = Client::builder()
        .routers_uri(&cluster.uri())
        .client_id("mictlanx-demo")
        .build()
        .map_err(|e| format!("client configuration failed: {e}"))?;
    let queue = AsyncClient::new(client, AsyncClientConfig::default().with_workers(2));

    let options = PutOptions::default()
        .with_chunk_size(config.chunk_size)
        .with_replication_factor(config.replication_factor)
        .with_tag("fullname", "demo-input.bin");
    let put_started = Instant::now();
    let put_id = queue
        .put(PutJob::file("demo", "demo-ball", &source).with_options(options))
        .await
        .map_err(|e| format!("queueing the put failed: {e}"))?;
    say(format!("put:     task {put_id} queued"));
    follow(&queue, &put_id, "put", config.quiet || config.json).await;
    let put = match queue.wait(&put_id).await {
        Ok(JobOutput::Put(p)) => p,
        Ok(other) => return Err(format!("the put returned {other:?}")),
        Err(e) => return Err(format!("the put failed: {e}")),
    };
    let put_secs = put_started.elapsed().as_secs_f64();

    let get_started = Instant::now();
    let get_id = queue
        .get(GetJob::to_file("demo", "demo-ball", &target))
        .await
        .map_err(|e| format!("queueing the get failed: {e}"))?;
    say(format!("get:     task {get_id} queued"));
    follow(&queue, &get_id, "get", config.quiet || config.json).await;
    queue
        .wait(&get_id)
        .await
        .map_err(|e| format!("the get failed: {e}"))?;
    let get_secs = get_started.elapsed().as_secs_f64();

    let (checksum, len) = sha256_file(&target)
        .await
        .map_err(|e| format!("reading the output back failed: {e}"))?;
    let verified = checksum == put.full_checksum && len == config.size;
    queue.shutdown().await;
    cluster.shutdown().await;

    let total_secs = started.elapsed().as_secs_f64();
    if config.json {
        println!(
            "{}",
            serde_json::json!({
                "size": put.size, "chunks": put.num_chunks, "chunk_size": config.chunk_size,
                "replication_factor": config.replication_factor, "replicas": put.replicas,
                "sha256": put.full_checksum, "put_seconds": put_secs, "get_seconds": get_secs,
                "put_mb_per_s": put.size as f64 / put_secs.max(1e-9) / 1e6,
                "get_mb_per_s": len as f64 / get_secs.max(1e-9) / 1e6,
                "verified": verified, "total_seconds": total_secs,
            })
        );
    } else {
        print_summary(&config, &put, put_secs, get_secs, len, verified, total_secs);
    }
    if verified {
        Ok(())
    } else {
        Err(format!(
            "the ball read back differs: sha256 {checksum} ({len} bytes), expected {}",
            put.full_checksum
        ))
    }
}

fn print_summary(
    config: &DemoConfig,
    put: &mictlanx::PutResult,
    put_secs: f64,
    get_secs: f64,
    len: u64,
    verified: bool,
    total_secs: f64,
) {
    println!();
    println!("summary");
    println!(
        "  size        {} ({} bytes)",
        format_size(put.size),
        put.size
    );
    println!(
        "  chunks      {} of {}",
        put.num_chunks,
        format_size(config.chunk_size)
    );
    println!(
        "  replicas    rf={} on {}",
        config.replication_factor,
        put.replicas.iter().cloned().collect::<Vec<_>>().join(", ")
    );
    println!("  sha256      {}", put.full_checksum);
    println!(
        "  put         {:.2} s, {}",
        put_secs,
        rate(put.size, put_secs)
    );
    println!("  get         {:.2} s, {}", get_secs, rate(len, get_secs));
    println!("  verified    {}", if verified { "yes" } else { "NO" });
    println!("  total       {total_secs:.2} s");
}

fn rate(bytes: u64, secs: f64) -> String {
    if secs <= 0.0 {
        return "-".to_string();
    }
    format!("{:.1} MB/s", bytes as f64 / secs / 1e6)
}

/// Shows the task's progress (a bar on a terminal, state changes otherwise) until it ends.
async fn follow(queue: &AsyncClient, id: &TaskId, what: &str, quiet: bool) {
    let Some(mut rx) = queue.subscribe(id) else {
        return;
    };
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix:>4} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        bar
    };
    let mut last_state = "";
    loop {
        let (state, progress) = {
            let status = rx.borrow_and_update();
            let progress = match &status.state {
                TaskState::Running(p) => Some(*p),
                _ => None,
            };
            (status.state.name(), progress)
        };
        if let Some(p) = progress {
            bar.set_length(p.bytes_total);
            bar.set_position(p.bytes_done);
            bar.set_message(format!("chunk {}/{}", p.chunks_done, p.chunks_total));
        }
        if state != last_state {
            if bar.is_hidden() && !quiet {
                println!("  {what}: {state}");
            }
            last_state = state;
        }
        if matches!(state, "completed" | "failed" | "cancelled") {
            break;
        }
        if rx.changed().await.is_err() {
            break;
        }
    }
    // A visible bar is cleared and replaced by the final state; without one, the state
    // changes were already printed as they happened.
    if !bar.is_hidden() {
        bar.finish_and_clear();
        println!("  {what}: {last_state}");
    }
}
