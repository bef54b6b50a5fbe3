//! Logging for the binaries (`mictlanx-server`, `mictlanx`): libraries emit, binaries
//! subscribe.
//!
//! Human-readable events go to stderr, filtered by `MICTLANX_LOG` (or `RUST_LOG`). With
//! `MICTLANX_LOG_PATH` set, every event is also written as one JSON object per line to
//! `{MICTLANX_LOG_PATH}/{name}.log.YYYY-MM-DD-HH`, rotated every hour. Nothing is written
//! anywhere else unless asked (the original wrote under `/mictlanx` at import time).

use std::path::PathBuf;

use tracing_appender::non_blocking::WorkerGuard;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer};

/// Keeps the log file writer alive; drop it last (it flushes on drop).
#[must_use = "dropping the guard stops the file writer"]
pub struct LogGuard {
    _file: Option<WorkerGuard>,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard")
            .field("file", &self._file.is_some())
            .finish()
    }
}

/// Installs the global subscriber: stderr at `MICTLANX_LOG`/`RUST_LOG` (else
/// `default_filter`), plus JSON lines under `MICTLANX_LOG_PATH` when it is set. `name`
/// names the log file (`router-0`, `mictlanx-cli`, ...). Calling it twice does nothing.
pub fn init(name: &str, default_filter: &str) -> LogGuard {
    let filter = || {
        std::env::var("MICTLANX_LOG")
            .ok()
            .or_else(|| std::env::var("RUST_LOG").ok())
            .map(EnvFilter::new)
            .unwrap_or_else(|| EnvFilter::new(default_filter))
    };
    let stderr = fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter());
    let (file_layer, guard) = match std::env::var_os("MICTLANX_LOG_PATH").map(PathBuf::from) {
        Some(dir) if !dir.as_os_str().is_empty() => {
            let appender = tracing_appender::rolling::hourly(dir, format!("{name}.log"));
            let (writer, guard) = tracing_appender::non_blocking(appender);
            let layer = fmt::layer()
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .with_writer(writer)
                .with_filter(filter());
            (Some(layer), Some(guard))
        }
        _ => (None, None),
    };
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file_layer)
        .try_init();
    LogGuard { _file: guard }
}
