//! Capacity and the in-flight count. A request takes a slot (waiting for one, or answered
//! 429 at once, as `--over-capacity` says; a 503 when `--queue-limit` requests already wait),
//! then an [`InFlight`] guard that counts it in.
//!
//! The guard counts the request out when it is dropped: after its answer, or when hyper drops
//! the handler because the client went away (a hung or streaming request). It gives its slot
//! back only after counting out, so a waiting request can never be counted in before the
//! one it replaces has left, and `peak_in_flight` never exceeds `--capacity`.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::MockLlm;
use super::args::OverCapacity;
use super::error::MockError;
use super::wire::Answer;

/// A request being served. Dropping it counts the request out (as abandoned unless it was
/// answered), then frees its slot.
pub struct InFlight {
    mock: Arc<MockLlm>,
    answered: bool,
    // Dropped after `Drop::drop` has run, so after the count.
    _slot: Option<OwnedSemaphorePermit>,
}

impl InFlight {
    /// Records the whole answer as completed.
    pub fn complete(&mut self, answer: &Answer) {
        self.answered = true;
        self.mock.ledger().complete(answer);
    }

    /// Records that the request was answered otherwise (a fault).
    pub fn answered(&mut self) {
        self.answered = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.mock.ledger().leave(self.answered);
    }
}

/// A request waiting for a slot. Dropping it counts it out of the queue (as abandoned unless
/// it got its slot).
struct Waiting<'a> {
    mock: &'a MockLlm,
    admitted: bool,
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.mock.ledger().dequeue(self.admitted);
    }
}

/// Waits for a slot, first come first served, unless `--queue-limit` requests already wait.
async fn queue_for(
    mock: &MockLlm,
    slots: &Arc<Semaphore>,
) -> Result<OwnedSemaphorePermit, MockError> {
    if let Ok(slot) = slots.clone().try_acquire_owned() {
        return Ok(slot);
    }
    {
        let mut ledger = mock.ledger();
        let queued = usize::try_from(ledger.queued()).unwrap_or(usize::MAX);
        if mock.config.queue_limit > 0 && queued >= mock.config.queue_limit {
            ledger.fault("queue_full");
            return Err(MockError::QueueFull { queued });
        }
        ledger.queue();
    }
    let mut waiting = Waiting {
        mock,
        admitted: false,
    };
    // The semaphore is never closed; a closed one would mean the mock is going away.
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| MockError::Unavailable)?;
    waiting.admitted = true;
    Ok(slot)
}

/// Takes a slot for a request and counts it in.
pub async fn admit(mock: &Arc<MockLlm>) -> Result<InFlight, MockError> {
    let slot = match &mock.slots {
        None => None,
        Some(slots) => Some(match mock.config.over_capacity {
            OverCapacity::Queue => queue_for(mock, slots).await?,
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
        answered: false,
        _slot: slot,
    })
}
