//! The parameters of cursor-paged lists (applications, files): `limit` and `order`.

use super::ApiError;

/// Items on a page when the client does not say.
const DEFAULT_PAGE: u32 = 50;
/// Items on a page at most.
const MAX_PAGE: u32 = 100;

/// The page size: `limit`, 1 to 100, 50 when absent.
pub fn limit(limit: Option<u32>) -> Result<u32, ApiError> {
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

/// Whether the list runs oldest first: `order=asc`; `desc` (the default) is newest first.
pub fn ascending(order: Option<&str>) -> Result<bool, ApiError> {
    match order {
        None | Some("desc") => Ok(false),
        Some("asc") => Ok(true),
        Some(other) => Err(ApiError::bad_request(
            "request.invalid_order",
            format!("unknown order '{other}'; use asc or desc"),
        )),
    }
}
