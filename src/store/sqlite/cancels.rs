//! Cancelling: of one job, of a batch's items in progress (one statement), and the end of a
//! running job's cancel, when its heartbeat finds the lease gone or its lease lapses
//! (0011_batch_lifecycle.sql tells the model).

use rusqlite::{Connection, OptionalExtension, params};

use super::claims::WAITING;
use super::{batches, jobs};
use crate::store::{BatchId, BatchRecord, CancelOutcome, JobId, JobRecord, Lease, OrgId};

/// The error a cancelled job keeps.
const CANCELLED: &str = "cancelled";

/// Cancels the jobs `which` selects (a condition on `jobs`, parameters from ?3) at ?1: a
/// waiting one ends cancelled, a running one becomes `cancelling` (keeping its lease, so the
/// reaper still finds it). Answers, per job touched, whether it was running.
fn cancel_sql(which: &str) -> String {
    format!(
        "UPDATE jobs SET \
           state = CASE state WHEN 'running' THEN 'cancelling' ELSE 'failed' END, \
           error = CASE state WHEN 'running' THEN error ELSE ?2 END, \
           completed_at = CASE state WHEN 'running' THEN NULL ELSE ?1 END, \
           lease_until = CASE state WHEN 'running' THEN lease_until END, \
           waiting_since = NULL, cancelled_at = ?1, updated_at = ?1 \
         WHERE {which} RETURNING state = 'cancelling'"
    )
}

/// Cancels one job of `org`; answers it as it is now, and whether a running call must stop.
pub(super) fn job(
    conn: &Connection,
    org: &OrgId,
    id: JobId,
    now: i64,
) -> rusqlite::Result<(CancelOutcome<JobRecord>, bool)> {
    let running = conn
        .prepare_cached(&cancel_sql(&format!(
            "id = ?3 AND org = ?4 AND ({WAITING} OR state = 'running')"
        )))?
        .query_row(params![now, CANCELLED, id, org], |r| r.get::<_, bool>(0))
        .optional()?;
    let outcome = match jobs::get(conn, org, id)? {
        None => CancelOutcome::NotFound,
        Some(job) if running.is_some() || job.state == crate::store::JobState::Cancelling => {
            CancelOutcome::Cancelled(job)
        }
        Some(_) => CancelOutcome::Finished,
    };
    Ok((outcome, running == Some(true)))
}

/// Cancels every item of a batch of `org` still in progress and records when (unless a
/// cancel was asked before); answers the batch as it is now, and whether running calls must
/// stop. Its waiting items are found in `jobs_due` among its organisation's, its running ones
/// among the running jobs: no index over every batch item is needed.
pub(super) fn batch(
    conn: &Connection,
    org: &OrgId,
    id: BatchId,
    now: i64,
) -> rusqlite::Result<(CancelOutcome<BatchRecord>, bool)> {
    match batches::get(conn, org, id)? {
        None => return Ok((CancelOutcome::NotFound, false)),
        Some(batch) if batch.status().finished() => return Ok((CancelOutcome::Finished, false)),
        Some(_) => {}
    }
    let running = conn
        .prepare_cached(&cancel_sql(&format!(
            "seq IN (SELECT seq FROM jobs WHERE org = ?4 AND {WAITING} AND batch_id = ?3 \
             UNION ALL SELECT seq FROM jobs WHERE state = 'running' AND batch_id = ?3)"
        )))?
        .query_map(params![now, CANCELLED, id, org], |r| r.get::<_, bool>(0))?
        .collect::<rusqlite::Result<Vec<bool>>>()?
        .contains(&true);
    conn.prepare_cached(
        "UPDATE batches SET cancelled_at = coalesce(cancelled_at, ?3), changed_at = ?3 \
         WHERE id = ?1 AND org = ?2",
    )?
    .execute(params![id, org, now])?;
    let batch = batches::get(conn, org, id)?;
    Ok((
        batch.map_or(CancelOutcome::NotFound, CancelOutcome::Cancelled),
        running,
    ))
}

/// Ends cancelled those of these leases' jobs that are `cancelling` (their heartbeat found
/// the lease gone, and their calls are being stopped).
pub(super) fn end(conn: &Connection, leases: &[Lease], now: i64) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(
        "UPDATE jobs SET state = 'failed', error = ?3, lease_until = NULL, completed_at = ?4, \
         updated_at = ?4 WHERE seq = ?1 AND attempt = ?2 AND state = 'cancelling'",
    )?;
    leases.iter().try_fold(0, |n, l| {
        Ok(n + stmt.execute(params![l.seq, l.attempt, CANCELLED, now])?)
    })
}

/// Ends cancelled the `cancelling` jobs whose lease lapsed before `before` (their worker
/// died, or finished the call before its heartbeat heard).
pub(super) fn end_lapsed(conn: &Connection, before: i64, now: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE jobs SET state = 'failed', error = ?2, lease_until = NULL, completed_at = ?3, \
         updated_at = ?3 WHERE state = 'cancelling' AND lease_until < ?1",
    )?
    .execute(params![before, CANCELLED, now])
}
