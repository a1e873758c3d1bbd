//! The [`Store`] trait for [`SqliteStore`]: each call becomes a write on the writer's thread
//! (grouped with the writes queued beside it) or a read on a pooled read connection.

use std::sync::Arc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, broadcast};

use super::{
    SqliteStore, applications, batches, cancels, claims, files, jobs, leases, map_err, orgs, read,
    results, schema_version,
};
use crate::store::{
    ApplicationId, ApplicationRecord, ApplicationVersion, ApplicationsChanged, BatchId, BatchPage,
    BatchParts, BatchQuery, BatchRecord, BatchResult, BatchRetryOutcome, CancelOutcome,
    ClaimedFile, ClaimedJob, Dashboard, EndedAttempt, FileId, FileInserted, FileLease, FilePage,
    FileProcessed, FileQuery, FileRecord, Inserted, JobCount, JobId, JobInputs, JobPage, JobQuery,
    JobRecord, KeyInfo, Lease, NewBatch, NewFile, NewJob, NewVersion, NodeApplications, OrgId,
    Outbox, Outcome, OutcomeKind, ResultQuery, RetryOutcome, SchemaVersion, Store, StoreError,
    StoreFuture, VersionPage, VersionQuery, isolating,
};

impl SqliteStore {
    /// Runs a cancel in the writer; signals [`Store::cancels`] when it stopped running jobs.
    async fn cancel<T: Send + 'static>(
        &self,
        op: impl Fn(&Connection) -> rusqlite::Result<(T, bool)> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (outcome, running) = self.writer.write(false, op).await?;
        if running {
            self.cancels.notify_one();
        }
        Ok(outcome)
    }
}

impl Store for SqliteStore {
    fn insert_job(&self, job: NewJob) -> StoreFuture<'_, Inserted> {
        let now = self.clock.now();
        Box::pin(self.writer.write(true, move |c| jobs::insert(c, &job, now)))
    }

    fn get_job<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, Option<JobRecord>> {
        let org = org.clone();
        Box::pin(read(&self.readers, move |c| jobs::get(c, &org, id)))
    }

    fn job_inputs<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, Option<JobInputs>> {
        let org = org.clone();
        Box::pin(read(&self.readers, move |c| jobs::inputs(c, &org, id)))
    }

    fn ended_attempts<'a>(
        &'a self,
        org: &'a OrgId,
        id: JobId,
    ) -> StoreFuture<'a, Vec<EndedAttempt>> {
        let org = org.clone();
        Box::pin(read(&self.readers, move |c| {
            jobs::ended_attempts(c, &org, id)
        }))
    }

    fn list_jobs(&self, query: JobQuery) -> StoreFuture<'_, JobPage> {
        Box::pin(read(&self.readers, move |c| jobs::list(c, &query)))
    }

    fn retry_job<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, RetryOutcome> {
        let now = self.clock.now();
        let org = org.clone();
        Box::pin(
            self.writer
                .write(true, move |c| jobs::retry(c, &org, id, now)),
        )
    }

    fn insert_batch(&self, batch: NewBatch, parts: BatchParts) -> StoreFuture<'_, BatchRecord> {
        let now = self.clock.now();
        Box::pin(
            self.writer
                .write_alone(true, move |c| batches::insert(c, &batch, parts, now)),
        )
    }

    fn get_batch<'a>(
        &'a self,
        org: &'a OrgId,
        id: BatchId,
    ) -> StoreFuture<'a, Option<BatchRecord>> {
        let org = org.clone();
        Box::pin(read(&self.readers, move |c| batches::get(c, &org, id)))
    }

    fn list_batches(&self, query: BatchQuery) -> StoreFuture<'_, BatchPage> {
        Box::pin(read(&self.readers, move |c| batches::list(c, &query)))
    }

    fn batch_results(&self, query: ResultQuery) -> StoreFuture<'_, Vec<BatchResult>> {
        Box::pin(read(&self.readers, move |c| results::page(c, &query)))
    }

    fn cancel_job<'a>(
        &'a self,
        org: &'a OrgId,
        id: JobId,
    ) -> StoreFuture<'a, CancelOutcome<JobRecord>> {
        let now = self.clock.now();
        let org = org.clone();
        Box::pin(self.cancel(move |c| cancels::job(c, &org, id, now)))
    }

    fn cancel_batch<'a>(
        &'a self,
        org: &'a OrgId,
        id: BatchId,
    ) -> StoreFuture<'a, CancelOutcome<BatchRecord>> {
        let now = self.clock.now();
        let org = org.clone();
        Box::pin(self.cancel(move |c| cancels::batch(c, &org, id, now)))
    }

    fn retry_batch<'a>(
        &'a self,
        org: &'a OrgId,
        id: BatchId,
    ) -> StoreFuture<'a, BatchRetryOutcome> {
        let now = self.clock.now();
        let org = org.clone();
        Box::pin(
            self.writer
                .write(true, move |c| batches::retry(c, &org, id, now)),
        )
    }

    fn claim(&self, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<ClaimedJob>> {
        let now = self.clock.now();
        let lease = lease.as_micros() as i64;
        let turn = self.turn.clone();
        Box::pin(self.writer.write(false, move |c| {
            let mut turn = turn.lock().unwrap_or_else(|e| e.into_inner());
            claims::claim(c, limit, lease, now, &mut turn)
        }))
    }

    fn finish(&self, outcomes: Vec<Outcome>) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(isolating(outcomes, move |group| {
            let wakes = group
                .iter()
                .any(|o| matches!(o.kind, OutcomeKind::Retry { .. }));
            self.writer
                .write(wakes, move |c| leases::finish(c, &group, now))
        }))
    }

    fn renew(&self, leases: Vec<Lease>, lease: Duration) -> StoreFuture<'_, Vec<Lease>> {
        let now = self.clock.now();
        let lease = lease.as_micros() as i64;
        Box::pin(
            self.writer
                .write(false, move |c| leases::renew(c, &leases, now + lease, now)),
        )
    }

    fn release(&self, leases: Vec<Lease>) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(
            self.writer
                .write(true, move |c| leases::release(c, &leases, now)),
        )
    }

    fn reap(&self) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(self.writer.write(true, move |c| leases::reap(c, now, now)))
    }

    fn wakeups(&self) -> Arc<Notify> {
        self.wakeups.clone()
    }

    fn job_counts(&self) -> StoreFuture<'_, Vec<JobCount>> {
        Box::pin(read(&self.readers, jobs::counts))
    }

    fn schema_version(&self) -> StoreFuture<'_, SchemaVersion> {
        Box::pin(read(&self.readers, schema_version))
    }

    fn cancels(&self) -> Arc<Notify> {
        self.cancels.clone()
    }

    fn authenticate(&self, key_hash: [u8; 32]) -> StoreFuture<'_, Option<OrgId>> {
        // A point lookup on a few pages: cheaper inline than a hop to a blocking thread.
        Box::pin(async move {
            let conn = self.auth.lock().unwrap_or_else(|e| e.into_inner());
            orgs::authenticate(&conn, &key_hash).map_err(map_err)
        })
    }

    fn create_key(&self, key: KeyInfo, key_hash: [u8; 32]) -> StoreFuture<'_, ()> {
        Box::pin(
            self.writer
                .write(false, move |c| orgs::create(c, &key, &key_hash)),
        )
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<KeyInfo>> {
        Box::pin(read(&self.readers, orgs::list))
    }

    fn revoke_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let now = self.clock.now();
        let id = id.to_owned();
        Box::pin(self.writer.write(false, move |c| orgs::revoke(c, &id, now)))
    }

    fn graphs<'a>(
        &'a self,
        org: &'a OrgId,
        app: &'a ApplicationId,
    ) -> StoreFuture<'a, Vec<String>> {
        let (org, app) = (org.clone(), app.clone());
        Box::pin(read(&self.readers, move |c| orgs::graphs(c, &org, &app)))
    }

    fn set_graphs<'a>(
        &'a self,
        org: &'a OrgId,
        app: &'a ApplicationId,
        ids: Vec<String>,
    ) -> StoreFuture<'a, ()> {
        let (org, app) = (org.clone(), app.clone());
        Box::pin(
            self.writer
                .write(false, move |c| orgs::set_graphs(c, &org, &app, &ids)),
        )
    }

    fn create_application(&self, new: NewVersion) -> StoreFuture<'_, Option<ApplicationRecord>> {
        let now = self.clock.now();
        Box::pin(
            self.writer
                .write(false, move |c| applications::create(c, &new, now)),
        )
    }

    fn update_application(&self, new: NewVersion) -> StoreFuture<'_, Option<ApplicationRecord>> {
        let now = self.clock.now();
        Box::pin(
            self.writer
                .write(false, move |c| applications::update(c, &new, now)),
        )
    }

    fn delete_application<'a>(
        &'a self,
        org: &'a OrgId,
        id: &'a ApplicationId,
    ) -> StoreFuture<'a, bool> {
        let now = self.clock.now();
        let (org, id) = (org.clone(), id.clone());
        Box::pin(
            self.writer
                .write(false, move |c| applications::delete(c, &org, &id, now)),
        )
    }

    fn list_applications<'a>(&'a self, org: &'a OrgId) -> StoreFuture<'a, Vec<ApplicationRecord>> {
        let org = org.clone();
        Box::pin(read(&self.readers, move |c| applications::list(c, &org)))
    }

    fn application_version<'a>(
        &'a self,
        org: &'a OrgId,
        id: &'a ApplicationId,
        version: u32,
    ) -> StoreFuture<'a, Option<ApplicationVersion>> {
        let (org, id) = (org.clone(), id.clone());
        Box::pin(read(&self.readers, move |c| {
            applications::version(c, &org, &id, version)
        }))
    }

    fn list_application_versions(&self, query: VersionQuery) -> StoreFuture<'_, VersionPage> {
        Box::pin(read(&self.readers, move |c| {
            applications::versions(c, &query)
        }))
    }

    fn application_changes(&self) -> Option<broadcast::Receiver<ApplicationsChanged>> {
        None
    }

    fn record_node(&self, _: NodeApplications) -> StoreFuture<'_, Option<NodeApplications>> {
        Box::pin(async { Ok(None) })
    }

    fn insert_file(&self, file: NewFile, quota: i64) -> StoreFuture<'_, FileInserted> {
        let now = self.clock.now();
        Box::pin(
            self.writer
                .write(false, move |c| files::insert(c, &file, quota, now)),
        )
    }

    fn get_files<'a>(
        &'a self,
        org: Option<&'a OrgId>,
        ids: &'a [FileId],
        with_text: bool,
    ) -> StoreFuture<'a, Vec<FileRecord>> {
        let (org, ids) = (org.cloned(), ids.to_vec());
        Box::pin(read(&self.readers, move |c| {
            files::get(c, org.as_ref(), &ids, with_text)
        }))
    }

    fn list_files(&self, query: FileQuery) -> StoreFuture<'_, FilePage> {
        Box::pin(read(&self.readers, move |c| files::list(c, &query)))
    }

    fn claim_files(
        &self,
        limit: usize,
        lease: Duration,
        max_attempts: u32,
    ) -> StoreFuture<'_, Vec<ClaimedFile>> {
        let now = self.clock.now();
        let lease = lease.as_micros() as i64;
        Box::pin(self.writer.write(false, move |c| {
            files::claim(c, limit, now + lease, max_attempts, now)
        }))
    }

    fn renew_files(&self, leases: Vec<FileLease>, lease: Duration) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        let lease = lease.as_micros() as i64;
        Box::pin(
            self.writer
                .write(false, move |c| files::renew(c, &leases, now + lease)),
        )
    }

    fn release_files(&self, leases: Vec<FileLease>) -> StoreFuture<'_, usize> {
        Box::pin(
            self.writer
                .write(false, move |c| files::release(c, &leases)),
        )
    }

    fn file_processed(&self, lease: FileLease, outcome: FileProcessed) -> StoreFuture<'_, bool> {
        let now = self.clock.now();
        Box::pin(
            self.writer
                .write(false, move |c| files::processed(c, &lease, &outcome, now)),
        )
    }

    fn retry_files<'a>(
        &'a self,
        org: &'a OrgId,
        ids: &'a [FileId],
    ) -> StoreFuture<'a, Vec<FileRecord>> {
        let now = self.clock.now();
        let (org, ids) = (org.clone(), ids.to_vec());
        Box::pin(
            self.writer
                .write(false, move |c| files::retry(c, &org, &ids, now)),
        )
    }

    fn delete_file<'a>(&'a self, org: &'a OrgId, id: FileId) -> StoreFuture<'a, bool> {
        let org = org.clone();
        Box::pin(
            self.writer
                .write(false, move |c| files::delete(c, &org, id)),
        )
    }

    fn outbox(&self) -> &dyn Outbox {
        self
    }

    fn dashboard(&self) -> &dyn Dashboard {
        self
    }
}
