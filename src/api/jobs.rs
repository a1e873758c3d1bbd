//! The async job routes: create (202), retrieve, list with offset paging, retry (202).

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use utoipa::IntoParams;

use super::applications::{GenerateBody, checked_inputs, served_app};
use super::extract::{Principal, WJson, WPath, WQuery};
use super::paging;
use super::views::{JobAcceptedView, JobListView, JobView, PaginationView};
use super::{ApiError, AppState, ErrorCode};
use crate::store::{JobId, JobQuery, NewJob, Priority, RetryOutcome, WriterStatus};

const MAX_IDEMPOTENCY_KEY: usize = 255;

/// `POST /v1/applications/{application_id}/jobs`: validates and stores a job; 202 once durable.
#[utoipa::path(post, path = "/v1/applications/{application_id}/jobs", tag = "jobs",
    params(("application_id" = String, Path, description = "The application's id."),
        ("Idempotency-Key" = Option<String>, Header, description = "A repeated key within the organisation answers the job it made."),
        ("Scriptorium-Priority" = Option<String>, Header, description = "`high`, `normal` or `low` (else the application's).")),
    request_body = GenerateBody,
    responses((status = 202, description = "Stored; it runs in the background.", body = JobAcceptedView)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    WPath(application_id): WPath<String>,
    headers: HeaderMap,
    WJson(body): WJson<GenerateBody>,
) -> Result<(StatusCode, Json<JobAcceptedView>), ApiError> {
    let app = served_app(&state, &principal.org, &application_id).await?;
    if body.stream == Some(true) {
        return Err(ApiError::new(
            ErrorCode::StreamUnsupported,
            "async jobs cannot stream; use POST /v1/applications/{application_id} with stream",
        ));
    }
    let inputs = checked_inputs(&state, &principal.org, &app, body.inputs.as_ref()).await?;
    let inputs = serde_json::to_string(&inputs)
        .map_err(|e| ApiError::new(ErrorCode::InvalidInputs, e.to_string()))?;
    let job = NewJob {
        id: JobId::generate(),
        org: principal.org,
        application_id: app.id.clone(),
        application_version: app.version,
        inputs,
        retry: app.retry,
        priority: priority(&headers)?.unwrap_or(app.priority),
        idempotency_key: idempotency_key(&headers)?,
    };
    let inserted = state.store.insert_job(job).await?;
    Ok((StatusCode::ACCEPTED, Json(inserted.into())))
}

/// `Scriptorium-Priority: high|normal|low`, if sent.
pub(crate) fn priority(headers: &HeaderMap) -> Result<Option<Priority>, ApiError> {
    let Some(value) = headers.get("scriptorium-priority") else {
        return Ok(None);
    };
    match value.to_str().ok().and_then(|v| Priority::parse(v.trim())) {
        Some(priority) => Ok(Some(priority)),
        None => Err(ApiError::new(
            ErrorCode::InvalidPriority,
            "Scriptorium-Priority must be high, normal or low",
        )),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(value) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    match value.to_str() {
        Ok(key) if !key.is_empty() && key.len() <= MAX_IDEMPOTENCY_KEY => Ok(Some(key.to_owned())),
        _ => Err(ApiError::new(
            ErrorCode::IdempotencyKey,
            format!("Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} visible ASCII characters"),
        )),
    }
}

/// `GET /v1/applications/jobs/{job_id}`.
#[utoipa::path(get, path = "/v1/applications/jobs/{job_id}", tag = "jobs", params(("job_id" = String, Path, description = "The job's id.")),
    responses((status = 200, description = "The job.", body = JobView)))]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<Json<JobView>, ApiError> {
    match state.store.get_job(&principal.org, job_id(&raw)?).await? {
        Some(job) => Ok(Json(job.into())),
        None => Err(job_not_found(&raw)),
    }
}

/// The query of the jobs list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `in_progress`, `completed` or `failed`.
    status: Option<String>,
    /// Jobs to skip.
    offset: Option<u64>,
    /// Jobs per page.
    limit: Option<u64>,
}

/// `GET /v1/applications/{application_id}/jobs`: newest first, always with `totalCount` and
/// `pagination`, which the Python SDK needs to page on.
#[utoipa::path(get, path = "/v1/applications/{application_id}/jobs", tag = "jobs",
    params(("application_id" = String, Path, description = "The application's id."), ListQuery),
    responses((status = 200, description = "A page of jobs, newest first.", body = JobListView)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    WPath(application_id): WPath<String>,
    WQuery(query): WQuery<ListQuery>,
) -> Result<Json<JobListView>, ApiError> {
    let app = served_app(&state, &principal.org, &application_id).await?;
    let status = paging::status(query.status.as_deref())?;
    let limit = paging::limit(query.limit, paging::MAX_JOBS_PAGE);
    let offset = paging::offset(query.offset);
    let page = state
        .store
        .list_jobs(JobQuery {
            org: principal.org,
            application_id: app.id.clone(),
            status,
            offset,
            limit,
        })
        .await?;
    Ok(Json(JobListView {
        result: page.jobs.into_iter().map(JobView::from).collect(),
        total_count: page.total,
        pagination: PaginationView { offset, limit },
    }))
}

/// `POST /v1/applications/jobs/{job_id}/retry`: a failed job starts a fresh series of
/// attempts (202); any other job is a 400, never a 409 (which the SDKs would retry).
#[utoipa::path(post, path = "/v1/applications/jobs/{job_id}/retry", tag = "jobs", params(("job_id" = String, Path, description = "The job's id.")),
    responses((status = 202, description = "Queued again.", body = JobAcceptedView)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<(StatusCode, Json<JobAcceptedView>), ApiError> {
    let id = job_id(&raw)?;
    match state.store.retry_job(&principal.org, id).await? {
        RetryOutcome::Requeued(job) => Ok((StatusCode::ACCEPTED, Json(job.into()))),
        RetryOutcome::NotFound => Err(job_not_found(&raw)),
        RetryOutcome::Refused => Err(ApiError::new(
            ErrorCode::JobRefused,
            format!(
                "job {id} was refused when its batch was created (see its error) and never ran; \
                 create it again with valid inputs"
            ),
        )),
        RetryOutcome::NotFailed(current) => {
            let now = match current.writer_status() {
                WriterStatus::Completed => "has completed",
                _ => "is still in progress",
            };
            Err(ApiError::new(
                ErrorCode::JobNotFailed,
                format!("job {id} {now}; only a failed job can be retried"),
            ))
        }
    }
}

/// The job id a path names; one in any other form than the server's names no job (404).
fn job_id(raw: &str) -> Result<JobId, ApiError> {
    JobId::parse(raw).ok_or_else(|| job_not_found(raw))
}

fn job_not_found(job_id: &str) -> ApiError {
    ApiError::new(ErrorCode::JobNotFound, format!("no job {job_id}"))
}
