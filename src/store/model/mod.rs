//! The records the store reads and writes, shared by every backend: [`jobs`]',
//! [`batches`]', [`webhooks`]', [`files`]', [`applications`]' and the [`dashboard`]'s, and here what both use (time, text, Writer's statuses) and API keys.
//!
//! Times are microseconds since the Unix epoch (`i64`), which both SQLite and PostgreSQL store
//! natively and which sort and compare without parsing.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::{ApplicationId, OrgId};

mod applications;
mod batches;
mod dashboard;
mod files;
mod jobs;
mod webhooks;

pub use applications::*;
pub use batches::*;
pub use dashboard::*;
pub use files::*;
pub use jobs::*;
pub use webhooks::*;

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The time `delay` after `now` (both in microseconds since the Unix epoch).
pub fn after(now: i64, delay: Duration) -> i64 {
    now.saturating_add(i64::try_from(delay.as_micros()).unwrap_or(i64::MAX))
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

/// How many jobs one application of one organisation has in one Writer status, read from the
/// counters the store keeps as jobs change (never by counting jobs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobCount {
    /// The organisation.
    pub org: OrgId,
    /// The application.
    pub application_id: ApplicationId,
    /// The status.
    pub status: WriterStatus,
    /// How many jobs.
    pub n: i64,
}

/// The schema version a database is at, beside the one this build migrates it to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaVersion {
    /// The migrations applied to the database.
    pub applied: u32,
    /// The migrations this build has.
    pub expected: u32,
}

/// An API key as listed (never the key itself).
#[derive(Clone, Debug)]
pub struct KeyInfo {
    /// The key's id: its first characters, safe to show.
    pub id: String,
    /// The organisation it belongs to.
    pub org: OrgId,
    /// A label chosen at creation.
    pub name: String,
    /// When it was created.
    pub created_at: i64,
    /// When it was revoked, if it was.
    pub revoked_at: Option<i64>,
}
