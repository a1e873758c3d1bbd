//! Keeping a model server busy: N jobs against `mock-llm` (in this process, over real HTTP)
//! serving `--llm-capacity` concurrent requests at `--llm-latency` each, with the provider's
//! `max_concurrency` set to the same capacity. The ideal is `N × latency / capacity`; the
//! figure is how close the run gets, and scriptorium's own time per call: from the claim to
//! the durable result, less the model's latency.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use mock_llm::MockLlmArgs;
use scriptorium::providers::config::{Concurrency, ProviderConfig, ProviderKind};

use super::harness::{Llm, Workspace, count, jobs_page, start};
use super::{BenchArgs, percentiles};

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let latency = args.llm_latency;
    let capacity = args.llm_capacity;
    let llm = Llm::serve(MockLlmArgs {
        ttft: latency,
        capacity,
        output_tokens: 8,
        ..MockLlmArgs::default()
    })
    .await?;

    let workspace = Workspace::new(args).await?;
    workspace.seed(args.model_jobs).await?;
    let provider = ProviderConfig {
        base_url: Some(llm.url.clone()),
        model: Some("bench".into()),
        max_concurrency: Concurrency::Fixed(capacity),
        ..ProviderConfig::new(ProviderKind::Openai)
    };
    let mut serve = workspace.options(capacity, args.sqlite_sync);
    serve.providers = BTreeMap::from([("default".to_owned(), provider)]);
    let client = reqwest::Client::new();
    let started = Instant::now();
    let server = start(serve).await?;
    while count(&client, &server.base, "completed").await? < args.model_jobs as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = started.elapsed();
    let ideal = latency.as_secs_f64() * args.model_jobs as f64 / capacity as f64;
    println!(
        "model: {} jobs at {:?} each, {} at once: {:.2}s, ideal {:.2}s, ratio {:.3} (peak in flight at the model {})",
        args.model_jobs,
        latency,
        capacity,
        took.as_secs_f64(),
        ideal,
        took.as_secs_f64() / ideal,
        llm.mock.stats().peak_in_flight
    );
    let mut overhead = overheads(&client, &server.base, latency).await?;
    let (p50, p99) = percentiles(&mut overhead);
    println!(
        "model: scriptorium's own time per call (claim to durable result, less the model's {:?}): p50 {p50:.2} ms, p99 {p99:.2} ms",
        latency
    );
    server.stop().await?;
    Ok(())
}

/// `completed_at - started_at - latency` of the newest 1,000 jobs.
async fn overheads(
    client: &reqwest::Client,
    base: &str,
    latency: Duration,
) -> anyhow::Result<Vec<Duration>> {
    let mut samples = Vec::new();
    for offset in (0..1000).step_by(500) {
        let page = jobs_page(client, base, &format!("limit=500&offset={offset}")).await?;
        for job in page["result"].as_array().into_iter().flatten() {
            let at = |field: &str| -> anyhow::Result<SystemTime> {
                Ok(humantime::parse_rfc3339(
                    job[field].as_str().unwrap_or_default(),
                )?)
            };
            let spent = at("completed_at")?.duration_since(at("started_at")?)?;
            samples.push(spent.saturating_sub(latency));
        }
    }
    anyhow::ensure!(!samples.is_empty(), "no jobs to measure");
    Ok(samples)
}
