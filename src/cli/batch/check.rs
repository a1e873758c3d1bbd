//! Checking rows against the application's inputs (Writer's application object) before
//! anything is sent: required inputs, unknown inputs, the options of dropdowns, how many
//! values a text input takes, and item names (`custom_id`, else the row number: at most 255
//! characters, unique in the file).
//! The server checks again (files, for instance, only it can); these checks only spare a
//! round trip and name the row and column at fault.
//!
//! A CSV column that names no input is an error of the whole file, not of its rows: a typo
//! in the header would otherwise send every row without that input.

use std::collections::{HashMap, HashSet};

use anyhow::bail;
use serde_json::Value;

use super::rows::{CUSTOM_ID, Format, Row, Rows};

/// Characters a `custom_id` may have at most (as the batch route takes it).
const MAX_CUSTOM_ID: usize = 255;

/// One input of the application, as its object describes it.
struct Input<'a> {
    name: &'a str,
    required: bool,
    /// The choices of a dropdown.
    list: Option<Vec<&'a str>>,
    /// How many values a text input takes.
    fields: Option<(u64, u64)>,
}

/// Why each row cannot be sent (`None`: it can), in row order; an error when the CSV header
/// names something that is no input of the application.
pub(super) fn check(app: &Value, rows: &Rows) -> anyhow::Result<Vec<Option<String>>> {
    let inputs: Vec<Input> = app["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| {
            Some(Input {
                name: i["name"].as_str()?,
                required: i["required"] == Value::Bool(true),
                list: i["options"]["list"]
                    .as_array()
                    .map(|l| l.iter().filter_map(Value::as_str).collect()),
                fields: (i["input_type"] == "text")
                    .then(|| {
                        let options = &i["options"];
                        Some((
                            options["min_fields"].as_u64()?,
                            options["max_fields"].as_u64()?,
                        ))
                    })
                    .flatten(),
            })
        })
        .collect();
    let names: Vec<&str> = inputs.iter().map(|i| i.name).collect();
    let mut seen_columns = HashSet::new();
    for column in &rows.header {
        if !seen_columns.insert(column.as_str()) {
            bail!("the header names column '{column}' twice");
        }
        if column != CUSTOM_ID && !names.contains(&column.as_str()) {
            bail!(
                "column '{column}' is not an input of application '{}' (its inputs: {}; \
                 a column '{CUSTOM_ID}' names the items)",
                app["id"].as_str().unwrap_or_default(),
                names.join(", ")
            );
        }
    }
    let what = match rows.format {
        Format::Csv => "column",
        Format::Jsonl => "input",
    };
    let mut custom_ids: HashMap<String, usize> = HashMap::new();
    let verdicts = rows
        .rows
        .iter()
        .map(|row| {
            let problem = row_problem(row, &inputs, what, &mut custom_ids)?;
            Some(format!("row {} (line {}), {problem}", row.number, row.line))
        })
        .collect();
    Ok(verdicts)
}

/// What is wrong with `row`, if anything.
fn row_problem(
    row: &Row,
    inputs: &[Input],
    what: &str,
    custom_ids: &mut HashMap<String, usize>,
) -> Option<String> {
    if let Some(problem) = &row.problem {
        return Some(problem.clone());
    }
    let id = row.item_id();
    if id.chars().count() > MAX_CUSTOM_ID {
        return Some(format!(
            "{CUSTOM_ID}: longer than {MAX_CUSTOM_ID} characters"
        ));
    }
    if let Some(first) = custom_ids.get(&id) {
        return Some(format!(
            "{CUSTOM_ID}: '{id}' already names row {first} (a row without one is named by its number)"
        ));
    }
    custom_ids.insert(id, row.number);
    let mut given: HashMap<&str, &[String]> = HashMap::new();
    for (name, values) in &row.inputs {
        if !inputs.iter().any(|i| i.name == name) {
            return Some(format!("{what} '{name}': not an input of the application"));
        }
        if given.insert(name, values).is_some() {
            return Some(format!("{what} '{name}': given twice"));
        }
    }
    for input in inputs {
        let Some(values) = given.get(input.name) else {
            if input.required {
                return Some(format!("{what} '{}': required, but not given", input.name));
            }
            continue;
        };
        if let Some(list) = &input.list
            && let Some(bad) = values.iter().find(|v| !list.contains(&v.as_str()))
        {
            return Some(format!(
                "{what} '{}': '{bad}' is not one of: {}",
                input.name,
                list.join(", ")
            ));
        }
        if let Some((min, max)) = input.fields {
            let n = values.len() as u64;
            if n < min || n > max {
                return Some(format!(
                    "{what} '{}': {n} values, where it takes {min} to {max} (separate them with |)",
                    input.name
                ));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::check;
    use crate::cli::batch::rows::{Format, read};

    fn echo() -> serde_json::Value {
        json!({"id": "echo", "inputs": [
            {"name": "Text", "input_type": "text", "required": true,
             "options": {"min_fields": 1, "max_fields": 2}},
            {"name": "Mode", "input_type": "dropdown", "required": false,
             "options": {"list": ["plain", "loud"]}},
        ]})
    }

    #[test]
    fn each_bad_row_is_named_with_its_column_and_the_good_ones_pass() {
        let csv = "\u{feff}custom_id,Text,Mode\n\
            a,one,plain\n\
            b,one|two|three,\n\
            a,dup,\n\
            ,,loud\n\
            3,clash,\n\
            x,short\n";
        let rows = read(Format::Csv, csv.as_bytes()).unwrap();
        let verdicts = check(&echo(), &rows).unwrap();
        let expected = [
            None,
            Some(
                "row 2 (line 3), column 'Text': 3 values, where it takes 1 to 2 (separate them with |)",
            ),
            Some(
                "row 3 (line 4), custom_id: 'a' already names row 1 (a row without one is named by its number)",
            ),
            Some("row 4 (line 5), column 'Text': required, but not given"),
            None,
            Some("row 6 (line 7), has 2 cells where the header has 3"),
        ];
        let verdicts: Vec<Option<&str>> = verdicts.iter().map(Option::as_deref).collect();
        assert_eq!(verdicts, expected);
    }

    #[test]
    fn jsonl_rows_are_items_and_anything_else_is_named() {
        let jsonl = r#"{"custom_id": "a", "inputs": [{"id": "Text", "value": ["x"]}, {"id": "Mode", "value": ["shout"]}]}

{"Text": "flat"}
{"inputs": [{"id": "Colour", "value": ["red"]}]}
{"inputs": [{"id": "Text", "value": "not a list"}]}
not json
{"inputs": [{"id": "Text", "value": ["fine"]}]}
"#;
        let rows = read(Format::Jsonl, jsonl.as_bytes()).unwrap();
        let verdicts = check(&echo(), &rows).unwrap();
        assert_eq!(
            verdicts[0].as_deref(),
            Some("row 1 (line 1), input 'Mode': 'shout' is not one of: plain, loud")
        );
        assert_eq!(
            verdicts[1].as_deref(),
            Some("row 2 (line 3), has an unknown field 'Text'")
        );
        assert_eq!(
            verdicts[2].as_deref(),
            Some("row 3 (line 4), input 'Colour': not an input of the application")
        );
        assert_eq!(
            verdicts[3].as_deref(),
            Some("row 4 (line 5), input 'Text': value must be a list of strings")
        );
        assert!(
            verdicts[4]
                .as_deref()
                .unwrap()
                .starts_with("row 5 (line 6), is not JSON")
        );
        assert_eq!(verdicts[5], None);
        assert_eq!(rows.rows[5].item_id(), "6");
    }

    #[test]
    fn a_header_naming_no_input_refuses_the_whole_file() {
        let rows = read(Format::Csv, b"Text,Moode\na,b\n").unwrap();
        let error = check(&echo(), &rows).unwrap_err().to_string();
        assert!(
            error.contains("column 'Moode' is not an input of application 'echo'"),
            "{error}"
        );
    }
}
