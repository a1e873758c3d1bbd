//! The task that rolls finished jobs up into the per-minute figures the overview's charts
//! draw ([`Dashboard::roll_up`]). Every node runs it: a minute is written once whoever rolls
//! it up first, so nodes need no leader, and a node that stops leaves the others to it.
//!
//! It wakes every [`EVERY`] and rolls up the minutes that ended at least [`LAG`] ago (an
//! outcome stamped with the minute's last second may still be committing, and nodes' clocks
//! differ a little). Nothing here touches the path of a claim or a finish.
//!
//! [`Dashboard::roll_up`]: crate::store::Dashboard::roll_up

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::report::Chain;
use crate::store::{Store, minute_of, now_micros};

/// How often the task wakes.
const EVERY: Duration = Duration::from_secs(15);
/// How long after a minute has ended it is rolled up.
const LAG: i64 = 10_000_000;

/// Rolls up until `stop` turns true.
pub(crate) async fn run(store: Arc<dyn Store>, mut stop: watch::Receiver<bool>) {
    while !*stop.borrow() {
        let until = minute_of(now_micros() - LAG);
        match store.dashboard().roll_up(until).await {
            Ok(0) => {}
            Ok(rows) => tracing::debug!(rows, "finished jobs rolled up"),
            Err(e) => tracing::warn!(error = %Chain(&e), "cannot roll up finished jobs"),
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stop.changed() => {}
        }
    }
}
