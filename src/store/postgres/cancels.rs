//! Cancelling: of one job, of a batch's items in progress (one statement), and the end of a
//! running job's cancel, when its heartbeat finds the lease gone or its lease lapses. Same
//! semantics as SQLite's `cancels.rs` (0012_batch_lifecycle.sql tells the model). A job in
//! progress has a queue row, or is a batch's item not queued yet (0018_queued_after_intake.sql):
//! a waiting one leaves the queue, cancelled, in the statement that cancels it; one not queued
//! yet ends cancelled in the same statement, under its batch's queueing lock, which keeps the
//! queuer from queueing it meanwhile; a running one's row becomes `cancelling` (and keeps its
//! lease, so the reaper still finds it), and the statement notifies every node's heartbeat
//! (through `scriptorium_cancels`), which renews at once and so stops the call wherever it
//! runs. Queue rows are locked in `seq` order, as a batch of outcomes locks them, so the two
//! cannot deadlock.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::errors::map_err;
use super::jobs::{Params, query};
use super::{batches, connection, jobs};
use crate::store::{
    BatchId, BatchRecord, CancelOutcome, JobId, JobRecord, JobState, Lease, OrgId, StoreError,
};

/// The error a cancelled job keeps.
const CANCELLED: &str = "cancelled";

/// Cancels, at $1 ($2: the error), the jobs whose queue rows `queued` selects (`seq, state`,
/// locked) and the batch items not queued yet that `stored` selects (`seq`), then runs the
/// common table expressions `also` (each followed by a comma; they may read `t` and `s`, the
/// rows selected): answers how many jobs were touched and how many of them were running.
fn cancel_sql(queued: &str, stored: &str, also: &str) -> String {
    format!(
        "WITH t AS ({queued}), s AS ({stored}), {also} \
         gone AS (DELETE FROM job_queue q USING t \
           WHERE q.seq = ANY(ARRAY(SELECT seq FROM t WHERE state <> 'running')) \
             AND q.seq = t.seq RETURNING q.seq, q.attempt, q.started_at), \
         stopping AS (UPDATE job_queue q SET state = 'cancelling', updated_at = $1 \
           WHERE q.seq = ANY(ARRAY(SELECT seq FROM t WHERE state = 'running')) \
           RETURNING q.seq), \
         m AS (SELECT seq, attempt, started_at, false AS running FROM gone \
           UNION ALL SELECT seq, NULL, NULL, true FROM stopping \
           UNION ALL SELECT seq, NULL, NULL, false FROM s), \
         j AS (UPDATE jobs j SET cancelled_at = $1, updated_at = $1, \
             state = CASE WHEN m.running THEN j.state ELSE 'failed' END, \
             attempt = coalesce(m.attempt, j.attempt), \
             started_at = CASE WHEN m.running THEN j.started_at ELSE m.started_at END, \
             error = CASE WHEN m.running THEN j.error ELSE $2 END, \
             completed_at = CASE WHEN m.running THEN j.completed_at ELSE $1 END \
           FROM m WHERE j.seq = ANY(ARRAY(SELECT seq FROM m)) AND j.seq = m.seq RETURNING 1) \
         SELECT (SELECT count(*) FROM j), (SELECT count(*) FROM stopping), \
           (SELECT count(*) FROM (SELECT pg_notify('scriptorium_cancels', \
             coalesce(current_schema(), '')) FROM (SELECT 1 FROM stopping LIMIT 1) s) n)"
    )
}

/// Of a batch's items `j` from the first its queuer has not reached (`b.unqueued_from`), those
/// still waiting without a queue row (one cancelled before it was queued, then retried, has
/// one).
const STORED: &str = "j.state = 'queued' AND j.cancelled_at IS NULL \
     AND NOT EXISTS (SELECT 1 FROM job_queue q WHERE q.seq = j.seq)";

/// Runs `lock` (which takes the queueing lock of the batch it finds, if that batch is still
/// being queued) and then the cancel `sql` in one transaction: `sql`, a statement of its own,
/// sees the batch as the queuer left it.
async fn under_queueing_lock(
    pool: &Pool,
    lock: &str,
    lock_params: &Params<'_>,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    let lock = tx.prepare_cached(lock).await.map_err(map_err)?;
    tx.query(&lock, lock_params).await.map_err(map_err)?;
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    let rows = tx.query(&stmt, params).await.map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(rows)
}

/// Cancels one job of `org`; answers it as it is now, and whether a running call must stop.
pub(super) async fn job(
    pool: &Pool,
    org: &OrgId,
    id: JobId,
    now: i64,
) -> Result<(CancelOutcome<JobRecord>, bool), StoreError> {
    let lock = "SELECT pg_advisory_xact_lock(batch_queueing_lock(b.id)) \
         FROM jobs j JOIN batches b ON b.id = j.batch_id \
         WHERE j.id = $1 AND j.org = $2 AND b.unqueued_from IS NOT NULL";
    let sql = cancel_sql(
        "SELECT q.seq, q.state FROM job_queue q \
         WHERE q.seq = (SELECT seq FROM jobs WHERE id = $3 AND org = $4) \
           AND q.state <> 'cancelling' FOR UPDATE",
        &format!(
            "SELECT j.seq FROM jobs j JOIN batches b ON b.id = j.batch_id \
             WHERE j.id = $3 AND j.org = $4 AND j.seq >= b.unqueued_from AND {STORED}"
        ),
        "",
    );
    let params: [&(dyn ToSql + Sync); 4] = [&now, &CANCELLED, &id, org];
    let rows = under_queueing_lock(pool, lock, &[&id, org], &sql, &params).await?;
    let (touched, running) = counts(&rows);
    let outcome = match jobs::get(pool, org, id).await? {
        None => CancelOutcome::NotFound,
        Some(job) if touched > 0 || job.state == JobState::Cancelling => {
            CancelOutcome::Cancelled(job)
        }
        Some(_) => CancelOutcome::Finished,
    };
    Ok((outcome, running > 0))
}

/// Cancels every item of a batch of `org` still in progress and records when (unless a
/// cancel was asked before); answers the batch as it is now, and whether running calls must
/// stop. Its items in progress are the queue rows in its range of `seq`
/// (0016_batch_ranges.sql) and its items not queued yet, which nothing need queue any more.
/// A batch whose last items finished between the check and the statement is not marked
/// cancelled: it answers finished, as it would a moment later.
pub(super) async fn batch(
    pool: &Pool,
    org: &OrgId,
    id: BatchId,
    now: i64,
) -> Result<(CancelOutcome<BatchRecord>, bool), StoreError> {
    match batches::get(pool, org, id).await? {
        None => return Ok((CancelOutcome::NotFound, false)),
        Some(batch) if batch.status().finished() => return Ok((CancelOutcome::Finished, false)),
        Some(_) => {}
    }
    let lock = "SELECT pg_advisory_xact_lock(batch_queueing_lock(id)) FROM batches \
         WHERE id = $1 AND org = $2 AND unqueued_from IS NOT NULL";
    let sql = cancel_sql(
        &format!(
            "SELECT q.seq, q.state FROM job_queue q JOIN jobs j ON j.seq = q.seq \
             WHERE {} AND q.org = $4 AND j.batch_id = $3 AND q.state <> 'cancelling' \
             ORDER BY q.seq FOR UPDATE OF q",
            batches::in_range("q.seq", "$3")
        ),
        &format!(
            "SELECT j.seq FROM batches b JOIN jobs j \
               ON j.seq BETWEEN b.unqueued_from AND b.last_seq AND j.batch_id = b.id \
             WHERE b.id = $3 AND b.org = $4 AND {STORED}"
        ),
        "marked AS (UPDATE batches SET cancelled_at = coalesce(cancelled_at, $1), \
             unqueued_from = NULL \
           WHERE id = $3 AND org = $4 \
             AND (EXISTS (SELECT 1 FROM t) OR EXISTS (SELECT 1 FROM s)) RETURNING id),",
    );
    let params: [&(dyn ToSql + Sync); 4] = [&now, &CANCELLED, &id, org];
    let rows = under_queueing_lock(pool, lock, &[&id, org], &sql, &params).await?;
    let (touched, running) = counts(&rows);
    let outcome = match batches::get(pool, org, id).await? {
        None => CancelOutcome::NotFound,
        Some(batch) if touched == 0 && batch.status().finished() => CancelOutcome::Finished,
        Some(batch) => CancelOutcome::Cancelled(batch),
    };
    Ok((outcome, running > 0))
}

fn counts(rows: &[Row]) -> (i64, i64) {
    rows.first().map_or((0, 0), |r| (r.get(0), r.get(1)))
}

/// Ends cancelled the `cancelling` jobs whose queue rows `which` selects ($1: now, $2: the
/// error): each leaves the queue, and its `jobs` row records the run it ended.
fn end_sql(which: &str) -> String {
    format!(
        "WITH gone AS (DELETE FROM job_queue q WHERE q.seq = ANY(ARRAY({which})) \
           AND q.state = 'cancelling' RETURNING q.seq, q.attempt, q.started_at), \
         j AS (UPDATE jobs j SET state = 'failed', attempt = g.attempt, \
             started_at = g.started_at, error = $2, completed_at = $1, updated_at = $1 \
           FROM gone g WHERE j.seq = ANY(ARRAY(SELECT seq FROM gone)) AND j.seq = g.seq \
           RETURNING 1) \
         SELECT count(*) FROM j"
    )
}

/// Ends cancelled those of these lost leases' jobs that are `cancelling`.
pub(super) async fn end(pool: &Pool, lost: &[Lease], now: i64) -> Result<usize, StoreError> {
    let (seq, attempt): (Vec<i64>, Vec<i32>) =
        lost.iter().map(|l| (l.seq, l.attempt as i32)).unzip();
    let sql = end_sql(
        "SELECT q.seq FROM job_queue q \
         JOIN unnest($3::bigint[], $4::int[]) AS u(seq, attempt) \
           ON q.seq = u.seq AND q.attempt = u.attempt \
         WHERE q.seq = ANY(ARRAY(SELECT unnest($3::bigint[]))) AND q.state = 'cancelling' \
         FOR UPDATE OF q SKIP LOCKED",
    );
    let params: [&(dyn ToSql + Sync); 4] = [&now, &CANCELLED, &seq, &attempt];
    let rows = query(pool, &sql, &params).await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as usize)
}

/// Ends cancelled the `cancelling` jobs whose lease lapsed before `now` (their worker died,
/// or finished the call before its heartbeat heard).
pub(super) async fn end_lapsed(pool: &Pool, now: i64) -> Result<usize, StoreError> {
    let sql = end_sql(
        "SELECT seq FROM job_queue WHERE lease_until < $1 AND state = 'cancelling' \
         FOR UPDATE SKIP LOCKED",
    );
    let params: [&(dyn ToSql + Sync); 2] = [&now, &CANCELLED];
    let rows = query(pool, &sql, &params).await?;
    Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as usize)
}
