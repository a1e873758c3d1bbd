//! The preview of a definition (`POST /v1/scriptorium/applications/preview`): saved or not,
//! rendered exactly as the model would get it, run once on request, and never a job.

use reqwest::Response;
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, spawn_app};

const PREVIEW: &str = "/v1/scriptorium/applications/preview";

/// A definition (never saved) with a system prompt, a two-line prompt, a title and a
/// dropdown.
fn letter() -> Value {
    json!({
        "name": "Letter",
        "status": "draft",
        "system": "You write letters for {{ inputs['Who'][0] }}.",
        "prompt": "Dear {{ inputs['Who'] | join(' and ') }},\nin a {{ inputs['Tone'][0] if inputs['Tone'] else 'warm' }} tone.",
        "title": "To {{ inputs['Who'][0] }}",
        "inputs": [
            {"name": "Who", "input_type": "text", "required": true,
             "options": {"min_fields": 1, "max_fields": 2}},
            {"name": "Tone", "input_type": "dropdown", "required": false,
             "options": {"list": ["warm", "formal"]}},
        ],
    })
}

async fn preview(app: &TestApp, body: &Value) -> Response {
    app.post(PREVIEW).json(body).send().await.unwrap()
}

async fn previewed(app: &TestApp, body: &Value) -> Value {
    let response = preview(app, body).await;
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

fn with_who(definition: Value, who: &[&str]) -> Value {
    json!({"definition": definition, "inputs": [{"id": "Who", "value": who}]})
}

#[tokio::test]
async fn a_preview_of_an_unsaved_draft_shows_the_prompts_as_the_model_gets_them() {
    let app = spawn_app().await;
    let mut body = with_who(letter(), &["Ada", "Bo"]);
    body["inputs"]
        .as_array_mut()
        .unwrap()
        .push(json!({"id": "Tone", "value": ["formal"]}));
    let shown = previewed(&app, &body).await;
    assert_eq!(
        shown,
        json!({
            "system": "You write letters for Ada.",
            "user": "Dear Ada and Bo,\nin a formal tone.",
            "title": "To Ada",
        })
    );

    // Without a system template the system prompt is null; nothing was saved.
    let mut definition = letter();
    definition.as_object_mut().unwrap().remove("system");
    definition["id"] = json!("letter");
    let shown = previewed(&app, &with_who(definition, &["Cy"])).await;
    assert_eq!(shown["system"], Value::Null);
    assert_eq!(shown["user"], "Dear Cy,\nin a warm tone.");
    let response = app
        .get("/v1/scriptorium/applications/letter")
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
}

#[tokio::test]
async fn an_invalid_definition_is_a_400_naming_the_field_and_the_template_line() {
    let app = spawn_app().await;
    let mut definition = letter();
    definition["temperature"] = json!(5);
    definition["prompt"] = json!("Dear {{ inputs['Who'][0] }},\n{% if %}");
    let response = preview(&app, &with_who(definition, &["Ada"])).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    let problems: Vec<&str> = body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["key"], "application.invalid", "{body}");
            e["description"].as_str().unwrap()
        })
        .collect();
    assert!(
        problems.iter().any(|p| p.starts_with("prompt, line 2: ")),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.starts_with("temperature: ")),
        "{problems:?}"
    );

    for (key, value, expected) in [
        ("id", json!("jobs"), "id: "),
        ("provider", json!("nowhere"), "provider: "),
    ] {
        let mut definition = letter();
        definition[key] = value;
        let response = preview(&app, &with_who(definition, &["Ada"])).await;
        let description = assert_error(response, 400, "BadRequest").await;
        assert!(description.starts_with(expected), "{description}");
    }
    let response = preview(&app, &json!({"inputs": []})).await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("definition"), "{description}");
}

#[tokio::test]
async fn bad_inputs_are_400s_naming_the_input_as_for_a_job_create() {
    let app = spawn_app().await;
    let cases = [
        (json!([]), "Who"),
        (json!([{"id": "Who", "value": ["a", "b", "c"]}]), "Who"),
        (
            json!([{"id": "Who", "value": ["a"]}, {"id": "Tone", "value": ["loud"]}]),
            "Tone",
        ),
        (
            json!([{"id": "Who", "value": ["a"]}, {"id": "Bogus", "value": ["x"]}]),
            "Bogus",
        ),
        (json!([{"id": "Who", "value": "a"}]), "Who"),
    ];
    for (inputs, named) in cases {
        let body = json!({"definition": letter(), "inputs": inputs});
        let response = preview(&app, &body).await;
        let description = assert_error(response, 400, "BadRequest").await;
        assert!(description.contains(named), "{inputs}: {description}");
    }
}

#[tokio::test]
async fn a_run_answers_as_generate_does_and_creates_no_job() {
    let app = spawn_app().await;
    let mut definition = letter();
    definition["id"] = json!("greeter");
    definition["status"] = json!("deployed");
    let response = app
        .post("/v1/scriptorium/applications")
        .json(&definition)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    // A changed prompt, previewed and run: the mock echoes the rendered prompt.
    definition["prompt"] = json!("Hello {{ inputs['Who'][0] }}");
    let mut body = with_who(definition, &["Ada"]);
    body["run"] = json!(true);
    let shown = previewed(&app, &body).await;
    assert_eq!(shown["user"], "Hello Ada");
    assert_eq!(
        shown["answer"],
        json!({"title": "To Ada", "suggestion": "[mock] Hello Ada"})
    );

    let jobs = app.get_json("/v1/applications/greeter/jobs").await;
    assert_eq!(jobs["totalCount"], 0, "{jobs}");
    let saved = app.get_json("/v1/scriptorium/applications/greeter").await;
    assert_eq!(saved["version"], 1, "{saved}");
    assert_eq!(saved["definition"]["prompt"], letter()["prompt"]);
}

#[tokio::test]
async fn a_provider_error_on_a_run_is_a_writer_error_and_needs_a_key() {
    let app = spawn_app().await;
    let mut body = with_who(letter(), &["[[mock:fail]]"]);
    // Rendered only, the directive does nothing.
    let shown = previewed(&app, &body).await;
    assert!(shown.get("answer").is_none(), "{shown}");

    body["run"] = json!(true);
    let response = preview(&app, &body).await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("mock"), "{description}");

    let response = app
        .client
        .post(format!("{}{PREVIEW}", app.base))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_error(response, 401, "Unauthorized").await;
}
