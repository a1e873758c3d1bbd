//! `POST /v1/applications/{application_id}/batches`: a batch from inline `items` or from an
//! uploaded `.jsonl` or `.csv` file (`file_id`).
//!
//! The body is written to a temporary file as it arrives, then read back as a stream on a
//! blocking thread ([`sources::body`]); its items go to the [`Intake`] as they are parsed,
//! and from it to the store in chunks, in one transaction that commits only once the last
//! item is in. With a `file_id`, the file's bytes are streamed from blob storage the same
//! way. Memory stays flat whatever the batch's size; the 202 comes once every item is
//! durable, and a failure anywhere leaves nothing written.

use axum::Json;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, StatusCode, header};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use super::super::applications::served_app;
use super::super::extract::{Principal, WPath, json_content_type};
use super::super::files::{spooled, upload_error};
use super::super::jobs::priority;
use super::super::views::BatchView;
use super::super::{ApiError, AppState, ErrorCode};
use super::intake::{Intake, panicked};
use super::sources::body::CreateBatchRequest;
use super::sources::{Chunk, ChunkReader, body, jsonl, table};
use crate::store::{FileId, OrgId};

/// The largest body a batch create takes, in bytes (`--max-batch-mb`).
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit(pub(crate) usize);

/// The formats a batch file may have, by its name's extension.
#[derive(Clone, Copy)]
enum Format {
    /// `.jsonl` (or `.ndjson`): one item object per line.
    JsonLines,
    /// `.csv`: a header row naming the inputs, then one row per item.
    Csv,
}

/// The route: see the module's doc.
#[utoipa::path(post, path = "/v1/applications/{application_id}/batches", tag = "batches",
    params(("application_id" = String, Path, description = "The application's id."),
        ("Scriptorium-Priority" = Option<String>, Header, description = "`high`, `normal` or `low`.")),
    request_body = CreateBatchRequest,
    responses((status = 202, description = "Stored with all its items.", body = BatchView)))]
pub(crate) async fn create(
    State(state): State<AppState>,
    principal: Principal,
    WPath(application_id): WPath<String>,
    Extension(limit): Extension<BodyLimit>,
    headers: HeaderMap,
    request: Body,
) -> Result<(StatusCode, Json<BatchView>), ApiError> {
    if !json_content_type(&headers) {
        return Err(ApiError::new(
            ErrorCode::ContentType,
            "send the body as JSON, with Content-Type: application/json",
        ));
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|length| length > limit.0) {
        return Err(too_large());
    }
    let app = served_app(&state, &principal.org, &application_id).await?;
    let priority = priority(&headers)?.unwrap_or(app.priority);
    let org = principal.org;
    let mut intake = Intake::new(state.clone(), org.clone(), app, priority);
    let reader = ChunkReader::new(spooled_body(&state, request, limit.0).await?);
    let (fields, mut intake) = on_thread(move || (body::read(reader, &mut intake), intake)).await?;
    let fields = fields?;
    let webhook = match &fields.webhook {
        Some(webhook) => Some(webhook.check(&state).await?),
        None => None,
    };
    match (fields.file_id.as_deref(), fields.items) {
        (Some(_), true) => return Err(invalid("send items or a file_id, not both")),
        (Some(file_id), false) => {
            let (back, read) = read_file(&state, &org, file_id, intake).await?;
            read?;
            intake = back;
        }
        (None, _) => {}
    }
    let metadata = serde_json::to_string(&fields.metadata.unwrap_or_default())
        .map_err(|e| invalid(&e.to_string()))?;
    let stored = intake.finish(fields.strict, metadata, webhook).await?;
    Ok((StatusCode::ACCEPTED, Json(stored.into())))
}

/// Reads the items of the uploaded file `raw_id` of `org` into `intake`, and hands the
/// intake back with how the read went (a file that cannot be read, or an item that refuses
/// the whole batch, is the inner error; a check still wants what the intake saw). The outer
/// error is a parser that panicked.
pub(super) async fn read_file(
    state: &AppState,
    org: &OrgId,
    raw_id: &str,
    mut intake: Intake,
) -> Result<(Intake, Result<(), ApiError>), ApiError> {
    match open_file(state, org, raw_id).await {
        Ok((format, reader)) => {
            on_thread(move || {
                let read = match format {
                    Format::JsonLines => jsonl::read(reader, &mut intake),
                    Format::Csv => table::read(reader, &mut intake),
                };
                (intake, read)
            })
            .await
        }
        Err(e) => Ok((intake, Err(e))),
    }
}

/// The uploaded file `raw_id` of `org`: its format, by its name, and a reader of its bytes.
async fn open_file(
    state: &AppState,
    org: &OrgId,
    raw_id: &str,
) -> Result<(Format, ChunkReader), ApiError> {
    let missing = || {
        ApiError::new(
            ErrorCode::InvalidBatchFile,
            format!("file_id '{raw_id}': no such file"),
        )
    };
    let id = FileId::parse(raw_id).ok_or_else(missing)?;
    let (record, bytes) = state
        .files
        .open(org, id)
        .await
        .map_err(upload_error)?
        .ok_or_else(missing)?;
    let extension = record
        .name
        .rsplit_once('.')
        .map(|(_, ext)| ext.to_ascii_lowercase());
    let format = match extension.as_deref() {
        Some("jsonl" | "ndjson") => Format::JsonLines,
        Some("csv") => Format::Csv,
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidBatchFile,
                format!(
                    "file_id '{raw_id}' is '{}'; a batch reads a .jsonl file (one item per line) \
                     or a .csv file (a header row naming the inputs)",
                    record.name
                ),
            ));
        }
    };
    let chunks = bytes.map(|chunk| chunk.map_err(|e| upload_error(e.into())));
    Ok((format, ChunkReader::new(Box::pin(chunks))))
}

/// The request's body, written to a temporary file as it arrives (held to `limit` bytes),
/// then read back as chunks. Nothing is stored until the whole body is in: no writer is taken
/// and no transaction opened while a client sends, however slowly.
async fn spooled_body(
    state: &AppState,
    request: Body,
    limit: usize,
) -> Result<BoxStream<'static, Chunk>, ApiError> {
    let spool = spooled(state, request, limit as u64, too_large).await?;
    let chunks = spool
        .into_chunks()
        .await
        .map_err(|e| upload_error(e.into()))?;
    Ok(Box::pin(
        chunks.map(|chunk| chunk.map_err(|e| upload_error(e.into()))),
    ))
}

/// Runs `work` (a parse, which blocks on its source) on a blocking thread.
async fn on_thread<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work).await.map_err(panicked)
}

fn too_large() -> ApiError {
    ApiError::new(
        ErrorCode::BodyTooLarge,
        "the request body is larger than this server accepts for a batch (--max-batch-mb)",
    )
}

fn invalid(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidBatch, message)
}
