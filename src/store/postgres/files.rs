//! Statements on files' metadata: the same semantics as SQLite's `files.rs`. The quota is
//! held across nodes by the row lock of the organisation's `file_usage` row.

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::connection;
use super::errors::map_err;
use crate::store::{
    FileInserted, FilePage, FileProcessed, FileQuery, FileRecord, NewFile, StoreError, WriterStatus,
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
    org: Option<&str>,
    ids: &[String],
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
    Ok(rows.iter().map(record).collect())
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
    let files = rows.iter().map(record).collect();
    Ok(FilePage::from_rows(files, walk, q.limit))
}

pub(super) async fn processed(
    pool: &Pool,
    id: &str,
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
            "UPDATE files SET status = $2, text = $3, word_count = $4, error = $5, updated_at = $6 \
             WHERE id = $1 AND status = 'in_progress'",
        )
        .await
        .map_err(map_err)?;
    let changed = client
        .execute(&stmt, &[&id, &status.as_str(), &text, &words, &error, &now])
        .await
        .map_err(map_err)?;
    Ok(changed > 0)
}

pub(super) async fn retry(
    pool: &Pool,
    org: &str,
    ids: &[String],
    now: i64,
) -> Result<Vec<FileRecord>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(&format!(
            "UPDATE files SET status = 'in_progress', error = NULL, updated_at = $3 \
             WHERE org = $1 AND status = 'failed' AND id = ANY($2) RETURNING {COLUMNS}, NULL::text"
        ))
        .await
        .map_err(map_err)?;
    let rows = client
        .query(&stmt, &[&org, &ids, &now])
        .await
        .map_err(map_err)?;
    Ok(rows.iter().map(record).collect())
}

pub(super) async fn delete(pool: &Pool, org: &str, id: &str) -> Result<bool, StoreError> {
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

pub(super) async fn unprocessed(pool: &Pool, before: i64) -> Result<Vec<FileRecord>, StoreError> {
    let client = connection(pool).await?;
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS}, NULL::text FROM files \
                 WHERE status = 'in_progress' AND updated_at < $1 ORDER BY id"
            ),
            &[&before],
        )
        .await
        .map_err(map_err)?;
    Ok(rows.iter().map(record).collect())
}

fn record(row: &Row) -> FileRecord {
    let status: &str = row.get(4);
    FileRecord {
        id: row.get(0),
        name: row.get(1),
        kind: row.get(2),
        size: row.get(3),
        status: WriterStatus::parse(status).unwrap_or(WriterStatus::Failed),
        error: row.get(5),
        word_count: row.get(6),
        graph_ids: row.get(7),
        created_at: row.get(8),
        text: row.get(9),
    }
}
