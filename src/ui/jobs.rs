//! A job's page, its retry and its cancel (the list of jobs is [`super::job_list`]).

use axum::Form;
use axum::extract::{Path, State};
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::applications::prepare_now;
use crate::api::extract::{Principal, WPath};
use crate::api::views::PreviewView;
use crate::api::{ApiError, ErrorCode, jobs};
use crate::apps::Inputs;
use crate::store::{ApplicationId, JobId, JobInputs, OrgId, rfc3339};

/// `GET /ui/jobs/{id}`: a job of the organisation as the API shows it (another's is a 404),
/// with the inputs it was created with and its prompt rendered as its attempts send it.
pub(crate) async fn page(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let principal = user.principal();
    let job = jobs::retrieve(State(state.api.clone()), principal, WPath(id.clone())).await?;
    let job = serde_json::to_value(job.0)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let (made, ended) = match JobId::parse(&id) {
        Some(id) => (
            state.api.store.job_inputs(org, id).await?,
            state.api.store.ended_attempts(org, id).await?,
        ),
        None => (None, Vec::new()),
    };
    let ended: Vec<_> = ended
        .into_iter()
        .map(|a| {
            context! { attempt => a.attempt, started_at => a.started_at.map(rfc3339),
            ended_at => rfc3339(a.ended_at), state => a.state, error => a.error }
        })
        .collect();
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
        context! { job, inputs, prompt, prompt_error, ended },
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

/// A button's action on one object: the form's token checked, the API's handler `call`ed
/// for the session's organisation (its 4xx shown as such), then back to the object's `page`.
pub(super) async fn act<T, Fut>(
    user: &LoggedIn,
    form: &Plain,
    page: String,
    call: impl FnOnce(Principal) -> Fut,
) -> Result<Response, UiError>
where
    Fut: Future<Output = Result<T, ApiError>>,
{
    user.check(&form.csrf)?;
    call(user.principal()).await?;
    Ok(Redirect::to(&page).into_response())
}

/// `POST /ui/jobs/{id}/retry`: the API's retry (a job that has not failed is the API's
/// 400), then the job's page.
pub(crate) async fn retry(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, UiError> {
    let page = format!("/ui/jobs/{id}");
    act(&user, &form, page, |principal| {
        jobs::retry(State(state.api.clone()), principal, WPath(id))
    })
    .await
}

/// `POST /ui/jobs/{id}/cancel`: the API's cancel (a finished job is its 400), then the
/// job's page.
pub(crate) async fn cancel(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, UiError> {
    let page = format!("/ui/jobs/{id}");
    act(&user, &form, page, |principal| {
        jobs::cancel(State(state.api.clone()), principal, WPath(id))
    })
    .await
}
