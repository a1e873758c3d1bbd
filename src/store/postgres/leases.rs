//! The writes of running jobs: outcomes, heartbeats, releases and the reaper. Same semantics
//! as SQLite's `jobs.rs`. Every write is fenced by the job's `job_queue` row: `seq`, `attempt`
//! and `state = 'running'` (so a stale worker changes nothing), and each batch is one
//! statement over `unnest(…)` arrays rather than a loop of single-row updates. A job that
//! leaves the queue (completed, failed) loses its queue row and has its `jobs` row written in
//! the same statement; heartbeats, releases and requeues write only the narrow queue row.
//! Writes that make jobs runnable (a retry outcome, a release, a reap that requeues) notify
//! listeners inside their transaction.
//!
//! Heartbeats and the reaper take queue rows with `SKIP LOCKED`: a row another transaction
//! holds is being finished (or reaped, or renewed) right then, so neither ever waits, and so
//! neither can deadlock with a batch of outcomes locking the same rows in another order.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::cancels;
use super::jobs::query_then_notify;
use crate::store::isolate::isolating;
use crate::store::{JobState, Lease, Outcome, OutcomeKind, StoreError, after};

/// The error a job keeps when its worker vanished during its last attempt (as on SQLite).
const LOST_ON_LAST_ATTEMPT: &str =
    "the worker running this job stopped during its last attempt (its lease expired)";

/// The fence every transition of a running job is guarded by: its queue row `q`, over
/// `unnest`ed leases `u`. Each statement also says `q.seq = ANY(ARRAY(SELECT unnest(…)))`:
/// the planner cannot see the size of an array computed at run time, so it probes the
/// primary key; given the array itself it may judge a batch of 512 big enough to read the
/// whole queue instead.
const FENCE: &str = "q.seq = u.seq AND q.attempt = u.attempt AND q.state = 'running'";

/// Writes a batch of outcomes of every kind in one fenced statement. Answers how many were
/// applied and whether any job went back to the queue (a retry).
pub(super) async fn finish(
    pool: &Pool,
    outcomes: Vec<Outcome>,
    now: i64,
) -> Result<(usize, bool), StoreError> {
    // A lease appearing twice is applied once, the first time, as on SQLite.
    let mut seen = HashSet::new();
    let outcomes: Vec<Outcome> = outcomes
        .into_iter()
        .filter(|o| seen.insert(o.lease))
        .collect();
    if outcomes.is_empty() {
        return Ok((0, false));
    }
    // A large batch is written as halves, in two transactions on two connections at once:
    // one backend applying a batch is one core's work, and the engine writes one batch at a
    // time. The halves touch disjoint jobs (split in `seq` order) and upsert `job_counts`
    // rows in key order, so they cannot deadlock; each is fenced and durable on its own. A
    // half with a row the database refuses is split until that row fails alone
    // ([`isolating`]); a half that fails otherwise fails the call (replaying the applied half
    // changes nothing).
    let mut outcomes = outcomes;
    outcomes.sort_by_key(|o| o.lease.seq);
    let any_retried = AtomicBool::new(false);
    let any_retried = &any_retried;
    let mut first = outcomes;
    let mut halves = Vec::with_capacity(2);
    if first.len() >= SPLIT_AT {
        halves.push(first.split_off(first.len().div_ceil(2)));
    }
    halves.push(first);
    let writes = halves.into_iter().map(|half| {
        isolating(half, |group| async move {
            let (applied, retried) = finish_chunk(pool, &group, now).await?;
            any_retried.fetch_or(retried, Ordering::Relaxed);
            Ok(applied)
        })
    });
    let applied = futures_util::future::try_join_all(writes).await?;
    Ok((applied.iter().sum(), any_retried.load(Ordering::Relaxed)))
}

/// Outcomes in a batch from which on [`finish`] writes two halves at once.
const SPLIT_AT: usize = 512;

/// Writes one batch of distinct outcomes in one statement (see [`finish`]).
async fn finish_chunk(
    pool: &Pool,
    outcomes: &[Outcome],
    now: i64,
) -> Result<(usize, bool), StoreError> {
    let columns = OutcomeColumns::new(outcomes, now);
    // Terminal outcomes delete the queue row, retries update it; both hand the `jobs` update
    // the attempt and start of the run they end (joined back to `u` on seq and attempt, so a
    // stale outcome for the same job in the batch cannot supply the values). Each side probes the queue's primary key
    // with its own seqs only. One `UPDATE jobs` per batch keeps the `job_counts` trigger to
    // one key-ordered upsert per statement (see the module docs of `super`). Attempts that
    // end without a result are recorded in `job_attempts`; a batch of completions only (the
    // usual one) is the statement without that part.
    let ended = if columns.state.iter().any(|s| *s != "completed") {
        "ended AS (INSERT INTO job_attempts (job_seq, attempt, started_at, ended_at, state, \
             error) \
           SELECT m.seq, m.attempt, m.started_at, $1, u.state, u.error \
           FROM m JOIN u ON u.seq = m.seq AND u.attempt = m.attempt \
           WHERE u.state <> 'completed' ON CONFLICT DO NOTHING), "
    } else {
        ""
    };
    let sql = format!(
        "WITH u AS (SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], \
             $6::text[], $7::text[], $8::bigint[], $9::bigint[], $10::bigint[], $13::text[], \
             $14::text[]) \
           AS u(seq, attempt, state, title, suggestion, error, prompt, completion, run_at, \
             provider, model)), \
         done AS (DELETE FROM job_queue q USING u \
           WHERE q.seq = ANY(ARRAY(SELECT unnest($11::bigint[]))) AND {FENCE} \
           RETURNING q.seq, q.attempt, q.started_at), \
         again AS (UPDATE job_queue q SET state = u.state, run_at = u.run_at, \
             lease_until = NULL, updated_at = $1, \
             attempt = CASE WHEN u.state = 'waiting_for_provider' THEN q.attempt - 1 \
               ELSE q.attempt END, \
             waiting_since = CASE WHEN u.state = 'waiting_for_provider' \
               THEN coalesce(q.waiting_since, $1) END \
           FROM u WHERE q.seq = ANY(ARRAY(SELECT unnest($12::bigint[]))) AND {FENCE} \
           RETURNING q.seq, u.attempt, q.started_at), \
         m AS (SELECT * FROM done UNION ALL SELECT * FROM again), {ended}\
         f AS (UPDATE jobs j SET state = u.state, attempt = m.attempt, \
             started_at = m.started_at, \
             title = CASE WHEN u.state = 'completed' THEN u.title ELSE j.title END, \
             suggestion = CASE WHEN u.state = 'completed' THEN u.suggestion ELSE j.suggestion END, \
             prompt_tokens = \
               CASE WHEN u.state = 'completed' THEN u.prompt ELSE j.prompt_tokens END, \
             completion_tokens = \
               CASE WHEN u.state = 'completed' THEN u.completion ELSE j.completion_tokens END, \
             provider = CASE WHEN u.state = 'completed' THEN u.provider ELSE j.provider END, \
             model = CASE WHEN u.state = 'completed' THEN u.model ELSE j.model END, \
             error = u.error, run_at = coalesce(u.run_at, j.run_at), \
             completed_at = CASE WHEN u.state IN ('retrying', 'waiting_for_provider') \
               THEN j.completed_at ELSE $1 END, \
             updated_at = $1 \
           FROM m JOIN u ON u.seq = m.seq AND u.attempt = m.attempt \
           WHERE j.seq = ANY(ARRAY(SELECT seq FROM m)) AND j.seq = m.seq RETURNING j.state) \
         SELECT count(*), \
           count(*) FILTER (WHERE state IN ('retrying', 'waiting_for_provider')) FROM f"
    );
    let c = &columns;
    let params: [&(dyn ToSql + Sync); 14] = [
        &now,
        &c.seq,
        &c.attempt,
        &c.state,
        &c.title,
        &c.suggestion,
        &c.error,
        &c.prompt,
        &c.completion,
        &c.run_at,
        &c.terminal,
        &c.retried,
        &c.provider,
        &c.model,
    ];
    let counts = |rows: &[Row]| rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
    let rows = query_then_notify(pool, &sql, &params, |r| counts(r).1 > 0).await?;
    let (applied, retried): (i64, i64) = counts(&rows);
    Ok((applied as usize, retried > 0))
}

/// Outcomes as parallel arrays, one per column of the `unnest`.
struct OutcomeColumns<'a> {
    seq: Vec<i64>,
    attempt: Vec<i32>,
    state: Vec<&'static str>,
    title: Vec<Option<&'a str>>,
    suggestion: Vec<Option<&'a str>>,
    error: Vec<Option<&'a str>>,
    prompt: Vec<Option<i64>>,
    completion: Vec<Option<i64>>,
    run_at: Vec<Option<i64>>,
    provider: Vec<Option<&'a str>>,
    model: Vec<Option<&'a str>>,
    /// The seqs of completed and failed outcomes, and of retries.
    terminal: Vec<i64>,
    retried: Vec<i64>,
}

impl<'a> OutcomeColumns<'a> {
    fn new(outcomes: &'a [Outcome], now: i64) -> Self {
        let mut c = Self {
            seq: Vec::new(),
            attempt: Vec::new(),
            state: Vec::new(),
            title: Vec::new(),
            suggestion: Vec::new(),
            error: Vec::new(),
            prompt: Vec::new(),
            completion: Vec::new(),
            run_at: Vec::new(),
            provider: Vec::new(),
            model: Vec::new(),
            terminal: Vec::new(),
            retried: Vec::new(),
        };
        for Outcome { lease, kind } in outcomes {
            c.seq.push(lease.seq);
            c.attempt.push(lease.attempt as i32);
            let (mut title, mut suggestion, mut error, mut usage, mut run_at) =
                (None, None, None, None, None);
            let (mut provider, mut model) = (None, None);
            let state = match kind {
                OutcomeKind::Completed {
                    title: t,
                    suggestion: s,
                    usage: u,
                    provider: p,
                    model: m,
                } => {
                    (title, suggestion, usage) = (t.as_deref(), Some(s.as_str()), *u);
                    (provider, model) = (Some(p.as_str()), m.as_deref());
                    JobState::Completed
                }
                OutcomeKind::Retry { delay, error: e } => {
                    (run_at, error) = (Some(after(now, *delay)), Some(e.as_str()));
                    JobState::Retrying
                }
                OutcomeKind::Wait { delay, error: e } => {
                    (run_at, error) = (Some(after(now, *delay)), Some(e.as_str()));
                    JobState::WaitingForProvider
                }
                OutcomeKind::Failed { error: e } => {
                    error = Some(e.as_str());
                    JobState::Failed
                }
            };
            match state {
                JobState::Retrying | JobState::WaitingForProvider => c.retried.push(lease.seq),
                _ => c.terminal.push(lease.seq),
            }
            c.state.push(state.as_str());
            c.title.push(title);
            c.suggestion.push(suggestion);
            c.error.push(error);
            c.prompt.push(usage.map(|u| i64::from(u.prompt_tokens)));
            c.completion
                .push(usage.map(|u| i64::from(u.completion_tokens)));
            c.run_at.push(run_at);
            c.provider.push(provider);
            c.model.push(model);
        }
        c
    }
}

/// The leases, once each, as the `seq` and `attempt` arrays of an `unnest`.
fn lease_columns(leases: Vec<Lease>) -> (Vec<i64>, Vec<i32>) {
    let mut seen = HashSet::new();
    leases
        .into_iter()
        .filter(|l| seen.insert(*l))
        .map(|l| (l.seq, l.attempt as i32))
        .unzip()
}

/// Extends the leases that still hold until `until`; answers those that do not. (A row
/// another transaction holds is skipped and so answered too: only the reaper, for a lease
/// that lapsed, and this lease's own outcome lock a running row.)
pub(super) async fn renew(
    pool: &Pool,
    leases: Vec<Lease>,
    until: i64,
    now: i64,
) -> Result<Vec<Lease>, StoreError> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let (seq, attempt) = lease_columns(leases);
    let sql = format!(
        "WITH r AS (UPDATE job_queue q SET lease_until = $1 WHERE q.seq = ANY(ARRAY( \
           SELECT q.seq FROM job_queue q JOIN unnest($2::bigint[], $3::int[]) AS u(seq, attempt) \
             ON {FENCE} WHERE q.seq = ANY(ARRAY(SELECT unnest($2::bigint[]))) FOR UPDATE OF q SKIP LOCKED)) \
           RETURNING q.seq) \
         SELECT seq FROM r"
    );
    let rows = query_then_notify(pool, &sql, &[&until, &seq, &attempt], |_| false).await?;
    let renewed: HashSet<i64> = rows.iter().map(|r| r.get(0)).collect();
    let lost: Vec<Lease> = seq
        .into_iter()
        .zip(attempt)
        .filter(|(seq, _)| !renewed.contains(seq))
        .map(|(seq, attempt)| Lease {
            seq,
            attempt: attempt as u32,
        })
        .collect();
    if !lost.is_empty() {
        cancels::end(pool, &lost, now).await?;
    }
    Ok(lost)
}

/// Queues jobs again without using up an attempt.
pub(super) async fn release(
    pool: &Pool,
    leases: Vec<Lease>,
    now: i64,
) -> Result<usize, StoreError> {
    if leases.is_empty() {
        return Ok(0);
    }
    let (seq, attempt) = lease_columns(leases);
    let sql = format!(
        "WITH r AS (UPDATE job_queue q SET state = 'queued', attempt = q.attempt - 1, \
           lease_until = NULL, run_at = $1, updated_at = $1 \
         FROM unnest($2::bigint[], $3::int[]) AS u(seq, attempt) \
         WHERE q.seq = ANY(ARRAY(SELECT unnest($2::bigint[]))) AND {FENCE} RETURNING 1) \
         SELECT count(*) FROM r"
    );
    let released = |rows: &[Row]| rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let rows = query_then_notify(pool, &sql, &[&now, &seq, &attempt], |r| released(r) > 0).await?;
    Ok(released(&rows) as usize)
}

/// Returns lapsed leases to the queue, or fails jobs on their last attempt. Answers how many
/// jobs were touched and whether any went back to the queue.
pub(super) async fn reap(pool: &Pool, now: i64) -> Result<(usize, bool), StoreError> {
    let cancelled = cancels::end_lapsed(pool, now).await?;
    // Lapsed leases with attempts left go back to the queue; on their last attempt the job
    // leaves the queue, failed, and its `jobs` row records the run.
    let sql = "WITH r AS (SELECT q.seq, \
             q.attempt >= (SELECT j.max_attempts FROM jobs j WHERE j.seq = q.seq) AS last \
           FROM job_queue q WHERE q.state = 'running' AND q.lease_until < $1::bigint \
           FOR UPDATE SKIP LOCKED), \
         requeued AS (UPDATE job_queue q SET state = 'queued', lease_until = NULL, \
             run_at = $1, updated_at = $1 \
           WHERE q.seq = ANY(ARRAY(SELECT seq FROM r WHERE NOT last)) RETURNING 1), \
         lost AS (DELETE FROM job_queue q \
           WHERE q.seq = ANY(ARRAY(SELECT seq FROM r WHERE last)) \
           RETURNING q.seq, q.attempt, q.started_at), \
         failed AS (UPDATE jobs j SET state = 'failed', attempt = l.attempt, \
             started_at = l.started_at, error = $2::text, completed_at = $1::bigint, \
             run_at = $1, updated_at = $1 \
           FROM lost l WHERE j.seq = ANY(ARRAY(SELECT seq FROM lost)) AND j.seq = l.seq \
           RETURNING 1) \
         SELECT (SELECT count(*) FROM requeued) + (SELECT count(*) FROM failed), \
           (SELECT count(*) FROM requeued)";
    let counts = |rows: &[Row]| rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
    let params: [&(dyn ToSql + Sync); 2] = [&now, &LOST_ON_LAST_ATTEMPT];
    let rows = query_then_notify(pool, sql, &params, |r| counts(r).1 > 0).await?;
    let (touched, requeued): (i64, i64) = counts(&rows);
    Ok((touched as usize + cancelled, requeued > 0))
}
