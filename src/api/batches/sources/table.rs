//! An uploaded CSV file (RFC 4180: quoted cells may hold commas, quotes and line breaks).
//!
//! The header row names the columns: each is an input of the application, or `custom_id`.
//! A header that names anything else, or a column twice, refuses the whole batch (every row
//! would fail the same way). In a row, a cell holding several values separates them with
//! `|`; an empty cell is an input not given. A row that cannot be read (not as many cells as
//! the header, a cell that is not UTF-8 or holds a NUL) fails alone, and so does a row whose
//! inputs break the application's rules; the error names the row (the header is row 1, as a
//! spreadsheet counts) and the column.

use serde_json::{Value, json};

use super::super::super::{ApiError, ErrorCode};
use super::super::check::ColumnCheck;
use super::super::intake::{Intake, Place, Raw};
use super::ChunkReader;
use crate::apps::Application;

/// The column that names the items.
const CUSTOM_ID: &str = "custom_id";
/// What separates several values in a cell.
const SEPARATOR: char = '|';

/// What a column of the file holds.
#[derive(Clone, PartialEq, Eq)]
enum Column {
    /// The item's custom id.
    CustomId,
    /// An input, by name.
    Input(String),
}

/// Reads every row of `reader` into `intake`.
pub(in crate::api::batches) fn read(
    mut reader: ChunkReader,
    intake: &mut Intake,
) -> Result<(), ApiError> {
    let read = read_rows(&mut reader, intake);
    match reader.failure() {
        Some(e) => Err(e),
        None => read,
    }
}

fn read_rows(reader: &mut ChunkReader, intake: &mut Intake) -> Result<(), ApiError> {
    let mut rows = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .buffer_capacity(1 << 16)
        .from_reader(reader);
    let mut record = csv::ByteRecord::new();
    if !rows.read_byte_record(&mut record).map_err(unreadable)? {
        return Err(refused(
            "the CSV file is empty: its first row must name the columns",
        ));
    }
    let named = named_columns(&record, intake.app());
    if intake.is_checking() {
        intake.set_columns(named.iter().map(column_check).collect());
    }
    let columns = header(named)?;
    let mut number = 1;
    while rows.read_byte_record(&mut record).map_err(unreadable)? {
        number += 1;
        let (custom_id, raw) = row(&columns, &record);
        intake.push(custom_id, raw, Place::Row(number))?;
    }
    Ok(())
}

/// Each column the header names, as written, and what it holds or why it cannot be taken.
type Named = Vec<(String, Result<Column, String>)>;

/// What each cell of the header names (see [`Named`]).
fn named_columns(record: &csv::ByteRecord, app: &Application) -> Named {
    let mut named: Named = Vec::with_capacity(record.len());
    for (at, cell) in record.iter().enumerate() {
        let cell = if at == 0 {
            cell.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(cell)
        } else {
            cell
        };
        let Ok(name) = std::str::from_utf8(cell) else {
            let lossy = String::from_utf8_lossy(cell).into_owned();
            named.push((
                lossy,
                Err(format!("header: column {} is not UTF-8", at + 1)),
            ));
            continue;
        };
        let name = name.trim();
        let column = if name == CUSTOM_ID {
            Ok(Column::CustomId)
        } else if app.inputs.iter().any(|spec| spec.name == name) {
            Ok(Column::Input(name.to_owned()))
        } else {
            let takes: Vec<&str> = app.inputs.iter().map(|s| s.name.as_str()).collect();
            Err(format!(
                "header: column {} '{name}' is not an input of application '{}' \
                 (it takes: {}; and a column may be custom_id)",
                at + 1,
                app.id,
                takes.join(", ")
            ))
        };
        let column = column.and_then(|column| {
            if named.iter().any(|(_, c)| c.as_ref() == Ok(&column)) {
                Err(format!("header: column '{name}' is given twice"))
            } else {
                Ok(column)
            }
        });
        named.push((name.to_owned(), column));
    }
    named
}

/// A column as a file's check shows it.
fn column_check((name, column): &(String, Result<Column, String>)) -> ColumnCheck {
    let (input, problem) = match column {
        Ok(Column::CustomId) => (None, None),
        Ok(Column::Input(input)) => (Some(input.clone()), None),
        Err(why) => (None, Some(why.clone())),
    };
    ColumnCheck {
        name: name.clone(),
        input,
        problem,
    }
}

/// The columns the header names; a 400 naming the first it cannot take.
fn header(named: Named) -> Result<Vec<Column>, ApiError> {
    named
        .into_iter()
        .map(|(_, column)| column.map_err(|why| refused(&why)))
        .collect()
}

/// One row as an item: its custom id and its inputs as a job create takes them.
fn row(columns: &[Column], record: &csv::ByteRecord) -> (Option<String>, Raw) {
    let mut custom_id = None;
    let mut inputs = Vec::with_capacity(columns.len());
    let mut problem: Option<(String, Option<&str>)> = None;
    if record.len() != columns.len() {
        let message = format!(
            "has {} cells; the header has {}",
            record.len(),
            columns.len()
        );
        problem = Some((message, None));
    }
    for (column, cell) in columns.iter().zip(record.iter()) {
        let name = match column {
            Column::CustomId => CUSTOM_ID,
            Column::Input(name) => name.as_str(),
        };
        let text = match std::str::from_utf8(cell) {
            Ok(text) if text.contains('\0') => {
                let message = format!("column '{name}' holds a NUL character");
                problem.get_or_insert((message, Some(name)));
                continue;
            }
            Ok(text) => text,
            Err(_) => {
                problem.get_or_insert((format!("column '{name}' is not UTF-8"), Some(name)));
                continue;
            }
        };
        match column {
            _ if text.is_empty() => {}
            Column::CustomId => custom_id = Some(text.to_owned()),
            Column::Input(name) => {
                let values: Vec<&str> = text.split(SEPARATOR).collect();
                inputs.push(json!({"id": name, "value": values}));
            }
        }
    }
    let inputs = Value::Array(inputs);
    let raw = match problem {
        Some((message, input)) => Raw::Unreadable {
            message,
            input: input.map(str::to_owned),
            sent: inputs.to_string(),
        },
        None => Raw::Inputs(Some(inputs)),
    };
    (custom_id, raw)
}

/// A CSV error other than the source's own (which the reader keeps).
fn unreadable(e: csv::Error) -> ApiError {
    refused(&format!("the CSV file cannot be read: {e}"))
}

fn refused(message: &str) -> ApiError {
    ApiError::new(ErrorCode::InvalidBatch, message)
}
