//! The dashboard in a real headless Chromium, driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`; the test starts chromedriver on a free port): log in, build an
//! application in the editor (a problem named as you type and Save disabled, then the
//! preview, a try, a save), run it once, watch the job fail, retry it, see it complete, see the overview
//! refresh itself, look at the jobs and batches, log out and be refused. The browser's log
//! must hold no error (a script error, a failed request, a refused script or style), and
//! every page is photographed at 1280 and 390 pixels wide into `target/ui-screenshots/`.
//!
//! Without chromedriver the test prints a notice and passes; CI sets
//! `SCRIPTORIUM_REQUIRE_BROWSER`, which makes a missing browser a failure.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};

use crate::helpers::{self, KEY};

/// How long a page may take to show what a step waits for before the test gives up (a
/// guard against hanging, not a measure of speed).
pub const PATIENCE: Duration = Duration::from_secs(60);

/// chromedriver, killed when the test ends.
pub struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts chromedriver on a free port; `None` when it is not installed.
pub async fn driver() -> Option<Driver> {
    let installed = Command::new("chromedriver")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        assert!(
            std::env::var_os("SCRIPTORIUM_REQUIRE_BROWSER").is_none(),
            "SCRIPTORIUM_REQUIRE_BROWSER is set but chromedriver is missing; \
             apt-get install chromium chromium-driver"
        );
        eprintln!(
            "skipping: chromedriver is not installed; apt-get install chromium chromium-driver"
        );
        return None;
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let status = format!("{}/status", driver.url);
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while reqwest::get(&status).await.is_err() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "chromedriver never answered"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Some(driver)
}

/// A headless Chromium session that keeps its console log.
pub async fn browser(driver: &Driver) -> Client {
    let mut options = json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu",
        "--disable-dev-shm-usage", "--window-size=1280,900"]});
    if Path::new("/usr/bin/chromium").exists() {
        options["binary"] = json!("/usr/bin/chromium");
    }
    let mut capabilities = Capabilities::new();
    capabilities.insert("goog:chromeOptions".into(), options);
    capabilities.insert("goog:loggingPrefs".into(), json!({"browser": "ALL"}));
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap()
}

/// chromedriver's log of the browser's console since the last read (its `se/log`).
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base_url: &reqwest::Url,
        session_id: Option<&str>,
    ) -> Result<reqwest::Url, url_error::ParseError> {
        base_url.join(&format!(
            "session/{}/se/log",
            session_id.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &reqwest::Url) -> (axum::http::Method, Option<String>) {
        (
            axum::http::Method::POST,
            Some(json!({"type": "browser"}).to_string()),
        )
    }
}

/// The `url` crate's parse error, as `reqwest` re-exports the crate's `Url` only.
mod url_error {
    pub type ParseError = <reqwest::Url as std::str::FromStr>::Err;
}

/// The console's errors since the last call: script errors, failed requests, refusals.
pub async fn console_errors(c: &Client) -> Vec<String> {
    let entries = c.issue_cmd(BrowserLog).await.unwrap();
    entries
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["level"] == "SEVERE")
        .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
        .collect()
}

pub fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/ui-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub async fn shot(c: &Client, width: u32, name: &str) {
    let png = c.screenshot().await.unwrap();
    std::fs::write(screenshots().join(format!("{width}-{name}.png")), png).unwrap();
}

/// Waits until `ready` holds for the page; `what` names it when it never does.
pub async fn until<F, Fut>(c: &Client, what: &str, ready: F)
where
    F: Fn(Client) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !ready(c.clone()).await {
        assert!(tokio::time::Instant::now() < deadline, "never: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The text of the first element `css` finds, or "" when none does.
pub async fn text_of(c: &Client, css: &str) -> String {
    match c.find(Locator::Css(css)).await {
        Ok(e) => e.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    }
}

pub async fn path_of(c: &Client) -> String {
    c.current_url().await.unwrap().path().to_owned()
}

pub async fn click(c: &Client, css: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

pub async fn type_into(c: &Client, css: &str, text: &str) {
    c.find(Locator::Css(css))
        .await
        .unwrap()
        .send_keys(text)
        .await
        .unwrap();
}

/// Whether the editor's Save button can be clicked.
async fn save_enabled(c: &Client) -> bool {
    let save = c.find(Locator::Css("#save")).await.unwrap();
    save.is_enabled().await.unwrap()
}

/// Reloads the page until `css` is on it.
pub async fn reload_until(c: &Client, css: &str) {
    until(c, css, |c| async move {
        if c.find(Locator::Css(css)).await.is_ok() {
            return true;
        }
        c.refresh().await.unwrap();
        false
    })
    .await;
}

#[tokio::test]
async fn a_person_builds_runs_and_retries_in_a_real_browser_without_a_console_error() {
    let Some(driver) = driver().await else {
        return;
    };
    let app = helpers::spawn_app().await;
    let base = app.base.clone();
    let c = browser(&driver).await;
    c.set_window_size(1280, 900).await.unwrap();

    // Log in.
    c.goto(&format!("{base}/ui/")).await.unwrap();
    assert_eq!(path_of(&c).await, "/ui/login", "sent to the log-in");
    shot(&c, 1280, "login").await;
    type_into(&c, "input[name=key]", KEY).await;
    click(&c, "main form button[type=submit]").await;
    until(&c, "the overview", |c| async move {
        path_of(&c).await == "/ui/"
    })
    .await;
    shot(&c, 1280, "overview-empty").await;

    // The editor: a problem as you type, then the preview, a try, a save.
    c.goto(&format!("{base}/ui/applications/new"))
        .await
        .unwrap();
    type_into(&c, "input[name=id]", "ui-greeter").await;
    type_into(&c, "input[name=name]", "Greeter").await;
    click(&c, "#add-input").await;
    type_into(&c, "[data-field=name]", "Who").await;
    click(&c, "[data-field=required]").await;
    type_into(&c, "[data-field=sample]", "Ada").await;
    type_into(&c, "textarea[name=prompt]", "Hello {{ inputs[\"Who\"][0] ").await;
    until(&c, "the template's problem named", |c| async move {
        text_of(&c, "#problems").await.contains("prompt, line 1")
    })
    .await;
    shot(&c, 1280, "editor-problem").await;
    assert!(
        !save_enabled(&c).await,
        "no save while the definition has a problem"
    );
    type_into(&c, "textarea[name=prompt]", "}}").await;
    until(&c, "the preview", |c| async move {
        text_of(&c, "#preview-user").await == "Hello Ada"
    })
    .await;
    shot(&c, 1280, "editor-preview").await;
    assert!(save_enabled(&c).await, "a valid definition can be saved");
    click(&c, "#try").await;
    until(&c, "the model's answer", |c| async move {
        !text_of(&c, "#answer-text").await.is_empty()
    })
    .await;
    shot(&c, 1280, "editor-tried").await;
    click(&c, "#save").await;
    until(&c, "the saved application", |c| async move {
        path_of(&c).await == "/ui/applications/ui-greeter"
    })
    .await;
    shot(&c, 1280, "application").await;

    // Run it once: the first call fails for good, the retry completes.
    type_into(
        &c,
        "textarea[name='input:Who']",
        "Ada [[mock:fatal-first=1]]",
    )
    .await;
    click(&c, "form[action$='/run'] button").await;
    until(&c, "the job's page", |c| async move {
        path_of(&c).await.starts_with("/ui/jobs/")
    })
    .await;
    let job_page = path_of(&c).await;
    reload_until(&c, ".state.failed").await;
    shot(&c, 1280, "job-failed").await;
    click(&c, "form[action$='/retry'] button").await;
    reload_until(&c, ".state.completed").await;
    assert_eq!(path_of(&c).await, job_page);
    assert_eq!(
        text_of(&c, "#prompt-user").await,
        "Hello Ada [[mock:fatal-first=1]]",
        "the job's prompt, rendered"
    );
    shot(&c, 1280, "job-completed").await;

    // The overview refreshes itself: a job finished elsewhere shows up without a reload.
    c.goto(&format!("{base}/ui/")).await.unwrap();
    let before = text_of(&c, ".tile.ok .n").await;
    let job = app.create_job("ui-greeter", &[("Who", &["Linus"])]).await;
    app.wait_finished(job["id"].as_str().unwrap()).await;
    until(&c, "the overview's own refresh", |c| {
        let before = before.clone();
        async move { text_of(&c, ".tile.ok .n").await != before }
    })
    .await;

    // A batch with one bad item, seen in the lists and on its page.
    let items = json!({"items": [
        {"custom_id": "good", "inputs": [{"id": "Who", "value": ["Grace"]}]},
        {"custom_id": "bad", "inputs": [{"id": "Nobody", "value": ["x"]}]},
    ]});
    let batch: Value = app
        .create_batch("ui-greeter", items)
        .await
        .json()
        .await
        .unwrap();
    let batch_id = batch["id"].as_str().unwrap().to_owned();
    app.wait_batch(&batch_id).await;

    let pages = [
        ("overview", "/ui/".to_owned()),
        ("applications", "/ui/applications".to_owned()),
        ("application", "/ui/applications/ui-greeter".to_owned()),
        ("editor", "/ui/applications/ui-greeter/edit".to_owned()),
        ("jobs", "/ui/jobs?application=ui-greeter".to_owned()),
        ("job", job_page.clone()),
        ("batches", "/ui/batches".to_owned()),
        ("batch", format!("/ui/batches/{batch_id}")),
    ];
    for width in [1280, 390] {
        c.set_window_size(width, 900).await.unwrap();
        for (name, path) in &pages {
            c.goto(&format!("{base}{path}")).await.unwrap();
            c.find(Locator::Css("nav")).await.unwrap();
            if *name == "editor" {
                until(&c, "the editor's check", |c| async move {
                    text_of(&c, "#status").await == "Valid."
                })
                .await;
            }
            shot(&c, width, name).await;
        }
    }
    assert!(
        text_of(&c, "main").await.contains("bad"),
        "the refused item is listed"
    );

    // Log out, and be refused.
    c.set_window_size(1280, 900).await.unwrap();
    click(&c, "form.logout button").await;
    until(&c, "the log-in after log-out", |c| async move {
        path_of(&c).await == "/ui/login"
    })
    .await;
    c.goto(&format!("{base}/ui/jobs")).await.unwrap();
    assert_eq!(path_of(&c).await, "/ui/login", "refused after log-out");

    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "the browser's console: {errors:#?}");
    c.close().await.unwrap();
}

#[tokio::test]
async fn the_overview_draws_its_charts_in_a_real_browser_without_a_console_error() {
    let Some(driver) = driver().await else {
        return;
    };
    let app = helpers::spawn_app().await;
    let base = app.base.clone();
    // Jobs finished (two completed, one failed), rolled up as the server would once their
    // minute has ended.
    for text in ["one", "two", "[[mock:fatal-first=1]]"] {
        let job = app.create_job("echo", &[("Text", &[text])]).await;
        app.wait_finished(job["id"].as_str().unwrap()).await;
    }
    crate::ui_ops::roll_up_now(&app).await;

    let c = browser(&driver).await;
    c.goto(&format!("{base}/ui/login")).await.unwrap();
    type_into(&c, "input[name=key]", KEY).await;
    click(&c, "main form button[type=submit]").await;
    until(&c, "the overview", |c| async move {
        path_of(&c).await == "/ui/"
    })
    .await;
    for width in [1280, 390] {
        c.set_window_size(width, 1400).await.unwrap();
        c.refresh().await.unwrap();
        c.find(Locator::Css("figure.chart svg rect.failed"))
            .await
            .expect("the failed job's bar");
        shot(&c, width, "overview-charts").await;
    }
    let charts = c.find_all(Locator::Css("figure.chart")).await.unwrap();
    assert_eq!(charts.len(), 6);
    let caption = text_of(&c, "figure.chart figcaption").await;
    assert!(caption.contains("2 completed, 1 failed"), "{caption}");
    let errors = console_errors(&c).await;
    assert!(errors.is_empty(), "the browser's console: {errors:#?}");
    c.close().await.unwrap();
}
