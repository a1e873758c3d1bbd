//! Uploads: every Content-Disposition form, the type taken from the bytes, and the size
//! limit and the quota.

use scriptorium::config::ServeOptions;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, fixture_file, spawn_app, spawn_with};

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
