//! The dashboard's batches over plain HTTP: a CSV checked before anything exists (its
//! columns, its bad row named by row, column and error), started, followed, its results
//! downloaded; cancel and retry of batches and jobs from their pages; the forms refused
//! without their token and another organisation's batch a 404 on every route.

use std::time::Duration;

use reqwest::{Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{self, KEY, TestApp};
use crate::ui::Session;

/// Three items for the `echo` application; row 3 (`chair`) gives Mode a value it does not
/// list.
const CSV: &str = "custom_id,Text,Mode\r\ndesk,Walnut desk lamp,plain\r\n\
                   chair,Oak chair,shout\r\nshelf,Pine shelf|Birch,\r\n";

/// Uploads `body` as `name` the way the page's script does.
async fn upload(session: &Session, name: &str, body: &str) -> Response {
    session
        .post("/ui/batches/upload")
        .header("x-csrf-token", &session.token)
        .header(
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{name}\""),
        )
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
}

/// The id of the file `body` uploaded as `name`.
async fn uploaded(session: &Session, name: &str, body: &str) -> String {
    let response = upload(session, name, body).await;
    assert_eq!(response.status(), StatusCode::OK);
    let file: Value = response.json().await.unwrap();
    file["id"].as_str().unwrap().to_owned()
}

/// The part of `page` from `start` to the end of its table.
fn table<'a>(page: &'a str, start: &str) -> &'a str {
    let from = page
        .find(start)
        .unwrap_or_else(|| panic!("{start} in {page}"));
    let part = &page[from..];
    &part[..part.find("</table>").unwrap_or(part.len())]
}

/// Starts a batch of `echo` from `file_id`; answers its id.
async fn start(session: &Session, file_id: &str, strict: bool) -> Response {
    let mut fields = vec![("application", "echo"), ("file_id", file_id)];
    if strict {
        fields.push(("strict", "1"));
    }
    session.submit("/ui/batches/start", &fields).await
}

/// The batch's id from the answer of a start, a cancel or a retry (its page).
fn batch_of(response: &Response) -> String {
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let location = response.headers()[header::LOCATION].to_str().unwrap();
    location.strip_prefix("/ui/batches/").unwrap().to_owned()
}

/// `echo`'s batches, as the API lists them.
async fn batches_of_echo(app: &TestApp) -> Value {
    app.get_json("/v1/applications/echo/batches").await
}

/// Polls the API until `ready` holds for the batch (at most 60 s: a running item whose
/// cancel reaches its node before its attempt is tracked stops at the next heartbeat, a
/// third of the 30 s lease, later on a loaded machine).
async fn wait_batch_until(app: &TestApp, id: &str, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let batch = app
            .get_json(&format!("/v1/applications/batches/{id}"))
            .await;
        if ready(&batch) {
            return batch;
        }
        assert!(tokio::time::Instant::now() < deadline, "never: {batch}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_csv_is_checked_before_anything_exists_then_started_and_its_results_downloaded() {
    let app = helpers::spawn_app().await;
    let session = Session::open(&app, KEY).await;
    let file_id = uploaded(&session, "items.csv", CSV).await;

    let check = session
        .get(&format!(
            "/ui/batches/new?application=echo&file_id={file_id}"
        ))
        .await;
    assert_eq!(check.status(), StatusCode::OK);
    let page = check.text().await.unwrap();
    let mapping = table(&page, r#"id="mapping""#);
    assert!(mapping.contains("<code>custom_id</code>"), "{mapping}");
    assert!(mapping.contains("input <strong>Text</strong>"), "{mapping}");
    assert!(mapping.contains("input <strong>Mode</strong>"), "{mapping}");
    let bad = table(&page, r#"id="bad-rows""#);
    assert!(
        bad.contains(r#"<td class="num">3</td><td>chair</td><td>Mode</td>"#),
        "row, item and column: {bad}"
    );
    assert!(bad.contains("shout"), "{bad}");
    assert!(!bad.contains("desk") && !bad.contains("shelf"), "{bad}");
    assert!(page.contains(r#"id="check-good">2<"#), "two good rows");
    assert_eq!(batches_of_echo(&app).await["totalCount"], 0, "nothing yet");

    let id = batch_of(&start(&session, &file_id, false).await);
    let batch = app.wait_batch(&id).await;
    assert_eq!(batch["counts"]["total"], 3);
    assert_eq!(batch["counts"]["completed"], 2);
    assert_eq!(batch["counts"]["failed"], 1);
    let page = session
        .get(&format!("/ui/batches/{id}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("data-finished"), "the refresh stops");
    assert!(page.contains(&format!(r#"href="/ui/jobs?batch={id}">all 3 as jobs<"#)));
    let failed = format!("/ui/jobs?batch={id}&amp;status=failed");
    assert!(page.contains(&format!(r#"href="{failed}">the failed ones<"#)));
    let items = session.get(&failed.replace("&amp;", "&")).await;
    let items = items.text().await.unwrap();
    assert!(
        items.contains("1 job(s) match") && items.contains("chair"),
        "{items}"
    );
    let failures = table(&page, r#"id="failures""#);
    assert!(
        failures.contains("chair") && failures.contains("shout"),
        "{failures}"
    );

    let csv = session
        .get(&format!("/ui/batches/{id}/results?format=csv"))
        .await;
    assert_eq!(csv.status(), StatusCode::OK);
    assert!(
        csv.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let disposition = csv.headers()[header::CONTENT_DISPOSITION].to_str().unwrap();
    assert_eq!(
        disposition,
        format!("attachment; filename=\"batch-{id}.csv\"")
    );
    let body = csv.text().await.unwrap();
    let mut rows = csv::Reader::from_reader(body.as_bytes());
    let head: Vec<String> = rows.headers().unwrap().iter().map(str::to_owned).collect();
    assert_eq!(
        head,
        [
            "Text",
            "Mode",
            "Note",
            "custom_id",
            "status",
            "title",
            "suggestion",
            "error"
        ]
    );
    let mut got: Vec<(String, String, String)> = rows
        .records()
        .map(|r| {
            let r = r.unwrap();
            (r[3].to_owned(), r[4].to_owned(), r[0].to_owned())
        })
        .collect();
    got.sort();
    let want = [
        ("chair", "failed", "Oak chair"),
        ("desk", "completed", "Walnut desk lamp"),
        ("shelf", "completed", "Pine shelf|Birch"),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string()))
        .collect();
    assert_eq!(got, want);

    let jsonl = session
        .get(&format!("/ui/batches/{id}/results?format=jsonl"))
        .await;
    assert_eq!(jsonl.status(), StatusCode::OK);
    let lines: Vec<Value> = jsonl
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3);
    let desk = lines.iter().find(|l| l["custom_id"] == "desk").unwrap();
    assert_eq!(desk["data"]["title"], "Echo of Walnut desk lamp");
}

#[tokio::test]
async fn a_file_the_create_would_refuse_is_said_on_the_check_and_strict_refuses_a_bad_row() {
    let app = helpers::spawn_app().await;
    let session = Session::open(&app, KEY).await;
    let wrong = uploaded(&session, "wrong.csv", "Text,Colour\r\nlamp,red\r\n").await;
    let page = session
        .get(&format!("/ui/batches/new?application=echo&file_id={wrong}"))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains(r#"id="check-refused""#), "{page}");
    let mapping = table(&page, r#"id="mapping""#);
    assert!(
        mapping.contains("column 2 &#x27;Colour&#x27; is not an input"),
        "{mapping}"
    );
    assert!(!page.contains(r#"action="/ui/batches/start""#), "no start");

    let missing = uploaded(&session, "missing.csv", "Mode\r\nplain\r\n").await;
    let page = session
        .get(&format!(
            "/ui/batches/new?application=echo&file_id={missing}"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(page.contains("Missing required input(s): Text"), "{page}");

    let lines = "{\"custom_id\": \"a\", \"inputs\": [{\"id\": \"Text\", \"value\": [\"x\"]}]}\n\
                 not json\n";
    let jsonl = uploaded(&session, "items.jsonl", lines).await;
    let page = session
        .get(&format!("/ui/batches/new?application=echo&file_id={jsonl}"))
        .await
        .text()
        .await
        .unwrap();
    let bad = table(&page, r#"id="bad-rows""#);
    assert!(bad.contains(r#"<td class="num">2</td>"#), "line 2: {bad}");
    assert!(bad.contains("not an item object"), "{bad}");

    let file_id = uploaded(&session, "items.csv", CSV).await;
    let strict = start(&session, &file_id, true).await;
    assert_eq!(strict.status(), StatusCode::BAD_REQUEST);
    assert!(
        strict.text().await.unwrap().contains("chair"),
        "names the bad item"
    );
    assert_eq!(
        batches_of_echo(&app).await["totalCount"],
        0,
        "nothing written"
    );
}

#[tokio::test]
async fn the_new_forms_need_the_token_and_another_organisations_batch_is_a_404() {
    let app = helpers::spawn_app().await;
    let session = Session::open(&app, KEY).await;
    let no_token = session
        .post("/ui/batches/upload")
        .header(
            header::CONTENT_DISPOSITION,
            "attachment; filename=\"a.csv\"",
        )
        .body(CSV)
        .send()
        .await
        .unwrap();
    assert_eq!(no_token.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        app.get_json("/v1/files").await["data"],
        json!([]),
        "no file"
    );
    let file_id = uploaded(&session, "items.csv", CSV).await;
    let job = crate::ui::failed_job(&app).await;
    for path in [
        "/ui/batches/start".to_owned(),
        format!("/ui/jobs/{job}/cancel"),
    ] {
        let response = session
            .post(&path)
            .form(&[
                ("csrf", "wrong"),
                ("application", "echo"),
                ("file_id", file_id.as_str()),
            ])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN, "{path}");
    }
    assert_eq!(batches_of_echo(&app).await["totalCount"], 0);

    let id = batch_of(&start(&session, &file_id, false).await);
    app.wait_batch(&id).await;
    for action in ["cancel", "retry"] {
        let path = format!("/ui/batches/{id}/{action}");
        let response = session.post(&path).form(&[("csrf", "wrong")]).send().await;
        assert_eq!(response.unwrap().status(), StatusCode::FORBIDDEN, "{path}");
    }

    let theirs = Session::open(&app, &app.key_for("other").await).await;
    for path in [
        format!("/ui/batches/{id}"),
        format!("/ui/batches/{id}/live"),
        format!("/ui/batches/{id}/results?format=csv"),
    ] {
        assert_eq!(
            theirs.get(&path).await.status(),
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    for action in ["cancel", "retry"] {
        let response = theirs
            .submit(&format!("/ui/batches/{id}/{action}"), &[])
            .await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{action}");
    }
    let check = theirs
        .get(&format!(
            "/ui/batches/new?application=echo&file_id={file_id}"
        ))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        check.contains("no such file"),
        "our file is not theirs: {check}"
    );
    let batch = app
        .get_json(&format!("/v1/applications/batches/{id}"))
        .await;
    assert_eq!(batch["counts"]["failed"], 1, "nothing changed");
}

#[tokio::test]
async fn a_running_job_and_batch_are_cancelled_and_a_batch_retried_from_their_pages() {
    let app = helpers::spawn_app().await;
    let session = Session::open(&app, KEY).await;
    let job = app
        .create_job("echo", &[("Text", &["long [[mock:sleep=30000]]"])])
        .await;
    let job = job["id"].as_str().unwrap();
    let page = session.get(&format!("/ui/jobs/{job}")).await.text().await;
    assert!(page.unwrap().contains(&format!("/ui/jobs/{job}/cancel")));
    let cancelled = session.submit(&format!("/ui/jobs/{job}/cancel"), &[]).await;
    assert_eq!(cancelled.status(), StatusCode::SEE_OTHER);
    let job = app.wait_finished(job).await;
    assert_eq!(job["state"], "cancelled", "{job}");

    let items = |text: &str| {
        json!({"items": [
            {"custom_id": "a", "inputs": [{"id": "Text", "value": [format!("a {text}")]}]},
            {"custom_id": "b", "inputs": [{"id": "Text", "value": [format!("b {text}")]}]},
        ]})
    };
    let slow: Value = app
        .create_batch("echo", items("[[mock:sleep=30000]]"))
        .await
        .json()
        .await
        .unwrap();
    let slow = slow["id"].as_str().unwrap();
    let page = session
        .get(&format!("/ui/batches/{slow}"))
        .await
        .text()
        .await;
    let page = page.unwrap();
    assert!(page.contains("Cancel batch") && !page.contains("data-finished"));
    batch_of(
        &session
            .submit(&format!("/ui/batches/{slow}/cancel"), &[])
            .await,
    );
    let done = wait_batch_until(&app, slow, |b| b["status"] == "cancelled").await;
    assert_eq!(done["counts"]["cancelled"], 2, "{done}");

    let failing: Value = app
        .create_batch("echo", items("[[mock:fatal-first=1]]"))
        .await
        .json()
        .await
        .unwrap();
    let failing = failing["id"].as_str().unwrap();
    assert_eq!(app.wait_batch(failing).await["counts"]["failed"], 2);
    let page = session
        .get(&format!("/ui/batches/{failing}"))
        .await
        .text()
        .await;
    assert!(page.unwrap().contains("Retry failed"));
    batch_of(
        &session
            .submit(&format!("/ui/batches/{failing}/retry"), &[])
            .await,
    );
    let done = wait_batch_until(&app, failing, |b| b["counts"]["completed"] == 2).await;
    assert_eq!(done["status"], "completed");
}
