//! Model providers: where a rendered prompt goes to become text.
//!
//! A closed set, so an enum ([`Provider`]): the deterministic mock, and any server speaking
//! the OpenAI chat-completions protocol, in two dialects (OpenAI-compatible servers and
//! Writer's own chat API). Each configured provider is a [`Backend`]: the provider behind a
//! [`gate::Gate`] that enforces its concurrency, rate limits, 429 pauses and circuit breaker
//! for every caller in the process. An application may name several providers in order of
//! preference; `route.rs` sends each call to the first whose gate has room. Providers never
//! touch the store: the engine calls them between a claim and a completion and sorts their
//! errors with [`ProviderError::is_retryable`].

pub mod config;
pub(crate) mod gate;
pub(crate) mod mock;
mod openai;
mod route;
mod stream;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;
use serde::Serialize;

use crate::store::limits::{Limits, SharedLimits};
use crate::store::{OrgId, Priority, Usage};
use config::{Concurrency, ProviderConfig, ProviderKind};
use gate::{AutoLimit, Gate, GateView};

/// How long past its timeout a call's shared slot stays taken if its node dies.
const SHARED_SLOT_MARGIN: Duration = Duration::from_secs(5);

/// The name applications use when they do not name a provider.
pub(crate) const DEFAULT_PROVIDER: &str = "default";

/// One chat request, already rendered.
#[derive(Clone, Debug)]
pub(crate) struct ChatRequest {
    /// The model to ask; the provider's default when `None`.
    pub(crate) model: Option<String>,
    /// The system message, if the application has one.
    pub(crate) system: Option<String>,
    /// The user message.
    pub(crate) user: String,
    /// Images sent with the user message, in order.
    pub(crate) images: Vec<Image>,
    /// Sampling temperature.
    pub(crate) temperature: Option<f32>,
    /// Output length limit.
    pub(crate) max_tokens: Option<u32>,
    /// Whose call it is.
    pub(crate) caller: Caller,
}

/// Whose call it is: the unit of work, and its place in the gate's turns.
#[derive(Clone, Debug)]
pub(crate) struct Caller {
    /// A stable key for this unit of work (the job id), so a provider can tell attempts apart.
    pub(crate) key: String,
    /// The organisation it is for: the gate serves organisations in turns.
    pub(crate) org: OrgId,
    /// How urgent it is.
    pub(crate) priority: Priority,
}

impl ChatRequest {
    /// A token estimate for rate budgets: ~4 characters a token, plus the output allowance
    /// and [`TOKENS_PER_IMAGE`] an image.
    fn estimated_tokens(&self) -> u32 {
        let chars = self.user.len() + self.system.as_ref().map_or(0, String::len);
        let images = self.images.len() as u32 * TOKENS_PER_IMAGE;
        (chars / 4) as u32 + images + self.max_tokens.unwrap_or(256)
    }
}

/// What one image counts for in a token estimate (a mid-sized image in OpenAI's tiling).
const TOKENS_PER_IMAGE: u32 = 800;

/// An image sent to the model with the user message.
#[derive(Clone, Debug)]
pub(crate) struct Image {
    /// Its MIME type (`image/png`, ...).
    pub(crate) mime: &'static str,
    /// Its bytes.
    pub(crate) data: bytes::Bytes,
}

impl Image {
    /// The image as a `data:` URL, as OpenAI-compatible servers and Writer take it.
    pub(crate) fn data_url(&self) -> String {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(&self.data);
        format!("data:{};base64,{encoded}", self.mime)
    }
}

/// A successful generation.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Completion {
    /// The generated text.
    pub(crate) text: String,
    /// Tokens used, when the backend said.
    pub(crate) usage: Option<Usage>,
    /// The model that answered: as the backend named it, else the one it was asked for.
    pub(crate) model: Option<String>,
}

/// What kind of failure a call met, for counters and for the gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ErrorClass {
    /// The connection could not be made or broke.
    Connect,
    /// No answer in time (whole request, or silence mid-stream).
    Timeout,
    /// 429: the backend asked us to slow down.
    RateLimited,
    /// 503 or 529: the backend is overloaded.
    Overloaded,
    /// 408 or another 5xx: the backend failed.
    Server,
    /// An answer we could not read.
    Malformed,
    /// 4xx other than 408/429: the backend refused the request.
    Rejected,
}

impl ErrorClass {
    /// Whether the backend said "not now" (429, 503, 529): the call should wait for it,
    /// not count as a failed attempt.
    pub(crate) fn is_backpressure(self) -> bool {
        matches!(self, Self::RateLimited | Self::Overloaded)
    }

    /// The counter name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "connect",
            Self::Timeout => "timeout",
            Self::RateLimited => "rate_limited",
            Self::Overloaded => "overloaded",
            Self::Server => "server",
            Self::Malformed => "malformed",
            Self::Rejected => "rejected",
        }
    }
}

/// Why a provider call failed, sorted into what is worth another attempt.
#[derive(Clone, Debug, thiserror::Error)]
pub(crate) enum ProviderError {
    /// A passing failure: try again later.
    #[error("{message}")]
    Retryable {
        /// What kind of failure.
        class: ErrorClass,
        /// What went wrong, for the job's `error`.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// A failure another attempt cannot fix (a bad request, a refused prompt).
    #[error("{message}")]
    Fatal {
        /// What kind of failure.
        class: ErrorClass,
        /// The backend's message.
        message: String,
    },
}

impl ProviderError {
    /// Whether another attempt may succeed.
    pub(crate) fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }

    /// The kind of failure.
    pub(crate) fn class(&self) -> ErrorClass {
        match self {
            Self::Retryable { class, .. } | Self::Fatal { class, .. } => *class,
        }
    }

    /// The wait the backend asked for.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Retryable { retry_after, .. } => *retry_after,
            Self::Fatal { .. } => None,
        }
    }
}

/// A provider's protocol client.
#[derive(Debug)]
pub(crate) enum Provider {
    /// The deterministic built-in mock.
    Mock(mock::MockProvider),
    /// An OpenAI-compatible server, or Writer's chat API.
    OpenAi(openai::OpenAiClient),
}

/// A configured provider behind its gate.
#[derive(Debug)]
pub(crate) struct Backend {
    name: String,
    kind: ProviderKind,
    model: Option<String>,
    provider: Provider,
    gate: Arc<Gate>,
}

/// A provider as operators see it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct BackendView {
    /// Its name in the configuration.
    pub(crate) name: String,
    /// `openai`, `writer` or `mock`.
    pub(crate) kind: &'static str,
    /// Its default model.
    pub(crate) model: Option<String>,
    /// Limits, load, pause, circuit, errors, tokens and figures.
    #[serde(flatten)]
    pub(crate) gate: GateView,
}

impl Backend {
    /// Generates the whole text, waiting at the gate first.
    pub(crate) async fn complete(&self, request: ChatRequest) -> Result<Completion, ProviderError> {
        let request = self.with_model(request);
        let admission = self.admit(&request).await;
        // The HTTP client's call is a large future; boxed, it does not make every attempt
        // (and every job's task, which holds one) that large, whatever its provider.
        let result = match &self.provider {
            Provider::Mock(mock) => mock.complete(&request).await,
            Provider::OpenAi(client) => Box::pin(client.complete(&request)).await,
        };
        admission
            .settle(result.as_ref().map(|done| done.usage))
            .await;
        result.map(|done| Completion {
            model: done.model.or(request.model),
            ..done
        })
    }

    /// Generates the text as a stream of pieces; the gate's slot is held until it ends.
    pub(crate) async fn stream(
        &self,
        request: ChatRequest,
    ) -> BoxStream<'static, Result<String, ProviderError>> {
        let request = self.with_model(request);
        let admission = self.admit(&request).await;
        let pieces = match &self.provider {
            Provider::Mock(mock) => mock.stream(request),
            Provider::OpenAi(client) => client.stream(request),
        };
        stream::settled(pieces, admission)
    }

    /// Its name in the configuration.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The backend as operators see it.
    pub(crate) fn view(&self) -> BackendView {
        BackendView {
            name: self.name.clone(),
            kind: match self.kind {
                ProviderKind::Openai => "openai",
                ProviderKind::Writer => "writer",
                ProviderKind::Mock => "mock",
            },
            model: self.model.clone(),
            gate: self.gate.view(),
        }
    }

    /// Whether a request without a model can be served.
    pub(crate) fn has_default_model(&self) -> bool {
        self.model.is_some() || self.kind == ProviderKind::Mock
    }

    /// One line for the startup log.
    pub(crate) fn describe(&self) -> String {
        match &self.provider {
            Provider::Mock(mock) => mock.describe(),
            Provider::OpenAi(client) => client.describe(),
        }
    }

    /// Waits at the gate for `request`'s turn.
    async fn admit(&self, request: &ChatRequest) -> gate::Admission {
        let caller = &request.caller;
        let tokens = request.estimated_tokens();
        self.gate
            .admit(tokens, caller.org.as_str(), caller.priority)
            .await
    }

    fn with_model(&self, mut request: ChatRequest) -> ChatRequest {
        if request.model.is_none() {
            request.model = self.model.clone();
        }
        request
    }
}

/// A provider configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("provider '{name}': {message}")]
pub struct ProviderConfigError {
    /// The provider's name.
    pub(crate) name: String,
    /// What is wrong.
    pub(crate) message: String,
}

/// The providers by name.
#[derive(Debug)]
pub(crate) struct Providers {
    by_name: BTreeMap<String, Arc<Backend>>,
}

impl Providers {
    /// Builds every configured provider; with `shared`, their limits hold across the cluster.
    pub(crate) fn build(
        configs: &BTreeMap<String, ProviderConfig>,
        shared: Option<Arc<dyn SharedLimits>>,
    ) -> Result<Self, ProviderConfigError> {
        let mut by_name = BTreeMap::new();
        for (name, config) in configs {
            let error = |message: String| ProviderConfigError {
                name: name.clone(),
                message,
            };
            let (max_concurrency, auto) = match config.max_concurrency {
                Concurrency::Fixed(0) => {
                    return Err(error("max_concurrency must be at least 1".into()));
                }
                Concurrency::Fixed(n) => (n, None),
                Concurrency::Auto if config.auto_min == 0 || config.auto_min > config.auto_max => {
                    return Err(error(format!(
                        "auto_min ({}) must be at least 1 and at most auto_max ({})",
                        config.auto_min, config.auto_max
                    )));
                }
                Concurrency::Auto => (
                    config.auto_max,
                    Some(AutoLimit::new(config.auto_min, config.auto_max)),
                ),
            };
            let provider = match config.kind {
                ProviderKind::Mock => Provider::Mock(mock::MockProvider::new(mock::MockSettings {
                    latency: config.latency,
                })),
                ProviderKind::Openai | ProviderKind::Writer => {
                    Provider::OpenAi(openai::OpenAiClient::new(config).map_err(error)?)
                }
            };
            // The mock runs inside each node: only real servers share limits.
            let shared = match config.kind {
                ProviderKind::Mock => None,
                _ => shared
                    .clone()
                    .map(|s| (s, config.timeout + SHARED_SLOT_MARGIN)),
            };
            let gate = Gate::new(
                name.clone(),
                Limits {
                    max_concurrency,
                    requests_per_minute: config.requests_per_minute,
                    tokens_per_minute: config.tokens_per_minute,
                },
                auto,
                shared,
            );
            let backend = Backend {
                name: name.clone(),
                kind: config.kind,
                model: config.model.clone(),
                provider,
                gate,
            };
            by_name.insert(name.clone(), Arc::new(backend));
        }
        Ok(Self { by_name })
    }

    /// The provider called `name`.
    pub(crate) fn get(&self, name: &str) -> Option<&Arc<Backend>> {
        self.by_name.get(name)
    }

    /// Provider names, sorted, for messages.
    pub(crate) fn names(&self) -> Vec<&str> {
        self.by_name.keys().map(String::as_str).collect()
    }

    /// Every provider, as operators see it.
    pub(crate) fn views(&self) -> Vec<BackendView> {
        self.by_name.values().map(|b| b.view()).collect()
    }

    /// Every provider.
    pub(crate) fn all(&self) -> impl Iterator<Item = &Arc<Backend>> {
        self.by_name.values()
    }
}
