//! Work handed to tokio's blocking pool (hashing, sealing, file reads and writes) so that it
//! never holds up an async worker thread.

use std::io;

use tokio::task::JoinError;

use crate::Error;

/// Runs `work` on the blocking pool and returns its result. A task that panicked, or that the
/// runtime dropped while shutting down, becomes an I/O error naming `what`.
pub(crate) async fn run<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io(task_failed(what, e)))
}

/// [`run`] for I/O work: its own error and a failed task are both an `io::Error`.
pub(crate) async fn run_io<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> io::Result<T> + Send + 'static,
) -> io::Result<T> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| task_failed(what, e))?
}

/// The error of a blocking task that did not finish (it panicked or was cancelled).
pub(crate) fn task_failed(what: &str, e: JoinError) -> io::Error {
    io::Error::other(format!("{what} task failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn results_come_back_and_a_panic_is_an_error_naming_the_work() {
        assert_eq!(run("adding", || 2 + 2).await.unwrap(), 4);
        let err = run("hashing", || -> u8 { panic!("boom") })
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("hashing task failed"), "{err}");

        assert_eq!(run_io("adding", || Ok(2 + 2)).await.unwrap(), 4);
        let own = run_io("reading", || -> io::Result<u8> {
            Err(io::Error::other("no"))
        })
        .await
        .unwrap_err();
        assert_eq!(own.to_string(), "no");
        let err = run_io("reading", || -> io::Result<u8> { panic!("boom") })
            .await
            .unwrap_err();
        assert!(err.to_string().contains("reading task failed"), "{err}");
    }
}
