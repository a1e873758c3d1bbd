//! The webhook statements: a batch's subscription (written with the batch), the secrets, and
//! the outbox's claims, attempts and listing. The events themselves are written by the
//! triggers of 0010_webhooks.sql.

use std::time::Duration;

use rusqlite::{Connection, Row, params};

use super::{SqliteStore, read};
use crate::store::{
    AttemptRecord, BatchId, ClaimedEvent, Delivery, DeliveryPage, DeliveryQuery, EventKind,
    EventRecord, EventStatus, NextStep, OrgId, Outbox, SigningSecrets, StoreFuture, Subscription,
};

/// Records where a new batch's events go; runs in the batch's insert, after its row.
pub(super) fn subscribe(
    conn: &Connection,
    batch: BatchId,
    org: &OrgId,
    webhook: &Subscription,
) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO batch_webhooks (batch_id, org, url, events) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![batch, org, webhook.url, webhook.events.bits()])?;
    Ok(())
}

/// Makes every event a previous process had claimed due now: a server is the only process
/// on its file, so nobody is attempting them any more.
pub(super) fn recover(conn: &Connection, now: i64) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE webhook_events SET next_at = ?1, claimed = 0 \
         WHERE state = 'pending' AND claimed = 1",
    )?
    .execute([now])
}

fn secret(
    conn: &Connection,
    org: &OrgId,
    fresh: &str,
    now: i64,
) -> rusqlite::Result<SigningSecrets> {
    conn.prepare_cached(
        "INSERT INTO webhook_secrets (org, secret, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO NOTHING",
    )?
    .execute(params![org, fresh, now])?;
    conn.prepare_cached("SELECT secret, previous, created_at FROM webhook_secrets WHERE org = ?1")?
        .query_row([org], |r| {
            let previous: Option<String> = r.get(1)?;
            Ok(SigningSecrets {
                current: r.get(0)?,
                previous: previous.map(|p| r.get(2).map(|at| (p, at))).transpose()?,
            })
        })
}

fn rotate(conn: &Connection, org: &OrgId, fresh: &str, now: i64) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO webhook_secrets (org, secret, created_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO UPDATE SET previous = secret, secret = excluded.secret, \
             created_at = excluded.created_at",
    )?
    .execute(params![org, fresh, now])?;
    Ok(())
}

fn claim(
    conn: &Connection,
    limit: usize,
    now: i64,
    until: i64,
) -> rusqlite::Result<Vec<ClaimedEvent>> {
    conn.prepare_cached(
        "UPDATE webhook_events SET attempts = attempts + 1, next_at = ?3, claimed = 1 \
         WHERE seq IN (SELECT seq FROM webhook_events \
             WHERE state = 'pending' AND next_at <= ?2 ORDER BY next_at LIMIT ?1) \
         RETURNING seq, id, org, type, batch_id, job_id, url, created_at, attempts",
    )?
    .query_map(params![limit as i64, now, until], |r| {
        Ok(ClaimedEvent {
            seq: r.get(0)?,
            id: r.get(1)?,
            org: r.get(2)?,
            kind: kind(r, 3)?,
            batch_id: r.get(4)?,
            job_id: r.get(5)?,
            url: r.get(6)?,
            created_at: r.get(7)?,
            attempt: r.get(8)?,
        })
    })?
    .collect()
}

fn record(conn: &Connection, d: &Delivery) -> rusqlite::Result<bool> {
    let a = &d.record;
    conn.prepare_cached(
        "INSERT INTO webhook_attempts (event_seq, attempt, at, duration_ms, status_code, error) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING",
    )?
    .execute(params![
        d.seq,
        a.attempt,
        a.at,
        a.duration_ms as i64,
        a.status_code,
        a.error
    ])?;
    let (state, next_at) = match d.next {
        NextStep::Delivered => (EventStatus::Delivered, None),
        NextStep::RetryAt(at) => (EventStatus::Pending, Some(at)),
        NextStep::GiveUp => (EventStatus::Failed, None),
    };
    let moved = conn
        .prepare_cached(
            "UPDATE webhook_events SET state = ?3, next_at = coalesce(?4, next_at), claimed = 0 \
             WHERE seq = ?1 AND attempts = ?2 AND state = 'pending'",
        )?
        .execute(params![d.seq, a.attempt, state.as_str(), next_at])?;
    Ok(moved == 1)
}

fn list(conn: &Connection, q: &DeliveryQuery) -> rusqlite::Result<DeliveryPage> {
    let filter = "org = ?1 AND (?2 IS NULL OR batch_id = ?2)";
    let mut attempts = conn.prepare_cached(
        "SELECT attempt, at, duration_ms, status_code, error FROM webhook_attempts \
         WHERE event_seq = ?1 ORDER BY attempt",
    )?;
    let events = conn
        .prepare_cached(&format!(
            "SELECT seq, id, type, batch_id, job_id, url, state, created_at, next_at \
             FROM webhook_events WHERE {filter} ORDER BY seq DESC LIMIT ?3 OFFSET ?4"
        ))?
        .query_map(
            params![q.org, q.batch_id, q.limit as i64, q.offset as i64],
            |r| Ok((r.get::<_, i64>(0)?, event(r)?)),
        )?
        .map(|row| {
            let (seq, mut event) = row?;
            event.attempts = attempts
                .query_map([seq], attempt)?
                .collect::<rusqlite::Result<_>>()?;
            Ok(event)
        })
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let total: i64 = conn
        .prepare_cached(&format!(
            "SELECT count(*) FROM webhook_events WHERE {filter}"
        ))?
        .query_row(params![q.org, q.batch_id], |r| r.get(0))?;
    Ok(DeliveryPage {
        events,
        total: total.max(0) as u64,
    })
}

/// An event from `id, type, batch_id, job_id, url, state, created_at, next_at` (columns 1 to
/// 8), without its attempts.
fn event(r: &Row<'_>) -> rusqlite::Result<EventRecord> {
    let status = r.get::<_, String>(6)?;
    let status = EventStatus::parse(&status).ok_or_else(|| bad(6, &status))?;
    Ok(EventRecord {
        id: r.get(1)?,
        kind: kind(r, 2)?,
        batch_id: r.get(3)?,
        job_id: r.get(4)?,
        url: r.get(5)?,
        created_at: r.get(7)?,
        next_attempt_at: (status == EventStatus::Pending)
            .then(|| r.get(8))
            .transpose()?,
        status,
        attempts: Vec::new(),
    })
}

fn attempt(r: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        attempt: r.get(0)?,
        at: r.get(1)?,
        duration_ms: r.get::<_, i64>(2)?.max(0) as u64,
        status_code: r.get(3)?,
        error: r.get(4)?,
    })
}

fn kind(r: &Row<'_>, i: usize) -> rusqlite::Result<EventKind> {
    let name = r.get::<_, String>(i)?;
    EventKind::parse(&name).ok_or_else(|| bad(i, &name))
}

fn bad(column: usize, value: &str) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        rusqlite::types::Type::Text,
        format!("{value:?} is not a stored webhook value").into(),
    )
}

impl Outbox for SqliteStore {
    fn webhook_secret<'a>(
        &'a self,
        org: &'a OrgId,
        fresh: String,
    ) -> StoreFuture<'a, SigningSecrets> {
        let now = self.clock.now();
        let org = org.clone();
        Box::pin(
            self.writer
                .write(false, move |c| secret(c, &org, &fresh, now)),
        )
    }

    fn rotate_webhook_secret<'a>(&'a self, org: &'a OrgId, fresh: String) -> StoreFuture<'a, ()> {
        let now = self.clock.now();
        let org = org.clone();
        Box::pin(
            self.writer
                .write(false, move |c| rotate(c, &org, &fresh, now)),
        )
    }

    fn claim_events(&self, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<ClaimedEvent>> {
        let now = self.clock.now();
        let until = crate::store::after(now, lease);
        Box::pin(
            self.writer
                .write(false, move |c| claim(c, limit, now, until)),
        )
    }

    fn record_delivery(&self, delivery: Delivery) -> StoreFuture<'_, bool> {
        Box::pin(self.writer.write(false, move |c| record(c, &delivery)))
    }

    fn list_deliveries(&self, query: DeliveryQuery) -> StoreFuture<'_, DeliveryPage> {
        Box::pin(read(&self.readers, move |c| list(c, &query)))
    }

    fn pending_events(&self) -> StoreFuture<'_, i64> {
        Box::pin(read(&self.readers, |c| {
            c.prepare_cached("SELECT n FROM webhook_pending")?
                .query_row([], |r| r.get(0))
        }))
    }
}
