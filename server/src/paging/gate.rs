//! How many listings a server answers at once.

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;

/// Limits of the listings of one server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListingLimits {
    /// Listings served at once (a whole listing holds its slot until its answer is sent).
    pub max_concurrent: usize,
    /// How long a listing waits for a slot before it is answered 503 with `Retry-After`.
    pub wait: Duration,
}

impl Default for ListingLimits {
    /// 16 at once, a 2 s wait: a page of 1,000 entries takes milliseconds, so a short queue
    /// absorbs bursts, while a flood is turned away instead of piling up in memory.
    fn default() -> Self {
        Self {
            max_concurrent: 16,
            wait: Duration::from_secs(2),
        }
    }
}

/// The listing slots of one server. Cheap to clone.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use mictlanx_server::paging::{ListingGate, ListingLimits};
///
/// let gate = ListingGate::new(ListingLimits::default());
/// let slot = gate.enter().await.expect("a free slot");
/// drop(slot);
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct ListingGate {
    slots: Arc<Semaphore>,
    wait: Duration,
}

impl ListingGate {
    /// Slots for `limits.max_concurrent` listings (at least 1).
    pub fn new(limits: ListingLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(limits.max_concurrent.max(1))),
            wait: limits.wait,
        }
    }

    /// A slot, waiting for one up to the configured time (first come, first served).
    ///
    /// # Errors
    ///
    /// 503 with `Retry-After: 1` when no slot frees in time.
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, ApiError> {
        let busy = || {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "too many listings at once; retry later",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
        };
        match tokio::time::timeout(self.wait, self.slots.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            // The semaphore is never closed; a closed one is as good as busy.
            Ok(Err(_)) | Err(_) => Err(busy()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // A real 20 ms wait: the paused clock needs tokio's test-util, not on for this crate.
    #[tokio::test]
    async fn full_gate_answers_503_after_the_wait() {
        let gate = ListingGate::new(ListingLimits {
            max_concurrent: 1,
            wait: Duration::from_millis(20),
        });
        let held = gate.enter().await.unwrap();
        let e = gate.enter().await.unwrap_err();
        assert_eq!(e.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(e.headers.iter().any(|(n, _)| n == header::RETRY_AFTER));
        drop(held);
        assert!(gate.enter().await.is_ok());
    }
}
