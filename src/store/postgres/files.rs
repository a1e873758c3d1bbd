//! Statements on files' metadata: the same semantics as SQLite's `files.rs`. The quota is
//! held across nodes by the row lock of the organisation's `file_usage` row.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::connection;
use super::errors::map_err;
use crate::store::{
    ClaimedFile, FileId, FileInserted, FileLease, FilePage, FileProcessed, FileQuery, FileRecord,
    NewFile, OrgId, StoreError, WriterStatus, extraction_gave_up,
};

const COLUMNS: &str = "id, name, kind, size, status, error, word_count, graph_ids, created_at";

pub(super) async fn insert(
    pool: &Pool,
    file: &NewFile,
    quota: i64,
    now: i64,
) -> Result<FileInserted, StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.execute(
        "INSERT INTO file_usage (org, bytes) VALUES ($1, 0) ON CONFLICT DO NOTHING",
        &[&file.org],
    )
    .await
    .map_err(map_err)?;
    let raised = tx
        .query_opt(
            "UPDATE file_usage SET bytes = bytes + $2 WHERE org = $1 AND bytes + $2 <= $3 \
             RETURNING bytes",
            &[&file.org, &file.size, &quota],
        )
        .await
        .map_err(map_err)?;
    if raised.is_none() {
        let used: i64 = tx
            .query_one("SELECT bytes FROM file_usage WHERE org = $1", &[&file.org])
            .await
            .map_err(map_err)?
            .get(0);
        return Ok(FileInserted::OverQuota { used });
    }
    tx.execute(
        "INSERT INTO files (id, org, name, kind, size, status, graph_ids, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, 'in_progress', $6, $7, $7)",
        &[
            &file.id,
            &file.org,
            &file.name,
            &file.kind,
            &file.size,
            &file.graph_ids,
            &now,
        ],
    )
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(FileInserted::Stored(file.recorded(now)))
}

pub(super) async fn get(
    pool: &Pool,
    org: Option<&OrgId>,
    ids: &[FileId],
    with_text: bool,
) -> Result<Vec<FileRecord>, StoreError> {
    let text = if with_text { "text" } else { "NULL::text" };
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(&format!(
            "SELECT {COLUMNS}, {text} FROM files \
             WHERE id = ANY($1) AND ($2::text IS NULL OR org = $2)"
        ))
        .await
        .map_err(map_err)?;
    let rows = client.query(&stmt, &[&ids, &org]).await.map_err(map_err)?;
    rows.iter().map(record).collect()
}

pub(super) async fn list(pool: &Pool, q: &FileQuery) -> Result<FilePage, StoreError> {
    let walk = q.walk();
    let status = q.status.map(WriterStatus::as_str);
    let mut sql = format!("SELECT {COLUMNS}, NULL::text FROM files WHERE org = $1");
    let mut args: Vec<&(dyn ToSql + Sync)> = vec![&q.org];
    if let Some((id, op)) = &walk.cursor {
        args.push(id);
        sql.push_str(&format!(" AND id {op} ${}", args.len()));
    }
    if let Some(status) = &status {
        args.push(status);
        sql.push_str(&format!(" AND status = ${}", args.len()));
    }
    if !q.kinds.is_empty() {
        args.push(&q.kinds);
        sql.push_str(&format!(" AND kind = ANY(${})", args.len()));
    }
    if let Some(graph) = &q.graph_id {
        args.push(graph);
        sql.push_str(&format!(" AND ${} = ANY(graph_ids)", args.len()));
    }
    args.push(&walk.rows);
    sql.push_str(&format!(
        " ORDER BY id {} LIMIT ${}",
        walk.direction(),
        args.len()
    ));
    let client = connection(pool).await?;
    let stmt = client.prepare_cached(&sql).await.map_err(map_err)?;
    let rows = client.query(&stmt, &args).await.map_err(map_err)?;
    let files = rows.iter().map(record).collect::<Result<_, _>>()?;
    Ok(FilePage::from_rows(files, walk, q.limit))
}

pub(super) async fn claim(
    pool: &Pool,
    limit: usize,
    until: i64,
    max_attempts: u32,
    now: i64,
) -> Result<Vec<ClaimedFile>, StoreError> {
    let free = "status = 'in_progress' AND (lease_until IS NULL OR lease_until < $1)";
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    let gave_up = extraction_gave_up(max_attempts);
    tx.execute(
        &format!(
            "UPDATE files SET status = 'failed', error = $2, lease_until = NULL, updated_at = $1 \
             WHERE id = ANY(ARRAY(SELECT id FROM files WHERE {free} AND attempt >= $3 \
               FOR UPDATE SKIP LOCKED))"
        ),
        &[&now, &gave_up, &(max_attempts as i32)],
    )
    .await
    .map_err(map_err)?;
    let rows = tx
        .query(
            &format!(
                "UPDATE files SET attempt = attempt + 1, lease_until = $2, updated_at = $1 \
                 WHERE id = ANY(ARRAY(SELECT id FROM files WHERE {free} ORDER BY id LIMIT $3 \
                   FOR UPDATE SKIP LOCKED)) \
                 RETURNING id, attempt, name, kind"
            ),
            &[&now, &until, &(limit.min(i64::MAX as usize) as i64)],
        )
        .await
        .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(ClaimedFile {
                lease: FileLease {
                    id: r.try_get(0).map_err(map_err)?,
                    attempt: r.get::<_, i32>(1) as u32,
                },
                name: r.get(2),
                kind: r.get(3),
            })
        })
        .collect()
}

/// The leases as `unnest`ed `u(id, attempt)`, fenced against the file row `f`.
const FENCED: &str = "FROM unnest($1::text[], $2::int[]) AS u(id, attempt) \
     WHERE f.id = u.id AND f.attempt = u.attempt AND f.status = 'in_progress'";

fn lease_columns(leases: &[FileLease]) -> (Vec<FileId>, Vec<i32>) {
    leases.iter().map(|l| (l.id, l.attempt as i32)).unzip()
}

pub(super) async fn renew(
    pool: &Pool,
    leases: &[FileLease],
    until: i64,
) -> Result<usize, StoreError> {
    let (ids, attempts) = lease_columns(leases);
    let client = connection(pool).await?;
    let sql = format!("UPDATE files f SET lease_until = $3 {FENCED}");
    let n = client
        .execute(&sql, &[&ids, &attempts, &until])
        .await
        .map_err(map_err)?;
    Ok(n as usize)
}

pub(super) async fn release(pool: &Pool, leases: &[FileLease]) -> Result<usize, StoreError> {
    let (ids, attempts) = lease_columns(leases);
    let client = connection(pool).await?;
    let sql = format!("UPDATE files f SET lease_until = NULL, attempt = f.attempt - 1 {FENCED}");
    let n = client
        .execute(&sql, &[&ids, &attempts])
        .await
        .map_err(map_err)?;
    Ok(n as usize)
}

pub(super) async fn processed(
    pool: &Pool,
    lease: &FileLease,
    outcome: &FileProcessed,
    now: i64,
) -> Result<bool, StoreError> {
    let (status, text, words, error) = match outcome {
        FileProcessed::Completed { text, word_count } => {
            (WriterStatus::Completed, text.as_deref(), *word_count, None)
        }
        FileProcessed::Failed { error } => (WriterStatus::Failed, None, None, Some(error.as_str())),
    };
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(
            "UPDATE files SET status = $3, text = $4, word_count = $5, error = $6, \
             lease_until = NULL, updated_at = $7 \
             WHERE id = $1 AND attempt = $2 AND status = 'in_progress'",
        )
        .await
        .map_err(map_err)?;
    let attempt = lease.attempt as i32;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &lease.id,
        &attempt,
        &status.as_str(),
        &text,
        &words,
        &error,
        &now,
    ];
    let changed = client.execute(&stmt, &params).await.map_err(map_err)?;
    Ok(changed > 0)
}

pub(super) async fn retry(
    pool: &Pool,
    org: &OrgId,
    ids: &[FileId],
    now: i64,
) -> Result<Vec<FileRecord>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE files SET status = 'in_progress', error = NULL, attempt = 0, \
             lease_until = NULL, updated_at = $3 WHERE org = $1 AND status = 'failed' AND id = ANY($2) RETURNING {COLUMNS}, NULL::text"
        ))
        .await
        .map_err(map_err)?;
    let rows = client
        .query(&stmt, &[&org, &ids, &now])
        .await
        .map_err(map_err)?;
    rows.iter().map(record).collect()
}

pub(super) async fn delete(pool: &Pool, org: &OrgId, id: FileId) -> Result<bool, StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    let deleted = tx
        .query_opt(
            "DELETE FROM files WHERE org = $1 AND id = $2 RETURNING size",
            &[&org, &id],
        )
        .await
        .map_err(map_err)?;
    let Some(row) = deleted else {
        return Ok(false);
    };
    let size: i64 = row.get(0);
    tx.execute(
        "UPDATE file_usage SET bytes = bytes - $2 WHERE org = $1",
        &[&org, &size],
    )
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    Ok(true)
}

fn record(row: &Row) -> Result<FileRecord, StoreError> {
    let status: &str = row.get(4);
    Ok(FileRecord {
        id: row.try_get(0).map_err(map_err)?,
        name: row.get(1),
        kind: row.get(2),
        size: row.get(3),
        status: WriterStatus::parse(status).unwrap_or(WriterStatus::Failed),
        error: row.get(5),
        word_count: row.get(6),
        graph_ids: row.get(7),
        created_at: row.get(8),
        text: row.get(9),
    })
}
