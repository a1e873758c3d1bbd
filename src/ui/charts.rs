//! The overview's charts: jobs finished (completed and failed), queue wait and run time, per
//! minute over the last hour and per hour over the last day, drawn as inline SVG by the
//! server (no script draws them, so the CSP's `script-src 'self'` and the overview's refresh
//! are all they need).
//!
//! They read the store's roll-up of finished jobs ([`Dashboard::minutes`]: one row per
//! application and minute, written by [`super::rollup`] once a minute has ended), never the
//! jobs: a day is at most 1,440 rows per application, whatever the number of jobs. An hour
//! sums its minutes: counts and times add up, the longest wait is the longest of the
//! minutes'. Times are a job's last attempt: queue wait from its creation to that attempt's
//! start, run time from there to its end.
//!
//! [`Dashboard::minutes`]: crate::store::Dashboard::minutes

use serde::Serialize;

use crate::store::{MINUTE_MICROS, MinuteFigures, minute_of, rfc3339};

/// The drawing's width and height, in the SVG's own units (it is stretched to its box).
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 120.0;
const HOUR: i64 = 60 * MINUTE_MICROS;

/// One period's buckets: where they start, how wide they are, how many.
#[derive(Clone, Copy)]
struct Period {
    start: i64,
    width: i64,
    count: usize,
}

impl Period {
    /// The 60 minutes up to the end of the one `now` is in (that one, not rolled up yet,
    /// is empty until a little after it ends).
    fn last_hour(now: i64) -> Self {
        let end = minute_of(now) + MINUTE_MICROS;
        Self {
            start: end - HOUR,
            width: MINUTE_MICROS,
            count: 60,
        }
    }

    /// The 24 hours up to the end of the one `now` is in.
    fn last_day(now: i64) -> Self {
        let end = now.div_euclid(HOUR) * HOUR + HOUR;
        Self {
            start: end - 24 * HOUR,
            width: HOUR,
            count: 24,
        }
    }

    fn bucket(&self, minute: i64) -> Option<usize> {
        let i = (minute - self.start).div_euclid(self.width);
        usize::try_from(i).ok().filter(|i| *i < self.count)
    }

    /// `HH:MM` (UTC) of the start of bucket `i`.
    fn label(&self, i: usize) -> String {
        let at = rfc3339(self.start + self.width * i as i64);
        at.get(11..16).unwrap_or_default().to_owned()
    }
}

/// The figures of one bucket, summed over applications and minutes.
#[derive(Clone, Copy, Default)]
struct Bucket {
    completed: i64,
    failed: i64,
    ran: i64,
    wait_total: i64,
    wait_max: i64,
    run_total: i64,
    run_max: i64,
}

impl Bucket {
    fn add(&mut self, m: &MinuteFigures) {
        self.completed += m.completed;
        self.failed += m.failed;
        self.ran += m.ran;
        self.wait_total += m.wait_total;
        self.wait_max = self.wait_max.max(m.wait_max);
        self.run_total += m.run_total;
        self.run_max = self.run_max.max(m.run_max);
    }

    /// The mean and the longest of a time, in milliseconds; `None` when no job ran.
    fn times(&self, total: i64, max: i64) -> Option<(f64, f64)> {
        (self.ran > 0).then(|| (total as f64 / self.ran as f64 / 1e3, max as f64 / 1e3))
    }
}

/// A chart as `live.html` draws it.
#[derive(Serialize)]
pub(crate) struct Chart {
    /// What it shows.
    title: &'static str,
    /// Its figures in words (the figure's caption, and what a screen reader says).
    summary: String,
    /// The value at the top of the drawing.
    top: String,
    /// The first bucket's start and the last's, under it.
    begins: String,
    ends: String,
    /// The bars: completed under failed (throughput); the mean over the longest (times).
    bars: Vec<Bar>,
    /// What each colour is.
    legend: Vec<Legend>,
}

/// A rectangle, with the text a pointer over it shows.
#[derive(Serialize)]
struct Bar {
    x: f64,
    y: f64,
    w: f64,
    h: f64,
    class: &'static str,
    tip: String,
}

#[derive(Serialize)]
struct Legend {
    class: &'static str,
    label: &'static str,
}

/// The six charts: throughput, queue wait and run time, for the last hour (by minute) and
/// the last day (by hour), from `minutes` (those of the last day at least), at `now`.
pub(crate) fn charts(minutes: &[MinuteFigures], now: i64) -> Vec<Chart> {
    let mut charts = Vec::with_capacity(6);
    for (period, unit) in [
        (Period::last_hour(now), "minute"),
        (Period::last_day(now), "hour"),
    ] {
        let mut buckets = vec![Bucket::default(); period.count];
        for m in minutes {
            if let Some(i) = period.bucket(m.minute) {
                buckets[i].add(m);
            }
        }
        charts.push(throughput(&period, &buckets, unit));
        charts.push(times(&period, &buckets, unit, Time::Wait));
        charts.push(times(&period, &buckets, unit, Time::Run));
    }
    charts
}

fn throughput(period: &Period, buckets: &[Bucket], unit: &str) -> Chart {
    let top = buckets
        .iter()
        .map(|b| b.completed + b.failed)
        .max()
        .unwrap_or(0)
        .max(1);
    let w = WIDTH / buckets.len() as f64;
    let scale = HEIGHT / top as f64;
    let mut bars = Vec::new();
    for (i, b) in buckets.iter().enumerate() {
        let x = w * i as f64;
        let tip = format!(
            "{}: {} completed, {} failed",
            period.label(i),
            b.completed,
            b.failed
        );
        let done = b.completed as f64 * scale;
        let failed = b.failed as f64 * scale;
        if b.completed > 0 {
            let y = HEIGHT - done;
            bars.push(bar(x, y, w, done, "completed", tip.clone()));
        }
        if b.failed > 0 {
            let y = HEIGHT - done - failed;
            bars.push(bar(x, y, w, failed, "failed", tip));
        }
    }
    let (completed, failed) = buckets
        .iter()
        .fold((0, 0), |(c, f), b| (c + b.completed, f + b.failed));
    Chart {
        title: if unit == "minute" {
            "Jobs finished per minute, last hour"
        } else {
            "Jobs finished per hour, last day"
        },
        summary: format!("{completed} completed, {failed} failed"),
        top: format!("{top} per {unit}"),
        begins: period.label(0),
        ends: period.label(period.count - 1),
        bars,
        legend: vec![
            Legend {
                class: "completed",
                label: "completed",
            },
            Legend {
                class: "failed",
                label: "failed",
            },
        ],
    }
}

fn bar(x: f64, y: f64, w: f64, h: f64, class: &'static str, tip: String) -> Bar {
    // A hair of space between bars; a tiny bar is still a visible one.
    Bar {
        x: round(x + w * 0.1),
        y: round(y.min(HEIGHT - 1.0)),
        w: round(w * 0.8),
        h: round(h.max(1.0)),
        class,
        tip,
    }
}

/// Which time a chart shows.
#[derive(Clone, Copy)]
enum Time {
    Wait,
    Run,
}

fn times(period: &Period, buckets: &[Bucket], unit: &str, time: Time) -> Chart {
    let figures: Vec<Option<(f64, f64)>> = buckets
        .iter()
        .map(|b| match time {
            Time::Wait => b.times(b.wait_total, b.wait_max),
            Time::Run => b.times(b.run_total, b.run_max),
        })
        .collect();
    let top = figures
        .iter()
        .flatten()
        .map(|(_, max)| *max)
        .fold(0.0, f64::max);
    let scale = if top > 0.0 { HEIGHT / top } else { 0.0 };
    let w = WIDTH / buckets.len() as f64;
    let mut bars = Vec::new();
    for (i, figure) in figures.iter().enumerate() {
        let Some((mean, max)) = *figure else {
            continue;
        };
        let x = w * i as f64;
        let tip = format!(
            "{}: mean {}, longest {}",
            period.label(i),
            millis(mean),
            millis(max)
        );
        bars.push(bar(
            x,
            HEIGHT - max * scale,
            w,
            max * scale,
            "max",
            tip.clone(),
        ));
        bars.push(bar(x, HEIGHT - mean * scale, w, mean * scale, "mean", tip));
    }
    let ran: i64 = buckets.iter().map(|b| b.ran).sum();
    let (total, longest) = buckets.iter().fold((0, 0), |(t, m), b| match time {
        Time::Wait => (t + b.wait_total, m.max(b.wait_max)),
        Time::Run => (t + b.run_total, m.max(b.run_max)),
    });
    let summary = if ran == 0 {
        "no job finished".to_owned()
    } else {
        let mean = total as f64 / ran as f64 / 1e3;
        format!(
            "mean {}, longest {}",
            millis(mean),
            millis(longest as f64 / 1e3)
        )
    };
    let what = match time {
        Time::Wait => "Queue wait",
        Time::Run => "Run time",
    };
    Chart {
        title: match (what, unit) {
            ("Queue wait", "minute") => "Queue wait per minute, last hour",
            ("Queue wait", _) => "Queue wait per hour, last day",
            (_, "minute") => "Run time per minute, last hour",
            _ => "Run time per hour, last day",
        },
        summary,
        top: millis(top),
        begins: period.label(0),
        ends: period.label(period.count - 1),
        bars,
        legend: vec![
            Legend {
                class: "mean",
                label: "mean",
            },
            Legend {
                class: "max",
                label: "longest",
            },
        ],
    }
}

/// Milliseconds as a person reads them: `850 ms`, `3.2 s`, `4.5 min`.
fn millis(ms: f64) -> String {
    if ms < 1000.0 {
        format!("{ms:.0} ms")
    } else if ms < 60_000.0 {
        format!("{:.1} s", ms / 1e3)
    } else {
        format!("{:.1} min", ms / 60e3)
    }
}

fn round(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn minute(at: i64, completed: i64, failed: i64, wait_ms: i64) -> MinuteFigures {
        MinuteFigures {
            application_id: "echo".into(),
            minute: at,
            completed,
            failed,
            ran: completed + failed,
            wait_total: wait_ms * 1000 * (completed + failed),
            wait_max: wait_ms * 1000,
            run_total: 0,
            run_max: 0,
        }
    }

    #[test]
    fn minutes_fill_the_hour_by_minute_and_the_day_by_hour() {
        let now = 1_800_000_000_000_000 + 30_000_000;
        let last = minute_of(now) - MINUTE_MICROS;
        let minutes = [
            minute(last, 4, 1, 200),
            minute(last - MINUTE_MICROS, 2, 0, 2000),
            minute(last - 3 * HOUR, 10, 0, 50),
        ];
        let drawn = charts(&minutes, now);
        assert_eq!(drawn.len(), 6);
        // The hour: two minutes with jobs, the last one stacked (completed, then failed).
        assert_eq!(drawn[0].summary, "6 completed, 1 failed");
        assert_eq!(drawn[0].bars.len(), 3);
        assert_eq!(drawn[0].top, "5 per minute");
        assert_eq!(drawn[1].summary, "mean 714 ms, longest 2.0 s");
        // The day: all three minutes.
        assert_eq!(drawn[3].summary, "16 completed, 1 failed");
        assert_eq!(drawn[3].top, "10 per hour");
        assert_eq!(drawn[5].summary, "mean 0 ms, longest 0 ms");
        assert_eq!(charts(&[], now)[2].summary, "no job finished");
    }
}
