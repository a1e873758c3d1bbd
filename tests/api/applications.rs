//! The application routes: list with cursors, retrieve, sync and streamed generation, graphs.

use serde_json::{Value, json};

use crate::helpers::{assert_error, inputs_body, spawn_app, stream_content, stream_deltas};

#[tokio::test]
async fn the_list_shows_deployed_apps_newest_first_and_pages_with_cursors() {
    let app = spawn_app().await;
    let all: Value = app
        .get("/v1/applications")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["uploads", "single-shot", "echo"]);
    assert_eq!(all["has_more"], false);
    assert_eq!(all["first_id"], "uploads");
    assert_eq!(all["last_id"], "echo");

    let first: Value = app
        .get("/v1/applications?limit=2&order=asc")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first["data"][0]["id"], "echo");
    assert_eq!(first["data"][1]["id"], "single-shot");
    assert_eq!(first["has_more"], true);
    let next: Value = app
        .get("/v1/applications?limit=2&order=asc&after=single-shot")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(next["data"][0]["id"], "uploads");
    assert_eq!(next["has_more"], false);
    let before: Value = app
        .get("/v1/applications?limit=1&order=asc&before=uploads")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["data"][0]["id"], "single-shot");
    assert_eq!(before["has_more"], true);
}

#[tokio::test]
async fn an_application_has_writers_fields_and_no_empty_options() {
    let app = spawn_app().await;
    let echo: Value = app
        .get("/v1/applications/echo")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(echo["id"], "echo");
    assert_eq!(echo["type"], "generation");
    assert_eq!(echo["status"], "deployed");
    assert_eq!(echo["created_at"], "2025-01-01T00:00:00.000000Z");
    assert!(echo["updated_at"].is_string());
    let inputs = echo["inputs"].as_array().unwrap();
    assert_eq!(
        inputs[0],
        json!({"name": "Text", "input_type": "text", "required": true,
        "options": {"min_fields": 1, "max_fields": 3}})
    );
    assert_eq!(inputs[1]["options"], json!({"list": ["plain", "loud"]}));
    assert!(
        inputs[2].get("options").is_none(),
        "no options means no key: {}",
        inputs[2]
    );
}

#[tokio::test]
async fn drafts_and_unknown_apps_are_404() {
    let app = spawn_app().await;
    for id in ["unfinished", "no-such-app"] {
        let response = app
            .get(&format!("/v1/applications/{id}"))
            .send()
            .await
            .unwrap();
        assert_error(response, 404, "NotFound").await;
    }
}

#[tokio::test]
async fn sync_generation_answers_title_and_suggestion() {
    let app = spawn_app().await;
    let body = inputs_body(&[("Text", &["alpha", "beta"]), ("Mode", &["loud"])]);
    let response = app
        .post("/v1/applications/echo")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["title"], "Echo of alpha");
    assert_eq!(answer["suggestion"], "[mock] alpha | beta mode=loud");
}

#[tokio::test]
async fn streamed_generation_sends_writer_deltas_then_done() {
    let app = spawn_app().await;
    let text = app
        .stream("echo", &[("Text", &["one two three four five six seven"])])
        .await;
    let deltas = stream_deltas(&text);
    assert_eq!(
        deltas[0]["title"],
        "Echo of one two three four five six seven"
    );
    assert_eq!(
        stream_content(&deltas[1..]),
        "[mock] one two three four five six seven"
    );
}

#[tokio::test]
async fn a_stream_that_breaks_ends_with_an_error_event() {
    let app = spawn_app().await;
    let text = app
        .stream(
            "echo",
            &[("Text", &["a b c d e f g h i j k l [[mock:break]]"])],
        )
        .await;
    assert!(text.contains("event: error"), "{text}");
    assert!(!text.contains("[DONE]"), "{text}");
    let error_data = text
        .split("event: error\ndata: ")
        .nth(1)
        .unwrap()
        .lines()
        .next()
        .unwrap();
    let error: Value = serde_json::from_str(error_data).unwrap();
    assert_eq!(error["tpe"], "ServiceUnavailable");
    assert!(
        error["errors"][0]["description"]
            .as_str()
            .unwrap()
            .contains("broken")
    );
}

#[tokio::test]
async fn sync_generation_reports_model_failures_in_writers_shape() {
    let app = spawn_app().await;
    let fatal = inputs_body(&[("Text", &["[[mock:fail]]"])]);
    let response = app
        .post("/v1/applications/echo")
        .json(&fatal)
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
    let retryable = inputs_body(&[("Text", &["[[mock:error]]"])]);
    let response = app
        .post("/v1/applications/echo")
        .json(&retryable)
        .send()
        .await
        .unwrap();
    assert_error(response, 503, "ServiceUnavailable").await;
}

#[tokio::test]
async fn graph_ids_are_replaced_and_read_back_per_organisation() {
    let app = spawn_app().await;
    let empty: Value = app
        .get("/v1/applications/echo/graphs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({"graph_ids": []}));
    let ids = [
        "6f1b9d0e-8c4e-4a55-9d8e-1f5c2b7a9e01",
        "0a3c5e7f-1b2d-4e6f-8a9b-c0d1e2f3a4b5",
    ];
    let put = app
        .put("/v1/applications/echo/graphs")
        .json(&json!({"graph_ids": ids}))
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), 200);
    let read: Value = app
        .get("/v1/applications/echo/graphs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read, json!({"graph_ids": ids}));
    let bad = app
        .put("/v1/applications/echo/graphs")
        .json(&json!({"graph_ids": ["nope"]}))
        .send()
        .await
        .unwrap();
    let description = assert_error(bad, 400, "BadRequest").await;
    assert!(description.contains("nope"));
}
