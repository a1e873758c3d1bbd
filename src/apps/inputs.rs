//! Submit-time validation of the `inputs` array of a generate request against an
//! application's declared [`InputSpec`]s, producing the [`Inputs`] map that templates see.
//!
//! Rules (every error names the input it is about):
//! - the array items are `{id: string, value: [string]}`; ids must be declared and unique;
//! - blank values (empty or whitespace only) are dropped, so `[""]` counts as no value;
//! - a required input must end up with at least one value; an optional one may be empty;
//! - text: the count must be within `min_fields..=max_fields` when options are declared;
//! - dropdown: at most one value, and it must be one of `list`;
//! - file: at most `max_files` ids. Whether each id names a usable file of the caller's
//!   organisation is checked against the store, by `crate::files::rules`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::spec::{InputOptions, InputSpec, InputType};

/// Validated inputs of one generate request: every declared input name maps to its list of
/// (non-blank) values, empty when an optional input was not given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Inputs(pub BTreeMap<String, Vec<String>>);

impl Inputs {
    /// The values given for `name` (empty when not given or not declared).
    pub(crate) fn values(&self, name: &str) -> &[String] {
        self.0.get(name).map(Vec::as_slice).unwrap_or_default()
    }
}

/// Why a generate request's `inputs` were refused; `message` is meant for the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub(crate) struct InputError {
    /// The input the error is about, when it is about one.
    pub(crate) input: Option<String>,
    /// A human-readable message that names the input.
    pub(crate) message: String,
}

impl InputError {
    fn general(message: impl Into<String>) -> Self {
        InputError {
            input: None,
            message: message.into(),
        }
    }

    /// An error about the input named `input`.
    pub(crate) fn about(input: &str, message: impl Into<String>) -> Self {
        InputError {
            input: Some(input.to_owned()),
            message: message.into(),
        }
    }
}

/// Validates the raw JSON `inputs` of a generate request against `specs`.
pub(crate) fn validate(specs: &[InputSpec], raw: Option<&Value>) -> Result<Inputs, InputError> {
    let items = raw
        .and_then(Value::as_array)
        .ok_or_else(|| InputError::general("inputs must be an array of {id, value}"))?;
    let mut given: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (index, item) in items.iter().enumerate() {
        let Some(object) = item.as_object() else {
            return Err(InputError::general(format!(
                "inputs[{index}] must be an object {{id, value}}"
            )));
        };
        let Some(id) = object.get("id").and_then(Value::as_str) else {
            return Err(InputError::general(format!(
                "inputs[{index}]: id must be a string"
            )));
        };
        if !specs.iter().any(|spec| spec.name == id) {
            return Err(InputError::about(id, unknown_message(specs, id)));
        }
        let Some(values) = object.get("value").and_then(string_array) else {
            return Err(InputError::about(
                id,
                format!("input '{id}': value must be an array of strings"),
            ));
        };
        if given.insert(id, values).is_some() {
            return Err(InputError::about(
                id,
                format!("input '{id}' is given twice"),
            ));
        }
    }

    let mut out = BTreeMap::new();
    for spec in specs {
        let values: Vec<String> = given
            .remove(spec.name.as_str())
            .unwrap_or_default()
            .into_iter()
            .filter(|value| !value.trim().is_empty())
            .collect();
        if values.is_empty() {
            if spec.required {
                return Err(InputError::about(
                    &spec.name,
                    format!("missing required input '{}'", spec.name),
                ));
            }
        } else {
            check_values(spec, &values)?;
        }
        out.insert(spec.name.clone(), values);
    }
    Ok(Inputs(out))
}

/// `Some(values)` when `value` is an array of strings.
fn string_array(value: &Value) -> Option<Vec<String>> {
    value
        .as_array()?
        .iter()
        .map(|v| v.as_str().map(str::to_owned))
        .collect()
}

fn unknown_message(specs: &[InputSpec], id: &str) -> String {
    if specs.is_empty() {
        return format!("unknown input '{id}'; this application takes no inputs");
    }
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    format!(
        "unknown input '{id}'; this application takes: {}",
        names.join(", ")
    )
}

/// Type-specific checks of a non-empty list of values.
fn check_values(spec: &InputSpec, values: &[String]) -> Result<(), InputError> {
    let name = spec.name.as_str();
    let count = values.len();
    match (spec.input_type, &spec.options) {
        (InputType::Text, Some(InputOptions::Text(text))) => {
            let (min, max) = (text.min_fields as usize, text.max_fields as usize);
            if count < min || count > max {
                let takes = match (min, max) {
                    _ if min == max => format!("exactly {max} value{}", plural(max)),
                    (0, _) => format!("at most {max} value{}", plural(max)),
                    _ => format!("between {min} and {max} values"),
                };
                return Err(InputError::about(
                    name,
                    format!("input '{name}' takes {takes}, got {count}"),
                ));
            }
        }
        (InputType::Dropdown, options) => {
            if count > 1 {
                return Err(InputError::about(
                    name,
                    format!("input '{name}' takes one value, got {count}"),
                ));
            }
            if let Some(InputOptions::Dropdown(dropdown)) = options
                && let Some(bad) = values.iter().find(|value| !dropdown.list.contains(value))
            {
                let choices = dropdown.list.join(", ");
                return Err(InputError::about(
                    name,
                    format!("input '{name}': '{bad}' is not one of: {choices}"),
                ));
            }
        }
        (InputType::File, options) => {
            if let Some(InputOptions::File(file)) = options
                && count > file.max_files as usize
            {
                let max = file.max_files;
                return Err(InputError::about(
                    name,
                    format!("input '{name}' takes at most {max} files, got {count}"),
                ));
            }
        }
        (InputType::Media | InputType::Text, _) => {}
    }
    Ok(())
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
