//! Jobs: what is inserted, stored, claimed and finished, and the policy and usage each carries.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{WriterStatus, storable_text};
use crate::store::{ApplicationId, BatchId, JobId, OrgId};

/// A job's internal state. The Writer routes show only [`JobState::writer_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Accepted, waiting for a worker.
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Failed retryably; runs again at its `run_at`.
    Retrying,
    /// Its provider said "not now" (429, 503, 529): runs again at its `run_at` without
    /// having spent an attempt.
    WaitingForProvider,
    /// Finished with a result.
    Completed,
    /// Finished with an error: fatal, or attempts exhausted.
    Failed,
    /// Cancel was asked while it ran: its call is being aborted, then it is cancelled.
    Cancelling,
    /// Cancelled before it finished. Stored as `failed` with the time of the cancel, so its
    /// Writer status is `failed`; the stores' reads name it `cancelled`.
    Cancelled,
}

impl JobState {
    /// The name stored in the database and shown in the `state` field.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::WaitingForProvider => "waiting_for_provider",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelling => "cancelling",
            Self::Cancelled => "cancelled",
        }
    }

    /// Parses a stored state name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "retrying" => Self::Retrying,
            "waiting_for_provider" => Self::WaitingForProvider,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            "cancelling" => Self::Cancelling,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    /// One of Writer's three statuses: `in_progress`, `completed`, `failed`.
    pub fn writer_status(self) -> WriterStatus {
        match self {
            Self::Queued
            | Self::Running
            | Self::Retrying
            | Self::WaitingForProvider
            | Self::Cancelling => WriterStatus::InProgress,
            Self::Completed => WriterStatus::Completed,
            Self::Failed | Self::Cancelled => WriterStatus::Failed,
        }
    }
}

/// How urgent a job is. Claims and each provider's gate serve `high` before `normal` before
/// `low` in proportion to their [`Priority::weight`], so no class is starved completely.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Urgent work.
    High,
    /// The default.
    #[default]
    Normal,
    /// Bulk work that may wait.
    Low,
}

impl Priority {
    /// Every priority, most urgent first.
    pub const ALL: [Self; 3] = [Self::High, Self::Normal, Self::Low];

    /// The name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::High => "high",
            Self::Normal => "normal",
            Self::Low => "low",
        }
    }

    /// Parses a name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// Its position in [`Priority::ALL`], which is also its code in the database.
    pub(crate) fn index(self) -> usize {
        self as usize
    }

    /// The priority stored as `code`; an unknown code reads as normal.
    pub(crate) fn from_code(code: i64) -> Self {
        usize::try_from(code)
            .ok()
            .and_then(|i| Self::ALL.get(i).copied())
            .unwrap_or_default()
    }

    /// Its share when every class waits: 16 : 4 : 1.
    pub(crate) fn weight(self) -> u32 {
        match self {
            Self::High => 16,
            Self::Normal => 4,
            Self::Low => 1,
        }
    }
}

/// How a failed generation is retried: up to `max_attempts` attempts in all, waiting
/// `backoff_initial_ms` after the first failure, doubling each time, capped at `backoff_max_ms`;
/// and how long a provider's backpressure may hold a job (`max_wait_ms`) before it fails.
/// Each application sets one; each job carries a copy, taken at submit time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt, in milliseconds.
    pub backoff_initial_ms: u64,
    /// Longest wait between attempts, in milliseconds (>= `backoff_initial_ms`).
    pub backoff_max_ms: u64,
    /// How long backpressure (429, 503, 529) may hold a job, in milliseconds, counted from
    /// the first "not now" of a series of them.
    pub max_wait_ms: u64,
}

impl Default for RetryPolicy {
    /// 3 attempts, 1 s initial backoff, 60 s cap, 24 h of backpressure at most.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 60_000,
            max_wait_ms: 24 * 3_600_000,
        }
    }
}

/// A job to insert, already validated against its application.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The public id.
    pub id: JobId,
    /// The organisation that owns it.
    pub org: OrgId,
    /// The application it runs.
    pub application_id: ApplicationId,
    /// The version of the application it runs with; `None` for a provisioned application
    /// (from the apps folder), which has no versions.
    pub application_version: Option<u32>,
    /// The validated inputs, as JSON.
    pub inputs: String,
    /// Attempts and backoff, copied from the application at submit time.
    pub retry: RetryPolicy,
    /// How urgent it is.
    pub priority: Priority,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

/// What an insert answers: the job as stored (an existing one when the idempotency key repeated).
#[derive(Clone, Debug)]
pub struct Inserted {
    /// The public id.
    pub id: JobId,
    /// When it was created.
    pub created_at: i64,
    /// Its state now.
    pub state: JobState,
}

/// A stored job, as the API shows it.
#[derive(Clone, Debug)]
pub struct JobRecord {
    /// The public id.
    pub id: JobId,
    /// The application it runs.
    pub application_id: ApplicationId,
    /// Its internal state.
    pub state: JobState,
    /// Attempts started in the current series.
    pub attempt: u32,
    /// When it was accepted.
    pub created_at: i64,
    /// When it last changed.
    pub(crate) updated_at: i64,
    /// When its latest attempt started.
    pub started_at: Option<i64>,
    /// When it reached `completed` or `failed`.
    pub completed_at: Option<i64>,
    /// The rendered title, once completed.
    pub title: Option<String>,
    /// The generated text, once completed.
    pub suggestion: Option<String>,
    /// The last error: final once failed, the latest retryable one while retrying.
    pub error: Option<String>,
    /// Tokens the completing attempt used, when the backend said.
    pub usage: Option<Usage>,
    /// How urgent it is.
    pub priority: Priority,
    /// The provider that produced the result, once completed.
    pub provider: Option<String>,
    /// The model that produced the result, once completed (when known).
    pub model: Option<String>,
    /// The batch it belongs to, if it was created as a batch's item.
    pub batch_id: Option<BatchId>,
    /// Its name within its batch.
    pub custom_id: Option<String>,
}

/// What a job was created with, as its page shows it: its inputs and the version of its
/// application it runs.
#[derive(Clone, Debug)]
pub struct JobInputs {
    /// The validated inputs, as JSON.
    pub inputs: String,
    /// The version of its application (`None`: a provisioned application).
    pub application_version: Option<u32>,
}

/// An attempt of a job that ended without its result: it failed, was retried, or went back
/// to wait for its provider. The finishing code records one each (a completed attempt is the
/// job's own row, so the usual path records nothing); an attempt ended by a lapsed lease or
/// a cancel is not among them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndedAttempt {
    /// Its number (a wait for the provider gives the number back: the next attempt has it too).
    pub attempt: u32,
    /// When it was claimed (microseconds since the epoch).
    pub started_at: Option<i64>,
    /// When its outcome was written.
    pub ended_at: i64,
    /// `failed`, `retrying` or `waiting_for_provider`.
    pub state: String,
    /// Why.
    pub error: Option<String>,
}

/// Tokens a call used, as the backend reported them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Tokens of the prompt.
    pub prompt_tokens: u32,
    /// Tokens generated.
    pub completion_tokens: u32,
}

/// A page of an application's jobs, newest first.
#[derive(Clone, Debug)]
pub struct JobQuery {
    /// The organisation asking.
    pub org: OrgId,
    /// The application.
    pub application_id: ApplicationId,
    /// Only jobs with this Writer status, if given.
    pub status: Option<WriterStatus>,
    /// Jobs to skip.
    pub offset: u64,
    /// Jobs to return at most.
    pub limit: u64,
}

/// One page of jobs and the count of all that match the query.
#[derive(Clone, Debug)]
pub struct JobPage {
    /// The jobs on this page.
    pub jobs: Vec<JobRecord>,
    /// How many jobs match, on all pages.
    pub total: u64,
}

/// What a cancel request did, to a job or a batch.
#[derive(Clone, Debug)]
pub enum CancelOutcome<T> {
    /// No such job (or batch) in this organisation.
    NotFound,
    /// It had already finished; nothing changed.
    Finished,
    /// Its waiting work is cancelled and its running work is being aborted (or already was):
    /// it as it is now.
    Cancelled(T),
}

/// What a retry request did.
#[derive(Clone, Debug)]
pub enum RetryOutcome {
    /// No such job in this organisation.
    NotFound,
    /// The job exists but has not failed; nothing changed.
    NotFailed(JobState),
    /// The job failed without ever running: a batch's item refused at create, whose inputs
    /// break the application's rules. Running it could only fail again; nothing changed.
    Refused,
    /// The job was queued again with a fresh series of attempts.
    Requeued(Inserted),
}

/// A job a worker has claimed, with what it needs to run it.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    /// The lease that fences every later write.
    pub lease: Lease,
    /// The public id.
    pub id: JobId,
    /// The application to run.
    pub application_id: ApplicationId,
    /// The version to run it with (`None`: a provisioned application).
    pub application_version: Option<u32>,
    /// The organisation that owns it.
    pub org: OrgId,
    /// How urgent it is.
    pub priority: Priority,
    /// The validated inputs, as JSON.
    pub inputs: String,
    /// Attempts and backoff for this job.
    pub retry: RetryPolicy,
    /// Since when (microseconds since the epoch) backpressure has held it, if it has.
    pub waiting_since: Option<i64>,
    /// When it was claimed, on the store's clock.
    pub claimed_at: i64,
}

/// The fence on a running job: its row and the attempt number a worker claimed.
///
/// A write succeeds only while the job is still `running` at this attempt, so a worker whose
/// lease was taken over can never overwrite a newer attempt or a finished job.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Lease {
    /// The job's internal row number.
    pub(crate) seq: i64,
    /// The attempt this lease belongs to (1-based).
    pub attempt: u32,
}

/// How an attempt ended, to be written under its lease.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// The fence.
    pub lease: Lease,
    /// What happened.
    pub kind: OutcomeKind,
}

/// The end of one attempt.
#[derive(Clone, Debug)]
pub enum OutcomeKind {
    /// Success: the result to record.
    Completed {
        /// The rendered title, if the application has one.
        title: Option<String>,
        /// The generated text.
        suggestion: String,
        /// Tokens used, when the backend said.
        usage: Option<Usage>,
        /// The provider that answered (its name in the configuration).
        provider: String,
        /// The model that answered, when known.
        model: Option<String>,
    },
    /// A retryable failure: run again once `delay` has passed (from when the store writes it).
    Retry {
        /// How long to wait before the next attempt.
        delay: Duration,
        /// Why this attempt failed.
        error: String,
    },
    /// The provider said "not now": run again once `delay` has passed, without spending an
    /// attempt.
    Wait {
        /// How long to wait.
        delay: Duration,
        /// What the provider said.
        error: String,
    },
    /// A final failure.
    Failed {
        /// Why, for the user.
        error: String,
    },
}

impl OutcomeKind {
    /// The same outcome with its text made [`storable_text`].
    pub fn storable(self) -> Self {
        match self {
            Self::Completed {
                title,
                suggestion,
                usage,
                provider,
                model,
            } => Self::Completed {
                title: title.map(storable_text),
                suggestion: storable_text(suggestion),
                usage,
                provider: storable_text(provider),
                model: model.map(storable_text),
            },
            Self::Retry { delay, error } => Self::Retry {
                delay,
                error: storable_text(error),
            },
            Self::Wait { delay, error } => Self::Wait {
                delay,
                error: storable_text(error),
            },
            Self::Failed { error } => Self::Failed {
                error: storable_text(error),
            },
        }
    }
}
