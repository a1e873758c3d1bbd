//! An uploaded JSON Lines file: one item object per line, `{"custom_id"?, "inputs"}` as in
//! the inline `items`. Blank lines are skipped; a line that is not such an object fails
//! alone, its error naming the line.

use std::io::{BufRead, BufReader};

use super::super::super::{ApiError, ErrorCode};
use super::super::intake::{Intake, Place, Raw};
use super::body::ItemRequest;
use super::{ChunkReader, holds_nul};

/// Reads every line of `reader` into `intake`.
pub(in crate::api::batches) fn read(
    mut reader: ChunkReader,
    intake: &mut Intake,
) -> Result<(), ApiError> {
    let read = read_lines(&mut reader, intake);
    match reader.failure() {
        Some(e) => Err(e),
        None => read,
    }
}

fn read_lines(reader: &mut ChunkReader, intake: &mut Intake) -> Result<(), ApiError> {
    let mut lines = BufReader::with_capacity(1 << 16, reader);
    let mut line = Vec::new();
    let mut number = 0;
    loop {
        line.clear();
        let read = lines.read_until(b'\n', &mut line);
        if read.map_err(|_| broken())? == 0 {
            return Ok(());
        }
        number += 1;
        let text = line.trim_ascii();
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        if text.is_empty() {
            continue;
        }
        let (custom_id, raw) = item(text);
        intake.push(custom_id, raw, Place::Line(number))?;
    }
}

/// The item on one (non-blank) line.
fn item(text: &[u8]) -> (Option<String>, Raw) {
    let unreadable = |message: String| Raw::Unreadable {
        message,
        input: None,
        sent: serde_json::to_string(&String::from_utf8_lossy(text))
            .unwrap_or_else(|_| "null".to_owned()),
    };
    match serde_json::from_slice::<ItemRequest>(text) {
        Ok(item) if item.inputs.as_ref().is_some_and(holds_nul) => (
            item.custom_id,
            unreadable("holds a NUL character (\\u0000), which no field accepts".to_owned()),
        ),
        Ok(item) => (item.custom_id, Raw::Inputs(item.inputs)),
        Err(e) => (
            None,
            unreadable(format!("not an item object {{custom_id?, inputs}}: {e}")),
        ),
    }
}

/// A read that failed for a reason the reader did not keep (it keeps every one).
fn broken() -> ApiError {
    ApiError::new(ErrorCode::Internal, "internal server error")
}
