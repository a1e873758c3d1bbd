//! Provider limits that every node of a cluster shares: the contract the shared database
//! fulfils, and the per-minute budget arithmetic it shares with each process's own gate.
//!
//! On one node the provider's gate alone enforces its limits. When several nodes share one
//! PostgreSQL database they must share the limits too, or three nodes would send three times
//! `max_concurrency`. The shared database then implements [`SharedLimits`]: a call takes one
//! of the provider's `max_concurrency` slots there (leased, so a dead node's slots come back
//! by themselves), and its share of the per-minute budgets, unless a 429 seen by any node
//! paused the provider. The store owns these types because it keeps them; the providers'
//! gate uses them and the store never calls back up.

use std::time::Duration;

use super::StoreFuture;

/// Limits of one provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    /// Requests in flight at most.
    pub(crate) max_concurrency: usize,
    /// Requests per minute (0: unlimited).
    pub(crate) requests_per_minute: u32,
    /// Tokens per minute (0: unlimited).
    pub(crate) tokens_per_minute: u32,
}

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

/// A per-minute budget (of requests or of tokens), refilled continuously, at one moment. A
/// budget of 0 per minute is unlimited.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Budget {
    /// What a full minute allows.
    pub(crate) per_minute: f64,
    /// What may be spent now (negative after a correction overspent it).
    pub(crate) available: f64,
}

impl Budget {
    /// A full budget of `per_minute`.
    pub(crate) fn full(per_minute: u32) -> Self {
        let per_minute = f64::from(per_minute);
        Self {
            per_minute,
            available: per_minute,
        }
    }

    /// The level after `minutes` more of refilling, never above a full minute.
    pub(crate) fn refilled(self, minutes: f64) -> Self {
        let available = (self.available + minutes.max(0.0) * self.per_minute).min(self.per_minute);
        Self { available, ..self }
    }

    /// How long until `amount` is available: zero if it is now, and always zero when
    /// unlimited. A single amount larger than a whole minute waits for a full budget, not
    /// forever.
    pub(crate) fn wait_for(&self, amount: f64) -> Duration {
        if self.per_minute <= 0.0 {
            return Duration::ZERO;
        }
        let amount = amount.min(self.per_minute);
        if self.available >= amount {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((amount - self.available) * 60.0 / self.per_minute)
    }

    /// Takes `amount` (or gives it back, when negative); unlimited budgets keep no count.
    pub(crate) fn spend(&mut self, amount: f64) {
        if self.per_minute > 0.0 {
            self.available -= amount;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spent_budget_refills_over_the_minute() {
        let mut budget = Budget::full(60);
        budget.spend(60.0);
        assert_eq!(budget.wait_for(1.0), Duration::from_secs(1));
        assert!(budget.refilled(1.0 / 60.0).wait_for(1.0).is_zero());
        assert_eq!(
            budget.refilled(10.0).available,
            60.0,
            "never above a full minute"
        );
    }

    #[test]
    fn unlimited_budgets_never_wait() {
        let mut budget = Budget::full(0);
        budget.spend(1e9);
        assert!(budget.wait_for(1e9).is_zero());
    }
}
