//! File and media inputs: their checks at submit, and files and images reaching the model,
//! in process and through a real model server over HTTP in both dialects.

use std::collections::BTreeMap;

use scriptorium::config::ServeOptions;
use scriptorium::providers::config::{Concurrency, ProviderConfig, ProviderKind};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::helpers::{TestApp, assert_error, fixture_file, inputs_body, spawn_app, spawn_with};
use crate::providers::start_llm;

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
        max_concurrency: Concurrency::Fixed(4),
        ..ProviderConfig::new(kind)
    };
    spawn_with(ServeOptions {
        providers: BTreeMap::from([("default".to_owned(), provider)]),
        ..ServeOptions::default()
    })
    .await
}
