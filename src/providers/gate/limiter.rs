//! `max_concurrency = "auto"`: the limit that finds a model server's knee by itself.
//!
//! A TCP Vegas estimator, as Netflix's concurrency-limits library applies it to services. Past
//! its knee a server (vLLM beyond its batch, llama.cpp beyond its slots) queues requests
//! inside itself: throughput stays flat and latency grows. Vegas reads that queue from the
//! latency alone: with `rtt_noload` the fastest call seen and `rtt` the latest round trip's,
//! `limit × (1 − rtt_noload / rtt)` calls are queued at the server. While that queue is short
//! (at most `log10(limit)`), the limit grows fast (by `6·log10(limit)`); under `3·log10(limit)`
//! slowly (by `log10(limit)`); over `6·log10(limit)` it shrinks (by `log10(limit)`). A call
//! that the server refused for load (429, 503, 529) or that timed out cuts it by a tenth, once
//! per round trip (refusals of calls sent before the last cut do not cut again). A
//! limit nobody fills (fewer than half its slots used and nobody waiting) learns nothing and
//! stays. The limit decides once per round trip, on the average latency of as many answers as
//! the limit, all of calls sent since the last decision (as Netflix's `WindowedLimit` feeds
//! its limits): calls sent before answer for the limit before it, and a single answer says
//! little (the first calls sent into an empty server queue are fast whatever the limit, so
//! deciding on each one overshoots).
//!
//! Latency is taken per generated token when the server reports usage, so long and short
//! answers compare. The baseline is measured again every `~30 × limit` calls, the way BBR
//! probes its round-trip time: the limit is cut to a quarter until a few calls started after
//! the cut have finished, their fastest is the new baseline (rising by a quarter at most, in
//! case the quarter still queued), and the limit comes back. (Taking the baseline from calls
//! that queued would raise it with the queue, and the limit with it.)

use std::collections::VecDeque;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::Serialize;

/// How many changes of the limit [`AutoLimit::history`] keeps.
const HISTORY: usize = 32;

/// The "auto" limit of one provider.
#[derive(Debug)]
pub(crate) struct AutoLimit {
    min: usize,
    max: usize,
    limit: f64,
    /// The fastest latency (per token) seen since the last probe.
    rtt_noload: Option<Duration>,
    /// Calls until the baseline is measured again.
    probe_in: u64,
    /// A baseline measurement under way.
    probe: Option<Probe>,
    /// When the limit was last cut for a refusal: refusals of calls sent earlier were
    /// answered to the load before it, and do not cut again.
    cut_at: Option<Instant>,
    /// The answers of the round trip under way.
    round: Round,
    history: VecDeque<Change>,
    /// The limit last logged, to log only changes by much.
    logged: usize,
}

/// A baseline measurement: the limit is halved from `since`; calls started after it count.
#[derive(Clone, Copy, Debug)]
struct Probe {
    since: Instant,
    fastest: Option<Duration>,
    /// Calls started after `since` still to hear from.
    left: usize,
}

/// The answers gathered for one decision: as many as the limit, from calls sent since the
/// last decision (earlier ones answer for the limit before it), averaged.
#[derive(Clone, Copy, Debug)]
struct Round {
    since: Instant,
    calls: u32,
    rtt: Duration,
}

impl Round {
    fn since(since: Instant) -> Self {
        Self {
            since,
            calls: 0,
            rtt: Duration::ZERO,
        }
    }
}

/// One change of the limit, for operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub(crate) struct Change {
    /// When, in milliseconds since the epoch.
    pub(crate) at_ms: u64,
    /// The new limit.
    pub(crate) limit: usize,
}

/// What one finished call tells the limiter.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    /// When the call was sent.
    pub(crate) started: Instant,
    /// When its answer ended.
    pub(crate) finished: Instant,
    /// Tokens it generated, when the server said.
    pub(crate) tokens: Option<u32>,
    /// Calls in flight when it finished (itself included).
    pub(crate) in_flight: usize,
    /// Whether callers were waiting for a slot.
    pub(crate) queued: bool,
    /// Whether the server refused it for load, or it timed out.
    pub(crate) dropped: bool,
}

impl AutoLimit {
    /// A limit between `min` and `max`, starting at `min`.
    pub(crate) fn new(min: usize, max: usize) -> Self {
        let min = min.max(1);
        let mut limit = Self {
            min,
            max: max.max(min),
            limit: min as f64,
            rtt_noload: None,
            probe_in: 0,
            probe: None,
            cut_at: None,
            round: Round::since(Instant::now()),
            history: VecDeque::with_capacity(HISTORY),
            logged: min,
        };
        limit.schedule_probe();
        limit.remember(min);
        limit
    }

    /// The limit now (a quarter of it while the baseline is measured).
    pub(crate) fn get(&self) -> usize {
        let limit = self.limit as usize;
        match self.probe {
            Some(_) => (limit / 4).max(self.min),
            None => limit,
        }
    }

    /// The lowest limit it may choose.
    pub(crate) fn min(&self) -> usize {
        self.min
    }

    /// The highest limit it may choose.
    pub(crate) fn max(&self) -> usize {
        self.max
    }

    /// The latest changes of the estimate (a probe's halving is not one), oldest first.
    pub(crate) fn history(&self) -> Vec<Change> {
        self.history.iter().copied().collect()
    }

    /// Learns from one finished call; answers the limit to enforce when it changed.
    pub(crate) fn sample(&mut self, provider: &str, sample: Sample) -> Option<usize> {
        let (enforced, estimate) = (self.get(), self.limit as usize);
        self.update(sample);
        let now = self.limit as usize;
        if now != estimate {
            self.remember(now);
        }
        let moved = now.abs_diff(self.logged) as f64 / self.logged as f64;
        if moved >= 0.25 {
            tracing::info!(
                provider,
                limit = now,
                was = self.logged,
                "auto concurrency moved"
            );
            self.logged = now;
        }
        (self.get() != enforced).then(|| self.get())
    }

    fn update(&mut self, sample: Sample) {
        let rtt = sample
            .finished
            .saturating_duration_since(sample.started)
            .checked_div(sample.tokens.unwrap_or(1).max(1))
            .unwrap_or_default()
            .max(Duration::from_nanos(1));
        if sample.dropped {
            if self.cut_at.is_none_or(|cut| sample.started >= cut) {
                self.set(self.limit * 0.9);
                self.cut_at = Some(sample.finished);
                self.round = Round::since(sample.finished);
            }
            return;
        }
        if let Some(probe) = &mut self.probe {
            if sample.started >= probe.since {
                probe.fastest = Some(probe.fastest.map_or(rtt, |f| f.min(rtt)));
                probe.left -= 1;
                if probe.left == 0 {
                    self.rtt_noload = match (self.rtt_noload, probe.fastest) {
                        (Some(before), Some(now)) => Some(now.min(before.mul_f64(1.25))),
                        (before, now) => now.or(before),
                    };
                    self.probe = None;
                    self.round = Round::since(sample.finished);
                    self.schedule_probe();
                }
            }
            return;
        }
        self.probe_in = self.probe_in.saturating_sub(1);
        if self.probe_in == 0 {
            self.probe = Some(Probe {
                since: sample.finished,
                fastest: None,
                left: (self.get() / 8).max(4),
            });
            return;
        }
        if self.rtt_noload.is_none_or(|noload| rtt < noload) {
            self.rtt_noload = Some(rtt);
        }
        let used = sample.in_flight * 2 >= self.get() || sample.queued;
        if !used || sample.started < self.round.since {
            return;
        }
        self.round.calls += 1;
        self.round.rtt += rtt;
        if (self.round.calls as f64) < self.limit {
            return;
        }
        // A round trip's worth of answers, all sent under the limit as it is now.
        let rtt = self.round.rtt / self.round.calls;
        self.round = Round::since(sample.finished);
        let noload = self.rtt_noload.unwrap_or(rtt);
        let limit = self.limit;
        let queue = (limit * (1.0 - noload.as_secs_f64() / rtt.as_secs_f64())).ceil();
        let log = limit.log10().max(1.0);
        let (threshold, alpha, beta) = (log, 3.0 * log, 6.0 * log);
        if queue <= threshold {
            self.set(limit + beta);
        } else if queue < alpha {
            self.set(limit + log);
        } else if queue > beta {
            self.set(limit - log);
        }
    }

    fn set(&mut self, limit: f64) {
        self.limit = limit.clamp(self.min as f64, self.max as f64);
    }

    fn schedule_probe(&mut self) {
        let calls = 30.0 * self.limit * (0.5 + fastrand::f64() / 2.0);
        self.probe_in = calls.max(100.0) as u64;
    }

    fn remember(&mut self, limit: usize) {
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        let at_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.history.push_back(Change { at_ms, limit });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that serves `capacity` calls at once in `service` each and queues the rest:
    /// a call finishing among `open` open calls took `service × max(1, open / capacity)`.
    /// Answers the median limit enforced over the last half of `calls` calls made at it.
    fn converge(limit: &mut AutoLimit, capacity: usize, service: Duration, calls: usize) -> usize {
        let mut now = Instant::now();
        let mut seen = Vec::new();
        for call in 0..calls {
            let open = limit.get();
            if call >= calls / 2 {
                seen.push(open);
            }
            let slowdown = (open as f64 / capacity as f64).max(1.0);
            let rtt = service.mul_f64(slowdown);
            // Calls finish one after another at the server's rate.
            now += rtt / open as u32;
            let sample = Sample {
                started: now - rtt,
                finished: now,
                tokens: Some(32),
                in_flight: open,
                queued: true,
                dropped: false,
            };
            limit.sample("test", sample);
        }
        seen.sort_unstable();
        seen[seen.len() / 2]
    }

    #[test]
    fn it_grows_to_the_knee_of_a_queueing_server_and_stays_near_it() {
        for capacity in [16, 64] {
            let mut limit = AutoLimit::new(1, 512);
            let end = converge(&mut limit, capacity, Duration::from_millis(100), 20_000);
            assert!(
                (capacity..=capacity * 2).contains(&end),
                "capacity {capacity}: limit {end}"
            );
        }
    }

    #[test]
    fn refusals_cut_it_and_bounds_hold() {
        let mut limit = AutoLimit::new(4, 40);
        converge(&mut limit, 1000, Duration::from_millis(100), 2_000);
        limit.probe = None;
        assert_eq!(limit.get(), 40, "an unloaded server takes the maximum");
        let now = Instant::now();
        let dropped = Sample {
            started: now - Duration::from_millis(100),
            finished: now,
            tokens: None,
            in_flight: 40,
            queued: true,
            dropped: true,
        };
        limit.sample("test", dropped);
        assert_eq!(limit.get(), 36);
        limit.sample("test", dropped);
        assert_eq!(
            limit.get(),
            36,
            "a call sent before the cut does not cut again"
        );
        for round in 1..=100 {
            let later = now + Duration::from_millis(200 * round);
            let dropped = Sample {
                started: later - Duration::from_millis(100),
                finished: later,
                ..dropped
            };
            limit.sample("test", dropped);
        }
        assert_eq!(limit.get(), 4);
        assert!(limit.history().len() > 2);
    }

    #[test]
    fn a_limit_nobody_fills_does_not_grow() {
        let mut limit = AutoLimit::new(10, 512);
        for _ in 0..1_000 {
            let now = Instant::now();
            let idle = Sample {
                started: now - Duration::from_millis(100),
                finished: now,
                tokens: None,
                in_flight: 2,
                queued: false,
                dropped: false,
            };
            limit.sample("test", idle);
        }
        assert_eq!(limit.get(), 10);
    }
}
