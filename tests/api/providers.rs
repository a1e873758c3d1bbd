//! Real model servers: the `openai` and `writer` providers against `mock-llm` over real HTTP,
//! every fault kind, limits that hold under load, and fatal errors that fail at once.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use mock_llm::{MockLlm, MockLlmArgs, Stats};
use scriptorium::config::ServeOptions;
use scriptorium::providers::config::{Concurrency, ProviderConfig, ProviderKind};
use serde_json::{Value, json};
use tokio::net::TcpListener;

use crate::helpers::{TestApp, spawn_with, stream_content, stream_deltas};

#[derive(Parser)]
struct Flags {
    #[command(flatten)]
    args: MockLlmArgs,
}

/// A mock-llm running in this process.
pub struct Llm {
    pub base: String,
    pub mock: Arc<MockLlm>,
    _server: tokio::task::JoinHandle<()>,
}

/// Starts mock-llm with these flags (as on its command line) on `port` (0: any).
pub async fn start_llm(flags: &[&str], port: u16) -> Llm {
    let args = Flags::parse_from(std::iter::once("mock-llm").chain(flags.iter().copied())).args;
    let mock = MockLlm::new(args);
    let listener = TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let router = mock.router();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    Llm {
        base,
        mock,
        _server: server,
    }
}

pub fn provider(kind: ProviderKind, base_url: String, max_concurrency: usize) -> ProviderConfig {
    ProviderConfig {
        base_url: Some(base_url),
        model: Some("test-model".into()),
        max_concurrency: Concurrency::Fixed(max_concurrency),
        timeout: Duration::from_millis(500),
        ..ProviderConfig::new(kind)
    }
}

/// A scriptorium whose default provider is `config`, serving the provider test apps.
pub async fn serve_with(config: ProviderConfig, concurrency: usize) -> TestApp {
    let apps =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provider-apps");
    spawn_with(ServeOptions {
        apps_dir: Some(apps),
        concurrency: Some(concurrency),
        providers: BTreeMap::from([("default".to_owned(), config)]),
        ..ServeOptions::default()
    })
    .await
}

async fn run_one(app: &TestApp, application: &str, text: &str) -> Value {
    let created = app.create_job(application, &[("Text", &[text])]).await;
    app.wait_finished(created["id"].as_str().unwrap()).await
}

#[tokio::test]
async fn the_openai_provider_sends_the_prompt_and_records_usage() {
    let llm = start_llm(&[], 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 8),
        8,
    )
    .await;
    let job = run_one(&app, "sturdy", "hello from a job").await;
    assert_eq!(job["status"], "completed", "{job}");
    let text = job["data"]["suggestion"].as_str().unwrap();
    assert!(text.starts_with("echo: hello from a job"), "{text}");
    assert!(job["usage"]["prompt_tokens"].as_u64().unwrap() > 0, "{job}");
    assert!(
        job["usage"]["completion_tokens"].as_u64().unwrap() > 0,
        "{job}"
    );
    let sent = &llm.mock.stats().recent[0];
    assert_eq!(sent["model"], "test-model");
    assert_eq!(sent["max_tokens"], 16);
    assert_eq!(sent["messages"][0]["content"], "hello from a job");
}

#[tokio::test]
async fn the_writer_provider_speaks_to_the_chat_route() {
    let llm = start_llm(&[], 0).await;
    let app = serve_with(provider(ProviderKind::Writer, llm.base.clone(), 8), 8).await;
    let job = run_one(&app, "sturdy", "palmyra, please").await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(
        job["data"]["suggestion"]
            .as_str()
            .unwrap()
            .starts_with("echo: palmyra, please")
    );
}

#[tokio::test]
async fn streamed_generation_relays_the_backend_chunks_as_writer_deltas() {
    let llm = start_llm(&["--output-tokens", "12"], 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 8),
        8,
    )
    .await;
    let whole: Value = app
        .post("/v1/applications/sturdy")
        .json(&crate::helpers::inputs_body(&[("Text", &["stream me"])]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let text = app.stream("sturdy", &[("Text", &["stream me"])]).await;
    let streamed = stream_content(&stream_deltas(&text));
    assert_eq!(streamed, whole["suggestion"].as_str().unwrap());
}

/// Each fault at rate 1.0, for both dialects, ends a one-attempt job with an error that says
/// what happened.
#[tokio::test]
async fn every_fault_kind_is_classified_and_reported() {
    // Backpressure (429, 503) spends no attempt: the job fails once `fragile`'s max_wait of
    // one second is over, after as many calls as fit in it.
    let cases = [
        ("--fail-500", "answered 500"),
        ("--fail-503", "answered 503"),
        ("--fail-429", "answered 429"),
        ("--fail-malformed", "not JSON"),
        ("--fail-drop", "connection failed"),
        ("--fail-hang", "timed out"),
    ];
    let waits = |flag: &str| flag == "--fail-503" || flag == "--fail-429";
    for (kind, (flag, expected)) in [ProviderKind::Openai, ProviderKind::Writer]
        .into_iter()
        .flat_map(|kind| cases.iter().map(move |case| (kind, *case)))
    {
        let llm = start_llm(&[flag, "1", "--retry-after", "0s"], 0).await;
        let base = match kind {
            ProviderKind::Writer => llm.base.clone(),
            _ => format!("{}/v1", llm.base),
        };
        let app = serve_with(provider(kind, base, 4), 4).await;
        let job = run_one(&app, "fragile", "doomed").await;
        assert_eq!(job["status"], "failed", "{flag}: {job}");
        let error = job["error"].as_str().unwrap();
        assert!(
            error.contains(expected),
            "{flag}: {error:?} should contain {expected:?}"
        );
        let providers = app.get_json("/v1/scriptorium/providers").await;
        let calls = providers["providers"][0]["calls"].as_u64().unwrap();
        if waits(flag) {
            assert!(error.contains("max_wait"), "{flag}: {error}");
            assert!(calls > 1, "{flag}: {providers}");
        } else {
            assert_eq!(calls, 1, "{flag}: {providers}");
        }
    }
}

#[tokio::test]
async fn a_fatal_backend_error_fails_the_job_at_once_and_retry_then_works() {
    let llm = start_llm(&["--api-key", "right-key"], 0).await;
    let port: u16 = llm.base.rsplit(':').next().unwrap().parse().unwrap();
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 4),
        4,
    )
    .await;
    let created = app
        .create_job("sturdy", &[("Text", &["needs a key"])])
        .await;
    let id = created["id"].as_str().unwrap();
    let job = app.wait_finished(id).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 1, "a 401 is not retried: {job}");
    assert!(
        job["error"].as_str().unwrap().contains("answered 401"),
        "{job}"
    );

    // The operator fixes the backend (here: a mock-llm that wants no key, on the same port).
    llm._server.abort();
    let _ = llm._server.await;
    let _fixed = start_llm(&[], port).await;
    let retried = app
        .post(&format!("/v1/applications/jobs/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status(), 202);
    let job = app.wait_finished(id).await;
    assert_eq!(job["status"], "completed", "{job}");
}

/// 1,000 jobs against a server that fails 30% of calls in every way it can: every job
/// completes with its own result, the server never sees more than `max_concurrency` calls at
/// once, and after a 429 nothing arrives before its Retry-After (allowing 100 ms for calls
/// already under way when the 429 left mock-llm: on a loaded 2-core machine the default 20 ms
/// is not enough for the answer to reach the gate).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_jobs_survive_thirty_percent_faults_within_the_limits() {
    let llm = start_llm(
        &[
            "--grace",
            "100ms",
            "--seed",
            "7",
            "--fail-500",
            "0.06",
            "--fail-503",
            "0.06",
            "--fail-429",
            "0.04",
            "--fail-malformed",
            "0.05",
            "--fail-drop",
            "0.05",
            "--fail-hang",
            "0.04",
            "--retry-after",
            "300ms",
            "--ttft",
            "5ms",
        ],
        0,
    )
    .await;
    let mut config = provider(ProviderKind::Openai, format!("{}/v1", llm.base), 16);
    config.timeout = Duration::from_millis(300);
    let app = serve_with(config, 64).await;
    let mut ids = Vec::new();
    for i in 0..1000 {
        let text = format!("job-{i:04}");
        ids.push((
            app.create_job("sturdy", &[("Text", &[&text])]).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
            text,
        ));
    }
    for (id, text) in &ids {
        let job = app.wait_finished_within(id, Duration::from_secs(240)).await;
        assert_eq!(job["status"], "completed", "{job}");
        let suggestion = job["data"]["suggestion"].as_str().unwrap();
        assert!(
            suggestion.starts_with(&format!("echo: {text}")),
            "{suggestion}"
        );
    }
    let stats: Stats = llm.mock.stats();
    println!("mock-llm saw: {stats:?}", stats = summary(&stats));
    assert!(
        stats.peak_in_flight <= 16,
        "peak {} over max_concurrency 16",
        stats.peak_in_flight
    );
    assert!(
        stats.faults.values().sum::<u64>() > 100,
        "faults were injected: {:?}",
        stats.faults
    );
    assert_eq!(
        stats.early_after_429, 0,
        "requests arrived before a 429's Retry-After ran out"
    );
    let list: Value = app
        .get("/v1/applications/sturdy/jobs?status=completed&limit=1")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalCount"], 1000);
}

fn summary(stats: &Stats) -> String {
    format!(
        "requests {}, completed {}, peak in flight {}, faults {:?}, early after 429 {}",
        stats.requests, stats.completed, stats.peak_in_flight, stats.faults, stats.early_after_429
    )
}

#[tokio::test]
async fn a_stream_that_goes_silent_past_the_idle_timeout_ends_with_an_error_event() {
    let llm = start_llm(&["--per-token", "2s", "--output-tokens", "8"], 0).await;
    let mut config = provider(ProviderKind::Openai, format!("{}/v1", llm.base), 4);
    config.idle_timeout = Duration::from_millis(300);
    config.timeout = Duration::from_secs(30);
    let app = serve_with(config, 4).await;
    let text = app.stream("sturdy", &[("Text", &["slow"])]).await;
    assert!(text.contains("event: error"), "{text}");
    assert!(text.contains("went silent"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
}

#[tokio::test]
async fn the_providers_route_shows_limits_load_and_errors() {
    let llm = start_llm(&["--fail-500", "1"], 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 3),
        3,
    )
    .await;
    run_one(&app, "fragile", "x").await;
    let view = app.get_json("/v1/scriptorium/providers").await;
    let default = &view["providers"][0];
    assert_eq!(default["name"], "default");
    assert_eq!(default["kind"], "openai");
    assert_eq!(default["max_concurrency"], 3);
    assert_eq!(default["in_flight"], 0);
    assert_eq!(default["circuit"], "closed");
    assert_eq!(default["errors"]["server"], 1);
    assert_eq!(default["auto"], Value::Null, "a fixed limit");
}

/// `max_concurrency = "auto"` starts at `auto_min`, grows while the server keeps up, and
/// shows its bounds and its changes.
#[tokio::test]
async fn an_auto_limit_grows_on_a_server_that_keeps_up_and_shows_its_history() {
    let llm = start_llm(&["--ttft", "20ms"], 0).await;
    let mut config = provider(ProviderKind::Openai, format!("{}/v1", llm.base), 1);
    config.max_concurrency = Concurrency::Auto;
    config.auto_max = 64;
    let app = serve_with(config, 64).await;
    // One batch: all 300 jobs wait at once, whatever the speed of single creates here.
    let items: Vec<Value> = (0..300)
        .map(|i| json!({"inputs": [{"id": "Text", "value": [format!("job-{i}")]}]}))
        .collect();
    let created = app.create_batch("sturdy", json!({"items": items})).await;
    assert_eq!(created.status(), 202);
    let created: Value = created.json().await.unwrap();
    let batch = app.wait_batch(created["id"].as_str().unwrap()).await;
    assert_eq!(batch["counts"]["completed"], 300, "{batch}");
    let view = app.get_json("/v1/scriptorium/providers").await;
    let auto = &view["providers"][0]["auto"];
    assert_eq!(
        (&auto["min"], &auto["max"]),
        (&1.into(), &64.into()),
        "{view}"
    );
    let history = auto["history"].as_array().unwrap();
    let highest = history
        .iter()
        .map(|c| c["limit"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(highest > 4, "the limit grew on a server with room: {view}");
    assert!(
        llm.mock.stats().peak_in_flight > 4,
        "{:?}",
        llm.mock.stats().peak_in_flight
    );
}

/// A request budget holds end to end: with 60 requests a minute (a full minute's burst, then
/// one a second), mock-llm never sees more than 60 + one per elapsed second. An upper bound
/// from the elapsed time, so a slow machine can only make it easier to meet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requests_per_minute_budget_spaces_calls_out() {
    let llm = start_llm(&[], 0).await;
    let mut config = provider(ProviderKind::Openai, format!("{}/v1", llm.base), 16);
    config.requests_per_minute = 60;
    let app = serve_with(config, 16).await;
    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for i in 0..66 {
        let text = format!("budget-{i}");
        ids.push(
            app.create_job("sturdy", &[("Text", &[&text])]).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let mut completed = 0;
    while completed < 66 {
        let requests = llm.mock.stats().requests;
        let allowed = 60 + started.elapsed().as_secs() + 1;
        assert!(
            requests <= allowed,
            "{requests} requests within {:?}",
            started.elapsed()
        );
        let list: Value = app
            .get("/v1/applications/sturdy/jobs?status=completed&limit=1")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        completed = list["totalCount"].as_u64().unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "stuck at {completed} of 66"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(llm.mock.stats().requests, 66);
    assert_eq!(ids.len(), 66);
}
