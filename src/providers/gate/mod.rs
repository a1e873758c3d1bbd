//! The gate in front of one provider: what keeps a model server busy without overloading it.
//!
//! Before a call, [`Gate::admit`] waits until all of these allow it: a concurrency slot
//! ([`slots`]: `max_concurrency`, counted across every application, handed out by priority and
//! in turns across organisations), the circuit (closed, or half-open with no probe out), the
//! pause a 429 or 503 imposed on the whole provider, and the request and token budgets per
//! minute. After the call, [`Admission::settle`] records what happened: backpressure (429,
//! 503, 529) pauses everyone until its Retry-After; repeated failures open the circuit, so
//! waiting jobs stop burning attempts on a dead server, and after a cooldown one probe decides
//! whether it closes again; real token usage corrects the estimate; with
//! `max_concurrency = "auto"`, the call's latency moves the limit ([`limiter`]).

mod limiter;
mod slots;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use super::{ErrorClass, ProviderError};
use crate::report::Chain;
use crate::store::limits::{Acquired, Budget, Limits, SharedLimits};
use crate::store::{Priority, Usage, now_micros};
pub(crate) use limiter::AutoLimit;
use limiter::{Change, Sample};
use slots::{Slot, Slots};

/// Consecutive failures that open the circuit.
const OPEN_AFTER: u32 = 5;
/// The first cooldown of an open circuit; it doubles on each failed probe.
const FIRST_COOLDOWN: Duration = Duration::from_secs(2);
/// The longest cooldown.
const MAX_COOLDOWN: Duration = Duration::from_secs(60);
/// A 429 without Retry-After pauses the provider this long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// A 503 or 529 without Retry-After (a server whose queue is full) pauses it this long: long
/// enough for its queue to drain a little, short enough not to idle it.
const OVERLOADED_PAUSE: Duration = Duration::from_millis(250);

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

#[derive(Debug)]
struct State {
    circuit: Circuit,
    paused_until: Option<Instant>,
    requests: Budget,
    tokens: Budget,
    /// When both budgets were last refilled.
    refilled: Instant,
    errors: BTreeMap<&'static str, u64>,
    calls: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { probing: bool, cooldown: Duration },
}

/// A call allowed through the gate; holds its concurrency slot until settled or dropped.
#[must_use = "settle the admission with the call's result"]
pub(crate) struct Admission {
    gate: Arc<Gate>,
    estimated_tokens: f64,
    shared_slot: Option<i64>,
    sent: Instant,
    _slot: Slot,
}

/// What operators see of a gate.
#[derive(Clone, Debug, Serialize)]
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
}

/// What operators see of an "auto" limit.
#[derive(Clone, Debug, Serialize)]
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
            state: Mutex::new(State {
                circuit: Circuit::Closed { failures: 0 },
                paused_until: None,
                requests: Budget::full(limits.requests_per_minute),
                tokens: Budget::full(limits.tokens_per_minute),
                refilled: Instant::now(),
                errors: BTreeMap::new(),
                calls: 0,
                prompt_tokens: 0,
                completion_tokens: 0,
            }),
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
            sent: Instant::now(),
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
            paused_for_ms: state
                .paused_until
                .filter(|until| *until > now)
                .map(|until| until.duration_since(now).as_millis() as u64),
            circuit: match state.circuit {
                Circuit::Closed { .. } => "closed",
                Circuit::Open { .. } => "open",
                Circuit::HalfOpen { .. } => "half_open",
            },
            calls: state.calls,
            errors: state.errors.clone(),
            prompt_tokens: state.prompt_tokens,
            completion_tokens: state.completion_tokens,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }
}

/// How long backpressure pauses the provider: what it asked, else by its kind.
fn pause_for(e: &ProviderError) -> Duration {
    e.retry_after().unwrap_or(match e.class() {
        ErrorClass::Overloaded => OVERLOADED_PAUSE,
        _ => DEFAULT_PAUSE,
    })
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl State {
    /// How long the pause a 429 or 503 imposed still runs.
    fn pause_left(&self, now: Instant) -> Duration {
        self.paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// Zero if the call may go now (and takes its budgets), else how long to wait.
    fn try_admit(&mut self, tokens: f64, now: Instant) -> Duration {
        if let Some(until) = self.paused_until.filter(|until| *until > now) {
            return until - now;
        }
        match self.circuit {
            Circuit::Open { until, .. } if until > now => return until - now,
            Circuit::Open { cooldown, .. } => {
                self.circuit = Circuit::HalfOpen {
                    probing: false,
                    cooldown,
                };
            }
            Circuit::HalfOpen { probing: true, .. } => return Duration::from_millis(50),
            _ => {}
        }
        let minutes = now.saturating_duration_since(self.refilled).as_secs_f64() / 60.0;
        self.requests = self.requests.refilled(minutes);
        self.tokens = self.tokens.refilled(minutes);
        self.refilled = now;
        let wait = self
            .requests
            .wait_for(1.0)
            .max(self.tokens.wait_for(tokens));
        if !wait.is_zero() {
            return wait;
        }
        self.requests.spend(1.0);
        self.tokens.spend(tokens);
        if let Circuit::HalfOpen { cooldown, .. } = self.circuit {
            self.circuit = Circuit::HalfOpen {
                probing: true,
                cooldown,
            };
        }
        Duration::ZERO
    }

    fn record(
        &mut self,
        provider: &str,
        result: Result<Option<Usage>, &ProviderError>,
        estimate: f64,
        now: Instant,
    ) {
        self.calls += 1;
        match result {
            Ok(usage) => {
                if let Some(usage) = usage {
                    let actual = f64::from(usage.prompt_tokens + usage.completion_tokens);
                    self.tokens.spend(actual - estimate);
                    self.prompt_tokens += u64::from(usage.prompt_tokens);
                    self.completion_tokens += u64::from(usage.completion_tokens);
                }
                if let Circuit::HalfOpen { .. } = self.circuit {
                    tracing::info!(provider, "provider answered the probe: circuit closed");
                }
                self.circuit = Circuit::Closed { failures: 0 };
            }
            Err(e) => {
                *self.errors.entry(e.class().as_str()).or_default() += 1;
                if e.class().is_backpressure() {
                    let pause = pause_for(e);
                    tracing::warn!(
                        provider,
                        class = e.class().as_str(),
                        pause_ms = pause.as_millis() as u64,
                        "provider asked us to wait: pausing every call to it"
                    );
                    let until = now + pause;
                    self.paused_until = Some(self.paused_until.map_or(until, |p| p.max(until)));
                } else if e.is_retryable() {
                    self.fail(provider, now);
                } else if let Circuit::HalfOpen { .. } = self.circuit {
                    // A fatal answer is still an answer: the server is up.
                    self.circuit = Circuit::Closed { failures: 0 };
                }
            }
        }
    }

    fn fail(&mut self, provider: &str, now: Instant) {
        self.circuit = match self.circuit {
            Circuit::Closed { failures } if failures + 1 < OPEN_AFTER => Circuit::Closed {
                failures: failures + 1,
            },
            Circuit::Closed { .. } => Circuit::Open {
                until: now + FIRST_COOLDOWN,
                cooldown: FIRST_COOLDOWN,
            },
            Circuit::HalfOpen { cooldown, .. } => {
                let cooldown = (cooldown * 2).min(MAX_COOLDOWN);
                Circuit::Open {
                    until: now + cooldown,
                    cooldown,
                }
            }
            open @ Circuit::Open { .. } => open,
        };
        if let Circuit::Open { cooldown, .. } = self.circuit {
            tracing::warn!(
                provider,
                cooldown_ms = cooldown.as_millis() as u64,
                "provider keeps failing: circuit open, calls wait"
            );
        }
    }
}

impl Admission {
    /// Records the call's result and frees the slot.
    ///
    /// In a cluster, a 429 or 503 pause is written to the shared database before this returns
    /// (the sooner the other nodes see it, the fewer calls they send into it), and the
    /// shared slot is given back.
    pub(crate) async fn settle(mut self, result: Result<Option<Usage>, &ProviderError>) {
        let gate = self.gate.clone();
        gate.state()
            .record(&gate.name, result, self.estimated_tokens, Instant::now());
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
        let mut state = lock(&self.gate.state);
        if let Circuit::HalfOpen {
            cooldown,
            probing: true,
        } = state.circuit
        {
            state.circuit = Circuit::HalfOpen {
                probing: false,
                cooldown,
            };
        }
        drop(state);
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
