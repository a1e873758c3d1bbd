//! A Writer-compatible server without the batch route, as api.writer.com is: a proxy in the
//! test that forwards every request to a real test server, except those under `/batches`,
//! which answer Writer's 404. It can hold each job create back a while, so that a test can
//! interrupt a run while creates are in flight.

use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// A running proxy; stopped when dropped.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    task: JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone)]
struct Target {
    base: String,
    client: reqwest::Client,
    create_delay: Duration,
}

/// Starts a proxy to `target` without the batch routes, holding each job create back for
/// `create_delay`.
pub async fn without_batches(target: &str, create_delay: Duration) -> Proxy {
    let state = Target {
        base: target.to_owned(),
        client: reqwest::Client::new(),
        create_delay,
    };
    let router = Router::new().fallback(forward).with_state(state);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, router).await.unwrap();
    });
    Proxy { base, task }
}

async fn forward(State(target): State<Target>, request: Request) -> Response {
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    if request.uri().path().contains("/batches") {
        let body = json!({"tpe": "NotFound", "errors": [{"description": "Not found", "key": "route.not_found", "extras": {}}], "extras": {}});
        return (StatusCode::NOT_FOUND, axum::Json(body)).into_response();
    }
    if request.method() == Method::POST && path.ends_with("/jobs") {
        tokio::time::sleep(target.create_delay).await;
    }
    let method = request.method().clone();
    let headers = request.headers().clone();
    let body = to_bytes(request.into_body(), 64 << 20).await.unwrap();
    let mut upstream = target
        .client
        .request(method, format!("{}{path}", target.base))
        .body(body);
    for name in ["authorization", "content-type", "idempotency-key"] {
        if let Some(value) = headers.get(name) {
            upstream = upstream.header(name, value);
        }
    }
    let answer = upstream.send().await.unwrap();
    let status = answer.status();
    let mut out = HeaderMap::new();
    if let Some(kind) = answer.headers().get("content-type") {
        out.insert("content-type", kind.clone());
    }
    let bytes = answer.bytes().await.unwrap();
    (status, out, Body::from(bytes)).into_response()
}
