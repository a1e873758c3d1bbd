//! The distributed backend: one PostgreSQL database shared by any number of nodes.
//!
//! # Design
//! - **Connections.** A [`deadpool_postgres`] pool (16 connections, created on demand) serves
//!   every call. Its wait, create and recycle timeouts are 5 s, so a request never hangs on a
//!   dead database: it gets [`StoreError::Unavailable`] (the API answers 503, the engine
//!   retries). A connection the server closed (a restart, `pg_terminate_backend`) is noticed
//!   by its connection task, dropped at its next checkout and replaced, so the pool recovers
//!   by itself; a query that raced the close fails once, as `Unavailable`.
//! - **Inserts are grouped** ([`inserter`]): one task collects concurrent `insert_job` calls and
//!   writes each group with one multi-row `INSERT … SELECT FROM unnest(…)` in one transaction,
//!   replying after the commit. A commit costs an fsync, so per-request commits cap intake
//!   near 10k/s; a group shares one.
//! - **The queue is a table of its own**: `job_queue` holds one narrow row per queued,
//!   retrying or running job (state, attempt, due time, lease), so claims, heartbeats,
//!   releases and requeues rewrite that row and its two small indexes, never the wide `jobs`
//!   row and its indexes. A job's `jobs` row is written on insert, when it leaves the queue
//!   (with its outcome), on a retry outcome and by the retry route; the `job_records` view
//!   reads the queue's columns while a queue row exists (migration 0003).
//! - **A batch's items are queued after it is stored** ([`queueing`]): the batch's insert
//!   writes only their `jobs` rows, and the store's queuer gives them their queue rows after
//!   the commit, a chunk per transaction under the batch's queueing lock, waking every node;
//!   any node's queuer finishes a batch another node left half queued (migration 0018).
//! - **Claims, outcomes, heartbeats and releases are one statement each** ([`jobs`],
//!   [`leases`]): a claim is `FOR UPDATE SKIP LOCKED`, so nodes never wait on each other; a
//!   batch of outcomes of every kind is one fenced statement over `unnest(…)`. One statement,
//!   rather than one per outcome kind, matters here: the `job_counts` triggers upsert counter
//!   rows in key order within a statement, so transactions that each change counts in a single
//!   statement always lock counter rows in the same order and cannot deadlock one another.
//! - **Wake-ups** ([`listener`]): every commit that may make jobs runnable also runs
//!   `pg_notify('scriptorium_jobs', <schema>)` inside its transaction (once per transaction);
//!   a dedicated connection LISTENs, reconnecting with backoff when it drops, and turns
//!   notifications for its own schema into [`Notify::notify_one`]. So a job accepted by one
//!   node wakes the engines of all. The engine polls as a fallback (PgBouncer in transaction
//!   mode, for one, breaks LISTEN). Every write of an application likewise runs
//!   `pg_notify('scriptorium_applications', [schema, org, id])` in its transaction; the same
//!   connection hears it and passes it on to the subscribers of
//!   [`Store::application_changes`](crate::store::Store::application_changes).
//! - **Nodes** ([`nodes`]): each node records at start what its apps folder serves, so that a
//!   node started with a different folder is told so.
//! - **Counts** are kept by statement-level triggers with transition tables (one upsert per
//!   organisation, application and status per statement), so `totalCount` never scans. Since
//!   migration 0003 each connection upserts the counter rows of its own shard (backend pid
//!   modulo 16) and `totalCount` sums the shards, so concurrent writers no longer queue
//!   behind one counter row's commit.
//! - **The [`Store`](crate::store::Store) calls** ([`store_impl`]) run those statements and
//!   wake this node's engine after them.
//! - **Migrations** ([`migrate`]) are versioned in `schema_migrations` and run under a
//!   transaction-scoped advisory lock, so nodes starting together do not race.
//!
//! The tables live in the first schema of the connection's `search_path`; give each
//! deployment (or test) its own with `options=-c search_path=NAME` in the URL.

mod applications;
mod batches;
mod cancels;
mod dashboard;
mod errors;
mod files;
mod ids;
mod inserter;
mod jobs;
mod leases;
mod listener;
mod migrate;
mod nodes;
mod orgs;
mod queueing;
mod results;
mod shared;
mod store_impl;
mod webhooks;

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio::sync::{Notify, broadcast, mpsc};
use tokio::task::JoinHandle;
use tokio_postgres::{Config, NoTls};

use super::{ApplicationId, ApplicationsChanged, Clock, OrgId, StoreError};
use errors::{map_err, pool_err};

/// Connections in the pool at most.
const POOL_SIZE: usize = 16;
/// How long a call waits for a connection, for a new connection, or for a health check.
const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// The channel wake-ups are sent on; the payload is the schema, so deployments sharing a
/// database in different schemas do not wake each other.
const CHANNEL: &str = "scriptorium_jobs";
/// Sent inside every transaction that may make jobs runnable (on [`CHANNEL`]).
const NOTIFY: &str = "SELECT pg_notify('scriptorium_jobs', coalesce(current_schema(), ''))";
/// The channel running jobs' cancels are announced on (payload: the schema), so every node's
/// heartbeat renews at once and the cancelled calls stop now.
const CANCELS_CHANNEL: &str = "scriptorium_cancels";
/// The channel changes to applications are announced on.
const APPLICATIONS_CHANNEL: &str = "scriptorium_applications";
/// Sent inside every transaction that writes an application (on [`APPLICATIONS_CHANNEL`]),
/// with `$1` the organisation and `$2` the application: the payload is the JSON array
/// `[schema, org, id]`.
const NOTIFY_APPLICATIONS: &str = "SELECT pg_notify('scriptorium_applications', \
     json_build_array(coalesce(current_schema(), ''), $1::text, $2::text)::text)";
/// Changes to applications heard but not yet taken by a slow subscriber, at most; one that
/// falls further behind is told it missed some.
const APPLICATION_CHANGES: usize = 1024;

/// The PostgreSQL store. Cheap to share behind an `Arc`; several nodes (or several stores in
/// one process) may open the same database and schema at once.
pub struct PostgresStore {
    pool: Pool,
    inserts: mpsc::Sender<inserter::Request>,
    wakeups: Arc<Notify>,
    /// Signalled when running jobs were cancelled, by this node or (heard through the
    /// listener) by another (see [`Store::cancels`](crate::store::Store::cancels)).
    cancels: Arc<Notify>,
    applications: broadcast::Sender<ApplicationsChanged>,
    listener: JoinHandle<()>,
    queuer: queueing::Queuer,
    clock: Clock,
    /// The organisation this node's last claim served last: the next claim starts after it.
    turn: std::sync::Mutex<Option<OrgId>>,
}

impl PostgresStore {
    /// Connects to the database at `url` (a `postgres://` URL or a key-value string), applies
    /// any pending migrations, starts listening for wake-ups and the insert grouper.
    ///
    /// Fails with [`StoreError::Unavailable`] when the database cannot be reached.
    pub async fn open(url: &str) -> Result<Self, StoreError> {
        Self::open_with_clock(url, Clock::System).await
    }

    /// [`PostgresStore::open`], reading the time from `clock` (a test's manual clock).
    pub async fn open_with_clock(url: &str, clock: Clock) -> Result<Self, StoreError> {
        let config = config(url)?;
        migrate::run(&config).await?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .build()
            .map_err(|e| StoreError::database("cannot build the pool", e))?;
        let wakeups = Arc::new(Notify::new());
        let cancels = Arc::new(Notify::new());
        let (applications, _) = broadcast::channel(APPLICATION_CHANGES);
        let signals = listener::Signals {
            wakeups: wakeups.clone(),
            cancels: cancels.clone(),
            applications: applications.clone(),
        };
        let listener = listener::start(config, signals).await?;
        let inserts = inserter::spawn(pool.clone(), wakeups.clone(), clock.clone());
        let queuer = queueing::spawn(pool.clone());
        Ok(Self {
            pool,
            inserts,
            wakeups,
            cancels,
            applications,
            listener,
            queuer,
            clock,
            turn: std::sync::Mutex::default(),
        })
    }
}

impl Drop for PostgresStore {
    fn drop(&mut self) {
        // The grouper stops by itself once `inserts` is dropped; the listener must be told.
        self.listener.abort();
        self.pool.close();
    }
}

/// Applies any pending migrations to the database at `url` and returns, for a `migrate`
/// command run before the servers start. [`PostgresStore::open`] does the same, so this is
/// optional.
pub async fn migrate(url: &str) -> Result<(), StoreError> {
    migrate::run(&config(url)?).await
}

/// Parses `url` and fills in what it leaves out: an application name (shown in
/// `pg_stat_activity`), a connect timeout, and TCP keepalives that notice a vanished server in
/// about a minute rather than two hours.
fn config(url: &str) -> Result<Config, StoreError> {
    let mut config: Config = url
        .parse()
        .map_err(|e| StoreError::database("invalid PostgreSQL URL", e))?;
    if config.get_application_name().is_none() {
        config.application_name("scriptorium");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(POOL_TIMEOUT);
    }
    if config.get_keepalives_idle() == Duration::from_secs(2 * 60 * 60) {
        config.keepalives_idle(Duration::from_secs(30));
        config.keepalives_interval(Duration::from_secs(10));
        config.keepalives_retries(3);
    }
    Ok(config)
}

/// A pooled connection, or `Unavailable`.
async fn connection(pool: &Pool) -> Result<deadpool_postgres::Object, StoreError> {
    pool.get().await.map_err(pool_err)
}

/// Runs [`NOTIFY`] in the transaction `tx`, so listeners hear of it once it commits.
async fn notify(tx: &deadpool_postgres::Transaction<'_>) -> Result<(), StoreError> {
    let stmt = tx.prepare_cached(NOTIFY).await.map_err(map_err)?;
    tx.execute(&stmt, &[]).await.map_err(map_err)?;
    Ok(())
}

/// Runs [`NOTIFY_APPLICATIONS`] for `org`'s application `id` in the transaction `tx`.
async fn notify_applications(
    tx: &deadpool_postgres::Transaction<'_>,
    org: &OrgId,
    id: &ApplicationId,
) -> Result<(), StoreError> {
    let stmt = tx
        .prepare_cached(NOTIFY_APPLICATIONS)
        .await
        .map_err(map_err)?;
    tx.execute(&stmt, &[&org, &id]).await.map_err(map_err)?;
    Ok(())
}
