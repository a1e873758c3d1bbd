//! The one error type every route answers with, in Writer's error shape:
//! `{"tpe": "...", "errors": [{"description", "key", "extras"}], "extras": {}}`.
//!
//! [`ErrorCode`] is the one table of errors: each has its HTTP status and its machine key,
//! and Writer's `tpe` follows from the status. Every error the API answers goes through it:
//! handlers, extractors, the SSE `error` event and the answers the HTTP layer gives before
//! routing. 5xx bodies never carry internals: the cause is logged once, here, with the
//! request's id, and the client reads a generic description and the same id.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::requests;
use crate::report::Chain;
use crate::store::StoreError;

/// Builds [`ErrorCode`] from `Variant = (STATUS, "key")` rows.
macro_rules! error_codes {
    ($($(#[$doc:meta])* $name:ident = ($status:ident, $key:literal),)*) => {
        /// Every error the API answers with.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum ErrorCode {
            $($(#[$doc])* $name,)*
        }

        impl ErrorCode {
            /// Every code, in the table's order.
            #[cfg(test)]
            const ALL: &[Self] = &[$(Self::$name,)*];

            /// The HTTP status.
            pub(crate) fn status(self) -> StatusCode {
                match self {
                    $(Self::$name => StatusCode::$status,)*
                }
            }

            /// The machine key clients read in `errors[].key`.
            pub(crate) fn key(self) -> &'static str {
                match self {
                    $(Self::$name => $key,)*
                }
            }
        }
    };
}

error_codes! {
    /// The request is not well-formed HTTP/1.1 (answered before routing).
    MalformedRequest = (BAD_REQUEST, "request.malformed"),
    /// The request's headers are over the HTTP layer's buffer.
    HeadersTooLarge = (REQUEST_HEADER_FIELDS_TOO_LARGE, "request.headers_too_large"),
    /// The request's URI is over the HTTP layer's buffer.
    UriTooLong = (URI_TOO_LONG, "request.uri_too_long"),
    /// Not HTTP/1.0 or HTTP/1.1.
    HttpVersion = (HTTP_VERSION_NOT_SUPPORTED, "request.http_version"),
    /// NUL or bytes that are not UTF-8 in the path, query or body.
    InvalidText = (BAD_REQUEST, "request.invalid_text"),
    /// The body is not JSON of the expected shape.
    InvalidJson = (BAD_REQUEST, "request.invalid_json"),
    /// A query parameter cannot be read.
    InvalidQuery = (BAD_REQUEST, "request.invalid_query"),
    /// A path parameter cannot be read.
    InvalidPath = (BAD_REQUEST, "request.invalid_path"),
    /// A JSON route was sent something other than JSON.
    ContentType = (UNSUPPORTED_MEDIA_TYPE, "request.content_type"),
    /// The body is over `--max-body-bytes`.
    BodyTooLarge = (PAYLOAD_TOO_LARGE, "request.too_large"),
    /// The body stalled for longer than `--body-timeout`.
    BodyTimeout = (REQUEST_TIMEOUT, "request.timeout"),
    /// The body broke off.
    BodyBroken = (BAD_REQUEST, "request.body"),
    /// An `after`/`before` cursor names nothing, or both were given.
    InvalidCursor = (BAD_REQUEST, "request.invalid_cursor"),
    /// `order` is not `asc` or `desc`.
    InvalidOrder = (BAD_REQUEST, "request.invalid_order"),
    /// A `status` filter is not one of Writer's statuses.
    InvalidStatus = (BAD_REQUEST, "request.invalid_status"),
    /// An application `type` filter other than `generation`.
    InvalidType = (BAD_REQUEST, "request.invalid_type"),
    /// A `file_types` filter names an unknown type.
    InvalidFileTypes = (BAD_REQUEST, "request.invalid_file_types"),
    /// An `Idempotency-Key` that is empty, too long or not visible ASCII.
    IdempotencyKey = (BAD_REQUEST, "request.idempotency_key"),
    /// A `Scriptorium-Priority` (or a batch's `priority`) that is not `high`, `normal` or
    /// `low`.
    InvalidPriority = (BAD_REQUEST, "request.invalid_priority"),
    /// `stream` asked of an async job.
    StreamUnsupported = (BAD_REQUEST, "request.stream_unsupported"),
    /// No route has this path.
    RouteNotFound = (NOT_FOUND, "route.not_found"),
    /// The path's route does not take this method.
    MethodNotAllowed = (METHOD_NOT_ALLOWED, "route.method_not_allowed"),
    /// No bearer key, or one that is unknown or revoked.
    Unauthorized = (UNAUTHORIZED, "auth.invalid_key"),
    /// No application with this id is served.
    ApplicationNotFound = (NOT_FOUND, "application.not_found"),
    /// An application definition breaks the rules (each error names the field, and the
    /// template line).
    InvalidApplication = (BAD_REQUEST, "application.invalid"),
    /// A provisioned application (from the apps folder) cannot be changed over the API.
    ApplicationReadOnly = (BAD_REQUEST, "application.read_only"),
    /// The organisation already has an application with this id.
    ApplicationExists = (BAD_REQUEST, "application.exists"),
    /// The application has no version with this number.
    VersionNotFound = (NOT_FOUND, "application.version_not_found"),
    /// The application's template failed with these inputs.
    TemplateFailed = (BAD_REQUEST, "application.template"),
    /// The inputs break the application's rules (the description names the input).
    InvalidInputs = (BAD_REQUEST, "inputs.invalid"),
    /// No job with this id in the caller's organisation.
    JobNotFound = (NOT_FOUND, "job.not_found"),
    /// Only a failed job can be retried (never a 409, which the SDKs retry).
    JobNotFailed = (BAD_REQUEST, "job.not_failed"),
    /// A batch's item refused at create cannot be retried: its inputs would fail again.
    JobRefused = (BAD_REQUEST, "job.refused"),
    /// A finished job (completed, failed or cancelled) cannot be cancelled.
    JobFinished = (BAD_REQUEST, "job.finished"),
    /// No batch with this id in the caller's organisation.
    BatchNotFound = (NOT_FOUND, "batch.not_found"),
    /// A finished batch (every item completed, failed or cancelled) cannot be cancelled.
    BatchFinished = (BAD_REQUEST, "batch.finished"),
    /// A batch retry found no failed or cancelled item to run again.
    BatchNothingToRetry = (BAD_REQUEST, "batch.nothing_to_retry"),
    /// A batch create that is not of the expected shape (no items, both `items` and
    /// `file_id`, a CSV header naming something else than inputs, a part not supported yet).
    InvalidBatch = (BAD_REQUEST, "batch.invalid"),
    /// A `custom_id` that is empty, over 255 characters, or repeated within the batch.
    InvalidCustomId = (BAD_REQUEST, "batch.invalid_custom_id"),
    /// A batch's `webhook` with a URL that is not absolute http(s), names or resolves to an
    /// internal address (without `--webhook-allow-private`), or an unknown event.
    InvalidWebhook = (BAD_REQUEST, "batch.invalid_webhook"),
    /// A batch's `file_id` that names no file of the caller's organisation, or a file that
    /// is not `.jsonl` or `.csv`.
    InvalidBatchFile = (BAD_REQUEST, "batch.invalid_file"),
    /// No file with this id in the caller's organisation.
    FileNotFound = (NOT_FOUND, "file.not_found"),
    /// An upload without a file name in `Content-Disposition`.
    FileNameMissing = (BAD_REQUEST, "files.name_missing"),
    /// An upload with no bytes.
    FileEmpty = (BAD_REQUEST, "files.empty"),
    /// An upload over `--max-upload-mb`.
    FileTooLarge = (PAYLOAD_TOO_LARGE, "files.too_large"),
    /// An upload that would take the organisation over its quota.
    FileQuota = (PAYLOAD_TOO_LARGE, "files.quota"),
    /// A files retry that names no file.
    FileIdsMissing = (BAD_REQUEST, "files.ids_missing"),
    /// A file an input names is still being processed, or storage is unavailable.
    FilesNotReady = (SERVICE_UNAVAILABLE, "files.unavailable"),
    /// Blob storage failed.
    FileStorageUnavailable = (SERVICE_UNAVAILABLE, "files.storage_unavailable"),
    /// A graph id that is not a UUID.
    InvalidGraphId = (BAD_REQUEST, "graphs.invalid_id"),
    /// The application's provider is not configured.
    ProviderMissing = (SERVICE_UNAVAILABLE, "provider.missing"),
    /// The model server failed in a way worth retrying.
    ProviderUnavailable = (SERVICE_UNAVAILABLE, "provider.unavailable"),
    /// The model server refused the request for good.
    ProviderRejected = (BAD_REQUEST, "provider.rejected"),
    /// The model server failed in the middle of a stream (the SSE `error` event).
    ProviderFailed = (SERVICE_UNAVAILABLE, "provider.failed"),
    /// The database cannot be reached; try again shortly.
    DatabaseUnavailable = (SERVICE_UNAVAILABLE, "server.unavailable"),
    /// Anything else; its cause is logged, never answered.
    Internal = (INTERNAL_SERVER_ERROR, "server.internal"),
}

/// An error answer: a code from the table and a description for people (one per problem).
#[derive(Debug)]
pub(crate) struct ApiError {
    code: ErrorCode,
    descriptions: Vec<String>,
}

impl ApiError {
    /// An error of this code with this description.
    pub(crate) fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self::many(code, vec![description.into()])
    }

    /// An error of this code with several problems, each an entry of `errors`.
    pub(crate) fn many(code: ErrorCode, descriptions: Vec<String>) -> Self {
        Self { code, descriptions }
    }

    /// The status it is answered with.
    pub(crate) fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// What went wrong, one description per problem.
    pub(crate) fn descriptions(&self) -> &[String] {
        &self.descriptions
    }

    /// The body Writer's clients read: `{"tpe", "errors": [{"description", "key", "extras"}],
    /// "extras"}`.
    pub(crate) fn body(&self) -> serde_json::Value {
        serde_json::json!(self.shape())
    }

    /// The body, typed: what the OpenAPI document describes.
    fn shape(&self) -> ErrorBody<'_> {
        ErrorBody {
            tpe: tpe(self.code.status()),
            errors: self
                .descriptions
                .iter()
                .map(|description| ErrorEntry {
                    description,
                    key: self.code.key(),
                    extras: Extras {},
                })
                .collect(),
            extras: Extras {},
        }
    }
}

/// Writer's error shape, every error answer's body.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorBody<'a> {
    /// The status's name, e.g. `BadRequest`, `NotFound`, `ServiceUnavailable`.
    tpe: &'static str,
    /// One entry per problem.
    errors: Vec<ErrorEntry<'a>>,
    /// `{}`; on a 5xx, `{"request_id"}`: the id the server logged the cause under.
    extras: Extras,
}

/// One problem.
#[derive(Serialize, ToSchema)]
pub(crate) struct ErrorEntry<'a> {
    /// For people.
    description: &'a str,
    /// For programs: a key from the table in `docs/errors.md`, e.g. `job.not_found`.
    key: &'static str,
    /// Always `{}`.
    extras: Extras,
}

/// Writer's free-form `extras`: empty as built; on a 5xx the request's id is added on the
/// way out (`super::requests`).
#[derive(Serialize, ToSchema)]
pub(crate) struct Extras {}

/// Writer's `tpe` for a status.
fn tpe(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "BadRequest",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "NotFound",
        405 => "MethodNotAllowed",
        408 => "RequestTimeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "PayloadTooLarge",
        414 => "UriTooLong",
        415 => "UnsupportedMediaType",
        422 => "UnprocessableEntity",
        429 => "TooManyRequests",
        431 => "RequestHeaderFieldsTooLarge",
        503 => "ServiceUnavailable",
        504 => "GatewayTimeout",
        505 => "HttpVersionNotSupported",
        _ => "InternalServerError",
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.code.status();
        let mut response = (status, Json(self.body())).into_response();
        let retryable = [StatusCode::REQUEST_TIMEOUT, StatusCode::TOO_MANY_REQUESTS];
        if status.is_client_error() && !retryable.contains(&status) {
            // The SDKs retry some statuses by default; a client error will not get better.
            response
                .headers_mut()
                .insert("x-should-retry", HeaderValue::from_static("false"));
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::warn!(request = requests::current(), cause = %Chain(&cause), "database unavailable");
                Self::new(
                    ErrorCode::DatabaseUnavailable,
                    "the database is unavailable; try again shortly",
                )
            }
            other => {
                tracing::error!(request = requests::current(), cause = %Chain(&other), "database error");
                Self::new(ErrorCode::Internal, "internal server error")
            }
        }
    }
}

/// The answer to a path no route matches.
pub(crate) async fn unknown_path() -> ApiError {
    ApiError::new(ErrorCode::RouteNotFound, "no such route")
}

/// The answer to a known path with the wrong method.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "this route does not take that method",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// docs/errors.md lists every key with its status, so clients can rely on it.
    #[test]
    fn every_code_is_documented_with_its_status() {
        let doc = include_str!("../../docs/errors.md");
        for code in ErrorCode::ALL {
            let row = format!("| `{}` | {} |", code.key(), code.status().as_u16());
            assert!(doc.contains(&row), "docs/errors.md lacks the row {row}");
        }
    }
}
