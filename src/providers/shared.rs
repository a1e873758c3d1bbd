//! Limits shared by every node of a cluster.
//!
//! On one node the [`super::gate::Gate`] alone enforces a provider's limits. When several
//! nodes share one PostgreSQL database they must share the limits too, or three nodes would
//! send three times `max_concurrency`. The shared database then implements [`SharedLimits`]:
//! a call takes one of the provider's `max_concurrency` slots there (leased, so a dead node's
//! slots come back by themselves), and its share of the per-minute budgets, unless a 429 seen
//! by any node paused the provider. The mock is in-process and never shared.

use std::time::Duration;

use crate::store::StoreFuture;

use super::gate::Limits;

/// What an acquisition got.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Acquired {
    /// A slot, to release after the call.
    Slot(i64),
    /// Nothing now: try again after this long.
    Wait(Duration),
}

/// Provider limits kept where every node sees them.
pub(crate) trait SharedLimits: Send + Sync + 'static {
    /// Takes a slot of `provider` and `tokens` of its budgets for one call that will not
    /// outlast `hold`, or says how long to wait.
    fn acquire<'a>(
        &'a self,
        provider: &'a str,
        limits: Limits,
        tokens: u32,
        hold: Duration,
    ) -> StoreFuture<'a, Acquired>;
    /// Gives a slot back.
    fn release<'a>(&'a self, provider: &'a str, slot: i64) -> StoreFuture<'a, ()>;
    /// Pauses `provider` for every node until `until` (microseconds since the epoch).
    fn pause<'a>(&'a self, provider: &'a str, until: i64) -> StoreFuture<'a, ()>;
}
