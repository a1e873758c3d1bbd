//! Webhooks over HTTP, against a receiver run by the test (`receiver.rs`): events arrive
//! signed, failed deliveries are retried with the same webhook-id and every attempt is
//! listed, only the subscribed events are sent, undelivered events survive a restart (and
//! an attempt cut by a `kill -9` is made again at once),
//! internal URLs are refused without `--webhook-allow-private` (at create, and again at
//! delivery), the secret and its rotation, and tenancy.

pub(crate) mod receiver;

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use scriptorium::config::ServeOptions;
use serde_json::{Value, json};

use crate::helpers::{KEY, TestApp, assert_error, spawn_app, spawn_in, spawn_with};
use crate::process::{Serve, client};
use receiver::{Received, Receiver};

/// A server that accepts webhooks to 127.0.0.1 and retries after 100 ms (doubling to 400 ms).
fn allowing_private() -> ServeOptions {
    ServeOptions {
        webhook_allow_private: Some(true),
        webhook_backoff: Some(Duration::from_millis(100)),
        webhook_backoff_max: Some(Duration::from_millis(400)),
        ..ServeOptions::default()
    }
}

impl TestApp {
    async fn webhook_secret(&self) -> String {
        let body = self.get_json("/v1/scriptorium/webhooks/secret").await;
        body["secret"].as_str().unwrap().to_owned()
    }

    /// Creates a batch of echo items (a text holding `[[mock:fail]]` fails) with this webhook.
    async fn batch_with_webhook(&self, texts: &[&str], webhook: Value) -> String {
        let items: Vec<Value> = texts
            .iter()
            .map(|t| json!({"custom_id": t, "inputs": [{"id": "Text", "value": [t]}]}))
            .collect();
        let body = json!({"items": items, "webhook": webhook});
        let response = self.create_batch("echo", body).await;
        assert_eq!(response.status(), 202);
        let batch: Value = response.json().await.unwrap();
        batch["id"].as_str().unwrap().to_owned()
    }

    async fn deliveries(&self, batch: &str) -> Value {
        self.get_json(&format!(
            "/v1/scriptorium/webhooks/deliveries?batch_id={batch}"
        ))
        .await
    }
}

#[tokio::test]
async fn events_arrive_signed_and_failed_deliveries_are_retried_with_the_same_id() {
    let app = spawn_with(allowing_private()).await;
    let receiver = Receiver::start(&app.webhook_secret().await, 2).await;
    let events = ["batch.completed", "job.completed", "job.failed"];
    let batch = app
        .batch_with_webhook(
            &["one", "two", "[[mock:fail]]"],
            json!({"url": receiver.url, "events": events}),
        )
        .await;

    let accepted = receiver.wait_accepted(4).await;
    let all = receiver.received();
    assert!(
        all.iter().all(|r| r.signed),
        "every signature checks: {all:?}"
    );
    let refused: Vec<&Received> = all.iter().filter(|r| r.answered == 500).collect();
    assert_eq!(refused.len(), 2);
    for r in &refused {
        assert!(
            accepted
                .iter()
                .any(|a| a.id == r.id && a.body["type"] == r.body["type"]),
            "{} was retried with the same webhook-id",
            r.id
        );
    }
    let of_type =
        |t: &str| -> Vec<&Received> { accepted.iter().filter(|r| r.body["type"] == t).collect() };
    assert_eq!(of_type("job.completed").len(), 2);
    let failed = of_type("job.failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].body["data"]["status"], "failed");
    assert_eq!(failed[0].body["data"]["custom_id"], "[[mock:fail]]");
    assert_eq!(failed[0].body["data"]["batch_id"], batch.as_str());
    let done = of_type("batch.completed");
    assert_eq!(done.len(), 1);
    assert_eq!(done[0].body["data"]["id"], batch.as_str());
    assert_eq!(done[0].body["data"]["status"], "completed");
    assert_eq!(done[0].body["data"]["counts"]["completed"], 2);
    assert_eq!(done[0].body["data"]["counts"]["failed"], 1);
    assert!(done[0].body["timestamp"].as_str().unwrap().ends_with('Z'));

    let page = app.deliveries(&batch).await;
    assert_eq!(page["totalCount"], 4, "{page}");
    assert_eq!(page["pagination"], json!({"offset": 0, "limit": 50}));
    let listed = page["result"].as_array().unwrap();
    let attempts: usize = listed
        .iter()
        .map(|e| e["attempts"].as_array().unwrap().len())
        .sum();
    assert_eq!(
        attempts, 6,
        "two refused attempts and four accepted: {page}"
    );
    for event in listed {
        assert_eq!(event["status"], "delivered", "{event}");
        assert_eq!(event["url"], receiver.url.as_str());
        let tries = event["attempts"].as_array().unwrap();
        assert_eq!(tries.last().unwrap()["status_code"], 200, "{event}");
        if tries.len() > 1 {
            assert_eq!(tries[0]["status_code"], 500, "{event}");
            assert!(tries[0]["at"].as_str().unwrap() < tries[1]["at"].as_str().unwrap());
        }
    }
}

#[tokio::test]
async fn a_webhook_without_events_hears_only_of_the_batch_completing() {
    let app = spawn_with(allowing_private()).await;
    let receiver = Receiver::start(&app.webhook_secret().await, 0).await;
    let batch = app
        .batch_with_webhook(&["a", "[[mock:fail]]"], json!({"url": receiver.url}))
        .await;
    let accepted = receiver.wait_accepted(1).await;
    assert_eq!(accepted[0].body["type"], "batch.completed");
    // The events are written with the items' outcomes, so once the batch is complete every
    // event it will ever have is listed.
    app.wait_batch(&batch).await;
    let page = app.deliveries(&batch).await;
    assert_eq!(page["totalCount"], 1, "{page}");
    assert_eq!(page["result"][0]["type"], "batch.completed");
    assert!(page["result"][0]["job_id"].is_null());
}

#[tokio::test]
async fn undelivered_events_are_delivered_after_the_server_restarts() {
    let app = spawn_with(allowing_private()).await;
    let receiver = Receiver::start(&app.webhook_secret().await, usize::MAX).await;
    let batch = app
        .batch_with_webhook(&["before the restart"], json!({"url": receiver.url}))
        .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.received().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let storage = app.stop().await;
    let refused_id = receiver.received()[0].id.clone();

    receiver.accept();
    let app = spawn_in(storage, allowing_private()).await;
    let accepted = receiver.wait_accepted(1).await;
    assert_eq!(
        accepted[0].id, refused_id,
        "the same event, by its webhook-id"
    );
    assert!(accepted[0].signed);
    let page = app.deliveries(&batch).await;
    let event = &page["result"][0];
    assert_eq!(event["status"], "delivered", "{page}");
    let attempts = event["attempts"].as_array().unwrap();
    assert!(attempts.len() >= 2, "{page}");
    assert_eq!(attempts[0]["status_code"], 500);
}

/// SQLite: an attempt in flight when the process is killed is made again as soon as the next
/// server starts on the data directory (it is the only process), not after the claim's 40 s
/// lease.
#[tokio::test]
async fn an_attempt_cut_by_a_kill_9_is_made_again_when_the_server_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve {
        api_key: Some(KEY),
        args: vec!["--webhook-allow-private", "--webhook-backoff", "100ms"],
        ..Serve::new(dir.path())
    };
    let http = client();
    let server = serve.start();
    let secret: Value = http
        .get(server.url("/v1/scriptorium/webhooks/secret"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let receiver = Receiver::start(secret["secret"].as_str().unwrap(), 0).await;
    receiver.hold();
    let body = json!({"items": [{"inputs": [{"id": "Text", "value": ["x"]}]}],
                      "webhook": {"url": receiver.url}});
    let response = http
        .post(server.url("/v1/applications/echo/batches"))
        .bearer_auth(KEY)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while receiver.received().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no attempt within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let held = receiver.received()[0].id.clone();
    server.child.kill_9();

    receiver.accept();
    let _restarted = serve.start();
    let accepted = receiver.wait_accepted(1).await;
    assert_eq!(accepted[0].id, held, "the same event, by its webhook-id");
    assert!(accepted[0].signed);
}

#[tokio::test]
async fn internal_webhook_urls_are_refused_without_the_flag() {
    let app = spawn_app().await;
    for url in [
        "http://127.0.0.1/hook",
        "http://10.0.0.1/",
        "http://[::1]/",
        "http://localhost/",
        "http://169.254.169.254/latest/meta-data",
        "http://[fd00::1]:8080/",
    ] {
        let body = json!({"items": [{"inputs": [{"id": "Text", "value": ["x"]}]}],
                          "webhook": {"url": url}});
        let response = app.create_batch("echo", body).await;
        let message = assert_error(response, 400, "BadRequest").await;
        assert!(message.contains("internal address"), "{url}: {message}");
    }
    for (webhook, says) in [
        (json!({"url": "ftp://example.com/"}), "http or https"),
        (json!({"url": "/relative"}), "absolute"),
        (json!({"url": "http://[::1]/", "events": []}), "internal"),
    ] {
        let body = json!({"items": [{"inputs": [{"id": "Text", "value": ["x"]}]}],
                          "webhook": webhook});
        let message = assert_error(app.create_batch("echo", body).await, 400, "BadRequest").await;
        assert!(message.contains(says), "{webhook}: {message}");
    }
    let listed = app.get_json("/v1/applications/echo/batches").await;
    assert_eq!(listed["totalCount"], 0, "nothing was written: {listed}");
}

#[tokio::test]
async fn urls_are_checked_again_at_delivery() {
    // Accepted by a server that allows private URLs (and runs no job, so sends nothing)...
    let idle = ServeOptions {
        concurrency: Some(0),
        ..allowing_private()
    };
    let app = spawn_with(idle).await;
    let receiver = Receiver::start(&app.webhook_secret().await, 0).await;
    let port = receiver.url.split(':').nth(2).unwrap().to_owned();
    let by_name = format!("http://localhost:{port}");
    let batches = [
        app.batch_with_webhook(&["named"], json!({"url": by_name}))
            .await,
        app.batch_with_webhook(&["literal"], json!({"url": receiver.url}))
            .await,
    ];
    let storage = app.stop().await;

    // ...then delivered by one that does not: refused after resolution, before connecting.
    let strict = ServeOptions {
        webhook_backoff: Some(Duration::from_millis(100)),
        ..ServeOptions::default()
    };
    let app = spawn_in(storage, strict).await;
    for batch in &batches {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let page = app.deliveries(batch).await;
            let error = &page["result"][0]["attempts"][0]["error"];
            if let Some(error) = error.as_str() {
                assert!(error.contains("internal address"), "{page}");
                assert!(page["result"][0]["attempts"][0]["status_code"].is_null());
                assert_eq!(page["result"][0]["status"], "pending", "retried: {page}");
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no attempt within 20 s: {page}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert!(
        receiver.received().is_empty(),
        "nothing reached the receiver"
    );
}

#[tokio::test]
async fn unknown_or_no_events_are_refused_even_with_private_urls_allowed() {
    let app = spawn_with(allowing_private()).await;
    for (events, says) in [
        (json!(["batch.done"]), "unknown event 'batch.done'"),
        (json!([]), "names no event"),
    ] {
        let webhook = json!({"url": "http://127.0.0.1:9/hook", "events": events});
        let body = json!({"items": [{"inputs": [{"id": "Text", "value": ["x"]}]}],
                          "webhook": webhook});
        let message = assert_error(app.create_batch("echo", body).await, 400, "BadRequest").await;
        assert!(message.contains(says), "{message}");
    }
}

#[tokio::test]
async fn the_secret_is_made_on_first_use_and_rotation_replaces_it() {
    let app = spawn_app().await;
    let first = app.webhook_secret().await;
    assert!(first.starts_with("whsec_"), "{first}");
    let key = STANDARD.decode(first.trim_start_matches("whsec_")).unwrap();
    assert_eq!(key.len(), 32);
    assert_eq!(app.webhook_secret().await, first, "the same until rotated");

    let response = app
        .post("/v1/scriptorium/webhooks/secret/rotate")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let rotated: Value = response.json().await.unwrap();
    let rotated = rotated["secret"].as_str().unwrap();
    assert_ne!(rotated, first);
    assert_eq!(app.webhook_secret().await, rotated);

    let other = app.key_for("other-org").await;
    let theirs: Value = app
        .client
        .get(format!("{}/v1/scriptorium/webhooks/secret", app.base))
        .bearer_auth(other)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_ne!(theirs["secret"].as_str().unwrap(), rotated);
}

#[tokio::test]
async fn after_a_rotation_deliveries_carry_the_old_secrets_signature_too() {
    let app = spawn_with(allowing_private()).await;
    let old = app.webhook_secret().await;
    let rotated: Value = app
        .post("/v1/scriptorium/webhooks/secret/rotate")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let new = rotated["secret"].as_str().unwrap();
    for secret in [old.as_str(), new] {
        let receiver = Receiver::start(secret, 0).await;
        app.batch_with_webhook(&["x"], json!({"url": receiver.url}))
            .await;
        let accepted = receiver.wait_accepted(1).await;
        assert!(
            accepted[0].signed,
            "verified with the {} secret",
            if secret == new { "new" } else { "old" }
        );
    }
}

#[tokio::test]
async fn another_organisations_deliveries_are_a_404() {
    let app = spawn_with(allowing_private()).await;
    let receiver = Receiver::start(&app.webhook_secret().await, 0).await;
    let batch = app
        .batch_with_webhook(&["mine"], json!({"url": receiver.url}))
        .await;
    receiver.wait_accepted(1).await;

    let other = app.key_for("other-org").await;
    let ask = |query: String| {
        app.client
            .get(format!(
                "{}/v1/scriptorium/webhooks/deliveries{query}",
                app.base
            ))
            .bearer_auth(&other)
            .send()
    };
    assert_error(
        ask(format!("?batch_id={batch}")).await.unwrap(),
        404,
        "NotFound",
    )
    .await;
    let theirs: Value = ask(String::new()).await.unwrap().json().await.unwrap();
    assert_eq!(theirs["totalCount"], 0, "{theirs}");
    let unknown = "?batch_id=00000000-0000-0000-0000-000000000000".to_owned();
    assert_error(ask(unknown).await.unwrap(), 404, "NotFound").await;
    let mine = app.get_json("/v1/scriptorium/webhooks/deliveries").await;
    assert_eq!(mine["totalCount"], 1, "{mine}");
}
