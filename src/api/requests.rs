//! Every request gets an id: the client's `X-Request-Id` when it sent a short visible one,
//! else a new one. It is answered in `X-Request-Id` on every response and, on a 5xx, in the
//! body's `extras.request_id`, so a user can quote it and an operator find the one log line
//! that holds the cause: the handler logs the cause with [`current`], the id of the request
//! it runs for. (A tracing span per request would carry it too, but formatting one costs
//! the no-op route a tenth of its throughput; the task-local costs nothing measurable.)

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::response::Response;

/// The header that carries the id, both ways.
const HEADER: HeaderName = HeaderName::from_static("x-request-id");
/// Longest client id taken as it is.
const MAX_CLIENT_ID: usize = 128;
/// Largest 5xx body read back to add the id (ours are a few hundred bytes).
const MAX_ERROR_BODY: usize = 64 << 10;

/// This process's prefix for the ids it makes; a counter follows it.
static PROCESS: LazyLock<String> = LazyLock::new(|| {
    let id = uuid::Uuid::now_v7().simple().to_string();
    id[id.len() - 8..].to_owned()
});
static NEXT: AtomicU64 = AtomicU64::new(1);

/// The request's id: the client's `X-Request-Id` when it is short and visible, else a new one.
pub(crate) fn id(headers: &HeaderMap) -> HeaderValue {
    headers
        .get(&HEADER)
        .filter(|v| !v.is_empty() && v.len() <= MAX_CLIENT_ID && v.to_str().is_ok())
        .cloned()
        .unwrap_or_else(new_id)
}

tokio::task_local! {
    /// The id of the request the current task handles.
    static CURRENT: HeaderValue;
}

/// Runs `handling` as the handling of request `id`, for [`current`].
pub(crate) async fn handle<F: std::future::Future>(id: HeaderValue, handling: F) -> F::Output {
    CURRENT.scope(id, handling).await
}

/// The id of the request being handled, for log lines (`-` outside a request).
pub(crate) fn current() -> String {
    CURRENT
        .try_with(|id| id.to_str().unwrap_or_default().to_owned())
        .unwrap_or_else(|_| "-".to_owned())
}

/// The response with the request's id in `X-Request-Id`, and in the body of a 5xx.
pub(crate) async fn answer_with(mut response: Response, id: HeaderValue) -> Response {
    if response.status().is_server_error() {
        response = with_id_in_body(response, &id).await;
    }
    response.headers_mut().insert(HEADER, id);
    response
}

fn new_id() -> HeaderValue {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    HeaderValue::from_str(&format!("req_{}{n:x}", *PROCESS)).expect("ASCII")
}

/// A Writer error body with `extras.request_id` set; any other body as it was.
async fn with_id_in_body(response: Response, id: &HeaderValue) -> Response {
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_ERROR_BODY).await else {
        return Response::from_parts(parts, Body::empty());
    };
    let Ok(mut json) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return Response::from_parts(parts, Body::from(bytes));
    };
    if let Some(extras) = json.get_mut("extras").and_then(|e| e.as_object_mut()) {
        extras.insert("request_id".into(), id.to_str().unwrap_or_default().into());
    }
    let bytes = json.to_string();
    parts.headers.remove(axum::http::header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(bytes))
}
