//! An application definition as a JSON document (the API's form of an application file),
//! validated by the very rules of the file format.
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
    file.write_document(object)?;
    match parse(&file.text, created_at) {
        Ok(loaded) => Ok(loaded.app),
        Err(mut problems) => {
            problems.sort_by_key(|(line, _)| *line);
            Err(problems.into_iter().map(|p| file.locate(p)).collect())
        }
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

    fn write_document(&mut self, object: &Map<String, Value>) -> Result<(), Vec<String>> {
        // A problem spanning the whole document (a missing key) lands on this first line.
        self.line(Origin::Document, "# definition");
        let inputs = object.get("inputs").and_then(inputs_as_tables);
        for (key, value) in object {
            if value.is_null() || (key == "inputs" && inputs.is_some()) {
                continue;
            }
            match (TEMPLATES.iter().find(|t| **t == key), value.as_str()) {
                (Some(field), Some(text)) => self.write_template(field, text),
                _ => {
                    let value = inline(value).map_err(|e| vec![format!("{key}{e}")])?;
                    self.line(
                        Origin::Field(key.clone()),
                        &format!("{} = {value}", quoted(key)),
                    );
                }
            }
        }
        for (i, input) in inputs.unwrap_or_default().into_iter().enumerate() {
            let at = format!("inputs[{i}]");
            self.line(Origin::Field(at.clone()), "[[inputs]]");
            for (key, value) in input.iter().filter(|(_, v)| !v.is_null()) {
                let path = format!("{at}.{key}");
                let value = inline(value).map_err(|e| vec![format!("{path}{e}")])?;
                self.line(Origin::Field(path), &format!("{} = {value}", quoted(key)));
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
            let mut escaped = escape(line);
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
                parts.push(format!("{} = {item}", quoted(key)));
            }
            format!("{{ {} }}", parts.join(", "))
        }
    })
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
