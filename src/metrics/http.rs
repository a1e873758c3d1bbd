//! HTTP requests by route, method and status, with their latency: one middleware around
//! every route of the router.
//!
//! The route is the template the router matched (`/v1/applications/jobs/{job_id}`), never the
//! raw path, and the method one of a fixed set, so a client cannot grow the label sets without
//! bound. The latency is until the response's head is ready (a streamed body goes on after).

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use prometheus::{DEFAULT_BUCKETS, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

use super::{Metrics, PREFIX, register};

/// The route label of a request no route matched.
const UNMATCHED: &str = "unmatched";

/// The HTTP families.
pub(crate) struct HttpFigures {
    requests: IntCounterVec,
    latency: HistogramVec,
}

impl HttpFigures {
    /// Registers the families in `registry`.
    pub(super) fn new(registry: &Registry) -> Self {
        let requests = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "http_requests_total",
                    "HTTP requests by matched route, method and status.",
                )
                .namespace(PREFIX),
                &["route", "method", "status"],
            ),
        );
        let latency = register(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "http_request_duration_seconds",
                    "From a request's arrival to its response's head, by matched route and method.",
                )
                .namespace(PREFIX)
                .buckets(DEFAULT_BUCKETS.to_vec()),
                &["route", "method"],
            ),
        );
        Self { requests, latency }
    }

    fn observe(&self, route: &str, method: &str, status: &str, started: Instant) {
        let seconds = started.elapsed().as_secs_f64();
        self.requests
            .with_label_values(&[route, method, status])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(seconds);
    }
}

/// The middleware: runs the request and counts it.
pub(crate) async fn observe(
    State(metrics): State<Arc<Metrics>>,
    request: Request,
    next: Next,
) -> Response {
    let started = Instant::now();
    // A reference count, not a copy of the text.
    let route = request.extensions().get::<MatchedPath>().cloned();
    let method = method_label(request.method());
    let response = next.run(request).await;
    metrics.http.observe(
        route.as_ref().map_or(UNMATCHED, MatchedPath::as_str),
        method,
        response.status().as_str(),
        started,
    );
    response
}

/// The method as a label: the standard ones by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}
