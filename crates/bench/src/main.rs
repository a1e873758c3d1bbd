//! The `scriptorium-bench` binary: parse the command line, start logging, run the scenarios.

use std::io::IsTerminal;

use clap::Parser;
use scriptorium_bench::{BenchArgs, run_bench};
use tracing_subscriber::EnvFilter;

/// The server's allocator, so that the servers measured in process run as `scriptorium` does.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Measure intake, burn-down, wake-up latency and reads at scale.
#[derive(Parser)]
#[command(name = "scriptorium-bench", version)]
struct Cli {
    #[command(flatten)]
    args: BenchArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let filter =
        EnvFilter::try_from_env("SCRIPTORIUM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    run_bench(cli.args).await
}
