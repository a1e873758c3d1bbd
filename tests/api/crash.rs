//! Crashes and shutdowns of the real binary: a `kill -9` in the middle of a batch loses no
//! accepted job and runs none twice; a SIGTERM gives unfinished jobs back to the queue.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::stream::{self, StreamExt};
use reqwest::{Client, StatusCode};
use serde_json::Value;

use scriptorium::store::{now_micros, rfc3339};

use crate::helpers::{KEY, inputs_body};
use crate::process::{Serve, ServerProcess, client};

const JOBS: usize = 500;

/// Submits one `echo` job with this text; answers its id.
async fn submit(http: &Client, server: &ServerProcess, text: &str) -> String {
    let response = http
        .post(server.url("/v1/applications/echo/jobs"))
        .bearer_auth(KEY)
        .json(&inputs_body(&[("Text", &[text])]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "job {text:?} was not accepted"
    );
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().to_owned()
}

async fn get_json(http: &Client, url: &str) -> Value {
    let response = http.get(url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK, "GET {url}");
    response.json().await.unwrap()
}

/// `totalCount` of the echo jobs with this Writer status (`""` for all).
async fn count(http: &Client, server: &ServerProcess, status: &str) -> u64 {
    let url = server.url(&format!(
        "/v1/applications/echo/jobs?status={status}&limit=1"
    ));
    get_json(http, &url).await["totalCount"].as_u64().unwrap()
}

/// Counts by Writer status, for progress and failure messages.
async fn counts(http: &Client, server: &ServerProcess) -> BTreeMap<&'static str, u64> {
    let mut by_status = BTreeMap::new();
    for status in ["in_progress", "completed", "failed"] {
        by_status.insert(status, count(http, server, status).await);
    }
    by_status
}

/// Every echo job, read page by page (newest first).
async fn list_all(http: &Client, server: &ServerProcess, page: usize) -> Vec<Value> {
    let mut all = Vec::new();
    loop {
        let url = server.url(&format!(
            "/v1/applications/echo/jobs?offset={}&limit={page}",
            all.len()
        ));
        let body = get_json(http, &url).await;
        let result = body["result"].as_array().unwrap().clone();
        let done = result.len() < page;
        all.extend(result);
        if done {
            return all;
        }
    }
}

/// Checks that a completed job's result is its own text and nobody else's.
fn assert_own_result(job: &Value, text: &str, prefix: &str) {
    assert_eq!(job["status"], "completed", "{job}");
    let suggestion = job["data"]["suggestion"]
        .as_str()
        .unwrap_or_else(|| panic!("no suggestion: {job}"));
    assert!(
        suggestion.contains(text),
        "job for {text:?} has someone else's result: {job}"
    );
    assert_eq!(
        suggestion.matches(prefix).count(),
        1,
        "job for {text:?} has a mixed result: {job}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_batch_loses_no_accepted_job() {
    let dir = tempfile::tempdir().unwrap();
    let serve = Serve {
        api_key: Some(KEY),
        args: vec![
            "--mock-latency",
            "200ms",
            "--concurrency",
            "16",
            "--lease",
            "2s",
            "--sqlite-sync",
            "normal",
        ],
        ..Serve::new(dir.path())
    };
    let http = client();
    let server = serve.start();

    // Submit the batch; keep every accepted id with its text.
    let texts: Vec<String> = (0..JOBS).map(|i| format!("crash-job-{i:04}")).collect();
    let submit_started = Instant::now();
    let submitted: Vec<(String, String)> = stream::iter(texts.iter())
        .map(|text| {
            let (http, server) = (&http, &server);
            async move { (submit(http, server, text).await, text.clone()) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let by_id: HashMap<String, String> = submitted.into_iter().collect();
    assert_eq!(by_id.len(), JOBS, "duplicate job ids were answered");
    let submit_took = submit_started.elapsed();

    // Wait until some, but not all, have completed; then kill -9.
    let deadline = Instant::now() + Duration::from_secs(60);
    let completed_before = loop {
        let n = count(&http, &server, "completed").await;
        if n > 0 {
            break n;
        }
        assert!(
            Instant::now() < deadline,
            "no job completed within 60 s: {:?}",
            counts(&http, &server).await
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(
        (completed_before as usize) < JOBS,
        "every job completed before the kill; the test proves nothing (make the batch longer)"
    );
    let killed_at = Instant::now();
    let first_run = server.kill_9();
    assert!(
        !first_run.status.success(),
        "the server was not killed: {}",
        first_run.status
    );

    // Restart on the same data directory and wait for every job to complete.
    let server = serve.start();
    let restart_took = killed_at.elapsed();
    let restarted_at = Instant::now();
    let deadline = restarted_at + Duration::from_secs(120);
    loop {
        let by_status = counts(&http, &server).await;
        if by_status["completed"] as usize == JOBS {
            break;
        }
        let settled = by_status["in_progress"] == 0;
        if settled || Instant::now() >= deadline {
            panic!(
                "not every job completed {}: {by_status:?} (of {JOBS}); server log:\n{}",
                if settled {
                    "(nothing is left in progress)"
                } else {
                    "within 120 s of the restart"
                },
                server.child.stderr.text()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let finish_took = restarted_at.elapsed();
    println!(
        "{JOBS} jobs accepted in {submit_took:?}; kill -9 after {completed_before}/{JOBS} completed; restart took {restart_took:?} \
         (process start to serving: {:?}); the rest finished {finish_took:?} after the restart",
        server.started_in
    );

    // Exactly the accepted jobs, each once, each completed with its own text.
    assert_eq!(
        count(&http, &server, "").await as usize,
        JOBS,
        "totalCount of the list"
    );
    assert_eq!(
        count(&http, &server, "completed").await as usize,
        JOBS,
        "completed count"
    );
    assert_eq!(count(&http, &server, "failed").await, 0, "failed count");
    assert_eq!(
        count(&http, &server, "in_progress").await,
        0,
        "in_progress count"
    );

    let listed = list_all(&http, &server, 100).await;
    assert_eq!(
        listed.len(),
        JOBS,
        "a full paged listing has {} jobs",
        listed.len()
    );
    let mut seen = HashSet::new();
    for job in &listed {
        let id = job["id"].as_str().unwrap();
        assert!(seen.insert(id.to_owned()), "job {id} is listed twice");
        let text = by_id
            .get(id)
            .unwrap_or_else(|| panic!("job {id} was never submitted: {job}"));
        assert_own_result(job, text, "crash-job-");
    }
    assert_eq!(seen.len(), by_id.len());

    let checked: Vec<()> = stream::iter(by_id.iter())
        .map(|(id, text)| {
            let (http, server) = (&http, &server);
            async move {
                let job = get_json(http, &server.url(&format!("/v1/applications/jobs/{id}"))).await;
                assert_eq!(job["id"], id.as_str());
                assert_own_result(&job, text, "crash-job-");
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(checked.len(), JOBS);
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_gives_unfinished_jobs_back() {
    let dir = tempfile::tempdir().unwrap();
    let slow = Serve {
        api_key: Some(KEY),
        args: vec![
            "--mock-latency",
            "10s",
            "--shutdown-grace",
            "500ms",
            "--sqlite-sync",
            "normal",
        ],
        ..Serve::new(dir.path())
    };
    let http = client();
    let server = slow.start();
    let texts: Vec<String> = (0..3).map(|i| format!("graceful-job-{i}")).collect();
    let mut ids = Vec::new();
    for text in &texts {
        ids.push(submit(&http, &server, text).await);
    }

    // Wait until every job is running (claimed, its model call in progress).
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in &ids {
        loop {
            let job = get_json(&http, &server.url(&format!("/v1/applications/jobs/{id}"))).await;
            if job["state"] == "running" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} was never claimed: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    // SIGTERM: the process stops by itself, successfully, well before the 10 s calls end.
    let terminated_at = Instant::now();
    server.child.sigterm();
    let ServerProcess { child, .. } = server;
    let stopped = child.wait(Duration::from_secs(30));
    let stop_took = terminated_at.elapsed();
    // Server-format wall-clock time (fixed width, UTC), so it compares with `completed_at`.
    let first_run_gone = rfc3339(now_micros());
    assert!(
        stopped.status.success(),
        "SIGTERM did not end the server cleanly ({}):\n{}",
        stopped.status,
        stopped.all()
    );

    // Restart without latency: the jobs complete, and the interrupted attempt was given back
    // (released, not counted as a lapsed lease), so each completes on its first counted attempt.
    let fast = Serve {
        api_key: Some(KEY),
        args: vec!["--mock-latency", "0s", "--sqlite-sync", "normal"],
        ..Serve::new(dir.path())
    };
    let server = fast.start();
    let restarted_at = Instant::now();
    let deadline = restarted_at + Duration::from_secs(60);
    for (id, text) in ids.iter().zip(&texts) {
        let job = loop {
            let job = get_json(&http, &server.url(&format!("/v1/applications/jobs/{id}"))).await;
            if job["status"] != "in_progress" {
                break job;
            }
            assert!(
                Instant::now() < deadline,
                "job {id} did not complete after the restart: {job}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_own_result(&job, text, "graceful-job-");
        assert_eq!(
            job["attempts"], 1,
            "the interrupted attempt was not given back: {job}"
        );
        let completed_at = job["completed_at"].as_str().unwrap();
        assert!(
            completed_at > first_run_gone.as_str(),
            "job {id} was completed by the stopped run (at {completed_at}), not given back: {job}"
        );
    }
    println!(
        "SIGTERM to exit: {stop_took:?}; jobs finished {:?} after the restart",
        restarted_at.elapsed()
    );
    assert_eq!(count(&http, &server, "completed").await, 3);
    server.kill_9();
}

/// Starts a server on `dir` with these flags and the test key.
fn serve_with<'a>(dir: &'a std::path::Path, args: &[&'a str]) -> Serve<'a> {
    Serve {
        api_key: Some(KEY),
        args: args.to_vec(),
        ..Serve::new(dir)
    }
}

/// The engine's failure points: a worker aborted at each (as `kill -9` would) loses no
/// accepted job, and a restart finishes every job once, with its own result. The batch is
/// accepted by a node that works no jobs; a worker then dies the third time a job passes the
/// point; a normal restart finishes the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_at_each_failure_point_loses_nothing_and_finishes_every_job_once() {
    const BATCH: usize = 40;
    for point in [
        "claim-taken",
        "before-model-call",
        "after-model-call",
        "before-outcome-written",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let http = client();
        let api_only = serve_with(
            dir.path(),
            &["--concurrency", "0", "--sqlite-sync", "normal"],
        );
        let server = api_only.start();
        let mut by_id = HashMap::new();
        for i in 0..BATCH {
            let text = format!("{point}-job-{i:02}");
            by_id.insert(submit(&http, &server, &text).await, text);
        }
        server.child.sigterm();
        assert!(server.child.wait(Duration::from_secs(30)).status.success());

        let worker_flags = [
            "--concurrency",
            "4",
            "--mock-latency",
            "20ms",
            "--sqlite-sync",
            "normal",
        ];
        let mut crashing = serve_with(dir.path(), &worker_flags).command();
        crashing.env("SCRIPTORIUM_CRASH_AT", format!("{point}@3"));
        let crashed = crate::process::ChildGuard::spawn(crashing).wait(Duration::from_secs(60));
        assert!(!crashed.status.success(), "{point}: the worker did not die");
        assert!(
            crashed
                .all()
                .contains(&format!("crashing on purpose at {point}")),
            "{point}: the worker did not die at its point:\n{}",
            crashed.all()
        );

        let server = serve_with(dir.path(), &worker_flags).start();
        let deadline = Instant::now() + Duration::from_secs(60);
        while (count(&http, &server, "completed").await as usize) < BATCH {
            assert!(
                Instant::now() < deadline,
                "{point}: not every job completed after the restart: {:?}",
                counts(&http, &server).await
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let jobs = list_all(&http, &server, 100).await;
        assert_eq!(jobs.len(), BATCH, "{point}: exactly the accepted jobs");
        for job in &jobs {
            let text = &by_id[job["id"].as_str().unwrap()];
            assert_own_result(job, text, &format!("{point}-job-"));
        }
        println!("{point}: the worker died there; after a restart all {BATCH} jobs completed once");
    }
}
