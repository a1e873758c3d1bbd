//! The writes fenced by a lease: the outcomes of attempts (completions grouped into one
//! statement), renewals, releases and the reaping of lapsed leases. Each runs inside the
//! writer's group transaction.

use std::sync::OnceLock;

use rusqlite::{Connection, params};

use super::cancels;
use super::jobs::count_inserted;
use crate::store::{ApplicationId, Lease, OrgId, Outcome, OutcomeKind, WriterStatus, after};

/// The error a job keeps when its worker vanished during its last attempt.
const LOST_ON_LAST_ATTEMPT: &str =
    "the worker running this job stopped during its last attempt (its lease expired)";

/// Completions written by one statement at most: [`complete_sql`]'s rows.
const COMPLETE_CHUNK: usize = 64;

/// Completes `rows` jobs (1 or [`COMPLETE_CHUNK`]) in one statement, at ?1: row `i` of the
/// `VALUES` list binds `seq, attempt, title, suggestion, prompt_tokens, completion_tokens,
/// provider, model` from ?(2 + 8i); rows left unbound are NULL (the statement cache clears
/// bindings) and match nothing. Each job is fenced as a single write is. One statement for
/// many jobs instead of one each: the status trigger's frame is allocated and zeroed once per
/// statement, not once per job (~13,000 instructions each), and each page the statement
/// changes is copied into the statement journal once.
fn complete_sql(rows: usize) -> &'static str {
    static ONE: OnceLock<String> = OnceLock::new();
    static MANY: OnceLock<String> = OnceLock::new();
    let build = || {
        let values: Vec<String> = (0..rows)
            .map(|i| {
                let p: Vec<String> = (0..8).map(|k| format!("?{}", 2 + 8 * i + k)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        format!(
            "UPDATE jobs SET state = 'completed', title = o.column3, suggestion = o.column4, \
             error = NULL, prompt_tokens = o.column5, completion_tokens = o.column6, \
             provider = o.column7, model = o.column8, waiting_since = NULL, \
             lease_until = NULL, updated_at = ?1, completed_at = ?1 \
             FROM (VALUES {}) AS o \
             WHERE jobs.seq = o.column1 AND jobs.attempt = o.column2 AND jobs.state = 'running' \
             RETURNING org, application_id, batch_id IS NULL",
            values.join(", ")
        )
    };
    match rows {
        1 => ONE.get_or_init(build),
        COMPLETE_CHUNK => MANY.get_or_init(build),
        _ => unreachable!("completions are written one or {COMPLETE_CHUNK} to a statement"),
    }
}

/// Moves `n` plain jobs of `org`'s application `app` from in progress to completed in
/// `job_counts` (the status trigger leaves plain completions to the code that makes them:
/// see 0016_completion_counts.sql).
const COUNT_COMPLETED: &str = "UPDATE job_counts SET n = n - ?3 \
     WHERE org = ?1 AND application_id = ?2 AND status = 'in_progress'";

/// One completed attempt, as [`complete_sql`] binds it.
type CompletedRow<'a> = (
    i64,
    u32,
    Option<&'a str>,
    &'a str,
    Option<u32>,
    Option<u32>,
    &'a str,
    Option<&'a str>,
);

pub(super) fn finish(conn: &Connection, outcomes: &[Outcome], now: i64) -> rusqlite::Result<usize> {
    let fence = "WHERE seq = ?1 AND attempt = ?2 AND state = 'running'";
    let mut retry = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 'retrying', run_at = ?3, error = ?4, lease_until = NULL, \
         waiting_since = NULL, updated_at = ?5 {fence}"
    ))?;
    // Waiting gives the attempt back: the next claim takes the same number again.
    let mut wait = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 'waiting_for_provider', attempt = attempt - 1, run_at = ?3, \
         error = ?4, lease_until = NULL, waiting_since = coalesce(waiting_since, ?5), \
         updated_at = ?5 {fence}"
    ))?;
    let mut fail = conn.prepare_cached(&format!(
        "UPDATE jobs SET state = 'failed', error = ?3, lease_until = NULL, updated_at = ?4, \
         waiting_since = NULL, completed_at = ?4 {fence}"
    ))?;
    // An attempt that ends without its result is recorded first (read from the row it still
    // is, fenced as the update that follows).
    let mut ended = conn.prepare_cached(&format!(
        "INSERT OR IGNORE INTO job_attempts (job_seq, attempt, started_at, ended_at, state, error) \
         SELECT seq, attempt, started_at, ?3, ?4, ?5 FROM jobs {fence}"
    ))?;
    let mut completed: Vec<CompletedRow<'_>> = Vec::new();
    let mut applied = 0;
    for Outcome { lease, kind } in outcomes {
        let (seq, attempt) = (lease.seq, lease.attempt);
        if !matches!(kind, OutcomeKind::Completed { .. }) {
            // The completions before it first, so a batch's items are numbered in the order
            // their outcomes came (those completed by one statement in row order).
            applied += complete(conn, &std::mem::take(&mut completed), now)?;
        }
        applied += match kind {
            OutcomeKind::Completed {
                title,
                suggestion,
                usage,
                provider,
                model,
            } => {
                completed.push((
                    seq,
                    attempt,
                    title.as_deref(),
                    suggestion,
                    usage.map(|u| u.prompt_tokens),
                    usage.map(|u| u.completion_tokens),
                    provider,
                    model.as_deref(),
                ));
                0
            }
            OutcomeKind::Retry { delay, error } => {
                ended.execute(params![seq, attempt, now, "retrying", error])?;
                let run_at = after(now, *delay);
                retry.execute(params![seq, attempt, run_at, error, now])?
            }
            OutcomeKind::Wait { delay, error } => {
                ended.execute(params![seq, attempt, now, "waiting_for_provider", error])?;
                let run_at = after(now, *delay);
                wait.execute(params![seq, attempt, run_at, error, now])?
            }
            OutcomeKind::Failed { error } => {
                ended.execute(params![seq, attempt, now, "failed", error])?;
                fail.execute(params![seq, attempt, error, now])?
            }
        };
    }
    Ok(applied + complete(conn, &completed, now)?)
}

/// Completes `completed` (consecutive completions of one group, [`COMPLETE_CHUNK`] to a
/// statement) and counts the plain ones.
fn complete(
    conn: &Connection,
    completed: &[CompletedRow<'_>],
    now: i64,
) -> rusqlite::Result<usize> {
    let mut applied = 0;
    for chunk in completed.chunks(COMPLETE_CHUNK) {
        applied += complete_chunk(conn, chunk, now)?;
    }
    Ok(applied)
}

fn complete_chunk(
    conn: &Connection,
    chunk: &[CompletedRow<'_>],
    now: i64,
) -> rusqlite::Result<usize> {
    let rows = if chunk.len() == 1 { 1 } else { COMPLETE_CHUNK };
    let mut stmt = conn.prepare_cached(complete_sql(rows))?;
    stmt.raw_bind_parameter(1, now)?;
    for (i, (seq, attempt, title, suggestion, prompt, completion, provider, model)) in
        chunk.iter().enumerate()
    {
        let at = 2 + 8 * i;
        stmt.raw_bind_parameter(at, seq)?;
        stmt.raw_bind_parameter(at + 1, attempt)?;
        stmt.raw_bind_parameter(at + 2, title)?;
        stmt.raw_bind_parameter(at + 3, suggestion)?;
        stmt.raw_bind_parameter(at + 4, prompt)?;
        stmt.raw_bind_parameter(at + 5, completion)?;
        stmt.raw_bind_parameter(at + 6, provider)?;
        stmt.raw_bind_parameter(at + 7, model)?;
    }
    // Plain completions per application, counted once for the statement.
    let mut plain: Vec<(OrgId, ApplicationId, usize)> = Vec::new();
    let mut applied = 0;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next()? {
        applied += 1;
        if !row.get::<_, bool>(2)? {
            continue;
        }
        let (org, app): (OrgId, ApplicationId) = (row.get(0)?, row.get(1)?);
        match plain.iter_mut().find(|(o, a, _)| *o == org && *a == app) {
            Some((_, _, n)) => *n += 1,
            None => plain.push((org, app, 1)),
        }
    }
    drop(rows);
    for (org, app, n) in plain {
        conn.prepare_cached(COUNT_COMPLETED)?
            .execute(params![org, app, n as i64])?;
        count_inserted(conn, &org, &app, WriterStatus::Completed, n)?;
    }
    Ok(applied)
}

/// Extends the leases that still hold; answers those that do not.
pub(super) fn renew(
    conn: &Connection,
    leases: &[Lease],
    until: i64,
    now: i64,
) -> rusqlite::Result<Vec<Lease>> {
    let mut stmt = conn.prepare_cached(
        "UPDATE jobs SET lease_until = ?3 WHERE seq = ?1 AND attempt = ?2 AND state = 'running'",
    )?;
    let mut lost = Vec::new();
    for lease in leases {
        if stmt.execute(params![lease.seq, lease.attempt, until])? == 0 {
            lost.push(*lease);
        }
    }
    if !lost.is_empty() {
        cancels::end(conn, &lost, now)?;
    }
    Ok(lost)
}

pub(super) fn release(conn: &Connection, leases: &[Lease], now: i64) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "UPDATE jobs SET state = 'queued', attempt = attempt - 1, lease_until = NULL, \
         run_at = ?3, updated_at = ?3 WHERE seq = ?1 AND attempt = ?2 AND state = 'running'",
    )?;
    leases.iter().try_fold(0, |n, l| {
        Ok(n + stmt.execute(params![l.seq, l.attempt, now])?)
    })
}

/// Reaps the leases that lapsed before `before` (at start, every one a previous process left).
pub(super) fn reap(conn: &Connection, before: i64, now: i64) -> rusqlite::Result<usize> {
    let cancelled = cancels::end_lapsed(conn, before, now)?;
    let reaped = conn
        .prepare_cached(
            "UPDATE jobs SET \
           state = CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END, \
           error = CASE WHEN attempt >= max_attempts THEN ?3 ELSE error END, \
           completed_at = CASE WHEN attempt >= max_attempts THEN ?2 END, \
           lease_until = NULL, run_at = ?2, updated_at = ?2 \
         WHERE state = 'running' AND lease_until < ?1",
        )?
        .execute(params![before, now, LOST_ON_LAST_ATTEMPT])?;
    Ok(reaped + cancelled)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Usage;

    /// Consecutive completions are one statement that finds each job by its row number;
    /// stale leases and other outcomes are fenced as before, and plain completions counted.
    #[test]
    fn many_completions_are_one_fenced_statement() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&conn).unwrap();
        let plan = super::super::query_plan(&conn, complete_sql(COMPLETE_CHUNK));
        assert!(
            plan.iter()
                .any(|s| s.contains("SEARCH jobs USING INTEGER PRIMARY KEY")),
            "{plan:?}"
        );

        for i in 1..=4 {
            conn.execute(
                "INSERT INTO jobs (id, org, application_id, state, inputs, max_attempts, \
                 backoff_initial_ms, backoff_max_ms, run_at, created_at, updated_at, attempt) \
                 VALUES (?1, 'o', 'a', 'running', '{}', 3, 1, 1, 0, 0, 0, 1)",
                params![format!("j{i}")],
            )
            .unwrap();
        }
        conn.execute(
            "INSERT INTO job_counts VALUES ('o', 'a', 'in_progress', 4)",
            [],
        )
        .unwrap();
        let done = |seq, attempt, title: Option<&str>, usage| Outcome {
            lease: Lease { seq, attempt },
            kind: OutcomeKind::Completed {
                title: title.map(str::to_owned),
                suggestion: format!("text \"{seq}\"\n"),
                usage,
                provider: "p".into(),
                model: None,
            },
        };
        let usage = Some(Usage {
            prompt_tokens: 3,
            completion_tokens: 4,
        });
        let outcomes = [
            done(1, 1, Some("t"), usage),
            done(2, 2, None, None), // a stale attempt: fenced out
            Outcome {
                lease: Lease { seq: 3, attempt: 1 },
                kind: OutcomeKind::Failed { error: "no".into() },
            },
            done(4, 1, None, None),
        ];
        assert_eq!(finish(&conn, &outcomes, 99).unwrap(), 3);
        type Row = (
            String,
            Option<String>,
            Option<String>,
            Option<i64>,
            Option<i64>,
        );
        let rows: Vec<Row> = conn
            .prepare("SELECT state, title, suggestion, prompt_tokens, completed_at FROM jobs ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            rows,
            vec![
                (
                    "completed".into(),
                    Some("t".into()),
                    Some("text \"1\"\n".into()),
                    Some(3),
                    Some(99)
                ),
                ("running".into(), None, None, None, None),
                ("failed".into(), None, None, None, Some(99)),
                (
                    "completed".into(),
                    None,
                    Some("text \"4\"\n".into()),
                    None,
                    Some(99)
                ),
            ]
        );
        let counts: Vec<(String, i64)> = conn
            .prepare("SELECT status, n FROM job_counts ORDER BY status")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert_eq!(
            counts,
            vec![
                ("completed".into(), 2),
                ("failed".into(), 1),
                ("in_progress".into(), 1)
            ]
        );
    }
}
