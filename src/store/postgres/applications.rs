//! Applications and their versions: the current version's row, and every version, immutable.
//! The same semantics as SQLite's `applications.rs`.

use deadpool_postgres::{GenericClient, Pool};
use tokio_postgres::Row;

use super::errors::map_err;
use super::{connection, notify_applications};
use crate::store::{
    ApplicationId, ApplicationRecord, ApplicationVersion, NewVersion, OrgId, StoreError,
    VersionPage, VersionQuery,
};

/// A deleted application's row is taken over, its version numbers continuing.
const CREATE: &str = "INSERT INTO applications (org, id, version, deployed, created_at, \
       updated_at, last_deployed_at) \
     VALUES ($1, $2, 1, $3::boolean, $4::bigint, $4, CASE WHEN $3 THEN $4 END) \
     ON CONFLICT (org, id) DO UPDATE SET version = applications.version + 1, \
       deployed = excluded.deployed, created_at = excluded.created_at, \
       updated_at = excluded.updated_at, last_deployed_at = excluded.last_deployed_at, \
       deleted_at = NULL \
     WHERE applications.deleted_at IS NOT NULL \
     RETURNING version, created_at, updated_at, last_deployed_at";

const UPDATE: &str = "UPDATE applications SET version = version + 1, deployed = $3::boolean, \
       updated_at = $4::bigint, last_deployed_at = CASE WHEN $3 THEN $4 ELSE last_deployed_at END \
     WHERE org = $1 AND id = $2 AND deleted_at IS NULL \
     RETURNING version, created_at, updated_at, last_deployed_at";

/// Creates (`create`) or changes an application, and stores its new version, in one
/// transaction.
pub(super) async fn write(
    pool: &Pool,
    new: &NewVersion,
    create: bool,
    now: i64,
) -> Result<Option<ApplicationRecord>, StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    let stmt = tx
        .prepare_cached(if create { CREATE } else { UPDATE })
        .await
        .map_err(map_err)?;
    let row = tx
        .query_opt(&stmt, &[&new.org, &new.id, &new.deployed, &now])
        .await
        .map_err(map_err)?;
    let Some(row) = row else {
        return Ok(None);
    };
    let app = ApplicationRecord {
        id: new.id.clone(),
        version: row.get::<_, i32>(0) as u32,
        definition: new.definition.clone(),
        deployed: new.deployed,
        created_at: row.get(1),
        updated_at: row.get(2),
        last_deployed_at: row.get(3),
    };
    let insert = tx
        .prepare_cached(
            "INSERT INTO application_versions (org, application_id, version, definition, \
             created_at) VALUES ($1, $2, $3, $4, $5)",
        )
        .await
        .map_err(map_err)?;
    let version = app.version as i32;
    tx.execute(
        &insert,
        &[&new.org, &new.id, &version, &new.definition, &now],
    )
    .await
    .map_err(map_err)?;
    notify_applications(&tx, &new.org, &new.id).await?;
    tx.commit().await.map_err(map_err)?;
    Ok(Some(app))
}

pub(super) async fn delete(
    pool: &Pool,
    org: &OrgId,
    id: &ApplicationId,
    now: i64,
) -> Result<bool, StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    let stmt = tx
        .prepare_cached(
            "UPDATE applications SET deleted_at = $3, updated_at = $3 \
             WHERE org = $1 AND id = $2 AND deleted_at IS NULL",
        )
        .await
        .map_err(map_err)?;
    let n = tx
        .execute(&stmt, &[&org, &id, &now])
        .await
        .map_err(map_err)?;
    if n == 1 {
        notify_applications(&tx, org, id).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(n == 1)
}

pub(super) async fn list(pool: &Pool, org: &OrgId) -> Result<Vec<ApplicationRecord>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(
            "SELECT a.id, a.version, v.definition, a.deployed, a.created_at, a.updated_at, \
               a.last_deployed_at \
             FROM applications a JOIN application_versions v \
               ON v.org = a.org AND v.application_id = a.id AND v.version = a.version \
             WHERE a.org = $1 AND a.deleted_at IS NULL ORDER BY a.created_at, a.id",
        )
        .await
        .map_err(map_err)?;
    let rows = client.query(&stmt, &[&org]).await.map_err(map_err)?;
    rows.iter()
        .map(|r| {
            Ok(ApplicationRecord {
                id: r.try_get(0).map_err(map_err)?,
                version: r.get::<_, i32>(1) as u32,
                definition: r.get(2),
                deployed: r.get(3),
                created_at: r.get(4),
                updated_at: r.get(5),
                last_deployed_at: r.get(6),
            })
        })
        .collect()
}

pub(super) async fn version(
    pool: &Pool,
    org: &OrgId,
    id: &ApplicationId,
    version: u32,
) -> Result<Option<ApplicationVersion>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client
        .prepare_cached(
            "SELECT version, definition, created_at FROM application_versions \
             WHERE org = $1 AND application_id = $2 AND version = $3",
        )
        .await
        .map_err(map_err)?;
    let version = version as i32;
    let row = client
        .query_opt(&stmt, &[&org, &id, &version])
        .await
        .map_err(map_err)?;
    Ok(row.as_ref().map(version_row))
}

pub(super) async fn versions(pool: &Pool, q: &VersionQuery) -> Result<VersionPage, StoreError> {
    let client = connection(pool).await?;
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let page = client
        .prepare_cached(
            "SELECT version, definition, created_at FROM application_versions \
             WHERE org = $1 AND application_id = $2 ORDER BY version DESC LIMIT $3 OFFSET $4",
        )
        .await
        .map_err(map_err)?;
    let rows = client
        .query(&page, &[&q.org, &q.id, &limit, &offset])
        .await
        .map_err(map_err)?;
    let count = client
        .prepare_cached(
            "SELECT count(*) FROM application_versions WHERE org = $1 AND application_id = $2",
        )
        .await
        .map_err(map_err)?;
    let total: i64 = client
        .query_one(&count, &[&q.org, &q.id])
        .await
        .map_err(map_err)?
        .get(0);
    Ok(VersionPage {
        versions: rows.iter().map(version_row).collect(),
        total: total as u64,
    })
}

fn version_row(r: &Row) -> ApplicationVersion {
    ApplicationVersion {
        version: r.get::<_, i32>(0) as u32,
        definition: r.get(1),
        created_at: r.get(2),
    }
}
