//! Jobs: a list filtered by application and status (the API's list, paged by offset), a
//! job's page, its retry, and the retry of every failure the filter shows.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::applications::served_app;
use crate::api::extract::{Principal, WPath};
use crate::api::views::{JobView, StoredApplicationView};
use crate::api::{jobs, paging};
use crate::store::{JobQuery, RetryOutcome, WriterStatus};

/// Jobs on a page of the list.
const PAGE: u64 = 50;
/// Failed jobs one bulk retry requeues at most (a second click takes the next ones).
const MAX_BULK_RETRY: u64 = 1000;

/// The filter of the list.
#[derive(Deserialize)]
pub(crate) struct Filter {
    application: Option<String>,
    status: Option<String>,
    offset: Option<u64>,
    /// How many the last bulk retry requeued, to say so.
    retried: Option<u64>,
}

/// `GET /ui/jobs`: one application's jobs (the first application when none is chosen),
/// newest first, with a status filter.
pub(crate) async fn list(
    State(state): State<UiState>,
    user: LoggedIn,
    Query(filter): Query<Filter>,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let apps = state.api.apps.listed(org).await?;
    let chosen = match filter.application.as_deref().filter(|a| !a.is_empty()) {
        Some(id) => Some(served_app(&state.api, org, id).await?),
        None => apps.first().cloned(),
    };
    let status = paging::status(filter.status.as_deref())?;
    let offset = paging::offset(filter.offset);
    let (jobs, total) = match &chosen {
        Some(app) => {
            let query = JobQuery {
                org: org.clone(),
                application_id: app.id.clone(),
                status,
                offset,
                limit: PAGE,
            };
            let page = state.api.store.list_jobs(query).await?;
            let jobs: Vec<JobView> = page.jobs.into_iter().map(JobView::from).collect();
            (jobs, page.total)
        }
        None => (Vec::new(), 0),
    };
    let apps: Vec<_> = apps
        .iter()
        .map(|a| StoredApplicationView::from(a.as_ref()))
        .collect();
    Pages::page(
        &user,
        "/ui/jobs",
        "Jobs",
        "jobs.html",
        context! {
            apps,
            application => chosen.as_ref().map(|a| a.id.to_string()),
            status => status.map(WriterStatus::as_str),
            jobs,
            total,
            offset,
            page => PAGE,
            retried => filter.retried,
        },
    )
}

/// `GET /ui/jobs/{id}`: a job of the organisation, as the API shows it; another's is a 404.
pub(crate) async fn page(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let principal = Principal {
        org: user.session.org.clone(),
    };
    let job = jobs::retrieve(State(state.api.clone()), principal, WPath(id)).await?;
    Pages::page(
        &user,
        "/ui/jobs",
        "Job",
        "job.html",
        context! { job => job.0 },
    )
}

/// A form with only its CSRF token.
#[derive(Deserialize)]
pub(crate) struct Plain {
    csrf: String,
}

/// `POST /ui/jobs/{id}/retry`: the API's retry (a job that has not failed is the API's
/// 400), then the job's page.
pub(crate) async fn retry(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, UiError> {
    user.check(&form.csrf)?;
    let principal = Principal {
        org: user.session.org.clone(),
    };
    let _accepted = jobs::retry(State(state.api.clone()), principal, WPath(id.clone())).await?;
    Ok(Redirect::to(&format!("/ui/jobs/{id}")).into_response())
}

/// The bulk retry's form.
#[derive(Deserialize)]
pub(crate) struct RetryFailed {
    csrf: String,
    application: String,
}

/// `POST /ui/jobs/retry-failed`: requeues the application's failed jobs (up to 1,000 a
/// click; those refused at a batch's create never ran and stay failed), then shows the list.
pub(crate) async fn retry_failed(
    State(state): State<UiState>,
    user: LoggedIn,
    Form(form): Form<RetryFailed>,
) -> Result<Response, UiError> {
    user.check(&form.csrf)?;
    let org = &user.session.org;
    let app = served_app(&state.api, org, &form.application).await?;
    let query = JobQuery {
        org: org.clone(),
        application_id: app.id.clone(),
        status: Some(WriterStatus::Failed),
        offset: 0,
        limit: MAX_BULK_RETRY,
    };
    let failed = state.api.store.list_jobs(query).await?.jobs;
    let mut retried = 0;
    for job in failed {
        if let RetryOutcome::Requeued(_) = state.api.store.retry_job(org, job.id).await? {
            retried += 1;
        }
    }
    Ok(Redirect::to(&format!(
        "/ui/jobs?application={}&retried={retried}",
        app.id
    ))
    .into_response())
}
