//! Sending a run's valid rows, each exactly once across any number of interrupted runs
//! (state.rs tells how the journal makes that so).
//!
//! Rows go as batches of `--chunk-size` consecutive rows. A server whose batch route
//! answers 404 (api.writer.com) gets one job create per row instead, [`CONCURRENCY`] at a
//! time, each with an `Idempotency-Key`; a 429, a 5xx or a lost connection is retried with
//! the same key after a pause.

use std::time::Duration;

use anyhow::Context;
use futures_util::stream::{FuturesUnordered, StreamExt};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use super::follow::{Outcome, Outcomes};
use super::progress::Progress;
use super::rows::{Row, Rows};
use super::run::Interrupt;
use super::state::{Chunk, Mode, State};
use crate::cli::remote::{Remote, answer, refusal};

/// Job creates in flight at once, in jobs mode.
const CONCURRENCY: usize = 4;
/// Attempts of one job create, in jobs mode.
const ATTEMPTS: u32 = 5;

/// What a run sends, and where.
pub(super) struct Submission<'a> {
    /// The server.
    pub(super) remote: &'a Remote,
    /// The application's id.
    pub(super) app: &'a str,
    /// The input.
    pub(super) rows: &'a Rows,
    /// Why each row cannot be sent, if it cannot.
    pub(super) verdicts: &'a [Option<String>],
    /// Rows a batch covers at most.
    pub(super) chunk_size: usize,
    /// Ctrl-C.
    pub(super) interrupt: &'a Interrupt,
}

impl Submission<'_> {
    /// Sends every valid row that `state` does not record as sent; `false` if interrupted
    /// before all were. A create in flight is always finished and recorded first.
    pub(super) async fn send(
        &self,
        state: &mut State,
        outcomes: &mut Outcomes,
        progress: &mut Progress,
    ) -> anyhow::Result<bool> {
        if state.mode != Some(Mode::Jobs) {
            match self.batches(state, progress).await? {
                Some(all) => return Ok(all),
                None => {
                    eprintln!(
                        "{} has no batch route: sending one job a row instead",
                        self.remote.base()
                    );
                    state.set_mode(Mode::Jobs)?;
                }
            }
        }
        self.jobs(state, outcomes, progress).await
    }

    /// Sends the rows as batches: `None` when the server has no batch route.
    async fn batches(
        &self,
        state: &mut State,
        progress: &mut Progress,
    ) -> anyhow::Result<Option<bool>> {
        let unsent: Vec<Chunk> = state
            .chunks
            .iter()
            .filter(|c| c.batch_id.is_none())
            .cloned()
            .collect();
        for chunk in unsent {
            let found = match self.find(&state.run, chunk.chunk).await? {
                Found::Batch(id) => id,
                Found::Nothing => match self.create(&chunk, &state.run).await? {
                    Some(id) => id,
                    None => return Ok(None),
                },
                Found::NoRoute => return Ok(None),
            };
            state.sent(chunk.chunk, &found)?;
            progress.note(&created(&found, &chunk));
        }
        let to_send = self.verdicts.iter().filter(|v| v.is_none()).count() as u64;
        let mut sent: u64 = state.chunks.iter().map(|c| c.items().len() as u64).sum();
        let mut first = state.chunks.iter().map(|c| c.end).max().unwrap_or(0);
        let n = self.rows.rows.len();
        while first < n {
            if self.interrupt.is_set() {
                return Ok(Some(false));
            }
            let end = (first + self.chunk_size).min(n);
            let skipped: Vec<usize> = (first..end)
                .filter(|r| self.verdicts[*r].is_some())
                .collect();
            if skipped.len() < end - first {
                let chunk = Chunk {
                    chunk: state.chunks.len(),
                    first,
                    end,
                    skipped,
                    batch_id: None,
                };
                state.sending(chunk.clone())?;
                let Some(id) = self.create(&chunk, &state.run).await? else {
                    return Ok(None);
                };
                state.sent(chunk.chunk, &id)?;
                progress.note(&created(&id, &chunk));
                sent += chunk.items().len() as u64;
                progress.sending(sent, to_send);
            }
            first = end;
        }
        if state.mode.is_none() {
            state.set_mode(Mode::Batches)?;
        }
        Ok(Some(true))
    }

    /// Creates `chunk`'s batch, marked with the run and chunk in its metadata: its id, or
    /// `None` when the server has no batch route.
    async fn create(&self, chunk: &Chunk, run: &str) -> anyhow::Result<Option<String>> {
        let items: Vec<Value> = chunk
            .items()
            .into_iter()
            .map(|r| item(&self.rows.rows[r]))
            .collect();
        let body = json!({
            "items": items,
            "metadata": {"scriptorium_run": run, "scriptorium_chunk": chunk.chunk},
        });
        let path = format!("/v1/applications/{}/batches", self.app);
        let request = self
            .remote
            .request(Method::POST, &path)
            .timeout(Duration::from_secs(600))
            .json(&body);
        let response = self.remote.send(request).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        let batch = answer(response).await.with_context(|| {
            format!(
                "cannot create the batch of rows {}-{}",
                chunk.first + 1,
                chunk.end
            )
        })?;
        let id = batch["id"].as_str().context("the batch has no id")?;
        Ok(Some(id.to_owned()))
    }

    /// Looks for the batch of chunk `chunk` of run `run` among the application's batches
    /// (newest first): a create may have reached the server before the run stopped.
    async fn find(&self, run: &str, chunk: usize) -> anyhow::Result<Found> {
        let mut offset = 0;
        loop {
            let path = format!(
                "/v1/applications/{}/batches?offset={offset}&limit=100",
                self.app
            );
            let Some(page) = self.remote.find(&path).await? else {
                return Ok(Found::NoRoute);
            };
            let batches = page["result"].as_array().cloned().unwrap_or_default();
            let mine = batches.iter().find(|b| {
                b["metadata"]["scriptorium_run"] == run
                    && b["metadata"]["scriptorium_chunk"] == chunk
            });
            if let Some(id) = mine.and_then(|b| b["id"].as_str()) {
                return Ok(Found::Batch(id.to_owned()));
            }
            offset += batches.len() as u64;
            if batches.is_empty() || offset >= page["totalCount"].as_u64().unwrap_or(0) {
                return Ok(Found::Nothing);
            }
        }
    }

    /// Sends each valid row without a job as a job of its own, [`CONCURRENCY`] at a time.
    async fn jobs(
        &self,
        state: &mut State,
        outcomes: &mut Outcomes,
        progress: &mut Progress,
    ) -> anyhow::Result<bool> {
        let valid = |r: &usize| self.verdicts[*r].is_none();
        let to_send = (0..self.rows.rows.len()).filter(valid).count() as u64;
        let mut sent = state.jobs.len() as u64;
        let todo: Vec<(usize, String)> = (0..self.rows.rows.len())
            .filter(|r| valid(r) && !state.jobs.contains_key(r))
            .map(|r| (r, state.job_key(r)))
            .collect();
        let mut todo = todo.into_iter();
        let mut in_flight = FuturesUnordered::new();
        loop {
            while in_flight.len() < CONCURRENCY && !self.interrupt.is_set() {
                let Some((row, key)) = todo.next() else { break };
                in_flight.push(async move { (row, self.create_job(row, &key).await) });
            }
            let Some((row, created)) = in_flight.next().await else {
                break;
            };
            match created? {
                Ok(job_id) => state.job(row, &job_id)?,
                Err(refused) => outcomes.set(row, Outcome::refused("failed", refused)),
            }
            sent += 1;
            progress.sending(sent, to_send);
        }
        Ok(todo.next().is_none())
    }

    /// Creates row `row`'s job with the idempotency key `key`: its id, or the server's
    /// refusal of the row (a 4xx).
    async fn create_job(&self, row: usize, key: &str) -> anyhow::Result<Result<String, String>> {
        let path = format!("/v1/applications/{}/jobs", self.app);
        let body = json!({"inputs": item(&self.rows.rows[row])["inputs"]});
        let mut pause = Duration::from_secs(1);
        let mut attempt = 0;
        loop {
            attempt += 1;
            let request = self
                .remote
                .request(Method::POST, &path)
                .header("Idempotency-Key", key)
                .json(&body);
            let last = attempt == ATTEMPTS;
            let response = match self.remote.send(request).await {
                Ok(response) => response,
                Err(e) if last => return Err(e),
                Err(_) => {
                    tokio::time::sleep(pause).await;
                    pause *= 2;
                    continue;
                }
            };
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            if status.is_success() {
                let id = body["id"].as_str().context("the job has no id")?;
                return Ok(Ok(id.to_owned()));
            }
            let busy = status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            if status.is_client_error() && !busy {
                return Ok(Err(refusal(status, &body)));
            }
            if last {
                anyhow::bail!(
                    "row {}: {}",
                    self.rows.rows[row].number,
                    refusal(status, &body)
                );
            }
            tokio::time::sleep(pause).await;
            pause *= 2;
        }
    }
}

/// The line that names a chunk's batch (for `batch status`, `batch cancel`).
fn created(batch: &str, chunk: &Chunk) -> String {
    format!("batch {batch}: rows {} to {}", chunk.first + 1, chunk.end)
}

/// What a search for a chunk's batch found.
enum Found {
    Batch(String),
    Nothing,
    NoRoute,
}

/// `row` as a batch item: `{custom_id, inputs: [{id, value}]}`.
fn item(row: &Row) -> Value {
    let inputs: Vec<Value> = row
        .inputs
        .iter()
        .map(|(id, value)| json!({"id": id, "value": value}))
        .collect();
    json!({"custom_id": row.item_id(), "inputs": inputs})
}
