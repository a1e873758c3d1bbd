//! How providers are configured: `[providers.NAME]` tables in the config file, or, for the
//! quickstart, `SCRIPTORIUM_OPENAI_BASE_URL` (+ `_API_KEY`, `_MODEL`) for the default one.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use super::DEFAULT_PROVIDER;

/// The protocol a provider speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// `POST {base_url}/chat/completions`: vLLM, Ollama, llama.cpp, LM Studio, OpenAI.
    Openai,
    /// Writer's chat API: `POST {base_url}/v1/chat`.
    Writer,
    /// The built-in deterministic mock.
    Mock,
}

/// One `[providers.NAME]` table.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The protocol.
    pub kind: ProviderKind,
    /// Where the server is (`http://127.0.0.1:8000/v1` for OpenAI-compatible servers,
    /// `https://api.writer.com` for Writer).
    pub base_url: Option<String>,
    /// The environment variable holding the API key (never the key itself).
    pub api_key_env: Option<String>,
    /// The model used when an application names none.
    pub model: Option<String>,
    /// Requests in flight to this provider at most, across all applications: a number, or
    /// `"auto"` to let the engine find the server's knee between `auto_min` and `auto_max`.
    #[serde(default, deserialize_with = "concurrency")]
    pub max_concurrency: Concurrency,
    /// The lowest limit `"auto"` may choose.
    #[serde(default = "default_auto_min")]
    pub auto_min: usize,
    /// The highest limit `"auto"` may choose.
    #[serde(default = "default_auto_max")]
    pub auto_max: usize,
    /// Requests per minute at most (0: unlimited).
    #[serde(default)]
    pub requests_per_minute: u32,
    /// Tokens (prompt + completion) per minute at most (0: unlimited).
    #[serde(default)]
    pub tokens_per_minute: u32,
    /// The whole request, first byte to last.
    #[serde(
        default = "default_timeout",
        deserialize_with = "crate::config::duration"
    )]
    pub timeout: Duration,
    /// Establishing the connection.
    #[serde(
        default = "default_connect_timeout",
        deserialize_with = "crate::config::duration"
    )]
    pub connect_timeout: Duration,
    /// Silence between two chunks of a stream.
    #[serde(
        default = "default_idle_timeout",
        deserialize_with = "crate::config::duration"
    )]
    pub idle_timeout: Duration,
    /// The mock's latency per call.
    #[serde(default, deserialize_with = "crate::config::duration")]
    pub latency: Duration,
    /// The key itself, read from `api_key_env` when settings are resolved.
    #[serde(skip)]
    pub api_key: Option<Secret>,
}

/// How many requests a provider may have in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Concurrency {
    /// At most this many.
    Fixed(usize),
    /// As many as the server takes before its latency grows without more throughput, found
    /// while running (see `providers::gate::limiter`).
    Auto,
}

impl Default for Concurrency {
    /// 64.
    fn default() -> Self {
        Self::Fixed(64)
    }
}

/// `max_concurrency`: a number or `"auto"`.
fn concurrency<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Concurrency, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Number(usize),
        Word(String),
    }
    match Raw::deserialize(d) {
        Ok(Raw::Number(n)) => Ok(Concurrency::Fixed(n)),
        Ok(Raw::Word(word)) if word == "auto" => Ok(Concurrency::Auto),
        _ => Err(serde::de::Error::custom(
            "max_concurrency must be a whole number or \"auto\"",
        )),
    }
}

/// A secret string (a provider's API key). `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub(crate) fn new(secret: String) -> Self {
        Self(secret)
    }

    /// The secret itself, to send.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

fn default_auto_min() -> usize {
    1
}

fn default_auto_max() -> usize {
    512
}

fn default_timeout() -> Duration {
    Duration::from_secs(120)
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_idle_timeout() -> Duration {
    Duration::from_secs(30)
}

impl ProviderConfig {
    /// A provider of `kind` with every default.
    pub fn new(kind: ProviderKind) -> Self {
        Self {
            kind,
            base_url: None,
            api_key_env: None,
            model: None,
            max_concurrency: Concurrency::default(),
            auto_min: default_auto_min(),
            auto_max: default_auto_max(),
            requests_per_minute: 0,
            tokens_per_minute: 0,
            timeout: default_timeout(),
            connect_timeout: default_connect_timeout(),
            idle_timeout: default_idle_timeout(),
            latency: Duration::ZERO,
            api_key: None,
        }
    }
}

/// The providers to run: those configured, else one `default` from the quickstart
/// environment variables, else the mock as `default` (with `mock_latency`).
pub(crate) fn resolve(
    configured: BTreeMap<String, ProviderConfig>,
    env: &impl Fn(&str) -> Option<String>,
    mock_latency: Duration,
) -> BTreeMap<String, ProviderConfig> {
    if !configured.is_empty() {
        return configured;
    }
    let provider = match env("SCRIPTORIUM_OPENAI_BASE_URL").filter(|u| !u.is_empty()) {
        Some(base_url) => ProviderConfig {
            base_url: Some(base_url),
            api_key_env: env("SCRIPTORIUM_OPENAI_API_KEY")
                .map(|_| "SCRIPTORIUM_OPENAI_API_KEY".into()),
            model: env("SCRIPTORIUM_OPENAI_MODEL"),
            ..ProviderConfig::new(ProviderKind::Openai)
        },
        None => ProviderConfig {
            latency: mock_latency,
            ..ProviderConfig::new(ProviderKind::Mock)
        },
    };
    BTreeMap::from([(DEFAULT_PROVIDER.to_owned(), provider)])
}
