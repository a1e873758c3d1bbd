//! The batch statements. An insert runs in a transaction of the writer's own
//! ([`Writer::write_alone`](super::writer::Writer::write_alone)): the items as their chunks
//! arrive, each through one prepared statement (SQLite has no round trip to save, so a
//! statement run per row costs what a multi-row one would, without its bound on parameters),
//! then the batch row with its counts. Parts that stop before their end roll it all back.
//! The counts are kept by the `jobs_batch_count` trigger (0008_batches.sql).

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::map_err;
use crate::store::{
    BatchId, BatchPage, BatchPart, BatchParts, BatchQuery, BatchRecord, BatchStatus, BatchTally,
    NewBatch, OrgId, Priority, StoreError, unfinished_batch,
};

const RECORD_COLUMNS: &str = "id, application_id, total, completed, failed, created_at, \
     changed_at, priority, metadata, errors";

/// One item; a refused item (one with an error) is inserted failed.
const INSERT_ITEM: &str = "INSERT INTO jobs (id, org, application_id, state, inputs, \
     max_attempts, backoff_initial_ms, backoff_max_ms, run_at, created_at, updated_at, \
     max_wait_ms, priority, application_version, batch_id, custom_id, error, completed_at) \
     VALUES (?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN 'queued' ELSE 'failed' END, ?5, ?6, ?7, \
     ?8, ?9, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?9 END)";

/// Items stored before the batch's priority was known moved to it: the batch's rows are those
/// after the last job before it (no index on `batch_id` needed).
const MOVE_PRIORITY: &str =
    "UPDATE jobs SET priority = ?1 WHERE seq > ?2 AND batch_id = ?3 AND priority <> ?1";

const INSERT_BATCH: &str = "INSERT INTO batches (id, org, application_id, total, completed, \
     failed, created_at, changed_at, priority, metadata, errors) \
     VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?6, ?7, ?8, ?9)";

/// Stores `batch` and the items `parts` bring, waiting for each chunk (on the writer's
/// thread: the caller feeds it as fast as it reads them).
pub(super) fn insert(
    conn: &Connection,
    batch: &NewBatch,
    mut parts: BatchParts,
    now: i64,
) -> Result<BatchRecord, StoreError> {
    let mut tally = BatchTally::default();
    let mut item = conn.prepare_cached(INSERT_ITEM).map_err(map_err)?;
    let priority = batch.priority.index() as i64;
    let before: i64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM jobs", [], |r| r.get(0))
        .map_err(map_err)?;
    let end = loop {
        let items = match parts.blocking_recv() {
            Some(BatchPart::Items(items)) => items,
            Some(BatchPart::End(end)) => break end,
            None => return Err(unfinished_batch()),
        };
        for job in &items {
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
                priority,
                batch.application_version,
                batch.id,
                job.custom_id,
            ])
            .map_err(map_err)?;
        }
        tally.add(&items);
    };
    if end.priority != batch.priority {
        conn.prepare_cached(MOVE_PRIORITY)
            .and_then(|mut moving| {
                moving.execute(params![end.priority.index() as i64, before, batch.id])
            })
            .map_err(map_err)?;
    }
    conn.prepare_cached(INSERT_BATCH)
        .and_then(|mut head| {
            head.execute(params![
                batch.id,
                batch.org,
                batch.application_id,
                tally.total as i64,
                tally.refused as i64,
                now,
                end.priority.index() as i64,
                end.metadata,
                end.errors,
            ])
        })
        .map_err(map_err)?;
    Ok(tally.record(batch, end, now))
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
    .optional()
}

pub(super) fn list(conn: &Connection, q: &BatchQuery) -> rusqlite::Result<BatchPage> {
    let finished = q.status.map(|s| s == BatchStatus::Completed);
    let filter = "(?3 IS NULL OR finished = ?3)";
    let batches = conn
        .prepare_cached(&format!(
            "SELECT {RECORD_COLUMNS} FROM batches \
             WHERE org = ?1 AND application_id = ?2 AND {filter} \
             ORDER BY seq DESC LIMIT ?4 OFFSET ?5"
        ))?
        .query_map(
            params![
                q.org,
                q.application_id,
                finished,
                q.limit as i64,
                q.offset as i64
            ],
            record,
        )?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM batches WHERE org = ?1 AND application_id = ?2 AND {filter}"
        ))?
        .query_row(params![q.org, q.application_id, finished], |r| r.get(0))?;
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
        created_at: r.get(5)?,
        updated_at: r.get(6)?,
        priority: Priority::from_code(r.get(7)?),
        metadata: r.get(8)?,
        errors: r.get(9)?,
    })
}
