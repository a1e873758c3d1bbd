//! The scheduler end to end, against mock-llm over HTTP: backpressure waits without spending
//! attempts and gives up after the application's max_wait; an organisation's jobs do not
//! wait behind another's backlog; `Scriptorium-Priority` is read and checked.

use std::time::Duration;

use reqwest::StatusCode;
use scriptorium::providers::config::ProviderKind;
use scriptorium::store::Clock;
use serde_json::Value;

use crate::helpers::{TestApp, assert_error, inputs_body};
use crate::providers::{provider, serve_with, start_llm};

/// Creates `n` jobs of `app`, 16 at a time; answers their ids.
async fn create_many(app: &TestApp, application: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::with_capacity(n);
    let texts: Vec<String> = (0..n).map(|i| format!("job-{i}")).collect();
    for chunk in texts.chunks(16) {
        let creates = chunk
            .iter()
            .map(|text| async move { app.create_job(application, &[("Text", &[text])]).await });
        for created in futures_util::future::join_all(creates).await {
            ids.push(created["id"].as_str().unwrap().to_owned());
        }
    }
    ids
}

/// 200 jobs of an application with 3 attempts against a server answering `faults` (flags);
/// answers the finished jobs.
async fn run_patient_jobs(faults: &[&str]) -> Vec<Value> {
    let mut flags = vec!["--seed", "11", "--retry-after", "50ms", "--ttft", "2ms"];
    flags.extend_from_slice(faults);
    let llm = start_llm(&flags, 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 8),
        16,
    )
    .await;
    let ids = create_many(&app, "patient", 200).await;
    let mut jobs = Vec::new();
    for id in &ids {
        jobs.push(app.wait_finished_within(id, Duration::from_secs(120)).await);
    }
    jobs
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_calls_answered_429_or_503_still_complete_every_job_of_three_attempts() {
    let jobs = run_patient_jobs(&["--fail-429", "0.25", "--fail-503", "0.25"]).await;
    for job in &jobs {
        assert_eq!(job["status"], "completed", "{job}");
        assert!(
            job["attempts"].as_u64().unwrap() <= 1,
            "a wait spent an attempt: {job}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_the_calls_answered_500_fail_some_jobs_after_three_attempts() {
    let jobs = run_patient_jobs(&["--fail-500", "0.5"]).await;
    let failed: Vec<&Value> = jobs.iter().filter(|j| j["status"] == "failed").collect();
    assert!(!failed.is_empty(), "one job in eight fails three times");
    for job in failed {
        assert_eq!(job["attempts"], 3, "{job}");
        let error = job["error"].as_str().unwrap();
        assert!(error.ends_with("(gave up after 3 attempts)"), "{error}");
    }
}

#[tokio::test]
async fn a_job_shows_it_waits_for_the_provider_and_fails_after_max_wait() {
    let llm = start_llm(&["--fail-503", "1", "--retry-after", "100ms"], 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 4),
        4,
    )
    .await;
    let created = app.create_job("impatient", &[("Text", &["busy"])]).await;
    let id = created["id"].as_str().unwrap();
    let waiting = app
        .wait_job(id, "waiting", Duration::from_secs(10), |job| {
            job["state"] == "waiting_for_provider"
        })
        .await;
    assert_eq!(
        waiting["status"], "in_progress",
        "Writer's status stays: {waiting}"
    );
    assert!(
        waiting["last_error"]
            .as_str()
            .unwrap()
            .contains("answered 503"),
        "{waiting}"
    );
    let job = app.wait_finished(id).await;
    assert_eq!(
        (&job["status"], &job["state"]),
        (&"failed".into(), &"failed".into())
    );
    let error = job["error"].as_str().unwrap();
    assert!(
        error.starts_with("provider 'default' was unavailable for") && error.contains("max_wait"),
        "{error}"
    );
    assert!(error.contains("answered 503"), "{error}");
    assert_eq!(
        job["attempts"], 1,
        "only the call that gave up counts: {job}"
    );
}

/// One organisation's backlog of 400 jobs, then another's 8: the 8 finish while most of the
/// backlog still waits (claims and the provider's gate take turns across organisations).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_organisations_few_jobs_do_not_wait_behind_anothers_backlog() {
    let llm = start_llm(&["--ttft", "100ms"], 0).await;
    let app = serve_with(
        provider(ProviderKind::Openai, format!("{}/v1", llm.base), 4),
        8,
    )
    .await;
    create_many(&app, "sturdy", 400).await;
    let small_key = app.key_for("small").await;
    let mut small = Vec::new();
    for i in 0..8 {
        let response = app
            .client
            .post(format!("{}/v1/applications/sturdy/jobs", app.base))
            .bearer_auth(&small_key)
            .json(&inputs_body(&[("Text", &[&format!("small-{i}")])]))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let created: Value = response.json().await.unwrap();
        small.push(created["id"].as_str().unwrap().to_owned());
    }
    for id in &small {
        let url = format!("{}/v1/applications/jobs/{id}", app.base);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let job: Value = app
                .client
                .get(&url)
                .bearer_auth(&small_key)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if job["status"] != "in_progress" {
                assert_eq!(job["status"], "completed", "{job}");
                break;
            }
            assert!(tokio::time::Instant::now() < deadline, "{job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let backlog = app
        .get_json("/v1/applications/sturdy/jobs?status=in_progress&limit=1")
        .await;
    let waiting = backlog["totalCount"].as_u64().unwrap();
    assert!(
        waiting > 200,
        "the small organisation waited behind the backlog: {waiting} of 400 still waiting"
    );
}

#[tokio::test]
async fn a_priority_is_read_from_its_header_and_checked() {
    let app = crate::helpers::spawn_app().await;
    let send = |priority: &'static str| {
        app.post("/v1/applications/echo/jobs")
            .header("Scriptorium-Priority", priority)
            .json(&inputs_body(&[("Text", &["x"])]))
            .send()
    };
    assert_eq!(send("high").await.unwrap().status(), StatusCode::ACCEPTED);
    assert_eq!(send("low").await.unwrap().status(), StatusCode::ACCEPTED);
    let refused = send("urgent").await.unwrap();
    let description = assert_error(refused, 400, "BadRequest").await;
    assert!(description.contains("high, normal or low"), "{description}");
}

/// A job whose lease another worker took over (here: a reaper whose clock says the lease
/// lapsed) has its running call stopped: mock-llm sees the client leave, and the job runs
/// again to completion, once.
#[tokio::test]
async fn a_lost_lease_stops_its_model_call() {
    let llm = start_llm(&["--ttft", "3s"], 0).await;
    let mut config = provider(ProviderKind::Openai, format!("{}/v1", llm.base), 4);
    config.timeout = Duration::from_secs(30);
    let apps =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provider-apps");
    let app = crate::helpers::spawn_with(scriptorium::config::ServeOptions {
        apps_dir: Some(apps),
        concurrency: Some(4),
        lease: Some(Duration::from_secs(1)),
        providers: std::collections::BTreeMap::from([("default".to_owned(), config)]),
        ..scriptorium::config::ServeOptions::default()
    })
    .await;
    let created = app.create_job("sturdy", &[("Text", &["slow"])]).await;
    let id = created["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while llm.mock.stats().in_flight == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the call never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // Two seconds ahead: past the one-second lease the server keeps renewing (the job comes
    // due again two seconds from now).
    let clock = Clock::manual();
    clock.advance(Duration::from_secs(2));
    let reaper = app.store_on(clock).await;
    assert_eq!(
        reaper.reap().await.unwrap(),
        1,
        "the lease looks lapsed to this reaper"
    );
    while llm.mock.stats().abandoned == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the old call was not stopped"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let job = app.wait_finished(id).await;
    assert_eq!(
        (&job["status"], &job["attempts"]),
        (&"completed".into(), &2.into()),
        "{job}"
    );
    assert_eq!(
        llm.mock.stats().completed,
        1,
        "one call answered, the stopped one not"
    );
}
