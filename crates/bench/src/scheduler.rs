//! The scheduler's figures, against `mock-llm` in this process over real HTTP:
//! - `knee`: a model server that serves `capacity` calls at once in 100 ms each and queues the
//!   rest (as vLLM and llama.cpp do), worked through with `max_concurrency = "auto"` and with
//!   a fixed 256: throughput, the median of the calls open at the server (served and queued,
//!   sampled every 50 ms until nine tenths of the jobs are done), and when "auto" converged
//!   (the second from which each second's median of them stayed between the capacity and
//!   twice it); for "auto", its latest changes. Capacities 16 and 64, and a server of
//!   capacity 16 that answers 503 once 8 calls wait (as Ollama does).
//! - `fairness`: one organisation's backlog of 5,000 jobs at 200 ms a call, 8 at once; the
//!   time another organisation's 20 jobs take to finish behind it, beside the time they take
//!   on an idle server.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use mock_llm::MockLlmArgs;
use scriptorium::providers::config::{Concurrency, ProviderConfig, ProviderKind};
use serde_json::{Value, json};

use super::BenchArgs;
use super::harness::{APP, Llm, Running, Workspace, count, start};

/// A server in `workspace` working with `concurrency` jobs at once on a provider at `url`.
async fn serve(
    workspace: &Workspace,
    args: &BenchArgs,
    url: String,
    limit: Concurrency,
    concurrency: usize,
) -> anyhow::Result<Running> {
    let provider = ProviderConfig {
        base_url: Some(url),
        model: Some("bench".into()),
        max_concurrency: limit,
        timeout: Duration::from_secs(60),
        ..ProviderConfig::new(ProviderKind::Openai)
    };
    let mut options = workspace.options(concurrency, args.sqlite_sync);
    options.providers = BTreeMap::from([("default".to_owned(), provider)]);
    start(options).await
}

pub(super) async fn knee(args: &BenchArgs) -> anyhow::Result<()> {
    let servers = [
        ("capacity 16", 16, 0),
        ("capacity 64", 64, 0),
        ("capacity 16, 503 past a queue of 8", 16, 8),
    ];
    for (name, capacity, queue_limit) in servers {
        let mut figures = Vec::new();
        for limit in [Concurrency::Auto, Concurrency::Fixed(256)] {
            let run = knee_run(args, capacity, queue_limit, limit).await?;
            figures.push(run);
        }
        let (auto, fixed) = (&figures[0], &figures[1]);
        for (label, run) in [("auto", auto), ("fixed 256", fixed)] {
            let converged = run
                .converged
                .map_or("never".to_owned(), |t| format!("{t}s"));
            println!(
                "knee ({name}): {label}: {:.1} jobs/s, median open at the server {}, 503s {}, open calls within capacity..2x capacity from {converged} on",
                run.throughput, run.median_open, run.refused
            );
            println!(
                "  open at the server, median of each second: {:?}",
                run.per_second
            );
            if !run.history.is_empty() {
                let changes: Vec<String> = run
                    .history
                    .iter()
                    .map(|(t, l)| format!("{t:.1}s:{l}"))
                    .collect();
                println!("  auto limit, latest changes: {}", changes.join(" "));
            }
        }
        println!(
            "knee ({name}): auto's throughput is {:.0}% of fixed 256's",
            100.0 * auto.throughput / fixed.throughput
        );
    }
    Ok(())
}

struct KneeRun {
    throughput: f64,
    median_open: u64,
    /// Seconds into the run from which the calls open at the server stayed near the knee.
    converged: Option<u64>,
    refused: u64,
    /// The median of the calls open at the server in each second of the run.
    per_second: Vec<u64>,
    /// The "auto" limit's latest changes: seconds into the run, and the new limit.
    history: Vec<(f64, u64)>,
}

fn median(mut values: Vec<u64>) -> u64 {
    values.sort_unstable();
    values.get(values.len() / 2).copied().unwrap_or(0)
}

/// The default provider's "auto" history from the providers route, in seconds since `started`.
fn limit_history(providers: &Value, started: Instant) -> Vec<(f64, u64)> {
    let started_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .saturating_sub(started.elapsed())
        .as_millis() as f64;
    let Some(changes) = providers["providers"]
        .as_array()
        .and_then(|all| all.iter().find(|p| p["name"] == "default"))
        .and_then(|p| p["auto"]["history"].as_array())
    else {
        return Vec::new();
    };
    changes
        .iter()
        .filter_map(|c| {
            Some((
                (c["at_ms"].as_f64()? - started_ms) / 1000.0,
                c["limit"].as_u64()?,
            ))
        })
        .collect()
}

async fn knee_run(
    args: &BenchArgs,
    capacity: usize,
    queue_limit: usize,
    limit: Concurrency,
) -> anyhow::Result<KneeRun> {
    let latency = Duration::from_millis(100);
    let llm = Llm::serve(MockLlmArgs {
        ttft: latency,
        capacity,
        queue_limit,
        output_tokens: 8,
        ..MockLlmArgs::default()
    })
    .await?;
    // About twenty seconds of work at the server's full rate.
    let jobs = capacity * 10 * 20;
    let workspace = Workspace::new(args).await?;
    workspace.seed(jobs).await?;
    let client = reqwest::Client::new();
    let started = Instant::now();
    let server = serve(&workspace, args, llm.url.clone(), limit, 512).await?;
    // Samples while at least a tenth of the jobs is left, so the drain at the end (when the
    // server runs out of work, not of room) does not count.
    let mut samples = Vec::new();
    let mut last_check = Instant::now();
    loop {
        let stats = llm.mock.stats();
        if stats.completed < jobs as u64 * 9 / 10 {
            samples.push((started.elapsed(), stats.in_flight + stats.queued));
        }
        if last_check.elapsed() >= Duration::from_millis(500) {
            last_check = Instant::now();
            if count(&client, &server.base, "completed").await? >= jobs as u64 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let providers: Value = client
        .get(format!("{}/v1/scriptorium/providers", server.base))
        .bearer_auth(super::harness::KEY)
        .send()
        .await?
        .json()
        .await?;
    server.stop().await?;
    let history = limit_history(&providers, started);
    let refused = llm
        .mock
        .stats()
        .faults
        .get("queue_full")
        .copied()
        .unwrap_or(0);
    let per_second = samples
        .chunk_by(|a, b| a.0.as_secs() == b.0.as_secs())
        .map(|second| median(second.iter().map(|(_, open)| *open).collect()))
        .collect::<Vec<u64>>();
    // Converged: from the first second after which every second's median stays within the
    // capacity and twice it.
    let band = capacity as u64..=2 * capacity as u64;
    let converged = match per_second.iter().rposition(|open| !band.contains(open)) {
        None => Some(0),
        Some(last) if last + 1 < per_second.len() => Some(last as u64 + 1),
        Some(_) => None,
    };
    Ok(KneeRun {
        throughput: jobs as f64 / took.as_secs_f64(),
        median_open: median(samples.iter().map(|(_, open)| *open).collect()),
        converged,
        refused,
        per_second,
        history,
    })
}

pub(super) async fn fairness(args: &BenchArgs) -> anyhow::Result<()> {
    let idle = fairness_run(args, 0).await?;
    let behind = fairness_run(args, 5_000).await?;
    let bound = idle * 2 + Duration::from_secs(1);
    println!(
        "fairness: 20 jobs of a second organisation took {:.2}s behind a 5,000-job backlog, {:.2}s on an idle server (bound: 2x idle + 1s = {:.2}s): {}",
        behind.as_secs_f64(),
        idle.as_secs_f64(),
        bound.as_secs_f64(),
        if behind <= bound { "within" } else { "OVER" }
    );
    Ok(())
}

/// How long 20 jobs of another organisation take with `backlog` jobs queued before them.
async fn fairness_run(args: &BenchArgs, backlog: usize) -> anyhow::Result<Duration> {
    let llm = Llm::serve(MockLlmArgs {
        ttft: Duration::from_millis(200),
        output_tokens: 8,
        ..MockLlmArgs::default()
    })
    .await?;
    let workspace = Workspace::new(args).await?;
    workspace.seed(backlog).await?;
    let key = workspace.key_for("second").await?;
    let server = serve(&workspace, args, llm.url.clone(), Concurrency::Fixed(8), 8).await?;
    let client = reqwest::Client::new();
    if backlog > 0 {
        // The backlog is being worked when the other organisation arrives.
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    let started = Instant::now();
    let create = format!("{}/v1/applications/{APP}/jobs", server.base);
    for i in 0..20 {
        let body = json!({"inputs": [{"id": "Text", "value": [format!("second {i}")]}]});
        let response = client
            .post(&create)
            .bearer_auth(&key)
            .json(&body)
            .send()
            .await?;
        anyhow::ensure!(response.status() == 202, "create: {}", response.status());
    }
    let done = format!(
        "{}/v1/applications/{APP}/jobs?status=completed&limit=1",
        server.base
    );
    loop {
        let page: Value = client
            .get(&done)
            .bearer_auth(&key)
            .send()
            .await?
            .json()
            .await?;
        if page["totalCount"].as_u64() == Some(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    server.stop().await?;
    Ok(took)
}
