//! Applications in a cluster: a change made through one node is served by every other (by
//! PostgreSQL's notifications), and nodes started with different apps folders are reported.
//! Skipped (with a notice) without `SCRIPTORIUM_TEST_POSTGRES_URL`, unless
//! `SCRIPTORIUM_REQUIRE_POSTGRES=1`.

use std::path::Path;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{KEY, fixture_apps, inputs_body};
use crate::pg::{Schema, bootstrap, kill_connections};
use crate::process::{Serve, ServerProcess, client};

const APPS: &str = "/v1/scriptorium/applications";
/// How long a change may take to reach another node before the test fails; the delay the
/// README quotes is the one these tests print.
const CONVERGED: Duration = Duration::from_secs(10);

/// A node on `url` serving the applications in `apps`.
fn start_node(data_dir: &Path, apps: &Path, url: &str) -> ServerProcess {
    let mut serve = Serve::new(data_dir);
    serve.apps = apps.to_owned();
    serve.api_key = Some(KEY);
    serve.args = vec!["--database-url", url];
    serve.start()
}

fn greeter(prompt: &str) -> Value {
    json!({
        "id": "greeter",
        "name": "Greeter",
        "status": "deployed",
        "prompt": prompt,
        "inputs": [{"name": "Who", "input_type": "text", "required": true}],
    })
}

/// The answer of `node` to a synchronous generation of `greeter` for Ada: the status, and
/// the suggestion when there is one.
async fn generate(node: &ServerProcess) -> (StatusCode, Option<String>) {
    let response = client()
        .post(node.url("/v1/applications/greeter"))
        .bearer_auth(KEY)
        .json(&inputs_body(&[("Who", &["Ada"])]))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    (status, body["suggestion"].as_str().map(str::to_owned))
}

/// The status of `node`'s answer to `GET /v1/applications/greeter`.
async fn read(node: &ServerProcess) -> StatusCode {
    let response = client()
        .get(node.url("/v1/applications/greeter"))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    response.status()
}

/// The status of `node`'s answer to a job create on `greeter`.
async fn create_job(node: &ServerProcess) -> StatusCode {
    let response = client()
        .post(node.url("/v1/applications/greeter/jobs"))
        .bearer_auth(KEY)
        .json(&inputs_body(&[("Who", &["Ada"])]))
        .send()
        .await
        .unwrap();
    response.status()
}

/// Asks until `seen` answers true, and prints how long that took from `since` and how many
/// times it asked. Fails after [`CONVERGED`].
async fn converged(what: &str, since: Instant, mut seen: impl AsyncFnMut() -> bool) {
    for asked in 1.. {
        if seen().await {
            let delay = since.elapsed();
            println!("{what}: seen by the other node after {delay:?} (asked {asked} times)");
            return;
        }
        assert!(
            since.elapsed() < CONVERGED,
            "{what}: not seen by the other node within {CONVERGED:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_made_through_one_node_is_served_by_the_other() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let url = schema.url("apps");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(dir_a.path(), &fixture_apps(), &url);
    let b = start_node(dir_b.path(), &fixture_apps(), &url);
    let http = client();

    let response = http
        .post(a.url(APPS))
        .bearer_auth(KEY)
        .json(&greeter("Hello {{ inputs['Who'][0] }}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // B reads it once, so that B holds the organisation's applications in memory.
    assert_eq!(read(&b).await, StatusCode::OK);
    let hello = (StatusCode::OK, Some("[mock] Hello Ada".to_owned()));
    assert_eq!(generate(&b).await, hello);
    assert_eq!(create_job(&b).await, StatusCode::ACCEPTED);

    replace(&a, "Goodbye {{ inputs['Who'][0] }}").await;
    let changed = Instant::now();
    let goodbye = (StatusCode::OK, Some("[mock] Goodbye Ada".to_owned()));
    converged("a new prompt", changed, async || {
        let now = generate(&b).await;
        assert!(now == hello || now == goodbye, "{now:?}");
        now == goodbye
    })
    .await;

    let response = http
        .delete(a.url(&format!("{APPS}/greeter")))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let deleted = Instant::now();
    converged("a deletion", deleted, async || {
        read(&b).await == StatusCode::NOT_FOUND
    })
    .await;
    assert_eq!(create_job(&b).await, StatusCode::NOT_FOUND);
}

/// Replaces `greeter` through `node` with a definition whose prompt is `prompt`.
async fn replace(node: &ServerProcess, prompt: &str) {
    let response = client()
        .put(node.url(&format!("{APPS}/greeter")))
        .bearer_auth(KEY)
        .json(&greeter(prompt))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_lost_its_listen_connection_forgets_what_it_held() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(dir_a.path(), &fixture_apps(), &schema.url("a"));
    let b = start_node(dir_b.path(), &fixture_apps(), &schema.url("b"));
    let response = client()
        .post(a.url(APPS))
        .bearer_auth(KEY)
        .json(&greeter("Hello {{ inputs['Who'][0] }}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    assert_eq!(generate(&b).await.1.as_deref(), Some("[mock] Hello Ada"));

    // The change is made while B does not listen (it waits at least 100 ms to reconnect), so
    // B never hears of it: it must forget everything once it listens again.
    let admin = bootstrap(&schema.base).await;
    assert!(kill_connections(&admin, &schema.app("b")).await >= 1);
    replace(&a, "Goodbye {{ inputs['Who'][0] }}").await;
    converged("a change made while unheard", Instant::now(), async || {
        generate(&b).await.1.as_deref() == Some("[mock] Goodbye Ada")
    })
    .await;
    let log = b.child.stderr.text();
    assert!(log.contains("forgetting all"), "{log}");
}

/// Copies the fixture applications into a new folder.
fn copy_fixture_apps() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_apps()).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
    }
    dir
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_with_another_apps_folder_is_warned_naming_the_differences() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let url = schema.url("folders");
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let apps_a = copy_fixture_apps();
    let apps_b = copy_fixture_apps();
    std::fs::remove_file(apps_b.path().join("draft.toml")).unwrap();
    let echo = apps_b.path().join("echo.toml");
    let text = std::fs::read_to_string(&echo).unwrap();
    std::fs::write(&echo, text.replace("You repeat things.", "You repeat.")).unwrap();

    let a = start_node(dir_a.path(), apps_a.path(), &url);
    let b = start_node(dir_b.path(), apps_b.path(), &url);
    let (log_a, log_b) = (a.child.stderr.text(), b.child.stderr.text());
    assert!(!log_a.contains("apps folder differs"), "{log_a}");
    let warning = log_b
        .lines()
        .find(|line| line.contains("apps folder differs"))
        .unwrap_or_else(|| panic!("no warning:\n{log_b}"));
    let address_a = a.base.trim_start_matches("http://");
    assert!(warning.contains(address_a), "{warning}");
    assert!(warning.contains("'echo' differs"), "{warning}");
    assert!(warning.contains("'unfinished' only there"), "{warning}");
    assert!(!warning.contains("uploads"), "{warning}");
}
