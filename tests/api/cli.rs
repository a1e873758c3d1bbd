//! The command line, run as the real binary: `keys` beside a running server, `apps validate`,
//! and `serve` refusing a broken applications folder.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::inputs_body;
use crate::process::{ChildGuard, START_TIMEOUT, Serve, assert_writer_error, client, run_cli};

/// The key in a first start's stdout: the one line that is a `scr_` key.
fn key_line(line: &str) -> Option<String> {
    let t = line.trim();
    (t.starts_with("scr_") && !t.contains(char::is_whitespace)).then(|| t.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_create_prints_the_key_alone_on_the_last_line_and_it_works_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let http = client();

    // A first start without SCRIPTORIUM_API_KEY prints a key once, and it works.
    let server = Serve::new(dir.path()).start();
    let first_key = server
        .wait_stdout(Duration::from_secs(10), key_line)
        .unwrap_or_else(|| {
            panic!(
                "no first-start key on stdout:\n{}",
                server.child.stdout.text()
            )
        });
    let apps = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(apps.status(), StatusCode::OK);

    // `keys create` beside the running server: the key alone on the last line, usable at once.
    let created = run_cli(&[
        "keys",
        "create",
        "--name",
        "ci",
        "--org",
        "acme",
        "--data-dir",
        &data_dir,
    ]);
    assert!(
        created.status.success(),
        "keys create failed:\n{}",
        created.all()
    );
    let last = created.stdout.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("scr_"),
        "the last line is not a key: {last:?}\n{}",
        created.all()
    );
    assert_eq!(
        last,
        last.trim(),
        "the key is not alone on its line: {last:?}"
    );
    assert!(
        !last.contains(char::is_whitespace),
        "the key is not alone on its line: {last:?}"
    );
    let acme_key = last.to_owned();
    assert_eq!(
        created.stdout.matches(&acme_key).count(),
        1,
        "the key is printed more than once"
    );
    let acme_id = &acme_key[..12];
    let first_id = &first_key[..12];
    assert!(
        created.stdout.contains(acme_id),
        "the key id is not named:\n{}",
        created.stdout
    );
    let apps = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        apps.status(),
        StatusCode::OK,
        "a new key is not accepted at once"
    );

    // `keys list`: both ids and orgs, never a secret.
    let listed = run_cli(&["keys", "list", "--data-dir", &data_dir]);
    assert!(
        listed.status.success(),
        "keys list failed:\n{}",
        listed.all()
    );
    let row = |id: &str| {
        listed
            .stdout
            .lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("no row for key {id} in:\n{}", listed.stdout))
            .to_owned()
    };
    let first_row = row(first_id);
    let acme_row = row(acme_id);
    assert!(
        first_row.split_whitespace().any(|w| w == "default"),
        "{first_row}"
    );
    assert!(
        acme_row.split_whitespace().any(|w| w == "acme"),
        "{acme_row}"
    );
    assert!(acme_row.split_whitespace().any(|w| w == "ci"), "{acme_row}");
    assert!(
        acme_row.trim_end().ends_with(" -"),
        "a fresh key is listed as revoked: {acme_row}"
    );
    for secret in [&first_key, &acme_key] {
        assert!(
            !listed.all().contains(secret.as_str()),
            "keys list shows a secret"
        );
    }

    // Organisations are isolated: a default-org job is invisible to acme.
    let created_job = http
        .post(server.url("/v1/applications/echo/jobs"))
        .bearer_auth(&first_key)
        .json(&inputs_body(&[("Text", &["for the default org only"])]))
        .send()
        .await
        .unwrap();
    assert_eq!(created_job.status(), StatusCode::ACCEPTED);
    let job: Value = created_job.json().await.unwrap();
    let job_id = job["id"].as_str().unwrap();
    let own = http
        .get(server.url(&format!("/v1/applications/jobs/{job_id}")))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), StatusCode::OK);
    let other = http
        .get(server.url(&format!("/v1/applications/jobs/{job_id}")))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_writer_error(other, 404, "NotFound").await;
    let acme_list: Value = http
        .get(server.url("/v1/applications/echo/jobs"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(acme_list["totalCount"], 0, "{acme_list}");
    assert_eq!(acme_list["result"], json!([]), "{acme_list}");
    let default_list: Value = http
        .get(server.url("/v1/applications/echo/jobs"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(default_list["totalCount"], 1, "{default_list}");

    // `keys revoke`: the key is refused at once, in Writer's error shape; the other still works.
    let revoked = run_cli(&["keys", "revoke", acme_id, "--data-dir", &data_dir]);
    assert!(
        revoked.status.success(),
        "keys revoke failed:\n{}",
        revoked.all()
    );
    let refused = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_writer_error(refused, 401, "Unauthorized").await;
    let still = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(still.status(), StatusCode::OK);
    let again = run_cli(&["keys", "revoke", acme_id, "--data-dir", &data_dir]);
    assert!(
        !again.status.success(),
        "revoking a revoked key succeeded:\n{}",
        again.all()
    );
    let listed = run_cli(&["keys", "list", "--data-dir", &data_dir]);
    let acme_row = listed
        .stdout
        .lines()
        .find(|l| l.starts_with(acme_id))
        .unwrap_or_default()
        .to_owned();
    assert!(
        !acme_row.trim_end().ends_with(" -"),
        "a revoked key is not listed as revoked: {acme_row}"
    );

    // The first start printed exactly one key; a restart prints none and the keys persist.
    let first_run = server.kill_9();
    let keys_printed: Vec<String> = first_run.stdout.lines().filter_map(key_line).collect();
    assert_eq!(
        keys_printed,
        vec![first_key.clone()],
        "first start stdout:\n{}",
        first_run.stdout
    );

    let server = Serve::new(dir.path()).start();
    let works = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&first_key)
        .send()
        .await
        .unwrap();
    assert_eq!(
        works.status(),
        StatusCode::OK,
        "the first key does not survive a restart"
    );
    let refused = http
        .get(server.url("/v1/applications"))
        .bearer_auth(&acme_key)
        .send()
        .await
        .unwrap();
    assert_writer_error(refused, 401, "Unauthorized").await;
    let second_run = server.kill_9();
    assert!(
        !second_run.stdout.contains("scr_") && !second_run.stdout.contains("No API key existed"),
        "a restart printed a new first-start key:\n{}",
        second_run.stdout
    );
}

#[test]
fn apps_validate_accepts_the_shipped_examples() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/apps");
    let count = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            name.ends_with(".toml") && !name.starts_with('.')
        })
        .count();
    assert!(count > 0, "no shipped examples in {dir}");
    let out = run_cli(&["apps", "validate", dir]);
    assert!(
        out.status.success(),
        "apps validate failed on the shipped examples:\n{}",
        out.all()
    );
    assert!(
        out.stdout.contains(&format!("{count} applications OK")),
        "expected `{count} applications OK`:\n{}",
        out.all()
    );
}

/// A folder with two broken applications: `broken.toml` (an unclosed `{{` on line 5) and
/// `undeclared.toml` (an undeclared input on line 5).
fn broken_apps() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let app = |id: &str, prompt: &str| {
        format!(
            "id = \"{id}\"\nname = \"{id}\"\nstatus = \"deployed\"\ncreated_at = \"2025-01-01T00:00:00Z\"\n\
             prompt = '{prompt}'\n\n[[inputs]]\nname = \"Text\"\ninput_type = \"text\"\nrequired = true\n"
        )
    };
    std::fs::write(
        dir.path().join("broken.toml"),
        app("broken", r#"{{ inputs["Text"] "#),
    )
    .unwrap();
    std::fs::write(
        dir.path().join("undeclared.toml"),
        app("undeclared", r#"{{ inputs["Missing"] | join(" ") }}"#),
    )
    .unwrap();
    dir
}

#[test]
fn apps_validate_names_the_file_and_line_of_a_broken_template() {
    let dir = broken_apps();
    let out = run_cli(&["apps", "validate", dir.path().to_str().unwrap()]);
    assert!(
        !out.status.success(),
        "apps validate accepted broken files:\n{}",
        out.all()
    );
    let all = out.all();
    for file in ["broken.toml", "undeclared.toml"] {
        let named = all.lines().any(|l| {
            l.split_once(&format!("{file}:")).is_some_and(|(_, rest)| {
                let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
                digits == "5" && rest[digits.len()..].starts_with(": ")
            })
        });
        assert!(named, "no `{file}:5: reason` line:\n{all}");
    }
    assert!(
        all.contains("Missing"),
        "the undeclared input is not named:\n{all}"
    );
}

#[test]
fn serve_refuses_to_start_on_an_invalid_apps_folder() {
    let apps = broken_apps();
    let data = tempfile::tempdir().unwrap();
    let serve = Serve {
        apps: apps.path().to_path_buf(),
        ..Serve::new(data.path())
    };
    let out = ChildGuard::spawn(serve.command()).wait(START_TIMEOUT);
    assert!(
        !out.status.success(),
        "serve started on broken applications:\n{}",
        out.all()
    );
    assert!(
        !out.stderr.contains("scriptorium is serving"),
        "{}",
        out.all()
    );
    let all = out.all();
    assert!(
        all.contains("broken.toml:5:"),
        "the broken file is not named:\n{all}"
    );
    assert!(
        all.contains("undeclared.toml:5:"),
        "the broken file is not named:\n{all}"
    );
}
