//! The records the store reads and writes, shared by every backend.
//!
//! Times are microseconds since the Unix epoch (`i64`), which both SQLite and PostgreSQL store
//! natively and which sort and compare without parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// `micros` formatted as RFC 3339 in UTC with microseconds, as Writer sends timestamps.
pub fn rfc3339(micros: i64) -> String {
    let at = UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64);
    humantime::format_rfc3339_micros(at).to_string()
}

/// Text as the store keeps it on both backends: NUL (U+0000), which PostgreSQL's `text`
/// cannot hold, becomes U+FFFD (the replacement character), on SQLite too, so that both
/// answer the same. What models return and what files hold pass through this.
pub fn storable_text(text: String) -> String {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}")
    } else {
        text
    }
}

/// A job's internal state. The Writer routes show only [`JobState::writer_status`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobState {
    /// Accepted, waiting for a worker.
    Queued,
    /// Claimed by a worker holding a lease.
    Running,
    /// Failed retryably; runs again at its `run_at`.
    Retrying,
    /// Finished with a result.
    Completed,
    /// Finished with an error: fatal, or attempts exhausted.
    Failed,
}

impl JobState {
    /// The name stored in the database and shown in the `state` field.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Retrying => "retrying",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored state name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "retrying" => Self::Retrying,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }

    /// One of Writer's three statuses: `in_progress`, `completed`, `failed`.
    pub fn writer_status(self) -> WriterStatus {
        match self {
            Self::Queued | Self::Running | Self::Retrying => WriterStatus::InProgress,
            Self::Completed => WriterStatus::Completed,
            Self::Failed => WriterStatus::Failed,
        }
    }
}

/// The three statuses the Writer API knows, of a job and of a file's processing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriterStatus {
    /// A job queued, running or waiting to retry; a file whose text is being extracted.
    InProgress,
    /// A job finished with a result; a file ready for use.
    Completed,
    /// A job finished with an error; a file whose text could not be extracted.
    Failed,
}

impl WriterStatus {
    /// The wire name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::InProgress => "in_progress",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// Parses the wire name.
    pub(crate) fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "in_progress" => Self::InProgress,
            "completed" => Self::Completed,
            "failed" => Self::Failed,
            _ => return None,
        })
    }
}

/// How a failed generation is retried: up to `max_attempts` attempts in all, waiting
/// `backoff_initial_ms` after the first failure, doubling each time, capped at `backoff_max_ms`.
/// Each application sets one; each job carries a copy, taken at submit time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (at least 1).
    pub max_attempts: u32,
    /// Wait after the first failed attempt, in milliseconds.
    pub backoff_initial_ms: u64,
    /// Longest wait between attempts, in milliseconds (>= `backoff_initial_ms`).
    pub backoff_max_ms: u64,
}

impl Default for RetryPolicy {
    /// 3 attempts, 1 s initial backoff, 60 s cap.
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            backoff_initial_ms: 1_000,
            backoff_max_ms: 60_000,
        }
    }
}

/// A job to insert, already validated against its application.
#[derive(Clone, Debug)]
pub struct NewJob {
    /// The public id (a UUID).
    pub id: String,
    /// The organisation that owns it.
    pub org: String,
    /// The application it runs.
    pub application_id: String,
    /// The validated inputs, as JSON.
    pub inputs: String,
    /// Attempts and backoff, copied from the application at submit time.
    pub retry: RetryPolicy,
    /// The client's `Idempotency-Key`, if it sent one.
    pub idempotency_key: Option<String>,
}

/// What an insert answers: the job as stored (an existing one when the idempotency key repeated).
#[derive(Clone, Debug)]
pub struct Inserted {
    /// The public id.
    pub id: String,
    /// When it was created.
    pub created_at: i64,
    /// Its state now.
    pub state: JobState,
}

/// A stored job, as the API shows it.
#[derive(Clone, Debug)]
pub struct JobRecord {
    /// The public id.
    pub id: String,
    /// The application it runs.
    pub application_id: String,
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
    pub org: String,
    /// The application.
    pub application_id: String,
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

/// What a retry request did.
#[derive(Clone, Debug)]
pub enum RetryOutcome {
    /// No such job in this organisation.
    NotFound,
    /// The job exists but has not failed; nothing changed.
    NotFailed(JobState),
    /// The job was queued again with a fresh series of attempts.
    Requeued(Inserted),
}

/// A job a worker has claimed, with what it needs to run it.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    /// The lease that fences every later write.
    pub lease: Lease,
    /// The public id.
    pub id: String,
    /// The application to run.
    pub application_id: String,
    /// The validated inputs, as JSON.
    pub inputs: String,
    /// Attempts and backoff for this job.
    pub retry: RetryPolicy,
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
    },
    /// A retryable failure: run again at `run_at`.
    Retry {
        /// When to run again (microseconds).
        run_at: i64,
        /// Why this attempt failed.
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
            } => Self::Completed {
                title: title.map(storable_text),
                suggestion: storable_text(suggestion),
                usage,
            },
            Self::Retry { run_at, error } => Self::Retry {
                run_at,
                error: storable_text(error),
            },
            Self::Failed { error } => Self::Failed {
                error: storable_text(error),
            },
        }
    }
}

/// An API key as listed (never the key itself).
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// The key's id: its first characters, safe to show.
    pub id: String,
    /// The organisation it belongs to.
    pub org: String,
    /// A label chosen at creation.
    pub name: String,
    /// When it was created.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}

/// A file to record, whose bytes are already in blob storage.
#[derive(Clone, Debug)]
pub struct NewFile {
    /// The public id (a UUID), also the name of its blob.
    pub id: String,
    /// The organisation that owns it.
    pub org: String,
    /// The name the uploader gave it.
    pub name: String,
    /// Its type, as a canonical extension (`pdf`, `png`, ...).
    pub kind: String,
    /// Its size in bytes.
    pub size: i64,
    /// Graphs it was uploaded into.
    pub graph_ids: Vec<String>,
}

impl NewFile {
    /// The file as recorded at `now`: `in_progress`, its text not yet extracted.
    pub(crate) fn recorded(&self, now: i64) -> FileRecord {
        FileRecord {
            id: self.id.clone(),
            name: self.name.clone(),
            kind: self.kind.clone(),
            size: self.size,
            status: WriterStatus::InProgress,
            error: None,
            word_count: None,
            graph_ids: self.graph_ids.clone(),
            created_at: now,
            text: None,
        }
    }
}

/// A stored file's metadata, and its extracted text when asked for.
#[derive(Clone, Debug)]
pub struct FileRecord {
    /// The public id.
    pub id: String,
    /// The name the uploader gave it.
    pub(crate) name: String,
    /// Its type, as a canonical extension.
    pub(crate) kind: String,
    /// Its size in bytes.
    pub size: i64,
    /// Where its processing stands.
    pub status: WriterStatus,
    /// Why processing failed, once `failed`.
    pub error: Option<String>,
    /// Words in its extracted text, once `completed` (none for images).
    pub word_count: Option<i64>,
    /// Graphs it belongs to.
    pub(crate) graph_ids: Vec<String>,
    /// When it was uploaded.
    pub(crate) created_at: i64,
    /// The extracted text, only when the read asked for it.
    pub text: Option<String>,
}

/// A cursor page of an organisation's files, newest first unless `ascending`.
#[derive(Clone, Debug, Default)]
pub struct FileQuery {
    /// The organisation asking.
    pub(crate) org: String,
    /// Only files after this id in list order.
    pub(crate) after: Option<String>,
    /// Only files before this id in list order (the API never sets both).
    pub(crate) before: Option<String>,
    /// Files to return at most.
    pub(crate) limit: u32,
    /// Oldest first instead of newest first.
    pub(crate) ascending: bool,
    /// Only files with this status.
    pub(crate) status: Option<WriterStatus>,
    /// Only files of these kinds (canonical extensions), when not empty.
    pub(crate) kinds: Vec<String>,
    /// Only files in this graph.
    pub(crate) graph_id: Option<String>,
}

impl FileQuery {
    /// How a backend reads the page: ids compared with the cursor (`(id, "<" or ">")`), in
    /// ascending or descending id order, `limit + 1` rows (the extra one tells whether there is
    /// more); then [`FilePage::from_rows`] trims and orders them.
    pub(crate) fn walk(&self) -> FileWalk<'_> {
        // Paging backwards (`before`) walks the list in reverse, then turns the page around.
        let backwards = self.after.is_none() && self.before.is_some();
        let cursor = match (&self.after, &self.before) {
            (Some(after), _) => Some((after.as_str(), if self.ascending { ">" } else { "<" })),
            (None, Some(before)) => Some((before.as_str(), if self.ascending { "<" } else { ">" })),
            (None, None) => None,
        };
        FileWalk {
            cursor,
            ascending: self.ascending != backwards,
            backwards,
            rows: i64::from(self.limit) + 1,
        }
    }
}

/// How to read one page of files (see [`FileQuery::walk`]).
#[derive(Clone, Copy, Debug)]
pub(crate) struct FileWalk<'a> {
    /// The cursor id and how ids compare with it.
    pub(crate) cursor: Option<(&'a str, &'static str)>,
    /// Whether to read ids in ascending order.
    pub(crate) ascending: bool,
    /// Whether the rows come in reverse list order (paging with `before`).
    pub(crate) backwards: bool,
    /// Rows to read at most: one more than the page.
    pub(crate) rows: i64,
}

impl FileWalk<'_> {
    /// `ASC` or `DESC`.
    pub(crate) fn direction(&self) -> &'static str {
        if self.ascending { "ASC" } else { "DESC" }
    }
}

/// One page of files.
#[derive(Clone, Debug)]
pub struct FilePage {
    /// The files on this page, in list order.
    pub(crate) files: Vec<FileRecord>,
    /// Whether more files lie beyond the page in the direction paged.
    pub(crate) has_more: bool,
}

impl FilePage {
    /// The page from the rows read as `walk` says, for a page of `limit` files.
    pub(crate) fn from_rows(mut files: Vec<FileRecord>, walk: FileWalk<'_>, limit: u32) -> Self {
        let has_more = files.len() > limit as usize;
        files.truncate(limit as usize);
        if walk.backwards {
            files.reverse();
        }
        FilePage { files, has_more }
    }
}

/// The fence on a file a worker is extracting: its id and the attempt it claimed. A result
/// is recorded only while the file is still `in_progress` at this attempt.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FileLease {
    /// The file's id.
    pub id: String,
    /// The attempt this lease belongs to (1-based).
    pub attempt: u32,
}

/// The error of a file whose extraction was started `attempts` times and never finished
/// (see [`Store::claim_files`](super::Store::claim_files)).
pub fn extraction_gave_up(attempts: u32) -> String {
    format!(
        "text extraction was started {attempts} times and its process stopped each time \
         (the file may be too large or malformed to extract)"
    )
}

/// A file claimed for text extraction.
#[derive(Clone, Debug)]
pub struct ClaimedFile {
    /// The fence on its result.
    pub lease: FileLease,
    /// The name it was uploaded with (its type is read from the name and the bytes).
    pub name: String,
}

/// What recording a new file did.
#[derive(Clone, Debug)]
pub enum FileInserted {
    /// Recorded, `in_progress`.
    Stored(FileRecord),
    /// Not recorded: the organisation's files would exceed its quota. `used` is what its
    /// files take now, in bytes.
    OverQuota {
        /// Bytes the organisation's files take.
        used: i64,
    },
}

impl FileProcessed {
    /// The same result with its text made [`storable_text`].
    pub fn storable(self) -> Self {
        match self {
            Self::Completed { text, word_count } => Self::Completed {
                text: text.map(storable_text),
                word_count,
            },
            Self::Failed { error } => Self::Failed {
                error: storable_text(error),
            },
        }
    }
}

/// The result of processing a file, to record.
#[derive(Clone, Debug)]
pub enum FileProcessed {
    /// Text extracted (empty for images): the file is `completed`.
    Completed {
        /// The extracted text, if the file is a document.
        text: Option<String>,
        /// Words in it.
        word_count: Option<i64>,
    },
    /// Extraction failed: the file is `failed`.
    Failed {
        /// Why, for the user.
        error: String,
    },
}
