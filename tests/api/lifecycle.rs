//! A batch's lifecycle over HTTP: results followed by cursor while it runs (JSON Lines and
//! CSV, with a status filter), the eta, cancel of a running batch (mock-llm sees its calls
//! aborted) and of a single job, and the retry of a batch's failed items.

use std::collections::HashSet;
use std::time::Duration;

use scriptorium::config::ServeOptions;
use scriptorium::providers::config::ProviderKind;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_with};
use crate::providers::{provider, start_llm};

/// An echo item whose text is `text`.
fn item(custom_id: &str, text: &[&str]) -> Value {
    json!({"custom_id": custom_id, "inputs": [{"id": "Text", "value": text}]})
}

impl TestApp {
    /// Creates a batch of `app` from `items`; answers it.
    async fn batch_of(&self, app: &str, items: Vec<Value>) -> Value {
        let response = self.create_batch(app, json!({ "items": items })).await;
        assert_eq!(response.status().as_u16(), 202);
        response.json().await.unwrap()
    }

    /// Asks to cancel batch `id`; answers the response.
    async fn cancel_batch(&self, id: &str) -> reqwest::Response {
        self.post(&format!("/v1/applications/batches/{id}/cancel"))
            .send()
            .await
            .unwrap()
    }

    async fn batch(&self, id: &str) -> Value {
        self.get_json(&format!("/v1/applications/batches/{id}"))
            .await
    }

    /// The results of batch `id` with this query, as text.
    async fn results(&self, id: &str, query: &str) -> String {
        let response = self
            .get(&format!("/v1/applications/batches/{id}/results?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 200);
        response.text().await.unwrap()
    }

    /// The JSON Lines results of batch `id` with this query.
    async fn result_lines(&self, id: &str, query: &str) -> Vec<Value> {
        let text = self.results(id, query).await;
        text.lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// Polls batch `id` until `reached` holds for it (at most 20 s).
    async fn wait_batch_until(&self, id: &str, reached: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let batch = self.batch(id).await;
            if reached(&batch) {
                return batch;
            }
            assert!(tokio::time::Instant::now() < deadline, "{batch}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The counts of a batch: (in_progress, completed, failed, cancelled), which must add up to
/// its total.
fn counts(batch: &Value) -> (u64, u64, u64, u64) {
    let c = &batch["counts"];
    let n = |k: &str| c[k].as_u64().unwrap();
    let four = (
        n("in_progress"),
        n("completed"),
        n("failed"),
        n("cancelled"),
    );
    assert_eq!(four.0 + four.1 + four.2 + four.3, n("total"), "{batch}");
    four
}

#[tokio::test]
async fn results_follow_a_running_batch_by_cursor_each_item_once() {
    let app = spawn_with(ServeOptions {
        concurrency: Some(2),
        ..ServeOptions::default()
    })
    .await;
    let items = (1..=24)
        .map(|n| {
            item(
                &format!("sku-{n}"),
                &[&format!("item {n} [[mock:sleep=40]]")],
            )
        })
        .collect();
    let batch = app.batch_of("echo", items).await;
    let id = batch["id"].as_str().unwrap();
    let (mut seen, mut cursor, mut reads) = (Vec::<Value>::new(), 0, 0);
    while seen.len() < 24 {
        let lines = app.result_lines(id, &format!("after={cursor}")).await;
        reads += 1;
        for line in lines {
            assert!(line["cursor"].as_i64().unwrap() > cursor, "{line}");
            cursor = line["cursor"].as_i64().unwrap();
            seen.push(line);
        }
        // Counts stay exact throughout.
        counts(&app.batch(id).await);
        assert!(
            reads < 2_000,
            "the batch never finished: {} results",
            seen.len()
        );
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let custom_ids: HashSet<&str> = seen
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(custom_ids.len(), 24, "no item twice");
    let first = seen.iter().find(|l| l["custom_id"] == "sku-3").unwrap();
    assert_eq!(first["position"], 3);
    assert_eq!(first["status"], "completed");
    assert_eq!(first["data"]["title"], "Echo of item 3 [[mock:sleep=40]]");
    assert!(first["error"].is_null());
    // The mock says no usage: the line still has the field.
    assert!(first.get("usage").is_some(), "{first}");
    let job = app.job(first["job_id"].as_str().unwrap()).await;
    assert_eq!(job["custom_id"], "sku-3");
    assert!(
        app.result_lines(id, &format!("after={cursor}"))
            .await
            .is_empty()
    );
    assert_eq!(app.result_lines(id, "limit=5").await.len(), 5);
    let done = app.wait_batch(id).await;
    assert!(done["eta"].is_null(), "nothing left: {done}");
}

#[tokio::test]
async fn a_batch_in_progress_has_an_eta_once_items_have_finished() {
    let app = spawn_with(ServeOptions {
        concurrency: Some(1),
        ..ServeOptions::default()
    })
    .await;
    let items = (1..=40)
        .map(|n| item(&n.to_string(), &[&format!("{n} [[mock:sleep=50]]")]))
        .collect();
    let batch = app.batch_of("echo", items).await;
    let id = batch["id"].as_str().unwrap();
    assert!(batch["eta"].is_null(), "nothing has finished yet: {batch}");
    let running = app
        .wait_batch_until(id, |b| b["counts"]["completed"].as_u64().unwrap() >= 3)
        .await;
    if running["status"] == "in_progress" {
        let eta = running["eta"].as_str().expect("an eta while running");
        assert!(eta > running["updated_at"].as_str().unwrap(), "{running}");
    }
    let done = app.wait_batch(id).await;
    assert!(done["eta"].is_null(), "{done}");
}

#[tokio::test]
async fn csv_results_put_the_inputs_in_columns_and_the_status_filter_applies() {
    let app = spawn_app().await;
    let items = vec![
        item("two", &["first", "second"]),
        item("comma", &["a, quoted \"word\""]),
        json!({"custom_id": "bad", "inputs": [{"id": "Mode", "value": ["shout"]}]}),
    ];
    let batch = app.batch_of("echo", items).await;
    let id = batch["id"].as_str().unwrap();
    app.wait_batch(id).await;

    let csv = app.results(id, "format=csv").await;
    let rows: Vec<&str> = csv.split("\r\n").filter(|l| !l.is_empty()).collect();
    assert_eq!(
        rows[0],
        "Text,Mode,Note,custom_id,status,title,suggestion,error"
    );
    assert_eq!(rows.len(), 4, "{csv}");
    assert!(
        rows[1].starts_with(",shout,,bad,failed,,,"),
        "refused first: {csv}"
    );
    let two = rows.iter().find(|r| r.contains(",two,")).unwrap();
    assert!(
        two.starts_with("first|second,,,two,completed,Echo of first,[mock] first | second,"),
        "{two}"
    );
    let comma = rows.iter().find(|r| r.contains(",comma,")).unwrap();
    assert!(
        comma.starts_with("\"a, quoted \"\"word\"\"\",,,comma,completed,"),
        "{comma}"
    );

    let failed = app.result_lines(id, "status=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["custom_id"], "bad");
    assert!(
        failed[0]["error"].as_str().unwrap().contains("Text"),
        "{}",
        failed[0]
    );
    assert!(failed[0]["data"].is_null());
    assert_eq!(app.result_lines(id, "status=completed").await.len(), 2);
    assert!(app.result_lines(id, "status=cancelled").await.is_empty());

    let path = |q: &str| format!("/v1/applications/batches/{id}/results?{q}");
    for (query, key) in [
        ("status=running", "request.invalid_status"),
        ("format=xml", "request.invalid_query"),
        ("after=soon", "request.invalid_query"),
    ] {
        let response = app.get(&path(query)).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["errors"][0]["key"], key, "{query}: {body}");
    }
    let unknown = app
        .get("/v1/applications/batches/00000000-0000-0000-0000-000000000000/results")
        .send()
        .await
        .unwrap();
    assert_error(unknown, 404, "NotFound").await;
}

#[tokio::test]
async fn cancelling_a_running_batch_aborts_its_calls_which_mock_llm_sees_leave() {
    let llm = start_llm(&["--ttft", "60s"], 0).await;
    let mut config = provider(ProviderKind::Openai, format!("{}/v1", llm.base), 2);
    config.timeout = Duration::from_secs(120);
    let apps =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provider-apps");
    // A lease far longer than the test: only the cancel's own wake-up can renew in time.
    let app = spawn_with(ServeOptions {
        apps_dir: Some(apps),
        concurrency: Some(2),
        lease: Some(Duration::from_secs(300)),
        providers: std::collections::BTreeMap::from([("default".to_owned(), config)]),
        ..ServeOptions::default()
    })
    .await;
    let items = (1..=6).map(|n| item(&n.to_string(), &["slow"])).collect();
    let batch = app.batch_of("sturdy", items).await;
    let id = batch["id"].as_str().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while llm.mock.stats().in_flight < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the calls never started"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let response = app.cancel_batch(id).await;
    assert_eq!(response.status().as_u16(), 202);
    let cancelling: Value = response.json().await.unwrap();
    assert_eq!(cancelling["status"], "cancelling", "{cancelling}");
    assert_eq!(counts(&cancelling), (2, 0, 0, 4));
    assert!(cancelling["cancelled_at"].is_string());

    let cancelled = app
        .wait_batch_until(id, |b| b["status"] == "cancelled")
        .await;
    assert_eq!(counts(&cancelled), (0, 0, 0, 6));
    assert!(cancelled["completed_at"].is_null() && cancelled["eta"].is_null());
    while llm.mock.stats().abandoned < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the calls were not aborted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(llm.mock.stats().completed, 0);

    let lines = app.result_lines(id, "").await;
    assert_eq!(lines.len(), 6);
    assert!(
        lines
            .iter()
            .all(|l| l["status"] == "cancelled" && l["error"] == "cancelled")
    );
    let job = app.job(lines[5]["job_id"].as_str().unwrap()).await;
    assert_eq!(
        (&job["status"], &job["state"]),
        (&json!("failed"), &json!("cancelled"))
    );
    assert_eq!(job["error"], "cancelled");
    let listed = app
        .get_json("/v1/applications/sturdy/jobs?status=failed")
        .await;
    assert_eq!(listed["totalCount"], 6);

    let again = app.cancel_batch(id).await;
    let description = assert_error(again, 400, "BadRequest").await;
    assert!(description.contains("finished"), "{description}");
    let by_status = app
        .get_json("/v1/applications/sturdy/batches?status=cancelled")
        .await;
    assert_eq!(by_status["totalCount"], 1);
}

/// Batches stored at the same time as each other and as single jobs: their items' places
/// among the jobs interleave (on PostgreSQL each batch is found through the range of places
/// its items took), yet a cancel takes exactly its own batch's items, and a dashboard list of
/// a batch shows only its items.
#[tokio::test]
async fn a_cancel_takes_exactly_its_batch_among_batches_and_jobs_stored_at_once() {
    // No worker: everything waits.
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await;
    const ITEMS: usize = 3_000;
    let batch = |name: &'static str| {
        let items = (0..ITEMS)
            .map(|n| item(&format!("{name}-{n}"), &[name]))
            .collect();
        app.batch_of("echo", items)
    };
    let singles = async {
        let mut ids = Vec::new();
        for n in 0..20 {
            let text = format!("single {n}");
            let job = app.create_job("echo", &[("Text", &[&text])]).await;
            ids.push(job["id"].as_str().unwrap().to_owned());
        }
        ids
    };
    let (a, b, singles) = tokio::join!(batch("alpha"), batch("beta"), singles);
    let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());

    let response = app.cancel_batch(a).await;
    assert_eq!(response.status().as_u16(), 202);
    let counts = |cancelled: usize, in_progress: usize| {
        json!({"total": ITEMS, "in_progress": in_progress, "completed": 0, "failed": 0,
            "cancelled": cancelled})
    };
    assert_eq!(app.batch(a).await["counts"], counts(ITEMS, 0));
    assert_eq!(app.batch(b).await["counts"], counts(0, ITEMS));
    for id in &singles {
        let job = app.get_json(&format!("/v1/applications/jobs/{id}")).await;
        assert_eq!(job["status"], "in_progress", "{job}");
    }
    let listed = app
        .get_json("/v1/applications/echo/jobs?status=failed")
        .await;
    assert_eq!(listed["totalCount"], ITEMS);

    // The dashboard's list of b: a page of b's items, newest first, all of them counted.
    let s = crate::ui::Session::open(&app, crate::helpers::KEY).await;
    let page = s.get(&format!("/ui/jobs?batch={b}")).await;
    let page = page.text().await.unwrap();
    assert!(page.contains(&format!("{ITEMS} job(s) match")), "{page}");
    assert!(
        page.contains(&format!(">beta-{}<", ITEMS - 1)),
        "the newest item"
    );
    assert_eq!(page.matches(">beta-").count(), 50, "a page of b's items");
    assert!(!page.contains("alpha-"), "none of a's");
}

#[tokio::test]
async fn a_single_waiting_job_is_cancelled_at_once_and_can_be_retried() {
    // No worker: the job waits.
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await;
    let created = app.create_job("echo", &[("Text", &["wait"])]).await;
    let id = created["id"].as_str().unwrap();
    let cancel = |id: &str| {
        app.post(&format!("/v1/applications/jobs/{id}/cancel"))
            .send()
    };
    let response = cancel(id).await.unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let job: Value = response.json().await.unwrap();
    assert_eq!(
        (&job["status"], &job["state"]),
        (&json!("failed"), &json!("cancelled"))
    );
    assert_eq!(job["error"], "cancelled");
    assert!(job["completed_at"].is_string());

    let again = cancel(id).await.unwrap();
    assert_eq!(
        assert_error(again, 400, "BadRequest").await,
        format!("job {id} has finished; there is nothing to cancel")
    );
    let retried = app
        .post(&format!("/v1/applications/jobs/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(retried.status().as_u16(), 202);
    let job = app.job(id).await;
    assert_eq!(
        (&job["status"], &job["state"]),
        (&json!("in_progress"), &json!("queued"))
    );
    let unknown = cancel("00000000-0000-0000-0000-000000000000")
        .await
        .unwrap();
    assert_error(unknown, 404, "NotFound").await;
}

#[tokio::test]
async fn a_batch_retry_runs_its_failed_items_again_but_not_refused_ones() {
    let app = spawn_app().await;
    let items = vec![
        item("ok-1", &["fine"]),
        item("flaky-1", &["once [[mock:fatal-first=1]]"]),
        item("ok-2", &["fine too"]),
        item("flaky-2", &["twice [[mock:fatal-first=1]]"]),
        json!({"custom_id": "refused", "inputs": []}),
    ];
    let batch = app.batch_of("echo", items).await;
    let id = batch["id"].as_str().unwrap();
    let first = app.wait_batch(id).await;
    assert_eq!(counts(&first), (0, 2, 3, 0));
    let before = app.result_lines(id, "").await;
    assert_eq!(before.len(), 5);

    let response = app
        .post(&format!("/v1/applications/batches/{id}/retry"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 202);
    let retried: Value = response.json().await.unwrap();
    assert_eq!(retried["status"], "in_progress");
    let (in_progress, completed, failed, _) = counts(&retried);
    assert_eq!((in_progress + completed, failed), (4, 1), "{retried}");

    let done = app.wait_batch(id).await;
    assert_eq!(counts(&done), (0, 4, 1, 0));
    let after = app.result_lines(id, "").await;
    let ids: Vec<&str> = after
        .iter()
        .map(|l| l["custom_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 5, "each item once: {ids:?}");
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), 5);
    assert_eq!(
        &ids[3..].iter().copied().collect::<HashSet<_>>(),
        &HashSet::from(["flaky-1", "flaky-2"])
    );
    let flaky = after.iter().find(|l| l["custom_id"] == "flaky-1").unwrap();
    assert_eq!(flaky["status"], "completed");

    let nothing = app
        .post(&format!("/v1/applications/batches/{id}/retry"))
        .send()
        .await
        .unwrap();
    let description = assert_error(nothing, 400, "BadRequest").await;
    assert!(description.contains("refused at create"), "{description}");
}
