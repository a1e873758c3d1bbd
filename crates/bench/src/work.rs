//! Burn-down (queued jobs worked to completion) and wake-up latency (insert to attempt start
//! on an idle server).

use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::harness::{APP, KEY, Running, Workspace, count, create_batch, start};
use super::{BenchArgs, percentiles};

pub(super) async fn burndown(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let seeded = Instant::now();
    let what = if args.burndown_batch {
        seed_batch(&workspace, args).await?;
        "batch items"
    } else {
        workspace.seed(args.jobs).await?;
        "jobs"
    };
    println!(
        "burndown: seeded {} {what} in {:.1}s",
        args.jobs,
        seeded.elapsed().as_secs_f64()
    );
    let took = work_off(&workspace, args, args.jobs as u64).await?;
    println!(
        "burndown: {} jobs in {:.2}s = {:.0} jobs/s ({} node(s), concurrency {} each, zero-latency mock)",
        args.jobs,
        took.as_secs_f64(),
        args.jobs as f64 / took.as_secs_f64(),
        args.nodes,
        args.concurrency
    );
    Ok(())
}

/// Stores `--jobs` items as one batch through a server that works none.
async fn seed_batch(workspace: &Workspace, args: &BenchArgs) -> anyhow::Result<()> {
    let server = start(workspace.options(0, args.sqlite_sync)).await?;
    let items: Vec<Value> = (0..args.jobs)
        .map(|_| json!({"inputs": [{"id": "Text", "value": ["hello"]}]}))
        .collect();
    create_batch(&reqwest::Client::new(), &server.base, items).await?;
    server.stop().await
}

/// Starts `--nodes` servers on a seeded workspace and waits until `n` jobs are completed.
pub(super) async fn work_off(
    workspace: &Workspace,
    args: &BenchArgs,
    n: u64,
) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let mut nodes: Vec<Running> = Vec::new();
    for _ in 0..args.nodes.max(1) {
        nodes.push(start(workspace.options(args.concurrency, args.sqlite_sync)).await?);
    }
    while count(&client, &nodes[0].base, "completed").await? < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    for node in nodes {
        node.stop().await?;
    }
    Ok(took)
}

pub(super) async fn wakeup(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let worker = start(workspace.options(64, args.sqlite_sync)).await?;
    // On a shared database, submit to a node that works no jobs: the wake-up crosses nodes.
    let front = match args.database_url {
        Some(_) => Some(start(workspace.options(0, args.sqlite_sync)).await?),
        None => None,
    };
    let server = front.as_ref().unwrap_or(&worker);
    let client = reqwest::Client::new();
    let body = serde_json::json!({"inputs": [{"id": "Text", "value": ["ping"]}]});
    let mut samples = Vec::new();
    for _ in 0..500 {
        // Let the dispatcher park on its wake-up signal, as on an idle server.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let created: serde_json::Value = client
            .post(format!("{}/v1/applications/{APP}/jobs", server.base))
            .bearer_auth(KEY)
            .json(&body)
            .send()
            .await?
            .json()
            .await?;
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        let job = loop {
            let job: serde_json::Value = client
                .get(format!("{}/v1/applications/jobs/{id}", server.base))
                .bearer_auth(KEY)
                .send()
                .await?
                .json()
                .await?;
            if job["status"] != "in_progress" {
                break job;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let at = |field: &str| -> anyhow::Result<SystemTime> {
            let text = job[field].as_str().unwrap_or_default();
            Ok(humantime::parse_rfc3339(text)?)
        };
        samples.push(at("started_at")?.duration_since(at("created_at")?)?);
    }
    let (p50, p99) = percentiles(&mut samples);
    let path = if front.is_some() {
        "accepted on one node, run on another"
    } else {
        "one node"
    };
    println!(
        "wakeup: insert to attempt start p50 {p50:.2} ms, p99 {p99:.2} ms ({} jobs, idle, {path})",
        samples.len()
    );
    if let Some(front) = front {
        front.stop().await?;
    }
    worker.stop().await
}
