//! The output of a `batch run`, in input order, written whole to a temporary file beside it
//! and renamed over it, so a reader never sees half a file.
//!
//! - CSV: the input's columns as they were (for a JSONL input: `custom_id`, then the
//!   application's inputs, several values joined by `|`), then `status`, `title`,
//!   `suggestion`, `error`.
//! - JSONL: one object a row: `row` (its number), `custom_id`, `inputs` (as an item's),
//!   `status`, `job_id`, `data` (`{title, suggestion}`, or null) and `error`.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use serde_json::{Value, json};

use super::follow::Outcome;
use super::rows::{CUSTOM_ID, Format, Row, Rows};

/// The columns every CSV output ends with.
const RESULT_COLUMNS: [&str; 4] = ["status", "title", "suggestion", "error"];

/// Writes every row with its outcome to `path`, in `format`. `inputs` are the application's
/// input names (the columns of a CSV written from a JSONL input).
pub(super) fn write(
    path: &Path,
    format: Format,
    rows: &Rows,
    inputs: &[String],
    outcomes: &[Option<Outcome>],
) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let mut file = tempfile::NamedTempFile::new_in(dir.unwrap_or(Path::new(".")))
        .context("cannot make a temporary file beside the output")?;
    let none = Outcome::default();
    let each = rows
        .rows
        .iter()
        .zip(outcomes)
        .map(|(row, outcome)| (row, outcome.as_ref().unwrap_or(&none)));
    match format {
        Format::Csv => {
            let mut csv = csv::Writer::from_writer(&mut file);
            let mut columns = header(rows, inputs);
            columns.extend(RESULT_COLUMNS.map(str::to_owned));
            csv.write_record(&columns)?;
            for (row, outcome) in each {
                let mut record = cells(rows, inputs, row);
                record.extend([
                    outcome.status.clone(),
                    outcome.title.clone().unwrap_or_default(),
                    outcome.suggestion.clone().unwrap_or_default(),
                    outcome.error.clone().unwrap_or_default(),
                ]);
                csv.write_record(&record)?;
            }
            csv.flush()?;
        }
        Format::Jsonl => {
            for (row, outcome) in each {
                serde_json::to_writer(&mut file, &line(row, outcome))?;
                file.write_all(b"\n")?;
            }
        }
    }
    file.as_file().sync_all()?;
    file.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// The input columns of a CSV output.
fn header(rows: &Rows, inputs: &[String]) -> Vec<String> {
    match rows.format {
        Format::Csv => rows.header.clone(),
        Format::Jsonl => std::iter::once(CUSTOM_ID.to_owned())
            .chain(inputs.iter().cloned())
            .collect(),
    }
}

/// `row`'s input cells in a CSV output.
fn cells(rows: &Rows, inputs: &[String], row: &Row) -> Vec<String> {
    match rows.format {
        Format::Csv => {
            let mut cells = row.cells.clone();
            cells.resize(rows.header.len(), String::new());
            cells
        }
        Format::Jsonl => std::iter::once(row.item_id())
            .chain(inputs.iter().map(|name| {
                row.inputs
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, values)| values.join("|"))
                    .unwrap_or_default()
            }))
            .collect(),
    }
}

/// `row` and its outcome as a JSONL output line.
fn line(row: &Row, outcome: &Outcome) -> Value {
    let inputs: Vec<Value> = row
        .inputs
        .iter()
        .map(|(id, value)| json!({"id": id, "value": value}))
        .collect();
    let data = outcome
        .suggestion
        .as_ref()
        .map(|suggestion| json!({"title": outcome.title, "suggestion": suggestion}));
    json!({
        "row": row.number,
        "custom_id": row.item_id(),
        "inputs": inputs,
        "status": outcome.status,
        "job_id": outcome.job_id,
        "data": data,
        "error": outcome.error,
    })
}
