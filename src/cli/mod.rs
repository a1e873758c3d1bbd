//! The command line: `serve`, `keys`, `apps validate`, `apps push`/`pull` (remote.rs),
//! `migrate`. Each subcommand parses its arguments and calls one library function; output
//! meant for scripts goes to stdout.

mod remote;

use std::path::PathBuf;

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

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { config, options } => serve(*options, config).await,
        Command::Keys { command } => keys(command).await,
        Command::Apps { command } => apps(command).await,
        Command::Migrate { db } => migrate(&db).await,
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

async fn apps(command: AppsCommand) -> anyhow::Result<()> {
    match command {
        AppsCommand::Validate { dir } => validate_apps(&dir),
        AppsCommand::Push { path, server } => remote::push(&path, server).await,
        AppsCommand::Pull { id, output, server } => {
            remote::pull(&id, output.as_deref(), server).await
        }
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
