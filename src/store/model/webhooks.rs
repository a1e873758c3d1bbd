//! Webhooks: a batch's subscription, the outbox of events the database writes when its items
//! and the batch itself finish, the attempts to deliver them, and each organisation's signing
//! secret.
//!
//! The events are written by triggers in the transaction that finishes the item (migrations
//! SQLite 0011 and PostgreSQL 0013), so an event exists exactly when its state change
//! committed. The store keeps no payload: the webhooks module builds it at delivery from the
//! batch or job as it is then.

use crate::store::{BatchId, JobId, OrgId};

/// What a batch's webhook is told of. The discriminants are the bits of
/// [`EventKinds`], as the triggers test them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// Every item of the batch has finished (completed or failed).
    BatchCompleted = 1,
    /// An item completed.
    JobCompleted = 2,
    /// An item failed.
    JobFailed = 4,
}

impl EventKind {
    /// Every kind, in the order the docs list them.
    pub const ALL: [Self; 3] = [Self::BatchCompleted, Self::JobCompleted, Self::JobFailed];

    /// The wire name (the event's `type`), as the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BatchCompleted => "batch.completed",
            Self::JobCompleted => "job.completed",
            Self::JobFailed => "job.failed",
        }
    }

    /// Parses the wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A set of [`EventKind`]s, stored as a bit mask.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventKinds(u8);

impl EventKinds {
    /// The set with `kind` added.
    pub fn with(self, kind: EventKind) -> Self {
        Self(self.0 | kind as u8)
    }

    /// Whether `kind` is in the set.
    pub fn contains(self, kind: EventKind) -> bool {
        self.0 & kind as u8 != 0
    }

    /// The stored mask.
    pub fn bits(self) -> i16 {
        i16::from(self.0)
    }
}

/// Where a batch's events go: stored with the batch, read by the triggers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The absolute http(s) URL events are POSTed to, already checked.
    pub url: String,
    /// The kinds of event it wants.
    pub events: EventKinds,
}

/// An organisation's signing secrets: the current one, and the one it replaced with when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SigningSecrets {
    /// The secret deliveries are signed with.
    pub current: String,
    /// The secret before the last rotation, and when that rotation was.
    pub previous: Option<(String, i64)>,
}

/// An event claimed for one delivery attempt, under a lease.
#[derive(Clone, Debug)]
pub struct ClaimedEvent {
    /// The store's key, for recording the attempt.
    pub seq: i64,
    /// The `webhook-id`: unique per event, the same across its attempts.
    pub id: String,
    /// The organisation whose secret signs it.
    pub org: OrgId,
    /// What happened.
    pub kind: EventKind,
    /// The batch it belongs to.
    pub batch_id: BatchId,
    /// The item, for a job event.
    pub job_id: Option<JobId>,
    /// Where it goes.
    pub url: String,
    /// When it happened.
    pub created_at: i64,
    /// This attempt's number (1 for the first): the fence of its record.
    pub attempt: u32,
}

/// What one attempt found: a status code, or an error before any answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptRecord {
    /// The attempt's number.
    pub attempt: u32,
    /// When it started.
    pub at: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The receiver's HTTP status, if it answered.
    pub status_code: Option<u16>,
    /// Why it did not get an answer (a timeout, a refused connection, a refused address).
    pub error: Option<String>,
}

/// Where an event goes after an attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NextStep {
    /// The receiver answered 2xx: done.
    Delivered,
    /// Try again at this time.
    RetryAt(i64),
    /// No more attempts: its time is up.
    GiveUp,
}

/// One attempt's record and what follows it, applied only if the event's claim still holds.
#[derive(Clone, Debug)]
pub struct Delivery {
    /// The event's key.
    pub seq: i64,
    /// The attempt.
    pub record: AttemptRecord,
    /// What follows.
    pub next: NextStep,
}

/// Where an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventStatus {
    /// Not delivered yet; attempts go on.
    Pending,
    /// A receiver answered 2xx.
    Delivered,
    /// Attempts stopped without a 2xx.
    Failed,
}

impl EventStatus {
    /// The wire name, as the store keeps it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Delivered, Self::Failed]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// An event as the deliveries list shows it, with every attempt so far.
#[derive(Clone, Debug)]
pub struct EventRecord {
    /// The `webhook-id`.
    pub id: String,
    /// What happened.
    pub kind: EventKind,
    /// The batch.
    pub batch_id: BatchId,
    /// The item, for a job event.
    pub job_id: Option<JobId>,
    /// Where it goes.
    pub url: String,
    /// Where it is.
    pub status: EventStatus,
    /// When it happened.
    pub created_at: i64,
    /// When the next attempt is due, while pending.
    pub next_attempt_at: Option<i64>,
    /// The attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
}

/// A page of an organisation's events, newest first.
#[derive(Clone, Debug)]
pub struct DeliveryQuery {
    /// The organisation asking.
    pub org: OrgId,
    /// Only this batch's events, if given.
    pub batch_id: Option<BatchId>,
    /// Events to skip.
    pub offset: u64,
    /// Events to return at most.
    pub limit: u64,
}

/// One page of events and how many match.
#[derive(Clone, Debug)]
pub struct DeliveryPage {
    /// The events on this page.
    pub events: Vec<EventRecord>,
    /// How many match, on all pages.
    pub total: u64,
}
