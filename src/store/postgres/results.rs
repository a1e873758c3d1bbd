//! A batch's results: its finished items in the order they finished, a page after a cursor,
//! read through `jobs_finished`, up to a horizon. Numbers come from a sequence taken by
//! concurrent transactions, which commit in another order; so a page first waits out every
//! transaction still numbering the batch's items (they hold its advisory lock shared; the
//! reader takes it exclusively, for as long as it takes to read the sequence) and then shows
//! only items numbered up to the sequence's value then: every one of those has committed, so
//! none can appear later behind the cursor (0012_batch_lifecycle.sql).

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::connection;
use super::errors::map_err;
use super::jobs::parse_state;
use crate::store::{BatchResult, ResultQuery, StoreError, Usage};

pub(super) async fn page(pool: &Pool, q: &ResultQuery) -> Result<Vec<BatchResult>, StoreError> {
    let mut client = connection(pool).await?;
    let horizon = {
        let tx = client.transaction().await.map_err(map_err)?;
        let lock = tx
            .prepare_cached("SELECT pg_advisory_xact_lock(batch_order_lock($1))")
            .await
            .map_err(map_err)?;
        let last = tx
            .prepare_cached("SELECT last_value FROM job_finished_seq")
            .await
            .map_err(map_err)?;
        let (_, last) = futures_util::future::try_join(
            tx.execute(&lock, &[&q.batch_id]),
            tx.query_one(&last, &[]),
        )
        .await
        .map_err(map_err)?;
        tx.commit().await.map_err(map_err)?;
        last.get::<_, i64>(0)
    };
    let sql = "SELECT finished_seq, position, custom_id, id, state, title, suggestion, error, \
           prompt_tokens, completion_tokens, inputs FROM ( \
           SELECT finished_seq, position, custom_id, id, \
             CASE WHEN state = 'failed' AND cancelled_at IS NOT NULL THEN 'cancelled' \
               ELSE state END AS state, \
             title, suggestion, error, prompt_tokens, completion_tokens, inputs \
           FROM jobs WHERE batch_id = $1 AND org = $2 AND finished_seq IS NOT NULL \
             AND finished_seq > $3 AND finished_seq <= $4) r \
         WHERE $5::text IS NULL OR state = $5 ORDER BY finished_seq";
    let sql = match q.newest_first {
        false => format!("{sql} LIMIT $6"),
        true => format!("{sql} DESC LIMIT $6"),
    };
    let state = q.state.map(|s| s.as_str());
    let limit = q.limit.min(i64::MAX as u64) as i64;
    let params: [&(dyn ToSql + Sync); 6] =
        [&q.batch_id, &q.org, &q.after, &horizon, &state, &limit];
    let stmt = client.prepare_cached(&sql).await.map_err(map_err)?;
    let rows = client.query(&stmt, &params).await.map_err(map_err)?;
    rows.iter().map(result).collect()
}

fn result(r: &Row) -> Result<BatchResult, StoreError> {
    let tokens = |i: usize| {
        r.get::<_, Option<i64>>(i)
            .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32)
    };
    Ok(BatchResult {
        cursor: r.get(0),
        position: r.get::<_, Option<i64>>(1).unwrap_or(0).max(0) as u64,
        custom_id: r.get::<_, Option<String>>(2).unwrap_or_default(),
        job_id: r.try_get(3).map_err(map_err)?,
        state: parse_state(r.get(4))?,
        title: r.get(5),
        suggestion: r.get(6),
        error: r.get(7),
        usage: tokens(8).map(|prompt_tokens| Usage {
            prompt_tokens,
            completion_tokens: tokens(9).unwrap_or(0),
        }),
        inputs: r.get(10),
    })
}
