//! The dashboard over plain HTTP: sessions (log in, cookie flags, log out), pages scoped to
//! the session's organisation, and forms refused from anywhere but the dashboard itself.
//! The same pages in a real browser: `ui_browser.rs`; batches from files: `ui_batches.rs`.

use reqwest::redirect::Policy;
use reqwest::{Client, RequestBuilder, Response, StatusCode, header};
use scriptorium::config::ServeOptions;
use scriptorium::store::{MINUTE_MICROS, minute_of, now_micros, rfc3339};
use serde_json::{Value, json};

use crate::helpers::{self, KEY, TestApp};
use crate::pg::Schema;
use crate::process::{Serve, ServerProcess};

/// A client that shows redirects instead of following them.
pub fn client() -> Client {
    Client::builder().redirect(Policy::none()).build().unwrap()
}

/// A dashboard session of one organisation, as a browser holds it: the cookie, and the
/// CSRF token its pages put in their forms.
pub struct Session {
    base: String,
    /// The session cookie, `name=value`.
    pub cookie: String,
    /// The token the session's forms carry.
    pub token: String,
}

impl Session {
    /// Logs in with `key` and reads the token off the overview.
    pub async fn open(app: &TestApp, key: &str) -> Self {
        let mut session = Self {
            base: app.base.clone(),
            cookie: log_in(app, key).await,
            token: String::new(),
        };
        let page = session.get("/ui/").await.text().await.unwrap();
        let start = page
            .find(r#"name="csrf" value=""#)
            .expect("a form with a token")
            + 19;
        session.token = page[start..].split('"').next().unwrap().to_owned();
        session
    }

    /// `GET path` with the session's cookie.
    pub async fn get(&self, path: &str) -> Response {
        get(&self.base, &self.cookie, path).await
    }

    /// A POST to `path` with the session's cookie, from the dashboard's own origin; the
    /// caller adds the body (and the token, or not).
    pub fn post(&self, path: &str) -> RequestBuilder {
        self.post_from(&self.base, path)
    }

    /// A POST to `path` with the session's cookie, from a page of `origin`.
    pub fn post_from(&self, origin: &str, path: &str) -> RequestBuilder {
        client()
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .header(header::ORIGIN, origin)
    }

    /// A form posted as the dashboard posts it: `fields` and the session's token.
    pub async fn submit(&self, path: &str, fields: &[(&str, &str)]) -> Response {
        let mut form = vec![("csrf", self.token.as_str())];
        form.extend_from_slice(fields);
        self.post(path).form(&form).send().await.unwrap()
    }

    /// A request of the page's script: `body` as JSON, the token in `X-CSRF-Token`.
    pub async fn script(&self, path: &str, body: &Value) -> Response {
        self.post(path)
            .header("x-csrf-token", &self.token)
            .json(body)
            .send()
            .await
            .unwrap()
    }
}

/// Logs in with `key`; answers the `name=value` of the session cookie.
async fn log_in(app: &TestApp, key: &str) -> String {
    let response = client()
        .post(format!("{}/ui/login", app.base))
        .header(header::ORIGIN, &app.base)
        .form(&[("key", key)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(response.headers()[header::LOCATION], "/ui/");
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

/// `GET path` with the session `cookie` (none: "").
async fn get(base: &str, cookie: &str, path: &str) -> Response {
    client()
        .get(format!("{base}{path}"))
        .header(header::COOKIE, cookie)
        .send()
        .await
        .unwrap()
}

/// A failed job of the default organisation, which completes when retried.
pub async fn failed_job(app: &TestApp) -> String {
    let job = app
        .create_job("echo", &[("Text", &["[[mock:fatal-first=1]]"])])
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    assert_eq!(app.wait_finished(&id).await["status"], "failed");
    id
}

#[tokio::test]
async fn every_page_without_a_session_sends_to_the_log_in() {
    let app = helpers::spawn_app().await;
    for path in [
        "/ui/",
        "/ui/overview/live",
        "/ui/applications",
        "/ui/applications/echo",
        "/ui/applications/new",
        "/ui/jobs",
        "/ui/batches",
    ] {
        for cookie in ["", "scriptorium_session=made-up"] {
            let response = get(&app.base, cookie, path).await;
            assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
            assert_eq!(response.headers()[header::LOCATION], "/ui/login", "{path}");
        }
    }
    let login = get(&app.base, "", "/ui/login").await;
    assert_eq!(login.status(), StatusCode::OK);
    assert!(login.text().await.unwrap().contains("<nav"));
}

#[tokio::test]
async fn the_session_cookie_is_httponly_and_samesite_and_a_wrong_key_opens_none() {
    let app = helpers::spawn_app().await;
    let response = client()
        .post(format!("{}/ui/login", app.base))
        .header(header::ORIGIN, &app.base)
        .form(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    let cookie = response.headers()[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("scriptorium_session="), "{cookie}");
    assert!(cookie.contains("; HttpOnly"), "{cookie}");
    assert!(cookie.contains("; SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("; Path=/ui"), "{cookie}");

    let wrong = client()
        .post(format!("{}/ui/login", app.base))
        .header(header::ORIGIN, &app.base)
        .form(&[("key", "scr_not_a_key")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    assert!(wrong.headers().get(header::SET_COOKIE).is_none());
}

#[tokio::test]
async fn another_organisations_job_batch_and_application_are_404s() {
    let app = helpers::spawn_app().await;
    let job = failed_job(&app).await;
    let definition = json!({"id": "ours", "name": "Ours", "status": "deployed",
        "prompt": "Hi {{ inputs['Who'][0] }}",
        "inputs": [{"name": "Who", "input_type": "text", "required": true}]});
    let made = app
        .post("/v1/scriptorium/applications")
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(made.status(), StatusCode::CREATED);
    let batch: Value = app
        .create_batch(
            "echo",
            json!({"items": [{"inputs": [{"id": "Text", "value": ["x"]}]}]}),
        )
        .await
        .json()
        .await
        .unwrap();
    let batch = batch["id"].as_str().unwrap();

    let ours = Session::open(&app, KEY).await;
    for path in [
        format!("/ui/jobs/{job}"),
        "/ui/applications/ours".to_owned(),
        format!("/ui/batches/{batch}"),
    ] {
        assert_eq!(ours.get(&path).await.status(), StatusCode::OK, "{path}");
    }

    let theirs = Session::open(&app, &app.key_for("other").await).await;
    for path in [
        format!("/ui/jobs/{job}"),
        "/ui/applications/ours".to_owned(),
        "/ui/applications/ours/edit".to_owned(),
        format!("/ui/batches/{batch}"),
    ] {
        let response = theirs.get(&path).await;
        assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
    }
    let list = theirs.get("/ui/applications").await;
    assert!(!list.text().await.unwrap().contains("/ui/applications/ours"));
    let retry = theirs.submit(&format!("/ui/jobs/{job}/retry"), &[]).await;
    assert_eq!(retry.status(), StatusCode::NOT_FOUND);
    assert_eq!(app.job(&job).await["status"], "failed", "nothing changed");
}

#[tokio::test]
async fn a_form_without_the_sessions_token_or_from_another_site_is_refused() {
    let app = helpers::spawn_app().await;
    let job = failed_job(&app).await;
    let session = Session::open(&app, KEY).await;
    let path = format!("/ui/jobs/{job}/retry");
    let wrong_token = session
        .post(&path)
        .form(&[("csrf", "not-the-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(wrong_token.status(), StatusCode::FORBIDDEN);
    let foreign = session
        .post_from("https://evil.example", &path)
        .form(&[("csrf", &session.token)])
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), StatusCode::FORBIDDEN);
    let editor = session
        .post("/ui/editor/save")
        .json(&json!({"definition": {"name": "x"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(editor.status(), StatusCode::FORBIDDEN, "no X-CSRF-Token");
    let cross_site_login = client()
        .post(format!("{}/ui/login", app.base))
        .header(header::ORIGIN, "https://evil.example")
        .form(&[("key", KEY)])
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site_login.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.job(&job).await["status"], "failed", "nothing changed");

    let ours = session.submit(&path, &[]).await;
    assert_eq!(ours.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.wait_finished(&job).await["status"], "completed");
}

#[tokio::test]
async fn after_log_out_the_cookie_opens_nothing() {
    let app = helpers::spawn_app().await;
    let session = Session::open(&app, KEY).await;
    assert_eq!(session.get("/ui/jobs").await.status(), StatusCode::OK);
    let out = session.submit("/ui/logout", &[]).await;
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert!(
        out.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let after = session.get("/ui/jobs").await;
    assert_eq!(after.status(), StatusCode::SEE_OTHER);
    assert_eq!(after.headers()[header::LOCATION], "/ui/login");
}

#[tokio::test]
async fn the_editor_names_a_definitions_problem_then_previews_and_saves_it() {
    let app = helpers::spawn_app().await;
    let session = Session::open(&app, KEY).await;
    let mut definition = json!({"id": "greeter", "name": "Greeter", "status": "deployed",
        "prompt": "Hello {{ inputs['Who'][0] ",
        "inputs": [{"name": "Who", "input_type": "text", "required": true}]});
    let inputs = json!([{"id": "Who", "value": ["Ada"]}]);
    let bad: Value = session
        .script(
            "/ui/editor/preview",
            &json!({"definition": definition, "inputs": inputs}),
        )
        .await
        .json()
        .await
        .unwrap();
    let problem = bad["problems"][0].as_str().unwrap();
    assert!(problem.starts_with("prompt, line 1"), "{bad}");

    definition["prompt"] = json!("Hello {{ inputs['Who'][0] }}");
    let good: Value = session
        .script(
            "/ui/editor/preview",
            &json!({"definition": definition, "inputs": inputs}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(good["preview"]["user"], "Hello Ada", "{good}");

    let saved: Value = session
        .script("/ui/editor/save", &json!({"definition": definition}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(saved["location"], "/ui/applications/greeter");
    let stored = app.get_json("/v1/scriptorium/applications/greeter").await;
    assert_eq!(stored["version"], 1);

    definition["id"] = json!("half-done");
    definition["status"] = json!("draft");
    let draft: Value = session
        .script("/ui/editor/save", &json!({"definition": definition}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(draft["location"], "/ui/applications/half-done", "{draft}");
    let list = session.get("/ui/applications").await.text().await;
    let list = list.unwrap();
    let drafts = list
        .split("<h2>Drafts</h2>")
        .nth(1)
        .expect("a drafts section");
    assert!(drafts.contains("/ui/applications/half-done"), "{drafts}");
    assert!(!drafts.contains("/ui/applications/greeter"), "{drafts}");
}

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
    let cookie = log_in(&app, KEY).await;
    let storage = app.stop().await;
    let app = helpers::spawn_in(storage, ServeOptions::default()).await;
    assert_eq!(
        get(&app.base, &cookie, "/ui/jobs").await.status(),
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
