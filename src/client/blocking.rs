//! Work handed to tokio's blocking pool (hashing, sealing, file reads) so that it never holds
//! up an async worker thread.

use crate::Error;

/// Runs `work` on the blocking pool and returns its result. A task that panicked, or that the
/// runtime dropped while shutting down, becomes an I/O error naming `what`.
pub(crate) async fn run<T: Send + 'static>(
    what: &'static str,
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| Error::Io(std::io::Error::other(format!("{what} task failed: {e}"))))
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
    }
}
