//! Stopping a run and starting it again sends no row twice: Ctrl-C in batches mode, a crash
//! between a batch's 202 and its journal entry, and, against a server without the batch
//! route, Ctrl-C and `kill -9` while job creates are in flight.

use std::time::Duration;

use super::proxy;
use super::{Run, code, csv_records, interrupt, s, totals, wait_stderr};
use crate::helpers::spawn_app;

/// `n` rows of the echo application, each taking the mock `sleep_ms`.
fn slow_rows(n: usize, sleep_ms: u64) -> String {
    let mut text = String::from("custom_id,Text\n");
    for i in 1..=n {
        text += &format!("item-{i},[[mock:sleep={sleep_ms}]] row {i}\n");
    }
    text
}

/// Asserts that `output` holds `n` completed rows in input order.
fn assert_all_done_in_order(output: &std::path::Path, n: usize) {
    let records = csv_records(output);
    assert_eq!(records.len(), n + 1, "{records:?}");
    for (i, record) in records[1..].iter().enumerate() {
        assert_eq!(record[0], format!("item-{}", i + 1), "{records:?}");
        assert_eq!(record[2], "completed", "{record:?}");
        assert!(record[4].ends_with(&format!("row {}", i + 1)), "{record:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_a_batch_run_and_the_same_command_resumes_it_without_sending_twice() {
    let app = spawn_app().await;
    let run = Run::new(&app.base);
    // Slow enough that the run is still following when Ctrl-C arrives, however loaded the machine.
    let input = run.file("slow.csv", &slow_rows(12, 2000));
    let output = run.path("slow.out.csv");
    let args = [
        "batch",
        "run",
        "--app",
        "echo",
        s(&input),
        "--output",
        s(&output),
        "--chunk-size",
        "5",
    ];

    let child = run.start(&args);
    wait_stderr(&child, &["sending: 12 of 12 rows sent"]).await;
    interrupt(&child);
    let out = tokio::task::spawn_blocking(move || child.wait(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(code(&out), 130, "{}", out.all());
    assert!(
        out.stderr.contains("Run the same command again to resume"),
        "{}",
        out.all()
    );
    assert!(!output.exists(), "no output before every row has finished");
    assert_eq!(
        totals(&app).await,
        (12, 3),
        "three batches of at most 5 rows"
    );

    let out = run.cli(&args).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert_all_done_in_order(&output, 12);
    assert_eq!(totals(&app).await, (12, 3), "nothing was sent twice");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_created_but_not_yet_recorded_is_found_by_its_metadata_not_sent_again() {
    let app = spawn_app().await;
    let run = Run::new(&app.base);
    let input = run.file("rows.csv", &slow_rows(4, 0));
    let output = run.path("rows.out.csv");
    let out = run.batch_run("echo", &input, &output).await;
    assert_eq!(code(&out), 0, "{}", out.all());

    // As if the run had died between the server's 202 and writing the batch id down: the
    // journal says the chunk was being sent, not that it was.
    let state = run.path("rows.out.csv.scriptorium-state");
    let journal = std::fs::read_to_string(&state).unwrap();
    assert!(journal.contains("\"sent\""), "{journal}");
    let cut: String = journal
        .lines()
        .filter(|l| !l.contains("\"sent\"") && !l.contains("\"mode\""))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&state, cut).unwrap();
    std::fs::remove_file(&output).unwrap();

    let out = run.batch_run("echo", &input, &output).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert_all_done_in_order(&output, 4);
    assert_eq!(
        totals(&app).await,
        (4, 1),
        "the batch was found, not made again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_batch_route_rows_go_as_single_jobs_and_an_interrupted_run_resumes() {
    let app = spawn_app().await;
    let proxy = proxy::without_batches(&app.base, Duration::from_millis(100)).await;
    let run = Run::new(&proxy.base);
    let input = run.file("rows.csv", &slow_rows(16, 0));
    let output = run.path("rows.out.csv");
    let args = [
        "batch",
        "run",
        "--app",
        "echo",
        s(&input),
        "--output",
        s(&output),
    ];

    // Ctrl-C while creates are in flight: they finish and are recorded, the rest wait.
    let child = run.start(&args);
    wait_stderr(&child, &["sending: "]).await;
    interrupt(&child);
    let out = tokio::task::spawn_blocking(move || child.wait(Duration::from_secs(60)))
        .await
        .unwrap();
    assert_eq!(code(&out), 130, "{}", out.all());
    assert!(out.stderr.contains("has no batch route"), "{}", out.all());

    // `kill -9` while creates are in flight (when some are left): jobs may exist that the
    // journal does not name; their idempotency keys bring them back instead of new ones.
    let child = run.start(&args);
    wait_stderr(&child, &["sending: ", " done: "]).await;
    drop(child.kill_9());

    let out = run.cli(&args).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert_all_done_in_order(&output, 16);
    assert_eq!(totals(&app).await, (16, 0), "16 jobs, no batch, none twice");
}
