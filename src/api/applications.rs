//! The application routes: list (cursor paging), retrieve, synchronous generation (whole or
//! as a server-sent event stream), and the graph id list.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use serde::Deserialize;
use serde_json::json;
use utoipa::{IntoParams, ToSchema};

use super::extract::{Principal, WJson, WPath, WQuery};
use super::openapi;
use super::paging;
use super::views::{ApplicationListView, ApplicationView, GraphsView, ResultView};
use super::{ApiError, AppState, ErrorCode};
use crate::apps::{Application, InputError, Inputs};
use crate::engine::{PrepareError, Prepared, prepare};
use crate::files::rules::Refusal;
use crate::providers::{Caller, ProviderError};
use crate::report::Chain;
use crate::store::{OrgId, Priority};

/// The body of a generate request, sync or async: `{inputs: [{id, value}], stream?}`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct GenerateBody {
    /// Kept raw so that validation can name the input at fault.
    #[schema(schema_with = openapi::inputs)]
    pub(crate) inputs: Option<serde_json::Value>,
    /// Stream the answer as server-sent events.
    pub(crate) stream: Option<bool>,
}

/// The deployed application `id` as `org` sees it (its own, else a provisioned one), or a
/// 404 (also for a draft and for another organisation's application). Held in memory: no
/// database read once the organisation's applications are loaded.
pub(crate) async fn served_app(
    state: &AppState,
    org: &OrgId,
    id: &str,
) -> Result<Arc<Application>, ApiError> {
    state.apps.served(org, id).await?.ok_or_else(|| {
        ApiError::new(
            ErrorCode::ApplicationNotFound,
            format!("no application '{id}'"),
        )
    })
}

/// The inputs of a generate request, checked against `app` and, for file and media inputs,
/// against the files of `org` they name: every refusal is a 400 naming the input.
pub(crate) async fn checked_inputs(
    state: &AppState,
    org: &OrgId,
    app: &Application,
    raw: Option<&serde_json::Value>,
) -> Result<Inputs, ApiError> {
    refused_or_checked(state, org, app, raw)
        .await?
        .map_err(|e| ApiError::new(ErrorCode::InvalidInputs, e.message))
}

/// The same checks as [`checked_inputs`], for a batch's item, which fails alone: the inputs,
/// or why they are refused (the description naming the input, and the input it is about).
/// The outer error is the server's own (the store), never the item's.
pub(crate) async fn refused_or_checked(
    state: &AppState,
    org: &OrgId,
    app: &Application,
    raw: Option<&serde_json::Value>,
) -> Result<Result<Inputs, InputError>, ApiError> {
    let inputs = match app.validate_inputs(raw) {
        Ok(inputs) => inputs,
        Err(e) => return Ok(Err(e)),
    };
    match state.files.check_inputs(org, app, &inputs).await {
        Ok(()) => Ok(Ok(inputs)),
        Err(Refusal::Input(e)) => Ok(Err(e)),
        Err(Refusal::Store(e)) => Err(e.into()),
    }
}

/// The query of the applications list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// `asc` or `desc` (the default).
    order: Option<String>,
    /// Applications before this id.
    before: Option<String>,
    /// Applications after this id.
    after: Option<String>,
    /// Applications per page.
    limit: Option<u64>,
    /// Only `generation` is served.
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// `GET /v1/applications`: the deployed applications the caller's organisation sees (its
/// own and the provisioned ones) by creation time, newest first unless `order=asc`, paged
/// with `after`/`before` cursors (application ids).
#[utoipa::path(get, path = "/v1/applications", tag = "applications", params(ListQuery),
    responses((status = 200, description = "A page of applications.", body = ApplicationListView)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    WQuery(q): WQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = paging::limit(q.limit, paging::MAX_CURSOR_PAGE) as usize;
    let ascending = paging::ascending(q.order.as_deref())?;
    let mut apps: Vec<Arc<Application>> = match q.kind.as_deref() {
        None | Some("generation") => state.apps.listed(&principal.org).await?,
        Some(other) => {
            return Err(ApiError::new(
                ErrorCode::InvalidType,
                format!("unknown application type '{other}'; use generation"),
            ));
        }
    };
    if !ascending {
        apps.reverse();
    }
    let position = |id: &str| {
        apps.iter()
            .position(|a| a.id.as_str() == id)
            .ok_or_else(|| {
                ApiError::new(ErrorCode::InvalidCursor, format!("no application '{id}'"))
            })
    };
    let (after, before) = paging::cursors(q.after, q.before)?;
    let (start, end) = match (after.as_deref(), before.as_deref()) {
        (Some(after), _) => {
            let start = position(after)? + 1;
            (start, (start + limit).min(apps.len()))
        }
        (None, Some(before)) => {
            let end = position(before)?;
            (end.saturating_sub(limit), end)
        }
        (None, None) => (0, limit.min(apps.len())),
    };
    let has_more = if after.is_none() && before.is_some() {
        start > 0
    } else {
        end < apps.len()
    };
    let page = &apps[start..end];
    let view = ApplicationListView {
        data: page
            .iter()
            .map(|a| ApplicationView::from(a.as_ref()))
            .collect(),
        has_more,
        first_id: page.first().map(|a| a.id.as_str()),
        last_id: page.last().map(|a| a.id.as_str()),
    };
    Ok(Json(view).into_response())
}

/// `GET /v1/applications/{application_id}`.
#[utoipa::path(get, path = "/v1/applications/{application_id}", tag = "applications",
    params(("application_id" = String, Path, description = "The application's id.")),
    responses((status = 200, description = "The application.", body = ApplicationView)))]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
) -> Result<Response, ApiError> {
    let app = served_app(&state, &principal.org, &id).await?;
    Ok(Json(ApplicationView::from(app.as_ref())).into_response())
}

/// `POST /v1/applications/{application_id}`: generates now, whole or streamed.
#[utoipa::path(post, path = "/v1/applications/{application_id}", tag = "applications",
    params(("application_id" = String, Path, description = "The application's id.")), request_body = GenerateBody,
    responses(
        (status = 200, description = "The result; with `stream`, server-sent events instead \
            (`{\"delta\": ...}` pieces, an `error` event in Writer's error shape).",
            content((ResultView = "application/json"), (String = "text/event-stream"))),
    ))]
pub(crate) async fn generate(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
    WJson(body): WJson<GenerateBody>,
) -> Result<Response, ApiError> {
    let app = served_app(&state, &principal.org, &id).await?;
    let inputs = checked_inputs(&state, &principal.org, &app, body.inputs.as_ref()).await?;
    let prepared = prepare_now(&state, &principal.org, &app, &inputs).await?;
    if body.stream == Some(true) {
        let pieces = prepared.provider.stream(prepared.request).await;
        return Ok(Sse::new(sse_events(prepared.title, pieces)).into_response());
    }
    Ok(Json(complete(prepared).await?).into_response())
}

/// The provider request of a synchronous call of `app` by `org`: a person waits for its
/// answer, so it goes before queued jobs at the provider's gate.
pub(crate) async fn prepare_now(
    state: &AppState,
    org: &OrgId,
    app: &Application,
    inputs: &Inputs,
) -> Result<Prepared, ApiError> {
    let caller = Caller {
        key: uuid::Uuid::now_v7().to_string(),
        org: org.clone(),
        priority: Priority::High,
    };
    prepare(app, inputs, &state.files, &state.providers, caller)
        .await
        .map_err(prepare_error)
}

/// Sends a prepared request once and answers `{title, suggestion}`; a provider's error is
/// a 4xx/5xx in Writer's shape.
pub(crate) async fn complete(prepared: Prepared) -> Result<ResultView, ApiError> {
    match prepared.provider.complete(prepared.request).await {
        Ok(done) => Ok(ResultView {
            title: prepared.title,
            suggestion: done.text,
        }),
        Err(e) => Err(provider_error(&e)),
    }
}

/// What a synchronous generation answers when its request could not be made.
fn prepare_error(e: PrepareError) -> ApiError {
    match e {
        PrepareError::Unusable(message) => ApiError::new(ErrorCode::InvalidInputs, message),
        e @ PrepareError::NotYet(_) => {
            ApiError::new(ErrorCode::FilesNotReady, Chain(&e).to_string())
        }
        e @ PrepareError::Template(_) => {
            ApiError::new(ErrorCode::TemplateFailed, Chain(&e).to_string())
        }
        e @ PrepareError::NoProvider(_) => ApiError::new(ErrorCode::ProviderMissing, e.to_string()),
    }
}

/// Writer's stream: an optional title delta, content deltas, then `[DONE]`; a failure
/// mid-stream becomes an event named `error` carrying an error body, and ends the stream.
fn sse_events(
    title: Option<String>,
    pieces: BoxStream<'static, Result<String, ProviderError>>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    let title = stream::iter(title.map(|t| delta_event(json!({"title": t}))));
    let body = stream::unfold(Some(pieces), |open| async move {
        let mut pieces = open?;
        match pieces.next().await {
            Some(Ok(text)) => Some((delta_event(json!({"content": text})), Some(pieces))),
            Some(Err(e)) => Some((error_event(&e), None)),
            None => Some((Event::default().data("[DONE]"), None)),
        }
    });
    title.chain(body).map(Ok)
}

fn error_event(e: &ProviderError) -> Event {
    let body = ApiError::new(ErrorCode::ProviderFailed, e.to_string()).body();
    Event::default().event("error").data(body.to_string())
}

fn delta_event(delta: serde_json::Value) -> Event {
    Event::default().data(json!({ "delta": delta }).to_string())
}

fn provider_error(e: &ProviderError) -> ApiError {
    match e {
        ProviderError::Retryable { .. } => {
            ApiError::new(ErrorCode::ProviderUnavailable, e.to_string())
        }
        ProviderError::Fatal { .. } => ApiError::new(ErrorCode::ProviderRejected, e.to_string()),
    }
}

/// `GET /v1/applications/{application_id}/graphs`.
#[utoipa::path(get, path = "/v1/applications/{application_id}/graphs", tag = "applications",
    params(("application_id" = String, Path, description = "The application's id.")),
    responses((status = 200, description = "The graph ids.", body = GraphsView)))]
pub(crate) async fn graphs(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
) -> Result<Json<GraphsView>, ApiError> {
    let app = served_app(&state, &principal.org, &id).await?;
    let graph_ids = state.store.graphs(&principal.org, &app.id).await?;
    Ok(Json(GraphsView { graph_ids }))
}

/// The body of a graph list update.
#[derive(Deserialize, ToSchema)]
pub(crate) struct GraphsBody {
    graph_ids: Vec<String>,
}

/// A graph id in canonical form; graph ids are UUIDs.
pub(crate) fn graph_id(raw: &str) -> Result<String, ApiError> {
    let parsed = uuid::Uuid::parse_str(raw).map_err(|_| {
        ApiError::new(
            ErrorCode::InvalidGraphId,
            format!("graph id '{raw}' is not a UUID"),
        )
    })?;
    Ok(parsed.to_string())
}

/// `PUT /v1/applications/{application_id}/graphs`: replaces the list; ids must be UUIDs.
#[utoipa::path(put, path = "/v1/applications/{application_id}/graphs", tag = "applications",
    params(("application_id" = String, Path, description = "The application's id.")), request_body = GraphsBody,
    responses((status = 200, description = "The graph ids now.", body = GraphsView)))]
pub(crate) async fn set_graphs(
    State(state): State<AppState>,
    principal: Principal,
    WPath(id): WPath<String>,
    WJson(body): WJson<GraphsBody>,
) -> Result<Json<GraphsView>, ApiError> {
    let app = served_app(&state, &principal.org, &id).await?;
    let mut graph_ids = Vec::with_capacity(body.graph_ids.len());
    for raw in body.graph_ids {
        let id = graph_id(&raw)?;
        if !graph_ids.contains(&id) {
            graph_ids.push(id);
        }
    }
    state
        .store
        .set_graphs(&principal.org, &app.id, graph_ids.clone())
        .await?;
    Ok(Json(GraphsView { graph_ids }))
}
