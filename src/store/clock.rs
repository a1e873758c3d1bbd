//! Where the store reads the time. A server uses the system clock; a test can hold a manual
//! one and move it by hand, so that leases lapse and retries come due without sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::now_micros;

/// The store's clock: microseconds since the Unix epoch.
#[derive(Clone, Debug, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A clock that moves only when told to ([`Clock::advance`]).
    Manual(Arc<AtomicI64>),
}

impl Clock {
    /// A manual clock showing the system time now.
    pub fn manual() -> Self {
        Self::Manual(Arc::new(AtomicI64::new(now_micros())))
    }

    /// The time now, in microseconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        match self {
            Self::System => now_micros(),
            Self::Manual(at) => at.load(Ordering::SeqCst),
        }
    }

    /// Moves a manual clock forward; the system clock cannot be moved.
    pub fn advance(&self, by: Duration) {
        match self {
            Self::System => panic!("the system clock cannot be moved"),
            Self::Manual(at) => {
                at.fetch_add(by.as_micros() as i64, Ordering::SeqCst);
            }
        }
    }
}
