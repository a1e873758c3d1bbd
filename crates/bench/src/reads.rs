//! Reads at scale: with many jobs stored (and worked), `GET` a job and `GET` a page of the
//! list with `totalCount`, from 8 concurrent clients.

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::harness::{APP, KEY, Workspace, jobs_page, start};
use super::work::work_off;
use super::{BenchArgs, percentiles};

const CLIENTS: usize = 8;
const REQUESTS: usize = 4000;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let seeded = Instant::now();
    workspace.seed(args.stored).await?;
    println!(
        "reads: seeded {} jobs in {:.1}s",
        args.stored,
        seeded.elapsed().as_secs_f64()
    );
    let took = work_off(&workspace, args, args.stored as u64).await?;
    println!(
        "reads: worked all {} in {:.1}s = {:.0} jobs/s",
        args.stored,
        took.as_secs_f64(),
        args.stored as f64 / took.as_secs_f64()
    );
    let server = start(workspace.options(0, args.sqlite_sync)).await?;
    let client = reqwest::Client::new();
    let ids = sample_ids(&client, &server.base).await?;
    let base = server.base.clone();
    let get = measure(&client, {
        let (ids, base) = (Arc::new(ids), base.clone());
        move |i| format!("{base}/v1/applications/jobs/{}", ids[i % ids.len()])
    })
    .await?;
    report("GET a job", get);
    let first_page = measure(&client, {
        let base = base.clone();
        move |_| format!("{base}/v1/applications/{APP}/jobs?limit=50")
    })
    .await?;
    report("GET the first page of 50 with totalCount", first_page);
    let filtered = measure(&client, {
        let base = base.clone();
        move |_| format!("{base}/v1/applications/{APP}/jobs?status=completed&limit=50")
    })
    .await?;
    report("GET a status-filtered page of 50 with totalCount", filtered);
    let deep = measure(&client, move |i| {
        format!(
            "{base}/v1/applications/{APP}/jobs?limit=50&offset={}",
            (i % 100) * 1000
        )
    })
    .await?;
    report("GET a page at offsets 0..99,000", deep);
    server.stop().await
}

/// Ids spread over the table, taken from list pages.
async fn sample_ids(client: &reqwest::Client, base: &str) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for offset in (0..100_000).step_by(10_000) {
        let page = jobs_page(client, base, &format!("limit=100&offset={offset}")).await?;
        let result = page["result"].as_array().cloned().unwrap_or_default();
        ids.extend(
            result
                .iter()
                .filter_map(|j| j["id"].as_str().map(str::to_owned)),
        );
    }
    anyhow::ensure!(!ids.is_empty(), "no jobs to read");
    Ok(ids)
}

/// Latencies of `REQUESTS` GETs to `url(i)` from `CLIENTS` concurrent clients.
async fn measure(
    client: &reqwest::Client,
    url: impl Fn(usize) -> String + Send + Sync + 'static,
) -> anyhow::Result<Vec<Duration>> {
    let url = Arc::new(url);
    let mut tasks = Vec::new();
    for lane in 0..CLIENTS {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            for i in (lane..REQUESTS).step_by(CLIENTS) {
                let started = Instant::now();
                let response = client.get(url(i)).bearer_auth(KEY).send().await?;
                anyhow::ensure!(response.status().is_success(), "{}", response.status());
                response.bytes().await?;
                samples.push(started.elapsed());
            }
            Ok(samples)
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        all.extend(task.await??);
    }
    Ok(all)
}

fn report(what: &str, mut samples: Vec<Duration>) {
    let (p50, p99) = percentiles(&mut samples);
    println!("reads: {what}: p50 {p50:.2} ms, p99 {p99:.2} ms ({CLIENTS} clients)");
}
