//! What a gate knows of its provider's health and budgets: the circuit breaker, the pause
//! backpressure imposed, the per-minute budgets of requests and tokens, and the counters and
//! recent calls operators read. Pure state, driven with explicit times (the gate's tests do so).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use super::figures::Recent;
use crate::providers::{ErrorClass, ProviderError};
use crate::store::Usage;
use crate::store::limits::{Budget, Limits};

/// Consecutive failures that open the circuit.
pub(super) const OPEN_AFTER: u32 = 5;
/// The first cooldown of an open circuit; it doubles on each failed probe.
pub(super) const FIRST_COOLDOWN: Duration = Duration::from_secs(2);
/// The longest cooldown.
const MAX_COOLDOWN: Duration = Duration::from_secs(60);
/// A 429 without Retry-After pauses the provider this long.
const DEFAULT_PAUSE: Duration = Duration::from_secs(1);
/// A 503 or 529 without Retry-After (a server whose queue is full) pauses it this long: long
/// enough for its queue to drain a little, short enough not to idle it.
const OVERLOADED_PAUSE: Duration = Duration::from_millis(250);

#[derive(Debug)]
pub(super) struct State {
    circuit: Circuit,
    paused_until: Option<Instant>,
    requests: Budget,
    tokens: Budget,
    /// When both budgets were last refilled.
    refilled: Instant,
    /// Failed calls by class.
    pub(super) errors: BTreeMap<&'static str, u64>,
    /// Calls made.
    pub(super) calls: u64,
    /// Prompt tokens the backend reported.
    pub(super) prompt_tokens: u64,
    /// Completion tokens the backend reported.
    pub(super) completion_tokens: u64,
    /// 429, 503 and 529 answers.
    pub(super) backpressure_events: u64,
    /// How long those answers paused the provider, in all (a pause in force counts whole).
    pub(super) paused: Duration,
    /// The latest calls, for the figures.
    pub(super) recent: Recent,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Circuit {
    Closed { failures: u32 },
    Open { until: Instant, cooldown: Duration },
    HalfOpen { probing: bool, cooldown: Duration },
}

/// How long backpressure pauses the provider: what it asked, else by its kind.
pub(super) fn pause_for(e: &ProviderError) -> Duration {
    e.retry_after().unwrap_or(match e.class() {
        ErrorClass::Overloaded => OVERLOADED_PAUSE,
        _ => DEFAULT_PAUSE,
    })
}

impl State {
    /// A healthy provider with full budgets.
    pub(super) fn new(limits: Limits) -> Self {
        Self {
            circuit: Circuit::Closed { failures: 0 },
            paused_until: None,
            requests: Budget::full(limits.requests_per_minute),
            tokens: Budget::full(limits.tokens_per_minute),
            refilled: Instant::now(),
            errors: BTreeMap::new(),
            calls: 0,
            prompt_tokens: 0,
            completion_tokens: 0,
            backpressure_events: 0,
            paused: Duration::ZERO,
            recent: Recent::new(),
        }
    }

    /// `closed`, `open` or `half_open`.
    pub(super) fn circuit_name(&self) -> &'static str {
        match self.circuit {
            Circuit::Closed { .. } => "closed",
            Circuit::Open { .. } => "open",
            Circuit::HalfOpen { .. } => "half_open",
        }
    }

    /// A probe call that will not report (it was cancelled): another may go.
    pub(super) fn forget_probe(&mut self) {
        if let Circuit::HalfOpen {
            cooldown,
            probing: true,
        } = self.circuit
        {
            self.circuit = Circuit::HalfOpen {
                probing: false,
                cooldown,
            };
        }
    }

    /// How long the pause a 429 or 503 imposed still runs.
    pub(super) fn pause_left(&self, now: Instant) -> Duration {
        self.paused_until
            .map_or(Duration::ZERO, |until| until.saturating_duration_since(now))
    }

    /// Whether [`Self::try_admit`] would let a call of `tokens` go now, changing nothing: no
    /// pause in force, the circuit closed or ready for a probe, and both budgets enough.
    pub(super) fn would_admit(&self, tokens: f64, now: Instant) -> bool {
        let circuit = match self.circuit {
            Circuit::Closed { .. } => true,
            Circuit::Open { until, .. } => until <= now,
            Circuit::HalfOpen { probing, .. } => !probing,
        };
        let minutes = now.saturating_duration_since(self.refilled).as_secs_f64() / 60.0;
        circuit
            && self.pause_left(now).is_zero()
            && self.requests.refilled(minutes).wait_for(1.0).is_zero()
            && self.tokens.refilled(minutes).wait_for(tokens).is_zero()
    }

    /// Zero if the call may go now (and takes its budgets), else how long to wait.
    pub(super) fn try_admit(&mut self, tokens: f64, now: Instant) -> Duration {
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

    /// Counts a call's result; backpressure pauses the provider, failures move the circuit.
    pub(super) fn record(
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
                    // A pause in force is only lengthened.
                    let from = self.paused_until.filter(|p| *p > now).unwrap_or(now);
                    self.backpressure_events += 1;
                    self.paused += until.saturating_duration_since(from);
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
