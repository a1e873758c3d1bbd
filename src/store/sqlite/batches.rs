//! The batch statements. An insert runs inside the writer's group transaction: the batch row,
//! then every item through one prepared statement (SQLite has no round trip to save, so a
//! statement run per row costs what a multi-row one would, without its bound on parameters).
//! The counts, and the finishing order of the items, are kept by the `jobs_batch_count`
//! trigger (0012_batch_lifecycle.sql). A batch read also reads its recent pace: the last
//! [`THROUGHPUT_WINDOW`] items to run to their end, walked back in `jobs_finished`.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{
    BatchId, BatchPage, BatchQuery, BatchRecord, BatchRetryOutcome, NewBatch, OrgId, Priority,
    THROUGHPUT_WINDOW, Throughput,
};

const RECORD_COLUMNS: &str = "id, application_id, total, completed, failed, cancelled, \
     created_at, changed_at, priority, metadata, errors, cancelled_at";

pub(super) fn insert(
    conn: &Connection,
    batch: &NewBatch,
    now: i64,
) -> rusqlite::Result<BatchRecord> {
    let refused = batch.items.iter().filter(|i| i.refused.is_some()).count() as u64;
    let record = BatchRecord {
        id: batch.id,
        application_id: batch.application_id.clone(),
        total: batch.items.len() as u64,
        completed: 0,
        failed: refused,
        cancelled: 0,
        cancelled_at: None,
        throughput: None,
        created_at: now,
        updated_at: now,
        priority: batch.priority,
        metadata: batch.metadata.clone(),
        errors: batch.errors.clone(),
    };
    conn.prepare_cached(
        "INSERT INTO batches (id, org, application_id, total, completed, failed, created_at, \
         changed_at, priority, metadata, errors) VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?6, ?7, ?8, ?9)",
    )?
    .execute(params![
        batch.id,
        batch.org,
        batch.application_id,
        record.total as i64,
        refused as i64,
        now,
        batch.priority.index() as i64,
        batch.metadata,
        batch.errors,
    ])?;
    if let Some(webhook) = &batch.webhook {
        super::webhooks::subscribe(conn, batch.id, &batch.org, webhook)?;
    }
    let mut item = conn.prepare_cached(
        "INSERT INTO jobs (id, org, application_id, state, inputs, max_attempts, \
         backoff_initial_ms, backoff_max_ms, run_at, created_at, updated_at, max_wait_ms, \
         priority, application_version, batch_id, custom_id, error, completed_at, position, \
         finished_seq) \
         VALUES (?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN 'queued' ELSE 'failed' END, ?5, ?6, ?7, \
         ?8, ?9, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?9 END, \
         ?15, CASE WHEN ?4 IS NULL THEN NULL ELSE ?15 END)",
    )?;
    // A refused item has finished: its position is its place in the finishing order, before
    // every item that runs (see 0012_batch_lifecycle.sql).
    for (position, job) in (1_i64..).zip(&batch.items) {
        item.execute(params![
            job.id,
            batch.org,
            batch.application_id,
            job.refused,
            job.inputs,
            batch.retry.max_attempts,
            batch.retry.backoff_initial_ms as i64,
            batch.retry.backoff_max_ms as i64,
            now,
            batch.retry.max_wait_ms as i64,
            batch.priority.index() as i64,
            batch.application_version,
            batch.id,
            job.custom_id,
            position,
        ])?;
    }
    Ok(record)
}

pub(super) fn get(
    conn: &Connection,
    org: &OrgId,
    id: BatchId,
) -> rusqlite::Result<Option<BatchRecord>> {
    conn.prepare_cached(&format!(
        "SELECT {RECORD_COLUMNS} FROM batches WHERE id = ?1 AND org = ?2"
    ))?
    .query_row(params![id, org], record)
    .optional()?
    .map(|batch| with_throughput(conn, batch))
    .transpose()
}

pub(super) fn list(conn: &Connection, q: &BatchQuery) -> rusqlite::Result<BatchPage> {
    let finished = q.status.map(|s| s.finished());
    let cancelled = q.status.map(|s| s.cancelled());
    let filter = "(?3 IS NULL OR (finished = ?3 AND (cancelled_at IS NOT NULL) = ?4))";
    let batches = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM batches \
             WHERE org = ?1 AND application_id = ?2 AND {filter} \
             ORDER BY seq DESC LIMIT ?5 OFFSET ?6"
        ))?
        .query_map(
            params![
                q.org,
                q.application_id,
                finished,
                cancelled,
                q.limit as i64,
                q.offset as i64
            ],
            record,
        )?
        .map(|batch| with_throughput(conn, batch?))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM batches WHERE org = ?1 AND application_id = ?2 AND {filter}"
        ))?
        .query_row(params![q.org, q.application_id, finished, cancelled], |r| {
            r.get(0)
        })?;
    Ok(BatchPage {
        batches,
        total: total.max(0) as u64,
    })
}

fn record(r: &Row<'_>) -> rusqlite::Result<BatchRecord> {
    let count = |i| r.get::<_, i64>(i).map(|n| n.max(0) as u64);
    Ok(BatchRecord {
        id: r.get(0)?,
        application_id: r.get(1)?,
        total: count(2)?,
        completed: count(3)?,
        failed: count(4)?,
        cancelled: count(5)?,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
        priority: Priority::from_code(r.get(8)?),
        metadata: r.get(9)?,
        errors: r.get(10)?,
        cancelled_at: r.get(11)?,
        throughput: None,
    })
}

/// The batch with its recent pace, while it runs: of the items that ran to their end, the
/// last [`THROUGHPUT_WINDOW`] and when the one before them finished (or, with fewer, all of
/// them since the batch was created).
fn with_throughput(conn: &Connection, mut batch: BatchRecord) -> rusqlite::Result<BatchRecord> {
    if batch.status() != crate::store::BatchStatus::InProgress {
        return Ok(batch);
    }
    let finished: Vec<i64> = conn
        .prepare_cached(
            "SELECT completed_at FROM jobs WHERE batch_id = ?1 AND finished_seq IS NOT NULL \
             AND attempt > 0 AND cancelled_at IS NULL ORDER BY finished_seq DESC LIMIT ?2",
        )?
        .query_map(params![batch.id, THROUGHPUT_WINDOW as i64 + 1], |r| {
            r.get::<_, Option<i64>>(0)
        })?
        .filter_map(|t| t.transpose())
        .collect::<rusqlite::Result<_>>()?;
    batch.throughput = match finished.len() as u64 {
        0 => None,
        n if n > THROUGHPUT_WINDOW => Some(Throughput {
            items: THROUGHPUT_WINDOW,
            since: finished[THROUGHPUT_WINDOW as usize],
        }),
        n => Some(Throughput {
            items: n,
            since: batch.created_at,
        }),
    };
    Ok(batch)
}

/// Queues every failed or cancelled item of a batch of `org` again (not those refused at
/// create: failed without an attempt), found through `jobs_finished`.
pub(super) fn retry(
    conn: &Connection,
    org: &OrgId,
    id: BatchId,
    now: i64,
) -> rusqlite::Result<BatchRetryOutcome> {
    if get(conn, org, id)?.is_none() {
        return Ok(BatchRetryOutcome::NotFound);
    }
    let requeued = conn
        .prepare_cached(
            "UPDATE jobs SET state = 'queued', attempt = 0, run_at = ?2, lease_until = NULL, \
             error = NULL, title = NULL, suggestion = NULL, completed_at = NULL, \
             cancelled_at = NULL, updated_at = ?2 \
             WHERE seq IN (SELECT seq FROM jobs WHERE batch_id = ?1 \
               AND finished_seq IS NOT NULL AND state = 'failed' \
               AND (attempt > 0 OR cancelled_at IS NOT NULL))",
        )?
        .execute(params![id, now])?;
    if requeued == 0 {
        return Ok(BatchRetryOutcome::NothingToRetry);
    }
    Ok(match get(conn, org, id)? {
        Some(batch) => BatchRetryOutcome::Requeued(requeued as u64, batch),
        None => BatchRetryOutcome::NotFound,
    })
}
