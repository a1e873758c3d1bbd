//! `GET /v1/applications/batches/{batch_id}/results`: a batch's finished items in the order
//! they finished, as JSON Lines or CSV, streamed: pages of [`PAGE`] items are read by cursor
//! one after the other and each is sent as it is read, so memory stays flat whatever the
//! batch's size. A client follows a running batch by asking again with `after` set to the
//! last line's cursor.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;

use super::batch_id;
use crate::api::applications::served_app;
use crate::api::extract::{Principal, WPath, WQuery};
use crate::api::views::BatchResultView;
use crate::api::{ApiError, AppState, ErrorCode};
use crate::report::Chain;
use crate::store::{BatchResult, JobState, ResultQuery, Store};

/// Items read from the store at a time.
const PAGE: u64 = 1_000;

/// The query of the results.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ResultsQuery {
    /// `jsonl` (the default) or `csv`.
    pub(crate) format: Option<String>,
    /// Only items that finished after this cursor.
    after: Option<i64>,
    /// Only items with this status: `completed`, `failed` or `cancelled`.
    status: Option<String>,
    /// Items to answer at most.
    limit: Option<u64>,
}

/// The two shapes of the results.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    Jsonl,
    Csv,
}

/// `GET /v1/applications/batches/{batch_id}/results?format=jsonl|csv&after=&status=&limit=`.
#[utoipa::path(get, path = "/v1/applications/batches/{batch_id}/results", tag = "batches",
    params(("batch_id" = String, Path, description = "The batch's id."), ResultsQuery),
    responses((status = 200, description = "Finished items in finishing order, one JSON line each (or CSV).", content_type = "application/x-ndjson", body = BatchResultView)))]
pub(crate) async fn results(
    State(state): State<AppState>,
    principal: Principal,
    WPath(raw): WPath<String>,
    WQuery(query): WQuery<ResultsQuery>,
) -> Result<Response, ApiError> {
    let id = batch_id(&raw)?;
    let invalid = |message: String| ApiError::new(ErrorCode::InvalidQuery, message);
    let format = match query.format.as_deref() {
        None | Some("jsonl") => Format::Jsonl,
        Some("csv") => Format::Csv,
        Some(other) => {
            return Err(invalid(format!(
                "unknown format '{other}'; use jsonl or csv"
            )));
        }
    };
    let status = match query.status.as_deref() {
        None | Some("") => None,
        Some(s) => Some(
            JobState::parse(s)
                .filter(|s| {
                    matches!(
                        s,
                        JobState::Completed | JobState::Failed | JobState::Cancelled
                    )
                })
                .ok_or_else(|| {
                    ApiError::new(
                        ErrorCode::InvalidStatus,
                        format!("unknown status '{s}'; use completed, failed or cancelled"),
                    )
                })?,
        ),
    };
    let Some(batch) = state.store.get_batch(&principal.org, id).await? else {
        return Err(super::not_found(&raw));
    };
    let (content_type, head, columns) = match format {
        Format::Jsonl => ("application/x-ndjson", String::new(), Vec::new()),
        Format::Csv => {
            let app = served_app(&state, &principal.org, batch.application_id.as_str()).await?;
            let columns: Vec<String> = app.inputs.iter().map(|i| i.name.clone()).collect();
            let head = csv_header(&columns);
            ("text/csv; charset=utf-8", head, columns)
        }
    };
    let pages = Pages {
        store: state.store.clone(),
        query: ResultQuery {
            org: principal.org,
            batch_id: id,
            after: query.after.unwrap_or(0),
            state: status,
            limit: PAGE,
            newest_first: false,
        },
        left: query.limit.unwrap_or(u64::MAX),
        format,
        columns,
        done: false,
    };
    let head = futures_util::stream::iter((!head.is_empty()).then(|| Ok(Bytes::from(head))));
    let body = Body::from_stream(futures_util::StreamExt::chain(head, pages.stream()));
    Ok(([(header::CONTENT_TYPE, content_type)], body).into_response())
}

/// The pages still to read and how to write them.
struct Pages {
    store: Arc<dyn Store>,
    query: ResultQuery,
    /// Items the client still wants.
    left: u64,
    format: Format,
    columns: Vec<String>,
    done: bool,
}

impl Pages {
    /// The pages as chunks of the body, each read when the previous one has been sent.
    fn stream(self) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::unfold(self, |mut pages| async move {
            if pages.done || pages.left == 0 {
                return None;
            }
            pages.query.limit = PAGE.min(pages.left);
            let items = match pages.store.batch_results(pages.query.clone()).await {
                Ok(items) => items,
                Err(e) => {
                    tracing::error!(error = %Chain(&e), "reading a batch's results failed; the body stops short");
                    pages.done = true;
                    return Some((Err(std::io::Error::other("the store failed")), pages));
                }
            };
            pages.done = (items.len() as u64) < pages.query.limit;
            pages.left -= items.len() as u64;
            pages.query.after = items.last()?.cursor;
            let mut chunk = String::new();
            for item in &items {
                match pages.format {
                    Format::Jsonl => jsonl_line(&mut chunk, item),
                    Format::Csv => csv_line(&mut chunk, item, &pages.columns),
                }
            }
            Some((Ok(Bytes::from(chunk)), pages))
        })
    }
}

fn jsonl_line(out: &mut String, item: &BatchResult) {
    // A view of plain strings and numbers always serialises.
    if let Ok(line) = serde_json::to_string(&BatchResultView::from(item)) {
        out.push_str(&line);
        out.push('\n');
    }
}

/// The columns of the CSV: the application's inputs, then the item's own.
fn csv_header(columns: &[String]) -> String {
    let mut line = String::new();
    let own = ["custom_id", "status", "title", "suggestion", "error"];
    let names = columns.iter().map(String::as_str).chain(own);
    for (i, name) in names.enumerate() {
        push_cell(&mut line, i, name);
    }
    line.push_str("\r\n");
    line
}

fn csv_line(out: &mut String, item: &BatchResult, columns: &[String]) {
    let inputs = input_values(&item.inputs);
    let mut cells: Vec<String> = columns
        .iter()
        .map(|name| inputs.get(name).map(|v| v.join("|")).unwrap_or_default())
        .collect();
    let completed = item.state == JobState::Completed;
    cells.push(item.custom_id.clone());
    cells.push(item.state.as_str().to_owned());
    cells.push(item.title.clone().filter(|_| completed).unwrap_or_default());
    cells.push(
        item.suggestion
            .clone()
            .filter(|_| completed)
            .unwrap_or_default(),
    );
    cells.push(
        item.error
            .clone()
            .filter(|_| !completed)
            .unwrap_or_default(),
    );
    for (i, cell) in cells.iter().enumerate() {
        push_cell(out, i, cell);
    }
    out.push_str("\r\n");
}

/// Appends one CSV cell (RFC 4180: quoted when it holds a comma, a quote or a line break).
fn push_cell(out: &mut String, i: usize, cell: &str) {
    if i > 0 {
        out.push(',');
    }
    if cell.contains([',', '"', '\n', '\r']) {
        let _ = write!(out, "\"{}\"", cell.replace('"', "\"\""));
    } else {
        out.push_str(cell);
    }
}

/// An item's inputs by name: as validated (`{name: [values]}`), or as sent when refused
/// (`[{id, value}]`, a value a string or a list); anything else reads as none.
fn input_values(stored: &str) -> BTreeMap<String, Vec<String>> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let values = |v: &Value| match v {
        Value::Array(items) => items.iter().map(text).collect(),
        Value::Null => Vec::new(),
        other => vec![text(other)],
    };
    match serde_json::from_str::<Value>(stored) {
        Ok(Value::Object(map)) => map.iter().map(|(k, v)| (k.clone(), values(v))).collect(),
        Ok(Value::Array(items)) => items
            .iter()
            .filter_map(|i| Some((i.get("id")?.as_str()?.to_owned(), values(i.get("value")?))))
            .collect(),
        _ => BTreeMap::new(),
    }
}
