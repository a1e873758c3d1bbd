//! What a connection is doing, for its watchdog: how many requests it is handling, and, while
//! it handles none, whether a request head has begun to arrive and since when.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

/// What a connection is doing, for its watchdog.
pub(super) struct Activity {
    state: Mutex<Phase>,
}

#[derive(Clone, Copy, Debug)]
pub(super) struct Phase {
    /// Requests being handled.
    busy: usize,
    /// Whether the bytes of a request head have begun to arrive (or the connection is new)
    /// while no request is handled.
    head_started: bool,
    /// When the current phase began.
    since: Instant,
}

impl Activity {
    pub(super) fn new() -> Self {
        Self {
            // A new connection owes its first request head.
            state: Mutex::new(Phase {
                busy: 0,
                head_started: true,
                since: Instant::now(),
            }),
        }
    }

    fn phase(&self) -> std::sync::MutexGuard<'_, Phase> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a request is being handled (so what is written is its answer).
    pub(super) fn handling(&self) -> bool {
        self.phase().busy > 0
    }

    /// Bytes arrived: if the connection was idle, a request head has begun.
    pub(super) fn read(&self) {
        let mut phase = self.phase();
        if phase.busy == 0 && !phase.head_started {
            phase.head_started = true;
            phase.since = Instant::now();
        }
    }

    /// Resolves with the reason once the connection has been idle, or sending a head, too long.
    /// It sleeps until the deadline of the phase it saw and looks again, so requests coming
    /// and going never wake it: a busy connection is looked at once per shorter timeout.
    pub(super) async fn expired(
        &self,
        header_timeout: Duration,
        idle_timeout: Duration,
    ) -> &'static str {
        loop {
            let phase = *self.phase();
            let (limit, reason) = if phase.busy > 0 {
                let wait = header_timeout.min(idle_timeout);
                tokio::time::sleep(wait).await;
                continue;
            } else if phase.head_started {
                (header_timeout, "the request head did not arrive in time")
            } else {
                (idle_timeout, "idle keep-alive connection")
            };
            let deadline = phase.since + limit;
            if Instant::now() >= deadline {
                return reason;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// One request in progress on a connection; when dropped, the connection may go idle.
pub(super) struct Busy(Arc<Activity>);

impl Busy {
    pub(super) fn begin(activity: Arc<Activity>) -> Self {
        activity.phase().busy += 1;
        Self(activity)
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let mut phase = self.0.phase();
        phase.busy -= 1;
        if phase.busy == 0 {
            phase.head_started = false;
            phase.since = Instant::now();
        }
    }
}
