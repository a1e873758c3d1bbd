//! Stopping and restarting a batch: cancel (202; its waiting items at once, its running
//! items' calls aborted) and retry (202; its failed and cancelled items run again).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::batch_id;
use crate::api::extract::{Principal, WPath};
use crate::api::views::BatchView;
use crate::api::{ApiError, AppState, ErrorCode};
use crate::store::{BatchRetryOutcome, CancelOutcome};

/// `POST /v1/applications/batches/{batch_id}/cancel`: the batch, `cancelling` while its
/// running items are being aborted, then `cancelled`. A finished batch is a 400.
#[utoipa::path(post, path = "/v1/applications/batches/{batch_id}/cancel", tag = "batches", params(("batch_id" = String, Path, description = "The batch's id.")),
    responses((status = 202, description = "Cancelled, or cancelling while running items are aborted.", body = BatchView)))]
pub(crate) async fn cancel(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<(StatusCode, Json<BatchView>), ApiError> {
    let id = batch_id(&raw)?;
    match state.store.cancel_batch(&principal.org, id).await? {
        CancelOutcome::Cancelled(batch) => Ok((StatusCode::ACCEPTED, Json(batch.into()))),
        CancelOutcome::NotFound => Err(super::not_found(&raw)),
        CancelOutcome::Finished => Err(ApiError::new(
            ErrorCode::BatchFinished,
            format!("batch {id} has finished; there is nothing to cancel"),
        )),
    }
}

/// `POST /v1/applications/batches/{batch_id}/retry`: its failed and cancelled items (not
/// those refused at create) run again, each as a new series of attempts; a 400 when there is
/// none.
#[utoipa::path(post, path = "/v1/applications/batches/{batch_id}/retry", tag = "batches", params(("batch_id" = String, Path, description = "The batch's id.")),
    responses((status = 202, description = "Its failed and cancelled items queued again.", body = BatchView)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<(StatusCode, Json<BatchView>), ApiError> {
    let id = batch_id(&raw)?;
    match state.store.retry_batch(&principal.org, id).await? {
        BatchRetryOutcome::Requeued(_, batch) => Ok((StatusCode::ACCEPTED, Json(batch.into()))),
        BatchRetryOutcome::NotFound => Err(super::not_found(&raw)),
        BatchRetryOutcome::NothingToRetry => Err(ApiError::new(
            ErrorCode::BatchNothingToRetry,
            format!(
                "batch {id} has no failed or cancelled item to run again (items refused at \
                 create never run: create them again with valid inputs)"
            ),
        )),
    }
}
