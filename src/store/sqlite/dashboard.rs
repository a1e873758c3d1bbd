//! The dashboard's statements (tables of 0014_dashboard.sql): the per-minute roll-up, the
//! sessions, and the jobs list by keyset.
//!
//! The roll-up reads the finished jobs of whole minutes on a read connection (through the
//! partial index `jobs_finished_at`), so the writer, which claims and finishes jobs, only
//! writes the few rows it produced.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::jobs::{RECORD_COLUMNS, record};
use super::{SqliteStore, read};
use crate::store::{
    Dashboard, JobFilter, JobRecord, MINUTE_MICROS, MinuteFigures, OrgId, StoreFuture,
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

/// Where the last roll-up stopped, and the figures of the minutes after it up to `until`.
fn finished_minutes(
    conn: &Connection,
    until: i64,
) -> rusqlite::Result<Vec<(OrgId, MinuteFigures)>> {
    let rolled: i64 = conn
        .prepare_cached("SELECT up_to FROM job_minutes_rolled")?
        .query_row([], |r| r.get(0))?;
    let from = rolled.max(until - BACKFILL);
    if from >= until {
        return Ok(Vec::new());
    }
    conn.prepare_cached(
        "SELECT org, application_id, completed_at / ?3 * ?3, \
           sum(state = 'completed'), sum(state = 'failed'), count(started_at), \
           coalesce(sum(max(started_at - created_at, 0)), 0), \
           coalesce(max(max(started_at - created_at, 0)), 0), \
           coalesce(sum(max(completed_at - started_at, 0)), 0), \
           coalesce(max(max(completed_at - started_at, 0)), 0) \
         FROM jobs INDEXED BY jobs_finished_at \
         WHERE completed_at >= ?1 AND completed_at < ?2 AND cancelled_at IS NULL \
           AND state IN ('completed', 'failed') \
         GROUP BY 1, 2, 3",
    )?
    .query_map(params![from, until, MINUTE_MICROS], |r| {
        Ok((
            r.get(0)?,
            MinuteFigures {
                application_id: r.get(1)?,
                minute: r.get(2)?,
                completed: r.get(3)?,
                failed: r.get(4)?,
                ran: r.get(5)?,
                wait_total: r.get(6)?,
                wait_max: r.get(7)?,
                run_total: r.get(8)?,
                run_max: r.get(9)?,
            },
        ))
    })?
    .collect()
}

/// Writes the rolled-up minutes (those already there stay as they are), moves the mark
/// forward, and forgets old minutes and expired sessions.
fn write_minutes(
    conn: &Connection,
    rows: &[(OrgId, MinuteFigures)],
    until: i64,
    now: i64,
) -> rusqlite::Result<usize> {
    let mut insert = conn.prepare_cached(&format!(
        "INSERT INTO job_minutes (org, {MINUTE_COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10) ON CONFLICT DO NOTHING"
    ))?;
    let mut written = 0;
    for (org, m) in rows {
        written += insert.execute(params![
            org,
            m.application_id,
            m.minute,
            m.completed,
            m.failed,
            m.ran,
            m.wait_total,
            m.wait_max,
            m.run_total,
            m.run_max
        ])?;
    }
    conn.prepare_cached("UPDATE job_minutes_rolled SET up_to = max(up_to, ?1)")?
        .execute([until])?;
    conn.prepare_cached("DELETE FROM job_minutes WHERE minute < ?1")?
        .execute([minute_of(until - KEEP)])?;
    conn.prepare_cached("DELETE FROM ui_sessions WHERE expires_at <= ?1")?
        .execute([now])?;
    Ok(written)
}

fn minutes(conn: &Connection, org: &OrgId, since: i64) -> rusqlite::Result<Vec<MinuteFigures>> {
    conn.prepare_cached(&format!(
        "SELECT {MINUTE_COLUMNS} FROM job_minutes WHERE org = ?1 AND minute >= ?2 \
         ORDER BY minute, application_id"
    ))?
    .query_map(params![org, since], minute_row)?
    .collect()
}

fn minute_row(r: &Row<'_>) -> rusqlite::Result<MinuteFigures> {
    Ok(MinuteFigures {
        application_id: r.get(0)?,
        minute: r.get(1)?,
        completed: r.get(2)?,
        failed: r.get(3)?,
        ran: r.get(4)?,
        wait_total: r.get(5)?,
        wait_max: r.get(6)?,
        run_total: r.get(7)?,
        run_max: r.get(8)?,
    })
}

fn session(
    conn: &Connection,
    id_hash: &[u8; 32],
    now: i64,
) -> rusqlite::Result<Option<StoredSession>> {
    conn.prepare_cached(
        "SELECT org, csrf, expires_at FROM ui_sessions WHERE id_hash = ?1 AND expires_at > ?2",
    )?
    .query_row(params![id_hash, now], |r| {
        Ok(StoredSession {
            id_hash: *id_hash,
            org: r.get(0)?,
            csrf: r.get(1)?,
            expires_at: r.get(2)?,
        })
    })
    .optional()
}

/// The jobs of a filter, newest first. Each filter narrows the index range read: the status
/// through `jobs_by_app_status`, the batch through `jobs_by_batch`, the cursor and the times
/// as bounds on `seq` (a time through the unique index of the ids, which begin with their
/// time; checked exactly on the id).
fn browse(conn: &Connection, f: &JobFilter) -> rusqlite::Result<Vec<JobRecord>> {
    let mut sql = String::from("SELECT seq FROM jobs");
    if f.batch_id.is_some() {
        sql.push_str(" INDEXED BY jobs_by_batch");
    }
    sql.push_str(" WHERE org = ?1 AND application_id = ?2");
    if f.status.is_some() {
        sql.push_str(" AND status = ?3");
    }
    if f.batch_id.is_some() {
        sql.push_str(" AND batch_id = ?4");
    }
    if f.older_than.is_some() {
        sql.push_str(" AND seq < (SELECT seq FROM jobs WHERE id = ?5 AND org = ?1)");
    }
    if f.created_after.is_some() {
        sql.push_str(
            " AND id >= ?6 AND seq >= coalesce(\
               (SELECT seq FROM jobs WHERE id >= ?6 ORDER BY id LIMIT 1) - ?8, \
               9223372036854775807)",
        );
    }
    if f.created_before.is_some() {
        sql.push_str(
            " AND id < ?7 AND seq < coalesce(\
               (SELECT seq FROM jobs WHERE id >= ?7 ORDER BY id LIMIT 1) + ?8, \
               9223372036854775807)",
        );
    }
    let sql = format!(
        "SELECT {RECORD_COLUMNS} FROM jobs WHERE seq IN ({sql} ORDER BY seq DESC LIMIT ?9) \
         ORDER BY seq DESC"
    );
    let status = f.status.map(|s| s.as_str());
    // The statement's parameters are numbered up to ?9 (its limit) whatever it leaves out,
    // so all nine are bound.
    conn.prepare_cached(&sql)?
        .query_map(
            params![
                f.org,
                f.application_id,
                status,
                f.batch_id,
                f.older_than,
                f.created_after.map(first_id_at),
                f.created_before.map(first_id_at),
                SEQ_SLACK,
                f.limit.min(i64::MAX as u64) as i64,
            ],
            record,
        )?
        .collect()
}

impl Dashboard for SqliteStore {
    fn roll_up(&self, until: i64) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(async move {
            let rows = read(&self.readers, move |c| finished_minutes(c, until)).await?;
            self.writer
                .write(false, move |c| write_minutes(c, &rows, until, now))
                .await
        })
    }

    fn minutes<'a>(&'a self, org: &'a OrgId, since: i64) -> StoreFuture<'a, Vec<MinuteFigures>> {
        let org = org.clone();
        Box::pin(read(&self.readers, move |c| minutes(c, &org, since)))
    }

    fn open_session(&self, s: StoredSession) -> StoreFuture<'_, ()> {
        Box::pin(self.writer.write(false, move |c| {
            c.prepare_cached(
                "INSERT INTO ui_sessions (id_hash, org, csrf, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![s.id_hash, s.org, s.csrf, s.expires_at])
            .map(drop)
        }))
    }

    fn session(&self, id_hash: [u8; 32]) -> StoreFuture<'_, Option<StoredSession>> {
        let now = self.clock.now();
        Box::pin(read(&self.readers, move |c| session(c, &id_hash, now)))
    }

    fn close_session(&self, id_hash: [u8; 32]) -> StoreFuture<'_, ()> {
        Box::pin(self.writer.write(false, move |c| {
            c.prepare_cached("DELETE FROM ui_sessions WHERE id_hash = ?1")?
                .execute([id_hash])
                .map(drop)
        }))
    }

    fn browse_jobs(&self, filter: JobFilter) -> StoreFuture<'_, Vec<JobRecord>> {
        Box::pin(read(&self.readers, move |c| browse(c, &filter)))
    }
}
