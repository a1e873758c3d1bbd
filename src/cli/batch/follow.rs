//! Following sent rows until every one has finished, gently: polling is not free when the
//! model server shares the machine, so the run never makes more than [`PER_SECOND`]
//! requests a second.
//!
//! - Batches: each batch's results route, read from the last cursor seen
//!   (`?after=<cursor>`), so each request carries only items that finished since the last.
//!   A later line for an item (after a `batch retry`) replaces the earlier one.
//! - Jobs (a server without the batch route): each unfinished job in turn, oldest first.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;

use super::progress::Progress;
use super::run::Interrupt;
use super::state::{Mode, State};
use crate::cli::remote::{Remote, refusal};

/// Requests a second at most while following.
const PER_SECOND: u32 = 4;

/// What became of a row.
#[derive(Clone, Debug, Default)]
pub(super) struct Outcome {
    /// `completed`, `failed`, `cancelled`, or `invalid` (never sent).
    pub(super) status: String,
    /// Its job, once sent.
    pub(super) job_id: Option<String>,
    /// The result's title.
    pub(super) title: Option<String>,
    /// The result's text.
    pub(super) suggestion: Option<String>,
    /// Why it failed.
    pub(super) error: Option<String>,
}

impl Outcome {
    /// A row that finished as a result line or a job object (`data`, `error`) says.
    fn of(status: &str, job_id: &str, item: &Value) -> Self {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        Self {
            status: status.to_owned(),
            job_id: Some(job_id.to_owned()),
            title: text(&item["data"]["title"]),
            suggestion: text(&item["data"]["suggestion"]),
            error: text(&item["error"]),
        }
    }

    /// A row that was not sent, or that the server refused, for `error`.
    pub(super) fn refused(status: &str, error: String) -> Self {
        Self {
            status: status.to_owned(),
            error: Some(error),
            ..Self::default()
        }
    }
}

/// Every row's outcome so far, with counts by status.
pub(super) struct Outcomes {
    /// By row (0-based); `None` until it has finished.
    pub(super) rows: Vec<Option<Outcome>>,
    /// How many rows have an outcome.
    pub(super) done: u64,
    /// How many of them completed.
    pub(super) completed: u64,
    /// How many of them were invalid (never sent).
    pub(super) invalid: u64,
}

impl Outcomes {
    /// No outcome yet for `n` rows.
    pub(super) fn new(n: usize) -> Self {
        Self {
            rows: vec![None; n],
            done: 0,
            completed: 0,
            invalid: 0,
        }
    }

    /// Row `row` finished as `outcome` (replacing what it had).
    pub(super) fn set(&mut self, row: usize, outcome: Outcome) {
        match self.rows[row].as_ref().map(|o| o.status.as_str()) {
            None => self.done += 1,
            Some("completed") => self.completed -= 1,
            Some("invalid") => self.invalid -= 1,
            Some(_) => {}
        }
        match outcome.status.as_str() {
            "completed" => self.completed += 1,
            "invalid" => self.invalid += 1,
            _ => {}
        }
        self.rows[row] = Some(outcome);
    }

    /// How many rows failed or were cancelled on the server (or refused by it).
    pub(super) fn failed(&self) -> u64 {
        self.done - self.completed - self.invalid
    }
}

/// Follows what `state` says was sent until every row has an outcome; `false` if
/// interrupted first.
pub(super) async fn follow(
    remote: &Remote,
    state: &State,
    outcomes: &mut Outcomes,
    interrupt: &Interrupt,
    progress: &mut Progress,
) -> anyhow::Result<bool> {
    let mut sources: Vec<Source> = if state.mode == Some(Mode::Jobs) {
        let mut jobs: Vec<(usize, String)> =
            state.jobs.iter().map(|(r, j)| (*r, j.clone())).collect();
        jobs.sort();
        jobs.into_iter()
            .map(|(row, job)| Source::Job { row, job })
            .collect()
    } else {
        state
            .chunks
            .iter()
            .filter_map(|c| {
                Some(Source::Batch {
                    batch: c.batch_id.clone()?,
                    items: c.items(),
                    cursor: None,
                })
            })
            .collect()
    };
    let pause = Duration::from_secs(1) / PER_SECOND;
    let mut next = 0;
    // The first read of each source brings what finished before this command started.
    let mut first_reads_left = Some(sources.len());
    progress.update(outcomes);
    while !sources.is_empty() {
        next %= sources.len();
        let read = sources[next].read(remote, outcomes);
        let finished = tokio::select! {
            read = read => read?,
            () = interrupt.wait() => return Ok(false),
        };
        first_reads_left = match first_reads_left {
            Some(1) => {
                progress.rebase(outcomes);
                None
            }
            left => left.map(|n| n - 1),
        };
        progress.update(outcomes);
        if finished {
            sources.swap_remove(next);
        } else {
            next += 1;
        }
        tokio::select! {
            () = tokio::time::sleep(pause) => {}
            () = interrupt.wait() => return Ok(false),
        }
    }
    Ok(true)
}

/// Something to read outcomes from.
enum Source {
    /// A batch whose items are these rows (position 1 is the first).
    Batch {
        batch: String,
        items: Vec<usize>,
        cursor: Option<i64>,
    },
    /// One row's job.
    Job { row: usize, job: String },
}

impl Source {
    /// Reads what finished since the last read into `outcomes`; whether every row of this
    /// source has finished.
    async fn read(&mut self, remote: &Remote, outcomes: &mut Outcomes) -> anyhow::Result<bool> {
        match self {
            Source::Batch {
                batch,
                items,
                cursor,
            } => {
                let mut path = format!("/v1/applications/batches/{batch}/results?format=jsonl");
                if let Some(after) = cursor {
                    path += &format!("&after={after}");
                }
                let request = remote
                    .request(Method::GET, &path)
                    .timeout(Duration::from_secs(600));
                let response = remote.send(request).await?;
                let status = response.status();
                if !status.is_success() {
                    let body = response.json().await.unwrap_or(Value::Null);
                    bail!("batch {batch}'s results: {}", refusal(status, &body));
                }
                let text = response.text().await.context("the results stream broke")?;
                for line in text.lines().filter(|l| !l.trim().is_empty()) {
                    let item: Value = serde_json::from_str(line)
                        .with_context(|| format!("batch {batch}: a results line is not JSON"))?;
                    let position = item["position"].as_u64().unwrap_or(0) as usize;
                    let Some(&row) = position.checked_sub(1).and_then(|p| items.get(p)) else {
                        bail!("batch {batch}: a result names item {position}, which it has not");
                    };
                    let status = item["status"].as_str().unwrap_or("failed");
                    let job_id = item["job_id"].as_str().unwrap_or_default();
                    outcomes.set(row, Outcome::of(status, job_id, &item));
                    *cursor = item["cursor"].as_i64().or(*cursor);
                }
                Ok(items.iter().all(|r| outcomes.rows[*r].is_some()))
            }
            Source::Job { row, job } => {
                let found = remote.get(&format!("/v1/applications/jobs/{job}")).await?;
                let status = match (found["status"].as_str(), found["state"].as_str()) {
                    (Some("failed"), Some("cancelled")) => "cancelled",
                    (Some(s @ ("completed" | "failed")), _) => s,
                    _ => return Ok(false),
                };
                outcomes.set(*row, Outcome::of(status, job, &found));
                Ok(true)
            }
        }
    }
}
