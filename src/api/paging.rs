//! The parameters lists share: `limit` and `order` of the cursor-paged lists (applications,
//! files), and the `status` filter of the jobs and files lists.

use super::ApiError;
use crate::store::WriterStatus;

/// Items on a page when the client does not say.
const DEFAULT_PAGE: u32 = 50;
/// Items on a page at most.
const MAX_PAGE: u32 = 100;

/// The page size: `limit`, 1 to 100, 50 when absent.
pub(crate) fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if (1..=MAX_PAGE).contains(&limit) {
        Ok(limit)
    } else {
        Err(ApiError::bad_request(
            "request.invalid_limit",
            format!("limit must be between 1 and {MAX_PAGE}"),
        ))
    }
}

/// The `status` filter: one of Writer's three statuses, or none when absent or empty.
pub(crate) fn status(status: Option<&str>) -> Result<Option<WriterStatus>, ApiError> {
    match status {
        None | Some("") => Ok(None),
        Some(s) => WriterStatus::parse(s).map(Some).ok_or_else(|| {
            ApiError::bad_request(
                "request.invalid_status",
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
        Some(other) => Err(ApiError::bad_request(
            "request.invalid_order",
            format!("unknown order '{other}'; use asc or desc"),
        )),
    }
}
