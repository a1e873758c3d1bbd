//! Starting a measured server and filling its database.

use std::sync::Arc;
use std::time::Duration;

use mock_llm::{MockLlm, MockLlmArgs};

use scriptorium::apps::Inputs;
use scriptorium::config::{Database, ServeOptions, Settings};
use scriptorium::server::{Server, open_store};
use scriptorium::store::sqlite::Durability;
use scriptorium::store::{JobId, NewJob, Priority, RetryPolicy, Store};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::BenchArgs;

/// The key the measured servers accept.
pub const KEY: &str = "scr_bench_key";
/// The benchmark application's id.
pub const APP: &str = "bench";

const APP_TOML: &str = r#"
id = "bench"
name = "Benchmark"
status = "deployed"
prompt = "Say {{ inputs['Text'] | join(' ') }}"
[[inputs]]
name = "Text"
input_type = "text"
required = true
"#;

/// Where a scenario runs: a fresh directory with the benchmark application, and a fresh
/// database (an SQLite file in it, or a schema of its own on `--database-url`).
pub struct Workspace {
    dir: TempDir,
    database: Database,
    _schema: Option<Schema>,
}

impl Workspace {
    /// A new workspace for `args`.
    pub async fn new(args: &BenchArgs) -> anyhow::Result<Self> {
        let dir = match &args.work_dir {
            Some(base) => tempfile::tempdir_in(base)?,
            None => tempfile::tempdir()?,
        };
        std::fs::create_dir_all(dir.path().join("apps"))?;
        std::fs::write(dir.path().join("apps/bench.toml"), APP_TOML)?;
        let (database, schema) = match &args.database_url {
            Some(url) => {
                let schema = Schema::create(url).await?;
                (Database::Postgres(schema.url.clone()), Some(schema))
            }
            None => (
                Database::Sqlite(dir.path().join("data/scriptorium.db")),
                None,
            ),
        };
        Ok(Self {
            dir,
            database,
            _schema: schema,
        })
    }

    /// The settings of a measured server here with `concurrency` workers.
    pub fn options(&self, concurrency: usize, sync: Durability) -> ServeOptions {
        let url = match &self.database {
            Database::Sqlite(path) => format!("sqlite://{}", path.display()),
            Database::Postgres(url) => url.clone(),
        };
        ServeOptions {
            data_dir: Some(self.dir.path().join("data")),
            apps_dir: Some(self.dir.path().join("apps")),
            database_url: Some(url),
            concurrency: Some(concurrency),
            sqlite_sync: Some(sync),
            poll_interval: Some(Duration::from_millis(100)),
            ..ServeOptions::default()
        }
    }

    /// Stores `n` queued jobs for the benchmark application, straight through the store (64
    /// concurrent inserts, so the backend groups them).
    pub async fn seed(&self, n: usize) -> anyhow::Result<()> {
        let store = open_store(&self.database, Durability::Normal).await?;
        let inputs = Inputs([("Text".to_owned(), vec!["hello".to_owned()])].into());
        let inputs = serde_json::to_string(&inputs)?;
        let lanes = 64;
        let mut tasks = Vec::new();
        for lane in 0..lanes {
            let (store, inputs) = (store.clone(), inputs.clone());
            tasks.push(tokio::spawn(async move {
                for _ in (lane..n).step_by(lanes) {
                    store.insert_job(bench_job(&inputs)).await?;
                }
                Ok::<_, scriptorium::store::StoreError>(())
            }));
        }
        for task in tasks {
            task.await??;
        }
        Ok(())
    }

    /// The workspace's database, opened as the command-line tools open it.
    pub async fn store(&self) -> anyhow::Result<Arc<dyn Store>> {
        Ok(open_store(&self.database, Durability::Normal).await?)
    }

    /// A new API key of organisation `org`, straight through the store.
    pub async fn key_for(&self, org: &str) -> anyhow::Result<String> {
        let store = open_store(&self.database, Durability::Normal).await?;
        let (key, _) = scriptorium::auth::create_key(store.as_ref(), org.into(), "bench").await?;
        Ok(key.expose().to_owned())
    }

    /// The directory.
    pub fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

fn bench_job(inputs: &str) -> NewJob {
    NewJob {
        id: JobId::generate(),
        org: scriptorium::auth::DEFAULT_ORG.into(),
        application_id: APP.into(),
        application_version: None,
        inputs: inputs.to_owned(),
        retry: RetryPolicy::default(),
        priority: Priority::Normal,
        idempotency_key: None,
    }
}

/// A PostgreSQL schema of one scenario's own, dropped afterwards.
struct Schema {
    base: String,
    name: String,
    url: String,
}

impl Schema {
    async fn create(base: &str) -> anyhow::Result<Self> {
        let name = format!("bench_{:012x}", fastrand::u64(..1 << 48));
        admin(base)
            .await?
            .batch_execute(&format!("CREATE SCHEMA {name}"))
            .await?;
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}options=-c%20search_path%3D{name}");
        Ok(Self {
            base: base.to_owned(),
            name,
            url,
        })
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        let (base, name) = (self.base.clone(), self.name.clone());
        // Drop may run inside a runtime, which must not be blocked on: use a thread.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let sql = format!("DROP SCHEMA IF EXISTS {name} CASCADE");
                admin(&base).await?.batch_execute(&sql).await?;
                anyhow::Ok(())
            })
        });
        if let Ok(Err(e)) = dropped.join() {
            eprintln!("could not drop the benchmark schema: {e}");
        }
    }
}

async fn admin(url: &str) -> anyhow::Result<tokio_postgres::Client> {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls).await?;
    tokio::spawn(connection);
    Ok(client)
}

/// A `mock-llm` served in this process on port 0; stopped when dropped.
pub struct Llm {
    /// The mock, to read its stats.
    pub mock: Arc<MockLlm>,
    /// Its OpenAI base URL (`http://…/v1`).
    pub url: String,
    task: JoinHandle<std::io::Result<()>>,
}

impl Llm {
    /// Serves a mock with `args`.
    pub async fn serve(args: MockLlmArgs) -> anyhow::Result<Self> {
        let mock = MockLlm::new(args);
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}/v1", listener.local_addr()?);
        let router = mock.router();
        let task = tokio::spawn(async move { axum::serve(listener, router).await });
        Ok(Self { mock, url, task })
    }
}

impl Drop for Llm {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server running in this process.
pub struct Running {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// Starts a server with `options`.
pub async fn start(options: ServeOptions) -> anyhow::Result<Running> {
    let env = |name: &str| (name == "SCRIPTORIUM_API_KEY").then(|| KEY.to_owned());
    let settings = Settings::resolve(options, None, env)?;
    let server = Server::build(&settings, TcpListener::bind("127.0.0.1:0").await?).await?;
    let base = format!("http://{}", server.local_addr()?);
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    Ok(Running {
        base,
        stop: Some(stop),
        task,
    })
}

impl Running {
    /// Stops the server and waits for it.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.await??;
        Ok(())
    }
}

/// A page of the benchmark application's jobs: `query` is the list route's query string.
pub async fn jobs_page(
    client: &reqwest::Client,
    base: &str,
    query: &str,
) -> anyhow::Result<serde_json::Value> {
    let url = format!("{base}/v1/applications/{APP}/jobs?{query}");
    Ok(client
        .get(url)
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?)
}

/// `totalCount` of the benchmark application's jobs with this status.
pub async fn count(client: &reqwest::Client, base: &str, status: &str) -> anyhow::Result<u64> {
    let page = jobs_page(client, base, &format!("status={status}&limit=1")).await?;
    page["totalCount"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no totalCount in {page}"))
}

/// Creates a batch of the benchmark application from inline `items` (202 expected); answers
/// the batch.
pub async fn create_batch(
    client: &reqwest::Client,
    base: &str,
    items: Vec<serde_json::Value>,
) -> anyhow::Result<serde_json::Value> {
    let response = client
        .post(format!("{base}/v1/applications/{APP}/batches"))
        .bearer_auth(KEY)
        .json(&serde_json::json!({ "items": items }))
        .send()
        .await?;
    anyhow::ensure!(response.status().as_u16() == 202, "{}", response.status());
    Ok(response.json().await?)
}
