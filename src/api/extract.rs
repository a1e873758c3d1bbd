//! Extractors that answer in Writer's error shape: the caller's organisation from the
//! bearer key, and JSON bodies and query strings whose rejections become [`ApiError`]s.

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;

use super::text::json_holds_nul;
use super::{ApiError, AppState, ErrorCode};
use crate::server::connections::BodyTimedOut;
use crate::store::OrgId;

/// The authenticated caller: the organisation its key belongs to.
#[derive(Clone, Debug)]
pub(crate) struct Principal {
    /// The organisation; every job read or written is scoped to it.
    pub(crate) org: OrgId,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let header = parts.headers.get(header::AUTHORIZATION);
        let key = header
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::Unauthorized,
                    "missing bearer API key in Authorization",
                )
            })?;
        match state.keys.authenticate(key).await? {
            Some(org) => Ok(Principal { org }),
            None => Err(ApiError::new(
                ErrorCode::Unauthorized,
                "invalid or revoked API key",
            )),
        }
    }
}

/// `axum::Json`, rejecting in Writer's error shape; a body holding a NUL character (which no
/// field accepts) is a 400, and one that stalls is a 408.
pub(crate) struct WJson<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for WJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        if !json_content_type(req.headers()) {
            return Err(ApiError::new(
                ErrorCode::ContentType,
                "send the body as JSON, with Content-Type: application/json",
            ));
        }
        let bytes = Bytes::from_request(req, state)
            .await
            .map_err(body_rejection)?;
        if json_holds_nul(&bytes) {
            return Err(ApiError::new(
                ErrorCode::InvalidText,
                "the body holds a NUL character (\\u0000), which no field accepts",
            ));
        }
        match axum::Json::<T>::from_bytes(&bytes) {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

/// `application/json`, or any `application/…+json`, with or without parameters.
pub(super) fn json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .as_bytes();
    let has = |at: usize, part: &str| {
        essence
            .get(at..at + part.len())
            .is_some_and(|b| b.eq_ignore_ascii_case(part.as_bytes()))
    };
    let (prefix, suffix) = ("application/", "+json");
    essence.eq_ignore_ascii_case(b"application/json")
        || (has(0, prefix)
            && essence.len() >= suffix.len()
            && has(essence.len() - suffix.len(), suffix))
}

/// A body that could not be read: too large (413), stalled (408) or broken off (400).
pub(crate) fn body_rejection(rejection: BytesRejection) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        return ApiError::new(
            ErrorCode::BodyTooLarge,
            "the request body is larger than this server accepts",
        );
    }
    body_error(&rejection)
}

/// The answer to a request body that failed while it was read: 408 if it stalled, else 400.
pub(crate) fn body_error(error: &(dyn std::error::Error + 'static)) -> ApiError {
    let mut cause = Some(error);
    while let Some(e) = cause {
        if let Some(timed_out) = e.downcast_ref::<BodyTimedOut>() {
            return ApiError::new(ErrorCode::BodyTimeout, timed_out.to_string());
        }
        cause = e.source();
    }
    ApiError::new(
        ErrorCode::BodyBroken,
        format!("the request body broke off: {error}"),
    )
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    // Writer's table has no 422 for a well-formed body of the wrong shape: that is a 400.
    let text = rejection.body_text();
    let description = match text.split_once(": ") {
        Some((prefix, detail)) if prefix.contains("deserialize") => {
            format!("the body does not fit this route: {}", plainly(detail))
        }
        Some((_, detail)) => format!("the body is not valid JSON: {detail}"),
        None => text,
    };
    ApiError::new(ErrorCode::InvalidJson, description)
}

/// A deserializer's `field: problem` in words for people: Rust's number-parsing wording
/// becomes what the value must be, and the field is named as such.
fn plainly(detail: &str) -> String {
    let (field, problem) = match detail.split_once(": ") {
        Some((field, problem)) if !field.contains(' ') => (Some(field), problem),
        _ => (None, detail),
    };
    let problem = match problem {
        "invalid digit found in string" | "cannot parse integer from empty string" => {
            "must be a whole number, 0 or more"
        }
        "number too large to fit in target type" => "is too large a number",
        "number too small to fit in target type" => "is too small a number",
        "invalid float literal" => "must be a number",
        "provided string was not `true` or `false`" => "must be true or false",
        other => other,
    };
    match field {
        Some(field) => format!("`{field}` {problem}"),
        None => problem.to_owned(),
    }
}

/// `axum::extract::Query`, rejecting in Writer's error shape.
pub(crate) struct WQuery<T>(pub(crate) T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequestParts<S> for WQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Self(value)),
            Err(rejection) => Err(query_rejection(rejection)),
        }
    }
}

fn query_rejection(rejection: QueryRejection) -> ApiError {
    let text = rejection.body_text();
    let detail = text
        .split_once(": ")
        .map_or(text.as_str(), |(_, detail)| detail);
    ApiError::new(
        ErrorCode::InvalidQuery,
        format!("the query parameter {}", plainly(detail)),
    )
}

/// `axum::extract::Path`, rejecting in Writer's error shape.
pub(crate) struct WPath<T>(pub(crate) T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for WPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::new(
                ErrorCode::InvalidPath,
                format!("the path cannot be read: {}", rejection.body_text()),
            )),
        }
    }
}
