//! The `scriptorium` binary: parse the command line, start logging, run the command.

use std::io::IsTerminal;

use clap::Parser;
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = scriptorium::cli::Cli::parse();
    let filter =
        EnvFilter::try_from_env("SCRIPTORIUM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    scriptorium::cli::run(cli).await
}
