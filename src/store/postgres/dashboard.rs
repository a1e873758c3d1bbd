//! The dashboard's statements (tables of 0013_dashboard.sql): the per-minute roll-up, the
//! sessions, and the jobs list by keyset. The same semantics as SQLite's `dashboard.rs`.
//!
//! The roll-up is one `INSERT … SELECT … ON CONFLICT DO NOTHING` over the finished jobs of
//! whole minutes (through the partial index `jobs_finished_at`), its rows in key order, so
//! nodes rolling up the same minutes at once lock them in the same order and write each once.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::jobs::{RECORD_COLUMNS, newest_first, query, record};
use super::{PostgresStore, batches};
use crate::store::{
    Dashboard, JobFilter, JobRecord, MINUTE_MICROS, MinuteFigures, OrgId, StoreError, StoreFuture,
    StoredSession, first_id_at, minute_of,
};

/// How far back a first roll-up starts (the day chart's width).
const BACKFILL: i64 = 24 * 60 * MINUTE_MICROS;
/// How long rolled-up minutes are kept.
const KEEP: i64 = 2 * BACKFILL;
/// How many rows a job's insert may be out of step with its id's time: the slack of the
/// time filters' bounds on `seq`, which are then checked exactly on the id.
const SEQ_SLACK: i64 = 1000;

const MINUTE_COLUMNS: &str = "application_id, minute, completed, failed, ran, wait_total, \
     wait_max, run_total, run_max";

async fn roll_up(pool: &Pool, until: i64, now: i64) -> Result<usize, StoreError> {
    // Where to start, first and on its own: as a parameter of the insert it bounds the range
    // read from `jobs_finished_at` (a bound from a join would not).
    let mark = "SELECT greatest(up_to, $1::bigint - $2::bigint) FROM job_minutes_rolled";
    let from = query(pool, mark, &[&until, &BACKFILL])
        .await?
        .first()
        .map_or(until, |r| r.get::<_, i64>(0));
    let mut written = 0;
    if from < until {
        let insert = format!(
            "WITH written AS (INSERT INTO job_minutes (org, {MINUTE_COLUMNS}) \
               SELECT org, application_id, completed_at / $3 * $3, \
                 count(*) FILTER (WHERE state = 'completed'), \
                 count(*) FILTER (WHERE state = 'failed'), count(started_at), \
                 coalesce(sum(greatest(started_at - created_at, 0)), 0)::bigint, \
                 coalesce(max(greatest(started_at - created_at, 0)), 0), \
                 coalesce(sum(greatest(completed_at - started_at, 0)), 0)::bigint, \
                 coalesce(max(greatest(completed_at - started_at, 0)), 0) \
               FROM jobs \
               WHERE completed_at >= $1 AND completed_at < $2 AND cancelled_at IS NULL \
                 AND state IN ('completed', 'failed') \
               GROUP BY 1, 2, 3 ORDER BY 1, 3, 2 \
               ON CONFLICT DO NOTHING RETURNING 1), \
             moved AS (UPDATE job_minutes_rolled SET up_to = greatest(up_to, $2) RETURNING 1) \
             SELECT count(*) FROM written"
        );
        let rows = query(pool, &insert, &[&from, &until, &MINUTE_MICROS]).await?;
        written = rows.first().map_or(0, |r| r.get::<_, i64>(0)) as usize;
    }
    let forget = "WITH m AS (DELETE FROM job_minutes WHERE minute < $1 RETURNING 1), \
         s AS (DELETE FROM ui_sessions WHERE expires_at <= $2 RETURNING 1) \
         SELECT (SELECT count(*) FROM m) + (SELECT count(*) FROM s)";
    query(pool, forget, &[&minute_of(until - KEEP), &now]).await?;
    Ok(written)
}

fn minute_row(r: &Row) -> MinuteFigures {
    MinuteFigures {
        application_id: r.get::<_, String>(0).into(),
        minute: r.get(1),
        completed: r.get(2),
        failed: r.get(3),
        ran: r.get(4),
        wait_total: r.get(5),
        wait_max: r.get(6),
        run_total: r.get(7),
        run_max: r.get(8),
    }
}

/// The jobs of a filter, newest first; each filter narrows the index range read (see
/// SQLite's `browse`). Only the parameters the statement names are sent.
async fn browse(pool: &Pool, f: &JobFilter) -> Result<Vec<JobRecord>, StoreError> {
    let status = f.status.map(|s| s.as_str());
    let (after, before) = (
        f.created_after.map(first_id_at),
        f.created_before.map(first_id_at),
    );
    let limit = f.limit.min(i64::MAX as u64) as i64;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&f.org, &f.application_id];
    let mut conditions = String::from("org = $1 AND application_id = $2");
    let mut status_param = None;
    if let Some(status) = &status {
        params.push(status);
        status_param = Some(format!("${}", params.len()));
    }
    if let Some(batch) = &f.batch_id {
        let clause = format!(" AND batch_id = # AND {}", batches::in_range("seq", "#"));
        filter(&mut conditions, &mut params, batch, &clause);
    }
    if let Some(cursor) = &f.older_than {
        let clause = " AND seq < (SELECT seq FROM jobs WHERE id = # AND org = $1)";
        filter(&mut conditions, &mut params, cursor, clause);
    }
    if let Some(after) = &after {
        let clause = format!(
            " AND id >= # AND seq >= coalesce(\
               (SELECT seq FROM jobs WHERE id >= # ORDER BY id LIMIT 1) - {SEQ_SLACK}, \
               9223372036854775807)"
        );
        filter(&mut conditions, &mut params, after, &clause);
    }
    if let Some(before) = &before {
        let clause = format!(
            " AND id < # AND seq < coalesce(\
               (SELECT seq FROM jobs WHERE id >= # ORDER BY id LIMIT 1) + {SEQ_SLACK}, \
               9223372036854775807)"
        );
        filter(&mut conditions, &mut params, before, &clause);
    }
    params.push(&limit);
    let limit = format!("${}", params.len());
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM job_records WHERE seq IN ({}) ORDER BY seq DESC",
        newest_first(&conditions, status_param.as_deref(), &limit, "0")
    );
    let rows = query(pool, &sql, &params).await?;
    rows.iter().map(record).collect()
}

/// Adds `value` as the next parameter and `clause` to `sql`, its `#`s naming that parameter.
fn filter<'a>(
    sql: &mut String,
    params: &mut Vec<&'a (dyn ToSql + Sync)>,
    value: &'a (dyn ToSql + Sync),
    clause: &str,
) {
    params.push(value);
    sql.push_str(&clause.replace('#', &format!("${}", params.len())));
}

impl Dashboard for PostgresStore {
    fn roll_up(&self, until: i64) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(roll_up(&self.pool, until, now))
    }

    fn minutes<'a>(&'a self, org: &'a OrgId, since: i64) -> StoreFuture<'a, Vec<MinuteFigures>> {
        Box::pin(async move {
            let sql = format!(
                "SELECT {MINUTE_COLUMNS} FROM job_minutes WHERE org = $1 AND minute >= $2 \
                 ORDER BY minute, application_id"
            );
            let rows = query(&self.pool, &sql, &[org, &since]).await?;
            Ok(rows.iter().map(minute_row).collect())
        })
    }

    fn open_session(&self, s: StoredSession) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let sql = "INSERT INTO ui_sessions (id_hash, org, csrf, expires_at) \
                 VALUES ($1, $2, $3, $4)";
            let hash = s.id_hash.as_slice();
            query(&self.pool, sql, &[&hash, &s.org, &s.csrf, &s.expires_at]).await?;
            Ok(())
        })
    }

    fn session(&self, id_hash: [u8; 32]) -> StoreFuture<'_, Option<StoredSession>> {
        let now = self.clock.now();
        Box::pin(async move {
            let sql = "SELECT org, csrf, expires_at FROM ui_sessions \
                 WHERE id_hash = $1 AND expires_at > $2";
            let hash = id_hash.as_slice();
            let rows = query(&self.pool, sql, &[&hash, &now]).await?;
            Ok(rows.first().map(|r| StoredSession {
                id_hash,
                org: r.get::<_, String>(0).into(),
                csrf: r.get(1),
                expires_at: r.get(2),
            }))
        })
    }

    fn close_session(&self, id_hash: [u8; 32]) -> StoreFuture<'_, ()> {
        Box::pin(async move {
            let hash = id_hash.as_slice();
            query(
                &self.pool,
                "DELETE FROM ui_sessions WHERE id_hash = $1",
                &[&hash],
            )
            .await?;
            Ok(())
        })
    }

    fn browse_jobs(&self, filter: JobFilter) -> StoreFuture<'_, Vec<JobRecord>> {
        Box::pin(async move { browse(&self.pool, &filter).await })
    }
}
