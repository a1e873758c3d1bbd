//! Batches: the latest of each application, and a batch's page (status, counts, progress,
//! ETA, the errors of items refused at create).

use axum::extract::{Path, State};
use axum::response::Html;
use minijinja::context;

use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::batches;
use crate::api::extract::{Principal, WPath};
use crate::api::views::BatchView;
use crate::store::BatchQuery;

/// Batches listed per application at most.
const PER_APP: u64 = 20;

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

/// `GET /ui/batches/{id}`: one batch of the organisation; another's is a 404.
pub(crate) async fn page(
    State(state): State<UiState>,
    user: LoggedIn,
    Path(id): Path<String>,
) -> Result<Html<String>, UiError> {
    let principal = Principal {
        org: user.session.org.clone(),
    };
    let batch = batches::retrieve(State(state.api.clone()), principal, WPath(id)).await?;
    Pages::page(
        &user,
        "/ui/batches",
        "Batch",
        "batch.html",
        context! { batch => batch.0 },
    )
}
