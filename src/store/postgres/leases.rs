//! The writes of running jobs: outcomes, heartbeats, releases and the reaper. Same semantics
//! as SQLite's `jobs.rs`. Every write is fenced by `seq`, `attempt` and `state = 'running'`
//! (so a stale worker changes nothing), and each batch is one `UPDATE … FROM unnest(…)`
//! rather than a loop of single-row updates. Writes that make jobs runnable (a retry
//! outcome, a release, a reap that requeues) notify listeners inside their transaction.

use std::collections::HashSet;

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::connection;
use super::errors::map_err;
use super::jobs::query_then_notify;
use crate::store::{JobState, Lease, Outcome, OutcomeKind, StoreError};

/// The error a job keeps when its worker vanished during its last attempt (as on SQLite).
const LOST_ON_LAST_ATTEMPT: &str =
    "the worker running this job stopped during its last attempt (its lease expired)";

/// The fence every transition of a running job is guarded by, over `unnest`ed leases `u`.
const FENCE: &str = "j.seq = u.seq AND j.attempt = u.attempt AND j.state = 'running'";

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
    let columns = OutcomeColumns::new(&outcomes);
    let sql = format!(
        "WITH f AS (UPDATE jobs j SET state = u.state, \
           title = CASE WHEN u.state = 'completed' THEN u.title ELSE j.title END, \
           suggestion = CASE WHEN u.state = 'completed' THEN u.suggestion ELSE j.suggestion END, \
           prompt_tokens = CASE WHEN u.state = 'completed' THEN u.prompt ELSE j.prompt_tokens END, \
           completion_tokens = \
             CASE WHEN u.state = 'completed' THEN u.completion ELSE j.completion_tokens END, \
           error = u.error, run_at = coalesce(u.run_at, j.run_at), \
           completed_at = CASE WHEN u.state = 'retrying' THEN j.completed_at ELSE $1 END, \
           lease_until = NULL, updated_at = $1 \
         FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[], $7::text[], \
                     $8::bigint[], $9::bigint[], $10::bigint[]) \
           AS u(seq, attempt, state, title, suggestion, error, prompt, completion, run_at) \
         WHERE {FENCE} RETURNING j.state) \
         SELECT count(*), count(*) FILTER (WHERE state = 'retrying') FROM f"
    );
    let c = &columns;
    let params: [&(dyn ToSql + Sync); 10] = [
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
}

impl<'a> OutcomeColumns<'a> {
    fn new(outcomes: &'a [Outcome]) -> Self {
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
        };
        for Outcome { lease, kind } in outcomes {
            c.seq.push(lease.seq);
            c.attempt.push(lease.attempt as i32);
            let (mut title, mut suggestion, mut error, mut usage, mut run_at) =
                (None, None, None, None, None);
            let state = match kind {
                OutcomeKind::Completed {
                    title: t,
                    suggestion: s,
                    usage: u,
                } => {
                    (title, suggestion, usage) = (t.as_deref(), Some(s.as_str()), *u);
                    JobState::Completed
                }
                OutcomeKind::Retry {
                    run_at: at,
                    error: e,
                } => {
                    (run_at, error) = (Some(*at), Some(e.as_str()));
                    JobState::Retrying
                }
                OutcomeKind::Failed { error: e } => {
                    error = Some(e.as_str());
                    JobState::Failed
                }
            };
            c.state.push(state.as_str());
            c.title.push(title);
            c.suggestion.push(suggestion);
            c.error.push(error);
            c.prompt.push(usage.map(|u| i64::from(u.prompt_tokens)));
            c.completion
                .push(usage.map(|u| i64::from(u.completion_tokens)));
            c.run_at.push(run_at);
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

/// Extends the leases that still hold until `until`.
pub(super) async fn renew(
    pool: &Pool,
    leases: Vec<Lease>,
    until: i64,
) -> Result<usize, StoreError> {
    if leases.is_empty() {
        return Ok(0);
    }
    let (seq, attempt) = lease_columns(leases);
    let sql = format!(
        "UPDATE jobs j SET lease_until = $1 \
         FROM unnest($2::bigint[], $3::int[]) AS u(seq, attempt) WHERE {FENCE}"
    );
    let client = connection(pool).await?;
    let stmt = client.prepare_cached(&sql).await.map_err(map_err)?;
    let n = client.execute(&stmt, &[&until, &seq, &attempt]).await;
    Ok(n.map_err(map_err)? as usize)
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
        "WITH r AS (UPDATE jobs j SET state = 'queued', attempt = j.attempt - 1, \
           lease_until = NULL, run_at = $1, updated_at = $1 \
         FROM unnest($2::bigint[], $3::int[]) AS u(seq, attempt) WHERE {FENCE} RETURNING 1) \
         SELECT count(*) FROM r"
    );
    let released = |rows: &[Row]| rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let rows = query_then_notify(pool, &sql, &[&now, &seq, &attempt], |r| released(r) > 0).await?;
    Ok(released(&rows) as usize)
}

/// Returns lapsed leases to the queue, or fails jobs on their last attempt. Answers how many
/// jobs were touched and whether any went back to the queue.
pub(super) async fn reap(pool: &Pool, before: i64, now: i64) -> Result<(usize, bool), StoreError> {
    let sql = "WITH r AS (UPDATE jobs SET \
           state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END, \
           error = CASE WHEN attempt >= max_attempts THEN $3::text ELSE error END, \
           completed_at = CASE WHEN attempt >= max_attempts THEN $2::bigint END, \
           lease_until = NULL, run_at = $2, updated_at = $2 \
         WHERE state = 'running' AND lease_until < $1::bigint RETURNING state) \
         SELECT count(*), count(*) FILTER (WHERE state = 'queued') FROM r";
    let counts = |rows: &[Row]| rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)));
    let params: [&(dyn ToSql + Sync); 3] = [&before, &now, &LOST_ON_LAST_ATTEMPT];
    let rows = query_then_notify(pool, sql, &params, |r| counts(r).1 > 0).await?;
    let (touched, requeued): (i64, i64) = counts(&rows);
    Ok((touched as usize, requeued > 0))
}
