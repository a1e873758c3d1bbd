//! Batches: many jobs of one application created in one request, and the exact counts that
//! follow them.
//!
//! Every item of a batch is an ordinary job carrying its batch's id and its `custom_id`. The
//! counts are kept by the database (triggers on the jobs' state changes), so reading a batch
//! costs the same at ten items as at a million.

use super::{JobState, Priority, RetryPolicy, Subscription, Usage};
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
            cancelled: 0,
            cancelled_at: None,
            throughput: None,
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

/// Where a batch is: running until every item has finished (completed, failed or
/// cancelled); once a cancel of the whole batch was asked, cancelling until then instead.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BatchStatus {
    /// Some items are still queued, running or waiting to retry.
    InProgress,
    /// Every item has completed, failed or been cancelled.
    Completed,
    /// A cancel was asked; some running items are still being aborted.
    Cancelling,
    /// A cancel was asked, and no item is left in progress.
    Cancelled,
}

impl BatchStatus {
    /// Every status, in the order a batch may reach them.
    pub const ALL: [Self; 4] = [
        Self::InProgress,
        Self::Completed,
        Self::Cancelling,
        Self::Cancelled,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == s)
    }

    /// Whether a batch with this status has no item in progress.
    pub fn finished(self) -> bool {
        matches!(self, Self::Completed | Self::Cancelled)
    }

    /// Whether a cancel of the whole batch was asked.
    pub fn cancelled(self) -> bool {
        matches!(self, Self::Cancelling | Self::Cancelled)
    }
}

/// How fast a batch's items have been finishing lately: `items` ran to their end (completed
/// or failed, not refused or cancelled) after `since`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Throughput {
    /// Items finished in the window.
    pub items: u64,
    /// The window's start: when the item before them finished, or when the batch was created.
    pub since: i64,
}

/// Items finished lately that a batch's [`Throughput`] is measured over at most: enough to
/// span several rounds of concurrent calls, few enough to follow a change of pace.
pub const THROUGHPUT_WINDOW: u64 = 200;

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
    /// Items cancelled.
    pub cancelled: u64,
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
    /// When a cancel of the whole batch was asked (cleared when it is retried).
    pub cancelled_at: Option<i64>,
    /// Its recent pace, while it runs and some item has run to its end.
    pub throughput: Option<Throughput>,
}

impl BatchRecord {
    /// Items not finished yet.
    pub fn in_progress(&self) -> u64 {
        self.total
            .saturating_sub(self.completed + self.failed + self.cancelled)
    }

    /// Where it is: see [`BatchStatus`].
    pub fn status(&self) -> BatchStatus {
        match (self.in_progress() == 0, self.cancelled_at.is_some()) {
            (false, false) => BatchStatus::InProgress,
            (true, false) => BatchStatus::Completed,
            (false, true) => BatchStatus::Cancelling,
            (true, true) => BatchStatus::Cancelled,
        }
    }

    /// When the last item finished, once every one has (and no cancel was asked).
    pub fn completed_at(&self) -> Option<i64> {
        (self.status() == BatchStatus::Completed).then_some(self.updated_at)
    }

    /// When the last item should finish, at `now`: the items left at the pace of its
    /// [`Throughput`]. `None` unless it is in progress and some item has run to its end.
    pub fn eta(&self, now: i64) -> Option<i64> {
        let pace = self.throughput.filter(|t| t.items > 0)?;
        if self.status() != BatchStatus::InProgress {
            return None;
        }
        let elapsed = now.saturating_sub(pace.since).max(0) as f64;
        let left = elapsed * self.in_progress() as f64 / pace.items as f64;
        Some(now.saturating_add(left.min(i64::MAX as f64 / 2.0) as i64))
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

/// What a batch retry did.
#[derive(Clone, Debug)]
pub enum BatchRetryOutcome {
    /// No such batch in this organisation.
    NotFound,
    /// No item of it has failed or been cancelled (items refused at create do not count:
    /// they never ran and would only fail again); nothing changed.
    NothingToRetry,
    /// Its failed and cancelled items were queued again, each with a fresh series of
    /// attempts: how many, and the batch as it is now.
    Requeued(u64, BatchRecord),
}

/// A page of a batch's finished items, in the order they finished.
#[derive(Clone, Debug)]
pub struct ResultQuery {
    /// The organisation asking.
    pub org: OrgId,
    /// The batch.
    pub batch_id: BatchId,
    /// Only items that finished after the one with this cursor (0: from the first).
    pub after: i64,
    /// Only items that ended so: completed, failed or cancelled.
    pub state: Option<JobState>,
    /// Items to return at most.
    pub limit: u64,
    /// Latest finished first (the dashboard's recent failures), rather than in finishing
    /// order (a client following the batch by cursor).
    pub newest_first: bool,
}

/// A finished item of a batch, as its results show it.
#[derive(Clone, Debug)]
pub struct BatchResult {
    /// Its place in the batch's finishing order (larger is later); opaque to clients.
    pub cursor: i64,
    /// Its 1-based place in the batch as sent.
    pub position: u64,
    /// The client's name for it.
    pub custom_id: String,
    /// The job.
    pub job_id: JobId,
    /// How it ended: completed, failed or cancelled.
    pub state: JobState,
    /// The rendered title, once completed.
    pub title: Option<String>,
    /// The generated text, once completed.
    pub suggestion: Option<String>,
    /// Why it failed, or 'cancelled'.
    pub error: Option<String>,
    /// Tokens the completing attempt used, when the backend said.
    pub usage: Option<Usage>,
    /// Its inputs as stored (JSON): as validated, or as sent when refused.
    pub inputs: String,
}
