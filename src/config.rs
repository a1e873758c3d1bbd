//! Settings: defaults < `--config FILE` (TOML) < `SCRIPTORIUM_*` environment < flags.
//!
//! [`ServeOptions`] is both the flag set (clap, which also reads the environment) and the
//! file format (serde), so the two can never drift apart; [`Settings::resolve`] layers them
//! over the defaults into one typed [`Settings`].

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::auth::ApiKey;
use crate::engine::EngineSettings;
use crate::files::FileLimits;
use crate::files::blobs::BlobConfig;
use crate::providers::config::{self as providers, ProviderConfig, Secret};
use crate::report::Cause;
use crate::server::connections::HttpLimits;
use crate::store::sqlite::Durability;
use crate::webhooks::WebhookSettings;

/// The server's settings, as flags, environment variables or a TOML file.
#[derive(Clone, Debug, Default, Deserialize, clap::Args)]
#[serde(deny_unknown_fields)]
pub struct ServeOptions {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "SCRIPTORIUM_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Directory for the database and other state [default: ./scriptorium-data].
    #[arg(long, env = "SCRIPTORIUM_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Directory of application files [default: ./apps].
    #[arg(long = "apps", env = "SCRIPTORIUM_APPS")]
    #[serde(rename = "apps")]
    pub apps_dir: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite://DATA_DIR/scriptorium.db].
    #[arg(long, env = "SCRIPTORIUM_DATABASE_URL")]
    pub database_url: Option<String>,
    /// Jobs in flight on this node at most; 0 serves the API without working jobs [default: 64].
    #[arg(long, env = "SCRIPTORIUM_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// How long a claimed job is held without a heartbeat [default: 30s].
    #[arg(long, env = "SCRIPTORIUM_LEASE", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub lease: Option<Duration>,
    /// Fallback polling interval for due jobs [default: 1s].
    #[arg(long, env = "SCRIPTORIUM_POLL_INTERVAL", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub poll_interval: Option<Duration>,
    /// How long in-flight jobs may finish after SIGINT/SIGTERM [default: 30s].
    #[arg(long, env = "SCRIPTORIUM_SHUTDOWN_GRACE", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub shutdown_grace: Option<Duration>,
    /// Largest request body in bytes; larger ones answer 413 [default: 1048576].
    #[arg(long, env = "SCRIPTORIUM_MAX_BODY_BYTES")]
    pub max_body_bytes: Option<usize>,
    /// Largest batch create body in MiB (its items inline); larger ones answer 413
    /// [default: 256].
    #[arg(long, env = "SCRIPTORIUM_MAX_BATCH_MB")]
    pub max_batch_mb: Option<usize>,
    /// SQLite commit durability: full (fsync each commit) or normal [default: full].
    #[arg(long, env = "SCRIPTORIUM_SQLITE_SYNC", value_enum)]
    pub sqlite_sync: Option<Durability>,
    /// Latency of each mock provider call [default: 0s].
    #[arg(long, env = "SCRIPTORIUM_MOCK_LATENCY", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub mock_latency: Option<Duration>,
    /// Largest file upload in megabytes; larger ones answer 413 [default: 50].
    #[arg(long, env = "SCRIPTORIUM_MAX_UPLOAD_MB")]
    pub max_upload_mb: Option<u64>,
    /// Megabytes an organisation's files may take in all [default: 10240].
    #[arg(long, env = "SCRIPTORIUM_ORG_QUOTA_MB")]
    pub org_quota_mb: Option<u64>,
    /// How long a client may take to send a request's head; also how long a new connection
    /// may wait before its first request [default: 10s].
    #[arg(long, env = "SCRIPTORIUM_HEADER_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub header_timeout: Option<Duration>,
    /// How long a request body may send nothing before the request answers 408 [default: 30s].
    #[arg(long, env = "SCRIPTORIUM_BODY_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub body_timeout: Option<Duration>,
    /// How long a keep-alive connection may wait for its next request [default: 60s].
    #[arg(long, env = "SCRIPTORIUM_IDLE_TIMEOUT", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub idle_timeout: Option<Duration>,
    /// HTTP connections open at once at most; past it, new ones wait to be accepted [default: 1024].
    #[arg(long, env = "SCRIPTORIUM_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Files whose text this node extracts at once; 0 leaves extraction to other nodes
    /// [default: the number of CPU cores].
    #[arg(long, env = "SCRIPTORIUM_EXTRACT_CONCURRENCY")]
    pub extract_concurrency: Option<usize>,
    /// Accept webhook URLs that are or resolve to internal addresses (loopback, private,
    /// link-local, ...): for development and tests only [default: false].
    #[arg(long, env = "SCRIPTORIUM_WEBHOOK_ALLOW_PRIVATE", num_args = 0..=1, default_missing_value = "true")]
    pub webhook_allow_private: Option<bool>,
    /// The wait before a failed webhook delivery's second attempt; it doubles for each
    /// later one [default: 5s].
    #[arg(long, env = "SCRIPTORIUM_WEBHOOK_BACKOFF", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub webhook_backoff: Option<Duration>,
    /// The longest wait between a webhook event's attempts [default: 1h].
    #[arg(long, env = "SCRIPTORIUM_WEBHOOK_BACKOFF_MAX", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub webhook_backoff_max: Option<Duration>,
    /// How long after its event a webhook delivery is still attempted [default: 24h].
    #[arg(long, env = "SCRIPTORIUM_WEBHOOK_RETRY_FOR", value_parser = humantime::parse_duration)]
    #[serde(default, deserialize_with = "optional_duration")]
    pub webhook_retry_for: Option<Duration>,
    /// Model providers, as `[providers.NAME]` tables (config file only).
    #[arg(skip)]
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Where uploaded files' bytes live, as a `[file_storage]` table (config file only):
    /// `kind = "local"` (the data directory) or `kind = "s3"` with a bucket [default: local].
    #[arg(skip)]
    #[serde(default)]
    pub file_storage: Option<BlobConfig>,
}

/// A humantime duration (`"30s"`, `"250ms"`) in a config file.
pub(crate) fn duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    humantime::parse_duration(&text).map_err(|e| serde::de::Error::custom(format!("{text:?}: {e}")))
}

fn optional_duration<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

/// Where the jobs live.
#[derive(Clone, PartialEq)]
pub enum Database {
    /// An SQLite file: one node.
    Sqlite(PathBuf),
    /// A PostgreSQL URL: any number of nodes.
    Postgres(String),
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "Sqlite({})", path.display()),
            // A URL may carry a password.
            Self::Postgres(url) => write!(f, "Postgres({})", redact_password(url)),
        }
    }
}

/// `url` with any password replaced by `***`.
pub(crate) fn redact_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    match rest.split_once('@') {
        Some((credentials, host)) if credentials.contains(':') => {
            let user = credentials.split(':').next().unwrap_or_default();
            format!("{scheme}://{user}:***@{host}")
        }
        _ => url.to_owned(),
    }
}

impl Database {
    /// Parses `sqlite://PATH` or `postgres://…`; without a URL, the file in the data directory.
    pub(crate) fn parse(url: Option<&str>, data_dir: &Path) -> Result<Self, SettingsError> {
        let Some(url) = url else {
            return Ok(Self::Sqlite(data_dir.join("scriptorium.db")));
        };
        if let Some(path) = url.strip_prefix("sqlite://") {
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(SettingsError::Invalid(format!(
            "unsupported database URL {:?}; use sqlite://PATH or postgres://USER@HOST/DB",
            redact_password(url)
        )))
    }
}

/// A settings problem, named for the operator.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The config file could not be read or parsed.
    #[error("config file {path}: {cause}")]
    File {
        /// The file.
        path: PathBuf,
        /// The error reading or parsing it.
        #[source]
        cause: Cause,
    },
    /// A value is not acceptable.
    #[error("{0}")]
    Invalid(String),
}

/// Every setting, resolved.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Address to listen on.
    pub(crate) listen: SocketAddr,
    /// Directory for state.
    pub(crate) data_dir: PathBuf,
    /// Directory of application files.
    pub(crate) apps_dir: PathBuf,
    /// Where the jobs live.
    pub(crate) database: Database,
    /// How SQLite commits.
    pub(crate) sqlite_sync: Durability,
    /// The engine's pacing.
    pub(crate) engine: EngineSettings,
    /// The model providers by name, with their API keys read from the environment.
    pub(crate) providers: BTreeMap<String, ProviderConfig>,
    /// Largest request body (uploads and batch creates excepted).
    pub(crate) max_body_bytes: usize,
    /// Largest batch create body.
    pub(crate) max_batch_bytes: usize,
    /// The limits each HTTP connection is held to.
    pub(crate) http: HttpLimits,
    /// Upload size and per-organisation quota.
    pub(crate) file_limits: FileLimits,
    /// Where uploaded files' bytes live.
    pub(crate) file_storage: BlobConfig,
    /// Files whose text this node extracts at once.
    pub(crate) extract_concurrency: usize,
    /// Webhook URLs allowed, and the retries of deliveries.
    pub(crate) webhooks: WebhookSettings,
    /// A key accepted for the default organisation (`SCRIPTORIUM_API_KEY`); never printed.
    pub(crate) api_key: Option<ApiKey>,
}

impl Settings {
    /// Layers `flags` (which already include the environment) over the file `config` (if
    /// any) over the defaults. `env` reads the variables that hold secrets:
    /// `SCRIPTORIUM_API_KEY`, the providers' `api_key_env`, and the quickstart
    /// `SCRIPTORIUM_OPENAI_*` provider.
    pub fn resolve(
        flags: ServeOptions,
        config: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, SettingsError> {
        let file = match config {
            Some(path) => read_file(path)?,
            None => ServeOptions::default(),
        };
        let o = flags.or(file);
        let data_dir = o
            .data_dir
            .unwrap_or_else(|| PathBuf::from("scriptorium-data"));
        let database = Database::parse(o.database_url.as_deref(), &data_dir)?;
        let engine = EngineSettings {
            concurrency: o.concurrency.unwrap_or(64),
            claim_batch: 512,
            lease: o.lease.unwrap_or(Duration::from_secs(30)),
            poll_interval: o.poll_interval.unwrap_or(Duration::from_secs(1)),
            shutdown_grace: o.shutdown_grace.unwrap_or(Duration::from_secs(30)),
        };
        let http = HttpLimits::default();
        if engine.lease < Duration::from_millis(300) {
            return Err(SettingsError::Invalid(
                "lease must be at least 300ms".into(),
            ));
        }
        Ok(Self {
            listen: o.listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8080))),
            apps_dir: o.apps_dir.unwrap_or_else(|| PathBuf::from("apps")),
            data_dir,
            database,
            sqlite_sync: o.sqlite_sync.unwrap_or(Durability::Full),
            engine,
            providers: resolve_providers(o.providers, &env, o.mock_latency.unwrap_or_default())?,
            max_body_bytes: o.max_body_bytes.unwrap_or(1 << 20),
            max_batch_bytes: o.max_batch_mb.unwrap_or(256) << 20,
            http: HttpLimits {
                header_timeout: o.header_timeout.unwrap_or(http.header_timeout),
                body_timeout: o.body_timeout.unwrap_or(http.body_timeout),
                idle_timeout: o.idle_timeout.unwrap_or(http.idle_timeout),
                max_connections: o.max_connections.unwrap_or(http.max_connections).max(1),
            },
            file_limits: FileLimits {
                max_upload_bytes: o.max_upload_mb.unwrap_or(50) << 20,
                org_quota_bytes: o.org_quota_mb.unwrap_or(10 << 10) << 20,
            },
            file_storage: o.file_storage.unwrap_or(BlobConfig::Local),
            webhooks: WebhookSettings {
                allow_private: o.webhook_allow_private.unwrap_or(false),
                backoff: o.webhook_backoff.unwrap_or(Duration::from_secs(5)),
                backoff_max: o.webhook_backoff_max.unwrap_or(Duration::from_secs(3600)),
                retry_for: o
                    .webhook_retry_for
                    .unwrap_or(Duration::from_secs(24 * 3600)),
                poll_interval: engine.poll_interval,
                shutdown_grace: engine.shutdown_grace,
            },
            extract_concurrency: o
                .extract_concurrency
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
            api_key: env("SCRIPTORIUM_API_KEY")
                .filter(|k| !k.is_empty())
                .map(ApiKey::new),
        })
    }
}

impl ServeOptions {
    /// Each field of `self`, or else of `other`.
    fn or(self, other: Self) -> Self {
        Self {
            listen: self.listen.or(other.listen),
            data_dir: self.data_dir.or(other.data_dir),
            apps_dir: self.apps_dir.or(other.apps_dir),
            database_url: self.database_url.or(other.database_url),
            concurrency: self.concurrency.or(other.concurrency),
            lease: self.lease.or(other.lease),
            poll_interval: self.poll_interval.or(other.poll_interval),
            shutdown_grace: self.shutdown_grace.or(other.shutdown_grace),
            max_body_bytes: self.max_body_bytes.or(other.max_body_bytes),
            max_batch_mb: self.max_batch_mb.or(other.max_batch_mb),
            sqlite_sync: self.sqlite_sync.or(other.sqlite_sync),
            mock_latency: self.mock_latency.or(other.mock_latency),
            max_upload_mb: self.max_upload_mb.or(other.max_upload_mb),
            org_quota_mb: self.org_quota_mb.or(other.org_quota_mb),
            header_timeout: self.header_timeout.or(other.header_timeout),
            body_timeout: self.body_timeout.or(other.body_timeout),
            idle_timeout: self.idle_timeout.or(other.idle_timeout),
            max_connections: self.max_connections.or(other.max_connections),
            extract_concurrency: self.extract_concurrency.or(other.extract_concurrency),
            file_storage: self.file_storage.or(other.file_storage),
            webhook_allow_private: self.webhook_allow_private.or(other.webhook_allow_private),
            webhook_backoff: self.webhook_backoff.or(other.webhook_backoff),
            webhook_backoff_max: self.webhook_backoff_max.or(other.webhook_backoff_max),
            webhook_retry_for: self.webhook_retry_for.or(other.webhook_retry_for),
            providers: if self.providers.is_empty() {
                other.providers
            } else {
                self.providers
            },
        }
    }
}

/// The configured providers (or the quickstart default), with their keys read from `env`.
fn resolve_providers(
    configured: BTreeMap<String, ProviderConfig>,
    env: &impl Fn(&str) -> Option<String>,
    mock_latency: Duration,
) -> Result<BTreeMap<String, ProviderConfig>, SettingsError> {
    let mut resolved = providers::resolve(configured, env, mock_latency);
    for (name, provider) in &mut resolved {
        if let Some(var) = &provider.api_key_env {
            let key = env(var).filter(|k| !k.is_empty()).ok_or_else(|| {
                SettingsError::Invalid(format!(
                    "provider '{name}': the environment variable {var} (api_key_env) is not set"
                ))
            })?;
            provider.api_key = Some(Secret::new(key));
        }
    }
    Ok(resolved)
}

fn read_file(path: &Path) -> Result<ServeOptions, SettingsError> {
    let error = |cause| SettingsError::File {
        path: path.to_path_buf(),
        cause,
    };
    let text = std::fs::read_to_string(path).map_err(|e| error(Cause::new(e)))?;
    toml::from_str(&text).map_err(|e| error(Cause::new(e)))
}

#[cfg(test)]
mod tests;
