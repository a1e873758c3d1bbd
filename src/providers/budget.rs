//! A per-minute budget (of requests or of tokens), refilled continuously: the arithmetic
//! shared by each process's gate and by the limits a cluster keeps in its database.

use std::time::Duration;

/// A budget's level at one moment. A budget of 0 per minute is unlimited.
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
