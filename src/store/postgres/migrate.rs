//! Schema migrations, versioned in `schema_migrations`.
//!
//! All pending migrations run in one transaction that first takes an advisory lock keyed on
//! the schema, so when several nodes start at once one migrates and the others wait, then
//! find nothing left to do. DDL is transactional in PostgreSQL: a failed migration leaves
//! nothing half-applied.

use deadpool_postgres::Pool;
use tokio_postgres::{Client, Config, NoTls};

use super::connection;
use super::errors::map_err;
use crate::report::{Cause, Chain};
use crate::store::{SchemaVersion, StoreError, now_micros};

/// The migrations in order; version `i + 1` is `MIGRATIONS[i]`. Never edit a released one:
/// add the next.
const MIGRATIONS: &[&str] = &[
    include_str!("0001_init.sql"),
    include_str!("0002_shared_limits.sql"),
    include_str!("0003_job_queue.sql"),
    include_str!("0004_files.sql"),
    include_str!("0005_file_leases.sql"),
    include_str!("0006_scheduler.sql"),
    include_str!("0007_job_provider.sql"),
    include_str!("0008_applications.sql"),
    include_str!("0009_nodes.sql"),
    include_str!("0010_batches.sql"),
    include_str!("0011_webhooks.sql"),
    include_str!("0012_batch_lifecycle.sql"),
    include_str!("0013_dashboard.sql"),
    include_str!("0014_job_attempts.sql"),
    include_str!("0015_lists_by_status.sql"),
    include_str!("0016_batch_ranges.sql"),
    include_str!("0017_insert_counts.sql"),
    include_str!("0018_queued_after_intake.sql"),
];

/// Taken before anything else, per schema: nodes sharing a schema serialise their
/// migrations, while deployments (or tests) in other schemas of the database do not wait.
const LOCK: &str = "SELECT pg_advisory_xact_lock(\
     hashtextextended('scriptorium.migrations.' || coalesce(current_schema(), ''), 0))";

const CREATE_VERSIONS: &str = "CREATE TABLE IF NOT EXISTS schema_migrations (\
     version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)";

/// Connects with `config` on a connection of its own and applies every pending migration.
pub(super) async fn run(config: &Config) -> Result<(), StoreError> {
    let (mut client, connection) = config.connect(NoTls).await.map_err(unreachable)?;
    let driver = tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %Chain(&e), "migration connection ended");
        }
    });
    let result = apply(&mut client).await;
    drop(client);
    let _ = driver.await;
    result
}

async fn apply(client: &mut Client) -> Result<(), StoreError> {
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(LOCK).await.map_err(map_err)?;
    tx.batch_execute(CREATE_VERSIONS).await.map_err(map_err)?;
    let current: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(map_err)?
        .get(0);
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(current.max(0) as usize) {
        let version = i as i32 + 1;
        tx.batch_execute(sql).await.map_err(|e| match map_err(e) {
            StoreError::Database(cause) => {
                StoreError::Database(Cause::context(format!("migration {version}"), cause))
            }
            other => other,
        })?;
        tx.execute(
            "INSERT INTO schema_migrations (version, applied_at) VALUES ($1, $2)",
            &[&version, &now_micros()],
        )
        .await
        .map_err(map_err)?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(map_err)
}

/// The schema version of the database the pool reaches, beside this build's.
pub(super) async fn version(pool: &Pool) -> Result<SchemaVersion, StoreError> {
    let client = connection(pool).await?;
    let applied: i32 = client
        .query_one(
            "SELECT coalesce(max(version), 0) FROM schema_migrations",
            &[],
        )
        .await
        .map_err(map_err)?
        .get(0);
    Ok(SchemaVersion {
        applied: applied.max(0) as u32,
        expected: MIGRATIONS.len() as u32,
    })
}

/// A failure to connect at all is always "unavailable", whatever the cause.
fn unreachable(e: tokio_postgres::Error) -> StoreError {
    match map_err(e) {
        StoreError::Database(cause) => StoreError::Unavailable(cause),
        other => other,
    }
}
