//! Waiting, the one way every part of the mock waits for its configured latencies.

use std::time::Duration;

/// Sleeps, unless there is nothing to wait for (a zero sleep still yields to the scheduler).
pub(crate) async fn sleep(duration: Duration) {
    if !duration.is_zero() {
        tokio::time::sleep(duration).await;
    }
}
