//! The OpenAI chat-completions protocol, as vLLM, Ollama, llama.cpp's server, LM Studio and
//! OpenAI serve it at `{base_url}/chat/completions`, and as Writer serves it at
//! `{base_url}/v1/chat`. Answers are read leniently: unknown fields, a missing `usage`, an
//! empty `finish_reason`, and error bodies in JSON, HTML or plain text.

use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use reqwest::header::HeaderMap;
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

use super::config::{ProviderConfig, ProviderKind, Secret};
use super::{ChatRequest, Completion, ErrorClass, ProviderError};
use crate::store::Usage;

/// Writer's API, when a `writer` provider names no base URL.
const WRITER_BASE_URL: &str = "https://api.writer.com";
/// Characters of an error body kept in a job's error.
const MAX_ERROR_CHARS: usize = 500;

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
            .pool_max_idle_per_host(config.max_concurrency)
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
                    Ok(response) => super::openai_sse::pieces(response, idle),
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
pub(super) fn usage(value: &Value) -> Option<Usage> {
    let prompt = value["prompt_tokens"].as_u64()?;
    let completion = value["completion_tokens"].as_u64().unwrap_or(0);
    Some(Usage {
        prompt_tokens: prompt.min(u32::MAX.into()) as u32,
        completion_tokens: completion.min(u32::MAX.into()) as u32,
    })
}

/// A transport failure: connection errors and timeouts are always worth another attempt.
pub(super) fn transport(e: reqwest::Error) -> ProviderError {
    let class = if e.is_timeout() {
        ErrorClass::Timeout
    } else {
        ErrorClass::Connect
    };
    let what = if e.is_timeout() {
        "timed out"
    } else {
        "connection failed"
    };
    ProviderError::Retryable {
        class,
        message: format!("model server {what}: {}", error_chain(&e)),
        retry_after: None,
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

pub(super) fn malformed(message: &str) -> ProviderError {
    ProviderError::Retryable {
        class: ErrorClass::Malformed,
        message: format!("unreadable answer from the model server: {message}"),
        retry_after: None,
    }
}

/// Sorts an error status: 408, 429 and 5xx are retryable (429 with the wait it asked for);
/// other statuses are fatal and carry the backend's own message.
async fn status_error(response: Response) -> ProviderError {
    let status = response.status();
    let retry_after = retry_after(response.headers());
    let text = response.text().await.unwrap_or_default();
    let message = format!(
        "model server answered {}: {}",
        status.as_u16(),
        error_message(&text)
    );
    match status {
        StatusCode::TOO_MANY_REQUESTS => ProviderError::Retryable {
            class: ErrorClass::RateLimited,
            message,
            retry_after,
        },
        StatusCode::REQUEST_TIMEOUT => ProviderError::Retryable {
            class: ErrorClass::Server,
            message,
            retry_after,
        },
        s if s.is_server_error() => ProviderError::Retryable {
            class: ErrorClass::Server,
            message,
            retry_after,
        },
        _ => ProviderError::Fatal {
            class: ErrorClass::Rejected,
            message,
        },
    }
}

/// The human part of an error body: `error.message`, `error`, `message` or `detail` of a
/// JSON body, else the text itself, shortened.
fn error_message(text: &str) -> String {
    let from_json = serde_json::from_str::<Value>(text).ok().and_then(|v| {
        [
            &v["error"]["message"],
            &v["error"],
            &v["message"],
            &v["detail"],
        ]
        .into_iter()
        .find_map(|field| field.as_str().map(str::to_owned))
    });
    let message = from_json.unwrap_or_else(|| text.trim().to_owned());
    let message = if message.is_empty() {
        "(no body)".to_owned()
    } else {
        message
    };
    message.chars().take(MAX_ERROR_CHARS).collect()
}

/// `retry-after-ms`, else `retry-after` in seconds or as an HTTP date.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        return Some(Duration::from_secs_f64(ms.max(0.0) / 1000.0));
    }
    let value = header("retry-after")?;
    if let Ok(seconds) = value.parse::<f64>() {
        return Some(Duration::from_secs_f64(seconds.max(0.0)));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(SystemTime::now()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_messages_come_from_json_or_text() {
        assert_eq!(
            error_message(r#"{"error": {"message": "bad model"}}"#),
            "bad model"
        );
        assert_eq!(error_message(r#"{"error": "nope"}"#), "nope");
        assert_eq!(error_message(r#"{"detail": "missing"}"#), "missing");
        assert_eq!(
            error_message("<html>502 Bad Gateway</html>"),
            "<html>502 Bad Gateway</html>"
        );
        assert_eq!(error_message(""), "(no body)");
    }

    #[test]
    fn retry_after_reads_milliseconds_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", "2".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert("retry-after-ms", "1500".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(1500)));
        let mut dated = HeaderMap::new();
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(30));
        dated.insert("retry-after", later.parse().unwrap());
        let wait = retry_after(&dated).unwrap();
        assert!(wait > Duration::from_secs(25) && wait <= Duration::from_secs(30));
    }

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
