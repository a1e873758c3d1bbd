//! The batch statements. An insert runs in a transaction of the writer's own
//! ([`Writer::write_alone`](super::writer::Writer::write_alone)): the items as their chunks
//! arrive, [`ROWS`] to a statement (one statement per item would journal every page it
//! touches once per item: SQLite keeps a statement journal for each statement of a longer
//! transaction), each chunk counted in `job_counts` at once (`jobs` has no insert trigger,
//! which would have SQLite copy each statement's rows to a temporary table first:
//! 0013_insert_counts.sql), then the batch row with its counts. Parts that stop
//! before their end roll it all back. The batch's own counts, and the finishing order of its
//! items, are kept by the `jobs_status_change` trigger (0012_one_state_trigger.sql). A batch read
//! also reads its recent pace: the last [`THROUGHPUT_WINDOW`] items to run to their end,
//! walked back in `jobs_finished`.

use rusqlite::{Connection, OptionalExtension, Row, Statement, params};

use super::jobs::count_inserted;
use super::map_err;
use crate::store::{
    BatchId, BatchItem, BatchPage, BatchPart, BatchParts, BatchQuery, BatchRecord,
    BatchRetryOutcome, BatchTally, NewBatch, OrgId, Priority, StoreError, THROUGHPUT_WINDOW,
    Throughput, WriterStatus, unfinished_batch,
};

const RECORD_COLUMNS: &str = "id, application_id, total, completed, failed, cancelled, \
     created_at, changed_at, priority, metadata, errors, cancelled_at";

/// Items one insert statement writes (5 parameters each, beside the batch's 10).
const ROWS: usize = 256;

/// Parameters of the batch that every item row repeats.
const BATCH_PARAMS: usize = 10;

/// Items stored before the batch's priority was known moved to it: the batch's rows are those
/// after the last job before it (no index on `batch_id` needed).
const MOVE_PRIORITY: &str =
    "UPDATE jobs SET priority = ?1 WHERE seq > ?2 AND batch_id = ?3 AND priority <> ?1";

const INSERT_BATCH: &str = "INSERT INTO batches (id, org, application_id, total, completed, \
     failed, created_at, changed_at, priority, metadata, errors) \
     VALUES (?1, ?2, ?3, ?4, 0, ?5, ?6, ?6, ?7, ?8, ?9)";

/// The insert of `rows` items: each `(id, inputs, custom_id, error, position)`; a refused item
/// (one with an error) is inserted failed, its position its place in the finishing order
/// (before every item that runs: see 0011_batch_lifecycle.sql).
fn insert_items(rows: usize) -> String {
    let values: Vec<String> = (0..rows)
        .map(|row| {
            let at = BATCH_PARAMS + 1 + row * 5;
            format!(
                "(?{}, ?{}, ?{}, ?{}, ?{})",
                at,
                at + 1,
                at + 2,
                at + 3,
                at + 4
            )
        })
        .collect();
    format!(
        "INSERT INTO jobs (id, org, application_id, state, inputs, max_attempts, \
         backoff_initial_ms, backoff_max_ms, run_at, created_at, updated_at, max_wait_ms, \
         priority, application_version, batch_id, custom_id, error, completed_at, position, \
         finished_seq) \
         SELECT v.column1, ?1, ?2, CASE WHEN v.column4 IS NULL THEN 'queued' ELSE 'failed' END, \
           v.column2, ?3, ?4, ?5, ?6, ?6, ?6, ?7, ?8, ?9, ?10, v.column3, v.column4, \
           CASE WHEN v.column4 IS NULL THEN NULL ELSE ?6 END, v.column5, \
           CASE WHEN v.column4 IS NULL THEN NULL ELSE v.column5 END \
         FROM (VALUES {}) AS v",
        values.join(", ")
    )
}

/// Stores `batch` and the items `parts` bring, waiting for each chunk (on the writer's
/// thread: the caller feeds it as fast as it reads them).
pub(super) fn insert(
    conn: &Connection,
    batch: &NewBatch,
    mut parts: BatchParts,
    now: i64,
) -> Result<BatchRecord, StoreError> {
    let mut tally = BatchTally::default();
    let before: i64 = conn
        .query_row("SELECT coalesce(max(seq), 0) FROM jobs", [], |r| r.get(0))
        .map_err(map_err)?;
    let end = loop {
        let items = match parts.blocking_recv() {
            Some(BatchPart::Items(items)) => items,
            Some(BatchPart::End(end)) => break end,
            None => return Err(unfinished_batch()),
        };
        insert_chunk(conn, batch, &items, tally.total as i64 + 1, now).map_err(map_err)?;
        tally.add(&items);
    };
    let priority = end.priority.index() as i64;
    if end.priority != batch.priority {
        conn.prepare_cached(MOVE_PRIORITY)
            .and_then(|mut moving| moving.execute(params![priority, before, batch.id]))
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
                priority,
                end.metadata,
                end.errors,
            ])
        })
        .map_err(map_err)?;
    if let Some(webhook) = &end.webhook {
        super::webhooks::subscribe(conn, batch.id, &batch.org, webhook).map_err(map_err)?;
    }
    Ok(tally.record(batch, end, now))
}

/// Inserts one chunk of items, [`ROWS`] a statement, and counts them; the first is at
/// `position` in the batch.
fn insert_chunk(
    conn: &Connection,
    batch: &NewBatch,
    items: &[BatchItem],
    position: i64,
    now: i64,
) -> rusqlite::Result<()> {
    let full = items.len() / ROWS * ROWS;
    if full > 0 {
        let mut many = conn.prepare_cached(&insert_items(ROWS))?;
        for (at, rows) in (position..).step_by(ROWS).zip(items[..full].chunks(ROWS)) {
            insert_rows(&mut many, batch, rows, at, now)?;
        }
    }
    if full < items.len() {
        let mut one = conn.prepare_cached(&insert_items(1))?;
        for (at, row) in (position + full as i64..).zip(items[full..].chunks(1)) {
            insert_rows(&mut one, batch, row, at, now)?;
        }
    }
    let refused = items.iter().filter(|i| i.refused.is_some()).count();
    let (org, app) = (&batch.org, &batch.application_id);
    count_inserted(
        conn,
        org,
        app,
        WriterStatus::InProgress,
        items.len() - refused,
    )?;
    count_inserted(conn, org, app, WriterStatus::Failed, refused)
}

/// Runs `statement` (the insert of exactly `rows.len()` items) for `rows`.
fn insert_rows(
    statement: &mut Statement<'_>,
    batch: &NewBatch,
    rows: &[BatchItem],
    position: i64,
    now: i64,
) -> rusqlite::Result<()> {
    let retry = &batch.retry;
    statement.raw_bind_parameter(1, &batch.org)?;
    statement.raw_bind_parameter(2, &batch.application_id)?;
    statement.raw_bind_parameter(3, retry.max_attempts)?;
    statement.raw_bind_parameter(4, retry.backoff_initial_ms as i64)?;
    statement.raw_bind_parameter(5, retry.backoff_max_ms as i64)?;
    statement.raw_bind_parameter(6, now)?;
    statement.raw_bind_parameter(7, retry.max_wait_ms as i64)?;
    statement.raw_bind_parameter(8, batch.priority.index() as i64)?;
    statement.raw_bind_parameter(9, batch.application_version)?;
    statement.raw_bind_parameter(10, batch.id)?;
    for (row, item) in rows.iter().enumerate() {
        let at = BATCH_PARAMS + 1 + row * 5;
        statement.raw_bind_parameter(at, item.id)?;
        statement.raw_bind_parameter(at + 1, &item.inputs)?;
        statement.raw_bind_parameter(at + 2, &item.custom_id)?;
        statement.raw_bind_parameter(at + 3, &item.refused)?;
        statement.raw_bind_parameter(at + 4, position + row as i64)?;
    }
    statement.raw_execute()?;
    Ok(())
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
