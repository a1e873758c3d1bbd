//! The loop of a leased worker, shared by the engine's dispatcher (jobs) and the files'
//! extraction worker: claim at most as many items as there are free slots (so a node never
//! holds leases it has no room to work on), start each one holding a slot until it ends, and
//! when a claim came back short of what was asked, wait for a wake-up, the poll interval or
//! shutdown before claiming again.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, watch};
use tokio::task::JoinSet;

/// How a worker paces its claims.
pub(crate) struct Pace<'a> {
    /// Items worked at once at most.
    pub(crate) slots: usize,
    /// Items claimed in one call at most.
    pub(crate) max_claim: usize,
    /// How long to wait for a wake-up before claiming again anyway.
    pub(crate) poll_interval: Duration,
    /// Signalled when there may be work.
    pub(crate) wake: &'a Notify,
}

/// Claims with `claim(n)` and starts each item with `start(item)` in `tasks`, until
/// `shutdown` turns true (or its sender is dropped). `claim` reports its own errors and
/// answers what it got (nothing, after an error).
pub(crate) async fn run<T, C, CF, S, SF>(
    pace: Pace<'_>,
    tasks: &mut JoinSet<()>,
    shutdown: &mut watch::Receiver<bool>,
    mut claim: C,
    mut start: S,
) where
    C: FnMut(usize) -> CF,
    CF: Future<Output = Vec<T>>,
    S: FnMut(T) -> SF,
    SF: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(pace.slots));
    while !*shutdown.borrow() {
        while tasks.try_join_next().is_some() {}
        let free = slots.available_permits();
        if free == 0 {
            tokio::select! {
                permit = slots.clone().acquire_owned() => drop(permit),
                _ = shutdown.changed() => break,
            }
            continue;
        }
        let want = free.min(pace.max_claim.max(1));
        let claimed = claim(want).await;
        let full = claimed.len() == want;
        for item in claimed {
            let Ok(permit) = slots.clone().acquire_owned().await else {
                return;
            };
            let work = start(item);
            tasks.spawn(async move {
                work.await;
                drop(permit);
            });
        }
        if full {
            continue;
        }
        tokio::select! {
            _ = pace.wake.notified() => {}
            _ = tokio::time::sleep(pace.poll_interval) => {}
            _ = shutdown.changed() => break,
        }
    }
}
