//! Jobs: a list filtered by application and status (the API's list, paged by offset), a
//! job's page, its retry and its cancel, and the retry of every failure the filter shows.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::applications::{prepare_now, served_app};
use crate::api::extract::{Principal, WPath};
use crate::api::views::{JobView, PreviewView, StoredApplicationView};
use crate::api::{ApiError, ErrorCode, jobs, paging};
use crate::apps::Inputs;
use crate::store::{ApplicationId, JobId, JobInputs, JobQuery, OrgId, RetryOutcome, WriterStatus};

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

/// `GET /ui/jobs/{id}`: a job of the organisation as the API shows it (another's is a 404),
/// with the inputs it was created with and its prompt rendered as its attempts send it.
pub(crate) async fn page(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let principal = Principal { org: org.clone() };
    let job = jobs::retrieve(State(state.api.clone()), principal, WPath(id.clone())).await?;
    let job = serde_json::to_value(job.0)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let made = match JobId::parse(&id) {
        Some(id) => state.api.store.job_inputs(org, id).await?,
        None => None,
    };
    let (inputs, prompt) = match made {
        Some(made) => {
            let app = job["application_id"].as_str().unwrap_or_default();
            prompt_of(&state, org, app, made).await?
        }
        None => (None, Err("not stored".to_owned())),
    };
    let (prompt, prompt_error) = match prompt {
        Ok(prompt) => (Some(prompt), None),
        Err(why) => (None, Some(why)),
    };
    Pages::page(
        &user,
        "/ui/jobs",
        "Job",
        "job.html",
        context! { job, inputs, prompt, prompt_error },
    )
}

/// A job's inputs, and its prompt rendered by the application version it runs (or why it
/// cannot be: the application is gone, a file it names is, the template fails).
async fn prompt_of(
    state: &UiState,
    org: &OrgId,
    app: &str,
    made: JobInputs,
) -> Result<(Option<Inputs>, Result<PreviewView, String>), UiError> {
    let Ok(inputs) = serde_json::from_str::<Inputs>(&made.inputs) else {
        return Ok((None, Err("its inputs cannot be read".to_owned())));
    };
    let app_id = ApplicationId::from(app.to_owned());
    let pinned = state
        .api
        .apps
        .pinned(org, &app_id, made.application_version)
        .await?;
    let Some(pinned) = pinned else {
        return Ok((Some(inputs), Err("its application is gone".to_owned())));
    };
    let prompt = match prepare_now(&state.api, org, &pinned, &inputs).await {
        Ok(prepared) => Ok(PreviewView {
            system: prepared.request.system.clone(),
            user: prepared.request.user.clone(),
            title: prepared.title.clone(),
            answer: None,
        }),
        Err(e) => Err(e.body()["errors"][0]["description"]
            .as_str()
            .unwrap_or("it cannot be rendered")
            .to_owned()),
    };
    Ok((Some(inputs), prompt))
}

/// A form with only its CSRF token.
#[derive(Deserialize)]
pub(crate) struct Plain {
    pub(super) csrf: String,
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

/// `POST /ui/jobs/{id}/cancel`: the API's cancel (a finished job is its 400), then the
/// job's page.
pub(crate) async fn cancel(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, UiError> {
    user.check(&form.csrf)?;
    let principal = Principal {
        org: user.session.org.clone(),
    };
    let _accepted = jobs::cancel(State(state.api.clone()), principal, WPath(id.clone())).await?;
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
