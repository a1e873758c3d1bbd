//! The batch statements. An insert is one transaction on one connection: the items as their
//! chunks arrive, each chunk one `INSERT … SELECT FROM unnest(…)` (the `jobs_enqueue`
//! trigger queues the valid ones), then the batch row and its first counter row, then the
//! wake-up. Parts that stop before their end roll it all back. The counts are kept by
//! `jobs_count_update` (0010_batches.sql); reads go through the `batch_records` view, which
//! sums a batch's counter shards.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::errors::map_err;
use super::jobs::query;
use super::{connection, notify};
use crate::store::{
    BatchId, BatchPage, BatchPart, BatchParts, BatchQuery, BatchRecord, BatchStatus, BatchTally,
    JobId, NewBatch, OrgId, Priority, StoreError, unfinished_batch,
};

const RECORD_COLUMNS: &str = "id, application_id, total, completed, failed, created_at, \
     changed_at, priority, metadata, errors";

const INSERT_BATCH: &str = "WITH b AS (INSERT INTO batches (id, org, application_id, total, \
       created_at, priority, metadata, errors) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)) \
     INSERT INTO batch_counts (batch_id, shard, completed, failed, changed_at) \
     VALUES ($1, 0, 0, $9, $5)";

/// A chunk of items; a refused item (one with an error) is inserted failed, and not queued.
const INSERT_ITEMS: &str = "INSERT INTO jobs (id, org, application_id, state, inputs, \
       max_attempts, backoff_initial_ms, backoff_max_ms, run_at, created_at, updated_at, \
       max_wait_ms, priority, application_version, batch_id, custom_id, error, completed_at) \
     SELECT u.id, $5, $6, CASE WHEN u.error IS NULL THEN 'queued' ELSE 'failed' END, u.inputs, \
       $7, $8, $9, $10, $10, $10, $11, $12, $13, $14, u.custom_id, u.error, \
       CASE WHEN u.error IS NOT NULL THEN $10::bigint END \
     FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) \
       AS u(id, inputs, custom_id, error)";

/// Items stored before the batch's priority was known moved to it, in the queue too: the
/// batch's rows are those after the last job before it (no index on `batch_id` needed; a
/// sequence only grows).
const MOVE_PRIORITY: &str = "WITH moved AS (UPDATE jobs SET priority = $1 \
       WHERE seq > $2 AND batch_id = $3 AND priority <> $1 RETURNING seq) \
     UPDATE job_queue q SET priority = $1 FROM moved WHERE q.seq = moved.seq";

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
        let params: [&(dyn ToSql + Sync); 14] = [
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
    let params: [&(dyn ToSql + Sync); 9] = [
        &batch.id,
        &batch.org,
        &batch.application_id,
        &total,
        &now,
        &priority,
        &end.metadata,
        &end.errors,
        &refused,
    ];
    tx.execute(&head, &params).await.map_err(map_err)?;
    if let Some(webhook) = &end.webhook {
        super::webhooks::subscribe(&tx, batch.id, &batch.org, webhook).await?;
    }
    if refused < total {
        notify(&tx).await?;
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
    let sql = format!("SELECT {RECORD_COLUMNS} FROM batch_records WHERE id = $1 AND org = $2");
    let rows = query(pool, &sql, &[&id, &org]).await?;
    rows.first().map(record).transpose()
}

/// A page of an application's batches, newest first, and how many match.
pub(super) async fn list(pool: &Pool, q: &BatchQuery) -> Result<BatchPage, StoreError> {
    let finished = q.status.map(|s| s == BatchStatus::Completed);
    let filter = "org = $1 AND application_id = $2 AND ($3::bool IS NULL OR finished = $3)";
    let page = format!(
        "SELECT {RECORD_COLUMNS} FROM batch_records WHERE {filter} \
         ORDER BY seq DESC LIMIT $4 OFFSET $5"
    );
    let total = format!("SELECT count(*) FROM batch_records WHERE {filter}");
    let (limit, offset) = (
        q.limit.min(i64::MAX as u64) as i64,
        q.offset.min(i64::MAX as u64) as i64,
    );
    let client = connection(pool).await?;
    let (page, total) = (
        client.prepare_cached(&page).await.map_err(map_err)?,
        client.prepare_cached(&total).await.map_err(map_err)?,
    );
    let page_params: [&(dyn ToSql + Sync); 5] =
        [&q.org, &q.application_id, &finished, &limit, &offset];
    let total_params: [&(dyn ToSql + Sync); 3] = [&q.org, &q.application_id, &finished];
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

fn record(r: &Row) -> Result<BatchRecord, StoreError> {
    let count = |i: usize| r.get::<_, i64>(i).max(0) as u64;
    Ok(BatchRecord {
        id: r.try_get(0).map_err(map_err)?,
        application_id: r.get(1),
        total: count(2),
        completed: count(3),
        failed: count(4),
        created_at: r.get(5),
        updated_at: r.get(6),
        priority: Priority::from_code(r.get::<_, i16>(7).into()),
        metadata: r.get(8),
        errors: r.get(9),
    })
}
