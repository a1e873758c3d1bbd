//! The command line: `serve`, `keys`, `migrate`, `apps validate`, and the commands that talk
//! to a running server over HTTP through [`remote`]: `apps push|pull|list|show` (apps.rs),
//! `jobs` (jobs.rs) and `batch` (batch/). Each subcommand parses its arguments and calls one
//! library function; output meant for scripts goes to stdout (`--json` where offered),
//! messages and progress to stderr.
//!
//! Exit codes: 0 done; 1 done, but some items (or files) failed; 2 the command could not do
//! its work (usage, connection, refusal: main.rs); 130 interrupted (`batch run`).

mod apps;
mod batch;
mod jobs;
mod remote;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use tokio::net::TcpListener;

use crate::apps::Registry;
use crate::auth::{DEFAULT_ORG, create_key};
use crate::config::{Database, ServeOptions, Settings};
use crate::server::{Server, open_store};
use crate::store::rfc3339;
use crate::store::sqlite::Durability;

/// scriptorium: Writer-compatible no-code applications, run as durable batch jobs.
#[derive(Parser)]
#[command(name = "scriptorium", version, about)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server.
    Serve {
        /// A TOML file with the same settings as the flags.
        #[arg(long, env = "SCRIPTORIUM_CONFIG")]
        config: Option<PathBuf>,
        #[command(flatten)]
        options: Box<ServeOptions>,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Work with application files.
    Apps {
        #[command(subcommand)]
        command: AppsCommand,
    },
    /// Apply the database migrations (servers also do this at start).
    Migrate {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Run a spreadsheet of rows through an application, and follow or manage batches.
    Batch {
        #[command(subcommand)]
        command: batch::BatchCommand,
    },
    /// Read and manage a server's jobs.
    Jobs {
        #[command(subcommand)]
        command: jobs::JobsCommand,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; it is printed once, alone on the last line.
    Create {
        /// A label for the key.
        #[arg(long)]
        name: String,
        /// The organisation it belongs to (created if new).
        #[arg(long, default_value = DEFAULT_ORG)]
        org: String,
        #[command(flatten)]
        db: DbArgs,
    },
    /// List keys (never the keys themselves).
    List {
        #[command(flatten)]
        db: DbArgs,
    },
    /// Revoke a key by its id (its first 12 characters).
    Revoke {
        /// The key id, as `keys list` shows it.
        id: String,
        #[command(flatten)]
        db: DbArgs,
    },
}

#[derive(Subcommand)]
enum AppsCommand {
    /// Check application files without starting a server.
    Validate {
        /// The folder [default: ./apps].
        #[arg(env = "SCRIPTORIUM_APPS", default_value = "apps")]
        dir: PathBuf,
    },
    /// Create or update, on a server, the application of each TOML file (one line per file;
    /// a file whose definition is already current makes no new version).
    Push {
        /// A TOML file, or a folder of them.
        path: PathBuf,
        #[command(flatten)]
        server: remote::ServerArgs,
    },
    /// Write the current definition of a server's application as a TOML file.
    Pull {
        /// The application's id.
        id: String,
        /// The file to write (replaced if it exists) [default: stdout].
        #[arg(long, short)]
        output: Option<PathBuf>,
        #[command(flatten)]
        server: remote::ServerArgs,
    },
    /// List the applications a server serves to this key.
    List {
        /// Print the applications as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: remote::ServerArgs,
    },
    /// Show an application and its inputs.
    Show {
        /// The application's id.
        id: String,
        /// Print the application as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        server: remote::ServerArgs,
    },
}

/// Which database a tool works on.
#[derive(clap::Args)]
struct DbArgs {
    /// Directory for state [default: ./scriptorium-data].
    #[arg(long, env = "SCRIPTORIUM_DATA_DIR", default_value = "scriptorium-data")]
    data_dir: PathBuf,
    /// Database URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "SCRIPTORIUM_DATABASE_URL")]
    database_url: Option<String>,
}

impl DbArgs {
    fn database(&self) -> anyhow::Result<Database> {
        Ok(Database::parse(
            self.database_url.as_deref(),
            &self.data_dir,
        )?)
    }
}

/// Runs the parsed command line; the exit code, unless it failed (then main.rs exits 2).
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let done = |()| ExitCode::SUCCESS;
    match cli.command {
        Command::Serve { config, options } => serve(*options, config).await.map(done),
        Command::Keys { command } => keys(command).await.map(done),
        Command::Apps { command } => apps(command).await,
        Command::Migrate { db } => migrate(&db).await.map(done),
        Command::Batch { command } => batch::run(command).await,
        Command::Jobs { command } => jobs::run(command).await.map(done),
    }
}

/// Prints `value` as pretty JSON on stdout (the `--json` output).
fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// A JSON string as text; anything else as JSON (`-` for null), for human output.
fn text(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

async fn serve(options: ServeOptions, config: Option<PathBuf>) -> anyhow::Result<()> {
    let shutdown = shutdown_signal()?;
    let settings = Settings::resolve(options, config.as_deref(), |name| std::env::var(name).ok())?;
    let listener = TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let server = Server::build(&settings, listener).await?;
    tracing::info!(address = %server.local_addr()?, "scriptorium is serving");
    server.run(shutdown).await?;
    tracing::info!("stopped");
    Ok(())
}

/// Installs the SIGINT/SIGTERM handlers now (so a signal during startup is not lost) and
/// answers a future that resolves on the first of them.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => {}
            _ = terminate.recv() => {}
        }
        tracing::info!("shutting down");
    })
}

async fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Create { name, org, db } => {
            let store = open_store(&db.database()?, Durability::Full).await?;
            let (key, info) = create_key(store.as_ref(), org.into(), &name).await?;
            println!(
                "Created key {} '{}' for organisation '{}'.",
                info.id, info.name, info.org
            );
            println!("It is shown only this once:");
            println!("{}", key.expose());
        }
        KeysCommand::List { db } => {
            let store = open_store(&db.database()?, Durability::Full).await?;
            println!(
                "{:<14} {:<16} {:<24} {:<28} REVOKED",
                "ID", "ORG", "NAME", "CREATED"
            );
            for k in store.list_keys().await? {
                let revoked = k.revoked_at.map_or_else(|| "-".to_owned(), rfc3339);
                let created = rfc3339(k.created_at);
                println!(
                    "{:<14} {:<16} {:<24} {:<28} {revoked}",
                    k.id, k.org, k.name, created
                );
            }
        }
        KeysCommand::Revoke { id, db } => {
            let store = open_store(&db.database()?, Durability::Full).await?;
            if !store.revoke_key(&id).await? {
                bail!("no active key with id {id}");
            }
            println!("Revoked key {id}.");
        }
    }
    Ok(())
}

async fn migrate(db: &DbArgs) -> anyhow::Result<()> {
    let database = db.database()?;
    match &database {
        Database::Sqlite(_) => drop(open_store(&database, Durability::Full).await?),
        Database::Postgres(url) => crate::store::postgres::migrate(url).await?,
    }
    println!("{database:?}: migrations applied");
    Ok(())
}

async fn apps(command: AppsCommand) -> anyhow::Result<ExitCode> {
    match command {
        AppsCommand::Validate { dir } => validate_apps(&dir).map(|()| ExitCode::SUCCESS),
        AppsCommand::Push { path, server } => apps::push(&path, server).await,
        AppsCommand::Pull { id, output, server } => apps::pull(&id, output.as_deref(), server)
            .await
            .map(|()| ExitCode::SUCCESS),
        AppsCommand::List { json, server } => {
            apps::list(server, json).await.map(|()| ExitCode::SUCCESS)
        }
        AppsCommand::Show { id, json, server } => apps::show(&id, server, json)
            .await
            .map(|()| ExitCode::SUCCESS),
    }
}

fn validate_apps(dir: &std::path::Path) -> anyhow::Result<()> {
    let registry = Registry::load_dir(dir).map_err(|e| anyhow::anyhow!("{e}"))?;
    let ids: Vec<&str> = registry.all().iter().map(|a| a.id.as_str()).collect();
    println!(
        "{}: {} applications OK ({})",
        dir.display(),
        ids.len(),
        ids.join(", ")
    );
    Ok(())
}
