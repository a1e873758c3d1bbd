//! The routes for load balancers, orchestrators and scrapers, none of which carries an API
//! key: `/healthz` (the process answers), `/readyz` (it can serve: database, schema,
//! providers) and `/metrics` (Prometheus text).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use serde::Serialize;
use utoipa::ToSchema;

use super::{ApiError, AppState, ErrorCode};
use crate::report::Chain;

/// How long readiness waits for the database before calling it unreachable.
const DATABASE_TIMEOUT: Duration = Duration::from_secs(2);

/// `{"status": "ok"}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct HealthView {
    /// Always `ok`.
    status: &'static str,
}

/// Whether the server can serve, and each check that says so.
#[derive(Serialize, ToSchema)]
pub(crate) struct ReadyView {
    /// `ready` (200) or `unready` (503).
    status: &'static str,
    /// `database`, `migrations` and `providers`, each with its outcome.
    checks: BTreeMap<&'static str, CheckView>,
}

/// One readiness check.
#[derive(Serialize, ToSchema)]
pub(crate) struct CheckView {
    /// Whether it passed.
    ok: bool,
    /// What it found (a failure's cause, the schema versions, the providers).
    detail: String,
}

impl CheckView {
    fn new(ok: bool, detail: impl Into<String>) -> Self {
        Self {
            ok,
            detail: detail.into(),
        }
    }
}

/// `GET /healthz`: the process answers; nothing else is checked.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, description = "The process answers.", body = HealthView)))]
pub(crate) async fn health() -> Json<HealthView> {
    Json(HealthView { status: "ok" })
}

/// `GET /readyz`: 200 when the database answers within 2 s, has every migration this build
/// knows applied (or later ones, from a newer node), and at least one provider is
/// configured; 503 naming the check that failed otherwise.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses(
        (status = 200, description = "Every check passed.", body = ReadyView),
        (status = 503, description = "A check failed; `checks` says which.", body = ReadyView),
    ))]
pub(crate) async fn ready(State(state): State<AppState>) -> (StatusCode, Json<ReadyView>) {
    let mut checks = BTreeMap::new();
    let schema = tokio::time::timeout(DATABASE_TIMEOUT, state.store.schema_version()).await;
    let (database, migrations) = match schema {
        Ok(Ok(v)) => (
            CheckView::new(true, "answers"),
            CheckView::new(
                v.applied >= v.expected,
                format!("{} of {} applied", v.applied, v.expected),
            ),
        ),
        Ok(Err(e)) => (
            CheckView::new(false, Chain(&e).to_string()),
            CheckView::new(false, "unknown: the database did not answer"),
        ),
        Err(_) => (
            CheckView::new(false, format!("no answer within {DATABASE_TIMEOUT:?}")),
            CheckView::new(false, "unknown: the database did not answer"),
        ),
    };
    let names = state.providers.names();
    let providers = CheckView::new(!names.is_empty(), names.join(", "));
    checks.insert("database", database);
    checks.insert("migrations", migrations);
    checks.insert("providers", providers);
    let ok = checks.values().all(|c| c.ok);
    if !ok {
        tracing::warn!(checks = ?failed(&checks), "not ready");
    }
    let (status, word) = if ok {
        (StatusCode::OK, "ready")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "unready")
    };
    (
        status,
        Json(ReadyView {
            status: word,
            checks,
        }),
    )
}

fn failed(checks: &BTreeMap<&'static str, CheckView>) -> Vec<&'static str> {
    checks
        .iter()
        .filter(|(_, c)| !c.ok)
        .map(|(name, _)| *name)
        .collect()
}

/// `GET /metrics`: every family in Prometheus' text format (see `docs/operations.md`).
#[utoipa::path(get, path = "/metrics", tag = "operations", security(()),
    responses((status = 200, description = "Prometheus text format 0.0.4.", body = String,
        content_type = "text/plain")))]
pub(crate) async fn metrics(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    match state
        .metrics
        .render(state.store.as_ref(), &state.providers)
        .await
    {
        Ok(text) => Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text)),
        Err(crate::metrics::ScrapeError::Store(e)) => Err(e.into()),
        Err(e) => {
            tracing::error!(cause = %Chain(&e), "metrics scrape failed");
            Err(ApiError::new(ErrorCode::Internal, "internal server error"))
        }
    }
}
