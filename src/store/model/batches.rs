//! Batches: many jobs of one application created in one request, and the exact counts that
//! follow them.
//!
//! Every item of a batch is an ordinary job carrying its batch's id and its `custom_id`. The
//! counts are kept by the database (triggers on the jobs' state changes), so reading a batch
//! costs the same at ten items as at a million.

use super::{Priority, RetryPolicy, Subscription};
use crate::report::Cause;
use crate::store::{ApplicationId, BatchId, JobId, OrgId, StoreError};

/// A batch to insert: what every one of its items carries, known before the first item is
/// read. The items follow as [`BatchPart`]s.
#[derive(Clone, Debug)]
pub struct NewBatch {
    /// The public id.
    pub id: BatchId,
    /// The organisation that owns it.
    pub org: OrgId,
    /// The application every item runs.
    pub application_id: ApplicationId,
    /// The version of the application the items run with (`None`: a provisioned one).
    pub application_version: Option<u32>,
    /// Attempts and backoff, copied from the application at submit time.
    pub retry: RetryPolicy,
    /// How urgent its items are.
    pub priority: Priority,
}

/// What a batch's items arrive as, through [`BatchParts`]: chunks of items in order, then
/// the end. Parts that stop before their end (the sender dropped) leave nothing written.
#[derive(Clone, Debug)]
pub enum BatchPart {
    /// The next items, in the order they were sent.
    Items(Vec<BatchItem>),
    /// The last part: what the batch's own row keeps, known once every item is read.
    End(BatchEnd),
}

/// The receiving end of a batch's parts.
pub type BatchParts = tokio::sync::mpsc::Receiver<BatchPart>;

/// What the batch's row keeps beside its counts, known once every item has been read.
#[derive(Clone, Debug)]
pub struct BatchEnd {
    /// The client's metadata, as a JSON object.
    pub metadata: String,
    /// The first refused items, as JSON: `[{custom_id, description}]`.
    pub errors: String,
    /// How urgent its items are: when it is not the [`NewBatch`]'s (the request named it
    /// after its items), the items already stored are moved to it.
    pub priority: Priority,
    /// Where its events go, if anywhere.
    pub webhook: Option<Subscription>,
}

/// One item of a batch: a job.
#[derive(Clone, Debug)]
pub struct BatchItem {
    /// The job's public id.
    pub id: JobId,
    /// The client's name for the item, unique within the batch.
    pub custom_id: String,
    /// The validated inputs as JSON; for a refused item, what was sent.
    pub inputs: String,
    /// Why the item was refused: it is stored failed, with this error, and never runs.
    pub refused: Option<String>,
}

/// The items of a batch counted as its parts pass through a store, and then its record.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct BatchTally {
    /// Items stored so far.
    pub(crate) total: u64,
    /// How many of them were refused (stored failed).
    pub(crate) refused: u64,
}

impl BatchTally {
    /// Counts a chunk of items.
    pub(crate) fn add(&mut self, items: &[BatchItem]) {
        self.total += items.len() as u64;
        self.refused += items.iter().filter(|i| i.refused.is_some()).count() as u64;
    }

    /// The record of `batch`, stored at `now` with the items counted.
    pub(crate) fn record(self, batch: &NewBatch, end: BatchEnd, now: i64) -> BatchRecord {
        BatchRecord {
            id: batch.id,
            application_id: batch.application_id.clone(),
            total: self.total,
            completed: 0,
            failed: self.refused,
            created_at: now,
            updated_at: now,
            priority: end.priority,
            metadata: end.metadata,
            errors: end.errors,
        }
    }
}

/// The error of a batch insert whose parts stopped before their end: nothing was written.
pub(crate) fn unfinished_batch() -> StoreError {
    StoreError::Database(Cause::message(
        "the batch's items stopped before their end; nothing was written",
    ))
}

/// Where a batch is: running until every item has finished (completed or failed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Some items are still queued, running or waiting to retry.
    InProgress,
    /// Every item has completed or failed.
    Completed,
}

impl BatchStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "in_progress" => Self::InProgress,
            "completed" => Self::Completed,
            _ => return None,
        })
    }
}

/// A stored batch with its counts.
#[derive(Clone, Debug)]
pub struct BatchRecord {
    /// The public id.
    pub id: BatchId,
    /// The application its items run.
    pub application_id: ApplicationId,
    /// Items in all.
    pub total: u64,
    /// Items completed.
    pub completed: u64,
    /// Items failed (refused ones included).
    pub failed: u64,
    /// When it was created.
    pub created_at: i64,
    /// When it last changed: created, or an item finished or was retried.
    pub updated_at: i64,
    /// How urgent its items are.
    pub priority: Priority,
    /// The client's metadata, as a JSON object.
    pub metadata: String,
    /// The first refused items, as JSON: `[{custom_id, description}]`.
    pub errors: String,
}

impl BatchRecord {
    /// Items not finished yet.
    pub fn in_progress(&self) -> u64 {
        self.total.saturating_sub(self.completed + self.failed)
    }

    /// Whether every item has finished.
    pub fn status(&self) -> BatchStatus {
        if self.in_progress() == 0 {
            BatchStatus::Completed
        } else {
            BatchStatus::InProgress
        }
    }

    /// When the last item finished, once every one has.
    pub fn completed_at(&self) -> Option<i64> {
        (self.status() == BatchStatus::Completed).then_some(self.updated_at)
    }
}

/// A page of an application's batches, newest first.
#[derive(Clone, Debug)]
pub struct BatchQuery {
    /// The organisation asking.
    pub org: OrgId,
    /// The application.
    pub application_id: ApplicationId,
    /// Only batches with this status, if given.
    pub status: Option<BatchStatus>,
    /// Batches to skip.
    pub offset: u64,
    /// Batches to return at most.
    pub limit: u64,
}

/// One page of batches and the count of all that match the query.
#[derive(Clone, Debug)]
pub struct BatchPage {
    /// The batches on this page.
    pub batches: Vec<BatchRecord>,
    /// How many batches match, on all pages.
    pub total: u64,
}
