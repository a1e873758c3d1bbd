//! scriptorium's own routes, beside Writer's: what operators need to see.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use super::AppState;
use super::extract::Principal;
use crate::providers::BackendView;

/// `{"providers": [...]}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ProvidersView {
    providers: Vec<BackendView>,
}

/// `GET /v1/scriptorium/providers`: each provider's limits, load, 429 pause, circuit state,
/// errors by class, tokens used, backpressure, and its recent calls' latencies and throughputs.
#[utoipa::path(get, path = "/v1/scriptorium/providers", tag = "scriptorium",
    responses((status = 200, description = "Each provider's gate and recent figures.", body = ProvidersView)))]
pub(crate) async fn providers(State(state): State<AppState>, _: Principal) -> Json<ProvidersView> {
    Json(ProvidersView {
        providers: state.providers.views(),
    })
}

/// `{"extracting", "extracting_peak", "extract_concurrency"}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct ExtractionView {
    extracting: usize,
    extracting_peak: usize,
    extract_concurrency: usize,
}

/// `GET /v1/scriptorium/files`: this node's text extraction: files being extracted now, the
/// most at once since it started, and its limit.
#[utoipa::path(get, path = "/v1/scriptorium/files", tag = "scriptorium",
    responses((status = 200, description = "This node's text extraction.", body = ExtractionView)))]
pub(crate) async fn files(State(state): State<AppState>, _: Principal) -> Json<ExtractionView> {
    let (extracting, extracting_peak, extract_concurrency) = state.files.extraction_load();
    Json(ExtractionView {
        extracting,
        extracting_peak,
        extract_concurrency,
    })
}
