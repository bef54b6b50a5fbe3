//! `put` and `get`: files, directories and standard streams, through `AsyncClient`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::StreamExt;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use mictlanx::id::sanitize;
use mictlanx::xolo::{KeyPair, PublicKey};
use mictlanx::{
    AsyncClient, AsyncClientConfig, Client, GetOptions, JobOutput, PutJob, PutOptions, TaskId,
    TaskState,
};
use serde_json::json;
use tokio::io::AsyncWriteExt;

use crate::output::{failure, Output};

/// What `put` stores and how.
#[derive(Debug, Clone)]
pub struct PutArgs {
    /// Files, or `-` for standard input.
    pub paths: Vec<PathBuf>,
    /// Walk directories.
    pub recursive: bool,
    /// Target bucket.
    pub bucket: String,
    /// Ball id for a single file or stdin (default: from the file's path).
    pub key: Option<String>,
    /// Bytes per chunk.
    pub chunk_size: Option<u64>,
    /// Replicas.
    pub rf: u32,
    /// `k=v` tags.
    pub tags: Vec<(String, String)>,
    /// Encrypt to these keys (none: a plain ball).
    pub recipients: Vec<PublicKey>,
    /// No progress bars.
    pub quiet: bool,
}

/// One file to put: where it is, its ball id, and the tags that describe it.
struct Item {
    path: PathBuf,
    ball_id: String,
    tags: Vec<(String, String)>,
}

/// `mictlanx put`.
pub async fn put(client: Client, out: Output, args: PutArgs) -> Result<(), String> {
    let stdin = args.paths.len() == 1 && args.paths[0] == Path::new("-");
    if stdin {
        let key = args
            .key
            .clone()
            .ok_or("putting standard input needs --key")?;
        return put_stdin(&client, out, &args, &key).await;
    }
    let items = collect(&args)?;
    if items.is_empty() {
        return Err("nothing to put: no files given (use -r for directories)".to_string());
    }
    if args.key.is_some() && items.len() > 1 {
        return Err("--key names one ball; it cannot be used with several files".to_string());
    }
    let queue = AsyncClient::new(client, AsyncClientConfig::default().with_workers(4));
    let mut tasks = Vec::with_capacity(items.len());
    for item in items {
        let mut opts = options(&args);
        for (k, v) in &item.tags {
            opts = opts.with_tag(k.clone(), v.clone());
        }
        for (k, v) in &args.tags {
            opts = opts.with_tag(k.clone(), v.clone());
        }
        let ball = args.key.clone().unwrap_or(item.ball_id);
        let job = PutJob::file(&args.bucket, &ball, &item.path).with_options(opts);
        let id = queue
            .put(job)
            .await
            .map_err(|e| format!("putting {} failed: {e}", item.path.display()))?;
        tasks.push((id, item.path));
    }
    show_progress(&queue, &tasks, args.quiet || out.json).await;
    let mut failed = 0usize;
    for (id, path) in &tasks {
        match queue.wait(id).await {
            Ok(JobOutput::Put(p)) => out.emit(
                json!({"bucket_id": p.bucket_id, "ball_id": p.ball_id, "size": p.size,
                       "num_chunks": p.num_chunks, "full_checksum": p.full_checksum,
                       "replicas": p.replicas, "path": path, "task_id": id.to_string(),
                       "encrypted": !args.recipients.is_empty()}),
                || {
                    format!(
                        "{} -> {}/{} ({} bytes)",
                        path.display(),
                        p.bucket_id,
                        p.ball_id,
                        p.size
                    )
                },
            ),
            Ok(other) => eprintln!("mictlanx: unexpected result {other:?}"),
            Err(e) => {
                failed += 1;
                eprintln!(
                    "mictlanx: {}",
                    failure(&format!("putting {}", path.display()), &e)
                );
            }
        }
    }
    queue.shutdown().await;
    if failed == 0 {
        Ok(())
    } else {
        Err(format!("{failed} of {} puts failed", tasks.len()))
    }
}

fn options(args: &PutArgs) -> PutOptions {
    let mut opts = PutOptions::default().with_replication_factor(args.rf);
    if let Some(c) = args.chunk_size {
        opts = opts.with_chunk_size(c);
    }
    if !args.recipients.is_empty() {
        opts = opts.encrypt_to(&args.recipients);
    }
    opts
}

async fn put_stdin(client: &Client, out: Output, args: &PutArgs, key: &str) -> Result<(), String> {
    let mut opts = options(args);
    for (k, v) in &args.tags {
        opts = opts.with_tag(k.clone(), v.clone());
    }
    let stream = tokio_util::io::ReaderStream::new(tokio::io::stdin());
    let p = client
        .put_stream(&args.bucket, key, stream, opts)
        .await
        .map_err(|e| failure("putting standard input", &e))?;
    out.emit(
        json!({"bucket_id": p.bucket_id, "ball_id": p.ball_id, "size": p.size,
               "num_chunks": p.num_chunks, "full_checksum": p.full_checksum,
               "replicas": p.replicas, "path": "-", "encrypted": !args.recipients.is_empty()}),
        || format!("stdin -> {}/{} ({} bytes)", p.bucket_id, p.ball_id, p.size),
    );
    Ok(())
}

/// The files to put, with ball ids derived from their paths and descriptive tags.
fn collect(args: &PutArgs) -> Result<Vec<Item>, String> {
    let mut items = Vec::new();
    for path in &args.paths {
        let meta =
            std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if meta.is_dir() {
            if !args.recursive {
                return Err(format!("{} is a directory (use -r)", path.display()));
            }
            walk(path, path, &mut items)?;
        } else {
            let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
            items.push(item(
                path.clone(),
                Path::new(name.as_deref().unwrap_or("ball")),
            ));
        }
    }
    Ok(items)
}

fn walk(root: &Path, dir: &Path, items: &mut Vec<Item>) -> Result<(), String> {
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {}: {e}", dir.display()))?;
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for path in paths {
        if path.is_dir() {
            walk(root, &path, items)?;
        } else if path.is_file() {
            let rel = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
            items.push(item(path, &rel));
        }
    }
    Ok(())
}

/// A ball id from a relative path (`images/pic_b.png` → `images-pic_b-png`) and the tags the
/// legacy client wrote for files (fullname, extension, bucket_relative_path, full_path).
fn item(path: PathBuf, rel: &Path) -> Item {
    let rel_text = rel.to_string_lossy().replace('\\', "/");
    let ball_id = sanitize(&rel_text.replace(['/', '.'], "-"));
    let ball_id = if ball_id.is_empty() {
        "ball".to_string()
    } else {
        ball_id
    };
    let mut tags = Vec::new();
    if let Some(name) = rel.file_name() {
        tags.push(("fullname".to_string(), name.to_string_lossy().into_owned()));
    }
    if let Some(ext) = rel.extension() {
        tags.push(("extension".to_string(), ext.to_string_lossy().into_owned()));
    }
    if let Some(parent) = rel.parent().filter(|p| !p.as_os_str().is_empty()) {
        tags.push((
            "bucket_relative_path".to_string(),
            format!("{}/", parent.to_string_lossy().replace('\\', "/")),
        ));
    }
    tags.push(("full_path".to_string(), rel_text));
    Item {
        path,
        ball_id,
        tags,
    }
}

/// A bar per running transfer plus a total, until every task has finished. Hidden when
/// stderr is not a terminal or with `--quiet`/`--json`.
async fn show_progress(queue: &AsyncClient, tasks: &[(TaskId, PathBuf)], hidden: bool) {
    let multi = MultiProgress::with_draw_target(if hidden {
        ProgressDrawTarget::hidden()
    } else {
        ProgressDrawTarget::stderr()
    });
    let style = ProgressStyle::with_template("{prefix:>24} [{bar:30}] {bytes}/{total_bytes}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let total = multi.add(ProgressBar::new(tasks.len() as u64));
    total.set_style(
        ProgressStyle::with_template("{prefix:>24} {pos}/{len} done")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    total.set_prefix("total");
    let mut bars: Vec<Option<ProgressBar>> = vec![None; tasks.len()];
    loop {
        let mut done = 0u64;
        for (i, (id, path)) in tasks.iter().enumerate() {
            let state = queue.task_status(id).map(|s| s.state);
            match state {
                Some(TaskState::Running(p)) => {
                    let bar = bars[i].get_or_insert_with(|| {
                        let b = multi.insert_before(&total, ProgressBar::new(0));
                        b.set_style(style.clone());
                        b.set_prefix(
                            path.file_name()
                                .map(|n| n.to_string_lossy().into_owned())
                                .unwrap_or_default(),
                        );
                        b
                    });
                    bar.set_length(p.bytes_total);
                    bar.set_position(p.bytes_done);
                }
                Some(TaskState::Queued) => {}
                _ => {
                    done += 1;
                    if let Some(bar) = bars[i].take() {
                        bar.finish_and_clear();
                        multi.remove(&bar);
                    }
                }
            }
        }
        total.set_position(done);
        if done == tasks.len() as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    total.finish_and_clear();
}

/// What `get` reads and where it goes.
#[derive(Debug)]
pub struct GetTarget<'a> {
    pub bucket: &'a str,
    pub key: &'a str,
    /// A file, `-` for standard output, or `./KEY` when `None`.
    pub output: Option<PathBuf>,
    /// The key that opens an encrypted ball.
    pub decrypt_with: Option<&'a KeyPair>,
}

/// `mictlanx get BUCKET KEY [-o FILE|-] [--decrypt-with NAME]`.
pub async fn get(client: &Client, out: Output, target: GetTarget<'_>) -> Result<(), String> {
    let GetTarget {
        bucket,
        key,
        output,
        decrypt_with,
    } = target;
    let what = format!("getting {bucket}/{key}");
    let opts = match decrypt_with {
        Some(pair) => GetOptions::default().decrypt_with(pair),
        None => GetOptions::default(),
    };
    match output {
        Some(path) if path == Path::new("-") => {
            let mut stream = client.get_stream_opts(bucket, key, opts);
            let mut stdout = tokio::io::stdout();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| failure(&what, &e))?;
                stdout
                    .write_all(&chunk)
                    .await
                    .map_err(|e| format!("{what} failed: writing to stdout: {e}"))?;
            }
            stdout
                .flush()
                .await
                .map_err(|e| format!("{what} failed: writing to stdout: {e}"))?;
            Ok(())
        }
        other => {
            let path = other.unwrap_or_else(|| PathBuf::from(key));
            let res = client
                .get_to_file_opts(bucket, key, &path, opts)
                .await
                .map_err(|e| failure(&what, &e))?;
            out.emit(
                json!({"bucket_id": bucket, "ball_id": key, "size": res.size, "path": res.path,
                       "decrypted": decrypt_with.is_some()}),
                || {
                    format!(
                        "{bucket}/{key} -> {} ({} bytes, verified)",
                        res.path.display(),
                        res.size
                    )
                },
            );
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ball_ids_and_tags_come_from_relative_paths() {
        let it = item(
            PathBuf::from("/x/images/pic_b.png"),
            Path::new("images/pic_b.png"),
        );
        assert_eq!(it.ball_id, "images-pic_b-png");
        let tags: std::collections::BTreeMap<_, _> = it.tags.into_iter().collect();
        assert_eq!(tags["fullname"], "pic_b.png");
        assert_eq!(tags["extension"], "png");
        assert_eq!(tags["bucket_relative_path"], "images/");
        assert_eq!(tags["full_path"], "images/pic_b.png");
        let it = item(PathBuf::from("...."), Path::new("...."));
        assert_eq!(it.ball_id, "ball");
    }
}
