//! The Files API: raw-body upload named by `Content-Disposition`, cursor-paged list with
//! filters, retrieve, download with the file's own MIME type, delete, and retry of failed
//! processing. Every route is scoped to the caller's organisation: another's file is a 404.

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::applications::graph_id;
use super::extract::{Principal, WJson, WPath, WQuery, body_error};
use super::paging;
use super::views::{DeletedView, FileListView, FileView, SuccessView};
use super::{ApiError, AppState, ErrorCode};
use crate::files::blobs::Spool;
use crate::files::{FileKind, UploadError, disposition};
use crate::report::Chain;
use crate::store::{FileId, FileQuery};

/// The query of an upload.
#[derive(Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UploadQuery {
    /// A graph (UUID) to attach the file to.
    #[serde(rename = "graphId")]
    graph_id: Option<String>,
}

/// `POST /v1/files`: the body is the file's bytes, its name comes from `Content-Disposition`
/// and its type from the name and the bytes (never from `Content-Type`).
#[utoipa::path(post, path = "/v1/files", tag = "files",
    params(UploadQuery, ("Content-Disposition" = String, Header,
        description = "The file's name: `attachment; filename=\"report.pdf\"`.")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
        description = "The file's bytes; its type is found from the name and the bytes."),
    responses((status = 200, description = "The file, `in_progress` while its text is extracted.", body = FileView)))]
pub(crate) async fn upload(
    State(state): State<AppState>,
    principal: Principal,
    WQuery(query): WQuery<UploadQuery>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let name = headers
        .get(header::CONTENT_DISPOSITION)
        .and_then(|v| v.to_str().ok())
        .and_then(disposition::file_name)
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::FileNameMissing,
                "name the file with a Content-Disposition header, e.g. attachment; filename=\"report.pdf\"",
            )
        })?;
    let limit = state.files.limits().max_upload_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|length| length > limit) {
        return Err(too_large(limit));
    }
    let graph_ids = match query.graph_id.as_deref() {
        None | Some("") => Vec::new(),
        Some(raw) => vec![graph_id(raw)?],
    };
    let spool = spooled(&state, body, limit, || too_large(limit)).await?;
    if spool.size() == 0 {
        return Err(ApiError::new(ErrorCode::FileEmpty, "the file is empty"));
    }
    let record = state
        .files
        .upload(&principal.org, name, spool, graph_ids)
        .await
        .map_err(upload_error)?;
    Ok(Json(FileView::from(record)).into_response())
}

/// A request's body streamed into a temporary file as it arrives, held to `limit` bytes
/// (`too_large` is the error past it): an upload's, and a batch's inline items.
pub(super) async fn spooled(
    state: &AppState,
    body: Body,
    limit: u64,
    too_large: impl Fn() -> ApiError,
) -> Result<Spool, ApiError> {
    let mut spool = state.files.spool().map_err(upload_error)?;
    let mut body = body.into_data_stream();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| body_error(&e))?;
        if spool.size() + chunk.len() as u64 > limit {
            return Err(too_large());
        }
        spool
            .write(&chunk)
            .await
            .map_err(|e| upload_error(e.into()))?;
    }
    Ok(spool)
}

fn too_large(limit: u64) -> ApiError {
    ApiError::new(
        ErrorCode::FileTooLarge,
        format!("files may be at most {limit} bytes ({} MB)", limit >> 20),
    )
}

pub(super) fn upload_error(e: UploadError) -> ApiError {
    match e {
        UploadError::OverQuota { .. } => ApiError::new(ErrorCode::FileQuota, e.to_string()),
        UploadError::Blob(cause) => {
            let request = super::requests::current();
            tracing::error!(request, cause = %Chain(&cause), "file storage failed");
            ApiError::new(
                ErrorCode::FileStorageUnavailable,
                "file storage is unavailable; try again shortly",
            )
        }
        UploadError::Store(e) => e.into(),
    }
}

/// The query of the files list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Files before this file id.
    before: Option<String>,
    /// Files after this file id.
    after: Option<String>,
    /// Files per page.
    limit: Option<u64>,
    /// `asc` or `desc` (the default).
    order: Option<String>,
    /// Only the files attached to this graph.
    graph_id: Option<String>,
    /// `in_progress`, `completed` or `failed`.
    status: Option<String>,
    /// Comma-separated extensions, e.g. `pdf,docx`.
    file_types: Option<String>,
}

/// `GET /v1/files`: newest first unless `order=asc`, paged with `after`/`before` cursors
/// (file ids), filtered by `status`, `file_types` (comma-separated extensions) and `graph_id`.
#[utoipa::path(get, path = "/v1/files", tag = "files", params(ListQuery),
    responses((status = 200, description = "A page of files.", body = FileListView)))]
pub(crate) async fn list(
    State(state): State<AppState>,
    principal: Principal,
    WQuery(q): WQuery<ListQuery>,
) -> Result<Response, ApiError> {
    let limit = paging::limit(q.limit, paging::MAX_CURSOR_PAGE) as u32;
    let ascending = paging::ascending(q.order.as_deref())?;
    let status = paging::status(q.status.as_deref())?;
    let kinds = q
        .file_types
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .map(|t| t.trim().trim_start_matches('.'))
        .filter(|t| !t.is_empty())
        .map(|t| {
            FileKind::from_extension(t)
                .map(|k| k.extension().to_owned())
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidFileTypes,
                        format!("unknown file type '{t}'"),
                    )
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let nonempty = |v: Option<String>| v.filter(|s| !s.is_empty());
    let graph = nonempty(q.graph_id).map(|raw| graph_id(&raw)).transpose()?;
    let (after, before) = paging::cursors(q.after, q.before)?;
    let (after, before) = (cursor("after", after)?, cursor("before", before)?);
    let page = state
        .store
        .list_files(FileQuery {
            org: principal.org,
            after,
            before,
            limit,
            ascending,
            status,
            kinds,
            graph_id: graph,
        })
        .await?;
    let view = FileListView {
        first_id: page.files.first().map(|f| f.id),
        last_id: page.files.last().map(|f| f.id),
        data: page.files.into_iter().map(FileView::from).collect(),
        has_more: page.has_more,
    };
    Ok(Json(view).into_response())
}

/// A page's cursor, named `name`: a file id, as the list's `first_id` and `last_id` are. Any
/// spelling of a UUID is taken (compared as the id it spells); anything else is a 400.
fn cursor(name: &str, raw: Option<String>) -> Result<Option<FileId>, ApiError> {
    raw.map(|raw| {
        uuid::Uuid::parse_str(&raw).map(FileId::from).map_err(|_| {
            ApiError::new(
                ErrorCode::InvalidCursor,
                format!("{name} must be a file id, as the list's first_id and last_id are"),
            )
        })
    })
    .transpose()
}

/// `GET /v1/files/{file_id}`.
#[utoipa::path(get, path = "/v1/files/{file_id}", tag = "files", params(("file_id" = String, Path, description = "The file's id.")),
    responses((status = 200, description = "The file.", body = FileView)))]
pub(crate) async fn retrieve(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<Response, ApiError> {
    match state.files.get(&principal.org, file_id(&raw)?).await? {
        Some(record) => Ok(Json(FileView::from(record)).into_response()),
        None => Err(no_file(&raw)),
    }
}

/// `GET /v1/files/{file_id}/download`: the bytes as uploaded, with the file's MIME type.
#[utoipa::path(get, path = "/v1/files/{file_id}/download", tag = "files", params(("file_id" = String, Path, description = "The file's id.")),
    responses((status = 200, description = "The file's bytes, as its own type (`text/plain`, \
        `application/pdf`, ...).", body = Vec<u8>, content_type = "*/*")))]
pub(crate) async fn download(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<Response, ApiError> {
    let (record, bytes) = state
        .files
        .download(&principal.org, file_id(&raw)?)
        .await
        .map_err(upload_error)?
        .ok_or_else(|| no_file(&raw))?;
    let mime =
        FileKind::from_extension(&record.kind).map_or("application/octet-stream", FileKind::mime);
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    if let Ok(value) = HeaderValue::from_str(&attachment(&record.name)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

/// `attachment; filename*=utf-8''<name>`, percent-encoded.
fn attachment(name: &str) -> String {
    let mut encoded = String::with_capacity(name.len());
    for byte in name.bytes() {
        if byte.is_ascii_alphanumeric() || b".-_~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename*=utf-8''{encoded}")
}

/// `DELETE /v1/files/{file_id}`. Jobs that still need the file fail when they run.
#[utoipa::path(delete, path = "/v1/files/{file_id}", tag = "files", params(("file_id" = String, Path, description = "The file's id.")),
    responses((status = 200, description = "Deleted.", body = DeletedView)))]
pub(crate) async fn delete(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
) -> Result<Response, ApiError> {
    let id = file_id(&raw)?;
    if state.files.delete(&principal.org, id).await? {
        Ok(Json(DeletedView { id, deleted: true }).into_response())
    } else {
        Err(no_file(&raw))
    }
}

/// The body of a retry: `{file_ids: [...]}`.
#[derive(Deserialize, ToSchema)]
pub(crate) struct RetryBody {
    file_ids: Vec<String>,
}

/// `POST /v1/files/retry`: processes again those of the files that failed; `{success: true}`
/// whether or not any did.
#[utoipa::path(post, path = "/v1/files/retry", tag = "files", request_body = RetryBody,
    responses((status = 200, description = "The failed files among them are processed again.",
        body = SuccessView)))]
pub(crate) async fn retry(
    State(state): State<AppState>,
    principal: Principal,
    WJson(body): WJson<RetryBody>,
) -> Result<Response, ApiError> {
    if body.file_ids.is_empty() {
        return Err(ApiError::new(
            ErrorCode::FileIdsMissing,
            "file_ids must name at least one file",
        ));
    }
    // As Writer's reference answers: ids that name no failed file of the caller's
    // organisation (none at all, another organisation's, or not an id) are simply not retried.
    let ids: Vec<FileId> = body
        .file_ids
        .iter()
        .filter_map(|raw| FileId::parse(raw))
        .collect();
    state.files.retry(&principal.org, &ids).await?;
    Ok(Json(SuccessView { success: true }).into_response())
}

/// The file id a path names; one in any other form than the server's names no file (404).
fn file_id(raw: &str) -> Result<FileId, ApiError> {
    FileId::parse(raw).ok_or_else(|| no_file(raw))
}

fn no_file(id: &str) -> ApiError {
    ApiError::new(ErrorCode::FileNotFound, format!("no file '{id}'"))
}
