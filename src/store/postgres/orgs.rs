//! Organisation-scoped statements: API keys (stored as SHA-256 hashes) and graph lists.
//! The same semantics as SQLite's `orgs.rs`.

use deadpool_postgres::Pool;

use super::connection;
use super::errors::map_err;
use crate::store::{ApplicationId, KeyInfo, OrgId, StoreError};

pub(super) async fn authenticate(
    pool: &Pool,
    hash: &[u8; 32],
) -> Result<Option<OrgId>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached("SELECT org FROM api_keys WHERE hash = $1 AND revoked_at IS NULL")
        .await
        .map_err(map_err)?;
    let row = client
        .query_opt(&stmt, &[&&hash[..]])
        .await
        .map_err(map_err)?;
    Ok(row.map(|r| r.get(0)))
}

/// Creates the organisation if needed and the key, in one transaction. A key id or hash
/// that already exists is a [`StoreError::Conflict`].
pub(super) async fn create(pool: &Pool, key: &KeyInfo, hash: &[u8; 32]) -> Result<(), StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    let org = tx
        .prepare_cached(
            "INSERT INTO orgs (name, created_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .await
        .map_err(map_err)?;
    tx.execute(&org, &[&key.org, &key.created_at])
        .await
        .map_err(map_err)?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO api_keys (id, org, name, hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(map_err)?;
    tx.execute(
        &insert,
        &[&key.id, &key.org, &key.name, &&hash[..], &key.created_at],
    )
    .await
    .map_err(map_err)?;
    tx.commit().await.map_err(map_err)
}

pub(super) async fn list(pool: &Pool) -> Result<Vec<KeyInfo>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(
            "SELECT id, org, name, created_at, revoked_at FROM api_keys ORDER BY created_at, id",
        )
        .await
        .map_err(map_err)?;
    let rows = client.query(&stmt, &[]).await.map_err(map_err)?;
    Ok(rows
        .iter()
        .map(|r| KeyInfo {
            id: r.get(0),
            org: r.get(1),
            name: r.get(2),
            created_at: r.get(3),
            revoked_at: r.get(4),
        })
        .collect())
}

pub(super) async fn revoke(pool: &Pool, id: &str, now: i64) -> Result<bool, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL")
        .await
        .map_err(map_err)?;
    let n = client.execute(&stmt, &[&id, &now]).await.map_err(map_err)?;
    Ok(n == 1)
}

pub(super) async fn graphs(
    pool: &Pool,
    org: &OrgId,
    app: &ApplicationId,
) -> Result<Vec<String>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached("SELECT graph_ids FROM graphs WHERE org = $1 AND application_id = $2")
        .await
        .map_err(map_err)?;
    let row = client
        .query_opt(&stmt, &[&org, &app])
        .await
        .map_err(map_err)?;
    match row {
        None => Ok(Vec::new()),
        Some(row) => serde_json::from_str(row.get(0))
            .map_err(|e| StoreError::database("stored graph ids are not valid", e)),
    }
}

pub(super) async fn set_graphs(
    pool: &Pool,
    org: &OrgId,
    app: &ApplicationId,
    ids: &[String],
) -> Result<(), StoreError> {
    let json = serde_json::to_string(ids)
        .map_err(|e| StoreError::database("cannot encode graph ids", e))?;
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(
            "INSERT INTO graphs (org, application_id, graph_ids) VALUES ($1, $2, $3) \
             ON CONFLICT (org, application_id) DO UPDATE SET graph_ids = excluded.graph_ids",
        )
        .await
        .map_err(map_err)?;
    client
        .execute(&stmt, &[&org, &app, &json])
        .await
        .map_err(map_err)?;
    Ok(())
}
