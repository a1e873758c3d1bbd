//! Applications as data (`/v1/scriptorium/applications`): created, changed, deployed,
//! versioned and deleted over HTTP, per organisation, beside the provisioned ones.

use std::time::Duration;

use reqwest::{RequestBuilder, Response};
use scriptorium::config::ServeOptions;
use scriptorium::store::{Lease, Outcome, OutcomeKind};
use serde_json::{Value, json};

use crate::helpers::{TestApp, assert_error, inputs_body, spawn_app, spawn_in, spawn_with};

const APPS: &str = "/v1/scriptorium/applications";

/// A definition of the application `greeter` with one required text input, `Who`.
fn greeter(prompt: &str, status: &str) -> Value {
    json!({
        "id": "greeter",
        "name": "Greeter",
        "status": status,
        "system": "You greet people.",
        "prompt": prompt,
        "inputs": [{"name": "Who", "input_type": "text", "required": true}],
    })
}

async fn create(app: &TestApp, definition: &Value) -> Response {
    app.post(APPS).json(definition).send().await.unwrap()
}

async fn created(app: &TestApp, definition: &Value) -> Value {
    let response = create(app, definition).await;
    assert_eq!(response.status(), 201);
    response.json().await.unwrap()
}

async fn replaced(app: &TestApp, id: &str, definition: &Value) -> Value {
    let response = app
        .put(&format!("{APPS}/{id}"))
        .json(definition)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// The suggestion of a synchronous generation of `id` for `Who`.
async fn generated(app: &TestApp, id: &str, who: &str) -> String {
    let response = app
        .post(&format!("/v1/applications/{id}"))
        .json(&inputs_body(&[("Who", &[who])]))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    body["suggestion"].as_str().unwrap().to_owned()
}

/// The descriptions of a 400 `application.invalid`.
async fn invalid(response: Response) -> Vec<String> {
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["tpe"], "BadRequest", "{body}");
    body["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["key"], "application.invalid", "{body}");
            e["description"].as_str().unwrap().to_owned()
        })
        .collect()
}

#[tokio::test]
async fn an_application_is_created_as_a_draft_deployed_changed_and_deleted() {
    let app = spawn_app().await;
    let draft = created(&app, &greeter("Hello {{ inputs['Who'][0] }}", "draft")).await;
    assert_eq!(draft["id"], "greeter");
    assert_eq!(draft["status"], "draft");
    assert_eq!(draft["version"], 1);
    assert_eq!(draft["provisioned"], false);
    assert_eq!(draft["type"], "generation");
    assert_eq!(draft["inputs"][0]["name"], "Who");
    assert_eq!(
        draft["definition"]["prompt"],
        "Hello {{ inputs['Who'][0] }}"
    );
    assert!(draft.get("last_deployed_at").is_none(), "{draft}");
    assert_eq!(app.get_json(&format!("{APPS}/greeter")).await, draft);

    // A draft is not served on Writer's routes.
    let response = app.get("/v1/applications/greeter").send().await.unwrap();
    assert_error(response, 404, "NotFound").await;
    let response = app.submit("greeter", &[("Who", &["Ada"])]).await;
    assert_error(response, 404, "NotFound").await;
    let listed = app.get_json("/v1/applications").await;
    assert!(!listed.to_string().contains("greeter"), "{listed}");

    let deployed = replaced(
        &app,
        "greeter",
        &greeter("Hello {{ inputs['Who'][0] }}", "deployed"),
    )
    .await;
    assert_eq!(
        (deployed["version"].clone(), deployed["status"].clone()),
        (json!(2), json!("deployed"))
    );
    assert_eq!(deployed["created_at"], draft["created_at"]);
    assert!(deployed["last_deployed_at"].is_string(), "{deployed}");
    let writer = app.get_json("/v1/applications/greeter").await;
    assert_eq!(writer["status"], "deployed");
    assert!(
        writer.get("definition").is_none(),
        "Writer's object only: {writer}"
    );
    let listed = app.get_json("/v1/applications").await;
    assert_eq!(listed["data"][0]["id"], "greeter", "newest first: {listed}");
    let job = app.create_job("greeter", &[("Who", &["Ada"])]).await;
    let done = app.wait_finished(job["id"].as_str().unwrap()).await;
    assert_eq!(done["data"]["suggestion"], "[mock] Hello Ada");

    let gone: Value = app
        .delete(&format!("{APPS}/greeter"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(gone, json!({"id": "greeter", "deleted": true}));
    for path in [
        format!("{APPS}/greeter"),
        "/v1/applications/greeter".to_owned(),
    ] {
        let response = app.get(&path).send().await.unwrap();
        assert_error(response, 404, "NotFound").await;
    }
    let response = app.delete(&format!("{APPS}/greeter")).send().await.unwrap();
    assert_error(response, 404, "NotFound").await;
    let kept = app.job(job["id"].as_str().unwrap()).await;
    assert_eq!(
        kept["data"]["suggestion"], "[mock] Hello Ada",
        "its jobs stay readable"
    );
}

#[tokio::test]
async fn an_application_without_an_id_gets_a_uuid_and_ids_are_checked() {
    let app = spawn_app().await;
    let mut definition = greeter("Hi {{ inputs['Who'][0] }}", "deployed");
    definition.as_object_mut().unwrap().remove("id");
    let made = created(&app, &definition).await;
    let id = made["id"].as_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
    assert_eq!(made["definition"]["id"], id);
    assert_eq!(generated(&app, id, "Bo").await, "[mock] Hi Bo");

    for reserved in ["jobs", "batches", "preview"] {
        definition["id"] = json!(reserved);
        let problems = invalid(create(&app, &definition).await).await;
        assert!(problems[0].starts_with("id: "), "{problems:?}");
        assert!(problems[0].contains("reserved"), "{problems:?}");
    }
    definition["id"] = json!("has space");
    let problems = invalid(create(&app, &definition).await).await;
    assert!(problems[0].starts_with("id: "), "{problems:?}");

    definition["id"] = json!(id);
    let response = create(&app, &definition).await;
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(description.contains("already exists"), "{description}");
    let response = app
        .put(&format!("{APPS}/{id}"))
        .json(&json!({"id": "other", "name": "x", "status": "draft", "prompt": "x"}))
        .send()
        .await
        .unwrap();
    let problems = invalid(response).await;
    assert!(problems[0].starts_with("id: "), "{problems:?}");
}

#[tokio::test]
async fn invalid_definitions_are_400s_naming_the_field_and_the_template_line() {
    let app = spawn_app().await;
    let with = |key: &str, value: Value| {
        let mut definition = greeter("Hello {{ inputs['Who'][0] }}", "deployed");
        definition[key] = value;
        definition
    };
    let cases = [
        (
            with("temperature", json!(5)),
            "temperature: temperature must be between 0 and 2",
        ),
        (
            with("temperature", json!("hot")),
            "temperature: invalid type",
        ),
        (
            with("prompt", json!("Hello\n{{ inputs['Who'][0] }\nBye")),
            "prompt, line 2: template `prompt`: syntax error",
        ),
        (
            with(
                "title",
                json!("Line one\nline two\n{{ inputs['Whom'][0] }}"),
            ),
            "title, line 3: template `title` refers to inputs[\"Whom\"]",
        ),
        (
            with("colour", json!("blue")),
            "colour: unknown field `colour`",
        ),
        (
            with("provider", json!("nowhere")),
            "provider: 'nowhere' is not configured",
        ),
        (
            with(
                "inputs",
                json!([{"name": "Who", "input_type": "dropdown", "required": true, "options": {"min_fields": 1}}]),
            ),
            "inputs[0].options: input 'Who'",
        ),
        (
            with("inputs", json!([{"name": "Who", "input_type": "text"}])),
            "inputs[0]: missing field `required`",
        ),
    ];
    for (definition, expected) in cases {
        let problems = invalid(create(&app, &definition).await).await;
        assert!(
            problems.iter().any(|p| p.starts_with(expected)),
            "expected a problem starting {expected:?}, got {problems:?}"
        );
    }
    let mut missing = greeter("x", "deployed");
    missing.as_object_mut().unwrap().remove("prompt");
    let problems = invalid(create(&app, &missing).await).await;
    assert_eq!(problems, ["missing field `prompt`"]);
    let response = app
        .post(APPS)
        .json(&json!(["not", "an object"]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        invalid(response).await,
        ["the definition must be a JSON object"]
    );
    // Nothing was stored.
    let response = app.get(&format!("{APPS}/greeter")).send().await.unwrap();
    assert_error(response, 404, "NotFound").await;
}

#[tokio::test]
async fn a_job_runs_with_the_version_it_was_created_with() {
    // No worker: the jobs wait while the application changes under them.
    let app = spawn_with(ServeOptions {
        concurrency: Some(0),
        ..ServeOptions::default()
    })
    .await;
    created(
        &app,
        &greeter("Old greeting for {{ inputs['Who'][0] }}", "deployed"),
    )
    .await;
    let before = app.create_job("greeter", &[("Who", &["Ada"])]).await;
    // A job of the old version fails (claimed and failed through the store, as a worker
    // would), to be retried once the application has changed.
    let retried = app.create_job("greeter", &[("Who", &["Cy"])]).await;
    let store = app.store().await;
    let claimed = store.claim(10, Duration::from_secs(30)).await.unwrap();
    let failing = claimed
        .iter()
        .find(|j| j.id.to_string() == retried["id"])
        .expect("claimed");
    assert_eq!(failing.application_version, Some(1));
    let others: Vec<Lease> = claimed
        .iter()
        .filter(|j| j.id != failing.id)
        .map(|j| j.lease)
        .collect();
    store.release(others).await.unwrap();
    let outcome = Outcome {
        lease: failing.lease,
        kind: OutcomeKind::Failed {
            error: "boom".into(),
        },
    };
    assert_eq!(store.finish(vec![outcome]).await.unwrap(), 1);
    replaced(
        &app,
        "greeter",
        &greeter("New greeting for {{ inputs['Who'][0] }}", "deployed"),
    )
    .await;
    let after = app.create_job("greeter", &[("Who", &["Bo"])]).await;
    let response = app
        .post(&format!(
            "/v1/applications/jobs/{}/retry",
            retried["id"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    replaced(&app, "greeter", &greeter("x", "draft")).await;

    // A new process, whose workers run the jobs: each with its own version.
    let app = spawn_in(app.stop().await, ServeOptions::default()).await;
    let old = app.wait_finished(before["id"].as_str().unwrap()).await;
    assert_eq!(
        old["data"]["suggestion"], "[mock] Old greeting for Ada",
        "{old}"
    );
    let new = app.wait_finished(after["id"].as_str().unwrap()).await;
    assert_eq!(
        new["data"]["suggestion"], "[mock] New greeting for Bo",
        "{new}"
    );
    let again = app.wait_finished(retried["id"].as_str().unwrap()).await;
    assert_eq!(
        again["data"]["suggestion"], "[mock] Old greeting for Cy",
        "{again}"
    );
}

/// A request of another organisation's key.
fn as_key(builder: RequestBuilder, key: &str) -> RequestBuilder {
    builder.bearer_auth(key)
}

#[tokio::test]
async fn another_organisations_application_is_a_404_on_every_route() {
    let app = spawn_app().await;
    let theirs = app.key_for("acme").await;
    let url = |path: &str| format!("{}{path}", app.base);
    let response = as_key(app.client.post(url(APPS)), &theirs)
        .json(&greeter("Acme greets {{ inputs['Who'][0] }}", "deployed"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let inputs = inputs_body(&[("Who", &["Ada"])]);
    let mine = [
        app.get("/v1/applications/greeter"),
        app.post("/v1/applications/greeter").json(&inputs),
        app.post("/v1/applications/greeter/jobs").json(&inputs),
        app.get("/v1/applications/greeter/jobs"),
        app.get(&format!("{APPS}/greeter")),
        app.put(&format!("{APPS}/greeter"))
            .json(&greeter("x", "deployed")),
        app.delete(&format!("{APPS}/greeter")),
        app.get(&format!("{APPS}/greeter/versions")),
        app.post(&format!("{APPS}/greeter/versions/1/restore")),
    ];
    for request in mine {
        let response = request.send().await.unwrap();
        let description = assert_error(response, 404, "NotFound").await;
        assert!(description.contains("greeter"), "{description}");
    }
    let listed = app.get_json("/v1/applications").await;
    assert!(!listed.to_string().contains("greeter"), "{listed}");

    // The owner sees its own and the provisioned ones, paged by cursor.
    let page = |query: &str| {
        as_key(
            app.client.get(url(&format!("/v1/applications?{query}"))),
            &theirs,
        )
        .send()
    };
    let first: Value = page("limit=2").await.unwrap().json().await.unwrap();
    let ids = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(ids(&first), ["greeter", "uploads"]);
    assert_eq!(first["has_more"], true);
    let rest: Value = page("limit=2&after=uploads")
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ids(&rest), ["single-shot", "echo"]);
    assert_eq!(rest["has_more"], false);
    let answer: Value = as_key(app.client.post(url("/v1/applications/greeter")), &theirs)
        .json(&inputs)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["suggestion"], "[mock] Acme greets Ada");

    // The same id is free in another organisation, and each runs its own.
    created(
        &app,
        &greeter("Default greets {{ inputs['Who'][0] }}", "deployed"),
    )
    .await;
    assert_eq!(
        generated(&app, "greeter", "Ada").await,
        "[mock] Default greets Ada"
    );
}

#[tokio::test]
async fn provisioned_applications_are_read_only_and_seen_by_every_organisation() {
    let app = spawn_app().await;
    let echo = app.get_json(&format!("{APPS}/echo")).await;
    assert_eq!(echo["provisioned"], true, "{echo}");
    assert_eq!(echo["version"], Value::Null);
    assert_eq!(echo["status"], "deployed");
    let theirs = app.key_for("acme").await;
    let seen = as_key(app.client.get(format!("{}{APPS}/echo", app.base)), &theirs)
        .send()
        .await
        .unwrap();
    assert_eq!(seen.status(), 200);

    let mut definition = greeter("x", "deployed");
    definition["id"] = json!("echo");
    let writes = [
        app.post(APPS).json(&definition),
        app.put(&format!("{APPS}/echo")).json(&definition),
        app.delete(&format!("{APPS}/echo")),
        app.post(&format!("{APPS}/echo/versions/1/restore")),
        app.get(&format!("{APPS}/echo/versions")),
    ];
    for request in writes {
        let response = request.send().await.unwrap();
        let description = assert_error(response, 400, "BadRequest").await;
        assert!(description.contains("read-only"), "{description}");
    }
    let response = app.submit("echo", &[("Text", &["still served"])]).await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn versions_are_listed_newest_first_and_an_old_one_is_restored_as_a_new_version() {
    let app = spawn_app().await;
    for (n, word) in ["One", "Two", "Three"].iter().enumerate() {
        let definition = greeter(&format!("{word} {{{{ inputs['Who'][0] }}}}"), "deployed");
        if n == 0 {
            created(&app, &definition).await;
        } else {
            replaced(&app, "greeter", &definition).await;
        }
    }
    let page = app
        .get_json(&format!("{APPS}/greeter/versions?limit=2"))
        .await;
    assert_eq!(page["totalCount"], 3);
    assert_eq!(page["pagination"], json!({"offset": 0, "limit": 2}));
    let numbers: Vec<u64> = page["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [3, 2]);
    assert_eq!(
        page["result"][1]["definition"]["prompt"],
        "Two {{ inputs['Who'][0] }}"
    );
    assert!(page["result"][0]["created_at"].is_string());
    let last = app
        .get_json(&format!("{APPS}/greeter/versions?offset=2&limit=2"))
        .await;
    assert_eq!(last["result"][0]["version"], 1);
    assert_eq!(last["result"].as_array().unwrap().len(), 1);

    let restored: Value = app
        .post(&format!("{APPS}/greeter/versions/1/restore"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(restored["version"], 4);
    assert_eq!(
        restored["definition"]["prompt"],
        "One {{ inputs['Who'][0] }}"
    );
    assert_eq!(generated(&app, "greeter", "Ada").await, "[mock] One Ada");
    let all = app.get_json(&format!("{APPS}/greeter/versions")).await;
    assert_eq!(all["totalCount"], 4);

    for missing in ["9", "0", "one"] {
        let response = app
            .post(&format!("{APPS}/greeter/versions/{missing}/restore"))
            .send()
            .await
            .unwrap();
        let description = assert_error(response, 404, "NotFound").await;
        assert!(description.contains(missing), "{description}");
    }
}
