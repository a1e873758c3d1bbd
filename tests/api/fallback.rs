//! Fallback providers end to end, against two mock-llm servers over HTTP: a job goes to the
//! first provider with room and spills to the second while the first is saturated or
//! failing, and work returns to the first once it has room again; the job object says which
//! provider and model answered, and its priority. Also: what the server refuses to start on.

use std::collections::BTreeMap;
use std::time::Duration;

use mock_llm::{MockLlmArgs, Rate};
use scriptorium::config::{ServeOptions, Settings};
use scriptorium::providers::config::{ProviderConfig, ProviderKind};
use scriptorium::report::Chain;
use scriptorium::server::Server;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::helpers::{TestApp, inputs_body, spawn_app, spawn_with, test_env};
use crate::providers::{provider, start_llm};

/// An OpenAI-compatible provider at `base` with a default model of its own.
fn named_provider(base: &str, model: &str, max_concurrency: usize) -> ProviderConfig {
    ProviderConfig {
        model: Some(model.into()),
        ..provider(ProviderKind::Openai, format!("{base}/v1"), max_concurrency)
    }
}

/// A scriptorium serving the `spill` application on providers `first` and `second`.
async fn serve_two(first: ProviderConfig, second: ProviderConfig, concurrency: usize) -> TestApp {
    let apps =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fallback-apps");
    spawn_with(ServeOptions {
        apps_dir: Some(apps),
        concurrency: Some(concurrency),
        providers: BTreeMap::from([("first".to_owned(), first), ("second".to_owned(), second)]),
        ..ServeOptions::default()
    })
    .await
}

/// Creates `n` jobs of `spill` at once; answers their ids.
async fn create_spills(app: &TestApp, n: usize) -> Vec<String> {
    let creates = (0..n).map(|i| async move {
        let created = app
            .create_job("spill", &[("Text", &[&format!("job-{i}")])])
            .await;
        created["id"].as_str().unwrap().to_owned()
    });
    futures_util::future::join_all(creates).await
}

/// Runs one job of `spill` to its end.
async fn run_one(app: &TestApp, text: &str) -> Value {
    let created = app.create_job("spill", &[("Text", &[text])]).await;
    app.wait_finished_within(created["id"].as_str().unwrap(), Duration::from_secs(60))
        .await
}

/// The provider called `name` as `GET /v1/scriptorium/providers` shows it.
async fn provider_view(app: &TestApp, name: &str) -> Value {
    let all = app.get_json("/v1/scriptorium/providers").await;
    let mut providers = all["providers"].as_array().unwrap().iter();
    providers.find(|p| p["name"] == name).unwrap().clone()
}

/// Waits until `first` can take a call at once (no pause, circuit closed), so that a job
/// sent now has nowhere better to go.
async fn wait_until_first_is_ready(app: &TestApp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let first = provider_view(app, "first").await;
        if first["paused_for_ms"].is_null() && first["circuit"] == "closed" {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{first}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whose the completed `jobs` are: how many each provider answered.
fn answered_by(jobs: &[Value]) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for job in jobs {
        assert_eq!(job["status"], "completed", "{job}");
        *by.entry(job["provider"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    by
}

/// `first` serves one call at a time and queues one more; past that it answers 503 at once
/// (as Ollama does past its queue), which pauses it: jobs meanwhile run on `second`. Once
/// it is no longer paused, new jobs run on `first` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saturated_first_provider_spills_to_the_second_and_work_returns_to_it() {
    let first_llm = start_llm(
        &["--capacity", "1", "--queue-limit", "1", "--ttft", "200ms"],
        0,
    )
    .await;
    let second_llm = start_llm(&["--ttft", "10ms"], 0).await;
    let app = serve_two(
        named_provider(&first_llm.base, "first-model", 16),
        named_provider(&second_llm.base, "second-model", 16),
        16,
    )
    .await;
    let ids = create_spills(&app, 40).await;
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(app.wait_finished_within(id, Duration::from_secs(120)).await);
    }
    let by = answered_by(&jobs);
    assert!(
        by.get("second").is_some_and(|n| *n > 0),
        "nothing spilled: {by:?}"
    );
    assert!(
        first_llm
            .mock
            .stats()
            .faults
            .get("queue_full")
            .is_some_and(|n| *n > 0),
        "the first provider was never saturated: {by:?}"
    );
    let spilled = jobs.iter().find(|j| j["provider"] == "second").unwrap();
    assert_eq!(spilled["model"], "second-model", "{spilled}");

    wait_until_first_is_ready(&app).await;
    for i in 0..3 {
        let job = run_one(&app, &format!("after-{i}")).await;
        assert_eq!(
            (&job["status"], &job["provider"], &job["model"]),
            (&"completed".into(), &"first".into(), &"first-model".into()),
            "{job}"
        );
    }
}

/// `first` answers 429 with a Retry-After of ten minutes: it is paused that long, and the
/// job it sent back does not wait for it but completes on `second` (well within the pause),
/// as every later job does, without a call to `first`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_job_told_not_now_goes_to_the_next_provider_without_waiting_out_the_pause() {
    let first_llm = start_llm(&["--fail-429", "1", "--retry-after", "600s"], 0).await;
    let second_llm = start_llm(&[], 0).await;
    let app = serve_two(
        named_provider(&first_llm.base, "first-model", 4),
        named_provider(&second_llm.base, "second-model", 4),
        4,
    )
    .await;
    let job = run_one(&app, "rate limited").await;
    assert_eq!(
        (&job["status"], &job["provider"], &job["attempts"]),
        (&"completed".into(), &"second".into(), &1.into()),
        "{job}"
    );
    let first = provider_view(&app, "first").await;
    assert!(first["paused_for_ms"].as_u64().unwrap() > 60_000, "{first}");
    let ids = create_spills(&app, 8).await;
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(app.wait_finished_within(id, Duration::from_secs(60)).await);
    }
    assert_eq!(
        answered_by(&jobs),
        BTreeMap::from([("second".to_owned(), 8)])
    );
    assert_eq!(
        first_llm.mock.stats().requests,
        1,
        "a paused provider got calls"
    );
}

/// `first` answers every call 500: after five failures its circuit opens and jobs complete
/// on `second`. Then `first` is replaced by a healthy server on the same port: once a probe
/// gets through, new jobs run on `first` again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_first_provider_opens_its_circuit_and_work_returns_when_it_recovers() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let failing = MockLlmArgs {
        fail_500: Rate::ALWAYS,
        ..MockLlmArgs::default()
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let first_server = tokio::spawn(mock_llm::serve(failing, listener, async move {
        let _ = stopped.await;
    }));
    let second_llm = start_llm(&["--ttft", "10ms"], 0).await;
    let first_base = format!("http://127.0.0.1:{port}");
    let app = serve_two(
        named_provider(&first_base, "first-model", 4),
        named_provider(&second_llm.base, "second-model", 4),
        8,
    )
    .await;
    let ids = create_spills(&app, 20).await;
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(app.wait_finished_within(id, Duration::from_secs(120)).await);
    }
    let by = answered_by(&jobs);
    assert_eq!(by, BTreeMap::from([("second".to_owned(), 20)]));
    let first = provider_view(&app, "first").await;
    assert_ne!(first["circuit"], "closed", "{first}");
    assert!(first["errors"]["server"].as_u64().unwrap() >= 5, "{first}");

    // The operator mends the first server (here: a healthy mock-llm on the same port).
    let _ = stop.send(());
    first_server.await.unwrap().unwrap();
    let _mended = start_llm(&[], port).await;
    // The circuit's cooldown runs on; meanwhile jobs still go to `second`. The first job
    // after it is the probe, and closes the circuit.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let mut i = 0;
    loop {
        let job = run_one(&app, &format!("probe-{i}")).await;
        assert_eq!(job["status"], "completed", "{job}");
        if job["provider"] == "first" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never back on first: {job}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        i += 1;
    }
    wait_until_first_is_ready(&app).await;
    for i in 0..3 {
        let job = run_one(&app, &format!("after-{i}")).await;
        assert_eq!(
            (&job["provider"], &job["model"]),
            (&"first".into(), &"first-model".into()),
            "{job}"
        );
    }
}

/// The job object keeps Writer's fields and adds `priority`, and `provider` and `model`,
/// null until the job completes (a failed job has none).
#[tokio::test]
async fn a_job_shows_its_priority_and_the_provider_and_model_that_answered() {
    let app = spawn_app().await;
    let create = |text: &'static str, priority: &'static str| {
        app.post("/v1/applications/echo/jobs")
            .header("Scriptorium-Priority", priority)
            .json(&inputs_body(&[("Text", &[text])]))
            .send()
    };
    let done: Value = create("fine", "low").await.unwrap().json().await.unwrap();
    let failed: Value = create("[[mock:fail]]", "high")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let done = app.wait_finished(done["id"].as_str().unwrap()).await;
    assert_eq!(
        (&done["status"], &done["priority"], &done["provider"]),
        (&"completed".into(), &"low".into(), &"default".into()),
        "{done}"
    );
    assert!(done["model"].is_null(), "the mock names no model: {done}");
    let failed = app.wait_finished(failed["id"].as_str().unwrap()).await;
    assert_eq!(
        (&failed["status"], &failed["priority"]),
        (&"failed".into(), &"high".into()),
        "{failed}"
    );
    assert!(
        failed["provider"].is_null() && failed["model"].is_null(),
        "{failed}"
    );
}

/// Why `app` (an application file) with these providers configured keeps the server from
/// starting.
async fn refusal(app: &str, providers: &[&str]) -> String {
    let apps = tempfile::tempdir().unwrap();
    std::fs::write(apps.path().join("app.toml"), app).unwrap();
    let data = tempfile::tempdir().unwrap();
    let providers = providers
        .iter()
        .map(|name| ((*name).to_owned(), ProviderConfig::new(ProviderKind::Mock)))
        .collect();
    let options = ServeOptions {
        data_dir: Some(data.path().to_path_buf()),
        apps_dir: Some(apps.path().to_path_buf()),
        providers,
        ..ServeOptions::default()
    };
    let settings = Settings::resolve(options, None, test_env).unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    match Server::build(&settings, listener).await {
        Ok(_) => panic!("the server started with:\n{app}"),
        Err(e) => Chain(&e).to_string(),
    }
}

const SPILL_APP: &str = r#"id = "spill"
name = "Spill"
status = "deployed"
PROVIDERS
prompt = "{{ inputs['Text'] | join(' ') }}"

[[inputs]]
name = "Text"
input_type = "text"
required = true
"#;

#[tokio::test]
async fn provider_and_providers_together_and_unknown_providers_are_refused_at_start() {
    let app = |line: &str| SPILL_APP.replace("PROVIDERS", line);
    let both = refusal(
        &app("provider = \"gpu\"\nproviders = [\"gpu\", \"openai\"]"),
        &["gpu", "openai"],
    )
    .await;
    assert!(
        both.contains("app.toml:5: give either provider or providers, not both"),
        "{both}"
    );
    let empty = refusal(&app("providers = []"), &["gpu"]).await;
    assert!(
        empty.contains("app.toml:4: providers must name at least one provider"),
        "{empty}"
    );
    let unknown = refusal(&app("providers = [\"gpu\", \"openai\"]"), &["gpu"]).await;
    assert!(
        unknown.contains("application 'spill' names provider 'openai', which is not configured"),
        "{unknown}"
    );
    assert!(unknown.contains("(configured: gpu)"), "{unknown}");
}
