//! Burn-down (queued jobs worked to completion) and wake-up latency (insert to attempt start
//! on an idle server).

use std::time::{Duration, Instant, SystemTime};

use super::harness::{APP, KEY, count, options, seed, start, workspace};
use super::{BenchArgs, percentiles};

pub(super) async fn burndown(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = workspace(args)?;
    let seeded = Instant::now();
    seed(dir.path(), args.jobs).await?;
    println!(
        "burndown: seeded {} jobs in {:.1}s",
        args.jobs,
        seeded.elapsed().as_secs_f64()
    );
    let took = work_off(dir.path(), args, args.jobs as u64).await?;
    println!(
        "burndown: {} jobs in {:.2}s = {:.0} jobs/s (concurrency {}, zero-latency mock)",
        args.jobs,
        took.as_secs_f64(),
        args.jobs as f64 / took.as_secs_f64(),
        args.concurrency
    );
    Ok(())
}

/// Starts a server on a seeded workspace and waits until `n` jobs are completed.
pub(super) async fn work_off(
    dir: &std::path::Path,
    args: &BenchArgs,
    n: u64,
) -> anyhow::Result<Duration> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    let server = start(options(dir, args.concurrency, args.sqlite_sync)).await?;
    while count(&client, &server.base, "completed").await? < n {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    server.stop().await?;
    Ok(took)
}

pub(super) async fn wakeup(args: &BenchArgs) -> anyhow::Result<()> {
    let dir = workspace(args)?;
    let server = start(options(dir.path(), 64, args.sqlite_sync)).await?;
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
    println!(
        "wakeup: insert to attempt start p50 {p50:.2} ms, p99 {p99:.2} ms ({} jobs, idle server)",
        samples.len()
    );
    server.stop().await
}
