//! The gate in front of one provider: what keeps a model server busy without overloading it.
//!
//! Before a call, [`Gate::admit`] waits until all of these allow it: a concurrency slot
//! ([`slots`]: `max_concurrency`, counted across every application, handed out by priority and
//! in turns across organisations), the circuit (closed, or half-open with no probe out), the
//! pause a 429 or 503 imposed on the whole provider, and the request and token budgets per
//! minute. After the call, [`Admission::settle`] records what happened: backpressure (429,
//! 503, 529) pauses everyone until its Retry-After; repeated failures open the circuit, so
//! waiting jobs stop burning attempts on a dead server, and after a cooldown one probe decides
//! whether it closes again ([`state`] keeps all of that); real token usage corrects the
//! estimate; with `max_concurrency = "auto"`, the call's latency moves the limit ([`limiter`]);
//! its wait at the gate, time to first token and latency join the recent window ([`figures`]).

mod figures;
mod limiter;
mod room;
mod slots;
mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ErrorClass, ProviderError};
use crate::report::Chain;
use crate::store::limits::{Acquired, Limits, SharedLimits};
use crate::store::{Priority, Usage, now_micros};
use figures::{Call, RecentView};
pub(crate) use limiter::AutoLimit;
use limiter::{Change, Sample};
pub(crate) use room::Room;
use slots::{Slot, Slots};
use state::{State, pause_for};

/// The gate of one provider.
#[derive(Debug)]
pub(crate) struct Gate {
    name: String,
    /// The budgets, and the concurrency when it is fixed.
    limits: Limits,
    slots: Arc<Slots>,
    /// The limit that moves, for `max_concurrency = "auto"`.
    auto: Option<Mutex<AutoLimit>>,
    state: Mutex<State>,
    shared: Option<Shared>,
}

/// The cluster's share of the gate.
struct Shared {
    limits: Arc<dyn SharedLimits>,
    /// How long a slot may be held: the call's timeout and a margin.
    hold: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Shared {{ hold: {:?} }}", self.hold)
    }
}

/// A call allowed through the gate; holds its concurrency slot until settled or dropped.
#[must_use = "settle the admission with the call's result"]
pub(crate) struct Admission {
    gate: Arc<Gate>,
    estimated_tokens: f64,
    shared_slot: Option<i64>,
    /// When the call asked the gate.
    asked: Instant,
    /// When the gate let it through.
    sent: Instant,
    /// When a stream's first piece arrived.
    first_piece: Option<Instant>,
    _slot: Slot,
}

/// What operators see of a gate.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct GateView {
    /// Requests in flight now.
    pub(crate) in_flight: usize,
    /// Calls waiting for a slot on this node.
    pub(crate) waiting: usize,
    /// The concurrency limit now.
    pub(crate) max_concurrency: usize,
    /// With `max_concurrency = "auto"`: its bounds and its recent changes.
    pub(crate) auto: Option<AutoView>,
    /// Requests per minute allowed (0: unlimited).
    pub(crate) requests_per_minute: u32,
    /// Tokens per minute allowed (0: unlimited).
    pub(crate) tokens_per_minute: u32,
    /// Milliseconds until a 429 or 503 pause ends, if one is in force.
    pub(crate) paused_for_ms: Option<u64>,
    /// `closed`, `open` or `half_open`.
    pub(crate) circuit: &'static str,
    /// Calls made.
    pub(crate) calls: u64,
    /// Failed calls by class.
    pub(crate) errors: BTreeMap<&'static str, u64>,
    /// Prompt tokens reported by the backend.
    pub(crate) prompt_tokens: u64,
    /// Completion tokens reported by the backend.
    pub(crate) completion_tokens: u64,
    /// 429, 503 and 529 answers, and the pauses they imposed.
    pub(crate) backpressure: BackpressureView,
    /// Latencies and throughputs over the latest calls.
    pub(crate) recent: RecentView,
}

/// What operators see of the backpressure a provider applied, since the process started.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BackpressureView {
    /// 429, 503 and 529 answers.
    pub(crate) events: u64,
    /// Milliseconds they paused the provider, in all (a pause in force counts whole).
    pub(crate) paused_ms: u64,
}

/// What operators see of an "auto" limit.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct AutoView {
    /// The lowest limit it may choose.
    pub(crate) min: usize,
    /// The highest.
    pub(crate) max: usize,
    /// Its latest changes, oldest first.
    pub(crate) history: Vec<Change>,
}

impl Gate {
    /// A gate enforcing `limits` for the provider `name` in this process, and, when `shared`
    /// is given, across the cluster too (slots held at most `hold`). With `auto`, the
    /// concurrency limit is that limiter's, not `limits.max_concurrency`.
    pub(crate) fn new(
        name: String,
        limits: Limits,
        auto: Option<AutoLimit>,
        shared: Option<(Arc<dyn SharedLimits>, Duration)>,
    ) -> Arc<Self> {
        let limit = auto.as_ref().map_or(limits.max_concurrency, AutoLimit::get);
        Arc::new(Self {
            name,
            shared: shared.map(|(limits, hold)| Shared { limits, hold }),
            slots: Slots::new(limit),
            auto: auto.map(Mutex::new),
            state: Mutex::new(State::new(limits)),
            limits,
        })
    }

    /// Waits until a call estimated at `estimated_tokens`, for the organisation `lane` at
    /// `priority`, may be sent.
    pub(crate) async fn admit(
        self: &Arc<Self>,
        estimated_tokens: u32,
        lane: &str,
        priority: Priority,
    ) -> Admission {
        let asked = Instant::now();
        let slot = self.slots.acquire(lane, priority).await;
        let tokens = estimated_tokens;
        let estimated_tokens = f64::from(estimated_tokens);
        loop {
            let wait = self.state().try_admit(estimated_tokens, Instant::now());
            if wait.is_zero() {
                break;
            }
            tokio::time::sleep(wait).await;
        }
        let shared_slot = match &self.shared {
            Some(shared) => Some(self.admit_shared(shared, tokens).await),
            None => None,
        };
        // A 429 may have arrived here while the shared slot was being taken.
        loop {
            let pause = self.state().pause_left(Instant::now());
            if pause.is_zero() {
                break;
            }
            tokio::time::sleep(pause).await;
        }
        Admission {
            gate: self.clone(),
            estimated_tokens,
            shared_slot,
            asked,
            sent: Instant::now(),
            first_piece: None,
            _slot: slot,
        }
    }

    /// The concurrency limit now.
    fn limit(&self) -> usize {
        match &self.auto {
            Some(auto) => lock(auto).get(),
            None => self.limits.max_concurrency,
        }
    }

    /// Teaches the "auto" limit what a call's end says about the server's load.
    fn learn(&self, sent: Instant, result: Result<Option<Usage>, &ProviderError>) {
        let Some(auto) = &self.auto else { return };
        let (tokens, dropped) = match result {
            Ok(usage) => (usage.map(|u| u.completion_tokens), false),
            Err(e) if e.class().is_backpressure() || e.class() == ErrorClass::Timeout => {
                (None, true)
            }
            // Other failures say nothing of load, and a fast error would look like a fast call.
            Err(_) => return,
        };
        let sample = Sample {
            started: sent,
            finished: Instant::now(),
            tokens,
            in_flight: self.slots.held(),
            queued: self.slots.waiting() > 0,
            dropped,
        };
        if let Some(limit) = lock(auto).sample(&self.name, sample) {
            self.slots.set_limit(limit);
        }
    }

    /// Waits for a cluster-wide slot. While the shared database cannot be reached, nothing
    /// is sent: a limit that cannot be checked is not assumed to hold.
    async fn admit_shared(&self, shared: &Shared, tokens: u32) -> i64 {
        loop {
            let limits = Limits {
                max_concurrency: self.limit(),
                ..self.limits
            };
            let wait = match shared
                .limits
                .acquire(&self.name, limits, tokens, shared.hold)
                .await
            {
                Ok(Acquired::Slot(slot)) => return slot,
                Ok(Acquired::Wait(wait)) => wait,
                Err(e) => {
                    tracing::warn!(provider = %self.name, error = %Chain(&e), "cannot reach the shared limits");
                    Duration::from_millis(500)
                }
            };
            // Jitter spreads the nodes' retries.
            let wait = wait.clamp(Duration::from_millis(20), Duration::from_secs(1));
            tokio::time::sleep(wait.mul_f64(0.75 + fastrand::f64() / 2.0)).await;
        }
    }

    /// The gate as operators see it.
    pub(crate) fn view(&self) -> GateView {
        let now = Instant::now();
        let state = self.state();
        let auto = self.auto.as_ref().map(|auto| {
            let auto = lock(auto);
            AutoView {
                min: auto.min(),
                max: auto.max(),
                history: auto.history(),
            }
        });
        GateView {
            in_flight: self.slots.held(),
            waiting: self.slots.waiting(),
            max_concurrency: self.limit(),
            auto,
            requests_per_minute: self.limits.requests_per_minute,
            tokens_per_minute: self.limits.tokens_per_minute,
            paused_for_ms: Some(state.pause_left(now))
                .filter(|left| !left.is_zero())
                .map(|left| left.as_millis() as u64),
            circuit: state.circuit_name(),
            calls: state.calls,
            errors: state.errors.clone(),
            prompt_tokens: state.prompt_tokens,
            completion_tokens: state.completion_tokens,
            backpressure: BackpressureView {
                events: state.backpressure_events,
                paused_ms: state.paused.as_millis() as u64,
            },
            recent: state.recent.view(now),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Admission {
    /// Notes that a stream's first piece arrived now: the call's time to first token.
    pub(crate) fn first_piece(&mut self) {
        if self.first_piece.is_none() {
            self.first_piece = Some(Instant::now());
        }
    }

    /// Records the call's result and frees the slot.
    ///
    /// In a cluster, a 429 or 503 pause is written to the shared database before this returns
    /// (the sooner the other nodes see it, the fewer calls they send into it), and the
    /// shared slot is given back.
    pub(crate) async fn settle(mut self, result: Result<Option<Usage>, &ProviderError>) {
        let gate = self.gate.clone();
        let ended = Instant::now();
        {
            let mut state = gate.state();
            state.record(&gate.name, result, self.estimated_tokens, ended);
            state.recent.record(Call {
                asked: self.asked,
                sent: self.sent,
                first_piece: self.first_piece,
                ended,
                ok: result.is_ok(),
                usage: result.ok().flatten(),
            });
        }
        gate.learn(self.sent, result);
        let Some(shared) = &gate.shared else {
            return;
        };
        if let Some(e) = result.err().filter(|e| e.class().is_backpressure()) {
            let until = now_micros() + pause_for(e).as_micros() as i64;
            if let Err(e) = shared.limits.pause(&gate.name, until).await {
                tracing::warn!(provider = %gate.name, error = %Chain(&e), "cannot share a pause");
            }
        }
        if let Some(slot) = self.shared_slot.take()
            && let Err(e) = shared.limits.release(&gate.name, slot).await
        {
            tracing::warn!(provider = %gate.name, error = %Chain(&e),
                "cannot release a shared slot; it frees itself when its lease ends");
        }
    }
}

impl Drop for Admission {
    fn drop(&mut self) {
        // An admission dropped unsettled (a cancelled call) must not leave a probe hanging.
        lock(&self.gate.state).forget_probe();
        // Settled admissions gave their slot back already; this one was cancelled.
        if let (Some(slot), Some(shared)) = (self.shared_slot.take(), &self.gate.shared) {
            let (limits, name) = (shared.limits.clone(), self.gate.name.clone());
            tokio::spawn(async move {
                if let Err(e) = limits.release(&name, slot).await {
                    tracing::warn!(provider = %name, error = %Chain(&e),
                        "cannot release a shared slot; it frees itself when its lease ends");
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
