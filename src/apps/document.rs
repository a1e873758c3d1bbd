//! An application definition as a JSON document (the API's form of an application file),
//! validated by the very rules of the file format; and the conversions between the two that
//! `apps push` and `apps pull` make.
//!
//! Why through TOML: `definition.rs` owns every rule and locates each problem by file line.
//! Rather than keep a second set of rules, the JSON document is written out as a TOML file of
//! known layout (one line per setting, each template as a multi-line string starting on the
//! line after its key, one `[[inputs]]` table per input), parsed by `definition.rs`, and each
//! problem's line is mapped back to the JSON field it came from (and, in a template, the
//! template's own line): `prompt, line 3: ...`, `inputs[1].options: ...`.

use std::fmt::Write;
use std::time::SystemTime;

use serde_json::{Map, Value};

use super::Application;
use super::definition::parse;
use super::render::Problem;

/// Keys whose value is a template, written as multi-line strings so lines carry over.
const TEMPLATES: &[&str] = &["system", "prompt", "title"];
/// The order keys are written in, as in the documented file (templates last, then the
/// inputs); a key not listed (refused when parsed) comes after these.
const KEY_ORDER: &[&str] = &[
    "id",
    "name",
    "status",
    "provider",
    "providers",
    "model",
    "temperature",
    "max_tokens",
    "max_attempts",
    "backoff_initial",
    "backoff_max",
    "max_wait",
    "priority",
    "created_at",
    "system",
    "prompt",
    "title",
];
/// The order of an input's keys.
const INPUT_KEY_ORDER: &[&str] = &["name", "input_type", "required", "description", "options"];

/// Validates a JSON definition whose `id` is already set; `created_at` becomes the
/// application's creation and update time. Fails with every problem, each naming its field.
pub(crate) fn from_json(
    definition: &Value,
    created_at: SystemTime,
) -> Result<Application, Vec<String>> {
    let Some(object) = definition.as_object() else {
        return Err(vec!["the definition must be a JSON object".to_owned()]);
    };
    if object.contains_key("created_at") {
        return Err(vec![
            "created_at: set by the server; leave it out".to_owned(),
        ]);
    }
    let mut file = TomlFile::default();
    // A problem spanning the whole document (a missing key) lands on this first line.
    file.write_document(object, "# definition")?;
    match parse(&file.text, created_at) {
        Ok(loaded) => Ok(loaded.app),
        Err(mut problems) => {
            problems.sort_by_key(|(line, _)| *line);
            Err(problems.into_iter().map(|p| file.locate(p)).collect())
        }
    }
}

/// A JSON definition as the text of an application file (as `apps pull` writes it), with
/// `header` as its first line; `Err` names a field whose value TOML cannot hold (a null
/// inside a list or table). Nulls at the top of the document and of an input are left out,
/// as they mean "not given".
pub(crate) fn file_text(definition: &Map<String, Value>, header: &str) -> Result<String, String> {
    let mut file = TomlFile::default();
    file.write_document(definition, header)
        .map_err(|mut problems| problems.remove(0))?;
    Ok(file.text)
}

/// The text of an application file as a JSON definition (as `apps push` sends it), without
/// `created_at`, which the server sets. `Err` is TOML's own message with its line.
pub(crate) fn definition_of(text: &str) -> Result<Map<String, Value>, String> {
    let mut table: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    table.remove("created_at");
    match serde_json::to_value(table) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err("not a table".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

/// Where a line of the written file came from.
enum Origin {
    /// A line of no field (a problem there is about the whole document).
    Document,
    /// A setting (or an input's table header, or one of its settings).
    Field(String),
    /// Line `n` (1-based) of a template.
    Template(&'static str, usize),
}

/// The TOML text being written and, for each of its lines, where it came from.
#[derive(Default)]
struct TomlFile {
    text: String,
    origins: Vec<Origin>,
}

impl TomlFile {
    fn line(&mut self, origin: Origin, text: &str) {
        self.text.push_str(text);
        self.text.push('\n');
        self.origins.push(origin);
    }

    fn write_document(
        &mut self,
        object: &Map<String, Value>,
        header: &str,
    ) -> Result<(), Vec<String>> {
        self.line(Origin::Document, header);
        let inputs = object.get("inputs").and_then(inputs_as_tables);
        for (key, value) in in_order(object, KEY_ORDER) {
            if value.is_null() || (key == "inputs" && inputs.is_some()) {
                continue;
            }
            match (TEMPLATES.iter().find(|t| **t == key), value.as_str()) {
                (Some(field), Some(text)) => self.write_template(field, text),
                _ => {
                    let value = inline(value).map_err(|e| vec![format!("{key}{e}")])?;
                    self.line(
                        Origin::Field(key.clone()),
                        &format!("{} = {value}", key_text(key)),
                    );
                }
            }
        }
        for (i, input) in inputs.unwrap_or_default().into_iter().enumerate() {
            let at = format!("inputs[{i}]");
            self.line(Origin::Field(at.clone()), "");
            self.line(Origin::Field(at.clone()), "[[inputs]]");
            for (key, value) in in_order(input, INPUT_KEY_ORDER).filter(|(_, v)| !v.is_null()) {
                let path = format!("{at}.{key}");
                let value = inline(value).map_err(|e| vec![format!("{path}{e}")])?;
                self.line(Origin::Field(path), &format!("{} = {value}", key_text(key)));
            }
        }
        Ok(())
    }

    /// `key = """` then the template's lines, so its line `n` is the file's `key line + n`.
    fn write_template(&mut self, field: &'static str, text: &str) {
        self.line(
            Origin::Field(field.to_owned()),
            &format!("{field} = \"\"\""),
        );
        let lines: Vec<&str> = text.split('\n').collect();
        let last = lines.len() - 1;
        for (n, line) in lines.into_iter().enumerate() {
            let mut escaped = escape_in_template(line, n == last);
            if n == last {
                escaped.push_str("\"\"\"");
            }
            self.line(Origin::Template(field, n + 1), &escaped);
        }
    }

    /// A problem as `field: reason`, `template, line n: reason`, or the bare reason.
    fn locate(&self, (line, reason): Problem) -> String {
        match line.and_then(|l| self.origins.get(l.checked_sub(1)?)) {
            Some(Origin::Field(path)) => format!("{path}: {reason}"),
            Some(Origin::Template(field, n)) => format!("{field}, line {n}: {reason}"),
            Some(Origin::Document) | None => reason,
        }
    }
}

/// The entries of `object`, those named in `order` first, in that order.
fn in_order<'a>(
    object: &'a Map<String, Value>,
    order: &[&str],
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    let rank = |key: &str| order.iter().position(|k| *k == key).unwrap_or(order.len());
    let mut entries: Vec<_> = object.iter().collect();
    entries.sort_by_key(|(key, _)| rank(key));
    entries.into_iter()
}

/// `inputs` as a list of objects, when it is one (else it is written inline, and refused).
fn inputs_as_tables(value: &Value) -> Option<Vec<&Map<String, Value>>> {
    value.as_array()?.iter().map(Value::as_object).collect()
}

/// A JSON value as an inline TOML value on one line; `Err` names where a null sits inside.
fn inline(value: &Value) -> Result<String, String> {
    Ok(match value {
        Value::Null => return Err(": null is not allowed here".to_owned()),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quoted(s),
        Value::Array(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                parts.push(inline(item).map_err(|e| format!("[{i}]{e}"))?);
            }
            format!("[{}]", parts.join(", "))
        }
        Value::Object(map) => {
            let mut parts = Vec::with_capacity(map.len());
            for (key, item) in map {
                let item = inline(item).map_err(|e| format!(".{key}{e}"))?;
                parts.push(format!("{} = {item}", key_text(key)));
            }
            format!("{{ {} }}", parts.join(", "))
        }
    })
}

/// A key as TOML takes it: bare when it can be, else quoted.
fn key_text(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare { key.to_owned() } else { quoted(key) }
}

/// A line of a multi-line basic string: escaped as [`escape`] does, except that a quote
/// stays as it is unless a quote follows it or it ends the `last` line (where the closing
/// `"""` follows), so templates read as they were written.
fn escape_in_template(line: &str, last: bool) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        let next = chars.peek();
        if c == '"' && next.is_none_or(|n| *n == '"') && (next.is_some() || last) {
            out.push_str("\\\"");
        } else if c == '"' {
            out.push('"');
        } else {
            out.push_str(&escape(c.encode_utf8(&mut [0; 4])));
        }
    }
    out
}

/// A TOML basic string on one line.
fn quoted(s: &str) -> String {
    format!("\"{}\"", escape(s).replace('\n', "\\n"))
}

/// Escapes what a TOML basic string (single or multi-line) cannot hold as it is; newlines
/// are left to the caller.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push('\n'),
            '\t' => out.push('\t'),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}
