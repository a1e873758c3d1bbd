//! The one HTTP client of the command line: a server (ours, or any Writer-compatible one such
//! as api.writer.com), a key, and the answers read in Writer's error shape.

use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Client, Method, RequestBuilder, Response, StatusCode};
use serde::Serialize;
use serde_json::Value;

/// Which server, and whose key.
#[derive(clap::Args)]
pub(super) struct ServerArgs {
    /// The server's base URL (as the Writer SDKs take it).
    #[arg(
        long = "server",
        env = "WRITER_BASE_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,
    /// An API key of the organisation the applications belong to.
    #[arg(long, env = "WRITER_API_KEY", hide_env_values = true)]
    api_key: String,
}

/// A server and the key to call it with.
pub(super) struct Remote {
    http: Client,
    base: String,
    key: String,
}

impl Remote {
    /// A client for `server`; every request but a streamed one times out after 60 s.
    pub(super) fn new(server: ServerArgs) -> anyhow::Result<Self> {
        let http = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Self {
            http,
            base: server.url.trim_end_matches('/').to_owned(),
            key: server.api_key,
        })
    }

    /// The server's base URL, for messages.
    pub(super) fn base(&self) -> &str {
        &self.base
    }

    /// `method path`, authenticated, with the default timeout; add a body or headers to it.
    pub(super) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .timeout(Duration::from_secs(60))
    }

    /// Sends `request`; an error says the server could not be reached.
    pub(super) async fn send(&self, request: RequestBuilder) -> anyhow::Result<Response> {
        request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))
    }

    /// `GET path`: the answer, or the server's message as the error.
    pub(super) async fn get(&self, path: &str) -> anyhow::Result<Value> {
        answer(self.send(self.request(Method::GET, path)).await?).await
    }

    /// `GET path`, where a 404 is `None`.
    pub(super) async fn find(&self, path: &str) -> anyhow::Result<Option<Value>> {
        let response = self.send(self.request(Method::GET, path)).await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        answer(response).await.map(Some)
    }

    /// `method path` with the JSON `body`: the answer, or the server's message as the error.
    pub(super) async fn call<T: Serialize + ?Sized>(
        &self,
        method: Method,
        path: &str,
        body: &T,
    ) -> anyhow::Result<Value> {
        answer(self.send(self.request(method, path).json(body)).await?).await
    }

    /// `POST path` without a body (cancel, retry).
    pub(super) async fn post_empty(&self, path: &str) -> anyhow::Result<Value> {
        answer(self.send(self.request(Method::POST, path)).await?).await
    }
}

/// A 2xx answer's JSON; else an error carrying the server's descriptions.
pub(super) async fn answer(response: Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("the server answered {status} without JSON"))?;
    if status.is_success() {
        return Ok(body);
    }
    bail!("{}", refusal(status, &body))
}

/// The server's descriptions of why it answered `status` with `body` (Writer's error shape).
pub(super) fn refusal(status: StatusCode, body: &Value) -> String {
    let descriptions: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["description"].as_str())
        .collect();
    if descriptions.is_empty() {
        return format!("the server answered {status}: {body}");
    }
    format!("{} ({status})", descriptions.join("; "))
}
