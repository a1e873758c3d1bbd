//! The batch's `eta`: one batch of `--eta-items` items worked at steady speed (the mock
//! provider at `--llm-latency` a call, `--llm-capacity` calls at once), its batch object read
//! every 100 ms. When a quarter, a half and three quarters of the items have finished, the
//! time the `eta` then promised is compared with when the batch really completed: the error,
//! in seconds and as a share of the time that was left.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use scriptorium::providers::config::{Concurrency, ProviderConfig, ProviderKind};
use serde_json::{Value, json};

use super::BenchArgs;
use super::harness::{KEY, Workspace, create_batch, start};

/// The shares of the batch at which the estimate is taken.
const MARKS: [f64; 3] = [0.25, 0.50, 0.75];

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let capacity = args.llm_capacity;
    let workspace = Workspace::new(args).await?;
    let provider = ProviderConfig {
        latency: args.llm_latency,
        max_concurrency: Concurrency::Fixed(capacity),
        ..ProviderConfig::new(ProviderKind::Mock)
    };
    let mut serve = workspace.options(capacity, args.sqlite_sync);
    serve.providers = BTreeMap::from([("default".to_owned(), provider)]);
    let server = start(serve).await?;
    let client = reqwest::Client::new();
    let items: Vec<Value> = (0..args.eta_items)
        .map(|n| json!({"inputs": [{"id": "Text", "value": [format!("product {n}")]}]}))
        .collect();
    let batch = create_batch(&client, &server.base, items).await?;
    let url = format!(
        "{}/v1/applications/batches/{}",
        server.base,
        batch["id"].as_str().unwrap_or_default()
    );

    // (share, when it was read, the eta it promised)
    let mut estimates: Vec<(f64, SystemTime, SystemTime)> = Vec::new();
    let completed_at = loop {
        let batch: Value = client
            .get(&url)
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        let read_at = SystemTime::now();
        if let Some(done) = batch["completed_at"].as_str() {
            break humantime::parse_rfc3339(done)?;
        }
        let total = batch["counts"]["total"].as_u64().unwrap_or(1) as f64;
        let finished = total - batch["counts"]["in_progress"].as_u64().unwrap_or(0) as f64;
        let share = finished / total;
        if let (Some(&mark), Some(eta)) = (MARKS.get(estimates.len()), batch["eta"].as_str())
            && share >= mark
        {
            estimates.push((mark, read_at, humantime::parse_rfc3339(eta)?));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let ideal = args.llm_latency.as_secs_f64() * args.eta_items as f64 / capacity as f64;
    println!(
        "eta: {} items at {:?} a call, {capacity} at once (ideal {ideal:.1}s)",
        args.eta_items, args.llm_latency
    );
    for (mark, read_at, eta) in estimates {
        let left = seconds_between(read_at, completed_at);
        let promised = seconds_between(read_at, eta);
        let error = promised - left;
        println!(
            "eta: at {:.0}%: promised {promised:.2}s left, took {left:.2}s: error {error:+.2}s ({:+.1}% of the time left)",
            mark * 100.0,
            100.0 * error / left
        );
    }
    server.stop().await
}

/// `to - from` in seconds, negative when `to` is earlier.
fn seconds_between(from: SystemTime, to: SystemTime) -> f64 {
    match to.duration_since(from) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}
