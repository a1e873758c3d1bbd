//! What only the dashboard reads and writes: the finished jobs rolled up per minute (its
//! charts), its sessions, and its list of jobs by keyset.

use super::WriterStatus;
use crate::store::{ApplicationId, BatchId, JobId, OrgId};

/// A minute, in microseconds since the Unix epoch.
pub const MINUTE_MICROS: i64 = 60_000_000;

/// The start of the minute `micros` falls in.
pub fn minute_of(micros: i64) -> i64 {
    micros.div_euclid(MINUTE_MICROS) * MINUTE_MICROS
}

/// The jobs of one application of one organisation that finished in one minute, as the
/// roll-up wrote them. Times are microseconds; a job that never ran (refused at a batch's
/// create) counts as failed but has no wait nor run time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MinuteFigures {
    /// The application.
    pub application_id: ApplicationId,
    /// The minute's start.
    pub minute: i64,
    /// Jobs completed in it.
    pub completed: i64,
    /// Jobs failed in it (cancelled ones are not counted).
    pub failed: i64,
    /// Finished jobs that ran, whose times follow.
    pub ran: i64,
    /// Their queue waits summed: creation to the start of their last attempt.
    pub wait_total: i64,
    /// The longest of those waits.
    pub wait_max: i64,
    /// Their run times summed: the start of their last attempt to their end.
    pub run_total: i64,
    /// The longest of those run times.
    pub run_max: i64,
}

/// A dashboard session as stored: only the SHA-256 hash of its id (the cookie's value) is
/// kept, so a read of the table opens no session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredSession {
    /// The SHA-256 hash of the session's id.
    pub id_hash: [u8; 32],
    /// The organisation it is scoped to.
    pub org: OrgId,
    /// The token its forms carry.
    pub csrf: String,
    /// When it ends (microseconds since the epoch).
    pub expires_at: i64,
}

/// A page of the dashboard's jobs list: newest first, older than a cursor, filtered.
#[derive(Clone, Debug)]
pub struct JobFilter {
    /// The organisation asking.
    pub org: OrgId,
    /// The application.
    pub application_id: ApplicationId,
    /// Only jobs with this Writer status.
    pub status: Option<WriterStatus>,
    /// Only the items of this batch.
    pub batch_id: Option<BatchId>,
    /// Only jobs made at or after this time (microseconds), by the time in their id.
    pub created_after: Option<i64>,
    /// Only jobs made before this time (microseconds), by the time in their id.
    pub created_before: Option<i64>,
    /// Only jobs older than this one (the cursor of the page before); a job of another
    /// organisation, or none, reads as no job at all (an empty page).
    pub older_than: Option<JobId>,
    /// Jobs to return at most.
    pub limit: u64,
}

/// The smallest job id (as stored: lowercase hyphenated UUID text) made at `micros`: UUIDv7s
/// begin with their millisecond, so every id made at or after it sorts at or after this one.
pub fn first_id_at(micros: i64) -> String {
    let ms = (micros.max(0) / 1000) as u64 & 0xffff_ffff_ffff;
    format!(
        "{:08x}-{:04x}-0000-0000-000000000000",
        ms >> 16,
        ms & 0xffff
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_at_a_time_sorts_between_ids_made_before_and_after_it() {
        let before = JobId::generate().to_string();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let at = super::super::now_micros();
        std::thread::sleep(std::time::Duration::from_millis(3));
        let after = JobId::generate().to_string();
        let bound = first_id_at(at);
        assert!(before < bound, "{before} {bound}");
        assert!(bound < after, "{bound} {after}");
        assert_eq!(minute_of(61_000_001), 60_000_000);
    }
}
