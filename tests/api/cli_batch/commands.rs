//! The small commands: `apps list|show`, `jobs list|get|retry|cancel`, `batch
//! status|results|cancel|retry`, each for a person and with `--json`.

use serde_json::Value;

use super::{Run, code};
use crate::helpers::spawn_app;

/// The JSON a command printed on stdout.
fn json(stdout: &str) -> Value {
    serde_json::from_str(stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_jobs_and_batch_status_print_for_a_person_and_as_json() {
    let app = spawn_app().await;
    let run = Run::new(&app.base);

    let out = run.cli(&["apps", "list", "--json"]).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let ids: Vec<Value> = json(&out.stdout)
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].clone())
        .collect();
    assert!(ids.contains(&Value::from("echo")), "{ids:?}");
    let out = run.cli(&["apps", "show", "echo"]).await;
    assert!(
        out.stdout.contains("Mode") && out.stdout.contains("one of: plain | loud"),
        "{}",
        out.all()
    );

    // A failed job: listed, shown, retried.
    let job = app
        .create_job("single-shot", &[("Text", &["[[mock:fatal-first=1]] x"])])
        .await;
    let id = job["id"].as_str().unwrap().to_owned();
    app.wait_finished(&id).await;
    let out = run
        .cli(&[
            "jobs",
            "list",
            "--app",
            "single-shot",
            "--status",
            "failed",
            "--json",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert_eq!(json(&out.stdout)["result"][0]["id"], id.as_str());
    let out = run.cli(&["jobs", "get", &id]).await;
    assert!(
        out.stdout.contains(&format!("job {id}: failed")),
        "{}",
        out.all()
    );
    assert!(out.stdout.contains("error: "), "{}", out.all());
    let out = run.cli(&["jobs", "retry", &id, "--json"]).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert_eq!(json(&out.stdout)["id"], id.as_str());
    let done = app.wait_finished(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let out = run.cli(&["jobs", "get", &id, "--json"]).await;
    assert_eq!(json(&out.stdout)["status"], "completed");

    // A batch's status.
    let input = run.file("two.csv", "Text\none\n\"two, too\"\n");
    let out = run
        .batch_run("echo", &input, &run.path("two.out.csv"))
        .await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let batches = app.get_json("/v1/applications/echo/batches").await;
    let batch_id = batches["result"][0]["id"].as_str().unwrap().to_owned();
    let out = run.cli(&["batch", "status", &batch_id, "--json"]).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let batch = json(&out.stdout);
    assert_eq!(batch["status"], "completed");
    assert_eq!(batch["counts"]["completed"], 2);
    let out = run.cli(&["batch", "status", &batch_id]).await;
    assert!(
        out.stdout
            .contains("items: 2 total, 2 completed, 0 failed, 0 cancelled, 0 in progress"),
        "{}",
        out.all()
    );

    // Its results, to a file that is never overwritten.
    let results = run.path("results.jsonl");
    let out = run
        .cli(&[
            "batch",
            "results",
            &batch_id,
            "--output",
            results.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let lines: Vec<Value> = std::fs::read_to_string(&results)
        .unwrap()
        .lines()
        .map(json)
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert!(
        lines.iter().all(|l| l["status"] == "completed"),
        "{lines:?}"
    );
    let out = run
        .cli(&[
            "batch",
            "results",
            &batch_id,
            "--output",
            results.to_str().unwrap(),
        ])
        .await;
    assert_eq!(code(&out), 2, "{}", out.all());
    assert!(out.stderr.contains("never overwritten"), "{}", out.all());

    // Unknown ids are the server's 404, exit 2.
    let out = run
        .cli(&["jobs", "get", "00000000-0000-0000-0000-000000000000"])
        .await;
    assert_eq!(code(&out), 2, "{}", out.all());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batch_cancel_retry_and_results_and_jobs_cancel_go_through_the_command_line() {
    let app = spawn_app().await;
    let run = Run::new(&app.base);
    // Calls long enough that the cancel, a process started after the create, lands while
    // they run even on a loaded machine (with 2 s, all three once finished first).
    let slow = |n: usize| serde_json::json!({"inputs": [{"id": "Text", "value": [format!("[[mock:sleep=10000]] {n}")]}]});
    let body = serde_json::json!({"items": [slow(1), slow(2), slow(3)]});
    let created: Value = app.create_batch("echo", body).await.json().await.unwrap();
    let batch_id = created["id"].as_str().unwrap().to_owned();

    let out = run.cli(&["batch", "cancel", &batch_id, "--json"]).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let status = json(&out.stdout)["status"].clone();
    assert!(
        status == "cancelling" || status == "cancelled",
        "{}",
        out.all()
    );
    let path = format!("/v1/applications/batches/{batch_id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while app.get_json(&path).await["status"] != "cancelled" {
        assert!(
            std::time::Instant::now() < deadline,
            "the batch was not cancelled"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Cancelling a batch that has finished is the server's 400: exit 2.
    let out = run.cli(&["batch", "cancel", &batch_id]).await;
    assert_eq!(code(&out), 2, "{}", out.all());

    // Retry runs the cancelled items again, to completion.
    let out = run.cli(&["batch", "retry", &batch_id]).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert!(
        out.stdout
            .contains(&format!("batch {batch_id} of echo: in_progress")),
        "{}",
        out.all()
    );
    app.wait_batch(&batch_id).await;
    let out = run
        .cli(&[
            "batch",
            "results",
            &batch_id,
            "--format",
            "csv",
            "--status",
            "completed",
        ])
        .await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert!(
        lines[0].ends_with("custom_id,status,title,suggestion,error"),
        "{}",
        out.all()
    );
    assert_eq!(lines.len(), 4, "{}", out.all());

    // A single job, cancelled.
    let job = app
        .create_job("echo", &[("Text", &["[[mock:sleep=30000]] alone"])])
        .await;
    let id = job["id"].as_str().unwrap();
    let out = run.cli(&["jobs", "cancel", id, "--json"]).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let cancelled = json(&out.stdout);
    assert_eq!(cancelled["id"], id);
    let state = cancelled["state"].as_str().unwrap_or_default();
    assert!(state == "cancelling" || state == "cancelled", "{cancelled}");
}
