//! Model providers: where a rendered prompt goes to become text.
//!
//! A closed set, so an enum: [`Provider::Mock`] today; OpenAI-compatible servers and Writer's
//! chat API join it as variants. Providers never touch the store: the engine calls them
//! between a claim and a completion and classifies their errors with
//! [`ProviderError::is_retryable`].

pub mod mock;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::BoxStream;

/// The name applications use when they do not name a provider.
pub const DEFAULT_PROVIDER: &str = "default";

/// One chat request, already rendered.
#[derive(Clone, Debug)]
pub struct ChatRequest {
    /// The model to ask; the provider's default when `None`.
    pub model: Option<String>,
    /// The system message, if the application has one.
    pub system: Option<String>,
    /// The user message.
    pub user: String,
    /// Sampling temperature.
    pub temperature: Option<f32>,
    /// Output length limit.
    pub max_tokens: Option<u32>,
    /// A stable key for this unit of work (the job id), so a provider can tell attempts apart.
    pub key: String,
}

/// A successful generation.
#[derive(Clone, Debug, PartialEq)]
pub struct Completion {
    /// The generated text.
    pub text: String,
}

/// Why a provider call failed, sorted into what is worth another attempt.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ProviderError {
    /// A passing failure (timeout, overload, 5xx): try again later.
    #[error("{message}")]
    Retryable {
        /// What went wrong, for the job's `error`.
        message: String,
        /// How long the provider asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// A failure another attempt cannot fix (a bad request, a refused prompt).
    #[error("{0}")]
    Fatal(String),
}

impl ProviderError {
    /// Whether another attempt may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Retryable { .. })
    }
}

/// A configured model backend.
#[derive(Debug)]
pub enum Provider {
    /// The deterministic built-in mock.
    Mock(mock::MockProvider),
}

impl Provider {
    /// Generates the whole text.
    pub async fn complete(&self, request: &ChatRequest) -> Result<Completion, ProviderError> {
        match self {
            Self::Mock(mock) => mock.complete(request).await,
        }
    }

    /// Generates the text as a stream of pieces.
    pub fn stream(
        &self,
        request: ChatRequest,
    ) -> BoxStream<'static, Result<String, ProviderError>> {
        match self {
            Self::Mock(mock) => mock.stream(request),
        }
    }

    /// One line for the startup log.
    pub fn describe(&self) -> String {
        match self {
            Self::Mock(mock) => mock.describe(),
        }
    }
}

/// The providers by name.
#[derive(Debug)]
pub struct Providers {
    by_name: HashMap<String, Arc<Provider>>,
}

impl Providers {
    /// Only the mock, answering to both `default` and `mock`.
    pub fn mock_only(settings: mock::MockSettings) -> Self {
        let mock = Arc::new(Provider::Mock(mock::MockProvider::new(settings)));
        let by_name = [DEFAULT_PROVIDER, "mock"]
            .into_iter()
            .map(|name| (name.to_owned(), mock.clone()))
            .collect();
        Self { by_name }
    }

    /// The provider called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Provider>> {
        self.by_name.get(name)
    }

    /// Provider names, sorted, for messages.
    pub fn names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.by_name.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }
}
