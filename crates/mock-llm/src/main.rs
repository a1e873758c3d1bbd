//! The `mock-llm` binary: parse the flags, start logging, serve until SIGINT or SIGTERM.

use std::io::IsTerminal;

use anyhow::Context;
use clap::Parser;
use mock_llm::MockLlmArgs;
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// As in `scriptorium`: the mock is measured beside the server and should not be the
/// slower of the two at allocating.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Run an OpenAI-compatible mock model server for tests and benchmarks.
#[derive(Parser)]
#[command(name = "mock-llm", version)]
struct Cli {
    #[command(flatten)]
    args: MockLlmArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Cli::parse().args;
    let filter = EnvFilter::try_from_env("MOCK_LLM_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
    let shutdown = shutdown_signal()?;
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    mock_llm::serve(args, listener, shutdown).await?;
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
