//! `scriptorium batch run` (the real binary) against a server the test starts: a CSV run to
//! its end, bad rows, Ctrl-C and resume without a row sent twice, the fallback to single
//! jobs where the batch route answers 404 (through [`proxy`]), and the exit codes; and the
//! small commands (`batch status`, `jobs`, `apps`) with `--json`.

mod proxy;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::helpers::{KEY, TestApp, spawn_app};
use crate::process::{ChildGuard, Finished, command};

mod commands;
mod resume;

/// A folder for a run's files, and the way to start the binary against a server.
struct Run {
    dir: tempfile::TempDir,
    base: String,
}

impl Run {
    fn new(base: &str) -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            base: base.to_owned(),
        }
    }

    /// Writes `text` to the file `name` of the folder.
    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// The file `name` of the folder.
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts the binary with `args`, pointed at the server by `WRITER_BASE_URL` and
    /// `WRITER_API_KEY`.
    fn start(&self, args: &[&str]) -> ChildGuard {
        let mut cmd = command(args);
        cmd.env("WRITER_BASE_URL", &self.base)
            .env("WRITER_API_KEY", KEY);
        ChildGuard::spawn(cmd)
    }

    /// Runs the binary with `args` to its end.
    async fn cli(&self, args: &[&str]) -> Finished {
        let child = self.start(args);
        tokio::task::spawn_blocking(move || child.wait(Duration::from_secs(120)))
            .await
            .unwrap()
    }

    /// `batch run --app APP INPUT --output OUTPUT`.
    async fn batch_run(&self, app: &str, input: &Path, output: &Path) -> Finished {
        self.cli(&[
            "batch",
            "run",
            "--app",
            app,
            s(input),
            "--output",
            s(output),
        ])
        .await
    }
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The exit code, which a signal-killed process has none of.
fn code(finished: &Finished) -> i32 {
    finished.status.code().unwrap_or(-1)
}

/// The records of a CSV output, header first.
fn csv_records(path: &Path) -> Vec<Vec<String>> {
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_path(path)
        .unwrap();
    reader
        .records()
        .map(|r| r.unwrap().iter().map(str::to_owned).collect())
        .collect()
}

/// The echo application's jobs on the server, and its batches.
async fn totals(app: &TestApp) -> (u64, u64) {
    let jobs = app.get_json("/v1/applications/echo/jobs?limit=1").await;
    let batches = app.get_json("/v1/applications/echo/batches?limit=1").await;
    (
        jobs["totalCount"].as_u64().unwrap(),
        batches["totalCount"].as_u64().unwrap(),
    )
}

/// Sends SIGINT (Ctrl-C) to `child`.
fn interrupt(child: &ChildGuard) {
    let status = Command::new("kill")
        .args(["-INT", &child.pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits (at most 60 s) until `child` has printed one of `texts` on stderr.
async fn wait_stderr(child: &ChildGuard, texts: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !texts.iter().any(|t| child.stderr.text().contains(t)) {
        assert!(
            Instant::now() < deadline,
            "none of {texts:?} on stderr within 60 s:\n{}",
            child.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Three products; the second has no custom_id and two values, the third a comma.
const PRODUCTS: &str = "custom_id,Text,Mode\n\
    sku-1,Walnut desk lamp,plain\n\
    ,Oak shelf|Pine shelf,\n\
    sku-3,\"Lamp, brass\",loud\n";

/// The output rows `PRODUCTS` must give, after the header.
fn products_done() -> Vec<Vec<&'static str>> {
    vec![
        vec![
            "sku-1",
            "Walnut desk lamp",
            "plain",
            "completed",
            "Echo of Walnut desk lamp",
            "[mock] Walnut desk lamp mode=plain",
            "",
        ],
        vec![
            "",
            "Oak shelf|Pine shelf",
            "",
            "completed",
            "Echo of Oak shelf",
            "[mock] Oak shelf | Pine shelf",
            "",
        ],
        vec![
            "sku-3",
            "Lamp, brass",
            "loud",
            "completed",
            "Echo of Lamp, brass",
            "[mock] Lamp, brass mode=loud",
            "",
        ],
    ]
}

/// Asserts that `output` is `PRODUCTS` done, in input order.
fn assert_products_done(output: &Path) {
    let records = csv_records(output);
    assert_eq!(
        records[0],
        [
            "custom_id",
            "Text",
            "Mode",
            "status",
            "title",
            "suggestion",
            "error"
        ]
    );
    assert_eq!(records[1..], products_done(), "{records:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_csv_run_completes_every_row_in_input_order_and_exits_0() {
    let app = spawn_app().await;
    let run = Run::new(&app.base);
    let input = run.file("products.csv", PRODUCTS);
    let output = run.path("done.csv");

    let out = run.batch_run("echo", &input, &output).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert_products_done(&output);
    assert!(
        out.stderr
            .contains("3 rows: 3 completed, 0 failed, 0 invalid"),
        "{}",
        out.all()
    );
    assert_eq!(totals(&app).await, (3, 1), "one batch of three jobs");
    let batches = app.get_json("/v1/applications/echo/batches").await;
    let batch = batches["result"][0]["id"].as_str().unwrap();
    assert!(
        out.stderr.contains(&format!("batch {batch}: rows 1 to 3")),
        "the batch is named for `batch status` and `batch cancel`:\n{}",
        out.all()
    );

    // The same command again sends nothing and writes the same output.
    let out = run.batch_run("echo", &input, &output).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    assert_products_done(&output);
    assert_eq!(totals(&app).await, (3, 1));

    // A JSONL output of a JSONL input: one object a row, in input order.
    let items = "{\"custom_id\": \"a\", \"inputs\": [{\"id\": \"Text\", \"value\": [\"one\"]}]}\n\
        {\"inputs\": [{\"id\": \"Text\", \"value\": [\"two\", \"2\"]}, {\"id\": \"Note\", \"value\": []}]}\n";
    let input = run.file("items.jsonl", items);
    let output = run.path("items.out.jsonl");
    let out = run.batch_run("echo", &input, &output).await;
    assert_eq!(code(&out), 0, "{}", out.all());
    let lines: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0]["custom_id"], "a");
    assert_eq!(lines[0]["data"]["suggestion"], "[mock] one");
    assert_eq!(
        lines[1]["custom_id"], "2",
        "a row without one is named by its number"
    );
    assert_eq!(lines[1]["row"], 2);
    assert_eq!(lines[1]["status"], "completed");
    assert_eq!(lines[1]["data"]["suggestion"], "[mock] two | 2");
    let job = app
        .get_json(&format!(
            "/v1/applications/jobs/{}",
            lines[1]["job_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(job["custom_id"], "2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_rows_are_named_by_row_and_column_the_others_complete_and_the_run_exits_1() {
    let app = spawn_app().await;
    let run = Run::new(&app.base);
    let input = run.file(
        "rows.csv",
        "Text,Mode\nfine,plain\nloud one,shout\n,plain\none|two|three|four,\nlast,\n",
    );
    let output = run.path("rows.out.csv");

    let out = run.batch_run("echo", &input, &output).await;
    assert_eq!(code(&out), 1, "{}", out.all());
    for problem in [
        "row 2 (line 3), column 'Mode': 'shout' is not one of: plain, loud",
        "row 3 (line 4), column 'Text': required, but not given",
        "row 4 (line 5), column 'Text': 4 values, where it takes 1 to 3",
    ] {
        assert!(out.stderr.contains(problem), "{problem}\n{}", out.all());
    }
    assert!(
        out.stderr
            .contains("5 rows: 2 completed, 0 failed, 3 invalid (not sent)"),
        "{}",
        out.all()
    );
    let records = csv_records(&output);
    let statuses: Vec<&str> = records[1..].iter().map(|r| r[2].as_str()).collect();
    assert_eq!(
        statuses,
        ["completed", "invalid", "invalid", "invalid", "completed"]
    );
    assert_eq!(records[5][4], "[mock] last");
    assert_eq!(totals(&app).await, (2, 1), "only the good rows were sent");

    // A row that fails on the server is a failed row: exit 1 too.
    let input = run.file("fails.csv", "Text\nok\n[[mock:fail]] no\n");
    let output = run.path("fails.out.csv");
    let out = run.batch_run("single-shot", &input, &output).await;
    assert_eq!(code(&out), 1, "{}", out.all());
    assert!(
        out.stderr
            .contains("2 rows: 1 completed, 1 failed, 0 invalid"),
        "{}",
        out.all()
    );
    let records = csv_records(&output);
    assert_eq!(records[1][1], "completed");
    assert_eq!(records[2][1], "failed");
    assert!(
        !records[2][4].is_empty(),
        "the error is written: {records:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_cannot_start_exits_2_and_sends_nothing() {
    let app = spawn_app().await;
    let run = Run::new(&app.base);
    let input = run.file("typo.csv", "Text,Moode\na,plain\n");
    let output = run.path("typo.out.csv");

    // A header naming no input: the whole file is refused.
    let out = run.batch_run("echo", &input, &output).await;
    assert_eq!(code(&out), 2, "{}", out.all());
    assert!(
        out.stderr
            .contains("column 'Moode' is not an input of application 'echo'"),
        "{}",
        out.all()
    );
    // An unknown application, an output that is not this run's, a server not there.
    let good = run.file("good.csv", "Text\na\n");
    let out = run.batch_run("nope", &good, &output).await;
    assert_eq!(code(&out), 2, "{}", out.all());
    assert!(
        out.stderr.contains("no application 'nope'"),
        "{}",
        out.all()
    );
    let taken = run.file("taken.csv", "somebody's file\n");
    let out = run.batch_run("echo", &good, &taken).await;
    assert_eq!(code(&out), 2, "{}", out.all());
    assert_eq!(
        std::fs::read_to_string(&taken).unwrap(),
        "somebody's file\n"
    );
    let out = run
        .cli(&[
            "batch",
            "run",
            "--app",
            "echo",
            s(&good),
            "--server",
            "http://127.0.0.1:9",
        ])
        .await;
    assert_eq!(code(&out), 2, "{}", out.all());
    assert!(out.stderr.contains("cannot reach"), "{}", out.all());
    assert_eq!(totals(&app).await, (0, 0));
}
