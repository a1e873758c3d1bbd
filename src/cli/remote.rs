//! `apps push` and `apps pull`: application files to and from a running server, through its
//! applications-as-data routes, so that definitions can live in git.
//!
//! A push is idempotent: a file whose definition is the server's current one (nulls aside,
//! which mean "not given") is reported unchanged and makes no new version, so push, pull,
//! push leaves the server as it was.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::{Client, Method, Response, StatusCode};
use serde_json::{Map, Value};

use crate::apps::{definition_of, file_text};
use crate::report::Chain;

/// Our applications routes.
const ROUTE: &str = "/v1/scriptorium/applications";

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

/// What a push did to one application.
enum Pushed {
    Created(u64),
    Updated(u64),
    Unchanged(u64),
}

impl fmt::Display for Pushed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pushed::Created(v) => write!(f, "created v{v}"),
            Pushed::Updated(v) => write!(f, "updated to v{v}"),
            Pushed::Unchanged(v) => write!(f, "unchanged (v{v})"),
        }
    }
}

/// Creates or updates the application of each TOML file at `path` (a file, or a folder's
/// `*.toml`), printing one line per file; fails if any file did.
pub(super) async fn push(path: &Path, server: ServerArgs) -> anyhow::Result<()> {
    let files = toml_files(path)?;
    let remote = Remote::new(server)?;
    let mut failed = 0;
    for file in &files {
        match push_file(&remote, file).await {
            Ok((id, pushed)) => println!("{}: {id} {pushed}", file.display()),
            Err(e) => {
                failed += 1;
                println!("{}: error: {}", file.display(), Chain(e.as_ref()));
            }
        }
    }
    if failed > 0 {
        bail!("{failed} of {} files failed", files.len());
    }
    Ok(())
}

/// Writes the current definition of application `id` as a TOML file: to `output` (replaced
/// if it exists), else to stdout.
pub(super) async fn pull(
    id: &str,
    output: Option<&Path>,
    server: ServerArgs,
) -> anyhow::Result<()> {
    let remote = Remote::new(server)?;
    let app = remote
        .current(id)
        .await?
        .with_context(|| format!("no application '{id}'"))?;
    let Some(definition) = app["definition"].as_object() else {
        bail!("application '{id}' is provisioned from the server's apps folder: its file is there");
    };
    let header = format!(
        "# {id}, version {}: written by `scriptorium apps pull`",
        app["version"]
    );
    let text = file_text(definition, &header).map_err(anyhow::Error::msg)?;
    match output {
        None => print!("{text}"),
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("{}: {id} version {}", path.display(), app["version"]);
        }
    }
    Ok(())
}

/// `path` itself, or the `*.toml` files of the folder `path`, by name.
fn toml_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
    {
        let file = entry?.path();
        if file.extension().is_some_and(|e| e == "toml") {
            files.push(file);
        }
    }
    if files.is_empty() {
        bail!("no .toml files in {}", path.display());
    }
    files.sort();
    Ok(files)
}

/// Creates the application of `file`, or makes its definition the current one.
async fn push_file(remote: &Remote, file: &Path) -> anyhow::Result<(String, Pushed)> {
    let text = std::fs::read_to_string(file).context("cannot read it")?;
    let definition = definition_of(&text).map_err(anyhow::Error::msg)?;
    let Some(Value::String(id)) = definition.get("id") else {
        bail!("no id: a pushed file needs one, so that pushing it again updates it");
    };
    let id = id.clone();
    let pushed = match remote.current(&id).await? {
        None => Pushed::Created(version(
            &remote.call(Method::POST, ROUTE, &definition).await?,
        )),
        Some(current) if same(&current["definition"], &definition) => {
            Pushed::Unchanged(version(&current))
        }
        Some(_) => {
            let path = format!("{ROUTE}/{id}");
            Pushed::Updated(version(
                &remote.call(Method::PUT, &path, &definition).await?,
            ))
        }
    };
    Ok((id, pushed))
}

/// Whether the server's definition is `ours`, nulls aside.
fn same(theirs: &Value, ours: &Map<String, Value>) -> bool {
    without_nulls(theirs) == without_nulls(&Value::Object(ours.clone()))
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn version(app: &Value) -> u64 {
    app["version"].as_u64().unwrap_or_default()
}

/// A server and the key to call it with.
struct Remote {
    http: Client,
    base: String,
    key: String,
}

impl Remote {
    fn new(server: ServerArgs) -> anyhow::Result<Self> {
        let http = Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .context("cannot make an HTTP client")?;
        Ok(Self {
            http,
            base: server.url.trim_end_matches('/').to_owned(),
            key: server.api_key,
        })
    }

    /// The application `id` at its current version; `None` when the server has none.
    async fn current(&self, id: &str) -> anyhow::Result<Option<Value>> {
        let response = self
            .send(Method::GET, &format!("{ROUTE}/{id}"), None)
            .await?;
        if response.status() == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        answer(response).await.map(Some)
    }

    /// `method path` with `body`: the answer, or the server's message as the error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: &Map<String, Value>,
    ) -> anyhow::Result<Value> {
        answer(self.send(method, path, Some(body)).await?).await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<&Map<String, Value>>,
    ) -> anyhow::Result<Response> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(body);
        }
        request
            .send()
            .await
            .with_context(|| format!("cannot reach {}", self.base))
    }
}

/// A 2xx answer's JSON; else an error carrying the server's descriptions.
async fn answer(response: Response) -> anyhow::Result<Value> {
    let status = response.status();
    let body: Value = response
        .json()
        .await
        .with_context(|| format!("the server answered {status} without JSON"))?;
    if status.is_success() {
        return Ok(body);
    }
    let descriptions: Vec<&str> = body["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e["description"].as_str())
        .collect();
    if descriptions.is_empty() {
        bail!("the server answered {status}: {body}");
    }
    bail!("{} ({status})", descriptions.join("; "))
}
