//! `mock-llm`: an OpenAI-compatible model server for tests and benchmarks.
//!
//! It answers `POST /v1/chat/completions` and Writer's `POST /v1/chat` (whole or streamed),
//! `GET /v1/models`, and `GET /stats` / `POST /stats/reset`, which say what it saw: requests,
//! peak concurrency, faults, tokens, and requests that came back before a 429's retry-after.
//! Its text is deterministic (see `text`), its latency and capacity configurable, and it
//! injects faults at seeded rates (see `faults`), so a client's retries, timeouts and
//! concurrency limits can be tested and measured against it. It keeps nothing on disk.
//!
//! Inside: `args` (the flags), `wire` (the OpenAI request and answer shapes), `error` (the
//! OpenAI error shape), `ledger` (the counters), `admission` (capacity and the in-flight
//! guard), `chat` and `stream` (the chat route), `text` and `faults`.

mod admission;
mod args;
mod chat;
mod clock;
mod error;
mod faults;
mod ledger;
mod stream;
mod text;
mod wire;

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

pub use args::{InvalidRate, MockLlmArgs, OverCapacity, Rate};
pub use error::MockError;
pub use faults::HANG;
pub use ledger::{FAULT_KINDS, GRACE, RECENT, Stats};
pub use text::TOKENS_PER_IMAGE;

use faults::Fault;
use ledger::Ledger;

/// Request bodies up to this size are read (images come as data URLs).
pub const MAX_BODY_BYTES: usize = 64 * 1024 * 1024;

/// The mock model server's shared state.
pub struct MockLlm {
    config: MockLlmArgs,
    /// Fault draws, in arrival order after admission.
    rng: Mutex<fastrand::Rng>,
    /// `None` when capacity is unlimited.
    slots: Option<Arc<Semaphore>>,
    ledger: Mutex<Ledger>,
    /// Completion ids; never reset, so ids stay unique across `/stats/reset`.
    ids: AtomicU64,
    /// Set once the server stops, to release hung requests.
    stopping: watch::Sender<bool>,
}

impl MockLlm {
    /// A mock configured by `config`.
    pub fn new(config: MockLlmArgs) -> Arc<Self> {
        Arc::new(Self {
            rng: Mutex::new(fastrand::Rng::with_seed(config.seed)),
            slots: (config.capacity > 0).then(|| Arc::new(Semaphore::new(config.capacity))),
            ledger: Mutex::new(Ledger::new(config.retry_after, config.grace)),
            ids: AtomicU64::new(1),
            stopping: watch::Sender::new(false),
            config,
        })
    }

    /// Every route, for serving or for driving in process.
    pub fn router(self: &Arc<Self>) -> Router {
        Router::new()
            .route("/v1/chat/completions", post(chat::complete))
            .route("/v1/chat", post(chat::complete))
            .route("/v1/models", get(models))
            .route("/stats", get(stats))
            .route("/stats/reset", post(reset))
            .fallback(error::unknown_path)
            .method_not_allowed_fallback(error::wrong_method)
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .with_state(self.clone())
    }

    /// What the mock has seen, as `GET /stats` answers.
    pub fn stats(&self) -> Stats {
        self.ledger().snapshot()
    }

    /// Zeroes the counters, as `POST /stats/reset` does.
    pub fn reset(&self) {
        self.ledger().reset();
    }

    /// Releases hung requests (their connections are dropped); used when the server stops.
    pub fn stop(&self) {
        self.stopping.send_replace(true);
    }

    /// Resolves once [`Self::stop`] has been called.
    async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        // The sender lives in `self`, so the wait cannot fail while we hold `self`.
        let _ = stopping.wait_for(|stopped| *stopped).await;
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn draw_fault(&self) -> Option<Fault> {
        let roll = self
            .rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .f64();
        Fault::draw(roll, &self.config)
    }

    fn next_id(&self) -> u64 {
        self.ids.fetch_add(1, Ordering::Relaxed)
    }

    /// Checks `Authorization: Bearer KEY` when `--api-key` is set.
    fn authorize(&self, headers: &HeaderMap) -> Result<(), MockError> {
        let Some(key) = &self.config.api_key else {
            return Ok(());
        };
        let sent = headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if sent.is_some_and(|sent| sent.trim() == key) {
            Ok(())
        } else {
            Err(MockError::Unauthorized)
        }
    }
}

/// Serves the mock on `listener` until `shutdown` resolves; then hung requests are released
/// and the others may finish. `args.listen` is not used: the caller has bound the listener.
pub async fn serve(
    args: MockLlmArgs,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let mock = MockLlm::new(args);
    tracing::info!(
        address = %listener.local_addr()?,
        model = %mock.config.model,
        "mock-llm is serving"
    );
    let stopping = mock.clone();
    axum::serve(listener, mock.router())
        .with_graceful_shutdown(async move {
            shutdown.await;
            stopping.stop();
        })
        .await
}

async fn models(
    State(mock): State<Arc<MockLlm>>,
    headers: HeaderMap,
) -> Result<Json<Value>, MockError> {
    mock.authorize(&headers)?;
    Ok(Json(json!({
        "object": "list",
        "data": [{"id": mock.config.model, "object": "model", "owned_by": "scriptorium"}],
    })))
}

async fn stats(State(mock): State<Arc<MockLlm>>) -> Json<Stats> {
    Json(mock.stats())
}

async fn reset(State(mock): State<Arc<MockLlm>>) -> Json<Stats> {
    mock.reset();
    Json(mock.stats())
}
