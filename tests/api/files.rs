//! The Files API end to end: uploads in every Content-Disposition form, type detection, list
//! paging and filters, download, delete, retry, limits, tenancy, text extraction of each
//! document type, and file and media inputs reaching the model.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use scriptorium::config::ServeOptions;
use scriptorium::files::blobs::{BlobConfig, Blobs};
use scriptorium::providers::config::{ProviderConfig, ProviderKind};
use scriptorium::store::{FileInserted, FileProcessed, NewFile, Store};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::helpers::{
    TestApp, assert_error, fixture_file, inputs_body, spawn_app, spawn_in, spawn_with,
};
use crate::providers::start_llm;

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

async fn upload_with_disposition(
    app: &TestApp,
    disposition: &str,
    body: &[u8],
) -> reqwest::Response {
    app.post("/v1/files")
        .header("content-type", "text/plain")
        .header("content-disposition", disposition)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_content_disposition_form_names_the_file() {
    let app = spawn_app().await;
    for (header, name) in [
        ("attachment; filename=a.txt", "a.txt"),
        ("attachment; filename=\"a b.txt\"", "a b.txt"),
        ("attachment; filename*=utf-8''a%20b%C3%A9.txt", "a bé.txt"),
    ] {
        let response = upload_with_disposition(&app, header, b"hello there").await;
        assert_eq!(response.status(), 200, "{header}");
        let file: Value = response.json().await.unwrap();
        assert_eq!(file["name"], name);
        assert_eq!(file["status"], "in_progress");
        assert_eq!(file["graph_ids"], json!([]));
        assert!(
            file["created_at"].as_str().unwrap().ends_with('Z'),
            "{file}"
        );
        let done = app.wait_processed(file["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{done}");
        assert_eq!(done["name"], name);
    }
    for header in ["attachment", "inline; name=x"] {
        let response = upload_with_disposition(&app, header, b"x").await;
        let description = assert_error(response, 400, "BadRequest").await;
        assert!(description.contains("Content-Disposition"), "{description}");
    }
    let response = app.post("/v1/files").body("x").send().await.unwrap();
    assert_error(response, 400, "BadRequest").await;
    let response = upload_with_disposition(&app, "attachment; filename=e.txt", b"").await;
    assert_error(response, 400, "BadRequest").await;
}

#[tokio::test]
async fn the_type_comes_from_the_bytes_and_the_name_never_from_content_type() {
    let app = spawn_app().await;
    // A PNG named .txt and sent as text/plain is an image.
    let png = app.upload("photo.txt", fixture_file("dot.png")).await;
    assert_eq!(png["type"], "png");
    // A PDF without an extension is a PDF.
    let pdf = app.upload("scan", fixture_file("report.pdf")).await;
    assert_eq!(pdf["type"], "pdf");
    let docx = app.upload("lease", fixture_file("lease.docx")).await;
    assert_eq!(docx["type"], "docx");
    let text = app.upload("notes.md", b"# hi".to_vec()).await;
    assert_eq!(text["type"], "md");
    for (file, mime) in [
        (&png, "image/png"),
        (&pdf, "application/pdf"),
        (
            &docx,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        ),
        (&text, "text/markdown"),
    ] {
        let id = file["id"].as_str().unwrap();
        let response = app
            .get(&format!("/v1/files/{id}/download"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(content_type.starts_with(mime), "{content_type} for {file}");
    }
}

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

#[tokio::test]
async fn the_list_pages_by_cursor_and_filters_by_status_type_and_graph() {
    let app = spawn_app().await;
    let graph = "6f3b7a4e-8e1d-4c43-9d2b-1b2c3d4e5f60";
    let mut ids = Vec::new();
    for name in [
        "notes.txt",
        "report.pdf",
        "dot.png",
        "legacy.doc",
        "readme.md",
    ] {
        ids.push(
            app.upload_fixture(name).await["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let in_graph = app
        .post(&format!("/v1/files?graphId={graph}"))
        .header("content-disposition", "attachment; filename=g.txt")
        .body("graph text")
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(in_graph["graph_ids"], json!([graph]));
    let response = app
        .post("/v1/files?graphId=not-a-uuid")
        .header("content-disposition", "attachment; filename=g.txt")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
    let graph_file = in_graph["id"].as_str().unwrap().to_owned();
    app.wait_processed(&graph_file).await;
    ids.push(graph_file.clone());

    let list = |query: String| {
        let app = &app;
        async move {
            let response = app.get(&format!("/v1/files{query}")).send().await.unwrap();
            assert_eq!(response.status(), 200, "{query}");
            response.json::<Value>().await.unwrap()
        }
    };
    let page_ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();

    // Walk forward two at a time, newest first.
    let mut seen = Vec::new();
    let mut query = "?limit=2".to_owned();
    loop {
        let page = list(query.clone()).await;
        seen.extend(page_ids(&page));
        assert_eq!(page["first_id"], page["data"][0]["id"]);
        if page["has_more"] == false {
            break;
        }
        query = format!("?limit=2&after={}", page["last_id"].as_str().unwrap());
    }
    assert_eq!(seen, newest_first);
    // Oldest first, and backwards with `before`.
    assert_eq!(page_ids(&list("?order=asc&limit=100".into()).await), ids);
    let before = list(format!("?limit=2&before={}", ids[2])).await;
    assert_eq!(page_ids(&before), [ids[4].clone(), ids[3].clone()]);
    assert_eq!(before["has_more"], true);
    let before_asc = list(format!("?order=asc&limit=5&before={}", ids[2])).await;
    assert_eq!(page_ids(&before_asc), ids[..2]);
    assert_eq!(before_asc["has_more"], false);
    // Filters.
    assert_eq!(
        page_ids(&list("?status=failed".into()).await),
        [ids[3].clone()]
    );
    assert_eq!(
        list("?status=completed".into()).await["data"]
            .as_array()
            .unwrap()
            .len(),
        5
    );
    assert_eq!(
        page_ids(&list("?file_types=pdf,png".into()).await),
        [ids[2].clone(), ids[1].clone()]
    );
    assert_eq!(
        page_ids(&list("?file_types=txt".into()).await),
        [graph_file.clone(), ids[0].clone()]
    );
    assert_eq!(
        page_ids(&list(format!("?graph_id={graph}")).await),
        [graph_file]
    );
    let empty = list("?status=in_progress".into()).await;
    assert_eq!(empty["data"], json!([]));
    assert_eq!(empty["has_more"], false);
    for clamped in ["?limit=0", "?limit=101"] {
        let page = list(clamped.into()).await;
        assert_eq!(
            page_ids(&page).len(),
            ids.len(),
            "{clamped}: every file on one page"
        );
    }
    for bad in [
        "?order=up",
        "?status=done",
        "?file_types=exe",
        "?graph_id=g",
    ] {
        let response = app.get(&format!("/v1/files{bad}")).send().await.unwrap();
        assert_error(response, 400, "BadRequest").await;
    }
}

#[tokio::test]
async fn download_gives_the_bytes_back_and_delete_makes_the_file_404() {
    let app = spawn_app().await;
    let bytes = fixture_file("report.pdf");
    let file = app.upload("Q3 report.pdf", bytes.clone()).await;
    let id = file["id"].as_str().unwrap();
    let response = app
        .get(&format!("/v1/files/{id}/download"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/pdf");
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename*=utf-8''Q3%20report.pdf"
    );
    assert_eq!(response.bytes().await.unwrap().as_ref(), bytes.as_slice());

    let response = app.delete(&format!("/v1/files/{id}")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.json::<Value>().await.unwrap(),
        json!({"id": id, "deleted": true})
    );
    for path in [
        format!("/v1/files/{id}"),
        format!("/v1/files/{id}/download"),
    ] {
        let response = app.get(&path).send().await.unwrap();
        assert_error(response, 404, "NotFound").await;
    }
    let response = app.delete(&format!("/v1/files/{id}")).send().await.unwrap();
    assert_error(response, 404, "NotFound").await;
}

#[tokio::test]
async fn another_organisation_cannot_see_or_use_a_file() {
    let app = spawn_app().await;
    let file = app.upload_fixture("notes.txt").await;
    let id = file["id"].as_str().unwrap();
    let other = app.key_for("other").await;
    let as_other = |method: reqwest::Method, path: String| {
        app.client
            .request(method, format!("{}{path}", app.base))
            .bearer_auth(&other)
    };
    for (method, path) in [
        (reqwest::Method::GET, format!("/v1/files/{id}")),
        (reqwest::Method::GET, format!("/v1/files/{id}/download")),
        (reqwest::Method::DELETE, format!("/v1/files/{id}")),
    ] {
        let response = as_other(method, path).send().await.unwrap();
        assert_error(response, 404, "NotFound").await;
    }
    // Another organisation's retry names no file of its own: nothing is retried.
    let response = as_other(reqwest::Method::POST, "/v1/files/retry".into())
        .json(&json!({"file_ids": [id]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let listed: Value = as_other(reqwest::Method::GET, "/v1/files".into())
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["data"], json!([]));
    let response = as_other(
        reqwest::Method::POST,
        "/v1/applications/uploads/jobs".into(),
    )
    .json(&inputs_body(&[("Contract", &[id])]))
    .send()
    .await
    .unwrap();
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(
        description.contains("Contract") && description.contains("not found"),
        "{description}"
    );
    // Still there for its owner.
    assert_eq!(
        app.get(&format!("/v1/files/{id}"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

/// Every submit-time rule of file and media inputs, each a 400 naming the input.
#[tokio::test]
async fn file_and_media_inputs_are_validated_at_submit() {
    let app = spawn_app().await;
    let text = app.upload_fixture("notes.txt").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pdf = app.upload_fixture("report.pdf").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let png = app.upload_fixture("dot.png").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let json_file = app.upload("data.json", b"{\"a\": 1}".to_vec()).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let wordy = app.upload("long.txt", "word ".repeat(51)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let big = app.upload("big.txt", "x".repeat((1 << 20) + 1)).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let gif = app
        .upload("anim.gif", b"GIF89a\x01\x00\x01\x00\x00\x00\x00;".to_vec())
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut huge_png = fixture_file("dot.png");
    huge_png.resize((1 << 20) + 100, 0);
    let huge_png = app.upload("huge.png", huge_png).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for id in [&json_file, &wordy, &big, &gif, &huge_png] {
        app.wait_processed(id).await;
    }
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        ("Contract", vec!["no-such-file"], "not found"),
        ("Contract", vec![&text, &pdf, &text], "at most 2 files"),
        ("Contract", vec![&json_file], "this input takes"),
        ("Contract", vec![&big], "over the limit of 1 MB"),
        ("Contract", vec![&wordy], "51 words, over the limit of 50"),
        ("Picture", vec![&text], "not an image"),
        ("Picture", vec![&gif], "this input takes png, jpg"),
        ("Picture", vec![&huge_png], "over the limit of 1 MB"),
        ("Picture", vec!["no-such-file"], "not found"),
    ];
    for (input, ids, needle) in cases {
        let response = app.submit("uploads", &[(input, &ids)]).await;
        let description = assert_error(response, 400, "BadRequest").await;
        assert!(
            description.contains(&format!("input '{input}'")) && description.contains(needle),
            "{input} {ids:?}: {description}"
        );
        // The synchronous route applies the same rules.
        let response = app
            .post("/v1/applications/uploads")
            .json(&inputs_body(&[(input, &ids)]))
            .send()
            .await
            .unwrap();
        assert_error(response, 400, "BadRequest").await;
    }
    // Nothing was queued by the refusals.
    let jobs: Value = app
        .get("/v1/applications/uploads/jobs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(jobs["totalCount"], 0, "{jobs}");
    // And a valid combination is accepted.
    app.create_job(
        "uploads",
        &[("Contract", &[&text, &pdf]), ("Picture", &[&png])],
    )
    .await;
}

#[tokio::test]
async fn images_reach_the_model_as_image_parts_and_sync_generation_sees_files_too() {
    let app = spawn_app().await;
    let png = fixture_file("dot.png");
    let image = app.upload_fixture("dot.png").await;
    assert_eq!(image["status"], "completed");
    let doc = app.upload_fixture("notes.txt").await;
    let (image_id, doc_id) = (image["id"].as_str().unwrap(), doc["id"].as_str().unwrap());
    let job = app
        .create_job(
            "uploads",
            &[("Contract", &[doc_id]), ("Picture", &[image_id])],
        )
        .await;
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    let text = done["data"]["suggestion"].as_str().unwrap();
    assert!(text.contains("Describe 1 images."), "{text}");
    assert!(
        text.contains(&format!("[image image/png, {} bytes]", png.len())),
        "{text}"
    );
    assert!(text.contains("ship the beta on Friday"), "{text}");

    let response = app
        .post("/v1/applications/uploads")
        .json(&inputs_body(&[
            ("Contract", &[doc_id]),
            ("Picture", &[image_id]),
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let text = body["suggestion"].as_str().unwrap();
    assert!(
        text.contains("ship the beta on Friday") && text.contains("[image image/png"),
        "{text}"
    );
}

/// Records a file as `in_progress` with its bytes in the data directory, as an upload does,
/// but with nothing processing it (as after a crash, or while another node extracts it).
async fn unprocessed_file(app_dir: &Path, store: &dyn Store, name: &str, bytes: &[u8]) -> String {
    let id = uuid::Uuid::now_v7().to_string();
    let blobs = Blobs::open(&BlobConfig::Local, app_dir).unwrap();
    blobs.put(&id, bytes.to_vec().into()).await.unwrap();
    let file = NewFile {
        id: id.clone(),
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

#[tokio::test]
async fn a_job_whose_file_is_still_in_progress_waits_for_it() {
    let app = spawn_app().await;
    let store = app.store().await;
    let id = unprocessed_file(app.data_dir(), store.as_ref(), "slow.txt", b"slow words").await;
    // Accepted: a file in progress is waited for, not refused.
    let job = app.create_job("uploads", &[("Contract", &[&id])]).await;
    let job_id = job["id"].as_str().unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = app.job(job_id).await;
    assert_eq!(waiting["status"], "in_progress", "{waiting}");
    assert_eq!(waiting["state"], "running", "{waiting}");
    // Another process (here: the test) finishes the file; the job picks it up.
    let processed = FileProcessed::Completed {
        text: Some("text extracted elsewhere".into()),
        word_count: Some(3),
    };
    assert!(store.file_processed(&id, processed).await.unwrap());
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
    let job = app.create_job("uploads", &[("Contract", &[&id])]).await;
    let processed = FileProcessed::Completed {
        text: Some("many ".repeat(60)),
        word_count: Some(60),
    };
    store.file_processed(&id, processed).await.unwrap();
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    let error = done["error"].as_str().unwrap();
    assert!(error.contains("60 words, over the limit of 50"), "{error}");
}

#[tokio::test]
async fn files_left_in_progress_by_a_dead_process_are_processed_at_start() {
    let app = spawn_app().await;
    let store = app.store().await;
    let id = unprocessed_file(
        app.data_dir(),
        store.as_ref(),
        "late.txt",
        b"processed after all",
    )
    .await;
    drop(store);
    let storage = app.stop().await;
    let app = spawn_in(storage, ServeOptions::default()).await;
    let done = app.wait_processed(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let job = app.create_job("uploads", &[("Contract", &[&id])]).await;
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

#[tokio::test]
async fn uploads_over_the_size_limit_or_the_quota_are_413() {
    let app = spawn_with(ServeOptions {
        max_upload_mb: Some(1),
        org_quota_mb: Some(2),
        ..ServeOptions::default()
    })
    .await;
    let over = vec![b'a'; (1 << 20) + 1];
    let response = app
        .post("/v1/files")
        .header("content-disposition", "attachment; filename=big.txt")
        .body(over)
        .send()
        .await
        .unwrap();
    let description = assert_error(response, 413, "PayloadTooLarge").await;
    assert!(description.contains("1 MB"), "{description}");
    // A chunked body (no Content-Length) is cut off at the limit too.
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b'b'; 64 * 1024])));
    let response = app
        .post("/v1/files")
        .header("content-disposition", "attachment; filename=stream.txt")
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "PayloadTooLarge").await;

    let nearly = vec![b'c'; 900 * 1024];
    app.upload("one.txt", nearly.clone()).await;
    app.upload("two.txt", nearly.clone()).await;
    let response = app
        .post("/v1/files")
        .header("content-disposition", "attachment; filename=three.txt")
        .body(nearly.clone())
        .send()
        .await
        .unwrap();
    let description = assert_error(response, 413, "PayloadTooLarge").await;
    assert!(description.contains("quota"), "{description}");
    let listed: Value = app
        .get("/v1/files")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        listed["data"].as_array().unwrap().len(),
        2,
        "the refused upload left nothing"
    );
    // Deleting a file frees its share of the quota.
    let first = listed["data"][0]["id"].as_str().unwrap();
    app.delete(&format!("/v1/files/{first}"))
        .send()
        .await
        .unwrap();
    app.upload("three.txt", nearly).await;
}

/// Through a real model server over HTTP, in both dialects: the document's text is in the
/// user message and the image arrives as an `image_url` part whose data URL holds exactly the
/// uploaded bytes (mock-llm's echo names its type, size and SHA-256).
#[tokio::test]
async fn file_text_and_image_parts_reach_a_model_server_over_http() {
    let png = fixture_file("dot.png");
    let digest: String = Sha256::digest(&png)[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for kind in [ProviderKind::Openai, ProviderKind::Writer] {
        let llm = start_llm(&[], 0).await;
        let app = serve_on_model_server(kind, &llm.base).await;
        let image = app.upload_fixture("dot.png").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let doc = app.upload_fixture("lease.docx").await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let job = app
            .create_job("uploads", &[("Contract", &[&doc]), ("Picture", &[&image])])
            .await;
        let done = app.wait_finished(job["id"].as_str().unwrap()).await;
        assert_eq!(done["status"], "completed", "{kind:?}: {done}");
        let text = done["data"]["suggestion"].as_str().unwrap();
        assert!(
            text.contains("<<lease.docx|docx: The tenant shall pay"),
            "{kind:?}: {text}"
        );
        let part = format!("[image image/png {} bytes sha256:{digest}]", png.len());
        assert!(text.contains(&part), "{kind:?}: {part} not in {text}");
        assert_eq!(llm.mock.stats().images, 1, "{kind:?}");
    }
}

#[tokio::test]
async fn a_model_that_refuses_images_fails_the_job_with_its_message() {
    let llm = start_llm(&["--no-images"], 0).await;
    let app = serve_on_model_server(ProviderKind::Openai, &llm.base).await;
    let image = app.upload_fixture("dot.png").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let job = app.create_job("uploads", &[("Picture", &[&image])]).await;
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert_eq!(done["attempts"], 1, "a refusal is not retried: {done}");
    let error = done["error"].as_str().unwrap();
    assert!(
        error.contains("does not accept image_url content"),
        "{error}"
    );
}

/// A server whose default provider is of `kind` on mock-llm at `base` (OpenAI clients take
/// the `/v1` prefix; Writer's base is the server's root).
async fn serve_on_model_server(kind: ProviderKind, base: &str) -> TestApp {
    let base_url = match kind {
        ProviderKind::Openai => format!("{base}/v1"),
        _ => base.to_owned(),
    };
    let provider = ProviderConfig {
        base_url: Some(base_url),
        model: Some("test-model".into()),
        max_concurrency: 4,
        ..ProviderConfig::new(kind)
    };
    spawn_with(ServeOptions {
        providers: BTreeMap::from([("default".to_owned(), provider)]),
        ..ServeOptions::default()
    })
    .await
}
