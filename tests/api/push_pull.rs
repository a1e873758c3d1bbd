//! `scriptorium apps push` and `apps pull` (the real binary) against a server the test
//! starts: files become applications and versions, and a pulled file pushes back unchanged.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

use crate::helpers::{KEY, TestApp, inputs_body, spawn_app};
use crate::process::{ChildGuard, Finished, command};

/// `greeter.toml`, greeting with `greeting`: a multi-line prompt with quotes, a title, a
/// text and a dropdown input.
fn greeter(greeting: &str) -> String {
    format!(
        r#"id = "greeter"
name = "Greeter"
status = "deployed"
created_at = "2025-01-01T00:00:00Z"
temperature = 0.7
system = "You greet people."
prompt = """
{greeting} {{{{ inputs["Who"][0] }}}},
said "the {{{{ inputs["Tone"][0] if inputs["Tone"] else 'warm' }}}} one"."""
title = """To {{{{ inputs["Who"][0] }}}}"""

[[inputs]]
name = "Who"
input_type = "text"
required = true
options = {{ min_fields = 1, max_fields = 2 }}

[[inputs]]
name = "Tone"
input_type = "dropdown"
required = false
description = "How it sounds"
options = {{ list = ["warm", "dry"] }}
"#
    )
}

/// Runs the binary with `args`, pointed at `app` by `WRITER_BASE_URL` and `WRITER_API_KEY`.
async fn cli(app: &TestApp, args: &[&str]) -> Finished {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let base = app.base.clone();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut cmd = command(&args);
        cmd.env("WRITER_BASE_URL", base).env("WRITER_API_KEY", KEY);
        ChildGuard::spawn(cmd).wait(Duration::from_secs(60))
    })
    .await
    .unwrap()
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

async fn suggestion(app: &TestApp, who: &str) -> String {
    let response = app
        .post("/v1/applications/greeter")
        .json(&inputs_body(&[("Who", &[who])]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["suggestion"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_creates_and_updates_and_a_pulled_file_pushes_back_unchanged() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("greeter.toml");
    std::fs::write(&file, greeter("Hello")).unwrap();
    std::fs::write(
        dir.path().join("hot.toml"),
        "id = \"hot\"\nname = \"Hot\"\nstatus = \"draft\"\ntemperature = 5\nprompt = \"x\"\n",
    )
    .unwrap();

    // A folder: one line per file; the broken one carries the server's message, exit 1.
    let out = cli(&app, &["apps", "push", path(dir.path())]).await;
    assert!(!out.status.success(), "{}", out.all());
    assert!(
        out.stdout.contains("greeter.toml: greeter created v1"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout
            .contains("hot.toml: error: temperature: temperature must be between 0 and 2"),
        "{}",
        out.all()
    );
    assert!(out.stderr.contains("1 of 2 files failed"), "{}", out.all());
    assert_eq!(
        suggestion(&app, "Ada").await,
        "[mock] Hello Ada,\nsaid \"the warm one\"."
    );

    // A changed file is a new version; the same file again makes none.
    std::fs::write(&file, greeter("Hi")).unwrap();
    let out = cli(&app, &["apps", "push", path(&file)]).await;
    assert!(out.status.success(), "{}", out.all());
    assert_eq!(
        out.stdout.trim(),
        format!("{}: greeter updated to v2", path(&file))
    );
    let out = cli(&app, &["apps", "push", path(&file)]).await;
    assert_eq!(
        out.stdout.trim(),
        format!("{}: greeter unchanged (v2)", path(&file))
    );

    // Pulled (to stdout and to a file), it is a valid application file that pushes back
    // unchanged.
    let pulled_dir = tempfile::tempdir().unwrap();
    let pulled = pulled_dir.path().join("greeter.toml");
    let by_flags = [
        "apps",
        "pull",
        "greeter",
        "--output",
        path(&pulled),
        "--server",
        &app.base,
        "--api-key",
        KEY,
    ];
    let out = cli(&app, &by_flags).await;
    assert!(out.status.success(), "{}", out.all());
    let text = std::fs::read_to_string(&pulled).unwrap();
    let out = cli(&app, &["apps", "pull", "greeter"]).await;
    assert_eq!(out.stdout, text.trim_end());
    assert!(
        text.contains("prompt = \"\"\"\nHi {{ inputs[\"Who\"][0] }},\nsaid \"the "),
        "{text}"
    );
    let out = cli(&app, &["apps", "push", path(&pulled)]).await;
    assert_eq!(
        out.stdout.trim(),
        format!("{}: greeter unchanged (v2)", path(&pulled)),
        "{text}"
    );
    let versions = app
        .get_json("/v1/scriptorium/applications/greeter/versions")
        .await;
    assert_eq!(versions["totalCount"], 2, "{versions}");
    let out = cli(&app, &["apps", "validate", path(pulled_dir.path())]).await;
    assert!(out.status.success(), "{}\n{text}", out.all());

    // A provisioned application has no definition to pull; an unknown one is an error.
    let out = cli(&app, &["apps", "pull", "echo"]).await;
    assert!(
        !out.status.success() && out.stderr.contains("provisioned"),
        "{}",
        out.all()
    );
    let out = cli(&app, &["apps", "pull", "nope"]).await;
    assert!(
        !out.status.success() && out.stderr.contains("no application 'nope'"),
        "{}",
        out.all()
    );
}
