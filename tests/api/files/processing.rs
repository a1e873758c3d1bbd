//! Text extraction: each document type's text reaching the prompt, unsupported files and
//! retries, jobs waiting for a file in progress, files a dead process left in progress, and a
//! file deleted under a queued job.

use std::path::Path;
use std::time::Duration;

use scriptorium::config::ServeOptions;
use scriptorium::files::blobs::{BlobConfig, Blobs};
use scriptorium::store::{FileId, FileInserted, FileLease, FileProcessed, NewFile, Store};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app, spawn_in, spawn_with};

/// The text each fixture document must yield (as the `uploads` app shows it to the model).
const EXTRACTED: &[(&str, &str, &str)] = &[
    (
        "notes.txt",
        "txt",
        "Meeting notes: ship the beta on Friday.",
    ),
    ("readme.md", "md", "# Plan"),
    ("prices.csv", "csv", "item,price\nbottle,12"),
    ("page.html", "html", "Welcome"),
    ("report.pdf", "pdf", "Quarterly revenue grew"),
    (
        "lease.docx",
        "docx",
        "The tenant shall pay\nrent & deposit monthly.",
    ),
];

#[tokio::test]
async fn each_document_type_yields_its_text_to_the_prompt() {
    let app = spawn_app().await;
    for (name, kind, needle) in EXTRACTED {
        let file = app.upload_fixture(name).await;
        assert_eq!(file["status"], "completed", "{file}");
        assert_eq!(file["type"], *kind);
        let id = file["id"].as_str().unwrap();
        let job = app.create_job("uploads", &[("Contract", &[id])]).await;
        let done = app.wait_finished(job["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");
        let text = done["data"]["suggestion"].as_str().unwrap();
        assert!(text.contains(&format!("<<{name}|{kind}: ")), "{text}");
        assert!(text.contains(needle), "{name}: {needle:?} not in {text}");
    }
    // The html's script and style are not text.
    let html = app.upload_fixture("page.html").await;
    let id = html["id"].as_str().unwrap();
    let job = app.create_job("uploads", &[("Contract", &[id])]).await;
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    let text = done["data"]["suggestion"].as_str().unwrap();
    assert!(text.contains("Fish & chips"), "{text}");
    assert!(!text.contains("alert"), "{text}");
}

#[tokio::test]
async fn an_unsupported_file_fails_with_a_reason_and_jobs_naming_it_are_refused() {
    let app = spawn_app().await;
    let file = app.upload_fixture("legacy.doc").await;
    assert_eq!(file["status"], "failed", "{file}");
    assert_eq!(file["type"], "doc");
    let reason = file["error"].as_str().unwrap();
    assert!(reason.contains(".doc"), "{reason}");
    let id = file["id"].as_str().unwrap();
    let response = app.submit("uploads", &[("Contract", &[id])]).await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(
        description.contains("Contract") && description.contains("could not be processed"),
        "{description}"
    );

    // Retry processes it again (and it fails again, for the same reason).
    let response = app
        .post("/v1/files/retry")
        .json(&json!({"file_ids": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
    let again = app.wait_processed(id).await;
    assert_eq!(again["status"], "failed");
    // Ids that name no file are not retried, and not an error (as Writer's reference answers).
    let response = app
        .post("/v1/files/retry")
        .json(&json!({"file_ids": ["no-such-file"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"success": true})
    );
    let response = app
        .post("/v1/files/retry")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
}

/// Records a file as `in_progress` with its bytes in the data directory, as an upload does,
/// but with nothing processing it (as after a crash, or while another node extracts it).
async fn unprocessed_file(app_dir: &Path, store: &dyn Store, name: &str, bytes: &[u8]) -> FileId {
    let id = FileId::generate();
    let blobs = Blobs::open(&BlobConfig::Local, app_dir).unwrap();
    blobs
        .put(&id.to_string(), bytes.to_vec().into())
        .await
        .unwrap();
    let file = NewFile {
        id,
        org: "default".into(),
        name: name.into(),
        kind: "txt".into(),
        size: bytes.len() as i64,
        graph_ids: Vec::new(),
    };
    let inserted = store.insert_file(file, i64::MAX).await.unwrap();
    assert!(matches!(inserted, FileInserted::Stored(_)));
    id
}

/// A server that extracts no files itself, so the test plays the extracting node.
async fn spawn_without_extraction() -> TestApp {
    spawn_with(ServeOptions {
        extract_concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await
}

/// Claims the file `id` for extraction, as another node's worker would, for `lease`.
async fn claim(store: &dyn Store, id: FileId, lease: Duration) -> FileLease {
    let claimed = store.claim_files(100, lease, 3).await.unwrap();
    claimed
        .into_iter()
        .find(|c| c.lease.id == id)
        .expect("the file is claimable")
        .lease
}

#[tokio::test]
async fn a_job_whose_file_is_still_in_progress_waits_for_it() {
    let app = spawn_without_extraction().await;
    let store = app.store().await;
    let id = unprocessed_file(app.data_dir(), store.as_ref(), "slow.txt", b"slow words").await;
    let lease = claim(store.as_ref(), id, Duration::from_secs(60)).await;
    // Accepted: a file in progress is waited for, not refused.
    let job = app
        .create_job("uploads", &[("Contract", &[&id.to_string()])])
        .await;
    let job_id = job["id"].as_str().unwrap();
    let running = |job: &Value| job["state"] == "running" || job["status"] != "in_progress";
    let waiting = app
        .wait_job(job_id, "running", Duration::from_secs(20), running)
        .await;
    assert_eq!(waiting["status"], "in_progress", "{waiting}");
    assert_eq!(waiting["state"], "running", "{waiting}");
    // Another process (here: the test) finishes the file; the job picks it up.
    let processed = FileProcessed::Completed {
        text: Some("text extracted elsewhere".into()),
        word_count: Some(3),
    };
    assert!(store.file_processed(lease, processed).await.unwrap());
    let done = app.wait_finished(job_id).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["attempts"], 1, "waiting used no attempt: {done}");
    let text = done["data"]["suggestion"].as_str().unwrap();
    assert!(
        text.contains("<<slow.txt|txt: text extracted elsewhere>>"),
        "{text}"
    );

    // The word limit is checked again once the text is known.
    let id = unprocessed_file(app.data_dir(), store.as_ref(), "wordy.txt", b"x").await;
    let lease = claim(store.as_ref(), id, Duration::from_secs(60)).await;
    let job = app
        .create_job("uploads", &[("Contract", &[&id.to_string()])])
        .await;
    let processed = FileProcessed::Completed {
        text: Some("many ".repeat(60)),
        word_count: Some(60),
    };
    store.file_processed(lease, processed).await.unwrap();
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("60 words, over the limit of 50"), "{error}");
}

/// A file whose extraction a process claimed and never finished (it died) is extracted once
/// its lease is free again: at the next start on SQLite, when the lease lapses on PostgreSQL.
#[tokio::test]
async fn files_left_in_progress_by_a_dead_process_are_processed_after_all() {
    let app = spawn_without_extraction().await;
    let store = app.store().await;
    let id = unprocessed_file(
        app.data_dir(),
        store.as_ref(),
        "late.txt",
        b"processed after all",
    )
    .await;
    claim(store.as_ref(), id, Duration::from_secs(1)).await;
    drop(store);
    let storage = app.stop().await;
    let app = spawn_in(storage, ServeOptions::default()).await;
    let done = app.wait_processed(&id.to_string()).await;
    assert_eq!(done["status"], "completed", "{done}");
    let job = app
        .create_job("uploads", &[("Contract", &[&id.to_string()])])
        .await;
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    assert!(
        done["data"]["suggestion"]
            .as_str()
            .unwrap()
            .contains("processed after all"),
        "{done}"
    );
}

#[tokio::test]
async fn deleting_a_file_a_queued_job_needs_fails_that_job_clearly() {
    // A node that serves the API but works no jobs, so the job stays queued.
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await;
    let doc = app.upload_fixture("notes.txt").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let image = app.upload_fixture("dot.png").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let both = app.create_job("uploads", &[("Contract", &[&doc])]).await;
    let picture = app.create_job("uploads", &[("Picture", &[&image])]).await;
    for id in [&doc, &image] {
        let response = app.delete(&format!("/v1/files/{id}")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let storage = app.stop().await;
    let app = spawn_in(storage, ServeOptions::default()).await;
    for (job, id) in [(&both, &doc), (&picture, &image)] {
        let done = app.wait_finished(job["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert_eq!(
            done["attempts"], 1,
            "a deleted file is not worth a retry: {done}"
        );
        let error = done["error"].as_str().unwrap();
        assert!(
            error.contains(&format!("file '{id}' was deleted")),
            "{error}"
        );
    }
}

/// A burst of uploads is extracted by the worker at most `--extract-concurrency` at once,
/// and every file ends completed.
#[tokio::test]
async fn a_burst_of_uploads_is_extracted_within_the_concurrency_limit() {
    let app = spawn_with(ServeOptions {
        extract_concurrency: Some(2),
        ..ServeOptions::default()
    })
    .await;
    let uploads = (0..120).map(|n| {
        let app = &app;
        async move {
            app.upload(&format!("note-{n}.txt"), format!("note number {n}"))
                .await
        }
    });
    let files = futures_util::future::join_all(uploads).await;
    for file in &files {
        let done = app.wait_processed(file["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");
    }
    let load: serde_json::Value = app
        .get("/v1/scriptorium/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(load["extract_concurrency"], 2, "{load}");
    let peak = load["extracting_peak"].as_u64().unwrap();
    assert!((1..=2).contains(&peak), "at most 2 at once: {load}");
    assert_eq!(load["extracting"], 0, "{load}");
}
