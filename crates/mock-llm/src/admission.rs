//! Capacity and the in-flight count. A request takes a slot (waiting for one, or answered
//! 429 at once, as `--over-capacity` says), then an [`InFlight`] guard that counts it in.
//!
//! The guard counts the request out when it is dropped: after its answer, or when hyper drops
//! the handler because the client went away (a hung or streaming request). It gives its slot
//! back only after counting out, so a waiting request can never be counted in before the
//! one it replaces has left, and `peak_in_flight` never exceeds `--capacity`.

use std::sync::Arc;

use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use super::MockLlm;
use super::args::OverCapacity;
use super::error::MockError;
use super::wire::Answer;

/// A request being served. Dropping it counts the request out, then frees its slot.
pub struct InFlight {
    mock: Arc<MockLlm>,
    // Dropped after `Drop::drop` has run, so after the count.
    _slot: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    /// Records the whole answer as completed.
    pub fn complete(&self, answer: &Answer) {
        self.mock.ledger().complete(answer);
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.mock.ledger().leave();
    }
}

/// Takes a slot for a request and counts it in.
pub async fn admit(mock: &Arc<MockLlm>) -> Result<InFlight, MockError> {
    let slot = match &mock.slots {
        None => None,
        Some(slots) => Some(match mock.config.over_capacity {
            // The semaphore is never closed; a closed one would mean the mock is going away.
            OverCapacity::Queue => slots
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| MockError::Unavailable)?,
            OverCapacity::Reject => slots.clone().try_acquire_owned().map_err(|_| {
                mock.ledger().rate_limited("over_capacity", Instant::now());
                MockError::RateLimited {
                    retry_after: mock.config.retry_after,
                    reason: "over capacity",
                }
            })?,
        }),
    };
    mock.ledger().enter();
    Ok(InFlight {
        mock: mock.clone(),
        _slot: slot,
    })
}
