//! Batch intake over HTTP: batches from uploaded CSV and JSON Lines files (multi-value,
//! quoted and empty cells, a custom_id column, bad rows failing alone by row and column,
//! `strict`), files that cannot be read as a batch, large batches stored exactly, and
//! requests that fail part-way leaving nothing written.

use scriptorium::config::ServeOptions;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_with};

impl TestApp {
    /// Uploads `text` as `name` and creates a batch of `app` from it with `extra` fields.
    async fn batch_from_file(&self, name: &str, text: &str, extra: Value) -> reqwest::Response {
        let file = self.upload(name, text.to_owned()).await;
        let mut body = extra;
        body["file_id"] = file["id"].clone();
        self.create_batch("echo", body).await
    }

    /// The echo application's jobs (up to 100), by custom_id.
    async fn echo_jobs_by_custom_id(&self) -> std::collections::HashMap<String, Value> {
        let page = self.get_json("/v1/applications/echo/jobs?limit=100").await;
        page["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|job| (job["custom_id"].as_str().unwrap().to_owned(), job.clone()))
            .collect()
    }

    /// The total of the echo application's jobs.
    async fn echo_total(&self) -> u64 {
        let page = self.get_json("/v1/applications/echo/jobs").await;
        page["totalCount"].as_u64().unwrap()
    }
}

#[tokio::test]
async fn a_csv_file_makes_a_batch_from_multi_value_quoted_and_empty_cells() {
    let app = spawn_app().await;
    let csv = "custom_id,Text,Mode,Note\r\n\
               sku-1,red|blue,plain,\r\n\
               sku-2,\"a, with a comma\",,\"a note\non two lines\"\r\n\
               ,\"say \"\"hi\"\"\",loud,\r\n";
    let response = app.batch_from_file("rows.csv", csv, json!({})).await;
    assert_eq!(response.status().as_u16(), 202);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["counts"]["total"], 3, "{created}");
    assert_eq!(created["counts"]["failed"], 0, "{created}");
    let done = app.wait_batch(created["id"].as_str().unwrap()).await;
    assert_eq!(done["counts"]["completed"], 3, "{done}");
    let jobs = app.echo_jobs_by_custom_id().await;
    let suggestion = |id: &str| jobs[id]["data"]["suggestion"].as_str().unwrap().to_owned();
    // Two values in one cell; an empty Mode cell is no Mode; the third row has no custom_id,
    // so its position names it.
    assert_eq!(suggestion("sku-1"), "[mock] red | blue mode=plain");
    assert_eq!(suggestion("sku-2"), "[mock] a, with a comma");
    assert_eq!(suggestion("3"), "[mock] say \"hi\" mode=loud");
    assert!(jobs.values().all(|job| job["batch_id"] == created["id"]));
}

#[tokio::test]
async fn bad_csv_rows_fail_alone_naming_their_row_and_column_and_strict_refuses_them() {
    let app = spawn_app().await;
    let csv = "Text,Mode\n\
               fine,\n\
               also fine,shout\n\
               ,plain\n\
               too,few,cells\n\
               last,loud\n";
    let response = app.batch_from_file("rows.csv", csv, json!({})).await;
    assert_eq!(response.status().as_u16(), 202);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["counts"]["total"], 5, "{created}");
    assert_eq!(created["counts"]["failed"], 3, "{created}");
    let errors = created["errors"].as_array().unwrap();
    let descriptions: Vec<&str> = errors
        .iter()
        .map(|e| e["description"].as_str().unwrap())
        .collect();
    assert_eq!(errors[0]["custom_id"], "2", "{created}");
    assert!(
        descriptions[0].starts_with("row 3: ") && descriptions[0].contains("'Mode'"),
        "{descriptions:?}"
    );
    assert!(
        descriptions[1].starts_with("row 4: ") && descriptions[1].contains("'Text'"),
        "{descriptions:?}"
    );
    assert!(
        descriptions[2].starts_with("row 5: ") && descriptions[2].contains("3 cells"),
        "{descriptions:?}"
    );
    let failed = &app.echo_jobs_by_custom_id().await["3"];
    assert_eq!(failed["status"], "failed");
    assert_eq!(failed["error"], descriptions[1]);

    // Under strict the same file is refused whole, naming each bad row, and nothing is written.
    let before = app.echo_total().await;
    let response = app
        .batch_from_file("rows.csv", csv, json!({"strict": true}))
        .await;
    assert_eq!(response.status().as_u16(), 400);
    let answer: Value = response.json().await.unwrap();
    let refused = answer["errors"].as_array().unwrap();
    assert_eq!(refused.len(), 3, "{answer}");
    assert!(
        refused[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("item '2': row 3: "),
        "{answer}"
    );
    assert_eq!(app.echo_total().await, before);
}

#[tokio::test]
async fn a_jsonl_file_makes_a_batch_and_bad_lines_fail_alone() {
    let app = spawn_app().await;
    let lines = [
        json!({"custom_id": "a", "inputs": [{"id": "Text", "value": ["first"]}]}).to_string(),
        String::new(),
        "{\"custom_id\": \"b\", \"inputs\": [".to_owned(),
        json!({"inputs": [{"id": "Text", "value": ["x"]}, {"id": "Mode", "value": ["shout"]}]})
            .to_string(),
        json!({"custom_id": "d", "inputs": [{"id": "Text", "value": ["one", "two"]}]}).to_string(),
    ];
    let response = app
        .batch_from_file("items.jsonl", &lines.join("\n"), json!({}))
        .await;
    assert_eq!(response.status().as_u16(), 202);
    let created: Value = response.json().await.unwrap();
    assert_eq!(created["counts"]["total"], 4, "{created}");
    assert_eq!(created["counts"]["failed"], 2, "{created}");
    let errors = created["errors"].as_array().unwrap();
    // The broken line cannot name its custom_id: its position does.
    assert_eq!(errors[0]["custom_id"], "2", "{created}");
    let first = errors[0]["description"].as_str().unwrap();
    assert!(first.starts_with("line 3: "), "{first}");
    assert_eq!(errors[1]["custom_id"], "3", "{created}");
    let second = errors[1]["description"].as_str().unwrap();
    assert!(
        second.starts_with("line 4: ") && second.contains("'Mode'"),
        "{second}"
    );
    let done = app.wait_batch(created["id"].as_str().unwrap()).await;
    assert_eq!(done["counts"]["completed"], 2, "{done}");
    let jobs = app.echo_jobs_by_custom_id().await;
    assert_eq!(jobs["d"]["data"]["suggestion"], "[mock] one | two");
}

#[tokio::test]
async fn a_file_that_is_missing_of_another_organisation_or_of_another_type_is_a_400() {
    let app = spawn_app().await;
    let csv = "Text\nhello\n";
    // Another organisation's file.
    let other = app.key_for("other").await;
    let theirs: Value = app
        .client
        .post(format!("{}/v1/files", app.base))
        .bearer_auth(&other)
        .header("content-disposition", "attachment; filename=\"rows.csv\"")
        .body(csv)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let unknown = "00000000-0000-4000-8000-000000000000";
    for file_id in [theirs["id"].as_str().unwrap(), unknown, "not-a-file-id"] {
        let response = app.create_batch("echo", json!({"file_id": file_id})).await;
        let description = assert_error(response, 400, "BadRequest").await;
        assert!(description.contains(file_id), "{description}");
    }
    // A file that is neither JSON Lines nor CSV.
    let text = app.upload("notes.txt", "Text\nhello\n").await;
    let response = app
        .create_batch("echo", json!({"file_id": text["id"]}))
        .await;
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["errors"][0]["key"], "batch.invalid_file", "{answer}");
    assert!(
        answer["errors"][0]["description"]
            .as_str()
            .unwrap()
            .contains("notes.txt")
    );
    // A header naming something that is not an input; items beside a file.
    let response = app
        .batch_from_file("rows.csv", "Text,Colour\nx,red\n", json!({}))
        .await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("'Colour'"), "{description}");
    let mine = app.upload("rows.csv", csv).await;
    let both = json!({"file_id": mine["id"], "items": [{"inputs": []}]});
    let response = app.create_batch("echo", both).await;
    assert_error(response, 400, "BadRequest").await;
    assert_eq!(app.echo_total().await, 0);
}

/// `n` echo items named `item-1`...
fn many(n: usize) -> Vec<Value> {
    (1..=n)
        .map(|i| json!({"custom_id": format!("item-{i}"), "inputs": [{"id": "Text", "value": [format!("text {i}")]}]}))
        .collect()
}

#[tokio::test]
async fn twenty_thousand_items_inline_or_from_a_file_are_stored_with_exact_counts() {
    // No worker: the counts read are the stored ones.
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await;
    let body = json!({"items": many(20_000), "metadata": {"run": 1}, "priority": "low"});
    let response = app.create_batch("echo", body).await;
    assert_eq!(response.status().as_u16(), 202);
    let inline: Value = response.json().await.unwrap();
    assert_eq!(inline["counts"]["total"], 20_000, "{inline}");
    assert_eq!(inline["priority"], "low");

    let mut csv = String::from("custom_id,Text\n");
    for i in 1..=20_000 {
        csv.push_str(&format!("row-{i},text {i}|more\n"));
    }
    let response = app.batch_from_file("big.csv", &csv, json!({})).await;
    assert_eq!(response.status().as_u16(), 202);
    let from_file: Value = response.json().await.unwrap();
    assert_eq!(from_file["counts"]["total"], 20_000, "{from_file}");

    for batch in [&inline, &from_file] {
        let read = app
            .get_json(&format!(
                "/v1/applications/batches/{}",
                batch["id"].as_str().unwrap()
            ))
            .await;
        assert_eq!(read["counts"]["total"], 20_000, "{read}");
        assert_eq!(read["counts"]["in_progress"], 20_000, "{read}");
        assert_eq!(read["counts"]["failed"], 0, "{read}");
    }
    assert_eq!(app.echo_total().await, 40_000);
    // The first item (the oldest job) has the priority the body named after the items.
    let low = app
        .get_json("/v1/applications/echo/jobs?limit=1&offset=39999")
        .await;
    assert_eq!(low["result"][0]["custom_id"], "item-1");
    assert_eq!(low["result"][0]["priority"], "low");
}

#[tokio::test]
async fn a_body_that_breaks_or_overflows_after_thousands_of_items_writes_nothing() {
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        max_batch_mb: Some(1),
        ..ServeOptions::default()
    })
    .await;
    // Ten thousand good items (several chunks stored), then the JSON breaks off.
    let mut broken = serde_json::to_string(&json!({"items": many(10_000)})).unwrap();
    broken.truncate(broken.len() - 3);
    broken.push_str(", oops]}");
    let response = app
        .post("/v1/applications/echo/batches")
        .header("content-type", "application/json")
        .body(broken)
        .send()
        .await
        .unwrap();
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("not valid JSON"), "{description}");
    // A streamed body (no Content-Length) over the 1 MB limit.
    let big = serde_json::to_vec(&json!({"items": many(20_000)})).unwrap();
    assert!(big.len() > 1 << 20);
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        big.chunks(64 << 10).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .post("/v1/applications/echo/batches")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "PayloadTooLarge").await;
    // A repeated custom_id far into the items.
    let mut repeated = many(9_000);
    repeated[8_999]["custom_id"] = json!("item-1");
    let response = app.create_batch("echo", json!({"items": repeated})).await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("item 9000"), "{description}");
    assert_eq!(app.echo_total().await, 0);
    let batches = app.get_json("/v1/applications/echo/batches").await;
    assert_eq!(batches["totalCount"], 0);
}

/// A batch whose body arrives slowly holds up no other write: nothing of it is stored until
/// the whole body is in (on SQLite the batch would otherwise hold the one writer from its
/// first chunk of items to its last).
#[tokio::test]
async fn a_batch_body_that_arrives_slowly_holds_up_no_other_write() {
    // No worker: the jobs wait, and the counts read are the stored ones.
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await;
    let body = serde_json::to_string(&json!({"items": many(5_000)})).unwrap();
    // All but the closing brackets now (more than a chunk of items), those when asked.
    let (head, tail) = body.split_at(body.len() - 2);
    let (send, parts) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(2);
    send.send(Ok(head.to_owned())).await.unwrap();
    let parts = futures_util::stream::unfold(parts, |mut parts| async move {
        parts.recv().await.map(|part| (part, parts))
    });
    let batch = app
        .post("/v1/applications/echo/batches")
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(parts))
        .send();
    let batch = tokio::spawn(batch);
    // Time for the server to read what it was sent (a wait, not a timed assertion: the test
    // holds whether or not it got that far).
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;

    let single = app.create_job("echo", &[("Text", &["meanwhile"])]);
    let single = tokio::time::timeout(std::time::Duration::from_secs(20), single)
        .await
        .expect("a single job is stored while a batch's body is still arriving");
    assert_eq!(single["status"], "in_progress");
    assert_eq!(app.echo_total().await, 1, "nothing of the batch yet");

    send.send(Ok(tail.to_owned())).await.unwrap();
    drop(send);
    let response = batch.await.unwrap().unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let stored: Value = response.json().await.unwrap();
    assert_eq!(stored["counts"]["total"], 5_000);
    assert_eq!(app.echo_total().await, 5_001);
}
