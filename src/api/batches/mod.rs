//! The batch routes (ours, NATIVE_API.md "Batches"): create (202), retrieve, list with offset
//! paging like jobs; the results as they finish ([`results`]); cancel and retry
//! ([`lifecycle`]).
//!
//! - [`create`]: the create route, from inline items or an uploaded file;
//! - [`intake`]: each item checked as a single job is (one that fails the checks is stored
//!   as a failed job with the check's message and named in the batch's `errors`, unless
//!   `strict` refuses the whole request), and sent to the store in chunks;
//! - [`sources`]: the parsers of the body, of JSON Lines and of CSV files, as streams;
//! - [`check`]: a file read as the create reads it, nothing stored (the dashboard's look
//!   before it starts a batch).

mod check;
mod create;
mod intake;
mod lifecycle;
mod results;
mod sources;

use axum::Json;
use axum::extract::State;
use serde::Deserialize;
use utoipa::IntoParams;

pub(crate) use check::check;
pub(crate) use create::{__path_create, BodyLimit, create};
pub(crate) use lifecycle::{__path_cancel, __path_retry, cancel, retry};
pub(crate) use results::{__path_results, ResultsQuery, results};

use super::applications::served_app;
use super::extract::{Principal, WPath, WQuery};
use super::paging;
use super::views::{BatchListView, BatchView, PaginationView};
use super::{ApiError, AppState, ErrorCode};
use crate::store::{BatchId, BatchQuery, BatchStatus};

/// `GET /v1/applications/batches/{batch_id}`: the batch with its exact counts.
#[utoipa::path(get, path = "/v1/applications/batches/{batch_id}", tag = "batches", params(("batch_id" = String, Path, description = "The batch's id.")),
    responses((status = 200, description = "The batch with its counts.", body = BatchView)))]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<Json<BatchView>, ApiError> {
    match state
        .store
        .get_batch(&principal.org, batch_id(&raw)?)
        .await?
    {
        Some(batch) => Ok(Json(batch.into())),
        None => Err(not_found(&raw)),
    }
}

/// The batch id a path names; one in any other form names no batch (404).
fn batch_id(raw: &str) -> Result<BatchId, ApiError> {
    BatchId::parse(raw).ok_or_else(|| not_found(raw))
}

fn not_found(raw: &str) -> ApiError {
    ApiError::new(ErrorCode::BatchNotFound, format!("no batch {raw}"))
}

/// The query of the batches list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// A batch status.
    status: Option<String>,
    /// Batches to skip.
    offset: Option<u64>,
    /// Batches per page.
    limit: Option<u64>,
}

/// `GET /v1/applications/{application_id}/batches`: newest first, paged as jobs are.
#[utoipa::path(get, path = "/v1/applications/{application_id}/batches", tag = "batches",
    params(("application_id" = String, Path, description = "The application's id."), ListQuery),
    responses((status = 200, description = "A page of batches, newest first.", body = BatchListView)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    WPath(application_id): WPath<String>,
    WQuery(query): WQuery<ListQuery>,
) -> Result<Json<BatchListView>, ApiError> {
    let app = served_app(&state, &principal.org, &application_id).await?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(BatchStatus::parse(s).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidStatus,
                format!(
                    "unknown status '{s}'; use in_progress, completed, cancelling or cancelled"
                ),
            )
        })?),
    };
    let limit = paging::limit(query.limit, paging::MAX_JOBS_PAGE);
    let offset = paging::offset(query.offset);
    let page = state
        .store
        .list_batches(BatchQuery {
            org: principal.org,
            application_id: app.id.clone(),
            status,
            offset,
            limit,
        })
        .await?;
    Ok(Json(BatchListView {
        result: page.batches.into_iter().map(BatchView::from).collect(),
        total_count: page.total,
        pagination: PaginationView { offset, limit },
    }))
}
