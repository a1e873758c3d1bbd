//! Checks and conversions of single fields of an application file: the id syntax, RFC 3339
//! timestamps, durations in milliseconds, and byte offsets to file lines.

use std::time::{Duration, SystemTime};

/// Ids that would collide with static path segments of the API (`preview`: the route
/// `/v1/scriptorium/applications/preview`).
const RESERVED_IDS: &[&str] = &["jobs", "batches", "preview"];
/// Longest accepted application id.
pub(crate) const MAX_ID_LEN: usize = 128;

/// An id is `[A-Za-z0-9_-]+`, at most [`MAX_ID_LEN`] long, and not a reserved path segment.
pub(crate) fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty()
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    {
        return Err(format!(
            "id '{id}' must be made of letters, digits, '-' and '_' only"
        ));
    }
    if id.len() > MAX_ID_LEN {
        return Err(format!("id must be at most {MAX_ID_LEN} characters long"));
    }
    if RESERVED_IDS.contains(&id) {
        return Err(format!(
            "id '{id}' is reserved (it is a path segment of the API)"
        ));
    }
    Ok(())
}

/// A duration in whole milliseconds, saturating.
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `created_at` as a TOML string or a TOML offset date-time.
pub(crate) fn parse_created_at(value: &toml::Value) -> Option<SystemTime> {
    match value {
        toml::Value::String(s) => parse_rfc3339(s),
        toml::Value::Datetime(d) => parse_rfc3339(&d.to_string()),
        _ => None,
    }
}

/// RFC 3339 with `Z` or a `±HH:MM` offset (humantime alone accepts only UTC).
pub(crate) fn parse_rfc3339(s: &str) -> Option<SystemTime> {
    let s = s.trim().to_ascii_uppercase();
    if let Ok(time) = humantime::parse_rfc3339(&s) {
        return Some(time);
    }
    let (base, offset) = s.split_at_checked(s.len().checked_sub(6)?)?;
    let (sign, hours, minutes) = (offset.get(..1)?, offset.get(1..3)?, offset.get(4..)?);
    if offset.get(3..4)? != ":" {
        return None;
    }
    let (hours, minutes) = (hours.parse::<u64>().ok()?, minutes.parse::<u64>().ok()?);
    if hours > 23 || minutes > 59 {
        return None;
    }
    let shift = Duration::from_secs(hours * 3600 + minutes * 60);
    let local = humantime::parse_rfc3339(&format!("{base}Z")).ok()?;
    match sign {
        "+" => local.checked_sub(shift),
        "-" => local.checked_add(shift),
        _ => None,
    }
}

/// 1-based line of byte `offset` in `text`.
pub(crate) fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

/// The file line of a template's first line, given the offset of its TOML string literal:
/// a multi-line string's newline right after the opening quotes is not part of the value.
pub(crate) fn template_first_line(text: &str, literal_start: usize) -> usize {
    let line = line_of(text, literal_start);
    let rest = text.get(literal_start..).unwrap_or_default();
    let skips_newline = ["\"\"\"\n", "\"\"\"\r\n", "'''\n", "'''\r\n"]
        .iter()
        .any(|p| rest.starts_with(p));
    if skips_newline { line + 1 } else { line }
}
