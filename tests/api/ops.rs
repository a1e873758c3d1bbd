//! The operators' routes: `/metrics` read by a Prometheus text parser after real jobs ran,
//! `/readyz` on a working database and on a gone one, and `/openapi.json` (its coverage of
//! the router is a unit test in `src/api/openapi.rs`; schemathesis drives it in
//! `schemathesis.rs`).

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{MetricsExposition, PrometheusType, PrometheusValue, Sample};
use scriptorium::config::ServeOptions;
use serde_json::Value as Json;

use crate::helpers::{self, TestApp};
use crate::pg::Schema;

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
