//! The OpenAI chat-completions protocol, as vLLM, Ollama, llama.cpp's server, LM Studio and
//! OpenAI serve it at `{base_url}/chat/completions`, and as Writer serves it at
//! `{base_url}/v1/chat`. Answers are read leniently: unknown fields, a missing `usage`, an
//! empty `finish_reason`, and error bodies in JSON, HTML or plain text.
//!
//! The arrows point one way: this client ([`OpenAiClient`]) sends requests and reads whole
//! answers, and hands a streamed answer to `sse.rs`, the stream reader; both build their
//! errors with `errors.rs` (transport failures, unreadable answers, error statuses), which
//! uses neither.

mod errors;
mod sse;

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::Response;
use serde_json::{Value, json};

use super::config::{Concurrency, ProviderConfig, ProviderKind, Secret};
use super::{ChatRequest, Completion, ErrorClass, ProviderError};
use crate::store::Usage;
use errors::{malformed, status_error, transport};

/// Writer's API, when a `writer` provider names no base URL.
const WRITER_BASE_URL: &str = "https://api.writer.com";

/// A client for one OpenAI-compatible (or Writer) server.
#[derive(Clone, Debug)]
pub(crate) struct OpenAiClient {
    http: reqwest::Client,
    url: String,
    api_key: Option<Secret>,
    idle_timeout: Duration,
}

impl OpenAiClient {
    /// A client for `config`.
    pub(crate) fn new(config: &ProviderConfig) -> Result<Self, String> {
        let base = match (config.kind, &config.base_url) {
            (_, Some(url)) => url.trim_end_matches('/').to_owned(),
            (ProviderKind::Writer, None) => WRITER_BASE_URL.to_owned(),
            _ => return Err("base_url is required".into()),
        };
        let url = match config.kind {
            ProviderKind::Writer => format!("{base}/v1/chat"),
            _ => format!("{base}/chat/completions"),
        };
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.timeout)
            .pool_max_idle_per_host(match config.max_concurrency {
                Concurrency::Fixed(n) => n,
                Concurrency::Auto => config.auto_max,
            })
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        Ok(Self {
            http,
            url,
            api_key: config.api_key.clone(),
            idle_timeout: config.idle_timeout,
        })
    }

    /// One line for the startup log.
    pub(crate) fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.url,
            if self.api_key.is_some() {
                "with a key"
            } else {
                "no key"
            }
        )
    }

    /// Sends the request and reads the whole answer.
    pub(crate) async fn complete(
        &self,
        request: &ChatRequest,
    ) -> Result<Completion, ProviderError> {
        let response = self.send(request, false).await?;
        let body = response.bytes().await.map_err(transport)?;
        let answer: Value =
            serde_json::from_slice(&body).map_err(|e| ProviderError::Retryable {
                class: ErrorClass::Malformed,
                message: format!("the model server's answer is not JSON: {e}"),
                retry_after: None,
            })?;
        let text = answer["choices"][0]["message"]["content"]
            .as_str()
            .ok_or_else(|| malformed("the answer has no choices[0].message.content"))?;
        Ok(Completion {
            text: text.to_owned(),
            usage: usage(&answer["usage"]),
            model: answer["model"].as_str().map(str::to_owned),
        })
    }

    /// Sends the request with `stream: true` and yields the content of each chunk.
    pub(crate) fn stream(
        &self,
        request: ChatRequest,
    ) -> BoxStream<'static, Result<String, ProviderError>> {
        let client = self.clone();
        let idle = self.idle_timeout;
        Box::pin(
            futures_util::stream::once(async move { client.send(&request, true).await }).flat_map(
                move |sent| match sent {
                    Ok(response) => sse::pieces(response, idle),
                    Err(e) => futures_util::stream::once(async move { Err(e) }).boxed(),
                },
            ),
        )
    }

    async fn send(&self, request: &ChatRequest, stream: bool) -> Result<Response, ProviderError> {
        let mut call = self.http.post(&self.url).json(&body(request, stream));
        if let Some(key) = &self.api_key {
            call = call.bearer_auth(key.expose());
        }
        let response = call.send().await.map_err(transport)?;
        if response.status().is_success() {
            return Ok(response);
        }
        Err(status_error(response).await)
    }
}

fn body(request: &ChatRequest, stream: bool) -> Value {
    let mut messages = Vec::new();
    if let Some(system) = &request.system {
        messages.push(json!({"role": "system", "content": system}));
    }
    if request.images.is_empty() {
        messages.push(json!({"role": "user", "content": request.user}));
    } else {
        let mut parts = vec![json!({"type": "text", "text": request.user})];
        parts.extend(
            request
                .images
                .iter()
                .map(|image| json!({"type": "image_url", "image_url": {"url": image.data_url()}})),
        );
        messages.push(json!({"role": "user", "content": parts}));
    }
    let mut body = json!({"messages": messages, "stream": stream});
    if let Some(model) = &request.model {
        body["model"] = json!(model);
    }
    if let Some(max_tokens) = request.max_tokens {
        body["max_tokens"] = json!(max_tokens);
    }
    if let Some(temperature) = request.temperature {
        body["temperature"] = json!(temperature);
    }
    if stream {
        body["stream_options"] = json!({"include_usage": true});
    }
    body
}

/// `usage` as the server reported it, if it did.
fn usage(value: &Value) -> Option<Usage> {
    let prompt = value["prompt_tokens"].as_u64()?;
    let completion = value["completion_tokens"].as_u64().unwrap_or(0);
    Some(Usage {
        prompt_tokens: prompt.min(u32::MAX.into()) as u32,
        completion_tokens: completion.min(u32::MAX.into()) as u32,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_optional_and_lenient() {
        assert_eq!(usage(&json!(null)), None);
        assert_eq!(
            usage(&json!({"prompt_tokens": 5, "completion_tokens": 7, "extra": 1})),
            Some(Usage {
                prompt_tokens: 5,
                completion_tokens: 7
            })
        );
    }
}
