//! `batch run` (a CSV or JSONL file of rows through an application: run.rs and the modules
//! it drives) and `batch status|results|cancel|retry` on a batch by id.
//!
//! `batch run`, in order: read the rows ([`rows`]), check them against the application's
//! inputs ([`check`]), open the state file beside the output ([`state`]), send the rows as
//! batches or, where the server has no batch route, as single jobs ([`submit`]), follow them
//! ([`follow`]) while showing progress ([`progress`]), and write the output in input order
//! ([`output`]). docs/cli.md tells how a run resumes without sending anything twice.

mod check;
mod follow;
mod output;
mod progress;
mod rows;
mod run;
mod state;
mod submit;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::Value;

use super::remote::{Remote, ServerArgs, refusal};
use super::{print_json, text};

/// The `batch` subcommands.
#[derive(clap::Subcommand)]
pub(super) enum BatchCommand {
    /// Run every row of a CSV or JSONL file through an application and write the results in
    /// input order. Stopped with Ctrl-C, the same command resumes it without sending any row
    /// twice. Exits 0 when every row completed, 1 when some failed or were invalid, 130 when
    /// interrupted.
    Run(run::RunArgs),
    /// Show a batch: its state, counts and estimated end.
    Status {
        /// The batch's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Write a batch's finished items (in the order they finished) to stdout or a file.
    Results {
        /// The batch's id.
        id: String,
        /// The file to write [default: stdout]; never overwritten.
        #[arg(long, short)]
        output: Option<PathBuf>,
        /// csv or jsonl [default: the output's extension, else jsonl].
        #[arg(long)]
        format: Option<String>,
        /// Only items in this state: completed, failed or cancelled.
        #[arg(long)]
        status: Option<String>,
        #[command(flatten)]
        server: ServerArgs,
    },
    /// Cancel a batch: waiting items stop at once, running ones are aborted.
    Cancel {
        /// The batch's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run a batch's failed items again.
    Retry {
        /// The batch's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// What the single-batch subcommands take: the server, and whether to print JSON.
#[derive(clap::Args)]
pub(super) struct Common {
    /// Print the batch as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// The route of batch `id`.
fn batch_path(id: &str) -> String {
    format!("/v1/applications/batches/{id}")
}

/// Runs a `batch` subcommand.
pub(super) async fn run(command: BatchCommand) -> anyhow::Result<ExitCode> {
    let (batch, json) = match command {
        BatchCommand::Run(args) => return run::run(args).await,
        BatchCommand::Results {
            id,
            output,
            format,
            status,
            server,
        } => {
            results(&id, output, format, status, server).await?;
            return Ok(ExitCode::SUCCESS);
        }
        BatchCommand::Status { id, common } => {
            let remote = Remote::new(common.server)?;
            (remote.get(&batch_path(&id)).await?, common.json)
        }
        BatchCommand::Cancel { id, common } => {
            let remote = Remote::new(common.server)?;
            let path = format!("{}/cancel", batch_path(&id));
            (remote.post_empty(&path).await?, common.json)
        }
        BatchCommand::Retry { id, common } => {
            let remote = Remote::new(common.server)?;
            let path = format!("{}/retry", batch_path(&id));
            (remote.post_empty(&path).await?, common.json)
        }
    };
    if json {
        print_json(&batch)?;
    } else {
        show(&batch);
    }
    Ok(ExitCode::SUCCESS)
}

/// A batch for a person.
fn show(batch: &Value) {
    let counts = &batch["counts"];
    println!(
        "batch {} of {}: {}",
        text(&batch["id"]),
        text(&batch["application_id"]),
        text(&batch["status"])
    );
    println!(
        "items: {} total, {} completed, {} failed, {} cancelled, {} in progress",
        text(&counts["total"]),
        text(&counts["completed"]),
        text(&counts["failed"]),
        text(&counts["cancelled"]),
        text(&counts["in_progress"])
    );
    println!("created: {}", text(&batch["created_at"]));
    for (label, field) in [
        ("estimated end", "eta"),
        ("completed", "completed_at"),
        ("cancelled", "cancelled_at"),
    ] {
        if let Some(at) = batch[field].as_str() {
            println!("{label}: {at}");
        }
    }
    for error in batch["errors"].as_array().into_iter().flatten() {
        println!(
            "refused item {}: {}",
            text(&error["custom_id"]),
            text(&error["description"])
        );
    }
}

/// `batch results`: streams the results route's body to stdout, or to a file that appears
/// whole once the stream has ended (never over an existing one).
async fn results(
    id: &str,
    output: Option<PathBuf>,
    format: Option<String>,
    status: Option<String>,
    server: ServerArgs,
) -> anyhow::Result<()> {
    use std::io::Write;

    let from_name = output
        .as_ref()
        .and_then(|o| o.extension())
        .and_then(|e| e.to_str())
        .filter(|e| *e == "csv" || *e == "jsonl")
        .map(str::to_owned);
    let format = format.or(from_name).unwrap_or_else(|| "jsonl".to_owned());
    if format != "csv" && format != "jsonl" {
        bail!("--format must be csv or jsonl");
    }
    if let Some(path) = output.as_ref().filter(|p| p.exists()) {
        bail!("{} exists: it is never overwritten", path.display());
    }
    let mut path = format!("{}/results?format={format}", batch_path(id));
    if let Some(status) = status {
        path += &format!("&status={status}");
    }
    let remote = Remote::new(server)?;
    let request = remote
        .request(Method::GET, &path)
        .timeout(std::time::Duration::from_secs(3600));
    let mut response = remote.send(request).await?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.json().await.unwrap_or(Value::Null);
        bail!("{}", refusal(status, &body));
    }
    let mut file = match &output {
        Some(path) => {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            Some(tempfile::NamedTempFile::new_in(
                dir.unwrap_or(Path::new(".")),
            )?)
        }
        None => None,
    };
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = response.chunk().await.context("the results stream broke")? {
        match &mut file {
            Some(file) => file.write_all(&chunk)?,
            None => stdout.write_all(&chunk)?,
        }
    }
    stdout.flush()?;
    if let (Some(file), Some(path)) = (file, &output) {
        file.persist_noclobber(path)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
