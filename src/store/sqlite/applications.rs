//! Applications and their versions: the current version's row, and every version, immutable.

use rusqlite::{Connection, OptionalExtension, Row, params};

use crate::store::{
    ApplicationId, ApplicationRecord, ApplicationVersion, NewVersion, OrgId, VersionPage,
    VersionQuery,
};

/// The row of an application's current version: `RETURNING` this after an insert or update.
const CURRENT: &str = "version, created_at, updated_at, last_deployed_at";

pub(super) fn create(
    conn: &Connection,
    new: &NewVersion,
    now: i64,
) -> rusqlite::Result<Option<ApplicationRecord>> {
    // A deleted application's row is taken over, its version numbers continuing.
    let sql = format!(
        "INSERT INTO applications (org, id, version, deployed, created_at, updated_at, \
           last_deployed_at) \
         VALUES (?1, ?2, 1, ?3, ?4, ?4, CASE WHEN ?3 THEN ?4 END) \
         ON CONFLICT (org, id) DO UPDATE SET version = version + 1, \
           deployed = excluded.deployed, created_at = excluded.created_at, \
           updated_at = excluded.updated_at, last_deployed_at = excluded.last_deployed_at, \
           deleted_at = NULL \
         WHERE deleted_at IS NOT NULL \
         RETURNING {CURRENT}"
    );
    let current = conn
        .prepare_cached(&sql)?
        .query_row(params![new.org, new.id, new.deployed, now], |r| {
            record(r, new)
        })
        .optional()?;
    add_version(conn, current, new, now)
}

pub(super) fn update(
    conn: &Connection,
    new: &NewVersion,
    now: i64,
) -> rusqlite::Result<Option<ApplicationRecord>> {
    let sql = format!(
        "UPDATE applications SET version = version + 1, deployed = ?3, updated_at = ?4, \
           last_deployed_at = CASE WHEN ?3 THEN ?4 ELSE last_deployed_at END \
         WHERE org = ?1 AND id = ?2 AND deleted_at IS NULL \
         RETURNING {CURRENT}"
    );
    let current = conn
        .prepare_cached(&sql)?
        .query_row(params![new.org, new.id, new.deployed, now], |r| {
            record(r, new)
        })
        .optional()?;
    add_version(conn, current, new, now)
}

/// Stores the version row of `current`, when there is one.
fn add_version(
    conn: &Connection,
    current: Option<ApplicationRecord>,
    new: &NewVersion,
    now: i64,
) -> rusqlite::Result<Option<ApplicationRecord>> {
    if let Some(app) = &current {
        conn.prepare_cached(
            "INSERT INTO application_versions (org, application_id, version, definition, \
             created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![new.org, new.id, app.version, new.definition, now])?;
    }
    Ok(current)
}

/// The record of `new` from a row of [`CURRENT`].
fn record(r: &Row<'_>, new: &NewVersion) -> rusqlite::Result<ApplicationRecord> {
    Ok(ApplicationRecord {
        id: new.id.clone(),
        version: r.get(0)?,
        definition: new.definition.clone(),
        deployed: new.deployed,
        created_at: r.get(1)?,
        updated_at: r.get(2)?,
        last_deployed_at: r.get(3)?,
    })
}

pub(super) fn delete(
    conn: &Connection,
    org: &OrgId,
    id: &ApplicationId,
    now: i64,
) -> rusqlite::Result<bool> {
    let n = conn
        .prepare_cached(
            "UPDATE applications SET deleted_at = ?3, updated_at = ?3 \
             WHERE org = ?1 AND id = ?2 AND deleted_at IS NULL",
        )?
        .execute(params![org, id, now])?;
    Ok(n == 1)
}

pub(super) fn list(conn: &Connection, org: &OrgId) -> rusqlite::Result<Vec<ApplicationRecord>> {
    conn.prepare_cached(
        "SELECT a.id, a.version, v.definition, a.deployed, a.created_at, a.updated_at, \
           a.last_deployed_at \
         FROM applications a JOIN application_versions v \
           ON v.org = a.org AND v.application_id = a.id AND v.version = a.version \
         WHERE a.org = ?1 AND a.deleted_at IS NULL ORDER BY a.created_at, a.id",
    )?
    .query_map([org], |r| {
        Ok(ApplicationRecord {
            id: r.get(0)?,
            version: r.get(1)?,
            definition: r.get(2)?,
            deployed: r.get(3)?,
            created_at: r.get(4)?,
            updated_at: r.get(5)?,
            last_deployed_at: r.get(6)?,
        })
    })?
    .collect()
}

pub(super) fn version(
    conn: &Connection,
    org: &OrgId,
    id: &ApplicationId,
    version: u32,
) -> rusqlite::Result<Option<ApplicationVersion>> {
    conn.prepare_cached(
        "SELECT version, definition, created_at FROM application_versions \
         WHERE org = ?1 AND application_id = ?2 AND version = ?3",
    )?
    .query_row(params![org, id, version], version_row)
    .optional()
}

pub(super) fn versions(conn: &Connection, q: &VersionQuery) -> rusqlite::Result<VersionPage> {
    let offset = i64::try_from(q.offset).unwrap_or(i64::MAX);
    let limit = i64::try_from(q.limit).unwrap_or(i64::MAX);
    let versions = conn
        .prepare_cached(
            "SELECT version, definition, created_at FROM application_versions \
             WHERE org = ?1 AND application_id = ?2 ORDER BY version DESC LIMIT ?3 OFFSET ?4",
        )?
        .query_map(params![q.org, q.id, limit, offset], version_row)?
        .collect::<rusqlite::Result<_>>()?;
    let total: i64 = conn
        .prepare_cached(
            "SELECT count(*) FROM application_versions WHERE org = ?1 AND application_id = ?2",
        )?
        .query_row(params![q.org, q.id], |r| r.get(0))?;
    Ok(VersionPage {
        versions,
        total: total as u64,
    })
}

fn version_row(r: &Row<'_>) -> rusqlite::Result<ApplicationVersion> {
    Ok(ApplicationVersion {
        version: r.get(0)?,
        definition: r.get(1)?,
        created_at: r.get(2)?,
    })
}
