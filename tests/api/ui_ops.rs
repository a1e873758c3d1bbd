//! The dashboard's figures and lists over plain HTTP: the overview's charts once finished jobs
//! are rolled up, the jobs list by cursor with its batch and time filters and the retry of a
//! filter's failures, and sessions kept in the database (across a restart, and across two
//! nodes of one PostgreSQL database).

use reqwest::{StatusCode, header};
use scriptorium::config::ServeOptions;
use scriptorium::store::{MINUTE_MICROS, minute_of, now_micros, rfc3339};
use serde_json::{Value, json};

use crate::helpers::{self, KEY, TestApp};
use crate::pg::Schema;
use crate::process::{Serve, ServerProcess};
use crate::ui::{Session, client};

/// Rolls up every finished job now, through a store beside the server, as the server's own
/// task does a little after each minute has ended (a test does not wait for that).
pub async fn roll_up_now(app: &TestApp) {
    let until = minute_of(now_micros()) + MINUTE_MICROS;
    app.store().await.dashboard().roll_up(until).await.unwrap();
}

/// How many jobs a page of the jobs list shows.
fn rows(page: &str) -> usize {
    page.matches(r#"<span class="state "#).count()
}

/// The `older` cursor of a page of the jobs list, if it links to an older page.
fn older(page: &str) -> Option<String> {
    let start = page.find("&amp;older=")? + 11;
    Some(page[start..].split('"').next().unwrap().to_owned())
}

#[tokio::test]
async fn the_overview_charts_the_jobs_finished_once_their_minute_is_rolled_up() {
    let app = helpers::spawn_app().await;
    let s = Session::open(&app, KEY).await;
    for text in ["one", "two", "[[mock:fatal-first=1]]"] {
        let job = app.create_job("echo", &[("Text", &[text])]).await;
        app.wait_finished(job["id"].as_str().unwrap()).await;
    }
    let before = s.get("/ui/").await.text().await.unwrap();
    assert_eq!(before.matches(r#"<figure class="chart">"#).count(), 6);
    assert!(
        before.contains("0 completed, 0 failed"),
        "nothing rolled up yet"
    );

    roll_up_now(&app).await;
    for path in ["/ui/", "/ui/overview/live"] {
        let page = s.get(path).await.text().await.unwrap();
        // The hour's chart and the day's.
        let summary = r#"<span class="muted">2 completed, 1 failed</span>"#;
        assert_eq!(page.matches(summary).count(), 2, "{path}");
        assert!(page.contains(r#"<rect class="completed""#), "{path}");
        assert!(page.contains(r#"<rect class="failed""#), "{path}");
        assert!(page.contains(r#"<rect class="mean""#), "{path}");
    }
    // Another organisation's figures are its own.
    let theirs = Session::open(&app, &app.key_for("other").await).await;
    let page = theirs.get("/ui/").await.text().await.unwrap();
    assert!(page.contains("0 completed, 0 failed"));
}

#[tokio::test]
async fn the_jobs_list_pages_by_cursor_and_filters_by_batch_and_time() {
    let app = helpers::spawn_app().await;
    let s = Session::open(&app, KEY).await;
    let mut first = String::new();
    for i in 0..52 {
        let job = app
            .create_job("echo", &[("Text", &[&format!("job {i}")])])
            .await;
        if i == 0 {
            first = job["id"].as_str().unwrap().to_owned();
        }
    }
    let page = s
        .get("/ui/jobs?application=echo")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(rows(&page), 50);
    assert!(page.contains("52 job(s) match"), "the counters' total");
    assert!(!page.contains(&first), "the oldest is on the next page");
    let cursor = older(&page).expect("a link to older jobs");
    let next = s
        .get(&format!("/ui/jobs?application=echo&older={cursor}"))
        .await;
    let next = next.text().await.unwrap();
    assert_eq!(rows(&next), 2);
    assert!(next.contains(&first));
    assert!(older(&next).is_none(), "nothing older");
    assert!(next.contains("← Newest"));

    // A batch's items only, whichever application is chosen.
    let items = json!({"items": [
        {"inputs": [{"id": "Text", "value": ["a"]}]},
        {"inputs": [{"id": "Text", "value": ["b"]}]},
        {"inputs": [{"id": "Text", "value": ["c"]}]},
    ]});
    let batch: Value = app.create_batch("echo", items).await.json().await.unwrap();
    let id = batch["id"].as_str().unwrap();
    let page = s.get(&format!("/ui/jobs?batch={id}")).await;
    let page = page.text().await.unwrap();
    assert_eq!(rows(&page), 3);
    assert!(page.contains("3 job(s) match"), "the batch's counts");

    // By the time they were made.
    let page = s
        .get("/ui/jobs?application=echo&before=2000-01-01T00:00")
        .await;
    assert_eq!(rows(&page.text().await.unwrap()), 0);
    let hour_ago = &rfc3339(now_micros() - 3_600_000_000)[..16];
    let page = s
        .get(&format!("/ui/jobs?application=echo&after={hour_ago}"))
        .await;
    let page = page.text().await.unwrap();
    assert_eq!(rows(&page), 50);
    assert!(
        page.contains("Jobs made in that time"),
        "no total with a time filter"
    );

    // A filter that names nothing is the API's error.
    let session = &s;
    let status = |path: String| async move { session.get(&path).await.status() };
    let unknown = uuid::Uuid::now_v7();
    assert_eq!(
        status(format!("/ui/jobs?batch={unknown}")).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("/ui/jobs?batch=nope".into()).await,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        status("/ui/jobs?after=yesterday".into()).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        status("/ui/jobs?older=nope".into()).await,
        StatusCode::BAD_REQUEST
    );
    let theirs = Session::open(&app, &app.key_for("other").await).await;
    let response = theirs.get(&format!("/ui/jobs?batch={id}")).await;
    assert_eq!(
        response.status(),
        StatusCode::NOT_FOUND,
        "another org's batch"
    );
}

#[tokio::test]
async fn retry_all_failed_requeues_only_the_failures_the_filter_shows() {
    let app = helpers::spawn_app().await;
    let s = Session::open(&app, KEY).await;
    let mut batches = Vec::new();
    for name in ["a", "b"] {
        let text = format!("[[mock:fatal-first=1]] {name}");
        let items = json!({"items": [{"inputs": [{"id": "Text", "value": [text]}]}]});
        let batch: Value = app.create_batch("echo", items).await.json().await.unwrap();
        let id = batch["id"].as_str().unwrap().to_owned();
        assert_eq!(app.wait_batch(&id).await["counts"]["failed"], 1);
        batches.push(id);
    }
    let page = s
        .get(&format!("/ui/jobs?batch={}&status=failed", batches[0]))
        .await;
    let page = page.text().await.unwrap();
    assert!(page.contains("Retry all 1 failed"), "the filter's failures");

    let fields = [
        ("application", "echo"),
        ("batch", batches[0].as_str()),
        ("after", ""),
        ("before", ""),
    ];
    let response = s.submit("/ui/jobs/retry-failed", &fields).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let to = response.headers()[header::LOCATION].to_str().unwrap();
    assert!(to.contains("retried=1") && to.contains(&batches[0]), "{to}");
    assert_eq!(app.wait_batch(&batches[0]).await["counts"]["completed"], 1);
    let other = app
        .get_json(&format!("/v1/applications/batches/{}", batches[1]))
        .await;
    assert_eq!(
        other["counts"]["failed"], 1,
        "the other batch's failure stays"
    );
}

#[tokio::test]
async fn a_session_outlives_a_restart_of_the_server() {
    let app = helpers::spawn_app().await;
    let cookie = Session::open(&app, KEY).await.cookie;
    let storage = app.stop().await;
    let app = helpers::spawn_in(storage, ServeOptions::default()).await;
    assert_eq!(
        client()
            .get(format!("{}/ui/jobs", app.base))
            .header(header::COOKIE, &cookie)
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
}

/// Two nodes on one PostgreSQL database behind no sticky balancer: a session opened on one
/// opens pages on the other; logged out on the other, it changes nothing anywhere at once,
/// and opens no page on the first once its cache has lapsed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_opened_on_one_node_works_on_another_until_logged_out_there() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let url = schema.url("ui");
    let dirs = [tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap()];
    let nodes: Vec<ServerProcess> = dirs
        .iter()
        .map(|dir| {
            let mut serve = Serve::new(dir.path());
            serve.api_key = Some(KEY);
            serve.args = vec!["--database-url", &url];
            serve.start()
        })
        .collect();
    let (a, b) = (nodes[0].url(""), nodes[1].url(""));
    let on = |base: &str, path: &str| format!("{base}{path}");
    let login = client()
        .post(on(&a, "/ui/login"))
        .header(header::ORIGIN, &a)
        .form(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::SEE_OTHER);
    let set = login.headers()[header::SET_COOKIE].to_str().unwrap();
    let cookie = set.split(';').next().unwrap().to_owned();
    let page = |base: String| {
        let cookie = cookie.clone();
        async move {
            client()
                .get(format!("{base}/ui/"))
                .header(header::COOKIE, cookie)
                .send()
                .await
                .unwrap()
        }
    };
    assert_eq!(page(a.clone()).await.status(), StatusCode::OK);
    let on_b = page(b.clone()).await;
    assert_eq!(
        on_b.status(),
        StatusCode::OK,
        "the other node knows the session"
    );
    let html = on_b.text().await.unwrap();
    let start = html.find(r#"name="csrf" value=""#).unwrap() + 19;
    let token = html[start..].split('"').next().unwrap().to_owned();

    let out = client()
        .post(on(&b, "/ui/logout"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &b)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    // A form sent to A reads the session afresh: refused at once.
    let post = client()
        .post(on(&a, "/ui/logout"))
        .header(header::COOKIE, &cookie)
        .header(header::ORIGIN, &a)
        .form(&[("csrf", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(post.headers()[header::LOCATION], "/ui/login");
    // Pages, once A's cache of the session has lapsed (a few seconds).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let response = page(a.clone()).await;
        if response.status() == StatusCode::SEE_OTHER {
            assert_eq!(response.headers()[header::LOCATION], "/ui/login");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still open on A");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
