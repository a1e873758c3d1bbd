//! The jobs list: one application's jobs, newest first, filtered by status, batch and the
//! time they were made, paged by keyset ("Older" carries the last job shown, so a page deep
//! in a million jobs costs what the first does; the Writer API keeps its offset paging), and
//! the retry of every failure the filter shows.

use axum::Form;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::applications::served_app;
use crate::api::views::{JobView, StoredApplicationView};
use crate::api::{ApiError, ErrorCode, paging};
use crate::store::{
    ApplicationId, BatchId, BatchRecord, JobFilter, JobId, JobQuery, OrgId, RetryOutcome,
    WriterStatus,
};

/// Jobs on a page of the list.
const PAGE: u64 = 50;
/// Failed jobs one bulk retry requeues at most (a second click takes the next ones).
const MAX_BULK_RETRY: u64 = 1000;

/// The filter of the list, as its form and links send it (empty fields are no filter).
#[derive(Deserialize, Default)]
pub(crate) struct Filter {
    #[serde(default)]
    application: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    batch: String,
    /// Made at or after (`YYYY-MM-DDTHH:MM`, UTC).
    #[serde(default)]
    after: String,
    /// Made before (`YYYY-MM-DDTHH:MM`, UTC).
    #[serde(default)]
    before: String,
    /// The last job of the page before (the keyset cursor).
    #[serde(default)]
    older: String,
    /// How many the last bulk retry requeued, to say so.
    #[serde(default)]
    retried: Option<u64>,
}

impl Filter {
    /// The query string of this filter (without its cursor).
    fn query(&self) -> String {
        let mut url = reqwest::Url::parse("http://ui/jobs").expect("a valid URL");
        url.query_pairs_mut()
            .append_pair("application", &self.application)
            .append_pair("status", &self.status)
            .append_pair("batch", &self.batch)
            .append_pair("after", &self.after)
            .append_pair("before", &self.before);
        url.query().unwrap_or_default().to_owned()
    }
}

/// `GET /ui/jobs`: one application's jobs (the batch's, else the chosen one, else the first),
/// newest first, filtered.
pub(crate) async fn list(
    State(state): State<UiState>,
    user: LoggedIn,
    Query(mut filter): Query<Filter>,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let apps = state.api.apps.listed(org).await?;
    let batch = batch_of(&state, org, &filter.batch).await?;
    if let Some(batch) = &batch {
        filter.application = batch.application_id.to_string();
    }
    let chosen = match filter.application.as_str() {
        "" => apps.first().cloned(),
        id => Some(served_app(&state.api, org, id).await?),
    };
    let older = cursor(&filter.older)?;
    let (mut jobs, total) = match &chosen {
        Some(app) => {
            let mut query = job_filter(&filter, org, &app.id)?;
            query.older_than = older;
            query.limit = PAGE + 1;
            let jobs = state
                .api
                .store
                .dashboard()
                .browse_jobs(query.clone())
                .await?;
            (jobs, total(&state, &query, batch.as_ref()).await?)
        }
        None => (Vec::new(), None),
    };
    let more = jobs.len() as u64 > PAGE;
    jobs.truncate(PAGE as usize);
    let next = more
        .then(|| jobs.last().map(|j| j.id.to_string()))
        .flatten();
    let jobs: Vec<JobView> = jobs.into_iter().map(JobView::from).collect();
    let apps: Vec<_> = apps
        .iter()
        .map(|a| StoredApplicationView::from(a.as_ref()))
        .collect();
    let application = chosen.as_ref().map(|a| a.id.to_string());
    if let Some(application) = &application {
        filter.application.clone_from(application);
    }
    let query = filter.query();
    Pages::page(
        &user,
        "/ui/jobs",
        "Jobs",
        "jobs.html",
        context! {
            apps,
            application,
            status => filter.status,
            batch => filter.batch,
            after => filter.after,
            before => filter.before,
            query,
            deep => older.is_some(),
            jobs,
            total,
            next,
            retried => filter.retried,
        },
    )
}

/// The job a page's `older` cursor names (none when empty).
fn cursor(raw: &str) -> Result<Option<JobId>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let id = JobId::parse(raw)
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidCursor, format!("'{raw}' names no job")))?;
    Ok(Some(id))
}

/// The batch a filter names, of the organisation (another's, or none, is a 404).
async fn batch_of(state: &UiState, org: &OrgId, raw: &str) -> Result<Option<BatchRecord>, UiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let not_found = || ApiError::new(ErrorCode::BatchNotFound, format!("no batch '{raw}'"));
    let id = BatchId::parse(raw).ok_or_else(not_found)?;
    let batch = state.api.store.get_batch(org, id).await?;
    Ok(Some(batch.ok_or_else(not_found)?))
}

/// The store's filter for `filter` on application `app`, its first page.
fn job_filter(filter: &Filter, org: &OrgId, app: &ApplicationId) -> Result<JobFilter, UiError> {
    Ok(JobFilter {
        org: org.clone(),
        application_id: app.clone(),
        status: paging::status(Some(filter.status.as_str()))?,
        batch_id: BatchId::parse(&filter.batch),
        created_after: time(&filter.after, "after")?,
        created_before: time(&filter.before, "before")?,
        older_than: None,
        limit: PAGE,
    })
}

/// How many jobs match, when that is cheap to know: the store's counters without a batch or
/// time filter, the batch's counts with only a batch; `None` with a time filter.
async fn total(
    state: &UiState,
    query: &JobFilter,
    batch: Option<&BatchRecord>,
) -> Result<Option<u64>, UiError> {
    if query.created_after.is_some() || query.created_before.is_some() {
        return Ok(None);
    }
    if let Some(b) = batch {
        return Ok(Some(match query.status {
            None => b.total,
            Some(WriterStatus::InProgress) => b.in_progress(),
            Some(WriterStatus::Completed) => b.completed,
            Some(WriterStatus::Failed) => b.failed + b.cancelled,
        }));
    }
    let counted = JobQuery {
        org: query.org.clone(),
        application_id: query.application_id.clone(),
        status: query.status,
        offset: 0,
        limit: 0,
    };
    Ok(Some(state.api.store.list_jobs(counted).await?.total))
}

/// A time of the filter (`YYYY-MM-DDTHH:MM[:SS]`, UTC, as an `<input type=datetime-local>`
/// sends it) in microseconds since the epoch.
fn time(raw: &str, field: &str) -> Result<Option<i64>, ApiError> {
    if raw.is_empty() {
        return Ok(None);
    }
    let full = if raw.len() == 16 {
        format!("{raw}:00Z")
    } else {
        format!("{raw}Z")
    };
    let at = humantime::parse_rfc3339_weak(&full).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidQuery,
            format!("{field}: '{raw}' is not a time such as 2026-12-03T14:05"),
        )
    })?;
    let micros = at
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64);
    Ok(Some(micros))
}

/// `POST /ui/jobs/retry-failed`: requeues the failed jobs the filter shows (up to 1,000 a
/// click; those refused at a batch's create never ran and stay failed), then shows the list
/// with the same filter.
pub(crate) async fn retry_failed(
    State(state): State<UiState>,
    user: LoggedIn,
    Form(form): Form<RetryFailed>,
) -> Result<Response, UiError> {
    user.check(&form.csrf)?;
    let org = &user.session.org;
    let mut filter = form.filter;
    batch_of(&state, org, &filter.batch).await?;
    let app = served_app(&state.api, org, &filter.application).await?;
    filter.status = WriterStatus::Failed.as_str().to_owned();
    let mut query = job_filter(&filter, org, &app.id)?;
    query.limit = MAX_BULK_RETRY;
    let failed = state.api.store.dashboard().browse_jobs(query).await?;
    let mut retried = 0;
    for job in failed {
        if let RetryOutcome::Requeued(_) = state.api.store.retry_job(org, job.id).await? {
            retried += 1;
        }
    }
    Ok(Redirect::to(&format!("/ui/jobs?{}&retried={retried}", filter.query())).into_response())
}

/// The bulk retry's form: its token and the filter.
#[derive(Deserialize)]
pub(crate) struct RetryFailed {
    csrf: String,
    #[serde(flatten)]
    filter: Filter,
}
