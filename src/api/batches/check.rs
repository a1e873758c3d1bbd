//! A look at an uploaded batch file before any batch is made of it: how its columns map to
//! the application's inputs, how many items are good, and which are refused and why.
//!
//! It is the create itself, dry: the file is read by the same readers into an
//! [`Intake`] made by [`Intake::checking`], which runs every check the create runs (the
//! header, the custom ids, each item's inputs as a single job's) and stores nothing. So what
//! the check says is what the create will do with the same file, application and flags.

use serde::Serialize;

use super::create::read_file;
use super::intake::{Intake, Place, no_items};
use crate::api::applications::served_app;
use crate::api::{ApiError, AppState};
use crate::store::OrgId;

/// A column of a CSV file's header and what it gives.
#[derive(Debug, Serialize)]
pub(crate) struct ColumnCheck {
    /// The column's name, as written.
    pub(crate) name: String,
    /// The input it fills; none for the `custom_id` column and for a column refused.
    pub(crate) input: Option<String>,
    /// Why the column cannot be taken (not an input, given twice, not UTF-8).
    pub(crate) problem: Option<String>,
}

/// An item the create would store as failed.
#[derive(Debug, Serialize)]
pub(crate) struct RefusedItem {
    /// Its row (CSV, the header being row 1) or line (JSON Lines).
    pub(crate) number: Option<u64>,
    /// Its custom id (its position when the file gives none).
    pub(crate) custom_id: String,
    /// The input (column) it is about, when it is about one.
    pub(crate) input: Option<String>,
    /// Why.
    pub(crate) message: String,
}

/// What the create would make of a file.
#[derive(Debug, Serialize)]
pub(crate) struct FileCheck {
    /// The columns of a CSV file's header (none for JSON Lines, whose lines name inputs).
    pub(crate) columns: Vec<ColumnCheck>,
    /// The required inputs no column of a CSV file gives: every row will be refused.
    pub(crate) missing: Vec<String>,
    /// Items read.
    pub(crate) items: u64,
    /// Items that pass every check.
    pub(crate) good: u64,
    /// Items that do not: stored as failed, or the whole batch refused with `strict`.
    pub(crate) bad: u64,
    /// The first refused items (at most as many as a batch's `errors` names).
    pub(crate) refused_items: Vec<RefusedItem>,
    /// Why the create would refuse the whole file (a header it cannot take, a custom id
    /// given twice, no item at all), in the words of its 400.
    pub(crate) refused: Option<String>,
}

/// Checks the uploaded file `file_id` of `org` as a batch of application `application_id`
/// (one it serves, else the API's 404). A file that cannot be read as a batch is said in
/// `refused`; only the server's own failures are errors.
pub(crate) async fn check(
    state: &AppState,
    org: &OrgId,
    application_id: &str,
    file_id: &str,
) -> Result<FileCheck, ApiError> {
    let app = served_app(state, org, application_id).await?;
    let intake = Intake::checking(state.clone(), org.clone(), app.clone());
    let (intake, read) = read_file(state, org, file_id, intake).await?;
    let (items, bad, refusals, columns) = intake.tally();
    let refused = match read {
        Ok(()) if items == 0 => Some(no_items()),
        Ok(()) => None,
        Err(e) if e.status().is_client_error() => Some(e),
        Err(e) => return Err(e),
    };
    // A JSON Lines file has no header: each line names its own inputs.
    let given = |name: &String| columns.iter().any(|c| c.input.as_ref() == Some(name));
    let missing = app
        .inputs
        .iter()
        .filter(|spec| spec.required && !columns.is_empty() && !given(&spec.name))
        .map(|spec| spec.name.clone())
        .collect();
    let refused_items = refusals
        .into_iter()
        .map(|r| RefusedItem {
            number: match r.place {
                Place::Item => None,
                Place::Line(n) | Place::Row(n) => Some(n),
            },
            custom_id: r.custom_id,
            input: r.input,
            message: r.message,
        })
        .collect();
    Ok(FileCheck {
        columns,
        missing,
        items,
        good: items - bad,
        bad,
        refused_items,
        refused: refused.map(|e| e.descriptions().join("; ")),
    })
}
