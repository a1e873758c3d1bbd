//! Starting the real server for a test: port 0, a fresh data directory, the fixture apps.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use reqwest::{Client, RequestBuilder, Response};
use scriptorium::auth::create_key;
use scriptorium::config::{Database, ServeOptions, Settings};
use scriptorium::server::{Server, open_store};
use scriptorium::store::postgres::PostgresStore;
use scriptorium::store::sqlite::{Durability, SqliteStore};
use scriptorium::store::{Clock, Store};
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::pg::Schema;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The key every test server accepts for the default organisation.
pub const KEY: &str = "scr_test_key_for_the_default_org";

/// The fixture applications.
pub fn fixture_apps() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apps")
}

/// Where a test server keeps its state: a data directory, and, when the API tests run on
/// PostgreSQL (`SCRIPTORIUM_TEST_API_ON_POSTGRES` set), a schema of its own.
pub struct Storage {
    pub dir: TempDir,
    schema: Option<Schema>,
}

impl Storage {
    /// The database, opened as the command-line tools open it (beside a running server).
    pub async fn store(&self) -> Arc<dyn Store> {
        let database = match &self.schema {
            Some(schema) => Database::Postgres(schema.url("api")),
            None => Database::Sqlite(self.dir.path().join("scriptorium.db")),
        };
        open_store(&database, Durability::Normal).await.unwrap()
    }

    /// The database opened beside the server on its own `clock`, so a test can make the
    /// server's leases look lapsed to it.
    pub async fn store_on(&self, clock: Clock) -> Arc<dyn Store> {
        match &self.schema {
            Some(schema) => Arc::new(
                PostgresStore::open_with_clock(&schema.url("api"), clock)
                    .await
                    .unwrap(),
            ),
            None => {
                let path = self.dir.path().join("scriptorium.db");
                Arc::new(SqliteStore::open_with_clock(&path, Durability::Normal, clock).unwrap())
            }
        }
    }

    async fn new() -> Self {
        let schema =
            match std::env::var_os("SCRIPTORIUM_TEST_API_ON_POSTGRES") {
                Some(_) => Some(Schema::create().await.expect(
                    "SCRIPTORIUM_TEST_API_ON_POSTGRES needs SCRIPTORIUM_TEST_POSTGRES_URL",
                )),
                None => None,
            };
        Self {
            dir: tempfile::tempdir().unwrap(),
            schema,
        }
    }
}

/// A running server and a client for it.
pub struct TestApp {
    pub base: String,
    pub client: Client,
    storage: Option<Storage>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Starts a server with default test settings.
pub async fn spawn_app() -> TestApp {
    spawn_with(ServeOptions::default()).await
}

/// Starts a server with these settings over the test defaults (fixture apps, fast polling).
pub async fn spawn_with(options: ServeOptions) -> TestApp {
    spawn_in(Storage::new().await, options).await
}

/// Starts a server on existing storage (as [`TestApp::stop`] hands it back).
pub async fn spawn_in(storage: Storage, options: ServeOptions) -> TestApp {
    let defaults = ServeOptions {
        data_dir: Some(storage.dir.path().to_path_buf()),
        database_url: storage.schema.as_ref().map(|s| s.url("api")),
        apps_dir: Some(fixture_apps()),
        poll_interval: Some(Duration::from_millis(50)),
        shutdown_grace: Some(Duration::from_secs(5)),
        sqlite_sync: Some(Durability::Normal),
        ..ServeOptions::default()
    };
    let options = merge(options, defaults);
    let settings = Settings::resolve(options, None, test_env).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = Server::build(&settings, listener).await.unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    TestApp {
        base,
        client: Client::new(),
        storage: Some(storage),
        stop: Some(stop),
        task: Some(task),
    }
}

/// The environment a test server sees: only the test key.
pub fn test_env(name: &str) -> Option<String> {
    (name == "SCRIPTORIUM_API_KEY").then(|| KEY.to_owned())
}

fn merge(options: ServeOptions, defaults: ServeOptions) -> ServeOptions {
    ServeOptions {
        data_dir: options.data_dir.or(defaults.data_dir),
        apps_dir: options.apps_dir.or(defaults.apps_dir),
        database_url: options.database_url.or(defaults.database_url),
        poll_interval: options.poll_interval.or(defaults.poll_interval),
        shutdown_grace: options.shutdown_grace.or(defaults.shutdown_grace),
        sqlite_sync: options.sqlite_sync.or(defaults.sqlite_sync),
        ..options
    }
}

impl TestApp {
    /// A request with the test key.
    pub fn get(&self, path: &str) -> RequestBuilder {
        self.client
            .get(format!("{}{path}", self.base))
            .bearer_auth(KEY)
    }

    /// `GET path` with the test key, answered as JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.get(path).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// A POST with the test key.
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.client
            .post(format!("{}{path}", self.base))
            .bearer_auth(KEY)
    }

    /// A PUT with the test key.
    pub fn put(&self, path: &str) -> RequestBuilder {
        self.client
            .put(format!("{}{path}", self.base))
            .bearer_auth(KEY)
    }

    /// Generates synchronously on `app` with `"stream": true`; answers the event stream's text.
    pub async fn stream(&self, app: &str, inputs: &[(&str, &[&str])]) -> String {
        let mut body = inputs_body(inputs);
        body["stream"] = Value::Bool(true);
        let response = self
            .post(&format!("/v1/applications/{app}"))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        response.text().await.unwrap()
    }

    /// Asks to create a job for `app` with these `(input, values)`; answers the response.
    pub async fn submit(&self, app: &str, inputs: &[(&str, &[&str])]) -> Response {
        self.post(&format!("/v1/applications/{app}/jobs"))
            .json(&inputs_body(inputs))
            .send()
            .await
            .unwrap()
    }

    /// Creates a job for `app` with these `(input, values)` and answers the 202 body.
    pub async fn create_job(&self, app: &str, inputs: &[(&str, &[&str])]) -> Value {
        let response = self.submit(app, inputs).await;
        assert_eq!(response.status(), 202, "create failed");
        response.json().await.unwrap()
    }

    /// The job as the API shows it.
    pub async fn job(&self, id: &str) -> Value {
        let response = self
            .get(&format!("/v1/applications/jobs/{id}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.json().await.unwrap()
    }

    /// `POST /v1/applications/{app}/batches` with `body`.
    pub async fn create_batch(&self, app: &str, body: Value) -> Response {
        let path = format!("/v1/applications/{app}/batches");
        self.post(&path).json(&body).send().await.unwrap()
    }

    /// Polls a batch until it reads `completed` (at most 20 s).
    pub async fn wait_batch(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let mut batch = Value::Null;
        while tokio::time::Instant::now() < deadline {
            batch = self
                .get_json(&format!("/v1/applications/batches/{id}"))
                .await;
            if batch["status"] == "completed" {
                return batch;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("batch {id} did not complete within 20 s: {batch}");
    }

    /// Polls a job until its Writer status is no longer `in_progress` (at most 20 s).
    pub async fn wait_finished(&self, id: &str) -> Value {
        self.wait_finished_within(id, Duration::from_secs(20)).await
    }

    /// Polls a job until its Writer status is no longer `in_progress`, at most `limit`.
    pub async fn wait_finished_within(&self, id: &str, limit: Duration) -> Value {
        self.wait_job(id, "finished", limit, |job| job["status"] != "in_progress")
            .await
    }

    /// Polls a job until `reached` holds for it (`what` names that for the panic), at most
    /// `limit`; answers the job as it was then.
    pub async fn wait_job(
        &self,
        id: &str,
        what: &str,
        limit: Duration,
        reached: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = tokio::time::Instant::now() + limit;
        let mut job = Value::Null;
        while tokio::time::Instant::now() < deadline {
            job = self.job(id).await;
            if reached(&job) {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} was not {what} within {limit:?}: {job}");
    }

    /// A DELETE with the test key.
    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.client
            .delete(format!("{}{path}", self.base))
            .bearer_auth(KEY)
    }

    /// Uploads `bytes` named `name` (sent as `text/plain`, as the Python SDK does) and
    /// answers the file object.
    pub async fn upload(&self, name: &str, bytes: impl Into<reqwest::Body>) -> Value {
        let response = self
            .post("/v1/files")
            .header("content-type", "text/plain")
            .header(
                "content-disposition",
                format!("attachment; filename=\"{name}\""),
            )
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "upload of {name} failed");
        response.json().await.unwrap()
    }

    /// Uploads a fixture file (tests/fixtures/files) and waits until it is processed.
    pub async fn upload_fixture(&self, name: &str) -> Value {
        let file = self.upload(name, fixture_file(name)).await;
        self.wait_processed(file["id"].as_str().unwrap()).await
    }

    /// Polls a file until its status is no longer `in_progress` (at most 20 s).
    pub async fn wait_processed(&self, id: &str) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        while tokio::time::Instant::now() < deadline {
            let file: Value = self
                .get(&format!("/v1/files/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if file["status"] != "in_progress" {
                return file;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("file {id} was not processed within 20 s");
    }

    /// A new API key for organisation `org`, made as `scriptorium keys create` makes one.
    pub async fn key_for(&self, org: &str) -> String {
        let store = self.storage.as_ref().expect("running").store().await;
        let (key, _) = create_key(store.as_ref(), org.into(), "test")
            .await
            .unwrap();
        key.expose().to_owned()
    }

    /// The server's database, opened beside it on its own `clock` ([`Storage::store_on`]).
    pub async fn store_on(&self, clock: Clock) -> Arc<dyn Store> {
        self.storage
            .as_ref()
            .expect("running")
            .store_on(clock)
            .await
    }

    /// The server's database, opened beside it as the command-line tools open it.
    pub async fn store(&self) -> Arc<dyn Store> {
        self.storage.as_ref().expect("running").store().await
    }

    /// The server's data directory.
    pub fn data_dir(&self) -> &Path {
        self.storage.as_ref().expect("running").dir.path()
    }

    /// Stops the server gracefully and hands back its storage.
    pub async fn stop(mut self) -> Storage {
        self.shutdown().await;
        self.storage.take().expect("storage is handed back once")
    }

    async fn shutdown(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The bytes of a fixture file (tests/fixtures/files).
pub fn fixture_file(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/files")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `{"inputs": [{"id", "value"}...]}`.
pub fn inputs_body(inputs: &[(&str, &[&str])]) -> Value {
    let inputs: Vec<Value> = inputs
        .iter()
        .map(|(id, values)| json!({"id": id, "value": values}))
        .collect();
    json!({ "inputs": inputs })
}

/// Asserts the Writer error shape and answers the first description.
pub async fn assert_error(response: Response, status: u16, tpe: &str) -> String {
    assert_eq!(response.status().as_u16(), status);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tpe"], tpe, "{body}");
    assert!(body["extras"].is_object(), "{body}");
    let first = &body["errors"][0];
    assert!(first["key"].is_string(), "{body}");
    assert!(first["extras"].is_object(), "{body}");
    first["description"].as_str().unwrap().to_owned()
}

/// The `delta`s of a Writer event stream that ended well (with `data: [DONE]`).
pub fn stream_deltas(text: &str) -> Vec<Value> {
    let data: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .collect();
    assert_eq!(data.last(), Some(&"[DONE]"), "{text}");
    data[..data.len() - 1]
        .iter()
        .map(|d| serde_json::from_str::<Value>(d).unwrap()["delta"].clone())
        .collect()
}

/// The text of a stream's content deltas, joined.
pub fn stream_content(deltas: &[Value]) -> String {
    deltas
        .iter()
        .filter_map(|d| d["content"].as_str())
        .collect()
}
