//! The checks of a file or media input against the files it names, at submit time (the
//! caller's organisation's files; 400 naming the input) and again when the job runs (a file
//! may have been deleted, failed or finished processing since).
//!
//! A file input takes files whose type is in `file_types` (when options are declared), no
//! larger than `max_file_size_mb`, with at most `max_word_count` words once its text is
//! known. A media input takes images (png, jpg, webp, gif; within `file_types` when
//! declared) no larger than `max_image_size_mb`. A file whose processing failed is refused.

use crate::apps::{InputError, InputOptions, InputSpec, InputType};
use crate::store::{FileRecord, StoreError, WriterStatus};

use super::FileKind;

const MB: i64 = 1024 * 1024;

/// Why a submitted job's files were refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    /// An input names a file it cannot take (a 400).
    #[error(transparent)]
    Input(#[from] InputError),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Checks file `id` given to `spec` at submit time; `record` is the caller's file with that
/// id, if there is one. A file still `in_progress` passes (the job waits for it).
pub(crate) fn check_at_submit(
    spec: &InputSpec,
    id: &str,
    record: Option<&FileRecord>,
) -> Result<(), Refusal> {
    let name = &spec.name;
    let record = record
        .ok_or_else(|| InputError::about(name, format!("input '{name}': file '{id}' not found")))?;
    suits(spec, record).map_err(|message| InputError::about(name, message))?;
    Ok(())
}

/// Checks file `id` given to `spec` when its job runs; `record` is the file (with its text)
/// if it still exists. Answers the record, or why the job cannot run.
pub(crate) fn check_at_run<'a>(
    spec: &InputSpec,
    id: &str,
    record: Option<&'a FileRecord>,
) -> Result<&'a FileRecord, String> {
    let name = &spec.name;
    let record = record.ok_or_else(|| format!("input '{name}': file '{id}' was deleted"))?;
    suits(spec, record)?;
    Ok(record)
}

/// The rules a file must meet for `spec`, as a message naming the input.
fn suits(spec: &InputSpec, file: &FileRecord) -> Result<(), String> {
    let name = &spec.name;
    let id = &file.id;
    if file.status == WriterStatus::Failed {
        let why = file.error.as_deref().unwrap_or("unknown error");
        return Err(format!(
            "input '{name}': file '{id}' could not be processed: {why}"
        ));
    }
    let is_image = FileKind::from_extension(&file.kind).is_some_and(FileKind::is_image);
    if spec.input_type == InputType::Media && !is_image {
        return Err(format!(
            "input '{name}': file '{id}' is a {} file, not an image (png, jpg, webp or gif)",
            file.kind
        ));
    }
    let (types, max_mb, max_words) = match &spec.options {
        Some(InputOptions::File(o)) => (
            Some(&o.file_types),
            Some(o.max_file_size_mb),
            Some(o.max_word_count),
        ),
        Some(InputOptions::Media(o)) => (Some(&o.file_types), Some(o.max_image_size_mb), None),
        _ => (None, None, None),
    };
    if let Some(types) = types
        && !types.iter().any(|t| canonical(t) == file.kind)
    {
        return Err(format!(
            "input '{name}': file '{id}' is a {} file; this input takes {}",
            file.kind,
            types.join(", ")
        ));
    }
    if let Some(max_mb) = max_mb
        && file.size > i64::from(max_mb) * MB
    {
        return Err(format!(
            "input '{name}': file '{id}' is {} bytes, over the limit of {max_mb} MB",
            file.size
        ));
    }
    if let (Some(max_words), Some(words)) = (max_words, file.word_count)
        && words > i64::from(max_words)
    {
        return Err(format!(
            "input '{name}': file '{id}' has {words} words, over the limit of {max_words}"
        ));
    }
    Ok(())
}

/// A type as an application lists it, in the canonical spelling of stored files
/// (`JPEG` → `jpg`).
fn canonical(listed: &str) -> String {
    let listed = listed.trim().trim_start_matches('.');
    FileKind::from_extension(listed)
        .map_or_else(|| listed.to_ascii_lowercase(), |k| k.extension().to_owned())
}
