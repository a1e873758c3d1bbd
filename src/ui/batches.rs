//! Batches: the latest of each application, and a batch's page: its progress, counts and
//! ETA refreshed while it runs, its latest failures with their errors, the items refused at
//! create, cancel, "Retry failed", and its results as CSV or JSON Lines. Making a batch
//! from a file is [`super::upload`].
//!
//! Every action is the API's handler called for the session's organisation (another's
//! batch is its 404), so a batch changes here exactly as it does over the API.

use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{Html, Response};
use minijinja::{Value, context};

use super::jobs::{Plain, act};
use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::batches::{self, ResultsQuery};
use crate::api::extract::{WPath, WQuery};
use crate::api::views::{BatchResultView, BatchView};
use crate::store::{BatchId, BatchQuery, JobState, OrgId, ResultQuery};

/// Batches listed per application at most.
const PER_APP: u64 = 20;
/// Failed items a batch's page shows, the latest first.
const RECENT_FAILURES: u64 = 20;

/// `GET /ui/batches`: each application's latest batches, newest first.
pub(crate) async fn list(
    State(state): State<UiState>,
    user: LoggedIn,
) -> Result<Html<String>, UiError> {
    let org = &user.session.org;
    let mut shown = Vec::new();
    for app in state.api.apps.listed(org).await? {
        let query = BatchQuery {
            org: org.clone(),
            application_id: app.id.clone(),
            status: None,
            offset: 0,
            limit: PER_APP,
        };
        let page = state.api.store.list_batches(query).await?;
        shown.extend(page.batches.into_iter().map(BatchView::from));
    }
    Pages::page(
        &user,
        "/ui/batches",
        "Batches",
        "batches.html",
        context! { batches => shown },
    )
}

/// `GET /ui/batches/{id}`: one batch of the organisation (another's is a 404), its live
/// part inside.
pub(crate) async fn page(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let figures = figures(&state, &user, &id).await?;
    let app = figures
        .get_attr("batch")
        .and_then(|batch| batch.get_attr("application_id"))
        .unwrap_or_default();
    let live = Pages::fragment("batch_live.html", figures)?;
    Pages::page(
        &user,
        "/ui/batches",
        &format!("Batch of {app}"),
        "batch.html",
        context! { id, live => Value::from_safe_string(live.0) },
    )
}

/// `GET /ui/batches/{id}/live`: the part of a batch's page that changes while it runs,
/// which the page's script fetches again until the batch has finished.
pub(crate) async fn live(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    Pages::fragment("batch_live.html", figures(&state, &user, &id).await?)
}

/// The batch as the API shows it and its latest failed items.
async fn figures(state: &UiState, user: &LoggedIn, id: &str) -> Result<Value, UiError> {
    let org = &user.session.org;
    let principal = user.principal();
    let batch =
        batches::retrieve(State(state.api.clone()), principal, WPath(id.to_owned())).await?;
    let batch = serde_json::to_value(batch.0).unwrap_or_default();
    let failures = match BatchId::parse(id) {
        Some(id) => recent_failures(state, org, id).await?,
        None => Vec::new(),
    };
    let csrf = user.session.csrf.as_str();
    Ok(context! { batch, failures, csrf })
}

/// The batch's latest failed items (those refused at create among them), newest first.
async fn recent_failures(
    state: &UiState,
    org: &OrgId,
    id: BatchId,
) -> Result<Vec<serde_json::Value>, UiError> {
    let query = ResultQuery {
        org: org.clone(),
        batch_id: id,
        after: 0,
        state: Some(JobState::Failed),
        limit: RECENT_FAILURES,
        newest_first: true,
    };
    let items = state.api.store.batch_results(query).await?;
    Ok(items
        .iter()
        .filter_map(|item| serde_json::to_value(BatchResultView::from(item)).ok())
        .collect())
}

/// `POST /ui/batches/{id}/cancel`: the API's cancel (a finished batch is its 400), then
/// the batch's page.
pub(crate) async fn cancel(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, UiError> {
    let page = format!("/ui/batches/{id}");
    act(&user, &form, page, |principal| {
        batches::cancel(State(state.api.clone()), principal, WPath(id))
    })
    .await
}

/// `POST /ui/batches/{id}/retry`: the API's retry of the failed and cancelled items (none
/// to run again is its 400), then the batch's page.
pub(crate) async fn retry(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Form(form): Form<Plain>,
) -> Result<Response, UiError> {
    let page = format!("/ui/batches/{id}");
    act(&user, &form, page, |principal| {
        batches::retry(State(state.api.clone()), principal, WPath(id))
    })
    .await
}

/// `GET /ui/batches/{id}/results?format=csv|jsonl`: the API's results, streamed as it
/// streams them, as a download named after the batch.
pub(crate) async fn results(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
    Query(query): Query<ResultsQuery>,
) -> Result<Response, UiError> {
    let extension = match query.format.as_deref() {
        Some("csv") => "csv",
        _ => "jsonl",
    };
    let principal = user.principal();
    let mut response = batches::results(
        State(state.api.clone()),
        principal,
        WPath(id.clone()),
        WQuery(query),
    )
    .await?;
    let name = format!("attachment; filename=\"batch-{id}.{extension}\"");
    if let Ok(value) = HeaderValue::from_str(&name) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}
