//! Assembles a server from [`Settings`]: store, applications, providers, keys, files, engine,
//! webhooks, the dashboard's roll-up and router; then serves on a listener it is given (so tests bind port 0) until a shutdown
//! future resolves, and drains the engine.
//!
//! - [`connections`]: the HTTP/1 listener and the limits each connection is held to.
//! - [`peers`]: the check that every node sharing the database serves the same apps folder.

pub(crate) mod connections;
mod peers;

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::api::{AppState, Parts, router};
use crate::apps::{Catalog, LoadError, Registry};
use crate::auth::{DEFAULT_ORG, Keys, create_key};
use crate::config::{Database, Settings};
use crate::engine::Engine;
use crate::files::blobs::{BlobConfig, BlobError, Blobs};
use crate::files::{Extraction, Files};
use crate::metrics::Metrics;
use crate::providers::{ProviderConfigError, Providers};
use crate::store::limits::SharedLimits;
use crate::store::postgres::PostgresStore;
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::{Store, StoreError};
use crate::webhooks::Webhooks;
use connections::HttpLimits;

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The application folder has invalid files.
    #[error("invalid applications:\n{0}")]
    Apps(LoadError),
    /// A provider's settings cannot make a client.
    #[error(transparent)]
    ProviderConfig(#[from] ProviderConfigError),
    /// An application names a provider that is not configured, or that cannot serve it.
    #[error("{0}")]
    Provider(String),
    /// The database could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// File storage cannot be used.
    #[error(transparent)]
    Files(BlobError),
    /// Listening failed.
    #[error(transparent)]
    Io(#[from] io::Error),
}

impl From<LoadError> for StartError {
    fn from(e: LoadError) -> Self {
        Self::Apps(e)
    }
}

/// A server ready to run.
pub struct Server {
    listener: TcpListener,
    router: axum::Router,
    store: Arc<dyn Store>,
    engine: Arc<Engine>,
    files: Files,
    webhooks: Arc<Webhooks>,
    http: HttpLimits,
}

impl Server {
    /// Opens everything `settings` names and prepares to serve on `listener`.
    pub async fn build(settings: &Settings, listener: TcpListener) -> Result<Self, StartError> {
        let apps = Arc::new(Registry::load_dir(&settings.apps_dir)?);
        let (store, shared) = open_server_store(&settings.database, settings.sqlite_sync).await?;
        let providers = Arc::new(Providers::build(&settings.providers, shared)?);
        check_providers(&apps, &providers)?;
        if settings.api_key.is_none() {
            create_first_key(store.as_ref()).await?;
        }
        tracing::info!(
            applications = apps.deployed().len(),
            dir = %settings.apps_dir.display(),
            "applications loaded"
        );
        log_providers(&providers);
        peers::check_apps_folder(store.as_ref(), &apps, listener.local_addr()?).await;
        let files = open_files(settings, store.clone()).await?;
        let keys = Arc::new(Keys::new(store.clone(), settings.api_key.as_ref()));
        let apps = Arc::new(Catalog::new(apps, store.clone(), providers.clone()));
        apps.follow_changes();
        let metrics = Arc::new(Metrics::new());
        let engine = Engine::new(
            store.clone(),
            apps.clone(),
            providers.clone(),
            files.clone(),
            settings.engine,
            metrics.clone(),
        );
        let webhooks = Webhooks::new(store.clone(), settings.webhooks, metrics.clone());
        let state = AppState::new(Parts {
            store: store.clone(),
            apps,
            providers,
            keys,
            files: files.clone(),
            metrics,
            webhooks: webhooks.clone(),
        });
        Ok(Self {
            listener,
            store,
            router: router(state, settings.max_body_bytes, settings.max_batch_bytes),
            engine,
            files,
            webhooks,
            http: settings.http,
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` resolves, then stops taking requests and jobs and drains.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) -> io::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let engine = tokio::spawn(self.engine.run(stopped.clone()));
        let extractor = tokio::spawn(self.files.extract_files(stopped.clone()));
        let deliveries = tokio::spawn(self.webhooks.run(stopped.clone()));
        let rollup = tokio::spawn(crate::ui::rollup::run(self.store, stopped.clone()));
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop.send(true);
        });
        let mut http_stopped = stopped;
        let stopping = async move {
            let _ = http_stopped.wait_for(|stop| *stop).await;
        };
        connections::serve(self.listener, self.router, self.http, stopping).await;
        let _ = engine.await;
        let _ = extractor.await;
        let _ = deliveries.await;
        let _ = rollup.await;
        Ok(())
    }
}

/// Opens the database for a tool that runs beside a server (no lock, no recovery).
pub async fn open_store(
    database: &Database,
    sync: Durability,
) -> Result<Arc<dyn Store>, StoreError> {
    match database {
        Database::Sqlite(path) => Ok(Arc::new(SqliteStore::open(path, sync)?)),
        Database::Postgres(url) => Ok(Arc::new(PostgresStore::open(url).await?)),
    }
}

/// Opens the database for a server. SQLite: takes the data directory's lock and queues again
/// what a previous process left running. PostgreSQL: shared by every node, so running jobs
/// are left to their leases and the reaper.
async fn open_server_store(
    database: &Database,
    sync: Durability,
) -> Result<(Arc<dyn Store>, Option<Arc<dyn SharedLimits>>), StoreError> {
    match database {
        Database::Sqlite(path) => Ok((
            Arc::new(SqliteStore::open_for_server(path, sync).await?),
            None,
        )),
        Database::Postgres(url) => {
            let store = Arc::new(PostgresStore::open(url).await?);
            Ok((store.clone(), Some(store)))
        }
    }
}

/// Opens file storage, checking that it answers.
async fn open_files(settings: &Settings, store: Arc<dyn Store>) -> Result<Files, StartError> {
    let blobs =
        Blobs::open(&settings.file_storage, &settings.data_dir).map_err(StartError::Files)?;
    blobs.check().await.map_err(StartError::Files)?;
    if matches!(settings.database, Database::Postgres(_))
        && matches!(settings.file_storage, BlobConfig::Local)
    {
        tracing::warn!(
            "files are stored in this node's data directory: other nodes cannot read them; \
             set [file_storage] kind = \"s3\" for a cluster"
        );
    }
    tracing::info!(storage = %blobs.describe(), "file storage ready");
    let extraction = Extraction {
        concurrency: settings.extract_concurrency,
        lease: settings.engine.lease,
        poll_interval: settings.engine.poll_interval,
        shutdown_grace: settings.engine.shutdown_grace,
    };
    Ok(Files::new(store, blobs, settings.file_limits, extraction))
}

/// Every provider an application names exists, and can name a model when the application
/// does not.
fn check_providers(apps: &Registry, providers: &Providers) -> Result<(), StartError> {
    for app in apps.all() {
        for name in &app.providers {
            let Some(backend) = providers.get(name) else {
                return Err(StartError::Provider(format!(
                    "application '{}' names provider '{name}', which is not configured \
                     (configured: {})",
                    app.id,
                    providers.names().join(", ")
                )));
            };
            if app.model.is_none() && !backend.has_default_model() {
                return Err(StartError::Provider(format!(
                    "application '{}' names no model and provider '{name}' has no default `model`",
                    app.id
                )));
            }
        }
    }
    Ok(())
}

fn log_providers(providers: &Providers) {
    for backend in providers.all() {
        let view = backend.view();
        if view.kind == "mock" {
            tracing::warn!(
                provider = %view.name,
                "no model server is configured: jobs run on the built-in {}",
                backend.describe()
            );
        } else {
            tracing::info!(
                provider = %view.name,
                kind = view.kind,
                max_concurrency = view.gate.max_concurrency,
                "provider: {}",
                backend.describe()
            );
        }
    }
}

/// On a first start with no keys and no `SCRIPTORIUM_API_KEY`, makes one and prints it once.
async fn create_first_key(store: &dyn Store) -> Result<(), StoreError> {
    if !store.list_keys().await?.is_empty() {
        return Ok(());
    }
    let (key, _) = create_key(store, DEFAULT_ORG.into(), "first start").await?;
    println!(
        "No API key existed, so one was created for organisation '{DEFAULT_ORG}'.\n\
         It is shown only this once; only its hash is stored:\n\n    {}\n",
        key.expose()
    );
    Ok(())
}
