//! Organisation-scoped statements: API keys (stored as SHA-256 hashes) and graph lists.

use rusqlite::{Connection, OptionalExtension, params};

use crate::store::{ApplicationId, KeyInfo, OrgId};

pub(super) fn authenticate(conn: &Connection, hash: &[u8; 32]) -> rusqlite::Result<Option<OrgId>> {
    conn.prepare_cached("SELECT org FROM api_keys WHERE hash = ?1 AND revoked_at IS NULL")?
        .query_row([&hash[..]], |r| r.get(0))
        .optional()
}

pub(super) fn create(conn: &Connection, key: &KeyInfo, hash: &[u8; 32]) -> rusqlite::Result<()> {
    conn.prepare_cached(
        "INSERT INTO orgs (name, created_at) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
    )?
    .execute(params![key.org, key.created_at])?;
    conn.prepare_cached(
        "INSERT INTO api_keys (id, org, name, hash, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![
        key.id,
        key.org,
        key.name,
        &hash[..],
        key.created_at
    ])?;
    Ok(())
}

pub(super) fn list(conn: &Connection) -> rusqlite::Result<Vec<KeyInfo>> {
    conn.prepare_cached(
        "SELECT id, org, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
    )?
    .query_map([], |r| {
        Ok(KeyInfo {
            id: r.get(0)?,
            org: r.get(1)?,
            name: r.get(2)?,
            created_at: r.get(3)?,
            revoked_at: r.get(4)?,
        })
    })?
    .collect()
}

pub(super) fn revoke(conn: &Connection, id: &str, now: i64) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached("UPDATE api_keys SET revoked_at = ?2 WHERE id = ?1 AND revoked_at IS NULL")?
        .execute(params![id, now])?;
    Ok(n == 1)
}

pub(super) fn graphs(
    conn: &Connection,
    org: &OrgId,
    app: &ApplicationId,
) -> rusqlite::Result<Vec<String>> {
    let stored: Option<String> = conn
        .prepare_cached("SELECT graph_ids FROM graphs WHERE org = ?1 AND application_id = ?2")?
        .query_row(params![org, app], |r| r.get(0))
        .optional()?;
    match stored {
        None => Ok(Vec::new()),
        Some(json) => serde_json::from_str(&json).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, e.into())
        }),
    }
}

pub(super) fn set_graphs(
    conn: &Connection,
    org: &OrgId,
    app: &ApplicationId,
    ids: &[String],
) -> rusqlite::Result<()> {
    let json = serde_json::to_string(ids)
        .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
    conn.prepare_cached(
        "INSERT INTO graphs (org, application_id, graph_ids) VALUES (?1, ?2, ?3) \
         ON CONFLICT DO UPDATE SET graph_ids = excluded.graph_ids",
    )?
    .execute(params![org, app, json])?;
    Ok(())
}
