//! Authentication: no key, a wrong key, and organisations that cannot see each other.

use crate::helpers::{assert_error, inputs_body, spawn_app};

#[tokio::test]
async fn no_key_is_401_on_every_route() {
    let app = spawn_app().await;
    for path in [
        "/v1/applications",
        "/v1/applications/echo",
        "/v1/applications/echo/jobs",
        "/v1/applications/jobs/x",
        "/v1/applications/echo/graphs",
    ] {
        let response = app
            .client
            .get(format!("{}{path}", app.base))
            .send()
            .await
            .unwrap();
        assert_error(response, 401, "Unauthorized").await;
    }
    let response = app
        .client
        .post(format!("{}/v1/applications/echo/jobs", app.base))
        .json(&inputs_body(&[("Text", &["x"])]))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "Unauthorized").await;
}

#[tokio::test]
async fn a_wrong_key_is_401_and_stores_nothing() {
    let app = spawn_app().await;
    let response = app
        .client
        .post(format!("{}/v1/applications/echo/jobs", app.base))
        .bearer_auth("scr_not_a_key")
        .json(&inputs_body(&[("Text", &["x"])]))
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "Unauthorized").await;
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
