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
