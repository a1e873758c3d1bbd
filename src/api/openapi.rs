//! The OpenAPI 3.1 document `GET /openapi.json` answers, derived from the code: each handler
//! carries its `#[utoipa::path]` (method, path, parameters, body, answers) beside its
//! signature, and each wire type its `ToSchema`; this module only lists the handlers and adds
//! what every operation shares: the bearer key, and Writer's error shape as the answer for
//! any status an operation does not list.
//!
//! A test reads the router's routes from `mod.rs` and fails when one is missing here, so a
//! route cannot be added without its document.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Array, ArrayBuilder, ObjectBuilder, Schema, SchemaFormat, Type};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, RefOr};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

pub(crate) use super::error::ErrorBody;
use super::{applications, batches, definitions, files, jobs, native, ops, webhooks};
use crate::store::{ApplicationId, BatchId, FileId, JobId, Priority};

/// The name of the bearer key scheme (spelled out in `security(...)` too: the derive wants a
/// literal).
const KEY: &str = "api_key";

/// Every route's operation.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "scriptorium",
        description = "Writer's async applications and files APIs, served by scriptorium, \
                       and scriptorium's own routes (batches, applications as data, \
                       operators' views). Errors are in Writer's shape: ErrorBody."
    ),
    paths(
        files::list, files::upload, files::retry, files::retrieve, files::delete,
        files::download,
        applications::list, applications::retrieve, applications::generate,
        applications::graphs, applications::set_graphs,
        jobs::list, jobs::create, jobs::retrieve, jobs::retry,
        batches::list, batches::create, batches::retrieve,
        definitions::create, definitions::preview, definitions::retrieve,
        definitions::replace, definitions::delete, definitions::versions,
        definitions::restore,
        native::providers, native::files,
        webhooks::secret, webhooks::rotate, webhooks::deliveries,
        ops::health, ops::ready, ops::metrics, document,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Shared),
    security(("api_key" = [])),
    tags(
        (name = "files", description = "Writer's Files API."),
        (name = "applications", description = "Writer's applications API: list, read, generate now."),
        (name = "jobs", description = "Writer's async jobs."),
        (name = "batches", description = "Many jobs of one application at once (scriptorium's)."),
        (name = "definitions", description = "Applications as data, with versions (scriptorium's)."),
        (name = "webhooks", description = "Webhooks' signing secret and deliveries (scriptorium's)."),
        (name = "scriptorium", description = "Operators' views that need a key."),
        (name = "operations", description = "Health, readiness, metrics and this document: no key."),
    )
)]
pub(crate) struct ApiDoc;

/// The document, built once.
static DOCUMENT: LazyLock<String> = LazyLock::new(|| {
    ApiDoc::openapi()
        .to_pretty_json()
        .expect("the document serialises")
});

/// `GET /openapi.json`: this document.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI 3.1 document.", body = Object)))]
pub(crate) async fn document() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        DOCUMENT.as_str(),
    )
}

/// Adds the bearer key scheme, and to every operation Writer's error shape as its `default`
/// answer (any status it does not list: 400 for a malformed request, 401 without a key, 404,
/// 405, 413, 5xx...) and an operation id unique in the document.
struct Shared;

impl Modify for Shared {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            KEY,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An API key: `Authorization: Bearer <key>`."))
                    .build(),
            ),
        );
        let error = ResponseBuilder::new()
            .description("An error, in Writer's shape.")
            .content(
                "application/json",
                Content::new(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                )))),
            )
            .build();
        for item in openapi.paths.paths.values_mut() {
            for operation in [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .entry("default".into())
                    .or_insert_with(|| RefOr::T(error.clone()));
                // The handler's name alone repeats across modules (`create`, `list`):
                // prefixed with its tag (its module's), it names one operation.
                if let (Some(id), Some(tag)) = (&mut operation.operation_id, &operation.tags) {
                    *id = format!("{}_{id}", tag.join("_"));
                }
            }
        }
    }
}

/// The `inputs` of a generate, a job or a batch item: `[{"id": input name, "value":
/// [strings]}]` (file and media inputs take file ids). The handlers keep them raw, to name
/// the input at fault when refusing them, so this is their schema.
pub(crate) fn inputs() -> Array {
    let input = ObjectBuilder::new()
        .property("id", string(None, "The input's name."))
        .required("id")
        .property(
            "value",
            ArrayBuilder::new().items(string(None, "A value, or a file id.")),
        )
        .required("value");
    ArrayBuilder::new().items(input).build()
}

/// A string schema of this format.
fn string(format: Option<SchemaFormat>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .format(format)
        .description(Some(description))
        .into()
}

/// The ids are strings on the wire; the store's types stay free of the document's.
macro_rules! string_schemas {
    ($($ty:ty => ($format:expr, $description:literal)),* $(,)?) => {
        $(
            impl PartialSchema for $ty {
                fn schema() -> RefOr<Schema> {
                    string($format, $description)
                }
            }

            impl ToSchema for $ty {}
        )*
    };
}

string_schemas! {
    JobId => (Some(SchemaFormat::Custom("uuid".into())), "A job's id."),
    BatchId => (Some(SchemaFormat::Custom("uuid".into())), "A batch's id."),
    FileId => (Some(SchemaFormat::Custom("uuid".into())), "A file's id."),
    ApplicationId => (None, "An application's id (`[A-Za-z0-9_-]+`)."),
}

impl PartialSchema for Priority {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(["high", "normal", "low"]))
            .description(Some("How urgent a job is."))
            .into()
    }
}

impl ToSchema for Priority {}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Each `(path, method)` the router in `mod.rs` serves, read from its `.route(...)` calls.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let mut routes = BTreeSet::new();
        for call in source.split(".route(").skip(1) {
            let path = call.split('"').nth(1).expect("a route's path is a literal");
            // The call's own text: up to the parenthesis that closes `.route(`.
            let mut depth = 1;
            let end = call
                .char_indices()
                .find(|&(_, c)| {
                    depth += match c {
                        '(' => 1,
                        ')' => -1,
                        _ => 0,
                    };
                    depth == 0
                })
                .map_or(call.len(), |(at, _)| at);
            let text = &call[..end];
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = text.match_indices(&format!("{method}(")).any(|(at, _)| {
                    let before = text[..at].chars().next_back();
                    // `get(` or `.get(`, not a handler such as `files::delete`.
                    !matches!(before, Some(c) if c.is_alphanumeric() || c == '_' || c == ':')
                });
                if called {
                    routes.insert((path.to_owned(), method.to_owned()));
                }
            }
        }
        routes
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        let mut operations = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for method in item.as_object().expect("a path item").keys() {
                operations.insert((path.clone(), method.clone()));
            }
        }
        operations
    }

    #[test]
    fn every_route_of_the_router_is_in_the_document_and_nothing_else() {
        let routed = routed();
        assert!(
            routed.len() > 20,
            "the router's routes were not read: {routed:?}"
        );
        let documented = documented();
        let missing: Vec<_> = routed.difference(&documented).collect();
        assert!(
            missing.is_empty(),
            "routes without a #[utoipa::path] in openapi.rs: {missing:?}"
        );
        let extra: Vec<_> = documented.difference(&routed).collect();
        assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    }

    #[test]
    fn operation_ids_are_unique() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        let mut ids = BTreeSet::new();
        for item in doc["paths"].as_object().expect("paths").values() {
            for operation in item.as_object().expect("a path item").values() {
                let id = operation["operationId"].as_str().expect("an operation id");
                assert!(ids.insert(id.to_owned()), "operation id {id} is repeated");
            }
        }
        assert!(
            ids.contains("jobs_create") && ids.contains("batches_create"),
            "{ids:?}"
        );
    }

    #[test]
    fn every_operation_answers_errors_in_writers_shape_and_keyed_ones_name_the_key() {
        let doc = serde_json::to_value(ApiDoc::openapi()).expect("the document serialises");
        assert_eq!(doc["openapi"], "3.1.0");
        assert_eq!(doc["security"][0][KEY], serde_json::json!([]));
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, operation) in item.as_object().expect("a path item") {
                let default = &operation["responses"]["default"]["content"]["application/json"];
                assert_eq!(
                    default["schema"]["$ref"], "#/components/schemas/ErrorBody",
                    "{method} {path}"
                );
                let open = ["/healthz", "/readyz", "/metrics", "/openapi.json"];
                let needs_no_key = operation["security"] == serde_json::json!([{}]);
                assert_eq!(
                    needs_no_key,
                    open.contains(&path.as_str()),
                    "{method} {path}"
                );
            }
        }
    }
}
