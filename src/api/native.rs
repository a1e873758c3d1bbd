//! scriptorium's own routes, beside Writer's: what operators need to see.

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AppState;
use super::extract::Principal;
use crate::providers::BackendView;

/// `{"providers": [...]}`.
#[derive(Serialize)]
pub(crate) struct ProvidersView {
    providers: Vec<BackendView>,
}

/// `GET /v1/scriptorium/providers`: each provider's limits, load, 429 pause, circuit state,
/// errors by class and tokens used.
pub(crate) async fn providers(State(state): State<AppState>, _: Principal) -> Json<ProvidersView> {
    Json(ProvidersView {
        providers: state.providers.views(),
    })
}
