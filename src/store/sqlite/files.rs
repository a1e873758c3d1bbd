//! Statements on files' metadata. Quota checks run on the writer thread, so checking the
//! organisation's usage and adding the file are one serial step.

use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{
    ClaimedFile, FileId, FileInserted, FileLease, FilePage, FileProcessed, FileQuery, FileRecord,
    NewFile, OrgId, WriterStatus, extraction_gave_up,
};

const COLUMNS: &str = "id, name, kind, size, status, error, word_count, graph_ids, created_at";

pub(super) fn insert(
    conn: &Connection,
    file: &NewFile,
    quota: i64,
    now: i64,
) -> rusqlite::Result<FileInserted> {
    let used: i64 = conn
        .prepare_cached("SELECT bytes FROM file_usage WHERE org = ?1")?
        .query_row([&file.org], |r| r.get(0))
        .optional()?
        .unwrap_or(0);
    if used + file.size > quota {
        return Ok(FileInserted::OverQuota { used });
    }
    conn.prepare_cached(
        "INSERT INTO file_usage (org, bytes) VALUES (?1, ?2) \
         ON CONFLICT DO UPDATE SET bytes = bytes + excluded.bytes",
    )?
    .execute(params![file.org, file.size])?;
    let graph_ids = to_json(&file.graph_ids)?;
    conn.prepare_cached(
        "INSERT INTO files (id, org, name, kind, size, status, graph_ids, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, 'in_progress', ?6, ?7, ?7)",
    )?
    .execute(params![
        file.id, file.org, file.name, file.kind, file.size, graph_ids, now
    ])?;
    Ok(FileInserted::Stored(file.recorded(now)))
}

pub(super) fn get(
    conn: &Connection,
    org: Option<&OrgId>,
    ids: &[FileId],
    with_text: bool,
) -> rusqlite::Result<Vec<FileRecord>> {
    let text = if with_text { "text" } else { "NULL" };
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS}, {text} FROM files \
         WHERE id IN (SELECT value FROM json_each(?1)) AND (?2 IS NULL OR org = ?2)"
    ))?;
    let ids = to_json(ids)?;
    stmt.query_map(params![ids, org], record)?.collect()
}

pub(super) fn list(conn: &Connection, q: &FileQuery) -> rusqlite::Result<FilePage> {
    let walk = q.walk();
    let mut sql = format!("SELECT {COLUMNS}, NULL FROM files WHERE org = ?");
    let mut args: Vec<Value> = vec![Value::Text(q.org.as_str().to_owned())];
    if let Some((cursor, op)) = walk.cursor {
        sql.push_str(&format!(" AND id {op} ?"));
        args.push(Value::Text(cursor.to_string()));
    }
    if let Some(status) = q.status {
        sql.push_str(" AND status = ?");
        args.push(Value::Text(status.as_str().to_owned()));
    }
    if !q.kinds.is_empty() {
        sql.push_str(" AND kind IN (SELECT value FROM json_each(?))");
        args.push(Value::Text(to_json(&q.kinds)?));
    }
    if let Some(graph) = &q.graph_id {
        sql.push_str(" AND EXISTS (SELECT 1 FROM json_each(graph_ids) WHERE value = ?)");
        args.push(Value::Text(graph.clone()));
    }
    sql.push_str(&format!(" ORDER BY id {} LIMIT ?", walk.direction()));
    args.push(Value::Integer(walk.rows));
    let files = conn
        .prepare_cached(&sql)?
        .query_map(rusqlite::params_from_iter(args), record)?
        .collect::<rusqlite::Result<_>>()?;
    Ok(FilePage::from_rows(files, walk, q.limit))
}

pub(super) fn claim(
    conn: &Connection,
    limit: usize,
    until: i64,
    max_attempts: u32,
    now: i64,
) -> rusqlite::Result<Vec<ClaimedFile>> {
    let free = "status = 'in_progress' AND (lease_until IS NULL OR lease_until < ?1)";
    conn.prepare_cached(&format!(
        "UPDATE files SET status = 'failed', error = ?2, lease_until = NULL, updated_at = ?1 \
         WHERE {free} AND attempt >= ?3"
    ))?
    .execute(params![now, extraction_gave_up(max_attempts), max_attempts])?;
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE files SET attempt = attempt + 1, lease_until = ?2, updated_at = ?1 \
         WHERE id IN (SELECT id FROM files WHERE {free} ORDER BY id LIMIT ?3) \
         RETURNING id, attempt, name, kind"
    ))?;
    stmt.query_map(params![now, until, limit as i64], |r| {
        Ok(ClaimedFile {
            lease: FileLease {
                id: r.get(0)?,
                attempt: r.get(1)?,
            },
            name: r.get(2)?,
            kind: r.get(3)?,
        })
    })?
    .collect()
}

/// The fence of a file's lease.
const FENCE: &str = "id = ?1 AND attempt = ?2 AND status = 'in_progress'";

pub(super) fn renew(
    conn: &Connection,
    leases: &[FileLease],
    until: i64,
) -> rusqlite::Result<usize> {
    let mut stmt =
        conn.prepare_cached(&format!("UPDATE files SET lease_until = ?3 WHERE {FENCE}"))?;
    let mut renewed = 0;
    for lease in leases {
        renewed += stmt.execute(params![lease.id, lease.attempt, until])?;
    }
    Ok(renewed)
}

pub(super) fn release(conn: &Connection, leases: &[FileLease]) -> rusqlite::Result<usize> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE files SET lease_until = NULL, attempt = attempt - 1 WHERE {FENCE}"
    ))?;
    let mut released = 0;
    for lease in leases {
        released += stmt.execute(params![lease.id, lease.attempt])?;
    }
    Ok(released)
}

/// Frees the leases a previous process of this server held (it is gone).
pub(super) fn recover(conn: &Connection) -> rusqlite::Result<usize> {
    conn.prepare_cached(
        "UPDATE files SET lease_until = NULL \
         WHERE status = 'in_progress' AND lease_until IS NOT NULL",
    )?
    .execute([])
}

pub(super) fn processed(
    conn: &Connection,
    lease: &FileLease,
    outcome: &FileProcessed,
    now: i64,
) -> rusqlite::Result<bool> {
    let (status, text, words, error) = match outcome {
        FileProcessed::Completed { text, word_count } => {
            (WriterStatus::Completed, text.as_deref(), *word_count, None)
        }
        FileProcessed::Failed { error } => (WriterStatus::Failed, None, None, Some(error.as_str())),
    };
    let changed = conn
        .prepare_cached(&format!(
            "UPDATE files SET status = ?3, text = ?4, word_count = ?5, error = ?6, \
             lease_until = NULL, updated_at = ?7 WHERE {FENCE}"
        ))?
        .execute(params![
            lease.id,
            lease.attempt,
            status.as_str(),
            text,
            words,
            error,
            now
        ])?;
    Ok(changed > 0)
}

pub(super) fn retry(
    conn: &Connection,
    org: &OrgId,
    ids: &[FileId],
    now: i64,
) -> rusqlite::Result<Vec<FileRecord>> {
    let mut stmt = conn.prepare_cached(&format!(
        "UPDATE files SET status = 'in_progress', error = NULL, attempt = 0, lease_until = NULL, \
         updated_at = ?3 WHERE org = ?1 AND status = 'failed' AND id IN (SELECT value FROM json_each(?2)) \
         RETURNING {COLUMNS}, NULL"
    ))?;
    let ids = to_json(ids)?;
    stmt.query_map(params![org, ids, now], record)?.collect()
}

pub(super) fn delete(conn: &Connection, org: &OrgId, id: FileId) -> rusqlite::Result<bool> {
    let size: Option<i64> = conn
        .prepare_cached("DELETE FROM files WHERE org = ?1 AND id = ?2 RETURNING size")?
        .query_row(params![org, id], |r| r.get(0))
        .optional()?;
    let Some(size) = size else {
        return Ok(false);
    };
    conn.prepare_cached("UPDATE file_usage SET bytes = bytes - ?2 WHERE org = ?1")?
        .execute(params![org, size])?;
    Ok(true)
}

fn record(row: &Row<'_>) -> rusqlite::Result<FileRecord> {
    let status: String = row.get(4)?;
    let graph_ids: String = row.get(7)?;
    Ok(FileRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        kind: row.get(2)?,
        size: row.get(3)?,
        status: WriterStatus::parse(&status).unwrap_or(WriterStatus::Failed),
        error: row.get(5)?,
        word_count: row.get(6)?,
        graph_ids: serde_json::from_str(&graph_ids).unwrap_or_default(),
        created_at: row.get(8)?,
        text: row.get(9)?,
    })
}

fn to_json<T: serde::Serialize>(values: &[T]) -> rusqlite::Result<String> {
    serde_json::to_string(values).map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))
}
