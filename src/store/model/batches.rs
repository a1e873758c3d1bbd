//! Batches: many jobs of one application created in one request, and the exact counts that
//! follow them.
//!
//! Every item of a batch is an ordinary job carrying its batch's id and its `custom_id`. The
//! counts are kept by the database (triggers on the jobs' state changes), so reading a batch
//! costs the same at ten items as at a million.

use super::{Priority, RetryPolicy, Subscription};
use crate::store::{ApplicationId, BatchId, JobId, OrgId};

/// A batch to insert with all its items, already validated against its application.
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
    /// The client's metadata, as a JSON object.
    pub metadata: String,
    /// The first refused items, as JSON: `[{custom_id, description}]`.
    pub errors: String,
    /// Where its events go, if anywhere.
    pub webhook: Option<Subscription>,
    /// The items, in the order they were sent.
    pub items: Vec<BatchItem>,
}

/// One item of a [`NewBatch`]: a job.
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
