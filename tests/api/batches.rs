//! Batches over HTTP: create with bad items and `strict`, exact counts until the batch
//! completes, items readable as Writer jobs, custom ids, tenancy, and the list's paging and
//! status filter.

use scriptorium::config::ServeOptions;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_with};

/// An item of the echo application: `Text` given, with `Mode` when it is not empty.
fn item(custom_id: Option<&str>, text: &str, mode: &str) -> Value {
    let mut inputs = vec![json!({"id": "Text", "value": [text]})];
    if !mode.is_empty() {
        inputs.push(json!({"id": "Mode", "value": [mode]}));
    }
    match custom_id {
        Some(id) => json!({"custom_id": id, "inputs": inputs}),
        None => json!({"inputs": inputs}),
    }
}

/// A batch of echo items from `(custom_id, text, mode)` triples.
fn items(specs: &[(Option<&str>, &str, &str)]) -> Vec<Value> {
    specs
        .iter()
        .map(|(id, text, mode)| item(*id, text, mode))
        .collect()
}

impl TestApp {
    /// The total of the echo application's jobs.
    async fn echo_jobs(&self) -> u64 {
        let page = self.get_json("/v1/applications/echo/jobs").await;
        page["totalCount"].as_u64().unwrap()
    }
}

/// 50 items: the first ten without a custom_id, the rest `sku-11`..`sku-50`; item 7 names a
/// Mode that is not in the list and `sku-30` leaves out the required Text.
fn fifty_with_two_bad() -> Vec<Value> {
    (1..=50)
        .map(|n| {
            let custom_id = (n > 10).then(|| format!("sku-{n}"));
            match n {
                7 => item(None, "seven", "shout"),
                30 => json!({"custom_id": "sku-30", "inputs": []}),
                _ => item(custom_id.as_deref(), &format!("text {n}"), ""),
            }
        })
        .collect()
}

#[tokio::test]
async fn a_batch_with_two_bad_items_is_202_counts_them_failed_and_completes() {
    let app = spawn_app().await;
    let body = json!({"items": fifty_with_two_bad(), "metadata": {"owner": "catalogue"}});
    let response = app.create_batch("echo", body).await;
    assert_eq!(response.status().as_u16(), 202);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["application_id"], "echo");
    assert_eq!(created["counts"]["total"], 50);
    assert_eq!(created["counts"]["failed"], 2);
    assert_eq!(created["counts"]["in_progress"], 48);
    assert_eq!(created["counts"]["cancelled"], 0);
    assert_eq!(created["status"], "in_progress");
    assert_eq!(created["priority"], "normal");
    assert_eq!(created["metadata"], json!({"owner": "catalogue"}));
    for field in ["completed_at", "cancelled_at", "eta"] {
        assert!(created[field].is_null(), "{field}: {created}");
    }
    let errors = created["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{created}");
    assert_eq!(errors[0]["custom_id"], "7");
    assert!(errors[0]["description"].as_str().unwrap().contains("Mode"));
    assert_eq!(errors[1]["custom_id"], "sku-30");
    assert!(errors[1]["description"].as_str().unwrap().contains("Text"));

    let id = created["id"].as_str().unwrap();
    let done = app.wait_batch(id).await;
    assert_eq!(done["counts"]["completed"], 48, "{done}");
    assert_eq!(done["counts"]["failed"], 2);
    assert_eq!(done["counts"]["in_progress"], 0);
    assert!(done["completed_at"].is_string(), "{done}");
    assert_eq!(done["updated_at"], done["completed_at"]);
    assert_eq!(done["errors"], created["errors"]);

    // Every item is an ordinary job, carrying its batch and custom_id.
    let page = app.get_json("/v1/applications/echo/jobs?limit=100").await;
    assert_eq!(page["totalCount"], 50);
    let jobs = page["result"].as_array().unwrap();
    assert!(jobs.iter().all(|j| j["batch_id"] == id), "{page}");
    let by_custom_id = |c: &str| jobs.iter().find(|j| j["custom_id"] == c).unwrap().clone();
    let refused = by_custom_id("sku-30");
    assert_eq!(refused["status"], "failed");
    assert_eq!(refused["error"], errors[1]["description"]);
    let path = format!(
        "/v1/applications/jobs/{}/retry",
        refused["id"].as_str().unwrap()
    );
    let response = app.post(&path).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errors"][0]["key"], "job.refused", "{answer}");
    let fine = by_custom_id("3");
    assert_eq!(fine["status"], "completed");
    let job = app.job(fine["id"].as_str().unwrap()).await;
    assert_eq!(job["batch_id"], id);
    assert_eq!(job["custom_id"], "3");
    assert_eq!(job["data"]["suggestion"], "[mock] text 3");
}

#[tokio::test]
async fn a_single_job_has_no_batch_fields() {
    let app = spawn_app().await;
    let created = app.create_job("echo", &[("Text", &["alone"])]).await;
    let job = app.job(created["id"].as_str().unwrap()).await;
    assert!(
        job.get("batch_id").is_none() && job.get("custom_id").is_none(),
        "{job}"
    );
}

#[tokio::test]
async fn strict_refuses_the_whole_batch_listing_the_bad_items_and_writes_nothing() {
    let app = spawn_app().await;
    app.create_job("echo", &[("Text", &["before"])]).await;
    let body = json!({"items": fifty_with_two_bad(), "strict": true});
    let response = app.create_batch("echo", body).await;
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    let errors = answer["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2, "{answer}");
    assert_eq!(errors[0]["key"], "inputs.invalid");
    assert!(
        errors[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("item '7': ")
    );
    assert!(
        errors[1]["description"]
            .as_str()
            .unwrap()
            .starts_with("item 'sku-30': ")
    );
    assert_eq!(app.echo_jobs().await, 1);
    let batches = app.get_json("/v1/applications/echo/batches").await;
    assert_eq!(batches["totalCount"], 0);

    // The same items without the bad ones pass under strict.
    let good: Vec<Value> = fifty_with_two_bad()
        .into_iter()
        .enumerate()
        .filter(|(at, _)| ![6, 29].contains(at))
        .map(|(_, item)| item)
        .collect();
    let response = app
        .create_batch("echo", json!({"items": good, "strict": true}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    assert_eq!(app.echo_jobs().await, 49);
}

#[tokio::test]
async fn a_repeated_or_empty_custom_id_is_a_400_naming_it_and_writes_nothing() {
    let app = spawn_app().await;
    let repeated = items(&[(Some("a"), "x", ""), (None, "y", ""), (Some("a"), "z", "")]);
    let response = app.create_batch("echo", json!({"items": repeated})).await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(
        description.contains("'a'") && description.contains("item 3"),
        "{description}"
    );
    // A default id (the position) taken by an explicit one is a repeat too.
    let clash = items(&[(Some("2"), "x", ""), (None, "y", "")]);
    let response = app.create_batch("echo", json!({"items": clash})).await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("'2'"), "{description}");
    let long = "x".repeat(256);
    for bad in ["", long.as_str()] {
        let body = json!({"items": items(&[(Some(bad), "x", "")])});
        let response = app.create_batch("echo", body).await;
        assert_error(response, 400, "BadRequest").await;
    }
    assert_eq!(app.echo_jobs().await, 0);
}

#[tokio::test]
async fn a_create_without_items_or_with_parts_not_there_yet_is_a_400() {
    let app = spawn_app().await;
    let one = items(&[(None, "x", "")]);
    for body in [
        json!({}),
        json!({"items": []}),
        json!({"file_id": "f"}),
        json!({"items": one, "priority": "urgent"}),
    ] {
        let response = app.create_batch("echo", body.clone()).await;
        assert_error(response, 400, "BadRequest").await;
    }
    let response = app.create_batch("no-such-app", json!({"items": one})).await;
    assert_error(response, 404, "NotFound").await;
}

#[tokio::test]
async fn the_priority_comes_from_the_body_and_reaches_the_items() {
    let app = spawn_app().await;
    let body = json!({"items": items(&[(None, "x", "")]), "priority": "low"});
    let created: Value = app.create_batch("echo", body).await.json().await.unwrap();
    assert_eq!(created["priority"], "low");
    let page = app.get_json("/v1/applications/echo/jobs").await;
    assert_eq!(page["result"][0]["priority"], "low");
}

#[tokio::test]
async fn another_organisations_batch_is_a_404_and_not_listed() {
    let app = spawn_app().await;
    let created: Value = app
        .create_batch("echo", json!({"items": items(&[(None, "x", "")])}))
        .await
        .json()
        .await
        .unwrap();
    let id = created["id"].as_str().unwrap();
    let other = app.key_for("other").await;
    let as_other = |path: &str| {
        let url = format!("{}{path}", app.base);
        app.client.get(url).bearer_auth(&other).send()
    };
    let path = format!("/v1/applications/batches/{id}");
    let response = as_other(&path).await.unwrap();
    assert_error(response, 404, "NotFound").await;
    let list = as_other("/v1/applications/echo/batches").await.unwrap();
    let list: Value = list.json().await.unwrap();
    assert_eq!(list["totalCount"], 0, "{list}");
    // The owner reads it.
    assert_eq!(app.get_json(&path).await["id"], id);
}

#[tokio::test]
async fn batch_paths_never_reach_the_application_routes() {
    let app = spawn_app().await;
    for (path, key) in [
        ("/v1/applications/batches/not-an-id", "batch.not_found"),
        ("/v1/applications/batches/jobs", "batch.not_found"),
        ("/v1/applications/batches/graphs", "batch.not_found"),
        ("/v1/applications/batches", "application.not_found"),
        ("/v1/applications/batches/batches", "batch.not_found"),
    ] {
        let response = app.get(path).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["key"], key, "{path}: {body}");
    }
}

#[tokio::test]
async fn the_list_pages_newest_first_and_filters_by_status() {
    // No worker: batches with valid items stay in progress.
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await;
    let refused = json!({"items": [{"custom_id": "only", "inputs": []}]});
    let mut ids = Vec::new();
    for body in [
        refused,
        json!({"items": items(&[(None, "b", "")])}),
        json!({"items": items(&[(None, "c", "")])}),
    ] {
        let created: Value = app.create_batch("echo", body).await.json().await.unwrap();
        ids.push(created["id"].as_str().unwrap().to_owned());
    }
    let page = |query: &'static str| {
        let app = &app;
        async move {
            app.get_json(&format!("/v1/applications/echo/batches?{query}"))
                .await
        }
    };
    let ids_of = |page: &Value| -> Vec<String> {
        page["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| b["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = page("limit=2").await;
    assert_eq!(first["totalCount"], 3);
    assert_eq!(first["pagination"], json!({"offset": 0, "limit": 2}));
    assert_eq!(ids_of(&first), [ids[2].clone(), ids[1].clone()]);
    let second = page("limit=2&offset=2").await;
    assert_eq!(ids_of(&second), [ids[0].clone()]);
    assert_eq!(second["result"][0]["status"], "completed");
    assert!(second["result"][0]["completed_at"].is_string());

    let completed = page("status=completed").await;
    assert_eq!(completed["totalCount"], 1);
    assert_eq!(ids_of(&completed), [ids[0].clone()]);
    let running = page("status=in_progress").await;
    assert_eq!(running["totalCount"], 2);
    assert_eq!(ids_of(&running), [ids[2].clone(), ids[1].clone()]);

    let response = app
        .get("/v1/applications/echo/batches?status=failed")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
}
