//! The job statements. Each function runs inside a transaction its caller opened: the
//! writer's group transaction for writes, an implicit read transaction for reads.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{
    ApplicationId, EndedAttempt, Inserted, JobCount, JobId, JobInputs, JobPage, JobQuery,
    JobRecord, JobState, NewJob, OrgId, Priority, RetryOutcome, Usage, WriterStatus,
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
/// (or just completed: see `leases::complete_chunk`).
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
