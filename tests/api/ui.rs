//! The dashboard over plain HTTP: sessions (log in, cookie flags, log out), pages scoped to
//! the session's organisation, and forms refused from anywhere but the dashboard itself.
//! The same pages in a real browser: `ui_browser.rs`; batches from files: `ui_batches.rs`.

use reqwest::redirect::Policy;
use reqwest::{Client, RequestBuilder, Response, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::{self, KEY, TestApp};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jobs_page_lists_each_attempt_with_its_times_and_error() {
    let app = helpers::spawn_app().await;
    let session = Session::open(&app, KEY).await;
    let job = app
        .create_job("echo", &[("Text", &["twice [[mock:fail-first=1]]"])])
        .await;
    let id = job["id"].as_str().unwrap();
    let done = app.wait_finished(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let page = session.get(&format!("/ui/jobs/{id}")).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = page.text().await.unwrap();
    let attempts = &page[page.find("<h2>Attempts</h2>").expect("an attempts table")..];
    let attempts = &attempts[..attempts.find("</table>").unwrap()];
    let rows: Vec<&str> = attempts.split("<tr>").skip(2).collect();
    assert_eq!(
        rows.len(),
        2,
        "the retried attempt, then the completed one: {attempts}"
    );
    assert!(
        rows[0].contains("<td>1</td>")
            && rows[0].contains("retrying")
            && rows[0].contains("mock: call 1 failed on purpose"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("<td>2</td>") && rows[1].contains("completed"),
        "{}",
        rows[1]
    );
    app.stop().await;
}
