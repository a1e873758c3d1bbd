//! The webhook statements: a batch's subscription (written in the batch's insert), the
//! secrets, and the outbox's claims (`FOR UPDATE SKIP LOCKED`, so nodes take disjoint
//! events), attempts and listing. The same semantics as SQLite's `webhooks.rs`; the events
//! themselves are written by the triggers of 0011_webhooks.sql.

use std::time::Duration;

use deadpool_postgres::{Pool, Transaction};
use tokio_postgres::Row;

use super::errors::map_err;
use super::jobs::query;
use super::{PostgresStore, connection};
use crate::report::Cause;
use crate::store::{
    AttemptRecord, BatchId, ClaimedEvent, Delivery, DeliveryPage, DeliveryQuery, EventKind,
    EventRecord, EventStatus, NextStep, OrgId, Outbox, SigningSecrets, StoreError, StoreFuture,
    Subscription, after,
};

/// Records where a new batch's events go, in the batch's insert transaction, after its row.
pub(super) async fn subscribe(
    tx: &Transaction<'_>,
    batch: BatchId,
    org: &OrgId,
    webhook: &Subscription,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(
            "INSERT INTO batch_webhooks (batch_id, org, url, events) VALUES ($1, $2, $3, $4)",
        )
        .await
        .map_err(map_err)?;
    tx.execute(&stmt, &[&batch, org, &webhook.url, &webhook.events.bits()])
        .await
        .map_err(map_err)?;
    Ok(())
}

async fn secret(
    pool: &Pool,
    org: &OrgId,
    fresh: &str,
    now: i64,
) -> Result<SigningSecrets, StoreError> {
    let insert = "INSERT INTO webhook_secrets (org, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT DO NOTHING";
    query(pool, insert, &[org, &fresh, &now]).await?;
    // A statement of its own, so it sees a secret a concurrent first use just committed.
    let select = "SELECT secret, previous, created_at FROM webhook_secrets WHERE org = $1";
    let rows = query(pool, select, &[org]).await?;
    let row = rows
        .first()
        .ok_or_else(|| StoreError::Database(Cause::message("the webhook secret vanished")))?;
    Ok(SigningSecrets {
        current: row.get(0),
        previous: row.get::<_, Option<String>>(1).map(|p| (p, row.get(2))),
    })
}

async fn rotate(pool: &Pool, org: &OrgId, fresh: &str, now: i64) -> Result<(), StoreError> {
    let upsert = "INSERT INTO webhook_secrets (org, secret, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (org) DO UPDATE SET previous = webhook_secrets.secret, \
             secret = excluded.secret, created_at = excluded.created_at";
    query(pool, upsert, &[org, &fresh, &now]).await.map(drop)
}

const CLAIM: &str = "UPDATE webhook_events e SET attempts = e.attempts + 1, next_at = $3 \
     FROM (SELECT seq FROM webhook_events WHERE state = 'pending' AND next_at <= $2 \
         ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED) due \
     WHERE e.seq = due.seq \
     RETURNING e.seq, e.id, e.org, e.type, e.batch_id, e.job_id, e.url, e.created_at, e.attempts";

async fn claim(
    pool: &Pool,
    limit: usize,
    now: i64,
    until: i64,
) -> Result<Vec<ClaimedEvent>, StoreError> {
    let rows = query(pool, CLAIM, &[&(limit as i64), &now, &until]).await?;
    rows.iter()
        .map(|r| {
            Ok(ClaimedEvent {
                seq: r.get(0),
                id: r.get(1),
                org: r.get(2),
                kind: kind(r, 3)?,
                batch_id: r.try_get(4).map_err(map_err)?,
                job_id: r.try_get(5).map_err(map_err)?,
                url: r.get(6),
                created_at: r.get(7),
                attempt: r.get::<_, i32>(8).max(0) as u32,
            })
        })
        .collect()
}

/// The attempt and the fenced move of its event, in one statement.
const RECORD: &str = "WITH attempt AS (INSERT INTO webhook_attempts \
       (event_seq, attempt, at, duration_ms, status_code, error) \
       VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING) \
     UPDATE webhook_events SET state = $7, next_at = coalesce($8, next_at) \
     WHERE seq = $1 AND attempts = $2 AND state = 'pending'";

async fn record(pool: &Pool, d: &Delivery) -> Result<bool, StoreError> {
    let a = &d.record;
    let (state, next_at) = match d.next {
        NextStep::Delivered => (EventStatus::Delivered, None),
        NextStep::RetryAt(at) => (EventStatus::Pending, Some(at)),
        NextStep::GiveUp => (EventStatus::Failed, None),
    };
    let client = connection(pool).await?;
    let stmt = client.prepare_cached(RECORD).await.map_err(map_err)?;
    let moved = client
        .execute(
            &stmt,
            &[
                &d.seq,
                &(a.attempt as i32),
                &a.at,
                &(a.duration_ms.min(i64::MAX as u64) as i64),
                &a.status_code.map(i32::from),
                &a.error,
                &state.as_str(),
                &next_at,
            ],
        )
        .await
        .map_err(map_err)?;
    Ok(moved == 1)
}

async fn list(pool: &Pool, q: &DeliveryQuery) -> Result<DeliveryPage, StoreError> {
    let filter = "org = $1 AND ($2::text IS NULL OR batch_id = $2)";
    let page = format!(
        "SELECT seq, id, type, batch_id, job_id, url, state, created_at, next_at \
         FROM webhook_events WHERE {filter} ORDER BY seq DESC LIMIT $3 OFFSET $4"
    );
    let (limit, offset) = (
        q.limit.min(i64::MAX as u64) as i64,
        q.offset.min(i64::MAX as u64) as i64,
    );
    let rows = query(pool, &page, &[&q.org, &q.batch_id, &limit, &offset]).await?;
    let seqs: Vec<i64> = rows.iter().map(|r| r.get(0)).collect();
    let attempts = query(
        pool,
        "SELECT event_seq, attempt, at, duration_ms, status_code, error FROM webhook_attempts \
         WHERE event_seq = ANY($1) ORDER BY event_seq, attempt",
        &[&seqs],
    )
    .await?;
    let total = query(
        pool,
        &format!("SELECT count(*) FROM webhook_events WHERE {filter}"),
        &[&q.org, &q.batch_id],
    )
    .await?;
    let mut events = rows.iter().map(event).collect::<Result<Vec<_>, _>>()?;
    for r in &attempts {
        let at = seqs.iter().position(|&s| s == r.get::<_, i64>(0));
        if let Some(event) = at.and_then(|i| events.get_mut(i)) {
            event.attempts.push(AttemptRecord {
                attempt: r.get::<_, i32>(1).max(0) as u32,
                at: r.get(2),
                duration_ms: r.get::<_, i64>(3).max(0) as u64,
                status_code: r
                    .get::<_, Option<i32>>(4)
                    .and_then(|c| u16::try_from(c).ok()),
                error: r.get(5),
            });
        }
    }
    Ok(DeliveryPage {
        events,
        total: total
            .first()
            .map_or(0, |r| r.get::<_, i64>(0).max(0) as u64),
    })
}

/// An event from `seq, id, type, batch_id, job_id, url, state, created_at, next_at`, without
/// its attempts.
fn event(r: &Row) -> Result<EventRecord, StoreError> {
    let status = r.get::<_, &str>(6);
    let status = EventStatus::parse(status).ok_or_else(|| bad(status))?;
    Ok(EventRecord {
        id: r.get(1),
        kind: kind(r, 2)?,
        batch_id: r.try_get(3).map_err(map_err)?,
        job_id: r.try_get(4).map_err(map_err)?,
        url: r.get(5),
        created_at: r.get(7),
        next_attempt_at: (status == EventStatus::Pending).then(|| r.get(8)),
        status,
        attempts: Vec::new(),
    })
}

fn kind(r: &Row, i: usize) -> Result<EventKind, StoreError> {
    let name = r.get::<_, &str>(i);
    EventKind::parse(name).ok_or_else(|| bad(name))
}

fn bad(value: &str) -> StoreError {
    StoreError::Database(Cause::message(format!(
        "{value:?} is not a stored webhook value"
    )))
}

impl Outbox for PostgresStore {
    fn webhook_secret<'a>(
        &'a self,
        org: &'a OrgId,
        fresh: String,
    ) -> StoreFuture<'a, SigningSecrets> {
        let now = self.clock.now();
        Box::pin(async move { secret(&self.pool, org, &fresh, now).await })
    }

    fn rotate_webhook_secret<'a>(&'a self, org: &'a OrgId, fresh: String) -> StoreFuture<'a, ()> {
        let now = self.clock.now();
        Box::pin(async move { rotate(&self.pool, org, &fresh, now).await })
    }

    fn claim_events(&self, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<ClaimedEvent>> {
        let now = self.clock.now();
        Box::pin(claim(&self.pool, limit, now, after(now, lease)))
    }

    fn record_delivery(&self, delivery: Delivery) -> StoreFuture<'_, bool> {
        Box::pin(async move { record(&self.pool, &delivery).await })
    }

    fn list_deliveries(&self, query: DeliveryQuery) -> StoreFuture<'_, DeliveryPage> {
        Box::pin(async move { list(&self.pool, &query).await })
    }

    fn pending_events(&self) -> StoreFuture<'_, i64> {
        Box::pin(async move {
            let sql = "SELECT coalesce(sum(n), 0)::bigint FROM webhook_pending";
            let rows = query(&self.pool, sql, &[]).await?;
            Ok(rows.first().map_or(0, |r| r.get(0)))
        })
    }
}
