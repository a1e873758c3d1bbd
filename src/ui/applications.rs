//! Applications: the list, one application's page (its inputs, recent jobs, a form to run it
//! once, its versions with a restore button each), running it once, restoring a version.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::{Html, IntoResponse, Redirect, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::applications::GenerateBody;
use crate::api::extract::{WJson, WPath};
use crate::api::views::{JobView, StoredApplicationView, VersionView};
use crate::api::{ApiError, ErrorCode, jobs};
use crate::apps::CatalogError;
use crate::store::JobQuery;

/// Recent jobs and versions shown on an application's page.
const RECENT: u64 = 10;

/// `GET /ui/applications`: the applications the organisation is served (its own deployed
/// ones and the provisioned ones), oldest first, then its drafts.
pub(crate) async fn list(
    State(state): State<UiState>,
    user: LoggedIn,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let apps = state.api.apps.listed(org).await?;
    let apps: Vec<_> = apps
        .iter()
        .map(|a| StoredApplicationView::from(a.as_ref()))
        .collect();
    let drafts: Vec<_> = state
        .api
        .store
        .list_applications(org)
        .await?
        .into_iter()
        .filter(|a| !a.deployed)
        .map(|a| {
            let definition: Value = serde_json::from_str(&a.definition).unwrap_or_default();
            let name = definition["name"].as_str().unwrap_or_default().to_owned();
            context! { id => a.id.to_string(), name, version => a.version }
        })
        .collect();
    Pages::page(
        &user,
        "/ui/applications",
        "Applications",
        "applications.html",
        context! { apps, drafts },
    )
}

/// `GET /ui/applications/{id}`: one application (drafts too): its inputs, its recent jobs,
/// the run-once form and, for the organisation's own, its versions.
pub(crate) async fn page(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let app = state
        .api
        .apps
        .find(org, &id)
        .await?
        .ok_or_else(|| CatalogError::NotFound(id.clone()))?;
    let query = JobQuery {
        org: org.clone(),
        application_id: app.id.clone(),
        status: None,
        offset: 0,
        limit: RECENT,
    };
    let page = state.api.store.list_jobs(query).await?;
    let jobs: Vec<JobView> = page.jobs.into_iter().map(JobView::from).collect();
    let versions: Vec<VersionView> = match app.version {
        Some(_) => {
            let page = state.api.apps.versions(org, &id, 0, RECENT).await?;
            page.versions.into_iter().map(VersionView::from).collect()
        }
        None => Vec::new(),
    };
    let view = StoredApplicationView::from(app.as_ref());
    let title = app.name.clone();
    Pages::page(
        &user,
        "/ui/applications",
        &title,
        "application.html",
        context! { app => view, jobs, total_jobs => page.total, versions },
    )
}

/// `POST /ui/applications/{id}/run`: creates one job, exactly as
/// `POST /v1/applications/{id}/jobs` does, from the form's fields (`input:NAME`, one value a
/// line), and shows it.
pub(crate) async fn run(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Form(fields): Form<Vec<(String, String)>>,
) -> Result<Response, UiError> {
    let csrf = fields.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v);
    user.check(csrf.map_or("", String::as_str))?;
    let inputs: Vec<_> = fields
        .iter()
        .filter_map(|(k, v)| Some((k.strip_prefix("input:")?, v)))
        .map(|(name, text)| {
            let values: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .collect();
            json!({"id": name, "value": values})
        })
        .collect();
    let body = GenerateBody {
        inputs: Some(json!(inputs)),
        stream: None,
    };
    let principal = user.principal();
    let (_, accepted) = jobs::create(
        State(state.api.clone()),
        principal,
        WPath(id),
        HeaderMap::new(),
        WJson(body),
    )
    .await?;
    let job = serde_json::to_value(&accepted.0)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let job_id = job["id"].as_str().unwrap_or_default();
    Ok(Redirect::to(&format!("/ui/jobs/{job_id}")).into_response())
}

/// The restore form's field.
#[derive(Deserialize)]
pub(crate) struct Restore {
    csrf: String,
}

/// `POST /ui/applications/{id}/versions/{version}/restore`: deploys that version's
/// definition again, as a new version, and shows the application.
pub(crate) async fn restore(
    State(state): State<UiState>,
    user: LoggedIn,
    Path((id, version)): Path<(String, u32)>,
    Form(form): Form<Restore>,
) -> Result<Response, UiError> {
    user.check(&form.csrf)?;
    state
        .api
        .apps
        .restore(&user.session.org, &id, version)
        .await?;
    Ok(Redirect::to(&format!("/ui/applications/{id}")).into_response())
}
