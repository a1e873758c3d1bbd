//! The parameters lists share: `limit` of every list, `offset` of the offset-paged ones
//! (jobs, batches, versions), `order` and the `after`/`before` cursors of the cursor-paged
//! lists (applications, files), and the `status` filter of the jobs and files lists.

use super::{ApiError, ErrorCode};
use crate::store::WriterStatus;

/// Items on a page when the client does not say.
const DEFAULT_PAGE: u64 = 50;
/// Items on a page of the cursor-paged lists at most.
pub(crate) const MAX_CURSOR_PAGE: u64 = 100;
/// Items on a page of the jobs list at most.
pub(crate) const MAX_JOBS_PAGE: u64 = 1000;

/// The page size, as Writer's clients expect: `limit` up to `max`; 50 when absent or 0.
pub(crate) fn limit(limit: Option<u64>, max: u64) -> u64 {
    match limit {
        None | Some(0) => DEFAULT_PAGE,
        Some(limit) => limit.min(max),
    }
}

/// The offset of the offset-paged lists (jobs, batches, versions): 0 when absent; one beyond
/// what any store can count is past the end.
pub(crate) fn offset(offset: Option<u64>) -> u64 {
    offset.unwrap_or(0).min(i64::MAX as u64)
}

/// The `status` filter: one of Writer's three statuses, or none when absent or empty.
pub(crate) fn status(status: Option<&str>) -> Result<Option<WriterStatus>, ApiError> {
    match status {
        None | Some("") => Ok(None),
        Some(s) => WriterStatus::parse(s).map(Some).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidStatus,
                format!("unknown status '{s}'; use in_progress, completed or failed"),
            )
        }),
    }
}

/// Whether the list runs oldest first: `order=asc`; `desc` (the default) is newest first.
pub(crate) fn ascending(order: Option<&str>) -> Result<bool, ApiError> {
    match order {
        None | Some("desc") => Ok(false),
        Some("asc") => Ok(true),
        Some(other) => Err(ApiError::new(
            ErrorCode::InvalidOrder,
            format!("unknown order '{other}'; use asc or desc"),
        )),
    }
}

/// The cursors of a page: `after` or `before` (empty ones count as absent), never both.
pub fn cursors(
    after: Option<String>,
    before: Option<String>,
) -> Result<(Option<String>, Option<String>), ApiError> {
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    match (nonempty(after), nonempty(before)) {
        (Some(_), Some(_)) => Err(ApiError::new(
            ErrorCode::InvalidCursor,
            "page with after or with before, not both",
        )),
        cursors => Ok(cursors),
    }
}
