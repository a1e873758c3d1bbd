//! The batch routes (ours, NATIVE_API.md "Batches"): create (202), retrieve, list with offset
//! paging like jobs.
//!
//! A batch's items are checked one by one with the very checks a single job gets
//! ([`refused_or_checked`]); an item that fails them is stored as a failed job with the
//! check's message and is named in the batch's `errors`, unless `strict` refuses the whole
//! request. Every item is then written in one store call, so the 202 means every item is
//! durable.

use std::collections::HashSet;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::applications::{refused_or_checked, served_app};
use super::extract::{Principal, WJson, WPath, WQuery};
use super::jobs::priority;
use super::paging;
use super::views::{BatchListView, BatchView, PaginationView};
use super::{ApiError, AppState, ErrorCode, WebhookRequest};
use crate::store::{BatchId, BatchItem, BatchQuery, BatchStatus, JobId, NewBatch, Priority};

/// Characters a `custom_id` may have at most.
const MAX_CUSTOM_ID: usize = 255;
/// Refused items a batch names in its `errors` (and a strict refusal in its answer) at most.
const MAX_ERRORS: usize = 100;

/// The body of a batch create.
#[derive(Deserialize)]
pub(crate) struct CreateBatchRequest {
    items: Option<Vec<ItemRequest>>,
    file_id: Option<String>,
    #[serde(default)]
    strict: bool,
    metadata: Option<Map<String, Value>>,
    priority: Option<String>,
    webhook: Option<WebhookRequest>,
}

/// One item: `{custom_id?, inputs}`, the inputs as a job create takes them.
#[derive(Deserialize)]
struct ItemRequest {
    custom_id: Option<String>,
    /// Kept raw, as for a job, so that a refusal can name the input at fault.
    inputs: Option<Value>,
}

/// `POST /v1/applications/{application_id}/batches`: checks every item, stores the batch and
/// all its items in one transaction, and answers 202 with the batch once they are durable.
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    WPath(application_id): WPath<String>,
    headers: HeaderMap,
    WJson(body): WJson<CreateBatchRequest>,
) -> Result<(StatusCode, Json<BatchView>), ApiError> {
    let app = served_app(&state, &principal.org, &application_id).await?;
    let invalid = |message: &str| ApiError::new(ErrorCode::InvalidBatch, message);
    if body.file_id.is_some() {
        return Err(invalid(
            "batches from an uploaded file (file_id) are not supported yet; send items",
        ));
    }
    let items = match body.items {
        Some(items) if !items.is_empty() => items,
        _ => return Err(invalid("send items: a list of {custom_id?, inputs}")),
    };
    let priority = match body.priority.as_deref() {
        Some(name) => Priority::parse(name).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidPriority,
                "priority must be high, normal or low",
            )
        })?,
        None => priority(&headers)?.unwrap_or(app.priority),
    };
    let custom_ids = custom_ids(&items)?;
    let webhook = match &body.webhook {
        Some(webhook) => Some(webhook.check(&state).await?),
        None => None,
    };

    let mut refusals = Vec::new();
    let mut checked = Vec::with_capacity(items.len());
    for (item, custom_id) in items.into_iter().zip(custom_ids) {
        let raw = item.inputs.as_ref();
        let (inputs, refused) = match refused_or_checked(&state, &principal.org, &app, raw).await? {
            Ok(inputs) => (json_text(&inputs)?, None),
            Err(message) => {
                if refusals.len() < MAX_ERRORS {
                    refusals.push((custom_id.clone(), message.clone()));
                }
                let sent = raw.map_or_else(|| "null".to_owned(), Value::to_string);
                (sent, Some(message))
            }
        };
        checked.push(BatchItem {
            id: JobId::generate(),
            custom_id,
            inputs,
            refused,
        });
    }
    if body.strict && !refusals.is_empty() {
        let descriptions = refusals
            .into_iter()
            .map(|(custom_id, message)| format!("item '{custom_id}': {message}"))
            .collect();
        return Err(ApiError::many(ErrorCode::InvalidInputs, descriptions));
    }
    let errors: Vec<Value> = refusals
        .into_iter()
        .map(|(custom_id, description)| json!({"custom_id": custom_id, "description": description}))
        .collect();
    let batch = NewBatch {
        id: BatchId::generate(),
        org: principal.org,
        application_id: app.id.clone(),
        application_version: app.version,
        retry: app.retry,
        priority,
        metadata: json_text(&body.metadata.unwrap_or_default())?,
        errors: json_text(&errors)?,
        webhook,
        items: checked,
    };
    let stored = state.store.insert_batch(batch).await?;
    Ok((StatusCode::ACCEPTED, Json(stored.into())))
}

/// Each item's `custom_id`, its 1-based position when it has none; a 400 naming the first
/// that is empty, too long, or already taken by an earlier item.
fn custom_ids(items: &[ItemRequest]) -> Result<Vec<String>, ApiError> {
    let mut seen = HashSet::with_capacity(items.len());
    let mut ids = Vec::with_capacity(items.len());
    for (at, item) in items.iter().enumerate() {
        let id = match &item.custom_id {
            Some(id) if id.is_empty() || id.chars().count() > MAX_CUSTOM_ID => {
                return Err(ApiError::new(
                    ErrorCode::InvalidCustomId,
                    format!(
                        "item {}: custom_id must be 1 to {MAX_CUSTOM_ID} characters",
                        at + 1
                    ),
                ));
            }
            Some(id) => id.clone(),
            None => (at + 1).to_string(),
        };
        if !seen.insert(id.clone()) {
            return Err(ApiError::new(
                ErrorCode::InvalidCustomId,
                format!(
                    "item {}: custom_id '{id}' is already used in this batch",
                    at + 1
                ),
            ));
        }
        ids.push(id);
    }
    Ok(ids)
}

fn json_text(value: &impl serde::Serialize) -> Result<String, ApiError> {
    serde_json::to_string(value).map_err(|e| ApiError::new(ErrorCode::InvalidInputs, e.to_string()))
}

/// `GET /v1/applications/batches/{batch_id}`: the batch with its exact counts.
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<Json<BatchView>, ApiError> {
    let not_found = || ApiError::new(ErrorCode::BatchNotFound, format!("no batch {raw}"));
    let id = BatchId::parse(&raw).ok_or_else(not_found)?;
    match state.store.get_batch(&principal.org, id).await? {
        Some(batch) => Ok(Json(batch.into())),
        None => Err(not_found()),
    }
}

/// The query of the batches list.
#[derive(Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    offset: Option<u64>,
    limit: Option<u64>,
}

/// `GET /v1/applications/{application_id}/batches`: newest first, paged as jobs are.
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    WPath(application_id): WPath<String>,
    WQuery(query): WQuery<ListQuery>,
) -> Result<Json<BatchListView>, ApiError> {
    let app = served_app(&state, &principal.org, &application_id).await?;
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(BatchStatus::parse(s).ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidStatus,
                format!("unknown status '{s}'; use in_progress or completed"),
            )
        })?),
    };
    let limit = paging::limit(query.limit, paging::MAX_JOBS_PAGE);
    let offset = paging::offset(query.offset);
    let page = state
        .store
        .list_batches(BatchQuery {
            org: principal.org,
            application_id: app.id.clone(),
            status,
            offset,
            limit,
        })
        .await?;
    Ok(Json(BatchListView {
        result: page.batches.into_iter().map(BatchView::from).collect(),
        total_count: page.total,
        pagination: PaginationView { offset, limit },
    }))
}
