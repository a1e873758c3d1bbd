//! The [`Store`] trait for [`PostgresStore`]: each call runs its statements on a pooled
//! connection (inserts of single jobs through the grouper), then wakes this node's engine or
//! heartbeat when they made jobs runnable or cancelled running ones.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Notify, broadcast};

use super::{
    PostgresStore, applications, batches, cancels, files, inserter, jobs, leases, migrate, nodes,
    orgs, results,
};
use crate::store::{
    ApplicationId, ApplicationRecord, ApplicationVersion, ApplicationsChanged, BatchId, BatchPage,
    BatchParts, BatchQuery, BatchRecord, BatchResult, BatchRetryOutcome, CancelOutcome,
    ClaimedFile, ClaimedJob, Dashboard, EndedAttempt, FileId, FileInserted, FileLease, FilePage,
    FileProcessed, FileQuery, FileRecord, Inserted, JobCount, JobId, JobInputs, JobPage, JobQuery,
    JobRecord, KeyInfo, Lease, NewBatch, NewFile, NewJob, NewVersion, NodeApplications, OrgId,
    Outbox, Outcome, ResultQuery, RetryOutcome, SchemaVersion, Store, StoreFuture, VersionPage,
    VersionQuery, after,
};

impl Store for PostgresStore {
    fn insert_job(&self, job: NewJob) -> StoreFuture<'_, Inserted> {
        Box::pin(inserter::insert(&self.inserts, job))
    }

    fn get_job<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, Option<JobRecord>> {
        Box::pin(jobs::get(&self.pool, org, id))
    }

    fn job_inputs<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, Option<JobInputs>> {
        Box::pin(jobs::inputs(&self.pool, org, id))
    }

    fn ended_attempts<'a>(
        &'a self,
        org: &'a OrgId,
        id: JobId,
    ) -> StoreFuture<'a, Vec<EndedAttempt>> {
        Box::pin(jobs::ended_attempts(&self.pool, org, id))
    }

    fn list_jobs(&self, query: JobQuery) -> StoreFuture<'_, JobPage> {
        Box::pin(async move { jobs::list(&self.pool, &query).await })
    }

    fn insert_batch(&self, batch: NewBatch, parts: BatchParts) -> StoreFuture<'_, BatchRecord> {
        let now = self.clock.now();
        Box::pin(async move {
            let record = batches::insert(&self.pool, &batch, parts, now).await?;
            if record.in_progress() > 0 {
                self.queuer.wake();
            }
            Ok(record)
        })
    }

    fn get_batch<'a>(
        &'a self,
        org: &'a OrgId,
        id: BatchId,
    ) -> StoreFuture<'a, Option<BatchRecord>> {
        Box::pin(batches::get(&self.pool, org, id))
    }

    fn list_batches(&self, query: BatchQuery) -> StoreFuture<'_, BatchPage> {
        Box::pin(async move { batches::list(&self.pool, &query).await })
    }

    fn batch_results(&self, query: ResultQuery) -> StoreFuture<'_, Vec<BatchResult>> {
        Box::pin(async move { results::page(&self.pool, &query).await })
    }

    fn cancel_job<'a>(
        &'a self,
        org: &'a OrgId,
        id: JobId,
    ) -> StoreFuture<'a, CancelOutcome<JobRecord>> {
        let now = self.clock.now();
        Box::pin(async move {
            let (outcome, running) = cancels::job(&self.pool, org, id, now).await?;
            if running {
                self.cancels.notify_one();
            }
            Ok(outcome)
        })
    }

    fn cancel_batch<'a>(
        &'a self,
        org: &'a OrgId,
        id: BatchId,
    ) -> StoreFuture<'a, CancelOutcome<BatchRecord>> {
        let now = self.clock.now();
        Box::pin(async move {
            let (outcome, running) = cancels::batch(&self.pool, org, id, now).await?;
            if running {
                self.cancels.notify_one();
            }
            Ok(outcome)
        })
    }

    fn retry_batch<'a>(
        &'a self,
        org: &'a OrgId,
        id: BatchId,
    ) -> StoreFuture<'a, BatchRetryOutcome> {
        let now = self.clock.now();
        Box::pin(async move {
            let outcome = batches::retry(&self.pool, org, id, now).await?;
            if matches!(outcome, BatchRetryOutcome::Requeued(..)) {
                self.wakeups.notify_one();
            }
            Ok(outcome)
        })
    }

    fn retry_job<'a>(&'a self, org: &'a OrgId, id: JobId) -> StoreFuture<'a, RetryOutcome> {
        let now = self.clock.now();
        Box::pin(async move {
            let outcome = jobs::retry(&self.pool, org, id, now).await?;
            if matches!(outcome, RetryOutcome::Requeued(_)) {
                self.wakeups.notify_one();
            }
            Ok(outcome)
        })
    }

    fn claim(&self, limit: usize, lease: Duration) -> StoreFuture<'_, Vec<ClaimedJob>> {
        let now = self.clock.now();
        let lease = lease.as_micros() as i64;
        Box::pin(async move { jobs::claim(&self.pool, limit, lease, now, &self.turn).await })
    }

    fn finish(&self, outcomes: Vec<Outcome>) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(async move {
            let (applied, wakes) = leases::finish(&self.pool, outcomes, now).await?;
            if wakes {
                self.wakeups.notify_one();
            }
            Ok(applied)
        })
    }

    fn renew(&self, leases: Vec<Lease>, lease: Duration) -> StoreFuture<'_, Vec<Lease>> {
        let now = self.clock.now();
        let until = after(now, lease);
        Box::pin(async move { leases::renew(&self.pool, leases, until, now).await })
    }

    fn release(&self, leases: Vec<Lease>) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(async move {
            let released = leases::release(&self.pool, leases, now).await?;
            if released > 0 {
                self.wakeups.notify_one();
            }
            Ok(released)
        })
    }

    fn reap(&self) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        Box::pin(async move {
            let (touched, requeued) = leases::reap(&self.pool, now).await?;
            if requeued {
                self.wakeups.notify_one();
            }
            Ok(touched)
        })
    }

    fn wakeups(&self) -> Arc<Notify> {
        self.wakeups.clone()
    }

    fn job_counts(&self) -> StoreFuture<'_, Vec<JobCount>> {
        Box::pin(jobs::counts(&self.pool))
    }

    fn schema_version(&self) -> StoreFuture<'_, SchemaVersion> {
        Box::pin(migrate::version(&self.pool))
    }

    fn cancels(&self) -> Arc<Notify> {
        self.cancels.clone()
    }

    fn authenticate(&self, key_hash: [u8; 32]) -> StoreFuture<'_, Option<OrgId>> {
        Box::pin(async move { orgs::authenticate(&self.pool, &key_hash).await })
    }

    fn create_key(&self, key: KeyInfo, key_hash: [u8; 32]) -> StoreFuture<'_, ()> {
        Box::pin(async move { orgs::create(&self.pool, &key, &key_hash).await })
    }

    fn list_keys(&self) -> StoreFuture<'_, Vec<KeyInfo>> {
        Box::pin(orgs::list(&self.pool))
    }

    fn revoke_key<'a>(&'a self, id: &'a str) -> StoreFuture<'a, bool> {
        let now = self.clock.now();
        Box::pin(orgs::revoke(&self.pool, id, now))
    }

    fn graphs<'a>(
        &'a self,
        org: &'a OrgId,
        app: &'a ApplicationId,
    ) -> StoreFuture<'a, Vec<String>> {
        Box::pin(orgs::graphs(&self.pool, org, app))
    }

    fn set_graphs<'a>(
        &'a self,
        org: &'a OrgId,
        app: &'a ApplicationId,
        ids: Vec<String>,
    ) -> StoreFuture<'a, ()> {
        Box::pin(async move { orgs::set_graphs(&self.pool, org, app, &ids).await })
    }

    fn create_application(&self, new: NewVersion) -> StoreFuture<'_, Option<ApplicationRecord>> {
        let now = self.clock.now();
        Box::pin(async move { applications::write(&self.pool, &new, true, now).await })
    }

    fn update_application(&self, new: NewVersion) -> StoreFuture<'_, Option<ApplicationRecord>> {
        let now = self.clock.now();
        Box::pin(async move { applications::write(&self.pool, &new, false, now).await })
    }

    fn delete_application<'a>(
        &'a self,
        org: &'a OrgId,
        id: &'a ApplicationId,
    ) -> StoreFuture<'a, bool> {
        let now = self.clock.now();
        Box::pin(applications::delete(&self.pool, org, id, now))
    }

    fn list_applications<'a>(&'a self, org: &'a OrgId) -> StoreFuture<'a, Vec<ApplicationRecord>> {
        Box::pin(applications::list(&self.pool, org))
    }

    fn application_version<'a>(
        &'a self,
        org: &'a OrgId,
        id: &'a ApplicationId,
        version: u32,
    ) -> StoreFuture<'a, Option<ApplicationVersion>> {
        Box::pin(applications::version(&self.pool, org, id, version))
    }

    fn list_application_versions(&self, query: VersionQuery) -> StoreFuture<'_, VersionPage> {
        Box::pin(async move { applications::versions(&self.pool, &query).await })
    }

    fn application_changes(&self) -> Option<broadcast::Receiver<ApplicationsChanged>> {
        Some(self.applications.subscribe())
    }

    fn record_node(&self, node: NodeApplications) -> StoreFuture<'_, Option<NodeApplications>> {
        let now = self.clock.now();
        Box::pin(async move { nodes::record(&self.pool, &node, now).await })
    }

    fn insert_file(&self, file: NewFile, quota: i64) -> StoreFuture<'_, FileInserted> {
        let now = self.clock.now();
        Box::pin(async move { files::insert(&self.pool, &file, quota, now).await })
    }

    fn get_files<'a>(
        &'a self,
        org: Option<&'a OrgId>,
        ids: &'a [FileId],
        with_text: bool,
    ) -> StoreFuture<'a, Vec<FileRecord>> {
        Box::pin(files::get(&self.pool, org, ids, with_text))
    }

    fn list_files(&self, query: FileQuery) -> StoreFuture<'_, FilePage> {
        Box::pin(async move { files::list(&self.pool, &query).await })
    }

    fn claim_files(
        &self,
        limit: usize,
        lease: Duration,
        max_attempts: u32,
    ) -> StoreFuture<'_, Vec<ClaimedFile>> {
        let now = self.clock.now();
        let until = after(now, lease);
        Box::pin(files::claim(&self.pool, limit, until, max_attempts, now))
    }

    fn renew_files(&self, leases: Vec<FileLease>, lease: Duration) -> StoreFuture<'_, usize> {
        let now = self.clock.now();
        let until = after(now, lease);
        Box::pin(async move { files::renew(&self.pool, &leases, until).await })
    }

    fn release_files(&self, leases: Vec<FileLease>) -> StoreFuture<'_, usize> {
        Box::pin(async move { files::release(&self.pool, &leases).await })
    }

    fn file_processed(&self, lease: FileLease, outcome: FileProcessed) -> StoreFuture<'_, bool> {
        let now = self.clock.now();
        Box::pin(async move { files::processed(&self.pool, &lease, &outcome, now).await })
    }

    fn retry_files<'a>(
        &'a self,
        org: &'a OrgId,
        ids: &'a [FileId],
    ) -> StoreFuture<'a, Vec<FileRecord>> {
        let now = self.clock.now();
        Box::pin(files::retry(&self.pool, org, ids, now))
    }

    fn delete_file<'a>(&'a self, org: &'a OrgId, id: FileId) -> StoreFuture<'a, bool> {
        Box::pin(files::delete(&self.pool, org, id))
    }

    fn outbox(&self) -> &dyn Outbox {
        self
    }

    fn dashboard(&self) -> &dyn Dashboard {
        self
    }
}
