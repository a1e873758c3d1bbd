//! Every error, on every route, in Writer's shape: bad JSON, wrong content, oversize bodies,
//! unknown paths and wrong methods.

use serde_json::{Value, json};

use crate::helpers::{KEY, assert_error, inputs_body, spawn_app, spawn_with};
use scriptorium::config::ServeOptions;

#[tokio::test]
async fn an_unknown_path_is_404_even_without_a_key() {
    let app = spawn_app().await;
    let response = app
        .client
        .get(format!("{}/v2/nothing", app.base))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
}

#[tokio::test]
async fn a_wrong_method_is_405_in_writers_shape() {
    let app = spawn_app().await;
    let response = app
        .client
        .delete(format!("{}/v1/applications/echo", app.base))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap();
    assert_error(response, 405, "MethodNotAllowed").await;
}

#[tokio::test]
async fn malformed_json_is_a_400() {
    let app = spawn_app().await;
    let response = app
        .post("/v1/applications/echo/jobs")
        .header("content-type", "application/json")
        .body("{\"inputs\": [")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
}

#[tokio::test]
async fn a_body_that_is_not_json_is_rejected_in_writers_shape() {
    let app = spawn_app().await;
    let response = app
        .post("/v1/applications/echo/jobs")
        .body("inputs=1")
        .send()
        .await
        .unwrap();
    assert_error(response, 415, "UnsupportedMediaType").await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_and_stores_nothing() {
    let app = spawn_with(ServeOptions {
        max_body_bytes: Some(1024),
        ..ServeOptions::default()
    })
    .await;
    let big = "x".repeat(2048);
    let response = app
        .post("/v1/applications/echo/jobs")
        .json(&inputs_body(&[("Text", &[&big])]))
        .send()
        .await
        .unwrap();
    assert_error(response, 413, "PayloadTooLarge").await;
    let list: serde_json::Value = app
        .get("/v1/applications/echo/jobs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["totalCount"], 0);
}

#[tokio::test]
async fn a_bad_query_string_is_a_400() {
    let app = spawn_app().await;
    let response = app
        .get("/v1/applications/echo/jobs?offset=minus-one")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
    let response = app
        .get("/v1/applications/echo/jobs?status=done")
        .send()
        .await
        .unwrap();
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("done"));
    let response = app
        .get("/v1/applications?order=sideways")
        .send()
        .await
        .unwrap();
    assert_error(response, 400, "BadRequest").await;
}

#[tokio::test]
async fn the_retry_route_takes_an_empty_json_body_as_the_sdk_sends_it() {
    let app = spawn_app().await;
    let response = app
        .post("/v1/applications/jobs/no-such-job/retry")
        .header("content-type", "application/json")
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
    let _ = json!({});
}

#[tokio::test]
async fn every_answer_carries_a_request_id_and_a_5xx_names_it_in_its_body() {
    let app = spawn_app().await;
    let response = app
        .post("/v1/applications/echo")
        .header("x-request-id", "trace-42")
        .json(&inputs_body(&[("Text", &["[[mock:error]]"])]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-42");
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["extras"]["request_id"], "trace-42", "{body}");
    assert_eq!(body["errors"][0]["key"], "provider.unavailable");
    let response = app.get("/v1/applications").send().await.unwrap();
    let id = response.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("req_"), "a fresh id: {id}");
}
