//! The batch statements. An insert runs inside the writer's group transaction: the batch row,
//! then every item through one prepared statement (SQLite has no round trip to save, so a
//! statement run per row costs what a multi-row one would, without its bound on parameters).
//! The counts are kept by the `jobs_batch_count` trigger (0008_batches.sql).

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{
    BatchId, BatchPage, BatchQuery, BatchRecord, BatchStatus, NewBatch, OrgId, Priority,
};

const RECORD_COLUMNS: &str = "id, application_id, total, completed, failed, created_at, \
     changed_at, priority, metadata, errors";

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
         priority, application_version, batch_id, custom_id, error, completed_at) \
         VALUES (?1, ?2, ?3, CASE WHEN ?4 IS NULL THEN 'queued' ELSE 'failed' END, ?5, ?6, ?7, \
         ?8, ?9, ?9, ?9, ?10, ?11, ?12, ?13, ?14, ?4, CASE WHEN ?4 IS NULL THEN NULL ELSE ?9 END)",
    )?;
    for job in &batch.items {
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
