//! The operators' routes: `/metrics` read by a Prometheus text parser after real jobs ran
//! (and webhooks were delivered),
//! `/readyz` on a working database and on a gone one, and `/openapi.json` (its coverage of
//! the router is a unit test in `src/api/openapi.rs`; schemathesis drives it in
//! `schemathesis.rs`).

use std::time::{Duration, Instant};

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue, Sample};
use scriptorium::config::ServeOptions;
use serde_json::{Value as Json, json};

use crate::helpers::{self, TestApp};
use crate::pg::Schema;
use crate::webhooks::receiver::Receiver;

/// `/metrics`, parsed as Prometheus' text format 0.0.4; it needs no key.
type Scrape = MetricsExposition<PrometheusType, PrometheusValue>;

async fn scrape(app: &TestApp) -> Scrape {
    let response = app
        .client
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let content_type = response.headers()["content-type"].to_str().unwrap();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let text = response.text().await.unwrap();
    parse_prometheus(&text).unwrap_or_else(|e| panic!("{e:?} in:\n{text}"))
}

/// The one sample of the family `metric` whose labels include these.
fn sample<'a>(
    scrape: &'a Scrape,
    metric: &str,
    labels: &[(&str, &str)],
) -> Option<&'a Sample<PrometheusValue>> {
    let family = scrape.families.get(metric)?;
    let mut found = family.iter_samples().filter(|s| {
        let set = s.get_labelset().unwrap();
        labels
            .iter()
            .all(|(k, v)| set.get_label_value(k) == Some(*v))
    });
    let first = found.next();
    assert!(
        found.next().is_none(),
        "several {metric} samples match {labels:?}"
    );
    first
}

/// A counter's or gauge's value, or a histogram's count.
fn value(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    let Some(sample) = sample(scrape, metric, labels) else {
        panic!("no {metric} sample with {labels:?}");
    };
    match &sample.value {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Gauge(n) | PrometheusValue::Unknown(n) => n.as_f64(),
        PrometheusValue::Histogram(h) => h.count.expect("a histogram has a count") as f64,
        PrometheusValue::Summary(_) => panic!("{metric} is a summary"),
    }
}

/// Whether any sample of any family has this label value.
fn any_label(scrape: &Scrape, name: &str, value: &str) -> bool {
    scrape.families.values().any(|family| {
        family
            .iter_samples()
            .any(|s| s.get_labelset().unwrap().get_label_value(name) == Some(value))
    })
}

#[tokio::test]
async fn metrics_count_jobs_timings_providers_and_http_routes_after_jobs_ran() {
    let app = helpers::spawn_app().await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let text = format!("metric {i}");
        let job = app.create_job("echo", &[("Text", &[text.as_str()])]).await;
        ids.push(job["id"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        assert_eq!(app.wait_finished(id).await["status"], "completed");
    }
    // A refused create: a 400 under its route, and no job.
    let refused = app.submit("echo", &[]).await;
    assert_eq!(refused.status(), 400);
    let unknown = app.get("/no/such/route").send().await.unwrap();
    assert_eq!(unknown.status(), 404);

    let scrape = scrape(&app).await;
    let echo = [("org", "default"), ("application", "echo")];
    let completed = [echo.as_slice(), &[("status", "completed")]].concat();
    assert_eq!(value(&scrape, "scriptorium_jobs", &completed), 3.0);
    assert!(
        sample(&scrape, "scriptorium_jobs", &[("status", "in_progress")]).is_none(),
        "no job is in progress, and counts of zero are left out"
    );
    // One first claim per job, one completed attempt per job: this server's own registry.
    assert_eq!(
        value(&scrape, "scriptorium_job_queue_wait_seconds", &[]),
        3.0
    );
    let ran = [("outcome", "completed")];
    assert_eq!(value(&scrape, "scriptorium_job_run_seconds", &ran), 3.0);
    let provider = [("provider", "default")];
    assert!(value(&scrape, "scriptorium_provider_calls_total", &provider) >= 3.0);
    assert_eq!(
        value(&scrape, "scriptorium_provider_in_flight", &provider),
        0.0
    );
    assert!(value(&scrape, "scriptorium_provider_concurrency_limit", &provider) >= 1.0);
    let closed = [("provider", "default"), ("state", "closed")];
    assert_eq!(value(&scrape, "scriptorium_provider_circuit", &closed), 1.0);
    assert!(
        sample(
            &scrape,
            "scriptorium_provider_tokens_total",
            &[("provider", "default"), ("direction", "out")]
        )
        .is_some()
    );

    let created = [
        ("route", "/v1/applications/{application_id}/jobs"),
        ("method", "POST"),
    ];
    let accepted = [created.as_slice(), &[("status", "202")]].concat();
    assert_eq!(
        value(&scrape, "scriptorium_http_requests_total", &accepted),
        3.0
    );
    let bad = [created.as_slice(), &[("status", "400")]].concat();
    assert_eq!(value(&scrape, "scriptorium_http_requests_total", &bad), 1.0);
    assert_eq!(
        value(
            &scrape,
            "scriptorium_http_request_duration_seconds",
            &created
        ),
        4.0
    );
    let polled = [
        ("route", "/v1/applications/jobs/{job_id}"),
        ("method", "GET"),
    ];
    assert!(
        value(
            &scrape,
            "scriptorium_http_request_duration_seconds",
            &polled
        ) >= 3.0
    );
    let unmatched = [("route", "unmatched"), ("status", "404")];
    assert_eq!(
        value(&scrape, "scriptorium_http_requests_total", &unmatched),
        1.0
    );
    assert!(
        !any_label(&scrape, "route", "/no/such/route"),
        "raw paths never become labels"
    );
    app.stop().await;
}

/// `/readyz` on a server whose database answers (SQLite, or PostgreSQL in the PostgreSQL run).
#[tokio::test]
async fn readyz_is_200_with_every_check_passed() {
    let app = helpers::spawn_app().await;
    let response = app
        .client
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    for check in ["database", "migrations", "providers"] {
        assert_eq!(body["checks"][check]["ok"], true, "{check}: {body}");
    }
    assert_eq!(body["checks"]["providers"]["detail"], "default");
    let health = app.get("/healthz").send().await.unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

/// The database goes away under a running server (its PostgreSQL schema is dropped): it is
/// no longer ready, and says which check failed; `/healthz` still answers.
#[tokio::test]
async fn readyz_is_503_naming_the_database_once_it_is_gone() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let app = helpers::spawn_with(ServeOptions {
        database_url: Some(schema.url("api")),
        ..ServeOptions::default()
    })
    .await;
    let ready = app.get("/readyz").send().await.unwrap();
    assert_eq!(ready.status(), 200);

    let admin = crate::pg::bootstrap(&schema.base).await;
    let drop = format!("DROP SCHEMA {} CASCADE", schema.name);
    admin.batch_execute(&drop).await.unwrap();

    let response = app.get("/readyz").send().await.unwrap();
    assert_eq!(response.status(), 503);
    let body: Json = response.json().await.unwrap();
    assert_eq!(body["status"], "unready");
    assert_eq!(body["checks"]["database"]["ok"], false, "{body}");
    assert_eq!(body["checks"]["providers"]["ok"], true, "{body}");
    let health = app.get("/healthz").send().await.unwrap();
    assert_eq!(health.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn openapi_json_is_an_openapi_3_1_document_served_without_a_key() {
    let app = helpers::spawn_app().await;
    let response = app
        .client
        .get(format!("{}/openapi.json", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let doc: Json = response.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let job = &doc["paths"]["/v1/applications/jobs/{job_id}"]["get"];
    assert_eq!(
        job["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/JobView"
    );
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(
        error["required"],
        serde_json::json!(["tpe", "errors", "extras"])
    );
    app.stop().await;
}

/// Webhook deliveries in `/metrics`: attempts by event type and outcome (this node's), and
/// the events waiting, from the outbox's counter.
#[tokio::test]
async fn metrics_count_webhook_attempts_by_type_and_outcome_and_the_events_waiting() {
    let options = ServeOptions {
        webhook_allow_private: Some(true),
        webhook_backoff: Some(Duration::from_millis(100)),
        webhook_backoff_max: Some(Duration::from_millis(200)),
        ..ServeOptions::default()
    };
    let app = helpers::spawn_with(options).await;
    let secret = app.get_json("/v1/scriptorium/webhooks/secret").await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    // Every attempt is refused until the test says otherwise.
    let receiver = Receiver::start(&secret, usize::MAX).await;
    let items: Vec<Json> = ["one", "two"]
        .iter()
        .map(|t| json!({"custom_id": t, "inputs": [{"id": "Text", "value": [t]}]}))
        .collect();
    let webhook = json!({"url": receiver.url, "events": ["batch.completed", "job.completed"]});
    let response = app
        .create_batch("echo", json!({"items": items, "webhook": webhook}))
        .await;
    assert_eq!(response.status(), 202);

    // Three events (two items, the batch), each refused at least once, all still waiting.
    // Every series is there from the start, at zero.
    let count =
        |s: &Scrape, kind, outcome| value(s, DELIVERIES, &[("type", kind), ("outcome", outcome)]);
    let refused = scrape_until(&app, |s| {
        count(s, "job.completed", "failed") >= 2.0 && count(s, "batch.completed", "failed") >= 1.0
    })
    .await;
    assert_eq!(value(&refused, PENDING, &[]), 3.0);
    assert_eq!(count(&refused, "job.completed", "delivered"), 0.0);

    receiver.accept();
    receiver.wait_accepted(3).await;
    let delivered = scrape_until(&app, |s| value(s, PENDING, &[]) == 0.0).await;
    assert_eq!(count(&delivered, "job.completed", "delivered"), 2.0);
    assert_eq!(count(&delivered, "batch.completed", "delivered"), 1.0);
    assert_eq!(count(&delivered, "job.failed", "delivered"), 0.0);
    assert_eq!(count(&delivered, "job.failed", "given_up"), 0.0);
    app.stop().await;
}

const DELIVERIES: &str = "scriptorium_webhook_deliveries_total";
const PENDING: &str = "scriptorium_webhook_events_pending";

/// Scrapes until `done` holds (at most 20 s); answers that scrape.
async fn scrape_until(app: &TestApp, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scraped = scrape(app).await;
        if done(&scraped) {
            return scraped;
        }
        assert!(Instant::now() < deadline, "the metrics never got there");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
