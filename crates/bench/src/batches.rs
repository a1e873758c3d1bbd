//! Bulk intake: one `POST …/batches` of `--batch-items` inline items (100,000 by default),
//! timed from the first byte sent to the 202, which comes once every item is stored; items
//! per second. Then what the stored batch costs to read: `GET` it (exact counts), p50 and
//! p99. The server works no jobs meanwhile, so only intake is measured.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{APP, KEY, Workspace, start};
use super::{BenchArgs, percentiles};

/// Reads of the stored batch.
const READS: usize = 200;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let server = start(workspace.options(0, args.sqlite_sync)).await?;
    let items: Vec<Value> = (0..args.batch_items)
        .map(|n| json!({"custom_id": format!("item-{n}"), "inputs": [{"id": "Text", "value": [format!("product {n}")]}]}))
        .collect();
    let body = serde_json::to_vec(&json!({ "items": items }))?;
    let size = body.len();
    let client = reqwest::Client::new();
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/applications/{APP}/batches", server.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await?;
    let took = started.elapsed();
    anyhow::ensure!(response.status().as_u16() == 202, "{}", response.status());
    let batch: Value = response.json().await?;
    anyhow::ensure!(
        batch["counts"]["total"].as_u64() == Some(args.batch_items as u64),
        "{batch}"
    );
    println!(
        "batches: {} inline items ({:.1} MB) stored in {:.2}s = {:.0} items/s",
        args.batch_items,
        size as f64 / 1e6,
        took.as_secs_f64(),
        args.batch_items as f64 / took.as_secs_f64()
    );

    let url = format!(
        "{}/v1/applications/batches/{}",
        server.base,
        batch["id"].as_str().unwrap_or_default()
    );
    let mut samples: Vec<Duration> = Vec::with_capacity(READS);
    for _ in 0..READS {
        let started = Instant::now();
        let response = client.get(&url).bearer_auth(KEY).send().await?;
        anyhow::ensure!(response.status().is_success(), "{}", response.status());
        response.bytes().await?;
        samples.push(started.elapsed());
    }
    let (p50, p99) = percentiles(&mut samples);
    println!(
        "batches: GET the batch of {} (exact counts): p50 {p50:.2} ms, p99 {p99:.2} ms",
        args.batch_items
    );
    server.stop().await
}
