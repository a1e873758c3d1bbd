//! Reading files back: list paging and filters, download and delete, and tenancy.

use serde_json::{Value, json};

use crate::helpers::{assert_error, fixture_file, inputs_body, spawn_app};

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

/// A file id is the lowercase hyphenated UUID the server gave; the same UUID in any other
/// spelling names no file: 404 on its routes, not retried, refused as an input. A list's
/// cursor takes any spelling of a UUID, and refuses anything else.
#[tokio::test]
async fn a_file_id_in_another_spelling_names_no_file() {
    let app = spawn_app().await;
    let id = app.upload_fixture("notes.txt").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let upper = id.to_uppercase();
    for path in [
        format!("/v1/files/{upper}"),
        format!("/v1/files/{upper}/download"),
    ] {
        let response = app.get(&path).send().await.unwrap();
        let description = assert_error(response, 404, "NotFound").await;
        assert_eq!(description, format!("no file '{upper}'"));
    }
    let response = app
        .delete(&format!("/v1/files/{upper}"))
        .send()
        .await
        .unwrap();
    assert_error(response, 404, "NotFound").await;
    let response = app
        .post("/v1/files/retry")
        .json(&json!({"file_ids": [upper, "not-an-id"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app
        .post("/v1/applications/uploads/jobs")
        .json(&inputs_body(&[("Contract", &[&upper])]))
        .send()
        .await
        .unwrap();
    let description = assert_error(response, 400, "BadRequest").await;
    assert!(
        description.contains(&format!("file '{upper}' not found")),
        "{description}"
    );
    let response = app
        .get(&format!("/v1/files?after={upper}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let response = app.get("/v1/files?after=nope").send().await.unwrap();
    assert_error(response, 400, "BadRequest").await;
    // The file itself is untouched.
    let file: Value = app
        .get(&format!("/v1/files/{id}"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(file["id"], id.as_str());
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
