//! `scriptorium-bench`: the figures the README quotes, measured on the machine at hand.
//!
//! Each scenario starts a real server (in process, on port 0, in a fresh data directory,
//! with a built-in benchmark application and the zero-latency mock) and measures it from
//! outside, over HTTP, except where noted:
//! - `intake`: jobs accepted per second through `POST …/jobs`, 64 keep-alive connections, each
//!   job committed before its 202, driven by `wrk`; beside it, the same server's no-op route
//!   (`GET /healthz`) in the same run, and the ratio of the two.
//! - `burndown`: N queued jobs (or with `--burndown-batch` one batch of N items) worked to
//!   completion; jobs per second.
//! - `wakeup`: on an idle server, the time from a job's insert to its attempt starting
//!   (`started_at - created_at`), p50 and p99 over sequential jobs.
//! - `model`: N jobs against `mock-llm` at a fixed latency and capacity; how close to the
//!   ideal `N × latency / capacity` the run gets, and the engine's own time per call.
//! - `reads`: with M jobs stored, `GET` one job and `GET` a page of the list (with
//!   `totalCount`), p50 and p99.
//! - `uploads`: a burst of 1,000 uploads: how fast they are taken and extracted, the most
//!   extractions at once against the limit, and job-create latency during the burst beside
//!   the latency before it.
//! - `knee`: `max_concurrency = "auto"` against fixed 256 on a server that queues past its
//!   capacity: throughput, calls open at the server, convergence (see `scheduler`).
//! - `fairness`: another organisation's 20 jobs behind a 5,000-job backlog, against idle.
//! - `dashboard`: with M jobs stored, the dashboard's heaviest pages (the overview, the jobs
//!   list at its start and deep in it, an application's page), p50 and p99, one client.
//! - `batches`: batch creates of 100,000 and 1,000,000 items, inline and from an uploaded CSV
//!   file: items stored per second (the 202 comes once all are durable) and the peak memory
//!   meanwhile, and what reading the stored batch costs.
//! - `eta`: a batch worked at steady speed by the mock provider at a fixed latency; the
//!   error of its `eta` at 25%, 50% and 75% against when it really completed.

mod batches;
mod dashboard;
mod eta;
mod harness;
mod intake;
mod model;
mod reads;
mod scheduler;
mod uploads;
mod work;

use std::path::PathBuf;
use std::time::Duration;

use scriptorium::store::sqlite::Durability;

/// What to measure.
#[derive(Clone, Debug, clap::Args)]
pub struct BenchArgs {
    /// Scenarios to run: intake, burndown, wakeup, model, reads, uploads, knee, fairness,
    /// batches, dashboard, eta (comma-separated) or all.
    #[arg(long, default_value = "all", value_delimiter = ',')]
    pub scenarios: Vec<String>,
    /// Jobs for the burn-down.
    #[arg(long, default_value_t = 100_000)]
    pub jobs: usize,
    /// The burn-down's jobs are the items of one batch (stored through `POST …/batches` on a
    /// server that works none) instead of single jobs.
    #[arg(long)]
    pub burndown_batch: bool,
    /// Sizes of the batches the batches scenario creates (comma-separated).
    #[arg(long, default_value = "100000,1000000", value_delimiter = ',')]
    pub batch_items: Vec<usize>,
    /// Items of the batch the eta scenario works (at `--llm-latency`, `--llm-capacity` at once).
    #[arg(long, default_value_t = 4_000)]
    pub eta_items: usize,
    /// Jobs stored before measuring reads and the dashboard.
    #[arg(long, default_value_t = 1_000_000)]
    pub stored: usize,
    /// Connections for the intake.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// How long each intake measurement runs.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// SQLite commit durability for the measured server.
    #[arg(long, value_enum, default_value = "full")]
    pub sqlite_sync: Durability,
    /// Engine concurrency for the burn-down.
    #[arg(long, default_value_t = 1024)]
    pub concurrency: usize,
    /// Jobs for the model scenario.
    #[arg(long, default_value_t = 10_000)]
    pub model_jobs: usize,
    /// The mock model's latency per call in the model and eta scenarios.
    #[arg(long, default_value = "250ms", value_parser = humantime::parse_duration)]
    pub llm_latency: Duration,
    /// The mock model's capacity, and the provider's `max_concurrency`, in the model and eta
    /// scenarios.
    #[arg(long, default_value_t = 64)]
    pub llm_capacity: usize,
    /// Measure on PostgreSQL (a fresh schema per scenario) instead of SQLite.
    #[arg(long)]
    pub database_url: Option<String>,
    /// Nodes working the burn-down (PostgreSQL only).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// Where to put the temporary data directories [default: the system temp dir].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// Runs the chosen scenarios and prints a line per figure.
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<()> {
    let wants = |name: &str| args.scenarios.iter().any(|s| s == name || s == "all");
    anyhow::ensure!(
        args.nodes == 1 || args.database_url.is_some(),
        "several nodes need a shared database: give --database-url postgres://..."
    );
    let backend = match &args.database_url {
        Some(_) => "PostgreSQL".to_owned(),
        None => format!("SQLite synchronous={:?}", args.sqlite_sync),
    };
    println!(
        "scriptorium bench: {} cores, {backend}",
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    );
    if wants("intake") {
        intake::run(&args).await?;
    }
    if wants("burndown") {
        work::burndown(&args).await?;
    }
    if wants("wakeup") {
        work::wakeup(&args).await?;
    }
    if wants("model") {
        model::run(&args).await?;
    }
    if wants("reads") {
        reads::run(&args).await?;
    }
    if wants("uploads") {
        uploads::run(&args).await?;
    }
    if wants("knee") {
        scheduler::knee(&args).await?;
    }
    if wants("fairness") {
        scheduler::fairness(&args).await?;
    }
    if wants("batches") {
        batches::run(&args).await?;
    }
    if wants("dashboard") {
        dashboard::run(&args).await?;
    }
    if wants("eta") {
        eta::run(&args).await?;
    }
    Ok(())
}

/// p50 and p99 of `samples` (sorted in place), in milliseconds.
fn percentiles(samples: &mut [Duration]) -> (f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        let i = ((samples.len() as f64 * q).ceil() as usize).clamp(1, samples.len()) - 1;
        samples[i].as_secs_f64() * 1000.0
    };
    (at(0.50), at(0.99))
}
