//! The application editor: a form over the JSON definition (id, name, status, provider,
//! model, sampling, retry policy, the three templates, and the inputs with their types and
//! options), checked as you type by the very preview the API serves, and saved through the
//! catalog as a create or a new version.
//!
//! The page's script turns the form into a definition and posts it here as JSON: to
//! [`preview`] on every change (the definition's problems, each naming its field and template
//! line, or the prompts rendered for the sample inputs; with `run`, the model's answer too)
//! and to [`save`]. Neither holds a rule of its own. A definition still being typed is not
//! a failed request: both answer 200 with `{"problems": [...]}` (the descriptions of the
//! API's 400), so the browser's console stays clean; anything else keeps its status.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use minijinja::context;
use serde::Deserialize;
use serde_json::{Value, json};

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::ApiError;
use crate::api::definitions::{self, PreviewRequest};
use crate::api::extract::WJson;
use crate::apps::CatalogError;

/// `GET /ui/applications/new`: the editor, empty but for a starting template.
pub(crate) async fn new(user: LoggedIn) -> Result<Html<String>, UiError> {
    let definition = json!({
        "name": "",
        "status": "deployed",
        "prompt": "",
        "inputs": [],
    });
    editor(&user, None, &definition)
}

/// `GET /ui/applications/{id}/edit`: the editor over the current version of one of the
/// organisation's own applications (a provisioned one is read-only: 400, as in the API).
pub(crate) async fn edit(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let app = state
        .api
        .apps
        .find(&user.session.org, &id)
        .await?
        .ok_or_else(|| CatalogError::NotFound(id.clone()))?;
    let definition = app
        .definition
        .as_ref()
        .ok_or_else(|| CatalogError::ReadOnly(id.clone()))?;
    editor(&user, Some(&id), definition)
}

fn editor(user: &LoggedIn, id: Option<&str>, definition: &Value) -> Result<Html<String>, UiError> {
    let title = match id {
        Some(id) => format!("Edit {id}"),
        None => "New application".to_owned(),
    };
    Pages::page(
        user,
        "/ui/applications",
        &title,
        "editor.html",
        context! { id, definition => definition.to_string() },
    )
}

/// `POST /ui/editor/preview`: `POST /v1/scriptorium/applications/preview` for the session's
/// organisation (the script's `X-CSRF-Token` checked first): the rendered prompts, or the
/// API's 400 naming every problem.
pub(crate) async fn preview(
    State(state): State<UiState>,
    user: LoggedIn,
    headers: HeaderMap,
    body: WJson<PreviewRequest>,
) -> Result<Response, UiError> {
    user.check_header(&headers)?;
    let principal = user.principal();
    let preview = definitions::preview(State(state.api.clone()), principal, body).await;
    Ok(answered(preview.map(|view| json!({"preview": view.0}))))
}

/// What the editor saves: the definition, and the id of the application it changes (none
/// for a new one).
#[derive(Deserialize)]
pub(crate) struct SaveRequest {
    id: Option<String>,
    definition: Value,
}

/// `POST /ui/editor/save`: creates the application or gives it a new version (the API's
/// 400 naming every problem when the definition is not valid); answers
/// `{location}`, the application's page.
pub(crate) async fn save(
    State(state): State<UiState>,
    user: LoggedIn,
    headers: HeaderMap,
    WJson(body): WJson<SaveRequest>,
) -> Result<Response, UiError> {
    user.check_header(&headers)?;
    let org = &user.session.org;
    let saved = match &body.id {
        Some(id) => state.api.apps.replace(org, id, body.definition).await,
        None => state.api.apps.create(org, body.definition).await,
    };
    let saved = saved
        .map(|app| json!({"location": format!("/ui/applications/{}", app.id)}))
        .map_err(ApiError::from);
    Ok(answered(saved))
}

/// The editor's answer: what it asked for, `{"problems"}` for a 400, else the API's error.
fn answered(result: Result<Value, ApiError>) -> Response {
    match result {
        Ok(value) => Json(value).into_response(),
        Err(e) => {
            let body = e.body();
            let response = e.into_response();
            if response.status() != StatusCode::BAD_REQUEST {
                return response;
            }
            let problems: Vec<&str> = body["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["description"].as_str())
                .collect();
            Json(json!({ "problems": problems })).into_response()
        }
    }
}
