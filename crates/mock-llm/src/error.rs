//! Every error the mock answers, in OpenAI's shape:
//! `{"error": {"message", "type", "param": null, "code"}}`, with status, `type` and `code`
//! from one table. A 429 also carries `Retry-After` (whole seconds, rounded up) and
//! `retry-after-ms`, the two headers OpenAI clients read.

use std::time::Duration;

use axum::Json;
use axum::http::{HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request did not get a completion.
#[derive(Debug, thiserror::Error)]
pub enum MockError {
    /// The body is not a chat request.
    #[error("{0}")]
    BadRequest(String),
    /// `--api-key` is set and the request does not carry it.
    #[error("Incorrect API key provided. Send it as `Authorization: Bearer KEY`.")]
    Unauthorized,
    /// No route has this path.
    #[error("Invalid URL ({method} {path})")]
    NotFound {
        /// The request's method.
        method: Method,
        /// The request's path.
        path: String,
    },
    /// The path exists, not with this method.
    #[error("This route does not take that method.")]
    MethodNotAllowed,
    /// The body could not be read (too large, cut short).
    #[error("{message}")]
    Unreadable {
        /// 413 or 400.
        status: StatusCode,
        /// What went wrong.
        message: String,
    },
    /// An injected 500.
    #[error("The mock failed on purpose (injected 500).")]
    Internal,
    /// An injected 503.
    #[error("The mock is overloaded on purpose (injected 503).")]
    Unavailable,
    /// Every slot is taken and the queue for them is full (`--queue-limit`).
    #[error("The server is busy: {queued} requests are already waiting. Try again later.")]
    QueueFull {
        /// The requests waiting.
        queued: usize,
    },
    /// An injected 429, or a request beyond capacity with `--over-capacity reject`.
    #[error("Rate limit reached ({reason}). Retry after {retry_after:?}.")]
    RateLimited {
        /// How long the client should wait.
        retry_after: Duration,
        /// `injected` or `over capacity`.
        reason: &'static str,
    },
}

impl MockError {
    /// The answer to a path no route matches.
    pub fn not_found(method: Method, uri: &Uri) -> Self {
        Self::NotFound {
            method,
            path: uri.path().to_owned(),
        }
    }

    /// Status, OpenAI `type` and `code`.
    fn table(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
            Self::Unauthorized => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            Self::NotFound { .. } => (StatusCode::NOT_FOUND, "invalid_request_error", None),
            Self::MethodNotAllowed => (
                StatusCode::METHOD_NOT_ALLOWED,
                "invalid_request_error",
                None,
            ),
            Self::Unreadable { status, .. } => (*status, "invalid_request_error", None),
            Self::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
            Self::Unavailable | Self::QueueFull { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "server_error", None)
            }
            Self::RateLimited { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "requests",
                Some("rate_limit_exceeded"),
            ),
        }
    }
}

impl IntoResponse for MockError {
    fn into_response(self) -> Response {
        let (status, kind, code) = self.table();
        let body = json!({
            "error": {"message": self.to_string(), "type": kind, "param": null, "code": code},
        });
        let mut response = (status, Json(body)).into_response();
        if let Self::RateLimited { retry_after, .. } = self {
            let headers = response.headers_mut();
            let millis = u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX);
            headers.insert("retry-after", HeaderValue::from(millis.div_ceil(1000)));
            headers.insert("retry-after-ms", HeaderValue::from(millis));
        }
        response
    }
}

/// The fallback for unknown paths.
pub async fn unknown_path(method: Method, uri: Uri) -> MockError {
    MockError::not_found(method, &uri)
}

/// The fallback for known paths with the wrong method.
pub async fn wrong_method() -> MockError {
    MockError::MethodNotAllowed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_429_asks_for_whole_seconds_rounded_up_and_exact_milliseconds() {
        let response = MockError::RateLimited {
            retry_after: Duration::from_millis(1500),
            reason: "injected",
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(response.headers()["retry-after-ms"], "1500");
    }
}
