//! Durable state: jobs and the batches they come in, the webhooks' outbox, files' metadata, applications and their versions, API keys,
//! organisations and graph lists, behind one [`Store`] trait.
//!
//! The store owns every SQL statement and nothing else: it never calls a model and never
//! decides policy (the engine decides retry versus fail; the store writes what it is told,
//! fenced by [`Lease`]). It is the bottom layer: it imports nothing from the modules above
//! it but the leaf `report`, for the causes its errors keep. The types it shares with them live here: the identifiers of jobs, batches, files,
//! applications and organisations (in `ids`: [`JobId`], [`BatchId`], [`FileId`], [`ApplicationId`], [`OrgId`], which the
//! API parses once, where a request names them; each backend stores them in its own `ids`),
//! the retry policy a job carries ([`RetryPolicy`]), the tokens a call used ([`Usage`]), and
//! in `limits` the provider limits a cluster keeps in its database (the `SharedLimits`
//! contract and the budget arithmetic each process's gate uses too). Every time a store writes or compares comes
//! from its [`Clock`]: the system clock in a server, a manual one in the conformance suite,
//! which moves it to make leases lapse instead of sleeping. Backends:
//! - [`sqlite`]: the embedded default. One writer thread owns the only write connection and
//!   commits whatever requests have queued up in one transaction (group commit), so many
//!   concurrent submits cost one fsync; reads use a small pool of read connections (WAL).
//! - [`postgres`]: the distributed mode, one database shared by many nodes: grouped inserts,
//!   `SKIP LOCKED` claims, batched fenced outcomes, LISTEN/NOTIFY wake-ups and application
//!   changes across nodes.

mod clock;
mod ids;
mod isolate;
pub(crate) mod limits;
mod model;
pub mod postgres;
pub mod sqlite;

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use crate::report::Cause;

pub use clock::Clock;
pub use ids::{ApplicationId, BatchId, FileId, JobId, OrgId};
pub use isolate::UNSTORABLE;
pub(crate) use isolate::isolating;
pub use model::*;

/// What every store method returns: a boxed future, so the store can live behind `dyn Store`.
pub(crate) type StoreFuture<'a, T> =
    Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// A failure of the storage layer. Each kind keeps the error of the database (or of the
/// file system, the thread, ...) that caused it; show it with [`Chain`](crate::report::Chain).
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached or is shutting down; worth retrying later.
    #[error("database unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The database answered with an error.
    #[error("database error: {0}")]
    Database(#[source] Cause),
    /// A uniqueness rule was broken (e.g. a key id that already exists).
    #[error("already exists: {0}")]
    Conflict(#[source] Cause),
}

impl StoreError {
    /// A [`StoreError::Database`] error: `error`, which happened while doing `context`.
    pub(crate) fn database(
        context: impl Into<Cow<'static, str>>,
        error: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Self::Database(Cause::context(context, error))
    }
}

/// Durable storage for scriptorium. Every method is one round trip to the backend; backends
/// group concurrent calls into shared transactions where they can.
pub trait Store: Send + Sync + 'static {
    /// Stores a new job as `queued`; durable when the future resolves. A repeated
    /// idempotency key within the organisation answers the existing job instead.
    fn insert_job(&self, job: NewJob) -> StoreFuture<'_, Inserted>;
    /// One job of `org`, or `None` (also for another organisation's job).
    fn get_job<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, Option<JobRecord>>;
    /// What a job of `org` was created with (its inputs, its application's version), or
    /// `None` (also for another organisation's job). Read only by a job's page, never on
    /// the path of a claim or a finish.
    fn job_inputs<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, Option<JobInputs>>;
    /// The attempts of a job of `org` that ended without its result, oldest first (none for
    /// another organisation's job). Read only by a job's page.
    fn ended_attempts<'a>(
        &'a self,
        org: &'a OrgId,
        id: JobId,
    ) -> StoreFuture<'a, Vec<EndedAttempt>>;
    /// A page of an application's jobs, newest first, with the total that match.
    fn list_jobs(&self, query: JobQuery) -> StoreFuture<'_, JobPage>;
    /// Queues a failed job again with a fresh series of attempts (not one refused at
    /// create, which never ran).
    fn retry_job<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, RetryOutcome>;

    /// Stores a batch and the items `parts` bring, in one transaction, as they arrive (a
    /// statement or a few per chunk): valid items `queued`, refused ones `failed` with their
    /// error; then the batch row, from the [`BatchPart::End`]. Durable when the future
    /// resolves; answers the batch as stored. Parts that stop before their end (every
    /// sender dropped) write nothing and answer an error. The valid items can be claimed
    /// when it resolves (SQLite) or soon after, as the store's queuer gives them their queue
    /// rows, a chunk at a time, on any node (PostgreSQL: 0018_queued_after_intake.sql);
    /// cancels reach them either way.
    fn insert_batch(&self, batch: NewBatch, parts: BatchParts) -> StoreFuture<'_, BatchRecord>;
    /// One batch of `org` with its counts, or `None` (also for another organisation's).
    fn get_batch<'a>(&'a self, org: &'a OrgId, id: BatchId)
    -> StoreFuture<'a, Option<BatchRecord>>;
    /// A page of an application's batches, newest first, with the total that match.
    fn list_batches(&self, query: BatchQuery) -> StoreFuture<'_, BatchPage>;
    /// A page of a batch's finished items in the order they finished, after a cursor; empty
    /// for another organisation's batch. An item retried and finished again is found once,
    /// at its new place; an item is only ever found after every item that finished before it
    /// (a client following the cursor misses none).
    fn batch_results(&self, query: ResultQuery) -> StoreFuture<'_, Vec<BatchResult>>;
    /// Cancels a job of `org`: at once if it waits, else it becomes `cancelling` and
    /// [`Store::cancels`] is signalled. A finished job is left as it is.
    fn cancel_job<'a>(
        &'a self,
        org: &'a OrgId,
        id: JobId,
    ) -> StoreFuture<'a, CancelOutcome<JobRecord>>;
    /// Cancels every item of a batch of `org` still in progress, in one statement, as
    /// [`Store::cancel_job`] does one, and records when. A finished batch is left as it is.
    fn cancel_batch<'a>(
        &'a self,
        org: &'a OrgId,
        id: BatchId,
    ) -> StoreFuture<'a, CancelOutcome<BatchRecord>>;
    /// Queues every failed or cancelled item of a batch of `org` again, in one statement,
    /// each with a fresh series of attempts (not those refused at create).
    fn retry_batch<'a>(&'a self, org: &'a OrgId, id: BatchId)
    -> StoreFuture<'a, BatchRetryOutcome>;

    /// Claims up to `limit` due jobs in one statement: each becomes `running` with its attempt
    /// number raised and a lease that lapses after `lease`.
    fn claim(&self, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<ClaimedJob>>;
    /// Writes the outcomes of finished attempts; each is applied only if its lease still
    /// holds. Answers how many were applied. An outcome the database refuses (a value it
    /// cannot hold) fails only its own job, with an error starting [`UNSTORABLE`]; the
    /// others are written.
    fn finish(&self, outcomes: Vec<Outcome>) -> StoreFuture<'_, usize>;
    /// Extends the leases of jobs still running, as a heartbeat. Answers the leases that no
    /// longer hold (the job was reaped, claimed again, finished or cancelled): their calls
    /// should stop. A `cancelling` job among them ends cancelled.
    fn renew(&self, leases: Vec<Lease>, lease: Duration) -> StoreFuture<'_, Vec<Lease>>;
    /// Gives back jobs this node claimed but will not finish (shutdown); they are queued
    /// again without using up an attempt.
    fn release(&self, leases: Vec<Lease>) -> StoreFuture<'_, usize>;
    /// Returns running jobs whose lease has lapsed (by the store's clock) to the queue, or
    /// fails them if that was their last attempt; cancelling ones end cancelled. Answers how
    /// many were touched.
    fn reap(&self) -> StoreFuture<'_, usize>;
    /// Signalled whenever jobs may have become runnable (inserted, retried, reaped).
    fn wakeups(&self) -> Arc<Notify>;
    /// Signalled when running jobs were cancelled (through this store; on PostgreSQL, by any
    /// node): the heartbeat renews at once, so their calls stop now rather than at the next
    /// beat.
    fn cancels(&self) -> Arc<Notify>;

    /// Jobs per organisation, application and status, from the counters the store keeps
    /// (a read of a few rows whatever the number of jobs); counts of zero are left out.
    fn job_counts(&self) -> StoreFuture<'_, Vec<JobCount>>;
    /// The schema the database is at and the one this build expects, in one cheap round
    /// trip: what readiness asks to learn that the database answers.
    fn schema_version(&self) -> StoreFuture<'_, SchemaVersion>;

    /// The organisation of an unrevoked key with this SHA-256 hash.
    fn authenticate(&self, key_hash: [u8; 32]) -> StoreFuture<'_, Option<OrgId>>;
    /// Stores a new key for `org` (creating the organisation if needed).
    fn create_key(&self, key: KeyInfo, key_hash: [u8; 32]) -> StoreFuture<'_, ()>;
    /// All keys, oldest first.
    fn list_keys(&self) -> StoreFuture<'_, Vec<KeyInfo>>;
    /// Revokes the key with this id; `false` if there is no such unrevoked key.
    fn revoke_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool>;

    /// The graph ids attached to an application for `org`.
    fn graphs<'a>(&'a self, org: &'a OrgId, app: &'a ApplicationId)
    -> StoreFuture<'a, Vec<String>>;
    /// Replaces the graph ids attached to an application for `org`.
    fn set_graphs<'a>(
        &'a self,
        org: &'a OrgId,
        app: &'a ApplicationId,
        ids: Vec<String>,
    ) -> StoreFuture<'a, ()>;

    /// Creates an application of `new.org` at version 1; `None` if the organisation already
    /// has one with this id. An id whose application was deleted is taken again, its version
    /// numbers continuing after the deleted one's (a job pinned to an old version never meets
    /// another definition under the same number).
    fn create_application(&self, new: NewVersion) -> StoreFuture<'_, Option<ApplicationRecord>>;
    /// Gives an application of `new.org` its next version; `None` if there is no such
    /// (undeleted) application.
    fn update_application(&self, new: NewVersion) -> StoreFuture<'_, Option<ApplicationRecord>>;
    /// Deletes an application of `org` (its versions stay, for the jobs pinned to them);
    /// `false` if there is no such application.
    fn delete_application<'a>(
        &'a self,
        org: &'a OrgId,
        id: &'a ApplicationId,
    ) -> StoreFuture<'a, bool>;
    /// Every (undeleted) application of `org` at its current version, oldest first.
    fn list_applications<'a>(&'a self, org: &'a OrgId) -> StoreFuture<'a, Vec<ApplicationRecord>>;
    /// One version of an application of `org` (also of a deleted one), or `None`.
    fn application_version<'a>(
        &'a self,
        org: &'a OrgId,
        id: &'a ApplicationId,
        version: u32,
    ) -> StoreFuture<'a, Option<ApplicationVersion>>;
    /// A page of an application's versions, newest first, with how many it has.
    fn list_application_versions(&self, query: VersionQuery) -> StoreFuture<'_, VersionPage>;
    /// Changes to applications made by any process sharing this store (this one included),
    /// heard after they commit; `None` when only this process writes them (SQLite).
    fn application_changes(&self) -> Option<broadcast::Receiver<ApplicationsChanged>>;
    /// Records what this node serves from its apps folder (replacing its earlier record) and
    /// answers the record another node wrote last, to compare; `None` when there is none or
    /// no other node can share the store (SQLite, which records nothing).
    fn record_node(&self, node: NodeApplications) -> StoreFuture<'_, Option<NodeApplications>>;

    /// Records an uploaded file as `in_progress`, unless the organisation's files would then
    /// take more than `quota` bytes. Its bytes must already be in blob storage.
    fn insert_file(&self, file: NewFile, quota: i64) -> StoreFuture<'_, FileInserted>;
    /// The files with these ids (of `org` only, when given), with their extracted text when
    /// `with_text`; ids not found are left out.
    fn get_files<'a>(
        &'a self,
        org: Option<&'a OrgId>,
        ids: &'a [FileId],
        with_text: bool,
    ) -> StoreFuture<'a, Vec<FileRecord>>;
    /// A cursor page of an organisation's files.
    fn list_files(&self, query: FileQuery) -> StoreFuture<'_, FilePage>;
    /// Claims up to `limit` files to extract, oldest first: `in_progress` files whose lease is
    /// free or lapsed, each with its attempt raised and a lease until `lease` from now. Files
    /// whose extraction was already started `max_attempts` times and never finished (their
    /// process died each time) are failed instead.
    fn claim_files(
        &self,
        limit: usize,
        lease: Duration,
        max_attempts: u32,
    ) -> StoreFuture<'_, Vec<ClaimedFile>>;
    /// Extends the leases of files still being extracted. Answers how many held.
    fn renew_files(&self, leases: Vec<FileLease>, lease: Duration) -> StoreFuture<'_, usize>;
    /// Gives back files this node claimed but will not finish (shutdown), without using up
    /// an attempt.
    fn release_files(&self, leases: Vec<FileLease>) -> StoreFuture<'_, usize>;
    /// Records the end of a file's extraction under its lease; `false` if the lease no longer
    /// holds (the file is gone, finished, or claimed again).
    fn file_processed(&self, lease: FileLease, outcome: FileProcessed) -> StoreFuture<'_, bool>;
    /// Sets these failed files of `org` back to `in_progress`; answers the files it reset.
    fn retry_files<'a>(
        &'a self,
        org: &'a OrgId,
        ids: &'a [FileId],
    ) -> StoreFuture<'a, Vec<FileRecord>>;
    /// Deletes a file of `org`; `false` if there is no such file.
    fn delete_file<'a>(&'a self, org: &'a OrgId, id: FileId) -> StoreFuture<'a, bool>;

    /// The webhooks' outbox and secrets.
    fn outbox(&self) -> &dyn Outbox;
    /// What only the dashboard reads and writes.
    fn dashboard(&self) -> &dyn Dashboard;
}

/// The webhooks' part of the store: each organisation's signing secret, and the outbox the
/// database's triggers fill as batches' items and batches finish (model `webhooks`). A trait
/// of its own, reached through [`Store::outbox`], so each backend keeps these statements
/// and their implementation in its `webhooks` file.
pub trait Outbox: Send + Sync {
    /// The organisation's signing secrets; `fresh` becomes the current one if it has none yet.
    fn webhook_secret<'a>(
        &'a self,
        org: &'a OrgId,
        fresh: String,
    ) -> StoreFuture<'a, SigningSecrets>;
    /// Replaces the organisation's signing secret with `fresh`; the one it replaces is kept as
    /// the previous one, with the time.
    fn rotate_webhook_secret<'a>(&'a self, org: &'a OrgId, fresh: String) -> StoreFuture<'a, ()>;
    /// Claims up to `limit` due events, oldest due first, for one attempt each: each gets its
    /// attempt number raised and is not due again until `lease` has passed (so a node that
    /// dies mid-attempt only delays it).
    fn claim_events(&self, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<ClaimedEvent>>;
    /// Records an attempt and moves its event on, if the attempt's claim still holds (else
    /// only the attempt is recorded). Answers whether the event moved.
    fn record_delivery(&self, delivery: Delivery) -> StoreFuture<'_, bool>;
    /// A page of an organisation's events with their attempts, newest first.
    fn list_deliveries(&self, query: DeliveryQuery) -> StoreFuture<'_, DeliveryPage>;
    /// How many events wait to be delivered, from a counter the outbox's triggers keep (a
    /// read of a few rows, never a count of the events).
    fn pending_events(&self) -> StoreFuture<'_, i64>;
}

/// The dashboard's part of the store (model `dashboard`), reached through
/// [`Store::dashboard`]: the per-minute roll-up of finished jobs its charts draw, its
/// sessions (shared by every node of a cluster), and its jobs list by keyset. Nothing here is
/// on the path of a claim or a finish.
pub trait Dashboard: Send + Sync {
    /// Rolls up the jobs that finished in the minutes from where the last roll-up (of any
    /// node) stopped, at most a day back, to `until` (a minute's start, excluded): one row per
    /// organisation, application and minute, written once (a minute already written is left as
    /// it is, so nodes rolling up together write it once). Then forgets the minutes older
    /// than two days and the sessions that have expired. Answers the rows written.
    fn roll_up(&self, until: i64) -> StoreFuture<'_, usize>;
    /// The rolled-up minutes of `org` from `since` on, oldest first.
    fn minutes<'a>(&'a self, org: &'a OrgId, since: i64) -> StoreFuture<'a, Vec<MinuteFigures>>;
    /// Stores a new session.
    fn open_session(&self, session: StoredSession) -> StoreFuture<'_, ()>;
    /// The unexpired session whose id has this hash.
    fn session(&self, id_hash: [u8; 32]) -> StoreFuture<'_, Option<StoredSession>>;
    /// Ends the session whose id has this hash.
    fn close_session(&self, id_hash: [u8; 32]) -> StoreFuture<'_, ()>;
    /// A page of jobs, newest first, by keyset: however deep the page, only its own rows and
    /// the index entries of the filter are read.
    fn browse_jobs(&self, filter: JobFilter) -> StoreFuture<'_, Vec<JobRecord>>;
}
