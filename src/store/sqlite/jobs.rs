//! The job statements. Each function runs inside a transaction its caller opened: the
//! writer's group transaction for writes, an implicit read transaction for reads.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::cancels;
use crate::store::{
    ApplicationId, EndedAttempt, Inserted, JobCount, JobId, JobInputs, JobPage, JobQuery,
    JobRecord, JobState, Lease, NewJob, OrgId, Outcome, OutcomeKind, Priority, RetryOutcome, Usage,
    WriterStatus, after,
};

/// A job's state as read: a cancelled job is stored `failed`, with the time of the cancel.
macro_rules! state_column {
    () => {
        "CASE WHEN state = 'failed' AND cancelled_at IS NOT NULL THEN 'cancelled' ELSE state END"
    };
}
pub(super) use state_column;

pub(super) const RECORD_COLUMNS: &str = concat!(
    "id, application_id, ",
    state_column!(),
    ", attempt, created_at, updated_at, started_at, completed_at, title, suggestion, error, \
     prompt_tokens, completion_tokens, priority, provider, model, batch_id, custom_id"
);

/// Adds inserted jobs to their counter (inserts are counted here, not by a trigger: see
/// 0013_insert_counts.sql).
const COUNT_INSERTED: &str = "INSERT INTO job_counts (org, application_id, status, n) \
     VALUES (?1, ?2, ?3, ?4) ON CONFLICT DO UPDATE SET n = n + excluded.n";

/// The error a job keeps when its worker vanished during its last attempt.
const LOST_ON_LAST_ATTEMPT: &str =
    "the worker running this job stopped during its last attempt (its lease expired)";

pub(super) fn insert(conn: &Connection, job: &NewJob, now: i64) -> rusqlite::Result<Inserted> {
    let inserted = conn
        .prepare_cached(
            "INSERT INTO jobs (id, org, application_id, state, inputs, max_attempts, \
             backoff_initial_ms, backoff_max_ms, run_at, idempotency_key, created_at, updated_at, \
             max_wait_ms, priority, application_version) \
             VALUES (?1, ?2, ?3, 'queued', ?4, ?5, ?6, ?7, ?8, ?9, ?8, ?8, ?10, ?11, ?12) \
             ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            job.id,
            job.org,
            job.application_id,
            job.inputs,
            job.retry.max_attempts,
            job.retry.backoff_initial_ms as i64,
            job.retry.backoff_max_ms as i64,
            now,
            job.idempotency_key,
            job.retry.max_wait_ms as i64,
            job.priority.index() as i64,
            job.application_version,
        ])?;
    if inserted == 1 {
        count_inserted(
            conn,
            &job.org,
            &job.application_id,
            WriterStatus::InProgress,
            1,
        )?;
        return Ok(Inserted {
            id: job.id,
            created_at: now,
            state: JobState::Queued,
        });
    }
    // The idempotency key was used before: answer the job it created.
    conn.prepare_cached(
        "SELECT id, created_at, state FROM jobs WHERE org = ?1 AND idempotency_key = ?2",
    )?
    .query_row(params![job.org, job.idempotency_key], |r| {
        Ok(Inserted {
            id: r.get(0)?,
            created_at: r.get(1)?,
            state: state(r, 2)?,
        })
    })
}

/// Counts `n` jobs of `org`'s application `app` just inserted with Writer status `status`
/// (or just completed, after [`COUNT_COMPLETED`] took them from in progress).
pub(super) fn count_inserted(
    conn: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    status: WriterStatus,
    n: usize,
) -> rusqlite::Result<()> {
    if n > 0 {
        conn.prepare_cached(COUNT_INSERTED)?.execute(params![
            org,
            app,
            status.as_str(),
            n as i64
        ])?;
    }
    Ok(())
}

pub(super) fn get(
    conn: &Connection,
    org: &OrgId,
    id: JobId,
) -> rusqlite::Result<Option<JobRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM jobs WHERE id = ?1 AND org = ?2"
    ))?
    .query_row(params![id, org], record)
    .optional()
}

pub(super) fn inputs(
    conn: &Connection,
    org: &OrgId,
    id: JobId,
) -> rusqlite::Result<Option<JobInputs>> {
    conn.prepare_cached("SELECT inputs, application_version FROM jobs WHERE id = ?1 AND org = ?2")?
        .query_row(params![id, org], |r| {
            Ok(JobInputs {
                inputs: r.get(0)?,
                application_version: r.get(1)?,
            })
        })
        .optional()
}

pub(super) fn ended_attempts(
    conn: &Connection,
    org: &OrgId,
    id: JobId,
) -> rusqlite::Result<Vec<EndedAttempt>> {
    conn.prepare_cached(
        "SELECT a.attempt, a.started_at, a.ended_at, a.state, a.error FROM job_attempts a \
         JOIN jobs j ON j.seq = a.job_seq WHERE j.id = ?1 AND j.org = ?2 \
         ORDER BY a.ended_at, a.attempt",
    )?
    .query_map(params![id, org], |r| {
        Ok(EndedAttempt {
            attempt: r.get(0)?,
            started_at: r.get(1)?,
            ended_at: r.get(2)?,
            state: r.get(3)?,
            error: r.get(4)?,
        })
    })?
    .collect()
}

pub(super) fn list(conn: &Connection, q: &JobQuery) -> rusqlite::Result<JobPage> {
    let status = q.status.map(|s| s.as_str());
    let filter = if status.is_some() {
        "AND status = ?3"
    } else {
        "AND ?3 IS NULL"
    };
    let jobs = conn
        .prepare_cached(&format!(
            // The offset is skipped inside the index alone; only the page's rows are read.
            "SELECT {RECORD_COLUMNS} FROM jobs WHERE seq IN (\
               SELECT seq FROM jobs WHERE org = ?1 AND application_id = ?2 {filter} \
               ORDER BY seq DESC LIMIT ?4 OFFSET ?5) \
             ORDER BY seq DESC"
        ))?
        .query_map(
            params![
                q.org,
                q.application_id,
                status,
                q.limit as i64,
                q.offset as i64
            ],
            record,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = conn
        .prepare_cached(
            "SELECT coalesce(sum(n), 0) FROM job_counts \
             WHERE org = ?1 AND application_id = ?2 AND (?3 IS NULL OR status = ?3)",
        )?
        .query_row(params![q.org, q.application_id, status], |r| r.get(0))?;
    Ok(JobPage {
        jobs,
        total: total.max(0) as u64,
    })
}

/// Every non-zero counter of `job_counts`.
pub(super) fn counts(conn: &Connection) -> rusqlite::Result<Vec<JobCount>> {
    conn.prepare_cached(
        "SELECT org, application_id, status, n FROM job_counts WHERE n <> 0 \
         ORDER BY org, application_id, status",
    )?
    .query_map([], |r| {
        let status: String = r.get(2)?;
        Ok(JobCount {
            org: r.get(0)?,
            application_id: r.get(1)?,
            status: WriterStatus::parse(&status).unwrap_or(WriterStatus::Failed),
            n: r.get(3)?,
        })
    })?
    .collect()
}

pub(super) fn retry(
    conn: &Connection,
    org: &OrgId,
    id: JobId,
    now: i64,
) -> rusqlite::Result<RetryOutcome> {
    let requeued = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'queued', attempt = 0, run_at = ?3, lease_until = NULL, \
             error = NULL, title = NULL, suggestion = NULL, completed_at = NULL, \
             cancelled_at = NULL, updated_at = ?3 \
             WHERE id = ?1 AND org = ?2 AND state = 'failed' \
               AND (attempt > 0 OR cancelled_at IS NOT NULL) RETURNING created_at",
        )?
        .query_row(params![id, org, now], |r| r.get::<_, i64>(0))
        .optional()?;
    if let Some(created_at) = requeued {
        return Ok(RetryOutcome::Requeued(Inserted {
            id,
            created_at,
            state: JobState::Queued,
        }));
    }
    let current = conn
        .prepare_cached("SELECT state FROM jobs WHERE id = ?1 AND org = ?2")?
        .query_row(params![id, org], |r| state(r, 0))
        .optional()?;
    Ok(match current {
        None => RetryOutcome::NotFound,
        // Failed with no attempt: refused at create.
        Some(JobState::Failed) => RetryOutcome::Refused,
        Some(other) => RetryOutcome::NotFailed(other),
    })
}

/// Completions written by one statement at most: [`complete_many`]'s rows.
const COMPLETE_CHUNK: usize = 64;

/// Completes up to [`COMPLETE_CHUNK`] jobs in one statement, at ?1: row `i` of the `VALUES`
/// list binds `seq, attempt, title, suggestion, prompt_tokens, completion_tokens, provider,
/// model` from ?(2 + 8i); rows left unbound are NULL (the statement cache clears bindings)
/// and match nothing. Each job is fenced as a single write is. One statement for many jobs
/// instead of one each: the status trigger's frame is allocated and zeroed once per
/// statement, not once per job (~13,000 instructions each), and each page the statement
/// changes is copied into the statement journal once.
fn complete_many() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        let rows: Vec<String> = (0..COMPLETE_CHUNK)
            .map(|i| {
                let p: Vec<String> = (0..8).map(|k| format!("?{}", 2 + 8 * i + k)).collect();
                format!("({})", p.join(", "))
            })
            .collect();
        format!(
            "UPDATE jobs SET state = 'completed', title = o.column3, suggestion = o.column4, \
         error = NULL, prompt_tokens = o.column5, completion_tokens = o.column6, \
         provider = o.column7, model = o.column8, waiting_since = NULL, lease_until = NULL, \
         updated_at = ?1, completed_at = ?1 \
         FROM (VALUES {}) AS o \
         WHERE jobs.seq = o.column1 AND jobs.attempt = o.column2 AND jobs.state = 'running' \
         RETURNING org, application_id, batch_id IS NULL",
            rows.join(", ")
        )
    })
}

/// Moves `n` plain jobs of `org`'s application `app` from in progress to completed in
/// `job_counts` (the status trigger leaves plain completions to the code that makes them:
/// see 0016_completion_counts.sql).
const COUNT_COMPLETED: &str = "UPDATE job_counts SET n = n - ?3 \
     WHERE org = ?1 AND application_id = ?2 AND status = 'in_progress'";

/// One completed attempt, as [`complete_many`] binds it.
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
    let mut stmt = if chunk.len() == 1 {
        conn.prepare_cached(
            "UPDATE jobs SET state = 'completed', title = ?4, suggestion = ?5, error = NULL, \
             prompt_tokens = ?6, completion_tokens = ?7, provider = ?8, model = ?9, \
             waiting_since = NULL, lease_until = NULL, updated_at = ?1, completed_at = ?1 \
             WHERE seq = ?2 AND attempt = ?3 AND state = 'running' \
             RETURNING org, application_id, batch_id IS NULL",
        )?
    } else {
        conn.prepare_cached(complete_many())?
    };
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

pub(super) fn record(r: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: r.get(0)?,
        application_id: r.get(1)?,
        state: state(r, 2)?,
        attempt: r.get(3)?,
        created_at: r.get(4)?,
        updated_at: r.get(5)?,
        started_at: r.get(6)?,
        completed_at: r.get(7)?,
        title: r.get(8)?,
        suggestion: r.get(9)?,
        error: r.get(10)?,
        usage: usage(r, 11)?,
        priority: Priority::from_code(r.get(13)?),
        provider: r.get(14)?,
        model: r.get(15)?,
        batch_id: r.get(16)?,
        custom_id: r.get(17)?,
    })
}

/// The tokens in columns `i` (prompt) and `i + 1` (completion), when the backend said.
pub(super) fn usage(r: &Row<'_>, i: usize) -> rusqlite::Result<Option<Usage>> {
    Ok(
        match (r.get::<_, Option<u32>>(i)?, r.get::<_, Option<u32>>(i + 1)?) {
            (Some(prompt_tokens), completion) => Some(Usage {
                prompt_tokens,
                completion_tokens: completion.unwrap_or(0),
            }),
            _ => None,
        },
    )
}

pub(super) fn state(r: &Row<'_>, i: usize) -> rusqlite::Result<JobState> {
    let s: String = r.get(i)?;
    JobState::parse(&s).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            i,
            rusqlite::types::Type::Text,
            format!("unknown job state {s:?}").into(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consecutive completions are one statement that finds each job by its row number;
    /// stale leases and other outcomes are fenced as before, and plain completions counted.
    #[test]
    fn many_completions_are_one_fenced_statement() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&conn).unwrap();
        let mut explain = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {}", complete_many()))
            .unwrap();
        let mut steps = explain.raw_query();
        let mut plan: Vec<String> = Vec::new();
        while let Some(step) = steps.next().unwrap() {
            plan.push(step.get(3).unwrap());
        }
        drop(steps);
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
