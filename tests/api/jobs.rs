//! Async jobs: create, poll to completion, list with status and offset paging, retries
//! (automatic and requested), idempotency keys, and durability across a restart.

use std::collections::HashSet;

use scriptorium::config::ServeOptions;
use serde_json::Value;

use crate::helpers::{assert_error, inputs_body, spawn_app, spawn_in, spawn_with};

#[tokio::test]
async fn a_created_job_is_202_then_completes_with_the_rendered_inputs() {
    let app = spawn_app().await;
    let created = app
        .create_job("echo", &[("Text", &["first", "second"])])
        .await;
    assert_eq!(created["status"], "in_progress");
    assert!(created["created_at"].as_str().unwrap().ends_with('Z'));
    let id = created["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok());
    let job = app.wait_finished(id).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["state"], "completed");
    assert_eq!(job["application_id"], "echo");
    assert_eq!(job["attempts"], 1);
    assert_eq!(job["data"]["suggestion"], "[mock] first | second");
    assert_eq!(job["data"]["title"], "Echo of first");
    assert!(job["completed_at"].is_string());
    assert!(job.get("error").is_none());
}

#[tokio::test]
async fn the_list_pages_by_offset_with_total_count_and_filters_by_status() {
    let app = spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let text = format!("job {i}");
        let created = app.create_job("echo", &[("Text", &[&text])]).await;
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let failing = app
        .create_job("echo", &[("Text", &["[[mock:fail]]"])])
        .await;
    for id in ids
        .iter()
        .chain([&failing["id"].as_str().unwrap().to_owned()])
    {
        app.wait_finished(id).await;
    }
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let page: Value = app
            .get(&format!(
                "/v1/applications/echo/jobs?limit=2&offset={offset}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(page["totalCount"], 6);
        assert_eq!(page["pagination"]["offset"], offset);
        assert_eq!(page["pagination"]["limit"], 2);
        let result = page["result"].as_array().unwrap();
        seen.extend(result.iter().map(|j| j["id"].as_str().unwrap().to_owned()));
        offset += result.len();
        if offset >= 6 {
            break;
        }
    }
    assert_eq!(seen.len(), 6);
    assert_eq!(seen[0], failing["id"].as_str().unwrap(), "newest first");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 6);

    let completed: Value = app
        .get("/v1/applications/echo/jobs?status=completed")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(completed["totalCount"], 5);
    assert!(
        completed["result"]
            .as_array()
            .unwrap()
            .iter()
            .all(|j| j["status"] == "completed")
    );
    let failed: Value = app
        .get("/v1/applications/echo/jobs?status=failed")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(failed["totalCount"], 1);
    assert_eq!(failed["result"][0]["error"], "mock: failed on purpose");
    let in_progress: Value = app
        .get("/v1/applications/echo/jobs?status=in_progress")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(in_progress["totalCount"], 0);
    assert_eq!(in_progress["result"], serde_json::json!([]));
}

#[tokio::test]
async fn a_retryable_failure_is_retried_with_backoff_until_it_succeeds() {
    let app = spawn_app().await;
    let created = app
        .create_job("echo", &[("Text", &["x [[mock:fail-first=2]]"])])
        .await;
    let job = app.wait_finished(created["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["attempts"], 3);
}

#[tokio::test]
async fn exhausted_attempts_fail_the_job_with_the_last_error() {
    let app = spawn_app().await;
    let created = app
        .create_job("echo", &[("Text", &["[[mock:error]]"])])
        .await;
    let job = app.wait_finished(created["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 3);
    let error = job["error"].as_str().unwrap();
    assert!(
        error.contains("retryable error on purpose") && error.contains("3 attempts"),
        "{error}"
    );
    assert!(job.get("data").is_none());
}

#[tokio::test]
async fn a_fatal_failure_fails_at_once_and_retry_starts_a_fresh_series() {
    let app = spawn_app().await;
    let created = app
        .create_job("single-shot", &[("Text", &["[[mock:fatal-first=1]]"])])
        .await;
    let id = created["id"].as_str().unwrap();
    let job = app.wait_finished(id).await;
    assert_eq!(job["status"], "failed");
    assert_eq!(job["attempts"], 1);

    let response = app
        .post(&format!("/v1/applications/jobs/{id}/retry"))
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["id"], id);
    assert_eq!(retried["status"], "in_progress");
    assert_eq!(retried["created_at"], created["created_at"]);
    let job = app.wait_finished(id).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["attempts"], 1);
    assert!(job.get("error").is_none());
}

#[tokio::test]
async fn retry_of_a_completed_job_is_a_400_that_clients_do_not_retry() {
    let app = spawn_app().await;
    let created = app.create_job("echo", &[("Text", &["fine"])]).await;
    let id = created["id"].as_str().unwrap();
    app.wait_finished(id).await;
    let response = app
        .post(&format!("/v1/applications/jobs/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-should-retry"], "false");
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("completed"), "{description}");
}

#[tokio::test]
async fn an_unknown_job_is_404() {
    let app = spawn_app().await;
    let response = app
        .get("/v1/applications/jobs/8d7f4c1e-0000-4000-8000-000000000000")
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
}

/// A job id is the lowercase hyphenated UUID the server gave; the same UUID in any other
/// spelling, like any other text, names no job.
#[tokio::test]
async fn a_job_id_in_another_spelling_names_no_job() {
    let app = spawn_app().await;
    let created = app.create_job("echo", &[("Text", &["x"])]).await;
    let id = created["id"].as_str().unwrap();
    app.wait_finished(id).await;
    let simple = id.replace('-', "");
    for other in [
        id.to_uppercase(),
        simple,
        format!("{{{id}}}"),
        "nope".into(),
    ] {
        let response = app
            .get(&format!("/v1/applications/jobs/{other}"))
            .send()
            .await
            .unwrap();
        let description = assert_error(response, 404, "NotFound").await;
        assert_eq!(description, format!("no job {other}"));
        let response = app
            .post(&format!("/v1/applications/jobs/{other}/retry"))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "NotFound").await;
    }
}

#[tokio::test]
async fn a_repeated_idempotency_key_answers_the_same_job() {
    let app = spawn_app().await;
    let body = inputs_body(&[("Text", &["once"])]);
    let mut ids = HashSet::new();
    for _ in 0..3 {
        let response = app
            .post("/v1/applications/echo/jobs")
            .header("idempotency-key", "order-42")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let created: Value = response.json().await.unwrap();
        ids.insert(created["id"].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 1);
    let list: Value = app
        .get("/v1/applications/echo/jobs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalCount"], 1);
}

#[tokio::test]
async fn accepted_jobs_survive_a_restart_and_then_run() {
    // Slow enough that the jobs are still queued or running when the server stops.
    let slow = ServeOptions {
        mock_latency: Some(std::time::Duration::from_secs(30)),
        shutdown_grace: Some(std::time::Duration::from_millis(100)),
        ..ServeOptions::default()
    };
    let app = spawn_with(slow).await;
    let mut ids = Vec::new();
    for i in 0..20 {
        let text = format!("durable {i}");
        ids.push(
            app.create_job("echo", &[("Text", &[&text])]).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let dir = app.stop().await;
    let app = spawn_in(dir, ServeOptions::default()).await;
    for (i, id) in ids.iter().enumerate() {
        let job = app.wait_finished(id).await;
        assert_eq!(job["status"], "completed");
        assert_eq!(job["data"]["suggestion"], format!("[mock] durable {i}"));
    }
    let response = app
        .get("/v1/applications/jobs/nope/retry")
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "MethodNotAllowed").await;
}

#[tokio::test]
async fn a_job_longer_than_its_lease_keeps_it_by_heartbeat() {
    let short_lease = ServeOptions {
        lease: Some(std::time::Duration::from_millis(600)),
        ..ServeOptions::default()
    };
    let app = spawn_with(short_lease).await;
    let created = app
        .create_job("echo", &[("Text", &["long [[mock:sleep=2500]]"])])
        .await;
    let job = app.wait_finished(created["id"].as_str().unwrap()).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(
        job["attempts"], 1,
        "the lease lapsed and the job ran twice: {job}"
    );
}
