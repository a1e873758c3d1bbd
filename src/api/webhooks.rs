//! The webhook routes (ours, NATIVE_API.md "Webhooks"): the organisation's signing secret and
//! its rotation, and the deliveries (events with every attempt), paged like jobs. A batch's
//! subscription is given at its create ([`WebhookRequest`]).

use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::extract::{Principal, WQuery};
use super::paging;
use super::views::PaginationView;
use super::{ApiError, AppState, ErrorCode};
use crate::store::{
    AttemptRecord, BatchId, DeliveryQuery, EventRecord, JobId, Subscription, rfc3339,
};

/// A batch create's `webhook`: where its events go and which ones.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebhookRequest {
    url: String,
    events: Option<Vec<String>>,
}

impl WebhookRequest {
    /// The checked subscription, or a 400 saying what is wrong.
    pub(crate) async fn check(&self, state: &AppState) -> Result<Subscription, ApiError> {
        state
            .webhooks
            .subscription(&self.url, self.events.as_deref())
            .await
            .map_err(|refused| ApiError::new(ErrorCode::InvalidWebhook, refused.0))
    }
}

/// `{"secret": "whsec_..."}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct SecretView {
    secret: String,
}

/// `GET /v1/scriptorium/webhooks/secret`: the organisation's signing secret, made on first use.
#[utoipa::path(get, path = "/v1/scriptorium/webhooks/secret", tag = "webhooks",
    responses((status = 200, description = "The signing secret.", body = SecretView)))]
pub(crate) async fn secret(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<SecretView>, ApiError> {
    let secret = state.webhooks.secret(&principal.org).await?;
    Ok(Json(SecretView { secret }))
}

/// `POST /v1/scriptorium/webhooks/secret/rotate`: a new signing secret, used from the next
/// attempt on (beside the old one, for a day).
#[utoipa::path(post, path = "/v1/scriptorium/webhooks/secret/rotate", tag = "webhooks",
    responses((status = 200, description = "The new signing secret.", body = SecretView)))]
pub(crate) async fn rotate(
    State(state): State<AppState>,
    principal: Principal,
) -> Result<Json<SecretView>, ApiError> {
    let secret = state.webhooks.rotate(&principal.org).await?;
    Ok(Json(SecretView { secret }))
}

/// The query of the deliveries list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeliveriesQuery {
    /// Only this batch's events.
    batch_id: Option<String>,
    /// Events to skip.
    offset: Option<u64>,
    /// Events per page.
    limit: Option<u64>,
}

/// An event with its attempts.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// The `webhook-id`.
    id: String,
    #[serde(rename = "type")]
    kind: &'static str,
    batch_id: BatchId,
    job_id: Option<JobId>,
    url: String,
    /// `pending`, `delivered` or `failed` (given up).
    status: &'static str,
    created_at: String,
    /// When the next attempt is due, while pending.
    next_attempt_at: Option<String>,
    attempts: Vec<AttemptView>,
}

/// One attempt: when, how long, and the receiver's status code or the error.
#[derive(Serialize, ToSchema)]
struct AttemptView {
    attempt: u32,
    at: String,
    duration_ms: u64,
    status_code: Option<u16>,
    error: Option<String>,
}

impl From<AttemptRecord> for AttemptView {
    fn from(a: AttemptRecord) -> Self {
        Self {
            attempt: a.attempt,
            at: rfc3339(a.at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            error: a.error,
        }
    }
}

impl From<EventRecord> for DeliveryView {
    fn from(e: EventRecord) -> Self {
        Self {
            id: e.id,
            kind: e.kind.as_str(),
            batch_id: e.batch_id,
            job_id: e.job_id,
            url: e.url,
            status: e.status.as_str(),
            created_at: rfc3339(e.created_at),
            next_attempt_at: e.next_attempt_at.map(rfc3339),
            attempts: e.attempts.into_iter().map(AttemptView::from).collect(),
        }
    }
}

/// A page of deliveries: `{result, totalCount, pagination: {offset, limit}}`.
#[derive(Serialize, ToSchema)]
pub(crate) struct DeliveryListView {
    result: Vec<DeliveryView>,
    #[serde(rename = "totalCount")]
    total_count: u64,
    pagination: PaginationView,
}

/// `GET /v1/scriptorium/webhooks/deliveries?batch_id=...`: the organisation's events (one
/// batch's, when `batch_id` is given; another organisation's batch is a 404), newest first,
/// each with every attempt.
#[utoipa::path(get, path = "/v1/scriptorium/webhooks/deliveries", tag = "webhooks",
    params(DeliveriesQuery),
    responses((status = 200, description = "A page of events with their attempts, newest first.",
        body = DeliveryListView)))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    principal: Principal,
    WQuery(query): WQuery<DeliveriesQuery>,
) -> Result<Json<DeliveryListView>, ApiError> {
    let batch_id = match query.batch_id.as_deref() {
        None | Some("") => None,
        Some(raw) => {
            let not_found = || ApiError::new(ErrorCode::BatchNotFound, format!("no batch {raw}"));
            let id = BatchId::parse(raw).ok_or_else(not_found)?;
            state
                .store
                .get_batch(&principal.org, id)
                .await?
                .ok_or_else(not_found)?;
            Some(id)
        }
    };
    let limit = paging::limit(query.limit, paging::MAX_JOBS_PAGE);
    let offset = paging::offset(query.offset);
    let page = state
        .store
        .outbox()
        .list_deliveries(DeliveryQuery {
            org: principal.org,
            batch_id,
            offset,
            limit,
        })
        .await?;
    Ok(Json(DeliveryListView {
        result: page.events.into_iter().map(DeliveryView::from).collect(),
        total_count: page.total,
        pagination: PaginationView { offset, limit },
    }))
}
