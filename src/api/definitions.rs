//! Our application routes (`/v1/scriptorium/applications`): create, read, replace and delete
//! an organisation's applications, list their versions and restore one. Every change goes
//! through the [`Catalog`](crate::apps::Catalog), which validates the definition by the rules
//! of an application file and keeps the versions; and the preview of a definition, saved or
//! not, rendered (and run once) the way a job would be.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::applications::{checked_inputs, complete, prepare_now};
use super::extract::{Principal, WJson, WPath, WQuery};
use super::openapi;
use super::paging;
use super::views::{
    ApplicationDeletedView, PaginationView, PreviewView, StoredApplicationView, VersionListView,
    VersionView,
};
use super::{ApiError, AppState, ErrorCode};
use crate::apps::{Application, CatalogError};

/// `POST /v1/scriptorium/applications`: 201 with the application at version 1.
#[utoipa::path(post, path = "/v1/scriptorium/applications", tag = "definitions", request_body(content = Object, description = "An application definition (the apps folder's TOML as JSON: see the README)."),
    responses((status = 201, description = "Created at version 1.", body = StoredApplicationView)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    WJson(definition): WJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let app = state.apps.create(&principal.org, definition).await?;
    Ok((StatusCode::CREATED, shown(&app)).into_response())
}

/// `GET /v1/scriptorium/applications/{id}`: the application at its current version (drafts
/// too; provisioned ones without version or definition).
#[utoipa::path(get, path = "/v1/scriptorium/applications/{application_id}", tag = "definitions",
    params(("application_id" = String, Path, description = "The application's id.")),
    responses((status = 200, description = "The application at its current version.", body = StoredApplicationView)))]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
) -> Result<Response, ApiError> {
    match state.apps.find(&principal.org, &id).await? {
        Some(app) => Ok(shown(&app)),
        None => Err(CatalogError::NotFound(id).into()),
    }
}

/// `PUT /v1/scriptorium/applications/{id}`: replaces the definition, as a new version.
#[utoipa::path(put, path = "/v1/scriptorium/applications/{application_id}", tag = "definitions",
    params(("application_id" = String, Path, description = "The application's id.")), request_body(content = Object, description = "An application definition (the apps folder's TOML as JSON: see the README)."),
    responses((status = 200, description = "The application at its new version.", body = StoredApplicationView)))]
pub(crate) async fn replace(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
    WJson(definition): WJson<serde_json::Value>,
) -> Result<Response, ApiError> {
    let app = state.apps.replace(&principal.org, &id, definition).await?;
    Ok(shown(&app))
}

/// `DELETE /v1/scriptorium/applications/{id}`: `{id, deleted: true}`; its jobs stay readable.
#[utoipa::path(delete, path = "/v1/scriptorium/applications/{application_id}", tag = "definitions",
    params(("application_id" = String, Path, description = "The application's id.")),
    responses((status = 200, description = "Deleted; its jobs stay readable.", body = ApplicationDeletedView)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
) -> Result<Json<ApplicationDeletedView>, ApiError> {
    state.apps.delete(&principal.org, &id).await?;
    Ok(Json(ApplicationDeletedView { id, deleted: true }))
}

/// The query of the versions list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VersionsQuery {
    /// Versions to skip.
    offset: Option<u64>,
    /// Versions per page.
    limit: Option<u64>,
}

/// `GET /v1/scriptorium/applications/{id}/versions`: newest first, paged like jobs.
#[utoipa::path(get, path = "/v1/scriptorium/applications/{application_id}/versions", tag = "definitions",
    params(("application_id" = String, Path, description = "The application's id."), VersionsQuery),
    responses((status = 200, description = "A page of versions, newest first.", body = VersionListView)))]
pub(crate) async fn versions(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
    WQuery(query): WQuery<VersionsQuery>,
) -> Result<Json<VersionListView>, ApiError> {
    let limit = paging::limit(query.limit, paging::MAX_JOBS_PAGE);
    let offset = paging::offset(query.offset);
    let page = state
        .apps
        .versions(&principal.org, &id, offset, limit)
        .await?;
    Ok(Json(VersionListView {
        result: page.versions.into_iter().map(VersionView::from).collect(),
        total_count: page.total,
        pagination: PaginationView { offset, limit },
    }))
}

/// `POST /v1/scriptorium/applications/{id}/versions/{version}/restore`: the application at a
/// new version whose definition is that version's.
#[utoipa::path(post, path = "/v1/scriptorium/applications/{application_id}/versions/{version}/restore",
    tag = "definitions",
    params(("application_id" = String, Path, description = "The application's id."), ("version" = String, Path, description = "A version number (1, 2, ...).")),
    responses((status = 200, description = "The application at a new version equal to that one.",
        body = StoredApplicationView)))]
pub(crate) async fn restore(
    State(state): State<AppState>,
    principal: Principal,
    WPath((id, version)): WPath<(String, String)>,
) -> Result<Response, ApiError> {
    let number = version
        .parse::<u32>()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| CatalogError::NoVersion(id.clone(), version))?;
    let app = state.apps.restore(&principal.org, &id, number).await?;
    Ok(shown(&app))
}

/// The body of a preview: a definition (saved or not), inputs as a job create takes them,
/// and whether to send the rendered prompt to the provider once.
#[derive(Deserialize, ToSchema)]
pub(crate) struct PreviewRequest {
    /// An application definition, saved or not.
    #[schema(value_type = Object)]
    definition: serde_json::Value,
    /// Kept raw so that validation can name the input at fault.
    #[schema(schema_with = openapi::inputs)]
    inputs: Option<serde_json::Value>,
    #[serde(default)]
    run: bool,
}

/// `POST /v1/scriptorium/applications/preview`: the prompts exactly as the model would get
/// them (the definition and inputs checked as a create and a job create are), and with
/// `run` the provider's answer; no job is made.
#[utoipa::path(post, path = "/v1/scriptorium/applications/preview", tag = "definitions",
    request_body = PreviewRequest,
    responses((status = 200, description = "The prompts as the model would get them.", body = PreviewView)))]
pub(crate) async fn preview(
    State(state): State<AppState>,
    principal: Principal,
    WJson(body): WJson<PreviewRequest>,
) -> Result<Json<PreviewView>, ApiError> {
    let app = state.apps.unsaved(body.definition)?;
    let inputs = checked_inputs(&state, &principal.org, &app, body.inputs.as_ref()).await?;
    let prepared = prepare_now(&state, &principal.org, &app, &inputs).await?;
    let mut view = PreviewView {
        system: prepared.request.system.clone(),
        user: prepared.request.user.clone(),
        title: prepared.title.clone(),
        answer: None,
    };
    if body.run {
        view.answer = Some(complete(prepared).await?);
    }
    Ok(Json(view))
}

fn shown(app: &Application) -> Response {
    Json(StoredApplicationView::from(app)).into_response()
}

impl From<CatalogError> for ApiError {
    fn from(e: CatalogError) -> Self {
        let code = match &e {
            CatalogError::Invalid(_) => ErrorCode::InvalidApplication,
            CatalogError::ReadOnly(_) => ErrorCode::ApplicationReadOnly,
            CatalogError::Taken(_) => ErrorCode::ApplicationExists,
            CatalogError::NotFound(_) => ErrorCode::ApplicationNotFound,
            CatalogError::NoVersion(..) => ErrorCode::VersionNotFound,
            CatalogError::Store(_) => ErrorCode::Internal,
        };
        match e {
            CatalogError::Invalid(problems) => ApiError::many(code, problems),
            CatalogError::Store(e) => e.into(),
            other => ApiError::new(code, other.to_string()),
        }
    }
}
