//! Input validation at submit time, sync and async alike: every rule is a 400 naming the
//! input (404 for the application), and nothing is stored for a rejected request.

use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, inputs_body, spawn_app};

/// Posts `body` to both the async and the sync route and asserts a 400 naming `needle`.
async fn rejected_everywhere(app: &TestApp, body: Value, needle: &str) {
    for path in ["/v1/applications/echo/jobs", "/v1/applications/echo"] {
        let response = app.post(path).json(&body).send().await.unwrap();
        let description = assert_error(response, 400, "BadRequest").await;
        assert!(
            description.contains(needle),
            "{path}: {description:?} should name {needle:?}"
        );
    }
    let list: Value = app
        .get("/v1/applications/echo/jobs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalCount"], 0, "a rejected request stored a job");
}

#[tokio::test]
async fn an_unknown_input_is_rejected_naming_it() {
    let app = spawn_app().await;
    rejected_everywhere(
        &app,
        inputs_body(&[("Text", &["a"]), ("Colour", &["red"])]),
        "Colour",
    )
    .await;
}

#[tokio::test]
async fn a_missing_required_input_is_rejected_naming_it() {
    let app = spawn_app().await;
    rejected_everywhere(&app, inputs_body(&[("Mode", &["plain"])]), "Text").await;
    rejected_everywhere(&app, inputs_body(&[("Text", &[])]), "Text").await;
}

#[tokio::test]
async fn a_value_that_is_not_an_array_of_strings_is_rejected() {
    let app = spawn_app().await;
    rejected_everywhere(
        &app,
        json!({"inputs": [{"id": "Text", "value": "a"}]}),
        "Text",
    )
    .await;
    rejected_everywhere(
        &app,
        json!({"inputs": [{"id": "Text", "value": [1, 2]}]}),
        "Text",
    )
    .await;
}

#[tokio::test]
async fn too_many_values_for_a_text_input_are_rejected() {
    let app = spawn_app().await;
    rejected_everywhere(
        &app,
        inputs_body(&[("Text", &["a", "b", "c", "d"])]),
        "Text",
    )
    .await;
}

#[tokio::test]
async fn a_dropdown_value_outside_its_list_is_rejected() {
    let app = spawn_app().await;
    rejected_everywhere(
        &app,
        inputs_body(&[("Text", &["a"]), ("Mode", &["shouty"])]),
        "Mode",
    )
    .await;
}

#[tokio::test]
async fn a_missing_inputs_array_is_rejected() {
    let app = spawn_app().await;
    rejected_everywhere(&app, json!({}), "inputs").await;
    rejected_everywhere(&app, json!({"inputs": {"Text": ["a"]}}), "inputs").await;
}

#[tokio::test]
async fn an_unknown_file_id_is_rejected_naming_the_input() {
    let app = spawn_app().await;
    let body = inputs_body(&[("Contract", &["file-123"])]);
    let response = app
        .post("/v1/applications/uploads/jobs")
        .json(&body)
        .send()
        .await
        .unwrap();
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("Contract"), "{description}");
}

#[tokio::test]
async fn an_empty_optional_input_is_valid() {
    let app = spawn_app().await;
    let body = inputs_body(&[("Text", &["a"]), ("Mode", &[]), ("Note", &[])]);
    let response = app
        .post("/v1/applications/echo/jobs")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn an_unknown_application_is_404_for_create_list_and_generate() {
    let app = spawn_app().await;
    let body = inputs_body(&[("Text", &["a"])]);
    let response = app
        .post("/v1/applications/nope/jobs")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
    let response = app
        .post("/v1/applications/nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
    let response = app.get("/v1/applications/nope/jobs").send().await.unwrap();
    assert_error(response, 404, "NotFound").await;
    let response = app
        .post("/v1/applications/unfinished/jobs")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
}
