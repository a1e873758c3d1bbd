//! Progress of a `batch run` on stderr: on a terminal, one live bar (indicatif) with the
//! counts, the rate and the time left; otherwise a plain line every few seconds, so a log
//! stays readable.
//!
//! The rate counts only rows finished since this command started (a resumed run does not
//! count what finished before), and the time left is the rows left at that rate.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::follow::Outcomes;

/// How often a plain progress line is printed at most.
const PLAIN_EVERY: Duration = Duration::from_secs(2);

/// The progress display of one run.
pub(super) struct Progress {
    /// The live bar, on a terminal.
    bar: Option<ProgressBar>,
    /// Rows in the input (the invalid ones count as failed from the start).
    total: u64,
    started: Instant,
    /// Rows done when this command started following.
    done_at_start: Option<u64>,
    /// When the last plain line was printed.
    last_line: Option<Instant>,
}

impl Progress {
    /// A display for `total` rows: a bar when stderr is a terminal.
    pub(super) fn new(total: u64) -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let style = ProgressStyle::with_template(
                "{spinner} {elapsed_precise} [{wide_bar:.cyan/blue}] {pos}/{len} {msg}",
            )
            .expect("the template is valid")
            .progress_chars("=> ");
            bar.set_style(style);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Self {
            bar,
            total,
            started: Instant::now(),
            done_at_start: None,
            last_line: None,
        }
    }

    /// Rows are being sent: `sent` of `to_send` so far.
    pub(super) fn sending(&mut self, sent: u64, to_send: u64) {
        let message = format!("sending: {sent} of {to_send} rows sent");
        match &self.bar {
            Some(bar) => bar.set_message(message),
            None => self.plain(message, sent == to_send),
        }
    }

    /// A line for the record (above the bar, on a terminal).
    pub(super) fn note(&self, line: &str) {
        match &self.bar {
            Some(bar) => bar.println(line),
            None => eprintln!("{line}"),
        }
    }

    /// Counts the rate from now on: what has finished so far did so before this command
    /// could see it.
    pub(super) fn rebase(&mut self, outcomes: &Outcomes) {
        self.started = Instant::now();
        self.done_at_start = Some(outcomes.done);
    }

    /// Shows the outcomes so far.
    pub(super) fn update(&mut self, outcomes: &Outcomes) {
        let done = outcomes.done;
        let at_start = *self.done_at_start.get_or_insert(done);
        let seconds = self.started.elapsed().as_secs_f64();
        let rate = (done - at_start) as f64 / seconds.max(0.001);
        let left = self.total - done;
        let eta = if left == 0 {
            "done".to_owned()
        } else if rate > 0.0 {
            format!(
                "{} left",
                short(Duration::from_secs_f64(left as f64 / rate))
            )
        } else {
            "time left unknown".to_owned()
        };
        let mut counts = format!(
            "{} completed, {} failed",
            outcomes.completed,
            outcomes.failed()
        );
        if outcomes.invalid > 0 {
            counts += &format!(", {} invalid", outcomes.invalid);
        }
        let rate = if rate < 10.0 {
            format!("{rate:.1}")
        } else {
            format!("{rate:.0}")
        };
        let counts = format!("{counts} · {rate} rows/s · {eta}");
        match &self.bar {
            Some(bar) => {
                bar.set_position(done);
                bar.set_message(counts);
            }
            None => self.plain(format!("{done}/{} done: {counts}", self.total), left == 0),
        }
    }

    /// Stops the live bar, leaving its last state on screen.
    pub(super) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.abandon();
        }
    }

    /// A plain line, unless one was printed less than [`PLAIN_EVERY`] ago (`last` always).
    fn plain(&mut self, line: String, last: bool) {
        let due = self.last_line.is_none_or(|at| at.elapsed() >= PLAIN_EVERY);
        if due || last {
            eprintln!("{line}");
            self.last_line = Some(Instant::now());
        }
    }
}

/// A duration to the second, as `1h02m`, `4m05s` or `12s`.
fn short(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}
