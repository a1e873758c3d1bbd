//! The embedded backend: one SQLite file in WAL mode.
//!
//! Writes go through [`writer::Writer`] (one thread, group commit); reads use a pool of read
//! connections on blocking threads, which WAL lets run beside the writer. A server takes an
//! exclusive lock file next to the database, so exactly one server works a data directory and
//! may, at start, return every job the previous process left `running` to the queue at once.
//! Command-line tools (`keys`) open the database without that lock, beside a running server.
//! This file opens and migrates the database; [`store_impl`] maps each
//! [`Store`](crate::store::Store) call onto the writer or a reader.

mod applications;
mod batches;
mod cancels;
mod claims;
mod dashboard;
mod files;
mod ids;
mod jobs;
mod leases;
mod orgs;
mod results;
mod store_impl;
mod webhooks;
mod writer;

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rusqlite::config::DbConfig;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::Notify;

use super::{Clock, OrgId, SchemaVersion, StoreError};
use crate::report::Cause;
use writer::Writer;

const MIGRATIONS: &[&str] = &[
    include_str!("0001_init.sql"),
    include_str!("0002_files.sql"),
    include_str!("0003_file_leases.sql"),
    include_str!("0004_scheduler.sql"),
    include_str!("0005_due_index_without_in.sql"),
    include_str!("0006_job_provider.sql"),
    include_str!("0007_applications.sql"),
    include_str!("0008_batches.sql"),
    include_str!("0009_batch_counts.sql"),
    include_str!("0010_webhooks.sql"),
    include_str!("0011_batch_lifecycle.sql"),
    include_str!("0012_one_state_trigger.sql"),
    include_str!("0013_insert_counts.sql"),
    include_str!("0014_dashboard.sql"),
    include_str!("0015_job_attempts.sql"),
    include_str!("0016_completion_counts.sql"),
];
/// Page cache of the key-lookup connection.
const AUTH_CACHE_KIB: u32 = 256;

/// How hard SQLite pushes each commit to disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// fsync on every commit: an accepted job survives power loss.
    Full,
    /// fsync at checkpoints: an accepted job survives a crash of the process, not of the machine.
    Normal,
}

/// The SQLite store.
pub struct SqliteStore {
    writer: Writer,
    readers: Arc<Readers>,
    /// A connection for key lookups only. Its cache stays tiny because SQLite drops a
    /// reader's whole page cache whenever another connection has written, which here is
    /// all the time.
    auth: Mutex<Connection>,
    wakeups: Arc<Notify>,
    cancels: Arc<Notify>,
    clock: Clock,
    /// The organisation the last claim served last: the next claim starts after it.
    turn: Arc<std::sync::Mutex<Option<OrgId>>>,
    _lock: Option<File>,
}

impl SqliteStore {
    /// Opens (creating and migrating) the database at `path` for a server: takes the data
    /// directory's lock and queues again every job a previous process left running.
    pub(crate) async fn open_for_server(path: &Path, sync: Durability) -> Result<Self, StoreError> {
        create_parent(path)?;
        let lock_path = path.with_extension("lock");
        let lock = File::create(&lock_path).map_err(|e| io_err(&lock_path, e))?;
        lock.try_lock().map_err(|e| {
            let in_use = format!("{} is in use by another scriptorium server", path.display());
            StoreError::Unavailable(Cause::context(in_use, e))
        })?;
        let mut store = Self::open(path, sync)?;
        store._lock = Some(lock);
        let now = store.clock.now();
        let recovered = store
            .writer
            .write(true, move |c| leases::reap(c, i64::MAX, now))
            .await?;
        if recovered > 0 {
            tracing::info!(
                jobs = recovered,
                "queued again the jobs a previous run left running"
            );
        }
        let files = store.writer.write(false, files::recover).await?;
        if files > 0 {
            tracing::info!(
                files,
                "extracting again the files a previous run left unfinished"
            );
        }
        store
            .writer
            .write(false, move |c| webhooks::recover(c, now))
            .await?;
        Ok(store)
    }

    /// Opens (creating and migrating) the database at `path` without the server lock.
    pub fn open(path: &Path, sync: Durability) -> Result<Self, StoreError> {
        Self::open_with_clock(path, sync, Clock::System)
    }

    /// [`SqliteStore::open`], reading the time from `clock` (a test's manual clock).
    pub fn open_with_clock(
        path: &Path,
        sync: Durability,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        create_parent(path)?;
        let conn = connect(path, sync).map_err(map_err)?;
        migrate(&conn).map_err(map_err)?;
        conn.execute_batch("PRAGMA wal_autocheckpoint = 0")
            .map_err(map_err)?;
        let checkpoints = connect(path, sync).map_err(map_err)?;
        let auth = connect(path, sync).map_err(map_err)?;
        auth.execute_batch(&format!("PRAGMA cache_size = -{AUTH_CACHE_KIB}"))
            .map_err(map_err)?;
        let wakeups = Arc::new(Notify::new());
        let writer = Writer::spawn(conn, checkpoints, wakeups.clone())
            .map_err(|e| StoreError::database("cannot start the writer", e))?;
        let readers = Arc::new(Readers {
            path: path.to_path_buf(),
            sync,
            idle: Mutex::new(Vec::new()),
        });
        Ok(Self {
            writer,
            readers,
            auth: Mutex::new(auth),
            wakeups,
            cancels: Arc::default(),
            clock,
            turn: Arc::default(),
            _lock: None,
        })
    }
}

fn create_parent(path: &Path) -> Result<(), StoreError> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))
        }
        _ => Ok(()),
    }
}

fn connect(path: &Path, sync: Durability) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    let sync = match sync {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; \
         PRAGMA cache_size = -65536; PRAGMA temp_store = MEMORY;"
    ))?;
    conn.set_prepared_statement_cache_capacity(64);
    // Plans never depend on the values bound to them. Without this, SQLite reads a bound
    // `LIMIT ?` while planning and marks the statement to be prepared again whenever that
    // parameter is bound anew, so a cached statement was prepared again at every use: every
    // claim's UPDATE of jobs (with the status trigger's program, ~320,000 instructions each)
    // and every page of the jobs list.
    conn.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
    Ok(conn)
}

fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let version: usize = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version) {
        conn.execute_batch(&format!(
            "BEGIN IMMEDIATE; {sql}; PRAGMA user_version = {}; COMMIT;",
            i + 1
        ))?;
    }
    Ok(())
}

/// The schema version of the database `conn` reads, beside this build's.
fn schema_version(conn: &Connection) -> rusqlite::Result<SchemaVersion> {
    let applied: u32 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    Ok(SchemaVersion {
        applied,
        expected: MIGRATIONS.len() as u32,
    })
}

/// Read connections, opened on demand and kept for reuse.
struct Readers {
    path: PathBuf,
    sync: Durability,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    /// Runs `f` on a read connection, on the calling thread.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StoreError> {
        let pooled = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let conn = match pooled {
            Some(conn) => conn,
            None => connect(&self.path, self.sync).map_err(map_err)?,
        };
        let result = f(&conn).map_err(map_err);
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(conn);
        }
        result
    }
}

/// Runs `f` on a read connection on a blocking thread.
async fn read<T, F>(readers: &Arc<Readers>, f: F) -> Result<T, StoreError>
where
    T: Send + 'static,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
{
    let readers = readers.clone();
    tokio::task::spawn_blocking(move || readers.with(f))
        .await
        .map_err(|e| StoreError::database("read task failed", e))?
}

/// Sorts SQLite's errors into the store's: a busy or locked database is worth retrying.
fn map_err(e: rusqlite::Error) -> StoreError {
    use rusqlite::ErrorCode;
    match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            StoreError::Unavailable(Cause::new(e))
        }
        Some(ErrorCode::ConstraintViolation) => StoreError::Conflict(Cause::new(e)),
        _ => StoreError::Database(Cause::new(e)),
    }
}

fn io_err(path: &Path, e: std::io::Error) -> StoreError {
    StoreError::database(path.display().to_string(), e)
}

/// The steps of `EXPLAIN QUERY PLAN` for `sql`, its parameters left unbound (with QPSG on, no
/// bound value changes a plan).
#[cfg(test)]
fn query_plan(conn: &Connection, sql: &str) -> Vec<String> {
    let mut explain = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
    let mut steps = explain.raw_query();
    let mut plan = Vec::new();
    while let Some(step) = steps.next().unwrap() {
        plan.push(step.get(3).unwrap());
    }
    plan
}
