//! Starting a measured server and filling its database.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::BenchArgs;
use crate::apps::{Inputs, RetryPolicy};
use crate::config::{ServeOptions, Settings};
use crate::server::Server;
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::{NewJob, Store};

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

/// A fresh data directory with the benchmark application beside it.
pub fn workspace(args: &BenchArgs) -> anyhow::Result<TempDir> {
    let dir = match &args.work_dir {
        Some(base) => tempfile::tempdir_in(base)?,
        None => tempfile::tempdir()?,
    };
    std::fs::create_dir_all(dir.path().join("apps"))?;
    std::fs::write(dir.path().join("apps/bench.toml"), APP_TOML)?;
    Ok(dir)
}

/// A server running in this process.
pub struct Running {
    pub base: String,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

/// The settings of a measured server on `dir` with `concurrency` workers.
pub fn options(dir: &Path, concurrency: usize, sync: Durability) -> ServeOptions {
    ServeOptions {
        data_dir: Some(dir.join("data")),
        apps_dir: Some(dir.join("apps")),
        concurrency: Some(concurrency),
        sqlite_sync: Some(sync),
        poll_interval: Some(Duration::from_millis(100)),
        ..ServeOptions::default()
    }
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

/// Stores `n` queued jobs for the benchmark application, straight through the store (64
/// concurrent inserts, so the writer groups them).
pub async fn seed(dir: &Path, n: usize) -> anyhow::Result<()> {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::open(
        &dir.join("data/scriptorium.db"),
        Durability::Normal,
    )?);
    let inputs = Inputs([("Text".to_owned(), vec!["hello".to_owned()])].into());
    let inputs = serde_json::to_string(&inputs)?;
    let lanes = 64;
    let mut tasks = Vec::new();
    for lane in 0..lanes {
        let (store, inputs) = (store.clone(), inputs.clone());
        tasks.push(tokio::spawn(async move {
            for _ in (lane..n).step_by(lanes) {
                store
                    .insert_job(NewJob {
                        id: uuid::Uuid::now_v7().to_string(),
                        org: crate::auth::DEFAULT_ORG.to_owned(),
                        application_id: APP.to_owned(),
                        inputs: inputs.clone(),
                        retry: RetryPolicy::default(),
                        idempotency_key: None,
                    })
                    .await?;
            }
            Ok::<_, crate::store::StoreError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// `totalCount` of the benchmark application's jobs with this status.
pub async fn count(client: &reqwest::Client, base: &str, status: &str) -> anyhow::Result<u64> {
    let url = format!("{base}/v1/applications/{APP}/jobs?status={status}&limit=1");
    let page: serde_json::Value = client
        .get(url)
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?;
    page["totalCount"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no totalCount in {page}"))
}
