//! The baselines for the large-object scenarios, run on the same bytes in the same run
//! (the small-object scenarios have theirs in `small_baseline`):
//!
//! - `disk`: copy the source file to a new file on the same filesystem and fsync it (write),
//!   then read that copy back (read). The read usually comes from the page cache, as the
//!   peers' reads in `get-large` do.
//! - `wire`: the same bytes over one loopback HTTP/1.1 connection to a minimal in-process
//!   axum server on `127.0.0.1:0` that discards them (put) or serves them from the source
//!   file (get).

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::StreamExt;
use tokio::task::JoinHandle;
use tokio_util::io::ReaderStream;
use tokio_util::sync::CancellationToken;

use super::report::Baseline;

/// Block size of every baseline read and write.
const BLOCK: usize = 1 << 20;

/// The disk baselines: `(write with fsync, read back)`. The copy is removed afterwards.
pub async fn disk(source: &Path, copy: &Path) -> Result<(Baseline, Baseline), String> {
    let (source, copy) = (source.to_path_buf(), copy.to_path_buf());
    tokio::task::spawn_blocking(move || {
        let result = disk_blocking(&source, &copy);
        let _ = std::fs::remove_file(&copy);
        result
    })
    .await
    .map_err(|e| format!("disk baseline task failed: {e}"))?
    .map_err(|e| format!("disk baseline failed: {e}"))
}

fn disk_blocking(source: &Path, copy: &Path) -> std::io::Result<(Baseline, Baseline)> {
    let mut buf = vec![0u8; BLOCK];
    let started = Instant::now();
    let mut input = std::fs::File::open(source)?;
    let mut output = std::fs::File::create(copy)?;
    let mut written = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n])?;
        written += n as u64;
    }
    output.sync_all()?;
    drop(output);
    let write = Baseline {
        name: "disk",
        ops: 1,
        bytes: written,
        seconds: started.elapsed().as_secs_f64(),
    };

    let started = Instant::now();
    let mut input = std::fs::File::open(copy)?;
    let mut read = 0u64;
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            break;
        }
        read += n as u64;
    }
    let read = Baseline {
        name: "disk",
        ops: 1,
        bytes: read,
        seconds: started.elapsed().as_secs_f64(),
    };
    Ok((write, read))
}

/// The wire baseline of a put: the source file's bytes POSTed to a server that discards them.
pub async fn wire_put(source: &Path, timeout: Duration) -> Result<Baseline, String> {
    let server = WireServer::start(file_app(source.to_path_buf())).await?;
    let result = tokio::time::timeout(timeout, upload(server.addr, source)).await;
    server.stop().await;
    result.map_err(|_| "wire baseline (put) timed out".to_string())?
}

/// The wire baseline of a get: the source file's bytes served by the server and discarded here.
pub async fn wire_get(source: &Path, timeout: Duration) -> Result<Baseline, String> {
    let server = WireServer::start(file_app(source.to_path_buf())).await?;
    let result = tokio::time::timeout(timeout, download(server.addr)).await;
    server.stop().await;
    result.map_err(|_| "wire baseline (get) timed out".to_string())?
}

/// One client, one request, so one connection; no proxy, whatever the environment says.
fn http_client() -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .http1_only()
        .no_proxy()
        .build()
        .map_err(|e| format!("wire baseline client: {e}"))
}

async fn upload(addr: SocketAddr, source: &Path) -> Result<Baseline, String> {
    let client = http_client()?;
    let expected = tokio::fs::metadata(source)
        .await
        .map_err(|e| format!("wire baseline source: {e}"))?
        .len();
    let started = Instant::now();
    let file = tokio::fs::File::open(source)
        .await
        .map_err(|e| format!("wire baseline source: {e}"))?;
    let body = reqwest::Body::wrap_stream(ReaderStream::with_capacity(file, BLOCK));
    let response = client
        .post(format!("http://{addr}/sink"))
        .body(body)
        .send()
        .await
        .map_err(|e| format!("wire baseline (put): {e}"))?;
    let received: u64 = response
        .text()
        .await
        .map_err(|e| format!("wire baseline (put): {e}"))?
        .trim()
        .parse()
        .map_err(|e| format!("wire baseline (put) answer: {e}"))?;
    let seconds = started.elapsed().as_secs_f64();
    if received != expected {
        return Err(format!(
            "wire baseline (put): the server got {received} of {expected} bytes"
        ));
    }
    Ok(Baseline {
        name: "wire",
        ops: 1,
        bytes: received,
        seconds,
    })
}

async fn download(addr: SocketAddr) -> Result<Baseline, String> {
    let client = http_client()?;
    let started = Instant::now();
    let response = client
        .get(format!("http://{addr}/source"))
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|e| format!("wire baseline (get): {e}"))?;
    let expected = response.content_length();
    let mut stream = response.bytes_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        received += chunk
            .map_err(|e| format!("wire baseline (get): {e}"))?
            .len() as u64;
    }
    let seconds = started.elapsed().as_secs_f64();
    if expected.is_some_and(|n| n != received) {
        return Err(format!(
            "wire baseline (get): got {received} bytes of {expected:?}"
        ));
    }
    Ok(Baseline {
        name: "wire",
        ops: 1,
        bytes: received,
        seconds,
    })
}

/// A minimal in-process HTTP server on `127.0.0.1:0`, stopped by [`WireServer::stop`].
pub(super) struct WireServer {
    pub(super) addr: SocketAddr,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl WireServer {
    pub(super) async fn start(app: Router) -> Result<Self, String> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| format!("wire baseline server: {e}"))?;
        let addr = listener
            .local_addr()
            .map_err(|e| format!("wire baseline server: {e}"))?;
        let stop = CancellationToken::new();
        let signal = stop.clone().cancelled_owned();
        let task = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, app)
                .with_graceful_shutdown(signal)
                .await
            {
                tracing::warn!(event = "BENCH.WIRE.SERVER", error = %e);
            }
        });
        Ok(Self { addr, stop, task })
    }

    pub(super) async fn stop(self) {
        self.stop.cancel();
        // The clients' connections are closed by then; bound the wait anyway.
        if tokio::time::timeout(Duration::from_secs(5), self.task)
            .await
            .is_err()
        {
            tracing::warn!(event = "BENCH.WIRE.SERVER", error = "did not stop in 5 s");
        }
    }
}

/// `POST /sink` counts and discards, `GET /source` streams the file.
fn file_app(source: PathBuf) -> Router {
    Router::new()
        .route("/sink", post(sink))
        .route("/source", get(serve_source))
        .layer(DefaultBodyLimit::disable())
        .with_state(Arc::new(source))
}

/// Reads the whole body and answers how many bytes it had.
pub(super) async fn sink(body: Body) -> String {
    let mut stream = body.into_data_stream();
    let mut received = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(bytes) => received += bytes.len() as u64,
            Err(_) => break,
        }
    }
    received.to_string()
}

async fn serve_source(State(source): State<Arc<PathBuf>>) -> Response {
    let file = match tokio::fs::File::open(source.as_path()).await {
        Ok(file) => file,
        Err(_) => return StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    };
    let len = file.metadata().await.map(|m| m.len()).ok();
    let mut response = Body::from_stream(ReaderStream::with_capacity(file, BLOCK)).into_response();
    if let Some(len) = len {
        response
            .headers_mut()
            .insert(axum::http::header::CONTENT_LENGTH, len.into());
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn baselines_move_every_byte() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src.bin");
        std::fs::write(&source, vec![7u8; 3 * BLOCK + 11]).unwrap();
        let expected = (3 * BLOCK + 11) as u64;

        let (write, read) = disk(&source, &dir.path().join("copy.bin")).await.unwrap();
        assert_eq!((write.bytes, read.bytes), (expected, expected));
        assert!(!dir.path().join("copy.bin").exists());

        let put = wire_put(&source, Duration::from_secs(30)).await.unwrap();
        let get = wire_get(&source, Duration::from_secs(30)).await.unwrap();
        assert_eq!((put.bytes, get.bytes), (expected, expected));
        assert_eq!((put.name, get.name), ("wire", "wire"));
    }
}
