//! The HTTP surface: Writer's applications and files APIs, byte for byte where the SDKs look, plus
//! scriptorium's own routes (batches; `/v1/scriptorium/...`: applications as data, webhooks'
//! secrets and deliveries, operators' views) and the operators' routes: `/healthz`, `/readyz`,
//! `/metrics` and `/openapi.json`, the OpenAPI document of every route, derived from the
//! handlers' annotations ([`openapi`]).
//!
//! Handlers parse, authenticate and validate, then talk to the store (async jobs) or, for
//! synchronous generation only, to a provider. Every error leaves through [`ApiError`] in
//! Writer's shape, including malformed bodies, unknown paths and wrong methods.

pub(crate) mod applications;
pub(crate) mod batches;
pub(crate) mod definitions;
mod error;
pub(crate) mod extract;
pub(crate) mod files;
pub(crate) mod jobs;
mod native;
mod openapi;
mod ops;
pub(crate) mod paging;
pub(crate) mod requests;
mod text;
pub(crate) mod views;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Extension};
use axum::handler::Handler;
use axum::middleware;
use axum::routing::{get, post};

pub(crate) use error::{ApiError, ErrorCode};
pub(crate) use text::refuse_unstorable;
pub(crate) use views::{BatchView, JobView};
pub(crate) use webhooks::WebhookRequest;

use crate::apps::Catalog;
use crate::auth::Keys;
use crate::files::Files;
use crate::metrics::{self, Metrics};
use crate::providers::Providers;
use crate::store::Store;
use crate::webhooks::Webhooks;

/// What every handler can reach. Cloning is one reference count: axum clones it for every
/// request.
#[derive(Clone)]
pub(crate) struct AppState(Arc<Parts>);

impl AppState {
    /// The state over these parts.
    pub(crate) fn new(parts: Parts) -> Self {
        Self(Arc::new(parts))
    }
}

impl std::ops::Deref for AppState {
    type Target = Parts;

    fn deref(&self) -> &Parts {
        &self.0
    }
}

/// The parts of [`AppState`].
pub(crate) struct Parts {
    /// Durable state.
    pub(crate) store: Arc<dyn Store>,
    /// The applications: provisioned, and each organisation's own.
    pub(crate) apps: Arc<Catalog>,
    /// The model providers, for synchronous generation.
    pub(crate) providers: Arc<Providers>,
    /// The key checker.
    pub(crate) keys: Arc<Keys>,
    /// Uploaded files.
    pub(crate) files: Files,
    /// What `/metrics` answers; the HTTP layer and the engine observe into it.
    pub(crate) metrics: Arc<Metrics>,
    /// Webhook subscriptions and secrets.
    pub(crate) webhooks: Arc<Webhooks>,
}

/// The whole router. Request bodies over `max_body_bytes` answer 413, except uploads, which
/// read their raw body themselves and are held to the files' own limit, and batch creates,
/// which stream theirs and are held to `max_batch_bytes`.
pub(crate) fn router(state: AppState, max_body_bytes: usize, max_batch_bytes: usize) -> Router {
    Router::new()
        .route("/v1/files", get(files::list).post(files::upload))
        .route("/v1/files/retry", post(files::retry))
        .route(
            "/v1/files/{file_id}",
            get(files::retrieve).delete(files::delete),
        )
        .route("/v1/files/{file_id}/download", get(files::download))
        .route("/v1/applications", get(applications::list))
        .route(
            "/v1/applications/{application_id}",
            get(applications::retrieve).post(applications::generate),
        )
        .route(
            "/v1/applications/{application_id}/jobs",
            get(jobs::list).post(jobs::create),
        )
        .route("/v1/applications/jobs/{job_id}", get(jobs::retrieve))
        .route(
            "/v1/applications/{application_id}/batches",
            get(batches::list)
                .post(batches::create.layer(Extension(batches::BodyLimit(max_batch_bytes)))),
        )
        .route(
            "/v1/applications/batches/{batch_id}",
            get(batches::retrieve),
        )
        .route(
            "/v1/applications/batches/{batch_id}/results",
            get(batches::results),
        )
        .route(
            "/v1/applications/batches/{batch_id}/cancel",
            post(batches::cancel),
        )
        .route(
            "/v1/applications/batches/{batch_id}/retry",
            post(batches::retry),
        )
        .route("/v1/applications/jobs/{job_id}/retry", post(jobs::retry))
        .route("/v1/applications/jobs/{job_id}/cancel", post(jobs::cancel))
        .route(
            "/v1/applications/{application_id}/graphs",
            get(applications::graphs).put(applications::set_graphs),
        )
        .route("/v1/scriptorium/applications", post(definitions::create))
        .route(
            "/v1/scriptorium/applications/preview",
            post(definitions::preview),
        )
        .route(
            "/v1/scriptorium/applications/{application_id}",
            get(definitions::retrieve)
                .put(definitions::replace)
                .delete(definitions::delete),
        )
        .route(
            "/v1/scriptorium/applications/{application_id}/versions",
            get(definitions::versions),
        )
        .route(
            "/v1/scriptorium/applications/{application_id}/versions/{version}/restore",
            post(definitions::restore),
        )
        .route("/v1/scriptorium/providers", get(native::providers))
        .route("/v1/scriptorium/files", get(native::files))
        .route("/v1/scriptorium/webhooks/secret", get(webhooks::secret))
        .route(
            "/v1/scriptorium/webhooks/secret/rotate",
            post(webhooks::rotate),
        )
        .route(
            "/v1/scriptorium/webhooks/deliveries",
            get(webhooks::deliveries),
        )
        .route("/healthz", get(ops::health))
        .route("/readyz", get(ops::ready))
        .route("/metrics", get(ops::metrics))
        .route("/openapi.json", get(openapi::document))
        .merge(crate::ui::router(state.clone()))
        .fallback(error::unknown_path)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            state.metrics.clone(),
            metrics::http::observe,
        ))
        .with_state(state)
}
