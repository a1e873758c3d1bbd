//! What a gate can say at a glance, without waiting or taking anything: whether a call would
//! go at once, wait for a slot, or wait for the provider itself. Routing across an
//! application's providers asks it (see `providers::route`).

use std::time::Instant;

use super::Gate;

/// How soon a gate would let a call through, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Room {
    /// At once: a slot is free, and the provider is neither paused, nor failing, nor out of
    /// budget.
    Now,
    /// When a slot frees: the provider is healthy but every slot is taken (or promised to a
    /// caller already waiting), so the call waits about as long as a call takes.
    Soon,
    /// When the provider allows: it is paused by backpressure, its circuit is open (or its
    /// one probe is out), or a per-minute budget is spent; the wait may be long.
    Later,
}

impl Gate {
    /// How soon a call estimated at `estimated_tokens` would get through, as this node sees
    /// it (in a cluster, a shared slot may still be waited for, and another node's pause is
    /// not known here). Takes two short locks; changes nothing.
    pub(crate) fn room(&self, estimated_tokens: u32) -> Room {
        if !self
            .state()
            .would_admit(f64::from(estimated_tokens), Instant::now())
        {
            Room::Later
        } else if self.slots.is_free() {
            Room::Now
        } else {
            Room::Soon
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::super::state::{FIRST_COOLDOWN, OPEN_AFTER};
    use super::*;
    use crate::providers::{ErrorClass, ProviderError};
    use crate::store::Priority;
    use crate::store::limits::Limits;

    fn gate(max_concurrency: usize, requests_per_minute: u32) -> Arc<Gate> {
        let limits = Limits {
            max_concurrency,
            requests_per_minute,
            tokens_per_minute: 0,
        };
        Gate::new("test".into(), limits, None, None)
    }

    fn error(class: ErrorClass) -> ProviderError {
        ProviderError::Retryable {
            class,
            message: class.as_str().into(),
            retry_after: Some(Duration::from_secs(60)),
        }
    }

    #[tokio::test]
    async fn room_is_now_then_soon_while_the_slots_are_taken_then_later_while_paused() {
        let gate = gate(1, 0);
        assert_eq!(gate.room(10), Room::Now);
        let admission = gate.admit(10, "org", Priority::Normal).await;
        assert_eq!(gate.room(10), Room::Soon);
        admission.settle(Err(&error(ErrorClass::RateLimited))).await;
        assert_eq!(gate.room(10), Room::Later, "paused for a minute");
    }

    #[tokio::test]
    async fn a_spent_request_budget_leaves_no_room() {
        let gate = gate(4, 1);
        let admission = gate.admit(10, "org", Priority::Normal).await;
        admission.settle(Ok(None)).await;
        assert_eq!(gate.room(10), Room::Later);
    }

    #[test]
    fn the_circuit_leaves_room_only_for_its_probe() {
        let gate = gate(4, 0);
        let now = Instant::now();
        let mut state = gate.state();
        for _ in 0..OPEN_AFTER {
            assert!(state.would_admit(1.0, now));
            assert!(state.try_admit(1.0, now).is_zero());
            state.record("test", Err(&error(ErrorClass::Server)), 1.0, now);
        }
        assert!(!state.would_admit(1.0, now), "open");
        let later = now + FIRST_COOLDOWN;
        assert!(state.would_admit(1.0, later), "the probe may go");
        assert!(state.try_admit(1.0, later).is_zero());
        assert!(!state.would_admit(1.0, later), "one probe at a time");
    }
}
