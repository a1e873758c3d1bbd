//! The dashboard at `/ui/`: server-rendered pages for people, compiled into the binary.
//!
//! Every page is HTML rendered here from a minijinja template in `templates/` (each a body,
//! wrapped in `layout.html`, which holds the one `<nav>`), styled by one stylesheet and
//! given a little behaviour by one small script (`assets/ui.js`: the overview's and a
//! batch's polling, the editor's validation as you type, a batch file's upload,
//! confirmations). No node toolchain, nothing fetched at run time: `include_str!` puts the
//! templates and assets in the binary.
//!
//! The pages never hold business rules of their own and never call the server over HTTP:
//! they read and write through what the API's handlers use (the [`Catalog`], the store, the
//! input checks and previews of `api::applications`, the handlers themselves where their
//! arguments can be built) and show the API's own views, so a job looks the same here as on
//! the wire. Every page is scoped to the organisation of the session ([`session`]); another
//! organisation's job, batch or application is a 404 here as it is in the API.
//!
//! Sections, one module each: [`overview`] (its [`charts`] drawn from the per-minute figures
//! the [`rollup`] task writes), [`applications`] (with the [`editor`]), [`job_list`] and
//! [`jobs`], [`batches`] (with the [`upload`] of a batch file); [`login`] opens and closes
//! sessions, kept in the store ([`session`]); [`pages`] renders.
//!
//! [`Catalog`]: crate::apps::Catalog

mod applications;
mod batches;
mod charts;
mod editor;
mod job_list;
mod jobs;
mod login;
mod overview;
mod pages;
pub(crate) mod rollup;
mod session;
mod upload;

use std::sync::Arc;

use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::{ApiError, AppState};
use pages::Pages;
use session::Sessions;

/// What every page can reach: the API's parts and the sessions.
#[derive(Clone)]
pub(crate) struct UiState {
    /// The parts the API's handlers use.
    api: AppState,
    /// Who is logged in (sessions in the store, cached for a moment).
    sessions: Arc<Sessions>,
}

/// The dashboard's routes, all under `/ui`, ready to merge into the API's router.
pub(crate) fn router<S>(api: AppState) -> Router<S> {
    let sessions = Arc::new(Sessions::new(api.store.clone()));
    let state = UiState { api, sessions };
    Router::new()
        .route("/ui", get(|| async { Redirect::permanent("/ui/") }))
        .route("/ui/", get(overview::page))
        .route("/ui/overview/live", get(overview::live))
        .route("/ui/login", get(login::form).post(login::log_in))
        .route("/ui/logout", post(login::log_out))
        .route("/ui/assets/style.css", get(style))
        .route("/ui/assets/ui.js", get(script))
        .route("/ui/applications", get(applications::list))
        .route("/ui/applications/new", get(editor::new))
        .route("/ui/applications/{id}", get(applications::page))
        .route("/ui/applications/{id}/run", post(applications::run))
        .route("/ui/applications/{id}/edit", get(editor::edit))
        .route(
            "/ui/applications/{id}/versions/{version}/restore",
            post(applications::restore),
        )
        .route("/ui/editor/preview", post(editor::preview))
        .route("/ui/editor/save", post(editor::save))
        .route("/ui/jobs", get(job_list::list))
        .route("/ui/jobs/retry-failed", post(job_list::retry_failed))
        .route("/ui/jobs/{id}", get(jobs::page))
        .route("/ui/jobs/{id}/retry", post(jobs::retry))
        .route("/ui/jobs/{id}/cancel", post(jobs::cancel))
        .route("/ui/batches", get(batches::list))
        .route("/ui/batches/new", get(upload::new))
        .route("/ui/batches/upload", post(upload::upload))
        .route("/ui/batches/start", post(upload::start))
        .route("/ui/batches/{id}", get(batches::page))
        .route("/ui/batches/{id}/live", get(batches::live))
        .route("/ui/batches/{id}/cancel", post(batches::cancel))
        .route("/ui/batches/{id}/retry", post(batches::retry))
        .route("/ui/batches/{id}/results", get(batches::results))
        .layer(axum::middleware::map_response(guarded))
        .with_state(state)
}

/// Every answer of the dashboard: its scripts and styles only from here (no inline script
/// runs), never framed by another site, never cached when it is a page (it is one person's).
async fn guarded(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", include_str!("assets/style.css"))
}

async fn script() -> Response {
    asset(
        "text/javascript; charset=utf-8",
        include_str!("assets/ui.js"),
    )
}

/// A compiled-in asset; browsers may keep it for an hour.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        body,
    )
        .into_response()
}

/// Why a page could not be shown: an error page for a person, with the status an API client
/// would have had.
#[derive(Debug)]
pub(crate) enum UiError {
    /// What the API would have answered (a 400 naming the field, a 404, a 503 ...).
    Api(ApiError),
    /// A request refused as cross-site, or a form without its session's token (403).
    Forbidden(&'static str),
}

impl From<ApiError> for UiError {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl From<crate::store::StoreError> for UiError {
    fn from(e: crate::store::StoreError) -> Self {
        Self::Api(e.into())
    }
}

impl From<crate::apps::CatalogError> for UiError {
    fn from(e: crate::apps::CatalogError) -> Self {
        Self::Api(e.into())
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        let (status, messages) = match self {
            Self::Forbidden(why) => (StatusCode::FORBIDDEN, vec![why.to_owned()]),
            Self::Api(e) => {
                let messages = e.body()["errors"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|d| d["description"].as_str().map(str::to_owned))
                    .collect();
                (e.into_response().status(), messages)
            }
        };
        let html = Pages::error(status, &messages);
        (status, html).into_response()
    }
}
