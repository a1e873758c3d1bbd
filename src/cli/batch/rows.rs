//! Reading the rows of a `batch run`: a CSV file (a header row naming the inputs, an optional
//! `custom_id` column, `|` between several values, an empty cell for an input not given) or a
//! JSONL file (one item object per line, as the batch route takes it:
//! `{"custom_id"?, "inputs": [{"id", "value": [..]}]}`, so one file serves both).
//!
//! A row that cannot be read as an item (a JSONL line that is not one, a CSV row with the
//! wrong number of cells) is kept with its problem, so it is reported and left out alone.

use std::path::Path;

use anyhow::{Context, bail};
use serde_json::Value;

/// The column that names a row's item instead of an input.
pub(super) const CUSTOM_ID: &str = "custom_id";

/// The file formats, read from the file name's extension.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Format {
    /// Comma-separated, with a header row.
    Csv,
    /// One JSON object a line.
    Jsonl,
}

impl Format {
    /// The format of `path`, by its extension.
    pub(super) fn of(path: &Path) -> anyhow::Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("csv") => Ok(Self::Csv),
            Some("jsonl" | "ndjson") => Ok(Self::Jsonl),
            _ => bail!("{}: name a .csv or .jsonl file", path.display()),
        }
    }
}

/// One row of the input.
#[derive(Debug)]
pub(super) struct Row {
    /// Its 1-based number among the rows (a CSV header is not a row).
    pub(super) number: usize,
    /// The line of the file it starts on.
    pub(super) line: u64,
    /// Its item's name, when the file gives one.
    pub(super) custom_id: Option<String>,
    /// The inputs it gives, in file order: name and values (none given are left out).
    pub(super) inputs: Vec<(String, Vec<String>)>,
    /// Its cells as read (CSV only), for the output's input columns.
    pub(super) cells: Vec<String>,
    /// Why it cannot be an item, when it cannot.
    pub(super) problem: Option<String>,
}

impl Row {
    /// The name of its item: its `custom_id`, else its row number (so the server's items and
    /// results name rows as the file does).
    pub(super) fn item_id(&self) -> String {
        self.custom_id
            .clone()
            .unwrap_or_else(|| self.number.to_string())
    }
}

/// A whole input file.
pub(super) struct Rows {
    /// How it was written.
    pub(super) format: Format,
    /// The CSV header (empty for JSONL).
    pub(super) header: Vec<String>,
    /// Every row, in file order.
    pub(super) rows: Vec<Row>,
}

/// Reads `bytes`, the content of a file in `format`.
pub(super) fn read(format: Format, bytes: &[u8]) -> anyhow::Result<Rows> {
    match format {
        Format::Csv => read_csv(bytes),
        Format::Jsonl => read_jsonl(bytes),
    }
}

fn read_csv(bytes: &[u8]) -> anyhow::Result<Rows> {
    let mut reader = csv::ReaderBuilder::new().flexible(true).from_reader(bytes);
    let header: Vec<String> = reader
        .headers()
        .context("cannot read the header row")?
        .iter()
        .map(|h| h.trim().to_owned())
        .collect();
    if header.iter().all(String::is_empty) {
        bail!("the header row is empty: it must name the inputs");
    }
    let mut rows = Vec::new();
    for (at, record) in reader.records().enumerate() {
        let record = record.with_context(|| format!("cannot read row {}", at + 1))?;
        let line = record.position().map_or(0, |p| p.line());
        let cells: Vec<String> = record.iter().map(str::to_owned).collect();
        let mut row = Row {
            number: at + 1,
            line,
            custom_id: None,
            inputs: Vec::new(),
            cells,
            problem: None,
        };
        if row.cells.len() != header.len() {
            row.problem = Some(format!(
                "has {} cells where the header has {}",
                row.cells.len(),
                header.len()
            ));
        } else {
            for (name, cell) in header.iter().zip(&row.cells) {
                if name == CUSTOM_ID {
                    row.custom_id = Some(cell.clone()).filter(|c| !c.is_empty());
                } else if !cell.is_empty() {
                    let values = cell.split('|').map(str::to_owned).collect();
                    row.inputs.push((name.clone(), values));
                }
            }
        }
        rows.push(row);
    }
    Ok(Rows {
        format: Format::Csv,
        header,
        rows,
    })
}

fn read_jsonl(bytes: &[u8]) -> anyhow::Result<Rows> {
    let text = std::str::from_utf8(bytes).context("the file is not UTF-8")?;
    let mut rows = Vec::new();
    for (at, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let mut row = Row {
            number: rows.len() + 1,
            line: at as u64 + 1,
            custom_id: None,
            inputs: Vec::new(),
            cells: Vec::new(),
            problem: None,
        };
        match serde_json::from_str::<Value>(line) {
            Ok(item) => {
                if let Err(problem) = item_of(&item, &mut row) {
                    row.problem = Some(problem);
                }
            }
            Err(e) => row.problem = Some(format!("is not JSON: {e}")),
        }
        rows.push(row);
    }
    Ok(Rows {
        format: Format::Jsonl,
        header: Vec::new(),
        rows,
    })
}

/// Fills `row` from an item object `{custom_id?, inputs: [{id, value}]}`.
fn item_of(item: &Value, row: &mut Row) -> Result<(), String> {
    let shape = "is not an item {\"custom_id\"?, \"inputs\": [{\"id\", \"value\": [..]}]}";
    let object = item.as_object().ok_or(shape)?;
    if let Some(key) = object.keys().find(|k| *k != "custom_id" && *k != "inputs") {
        return Err(format!("has an unknown field '{key}'"));
    }
    row.custom_id = match &object.get("custom_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) => Some(id.clone()),
        Some(_) => return Err("custom_id must be a string".to_owned()),
    };
    for input in object
        .get("inputs")
        .and_then(Value::as_array)
        .ok_or(shape)?
    {
        let id = input["id"].as_str().ok_or(shape)?;
        let values: Option<Vec<String>> = match &input["value"] {
            Value::Array(values) => values
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => None,
        };
        let values =
            values.ok_or_else(|| format!("input '{id}': value must be a list of strings"))?;
        if !values.is_empty() {
            row.inputs.push((id.to_owned(), values));
        }
    }
    Ok(())
}
