//! A batch from a file, in three steps: choose the application and a `.csv` or `.jsonl`
//! file (the page's script sends it to [`upload`], which is `POST /v1/files`); see the
//! check ([`new`] with the file's id: how its columns map to the inputs, how many items
//! are good, the bad ones with their row, column and error); then "Start batch" ([`start`],
//! which is `POST /v1/applications/{id}/batches` with that `file_id`).
//!
//! The check is the create run dry ([`batches::check`]): the same readers and the same
//! checks, nothing stored. Nothing exists but the uploaded file until Start.

use axum::body::Body;
use axum::extract::{Extension, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use minijinja::context;
use serde::Deserialize;
use serde_json::json;

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::batches::{self, BodyLimit};
use crate::api::extract::{WPath, WQuery};
use crate::api::files;
use crate::api::views::{FileView, StoredApplicationView};
use crate::api::{ApiError, ErrorCode};
use crate::store::FileId;

/// What the page was asked for: the application chosen and, once uploaded, the file.
#[derive(Deserialize)]
pub(crate) struct Chosen {
    application: Option<String>,
    file_id: Option<String>,
}

/// `GET /ui/batches/new`: the upload form; with `file_id`, the file's check and the form
/// that starts the batch.
pub(crate) async fn new(
    State(state): State<UiState>,
    user: LoggedIn,
    Query(chosen): Query<Chosen>,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let apps = state.api.apps.listed(org).await?;
    let nonempty = |v: Option<String>| v.filter(|v| !v.is_empty());
    let application = nonempty(chosen.application).or_else(|| Some(apps.first()?.id.to_string()));
    let file_id = nonempty(chosen.file_id);
    let (app, file, check) = match (&application, &file_id) {
        (Some(id), Some(file_id)) => {
            let check = batches::check(&state.api, org, id, file_id).await?;
            let file = match FileId::parse(file_id) {
                Some(file_id) => state.api.files.get(org, file_id).await?,
                None => None,
            };
            let app = state.api.apps.find(org, id).await?;
            (app, file.map(FileView::from), Some(check))
        }
        _ => (None, None, None),
    };
    let apps: Vec<_> = apps
        .iter()
        .map(|a| StoredApplicationView::from(a.as_ref()))
        .collect();
    let app = app.as_deref().map(StoredApplicationView::from);
    Pages::page(
        &user,
        "/ui/batches",
        "New batch",
        "batch_new.html",
        context! { apps, application, app, file, file_id, check },
    )
}

/// `POST /ui/batches/upload`: `POST /v1/files` for the session's organisation (the script's
/// `X-CSRF-Token` checked first): the body is the file, named by `Content-Disposition`;
/// the answer is the API's (the file, or its error).
pub(crate) async fn upload(
    State(state): State<UiState>,
    user: LoggedIn,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, UiError> {
    user.check_header(&headers)?;
    let principal = user.principal();
    let query = WQuery(files::UploadQuery::default());
    let uploaded = files::upload(State(state.api.clone()), principal, query, headers, body).await;
    // The script shows the API's own error, in its shape and with its status.
    Ok(uploaded.unwrap_or_else(IntoResponse::into_response))
}

/// The start form: the file checked, the application, and whether a bad row refuses all.
#[derive(Deserialize)]
pub(crate) struct Start {
    csrf: String,
    application: String,
    file_id: String,
    strict: Option<String>,
}

/// `POST /ui/batches/start`: creates the batch from the file, exactly as the API's create
/// with `{file_id, strict}` does, and shows it.
pub(crate) async fn start(
    State(state): State<UiState>,
    user: LoggedIn,
    Form(form): Form<Start>,
) -> Result<Response, UiError> {
    user.check(&form.csrf)?;
    let body = json!({"file_id": form.file_id, "strict": form.strict.is_some()}).to_string();
    let mut headers = HeaderMap::new();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let principal = user.principal();
    let (_, Json(batch)) = batches::create(
        State(state.api.clone()),
        principal,
        WPath(form.application),
        Extension(BodyLimit(body.len())),
        headers,
        Body::from(body),
    )
    .await?;
    let batch = serde_json::to_value(batch)
        .map_err(|e| ApiError::new(ErrorCode::Internal, e.to_string()))?;
    let id = batch["id"].as_str().unwrap_or_default();
    Ok(Redirect::to(&format!("/ui/batches/{id}")).into_response())
}
