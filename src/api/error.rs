//! The one error type every route answers with, in Writer's error shape:
//! `{"tpe": "...", "errors": [{"description", "key", "extras"}], "extras": {}}`.
//!
//! The status decides `tpe` from one table. 5xx bodies never carry internals: the cause is
//! logged once, here, and the client reads a generic description.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::store::StoreError;

/// An error answer: status, a machine key and a human description.
#[derive(Debug)]
pub(crate) struct ApiError {
    status: StatusCode,
    key: &'static str,
    description: String,
}

impl ApiError {
    /// An error with this status, key and description.
    pub(crate) fn new(
        status: StatusCode,
        key: &'static str,
        description: impl Into<String>,
    ) -> Self {
        Self {
            status,
            key,
            description: description.into(),
        }
    }

    /// 400: the request is wrong.
    pub(crate) fn bad_request(key: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, key, description)
    }

    /// 404: no such thing (for this organisation).
    pub(crate) fn not_found(key: &'static str, description: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, key, description)
    }

    /// 401: no key, or not a valid one.
    pub(crate) fn unauthorized(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "auth.invalid_key", description)
    }
}

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

impl ApiError {
    /// The body Writer's clients read: `{"tpe", "errors": [{"description", "key", "extras"}],
    /// "extras"}`.
    pub fn body(&self) -> serde_json::Value {
        json!({
            "tpe": tpe(self.status),
            "errors": [{"description": self.description, "key": self.key, "extras": {}}],
            "extras": {},
        })
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        let retryable = [StatusCode::REQUEST_TIMEOUT, StatusCode::TOO_MANY_REQUESTS];
        if self.status.is_client_error() && !retryable.contains(&self.status) {
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
                tracing::warn!(%cause, "database unavailable");
                Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "server.unavailable",
                    "the database is unavailable; try again shortly",
                )
            }
            other => {
                tracing::error!(cause = %other, "database error");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "server.internal",
                    "internal server error",
                )
            }
        }
    }
}

/// The answer to a path no route matches.
pub(crate) async fn unknown_path() -> ApiError {
    ApiError::not_found("route.not_found", "no such route")
}

/// The answer to a known path with the wrong method.
pub(crate) async fn wrong_method() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "route.method_not_allowed",
        "this route does not take that method",
    )
}
