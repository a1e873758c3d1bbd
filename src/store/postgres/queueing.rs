//! The queuer: gives a batch's stored items their `job_queue` rows after the batch's insert
//! has committed (0018_queued_after_intake.sql tells why), [`CHUNK`] items a transaction,
//! each moving the batch's `unqueued_from` past them and waking every node's engine.
//!
//! One task per store. It looks for batches to queue when it starts, when this node stored a
//! batch ([`Queuer::wake`]) and every [`SWEEP`], so a batch that a stopped node left half
//! queued is finished by whichever node looks next. Each chunk's transaction first takes the
//! batch's `batch_queueing_lock` if it is free; a batch whose lock is held (another node is
//! queueing it, or a cancel is ending its items) is left to the holder.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Object, Pool};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::errors::map_err;
use super::{connection, notify};
use crate::report::Chain;
use crate::store::{BatchId, StoreError};

/// Items queued by one transaction at most: a cancel of the batch waits for one chunk.
const CHUNK: i64 = 4096;
/// How often the queuer looks for batches left unqueued without being woken.
const SWEEP: Duration = Duration::from_secs(5);

/// The batches still being queued, oldest first.
const UNQUEUED: &str = "SELECT id FROM batches WHERE unqueued_from IS NOT NULL ORDER BY seq";

/// The batch's queueing lock, if no other transaction holds it.
const LOCK: &str = "SELECT pg_try_advisory_xact_lock(batch_queueing_lock($1))";

/// Queues the next chunk of batch `$1` (read after its lock is held, so as its last holder
/// left it): queue rows for its items still `queued` in the chunk's range of `seq`, but not
/// for an item that has one already (cancelled before it was queued, then retried); answers
/// how many, and where the batch's unqueued items now start (NULL: nowhere). `NOT EXISTS`
/// rather than `ON CONFLICT DO NOTHING`: callgrind counted 34,000 instructions an item
/// against 39,600 (28,100 with no check). A retry that queues such an item between the
/// check and the insert fails the chunk, which the next round does again.
const QUEUE_CHUNK: &str = "WITH b AS (SELECT id, unqueued_from AS first, \
       least(unqueued_from + $2 - 1, last_seq) AS last, last_seq \
       FROM batches WHERE id = $1 AND unqueued_from IS NOT NULL), \
     queued AS (INSERT INTO job_queue (seq, state, attempt, run_at, started_at, updated_at, \
         org, priority) \
       SELECT j.seq, j.state, j.attempt, j.run_at, j.started_at, j.updated_at, j.org, \
         j.priority \
       FROM b JOIN jobs j ON j.seq BETWEEN b.first AND b.last \
       WHERE j.batch_id = $1 AND j.state = 'queued' \
         AND NOT EXISTS (SELECT 1 FROM job_queue q WHERE q.seq = j.seq) RETURNING 1), \
     moved AS (UPDATE batches SET unqueued_from = \
         CASE WHEN b.last < b.last_seq THEN b.last + 1 END \
       FROM b WHERE batches.id = b.id RETURNING batches.unqueued_from) \
     SELECT (SELECT count(*) FROM queued), (SELECT unqueued_from FROM moved)";

/// The running queuer of a store.
pub(super) struct Queuer {
    wake: Arc<Notify>,
    task: JoinHandle<()>,
}

impl Queuer {
    /// Tells the queuer a batch was stored.
    pub(super) fn wake(&self) {
        self.wake.notify_one();
    }
}

impl Drop for Queuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Starts the queuer of the store whose connections `pool` gives.
pub(super) fn spawn(pool: Pool) -> Queuer {
    let wake = Arc::new(Notify::new());
    let task = tokio::spawn(run(pool, wake.clone()));
    Queuer { wake, task }
}

async fn run(pool: Pool, wake: Arc<Notify>) {
    loop {
        if let Err(e) = queue_all(&pool).await {
            tracing::warn!(error = %Chain(&e), "queueing stored batch items failed; trying again");
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(SWEEP) => {}
        }
    }
}

/// Queues the items of every batch stored but not yet queued, except those of batches another
/// transaction holds.
async fn queue_all(pool: &Pool) -> Result<(), StoreError> {
    let mut client = connection(pool).await?;
    let unqueued = client.prepare_cached(UNQUEUED).await.map_err(map_err)?;
    let batches = client.query(&unqueued, &[]).await.map_err(map_err)?;
    for row in batches {
        let batch: BatchId = row.try_get(0).map_err(map_err)?;
        while queue_chunk(&mut client, batch).await? {}
    }
    Ok(())
}

/// Queues the next chunk of `batch`'s items; answers whether this connection should go on
/// with the batch (items remain, and no one else held it).
async fn queue_chunk(client: &mut Object, batch: BatchId) -> Result<bool, StoreError> {
    let tx = client.transaction().await.map_err(map_err)?;
    let lock = tx.prepare_cached(LOCK).await.map_err(map_err)?;
    if !tx
        .query_one(&lock, &[&batch])
        .await
        .map_err(map_err)?
        .get::<_, bool>(0)
    {
        return Ok(false);
    }
    let chunk = tx.prepare_cached(QUEUE_CHUNK).await.map_err(map_err)?;
    let row = tx
        .query_one(&chunk, &[&batch, &CHUNK])
        .await
        .map_err(map_err)?;
    let (queued, rest): (i64, Option<i64>) = (row.get(0), row.get(1));
    if queued > 0 {
        notify(&tx).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(rest.is_some())
}
