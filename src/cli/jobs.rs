//! `jobs list|get|retry|cancel`: Writer's job routes (and our job cancel), for a person
//! (one line a job) or a script (`--json`: the server's answer as it is).

use serde_json::Value;

use super::remote::{Remote, ServerArgs};
use super::{print_json, text};

/// The `jobs` subcommands.
#[derive(clap::Subcommand)]
pub(super) enum JobsCommand {
    /// List an application's jobs, newest first.
    List {
        /// The application's id.
        #[arg(long)]
        app: String,
        /// Only jobs in this state: in_progress, completed or failed.
        #[arg(long)]
        status: Option<String>,
        /// How many jobs to skip (newest first).
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// How many jobs to show.
        #[arg(long, default_value_t = 50)]
        limit: u64,
        #[command(flatten)]
        common: Common,
    },
    /// Show a job, with its result or error.
    Get {
        /// The job's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Run a failed (or cancelled) job again.
    Retry {
        /// The job's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
    /// Cancel a job that has not finished (scriptorium servers only).
    Cancel {
        /// The job's id.
        id: String,
        #[command(flatten)]
        common: Common,
    },
}

/// What every `jobs` subcommand takes: the server, and whether to print JSON.
#[derive(clap::Args)]
pub(super) struct Common {
    /// Print the server's answer as JSON.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    server: ServerArgs,
}

/// Runs a `jobs` subcommand.
pub(super) async fn run(command: JobsCommand) -> anyhow::Result<()> {
    match command {
        JobsCommand::List {
            app,
            status,
            offset,
            limit,
            common,
        } => {
            let mut path = format!("/v1/applications/{app}/jobs?offset={offset}&limit={limit}");
            if let Some(status) = status {
                path += &format!("&status={status}");
            }
            let page = Remote::new(common.server)?.get(&path).await?;
            if common.json {
                return print_json(&page);
            }
            let jobs = page["result"].as_array().cloned().unwrap_or_default();
            println!("{:<36} {:<11} {:<27} RESULT", "ID", "STATUS", "CREATED");
            for job in &jobs {
                println!(
                    "{:<36} {:<11} {:<27} {}",
                    text(&job["id"]),
                    text(&job["status"]),
                    text(&job["created_at"]),
                    one_line(outcome(job), 60)
                );
            }
            eprintln!(
                "{} of {} jobs (offset {offset})",
                jobs.len(),
                text(&page["totalCount"])
            );
            Ok(())
        }
        JobsCommand::Get { id, common } => {
            let job = Remote::new(common.server)?
                .get(&format!("/v1/applications/jobs/{id}"))
                .await?;
            show(&job, common.json)
        }
        JobsCommand::Retry { id, common } => {
            let job = Remote::new(common.server)?
                .post_empty(&format!("/v1/applications/jobs/{id}/retry"))
                .await?;
            show(&job, common.json)
        }
        JobsCommand::Cancel { id, common } => {
            let job = Remote::new(common.server)?
                .post_empty(&format!("/v1/applications/jobs/{id}/cancel"))
                .await?;
            show(&job, common.json)
        }
    }
}

/// A job for a person: its id and status, then its title and text, or its error.
fn show(job: &Value, json: bool) -> anyhow::Result<()> {
    if json {
        return print_json(job);
    }
    println!("job {}: {}", text(&job["id"]), text(&job["status"]));
    if let Some(state) = job["state"].as_str() {
        println!("state: {state}");
    }
    if let Some(batch) = job["batch_id"].as_str() {
        println!("batch: {batch} (item {})", text(&job["custom_id"]));
    }
    if let Some(title) = job["data"]["title"].as_str() {
        println!("title: {title}");
    }
    if let Some(suggestion) = job["data"]["suggestion"].as_str() {
        println!("{suggestion}");
    }
    if let Some(error) = job["error"].as_str() {
        println!("error: {error}");
    }
    Ok(())
}

/// What a job came to: its title or text, its error, or nothing yet.
fn outcome(job: &Value) -> &str {
    job["data"]["title"]
        .as_str()
        .or(job["data"]["suggestion"].as_str())
        .or(job["error"].as_str())
        .unwrap_or("")
}

/// `s` on one line, cut to `max` characters.
pub(super) fn one_line(s: &str, max: usize) -> String {
    let flat: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() <= max {
        return flat;
    }
    let cut: String = flat.chars().take(max - 1).collect();
    format!("{cut}…")
}
