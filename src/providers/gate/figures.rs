//! The figures operators compare with the model server's own (`vllm bench serve`'s words:
//! TTFT, E2EL, request and token throughput), over a recent window: the last
//! [`WINDOW_CALLS`] calls that ended within [`WINDOW_AGE`].
//!
//! Recording runs once per model call under the gate's state mutex, so it is O(1): a call
//! becomes one fixed-size sample in a ring. Means, percentiles and throughputs are computed
//! only when the view is read.

use std::time::{Duration, Instant};

use serde::Serialize;

use crate::store::Usage;

/// The window holds at most this many calls, the latest...
pub(super) const WINDOW_CALLS: usize = 1024;
/// ...and none that ended longer ago than this.
pub(super) const WINDOW_AGE: Duration = Duration::from_secs(300);

/// One call through the gate, as its admission saw it.
#[derive(Clone, Copy, Debug)]
pub(super) struct Call {
    /// When it asked the gate.
    pub(super) asked: Instant,
    /// When the gate let it through (slot, pause, budgets, shared slot all given).
    pub(super) sent: Instant,
    /// When a stream's first piece arrived; `None` for a call that did not stream.
    pub(super) first_piece: Option<Instant>,
    /// When its answer or its failure was complete.
    pub(super) ended: Instant,
    /// Whether it succeeded.
    pub(super) ok: bool,
    /// Tokens the backend reported.
    pub(super) usage: Option<Usage>,
}

/// A call in the ring: times in microseconds (a `u32` holds 71 minutes).
#[derive(Clone, Copy)]
struct Sample {
    ended: Instant,
    queue_wait_us: u32,
    ttft_us: Option<u32>,
    e2el_us: u32,
    ok: bool,
    usage: Usage,
}

impl Sample {
    fn sent(&self) -> Instant {
        self.ended - Duration::from_micros(self.e2el_us.into())
    }
}

/// The latest calls, oldest overwritten first.
pub(super) struct Recent {
    samples: Vec<Sample>,
    /// Where the next sample goes once the ring is full.
    next: usize,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A gate's debug line would otherwise carry a thousand samples.
        write!(f, "Recent {{ calls: {} }}", self.samples.len())
    }
}

/// The recent window as operators see it.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct RecentView {
    /// Calls in the window, answered or failed.
    pub(crate) calls: usize,
    /// Of those, the ones that succeeded (vLLM's "successful requests").
    pub(crate) completed: usize,
    /// Seconds from the earliest of them being sent to now: what the throughputs divide by.
    pub(crate) duration_s: f64,
    /// Completed calls per second.
    pub(crate) request_throughput: f64,
    /// Prompt tokens per second, as the backend reported them.
    pub(crate) input_token_throughput: f64,
    /// Completion tokens per second.
    pub(crate) output_token_throughput: f64,
    /// Both per second.
    pub(crate) total_token_throughput: f64,
    /// From asking the gate to being let through, for every call in the window.
    pub(crate) queue_wait_ms: Option<Spread>,
    /// From being let through to a stream's first piece, for completed streamed calls only;
    /// `null` when none streamed.
    pub(crate) ttft_ms: Option<Spread>,
    /// From being let through to the whole answer (end-to-end latency), for completed calls.
    pub(crate) e2el_ms: Option<Spread>,
}

/// Mean and percentiles of some durations, in milliseconds; percentiles interpolate between
/// the nearest samples, as numpy and so `vllm bench serve` compute them.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub(crate) struct Spread {
    pub(crate) mean: f64,
    /// The median.
    pub(crate) p50: f64,
    pub(crate) p99: f64,
}

impl Recent {
    /// An empty window, its room taken once.
    pub(super) fn new() -> Self {
        Self {
            samples: Vec::with_capacity(WINDOW_CALLS),
            next: 0,
        }
    }

    /// Adds a call to the window, pushing the oldest out once it is full.
    pub(super) fn record(&mut self, call: Call) {
        let sample = Sample {
            ended: call.ended,
            queue_wait_us: micros(call.sent - call.asked),
            ttft_us: call.first_piece.map(|first| micros(first - call.sent)),
            e2el_us: micros(call.ended - call.sent),
            ok: call.ok,
            usage: call.usage.unwrap_or_default(),
        };
        if self.samples.len() < WINDOW_CALLS {
            self.samples.push(sample);
        } else {
            self.samples[self.next] = sample;
            self.next = (self.next + 1) % WINDOW_CALLS;
        }
    }

    /// The window's figures as of `now`.
    pub(super) fn view(&self, now: Instant) -> RecentView {
        let window: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| now.saturating_duration_since(s.ended) <= WINDOW_AGE)
            .collect();
        let completed = || window.iter().filter(|s| s.ok);
        let duration = window.iter().map(|s| s.sent()).min().map_or(0.0, |first| {
            now.saturating_duration_since(first).as_secs_f64()
        });
        let per_second = |n: u64| {
            if duration > 0.0 {
                n as f64 / duration
            } else {
                0.0
            }
        };
        let input: u64 = completed().map(|s| u64::from(s.usage.prompt_tokens)).sum();
        let output: u64 = completed()
            .map(|s| u64::from(s.usage.completion_tokens))
            .sum();
        let count = completed().count();
        RecentView {
            calls: window.len(),
            completed: count,
            duration_s: round(duration),
            request_throughput: round(per_second(count as u64)),
            input_token_throughput: round(per_second(input)),
            output_token_throughput: round(per_second(output)),
            total_token_throughput: round(per_second(input + output)),
            queue_wait_ms: spread(window.iter().map(|s| s.queue_wait_us).collect()),
            ttft_ms: spread(completed().filter_map(|s| s.ttft_us).collect()),
            e2el_ms: spread(completed().map(|s| s.e2el_us).collect()),
        }
    }
}

/// `d` in whole microseconds, saturating.
fn micros(d: Duration) -> u32 {
    u32::try_from(d.as_micros()).unwrap_or(u32::MAX)
}

/// The mean, median and 99th percentile of `us` (microseconds) in milliseconds; `None`
/// without samples.
fn spread(mut us: Vec<u32>) -> Option<Spread> {
    if us.is_empty() {
        return None;
    }
    us.sort_unstable();
    let mean = us.iter().map(|&u| u64::from(u)).sum::<u64>() as f64 / us.len() as f64;
    let ms = |us: f64| round(us / 1000.0);
    Some(Spread {
        mean: ms(mean),
        p50: ms(percentile(&us, 50.0)),
        p99: ms(percentile(&us, 99.0)),
    })
}

/// The `p`th percentile of `sorted`, interpolated linearly between the nearest ranks.
fn percentile(sorted: &[u32], p: f64) -> f64 {
    let rank = p / 100.0 * (sorted.len() - 1) as f64;
    let (low, high) = (rank.floor() as usize, rank.ceil() as usize);
    let (a, b) = (f64::from(sorted[low]), f64::from(sorted[high]));
    a + (b - a) * (rank - low as f64)
}

/// Three decimals: microseconds in milliseconds, and no noise in rates.
fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(start: Instant, queue_ms: u64, e2el_ms: u64, ok: bool) -> Call {
        let sent = start + Duration::from_millis(queue_ms);
        Call {
            asked: start,
            sent,
            first_piece: None,
            ended: sent + Duration::from_millis(e2el_ms),
            ok,
            usage: Some(Usage {
                prompt_tokens: 10,
                completion_tokens: 20,
            }),
        }
    }

    #[test]
    fn percentiles_interpolate_as_numpy_does() {
        assert_eq!(percentile(&[7], 99.0), 7.0);
        assert_eq!(percentile(&[1, 2, 3, 4], 50.0), 2.5);
        let hundred: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&hundred, 50.0), 50.5);
        assert!((percentile(&hundred, 99.0) - 99.01).abs() < 1e-9);
    }

    #[test]
    fn a_spread_is_in_milliseconds_and_none_without_samples() {
        assert_eq!(spread(Vec::new()), None);
        let spread = spread(vec![3000, 1000, 2000]).unwrap();
        assert_eq!(
            spread,
            Spread {
                mean: 2.0,
                p50: 2.0,
                p99: 2.98
            }
        );
    }

    #[test]
    fn the_window_keeps_the_latest_calls_only() {
        let start = Instant::now();
        let mut recent = Recent::new();
        for i in 0..WINDOW_CALLS as u64 + 10 {
            // The first ten are slow; the ring has pushed them out by the end.
            let e2el = if i < 10 { 1000 } else { 100 };
            recent.record(call(start + Duration::from_millis(i), 0, e2el, true));
        }
        let end = start + Duration::from_secs(2);
        let view = recent.view(end);
        assert_eq!(view.calls, WINDOW_CALLS);
        assert_eq!(view.e2el_ms.unwrap().p99, 100.0);
    }

    #[test]
    fn calls_older_than_the_window_age_leave_it() {
        let start = Instant::now();
        let mut recent = Recent::new();
        recent.record(call(start, 0, 100, true));
        let later = start + WINDOW_AGE + Duration::from_secs(1);
        recent.record(call(later, 0, 100, true));
        let view = recent.view(later + Duration::from_millis(100));
        assert_eq!(view.calls, 1);
        let gone = recent.view(later + WINDOW_AGE + Duration::from_secs(1));
        assert_eq!((gone.calls, gone.request_throughput), (0, 0.0));
        assert_eq!((gone.queue_wait_ms, gone.e2el_ms), (None, None));
    }

    #[test]
    fn throughputs_divide_completed_work_by_the_time_since_the_first_was_sent() {
        let start = Instant::now();
        let mut recent = Recent::new();
        // Four calls, one failed, sent over the first second, each 1 s long.
        for i in 0..4 {
            let asked = start + Duration::from_millis(250 * i);
            recent.record(call(asked, 0, 1000, i != 3));
        }
        let view = recent.view(start + Duration::from_secs(2));
        assert_eq!((view.calls, view.completed), (4, 3));
        assert_eq!(view.duration_s, 2.0);
        assert_eq!(view.request_throughput, 1.5);
        assert_eq!(view.input_token_throughput, 15.0);
        assert_eq!(view.output_token_throughput, 30.0);
        assert_eq!(view.total_token_throughput, 45.0);
    }

    #[test]
    fn ttft_counts_streamed_calls_only_and_queue_wait_counts_every_call() {
        let start = Instant::now();
        let mut recent = Recent::new();
        recent.record(call(start, 40, 100, true));
        let mut streamed = call(start, 20, 100, true);
        streamed.first_piece = Some(streamed.sent + Duration::from_millis(30));
        recent.record(streamed);
        recent.record(call(start, 60, 5, false));
        let view = recent.view(start + Duration::from_secs(1));
        assert_eq!(view.ttft_ms.unwrap().p50, 30.0);
        assert_eq!(view.queue_wait_ms.unwrap().p50, 40.0);
        assert_eq!(
            view.e2el_ms.unwrap().mean,
            100.0,
            "failed calls are left out"
        );
    }
}
