//! The batch statements. An insert is one transaction on one connection: the items as their
//! chunks arrive, each chunk one `INSERT … SELECT FROM unnest(…)`, then the batch row, its
//! first counter row and its items' counts in `job_counts`. Parts that stop before their end
//! roll it all back. The valid items get their queue rows after the commit, from the store's
//! queuer (`queueing.rs`, 0018_queued_after_intake.sql). The counts are kept by
//! `jobs_count_update` (0012_batch_lifecycle.sql); reads go through the `batch_records` view,
//! which sums a batch's counter shards, with the batch's recent pace: the last
//! [`THROUGHPUT_WINDOW`] items to run to their end, walked back in `jobs_finished`.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::connection;
use super::errors::map_err;
use super::jobs::query;
use super::jobs::query_then_notify;
use crate::store::{
    BatchId, BatchPage, BatchPart, BatchParts, BatchQuery, BatchRecord, BatchRetryOutcome,
    BatchStatus, BatchTally, JobId, NewBatch, OrgId, Priority, StoreError, THROUGHPUT_WINDOW,
    Throughput, unfinished_batch,
};

/// A batch's columns, with its pace over `jobs_finished` (read by [`record`]): over the last
/// items to run to their end (up to one more than the window), how many and the oldest's end.
const RECORD_COLUMNS: &str = "id, application_id, total, completed, failed, cancelled, \
     created_at, changed_at, priority, metadata, errors, cancelled_at, w.n, w.oldest";

/// What [`RECORD_COLUMNS`] reads from: the batches, each with its window of finished items.
/// `$1` is the window's size.
const RECORDS: &str = "batch_records b CROSS JOIN LATERAL ( \
       SELECT count(*) AS n, min(completed_at) AS oldest FROM ( \
         SELECT completed_at FROM jobs WHERE batch_id = b.id AND finished_seq IS NOT NULL \
           AND attempt > 0 AND cancelled_at IS NULL AND NOT b.finished \
           AND b.cancelled_at IS NULL \
         ORDER BY finished_seq DESC LIMIT $1) last) w";

/// The batch's row with its items' range of `seq` (0016_batch_ranges.sql: after every job
/// there was before, `$10`, up to the last `seq` this connection took, its last item's; none
/// without items), all of it left to the queuer unless every item was refused
/// (0018_queued_after_intake.sql), its first counter row, and its items counted in
/// `job_counts` (the refused ones failed, the rest in progress; 0017_insert_counts.sql), on
/// the connection's shard, in key order as every counter write takes them.
const INSERT_BATCH: &str = "WITH b AS (INSERT INTO batches (id, org, application_id, total, \
       created_at, priority, metadata, errors, first_seq, last_seq, unqueued_from) \
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, CASE WHEN $4::bigint > 0 THEN $10::bigint + 1 END, \
         CASE WHEN $4::bigint > 0 THEN currval(pg_get_serial_sequence('jobs', 'seq')) END, \
         CASE WHEN $4::bigint > $9::bigint THEN $10::bigint + 1 END)), \
     counted AS (INSERT INTO job_counts (org, application_id, status, shard, n) \
       SELECT $2, $3, status, pg_backend_pid() % 16, n \
       FROM (VALUES ('failed', $9::bigint), ('in_progress', $4::bigint - $9::bigint)) c(status, n) \
       WHERE n > 0 ORDER BY status \
       ON CONFLICT (org, application_id, status, shard) \
       DO UPDATE SET n = job_counts.n + excluded.n) \
     INSERT INTO batch_counts (batch_id, shard, completed, failed, changed_at) \
     VALUES ($1, 0, 0, $9, $5)";

/// A chunk of items; a refused item (one with an error) is inserted failed.
const INSERT_ITEMS: &str = "INSERT INTO jobs (id, org, application_id, state, inputs, \
       max_attempts, backoff_initial_ms, backoff_max_ms, run_at, created_at, updated_at, \
       max_wait_ms, priority, application_version, batch_id, custom_id, error, completed_at, \
       position, finished_seq) \
     SELECT u.id, $5, $6, CASE WHEN u.error IS NULL THEN 'queued' ELSE 'failed' END, u.inputs, \
       $7, $8, $9, $10, $10, $10, $11, $12, $13, $14, u.custom_id, u.error, \
       CASE WHEN u.error IS NOT NULL THEN $10::bigint END, $15::bigint + u.at, \
       CASE WHEN u.error IS NOT NULL THEN nextval('job_finished_seq') END \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) WITH ORDINALITY \
       AS u(id, inputs, custom_id, error, at)";

/// Items stored before the batch's priority was known moved to it (they are not queued yet):
/// the batch's rows are those after the last job before it (no index on `batch_id` needed; a
/// sequence only grows).
const MOVE_PRIORITY: &str =
    "UPDATE jobs SET priority = $1 WHERE seq > $2 AND batch_id = $3 AND priority <> $1";

/// `{seq} BETWEEN` the range of `seq` the items of batch `{batch}` took (SQL expressions),
/// where they lie beside, at most, jobs other connections inserted meanwhile
/// (0016_batch_ranges.sql).
pub(super) fn in_range(seq: &str, batch: &str) -> String {
    format!(
        "{seq} BETWEEN (SELECT first_seq FROM batches WHERE id = {batch}) \
           AND (SELECT last_seq FROM batches WHERE id = {batch})"
    )
}

/// Stores `batch` and the items `parts` bring; see the module's doc.
pub(super) async fn insert(
    pool: &Pool,
    batch: &NewBatch,
    mut parts: BatchParts,
    now: i64,
) -> Result<BatchRecord, StoreError> {
    let priority = batch.priority.index() as i16;
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    let before: i64 = tx
        .query_one("SELECT coalesce(max(seq), 0) FROM jobs", &[])
        .await
        .map_err(map_err)?
        .get(0);
    let items = tx.prepare_cached(INSERT_ITEMS).await.map_err(map_err)?;
    let max_attempts = batch.retry.max_attempts as i32;
    let initial = batch.retry.backoff_initial_ms as i64;
    let max = batch.retry.backoff_max_ms as i64;
    let max_wait = batch.retry.max_wait_ms as i64;
    let version = batch.application_version.map(|v| v as i32);
    let mut tally = BatchTally::default();
    let end = loop {
        let chunk = match parts.recv().await {
            Some(BatchPart::Items(chunk)) => chunk,
            Some(BatchPart::End(end)) => break end,
            // Dropping the transaction rolls it back.
            None => return Err(unfinished_batch()),
        };
        let ids: Vec<JobId> = chunk.iter().map(|i| i.id).collect();
        let inputs: Vec<&str> = chunk.iter().map(|i| i.inputs.as_str()).collect();
        let custom_ids: Vec<&str> = chunk.iter().map(|i| i.custom_id.as_str()).collect();
        let errors: Vec<Option<&str>> = chunk.iter().map(|i| i.refused.as_deref()).collect();
        // Positions go on from the chunks before; a refused item has finished, and takes its
        // place in the finishing order now.
        let start = tally.total as i64;
        let params: [&(dyn ToSql + Sync); 15] = [
            &ids,
            &inputs,
            &custom_ids,
            &errors,
            &batch.org,
            &batch.application_id,
            &max_attempts,
            &initial,
            &max,
            &now,
            &max_wait,
            &priority,
            &version,
            &batch.id,
            &start,
        ];
        tx.execute(&items, &params).await.map_err(map_err)?;
        tally.add(&chunk);
    };
    let (total, refused) = (tally.total as i64, tally.refused as i64);
    let priority = end.priority.index() as i16;
    if end.priority != batch.priority {
        tx.execute(MOVE_PRIORITY, &[&priority, &before, &batch.id])
            .await
            .map_err(map_err)?;
    }
    let head = tx.prepare_cached(INSERT_BATCH).await.map_err(map_err)?;
    let params: [&(dyn ToSql + Sync); 10] = [
        &batch.id,
        &batch.org,
        &batch.application_id,
        &total,
        &now,
        &priority,
        &end.metadata,
        &end.errors,
        &refused,
        &before,
    ];
    tx.execute(&head, &params).await.map_err(map_err)?;
    if let Some(webhook) = &end.webhook {
        super::webhooks::subscribe(&tx, batch.id, &batch.org, webhook).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(tally.record(batch, end, now))
}

/// One batch of `org`.
pub(super) async fn get(
    pool: &Pool,
    org: &OrgId,
    id: BatchId,
) -> Result<Option<BatchRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM {RECORDS} WHERE b.id = $2 AND b.org = $3");
    let rows = query(pool, &sql, &[&WINDOW, &id, &org]).await?;
    rows.first().map(record).transpose()
}

/// A page of an application's batches, newest first, and how many match.
pub(super) async fn list(pool: &Pool, q: &BatchQuery) -> Result<BatchPage, StoreError> {
    let finished = q.status.map(BatchStatus::finished);
    let cancelled = q.status.map(BatchStatus::cancelled);
    // The filter's parameters, numbered from `n`.
    let filter = |n: usize| {
        format!(
            "org = ${} AND application_id = ${} AND (${}::bool IS NULL \
             OR (finished = ${} AND (cancelled_at IS NOT NULL) = ${}))",
            n,
            n + 1,
            n + 2,
            n + 2,
            n + 3
        )
    };
    let page = format!(
        "SELECT {RECORD_COLUMNS} FROM {RECORDS} WHERE {} ORDER BY seq DESC LIMIT $6 OFFSET $7",
        filter(2)
    );
    let total = format!("SELECT count(*) FROM batch_records WHERE {}", filter(1));
    let (limit, offset) = (
        q.limit.min(i64::MAX as u64) as i64,
        q.offset.min(i64::MAX as u64) as i64,
    );
    let client = connection(pool).await?;
    let (page, total) = (
        client.prepare_cached(&page).await.map_err(map_err)?,
        client.prepare_cached(&total).await.map_err(map_err)?,
    );
    let page_params: [&(dyn ToSql + Sync); 7] = [
        &WINDOW,
        &q.org,
        &q.application_id,
        &finished,
        &cancelled,
        &limit,
        &offset,
    ];
    let total_params: [&(dyn ToSql + Sync); 4] = [&q.org, &q.application_id, &finished, &cancelled];
    // Both statements go out together on the one connection (tokio-postgres pipelines).
    let (rows, total) = tokio::try_join!(
        client.query(&page, &page_params),
        client.query_one(&total, &total_params),
    )
    .map_err(map_err)?;
    Ok(BatchPage {
        batches: rows.iter().map(record).collect::<Result<_, _>>()?,
        total: total.get::<_, i64>(0).max(0) as u64,
    })
}

/// The window [`RECORDS`] reads: one item more than [`THROUGHPUT_WINDOW`], whose end starts it.
const WINDOW: i64 = THROUGHPUT_WINDOW as i64 + 1;

fn record(r: &Row) -> Result<BatchRecord, StoreError> {
    let count = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    let created_at = r.get(6);
    let throughput = match count(12) {
        0 => None,
        n if n > THROUGHPUT_WINDOW => r.get::<_, Option<i64>>(13).map(|since| Throughput {
            items: THROUGHPUT_WINDOW,
            since,
        }),
        n => Some(Throughput {
            items: n,
            since: created_at,
        }),
    };
    Ok(BatchRecord {
        id: r.try_get(0).map_err(map_err)?,
        application_id: r.get(1),
        total: count(2),
        completed: count(3),
        failed: count(4),
        cancelled: count(5),
        created_at,
        updated_at: r.get(7),
        priority: Priority::from_code(r.get::<_, i16>(8).into()),
        metadata: r.get(9),
        errors: r.get(10),
        cancelled_at: r.get(11),
        throughput,
    })
}

/// Queues every failed or cancelled item of a batch of `org` again, found through
/// `jobs_finished` (not those refused at create: failed without an attempt); each gets its
/// queue row back, fresh, as the retry of one job does.
pub(super) async fn retry(
    pool: &Pool,
    org: &OrgId,
    id: BatchId,
    now: i64,
) -> Result<BatchRetryOutcome, StoreError> {
    if get(pool, org, id).await?.is_none() {
        return Ok(BatchRetryOutcome::NotFound);
    }
    let sql = "WITH r AS (UPDATE jobs SET state = 'queued', attempt = 0, run_at = $3, \
           error = NULL, title = NULL, suggestion = NULL, completed_at = NULL, \
           cancelled_at = NULL, updated_at = $3 \
         WHERE seq = ANY(ARRAY(SELECT seq FROM jobs WHERE batch_id = $1 AND org = $2 \
           AND finished_seq IS NOT NULL AND state = 'failed' \
           AND (attempt > 0 OR cancelled_at IS NOT NULL))) \
           RETURNING seq, started_at, priority), \
         q AS (INSERT INTO job_queue (seq, state, attempt, run_at, started_at, updated_at, \
             org, priority) \
           SELECT seq, 'queued', 0, $3, started_at, $3, $2, priority FROM r) \
         SELECT count(*) FROM r";
    let requeued = |rows: &[Row]| rows.first().map_or(0, |r| r.get::<_, i64>(0));
    let rows = query_then_notify(pool, sql, &[&id, org, &now], |r| requeued(r) > 0).await?;
    let n = requeued(&rows);
    if n == 0 {
        return Ok(BatchRetryOutcome::NothingToRetry);
    }
    Ok(match get(pool, org, id).await? {
        Some(batch) => BatchRetryOutcome::Requeued(n as u64, batch),
        None => BatchRetryOutcome::NotFound,
    })
}
