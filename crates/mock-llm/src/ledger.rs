//! The counters behind `GET /stats`, kept under one lock so a snapshot is consistent.
//!
//! `early_after_429` is how a test proves a client honours `Retry-After`: every 429 the mock
//! sends opens a window from its sending plus a grace (for requests already on the wire)
//! to its retry-after deadline, and a chat request arriving inside any open window counts.
//! The mock cannot tell clients apart, so with several clients a 429 to one is a deadline
//! for all: a client that shares its backoff between workers passes.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use tokio::time::Instant;

use super::wire::Answer;

/// How many request bodies `recent` keeps.
pub const RECENT: usize = 50;

/// Requests arriving this soon after a 429 were sent before the client could read it.
pub const GRACE: Duration = Duration::from_millis(20);

/// The fault kinds, as `faults` names them.
pub const FAULT_KINDS: [&str; 8] = [
    "500",
    "503",
    "429",
    "hang",
    "malformed",
    "drop",
    "over_capacity",
    "queue_full",
];

/// What the mock has seen since it started or was last reset (`GET /stats`).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Stats {
    /// Chat requests received, whatever became of them.
    pub requests: u64,
    /// Chat requests answered with a whole completion or a whole stream.
    pub completed: u64,
    /// Requests being served now (not those queued for a slot).
    pub in_flight: u64,
    /// The most requests ever served at once.
    pub peak_in_flight: u64,
    /// Requests waiting for a slot now (`--capacity` with `--over-capacity queue`).
    pub queued: u64,
    /// The most requests ever waiting at once.
    pub peak_queued: u64,
    /// Requests whose client went away before they were answered: waiting for a slot, being
    /// served, mid-stream or held by a `hang` fault.
    pub abandoned: u64,
    /// Faults by kind: every one of [`FAULT_KINDS`], zero or not.
    pub faults: BTreeMap<String, u64>,
    /// Prompt tokens of completed requests.
    pub prompt_tokens: u64,
    /// Completion tokens of completed requests.
    pub completion_tokens: u64,
    /// Image parts received in well-formed requests.
    pub images: u64,
    /// Requests that arrived inside a 429's retry-after window (see the module docs).
    pub early_after_429: u64,
    /// The last [`RECENT`] request bodies as received, newest last.
    pub recent: Vec<Value>,
}

/// The live counters.
#[derive(Debug)]
pub struct Ledger {
    counts: Stats,
    recent: VecDeque<Value>,
    /// When each 429 whose window is still open was sent, oldest first.
    rate_limited_at: VecDeque<Instant>,
    retry_after: Duration,
    grace: Duration,
}

impl Ledger {
    /// Zeroed counters for a mock whose 429s ask for `retry_after`, counting requests that
    /// arrive more than `grace` after a 429 and before its end as early.
    pub fn new(retry_after: Duration, grace: Duration) -> Self {
        let faults = FAULT_KINDS.iter().map(|k| ((*k).to_owned(), 0)).collect();
        Self {
            counts: Stats {
                faults,
                ..Stats::default()
            },
            recent: VecDeque::with_capacity(RECENT),
            rate_limited_at: VecDeque::new(),
            retry_after,
            grace,
        }
    }

    /// A chat request arrived with this body.
    pub fn arrive(&mut self, body: Value, now: Instant) {
        self.counts.requests += 1;
        while let Some(&sent) = self.rate_limited_at.front() {
            if sent + self.retry_after > now {
                break;
            }
            self.rate_limited_at.pop_front();
        }
        // The oldest open window is the one most likely past its grace.
        if self
            .rate_limited_at
            .front()
            .is_some_and(|&sent| sent + self.grace <= now)
        {
            self.counts.early_after_429 += 1;
        }
        if self.recent.len() == RECENT {
            self.recent.pop_front();
        }
        self.recent.push_back(body);
    }

    /// A well-formed request carried this many image parts.
    pub fn images(&mut self, count: usize) {
        self.counts.images += count as u64;
    }

    /// A fault of this kind was served.
    pub fn fault(&mut self, kind: &str) {
        *self.counts.faults.entry(kind.to_owned()).or_default() += 1;
    }

    /// A 429 of this kind (`429` or `over_capacity`) was sent now.
    pub fn rate_limited(&mut self, kind: &str, now: Instant) {
        self.fault(kind);
        if !self.retry_after.is_zero() {
            self.rate_limited_at.push_back(now);
        }
    }

    /// A request started being served.
    pub fn enter(&mut self) {
        self.counts.in_flight += 1;
        self.counts.peak_in_flight = self.counts.peak_in_flight.max(self.counts.in_flight);
    }

    /// A request stopped being served; `answered` is false when its client went away first.
    pub fn leave(&mut self, answered: bool) {
        self.counts.in_flight = self.counts.in_flight.saturating_sub(1);
        if !answered {
            self.counts.abandoned += 1;
        }
    }

    /// A request started waiting for a slot.
    pub fn queue(&mut self) {
        self.counts.queued += 1;
        self.counts.peak_queued = self.counts.peak_queued.max(self.counts.queued);
    }

    /// A request stopped waiting: it got its slot, or (`answered` false) its client left.
    pub fn dequeue(&mut self, answered: bool) {
        self.counts.queued = self.counts.queued.saturating_sub(1);
        if !answered {
            self.counts.abandoned += 1;
        }
    }

    /// A request was answered in full.
    pub fn complete(&mut self, answer: &Answer) {
        self.counts.completed += 1;
        self.counts.prompt_tokens += answer.prompt_tokens;
        self.counts.completion_tokens += answer.completion_tokens;
    }

    /// Requests waiting for a slot now.
    pub fn queued(&self) -> u64 {
        self.counts.queued
    }

    /// The counters now.
    pub fn snapshot(&self) -> Stats {
        Stats {
            recent: self.recent.iter().cloned().collect(),
            ..self.counts.clone()
        }
    }

    /// Zeroes every counter and forgets past 429s. `in_flight` and `queued` are gauges, not
    /// counters: requests being served or waiting still are, and the peaks restart from them.
    pub fn reset(&mut self) {
        let (in_flight, queued) = (self.counts.in_flight, self.counts.queued);
        *self = Self::new(self.retry_after, self.grace);
        self.counts.in_flight = in_flight;
        self.counts.peak_in_flight = in_flight;
        self.counts.queued = queued;
        self.counts.peak_queued = queued;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_arrivals_between_the_grace_and_the_deadline_are_early() {
        let mut ledger = Ledger::new(Duration::from_secs(1), GRACE);
        let t0 = Instant::now();
        ledger.rate_limited("429", t0);
        ledger.arrive(Value::Null, t0 + Duration::from_millis(5));
        assert_eq!(ledger.snapshot().early_after_429, 0, "in transit");
        ledger.arrive(Value::Null, t0 + Duration::from_millis(50));
        assert_eq!(ledger.snapshot().early_after_429, 1, "too early");
        ledger.arrive(Value::Null, t0 + Duration::from_millis(1000));
        assert_eq!(ledger.snapshot().early_after_429, 1, "on time");
        assert_eq!(ledger.snapshot().faults["429"], 1);
        assert_eq!(ledger.snapshot().requests, 3);
    }

    #[test]
    fn recent_keeps_the_last_fifty_bodies_newest_last() {
        let mut ledger = Ledger::new(Duration::ZERO, GRACE);
        for i in 0..60 {
            ledger.arrive(Value::from(i), Instant::now());
        }
        let recent = ledger.snapshot().recent;
        assert_eq!(recent.len(), RECENT);
        assert_eq!(recent.first(), Some(&Value::from(10)));
        assert_eq!(recent.last(), Some(&Value::from(59)));
    }

    #[test]
    fn a_reset_zeroes_counters_but_keeps_requests_still_in_flight() {
        let mut ledger = Ledger::new(Duration::ZERO, GRACE);
        ledger.enter();
        ledger.enter();
        ledger.leave(true);
        ledger.queue();
        ledger.fault("500");
        ledger.reset();
        let stats = ledger.snapshot();
        assert_eq!((stats.in_flight, stats.peak_in_flight), (1, 1));
        assert_eq!((stats.queued, stats.peak_queued), (1, 1));
        assert_eq!(stats.faults["500"], 0);
        ledger.leave(false);
        ledger.dequeue(true);
        let stats = ledger.snapshot();
        assert_eq!((stats.in_flight, stats.queued, stats.abandoned), (0, 0, 1));
    }
}
