//! The per-provider figures of `GET /v1/scriptorium/providers` against mock-llm over HTTP:
//! present, counted right, and no lower than the latencies the mock was told to have.

use futures_util::future::join_all;
use scriptorium::providers::config::ProviderKind;
use serde_json::Value;

use crate::helpers::{TestApp, inputs_body};
use crate::providers::{provider, serve_with, start_llm};

/// Runs `n` jobs of `application` at once and waits for them all; answers them.
async fn run_jobs(app: &TestApp, application: &str, n: usize) -> Vec<Value> {
    let texts: Vec<String> = (0..n).map(|i| format!("job-{i}")).collect();
    let created = join_all(
        texts
            .iter()
            .map(|text| async move { app.create_job(application, &[("Text", &[text])]).await }),
    )
    .await;
    join_all(
        created
            .iter()
            .map(|job| app.wait_finished(job["id"].as_str().unwrap())),
    )
    .await
}

/// The only provider's entry.
async fn figures(app: &TestApp) -> Value {
    let view = app.get_json("/v1/scriptorium/providers").await;
    view["providers"][0].clone()
}

fn ms(value: &Value) -> f64 {
    value
        .as_f64()
        .unwrap_or_else(|| panic!("not a number: {value}"))
}

#[tokio::test]
async fn jobs_through_one_slot_show_their_latency_their_queue_wait_and_their_throughput() {
    // Every call takes at least 80 ms and one goes at a time: eight jobs claimed at once
    // queue at the gate, the eighth for at least seven calls.
    let llm = start_llm(&["--ttft", "80ms"], 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 1),
        8,
    )
    .await;
    let jobs = run_jobs(&app, "sturdy", 16).await;
    assert!(jobs.iter().all(|job| job["status"] == "completed"));

    let provider = figures(&app).await;
    let recent = &provider["recent"];
    assert_eq!(provider["calls"], 16, "{provider}");
    assert_eq!(
        (&recent["calls"], &recent["completed"]),
        (&16.into(), &16.into())
    );
    let e2el = &recent["e2el_ms"];
    assert!(ms(&e2el["p50"]) >= 80.0, "{recent}");
    assert!(ms(&e2el["p99"]) >= ms(&e2el["p50"]), "{recent}");
    assert!(ms(&e2el["mean"]) >= 80.0, "{recent}");
    assert!(ms(&recent["queue_wait_ms"]["p99"]) >= 80.0, "{recent}");
    assert!(recent["ttft_ms"].is_null(), "nothing streamed: {recent}");
    // One call at a time of at least 80 ms each: at most 12.5 a second, however slow the machine.
    let requests = ms(&recent["request_throughput"]);
    assert!(requests > 0.0 && requests <= 12.5, "{recent}");
    // mock-llm answers max_tokens (16) tokens a call.
    let output = ms(&recent["output_token_throughput"]);
    assert!((output / requests - 16.0).abs() < 0.1, "{recent}");
    let input = ms(&recent["input_token_throughput"]);
    assert!(input > 0.0, "{recent}");
    assert!((ms(&recent["total_token_throughput"]) - input - output).abs() < 0.01);
    assert!(ms(&recent["duration_s"]) >= 16.0 * 0.08, "{recent}");
    assert_eq!(provider["backpressure"]["events"], 0, "{provider}");
    assert_eq!(provider["backpressure"]["paused_ms"], 0, "{provider}");
}

#[tokio::test]
async fn ttft_is_measured_for_a_streamed_generation_and_null_without_one() {
    let llm = start_llm(&["--ttft", "50ms", "--per-token", "5ms"], 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 4),
        4,
    )
    .await;
    let whole = app
        .post("/v1/applications/sturdy")
        .json(&inputs_body(&[("Text", &["all at once"])]))
        .send()
        .await
        .unwrap();
    assert_eq!(whole.status(), 200);
    let recent = figures(&app).await["recent"].clone();
    assert!(recent["ttft_ms"].is_null(), "{recent}");
    assert!(
        ms(&recent["e2el_ms"]["p50"]) >= 50.0 + 15.0 * 5.0,
        "{recent}"
    );

    app.stream("sturdy", &[("Text", &["piece by piece"])]).await;
    let recent = figures(&app).await["recent"].clone();
    assert_eq!(recent["completed"], 2, "{recent}");
    let ttft = &recent["ttft_ms"];
    assert!(ms(&ttft["p50"]) >= 50.0, "{recent}");
    assert_eq!(ttft["p50"], ttft["p99"], "one streamed call: {recent}");
    // The streamed call's 16 tokens came 5 ms apart after the first.
    assert!(
        ms(&recent["e2el_ms"]["p99"]) >= 50.0 + 15.0 * 5.0,
        "{recent}"
    );
}

#[tokio::test]
async fn every_429_counts_as_backpressure_with_the_time_it_paused_the_provider() {
    let llm = start_llm(
        &["--seed", "5", "--fail-429", "0.3", "--retry-after", "50ms"],
        0,
    )
    .await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 4),
        8,
    )
    .await;
    let jobs = run_jobs(&app, "sturdy", 20).await;
    assert!(jobs.iter().all(|job| job["status"] == "completed"));

    let provider = figures(&app).await;
    let events = provider["backpressure"]["events"].as_u64().unwrap();
    assert!(events > 0, "{provider}");
    assert_eq!(provider["errors"]["rate_limited"], events, "{provider}");
    // Each pause is 50 ms; overlapping ones count once, so only one is sure.
    assert!(
        provider["backpressure"]["paused_ms"].as_u64().unwrap() >= 50,
        "{provider}"
    );
    let recent = &provider["recent"];
    assert_eq!(recent["calls"], provider["calls"], "{provider}");
    assert_eq!(recent["completed"], 20, "{provider}");
    assert_eq!(recent["calls"].as_u64().unwrap(), 20 + events, "{provider}");
}
