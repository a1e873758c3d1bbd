//! Load-time checks of an application's compiled templates against its declared inputs.
//!
//! Three layers, so that a mistake surfaces when the folder is loaded rather than on a request:
//! 1. static analysis with minijinja's `undeclared_variables`: no top-level variable other than
//!    `inputs` and `files` (and the environment's global functions), and no `inputs.X` for an
//!    undeclared X;
//! 2. a lexical scan of `{{ }}` / `{% %}` tags for `inputs["X"]` / `inputs['X']` subscripts
//!    naming an undeclared X (minijinja does not report subscripts);
//! 3. two trial renders, one with every input given sample values and one with every optional
//!    input empty, so that any strict-undefined or runtime error fires now.

use super::inputs::Inputs;
use super::render::{Field, InputFile, InputFiles, Problem, Source, Templates};
use super::spec::{InputOptions, InputSpec, InputType};

/// Runs every check; returns the problems found (empty when the templates are fine).
/// The trial renders run only with `trial` (when the inputs themselves are valid) and only when
/// the static checks found nothing.
pub(crate) fn check_templates(
    templates: &Templates,
    specs: &[InputSpec],
    trial: bool,
) -> Vec<Problem> {
    let globals = templates.globals();
    let declared = |name: &str| specs.iter().any(|spec| spec.name == name);
    let names: Vec<&str> = specs.iter().map(|spec| spec.name.as_str()).collect();
    let declared_list = if names.is_empty() {
        "none".to_owned()
    } else {
        names.join(", ")
    };
    let mut problems = Vec::new();
    for source in templates.sources() {
        let template = source.field.name();
        for var in templates.undeclared(source.field, false) {
            if var != "inputs" && var != "files" && !globals.contains(&var) {
                problems.push((
                    find_line(source, &var),
                    format!("template `{template}` uses unknown variable `{var}`; the variables are `inputs` and `files`"),
                ));
            }
        }
        for path in templates.undeclared(source.field, true) {
            let Some(rest) = path.strip_prefix("inputs.") else {
                continue;
            };
            let name = rest.split('.').next().unwrap_or(rest);
            if !declared(name) {
                problems.push((
                    find_line(source, &format!("inputs.{name}")),
                    format!("template `{template}` refers to inputs.{name}, which is not a declared input (declared: {declared_list})"),
                ));
            }
        }
        for (offset, name) in subscripts(&source.text) {
            if !declared(&name) {
                problems.push((
                    Some(source.file_line(line_at(&source.text, offset))),
                    format!("template `{template}` refers to inputs[\"{name}\"], which is not a declared input (declared: {declared_list})"),
                ));
            }
        }
    }
    if trial && problems.is_empty() {
        problems.extend(trial_renders(templates, specs));
    }
    problems
}

/// Renders every template with sample inputs, then with every optional input empty.
fn trial_renders(templates: &Templates, specs: &[InputSpec]) -> Vec<Problem> {
    let trials = [
        ("sample values for every input", sample_inputs(specs, true)),
        ("every optional input empty", sample_inputs(specs, false)),
    ];
    let trials = trials.map(|(label, inputs)| {
        let files = sample_files(specs, &inputs);
        (label, inputs, files)
    });
    let mut problems = Vec::new();
    for source in templates.sources() {
        let template = source.field.name();
        for (label, inputs, files) in &trials {
            match templates.render_field(source.field, specs, inputs, files) {
                Ok(Some(text)) if text.is_empty() && source.field == Field::Prompt => {
                    problems.push((
                        Some(source.first_line),
                        format!("template `{template}` renders to an empty text with {label}"),
                    ));
                    break;
                }
                Ok(_) => {}
                Err(e) => {
                    let detail = e.detail().map(|d| format!(": {d}")).unwrap_or_default();
                    problems.push((
                        e.line().map(|line| source.file_line(line)),
                        format!(
                            "template `{template}` fails a trial render with {label}: {}{detail}",
                            e.kind()
                        ),
                    ));
                    break; // the other trial would most likely repeat the same error
                }
            }
        }
    }
    problems
}

/// Inputs for a trial render: sample values for required inputs, and for optional ones too
/// when `optional_given`.
pub(crate) fn sample_inputs(specs: &[InputSpec], optional_given: bool) -> Inputs {
    let map = specs
        .iter()
        .map(|spec| {
            let values = if spec.required || optional_given {
                sample_values(spec)
            } else {
                Vec::new()
            };
            (spec.name.clone(), values)
        })
        .collect();
    Inputs(map)
}

fn sample_values(spec: &InputSpec) -> Vec<String> {
    match (&spec.options, spec.input_type) {
        (Some(InputOptions::Text(text)), _) => {
            let count = text.min_fields.max(1).min(text.max_fields) as usize;
            vec!["sample".to_owned(); count]
        }
        (Some(InputOptions::Dropdown(dropdown)), _) => {
            dropdown.list.iter().take(1).cloned().collect()
        }
        (_, InputType::File | InputType::Media) => vec!["sample-file-id".to_owned()],
        _ => vec!["sample".to_owned()],
    }
}

/// A sample file for each sample file id of a file or media input.
fn sample_files(specs: &[InputSpec], inputs: &Inputs) -> InputFiles {
    specs
        .iter()
        .filter(|spec| spec.input_type.takes_files())
        .map(|spec| {
            let files = inputs
                .values(&spec.name)
                .iter()
                .map(|id| InputFile {
                    id: id.clone(),
                    name: "sample.txt".to_owned(),
                    kind: "txt".to_owned(),
                    text: "sample text".to_owned(),
                })
                .collect();
            (spec.name.clone(), files)
        })
        .collect()
}

/// The file line of the first occurrence of `needle` as a whole identifier in the template,
/// or the template's first line.
fn find_line(source: &Source, needle: &str) -> Option<usize> {
    let text = &source.text;
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let found = text.match_indices(needle).find(|(at, _)| {
        let before = text[..*at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        !before.is_some_and(is_ident) && !after.is_some_and(is_ident)
    });
    Some(match found {
        Some((at, _)) => source.file_line(line_at(text, at)),
        None => source.first_line,
    })
}

/// 1-based line of byte `offset` in `text`.
fn line_at(text: &str, offset: usize) -> usize {
    text[..offset].matches('\n').count() + 1
}

/// Every `inputs["X"]` / `inputs['X']` inside a `{{ }}` or `{% %}` tag: (byte offset, X).
pub(crate) fn subscripts(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while let Some(found) = text[pos..].find(['{']) {
        let open = pos + found;
        let close = if text[open..].starts_with("{{") {
            "}}"
        } else if text[open..].starts_with("{%") {
            "%}"
        } else {
            pos = open + 1;
            continue;
        };
        let start = open + 2;
        let end = text[start..].find(close).map_or(text.len(), |i| start + i);
        scan_tag(&text[start..end], start, &mut out);
        pos = end;
    }
    out
}

/// Finds `inputs [ 'X' ]` in the inside of one tag, which starts at byte `base` of the template.
fn scan_tag(tag: &str, base: usize, out: &mut Vec<(usize, String)>) {
    for (at, word) in tag.match_indices("inputs") {
        let before = tag[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.') {
            continue;
        }
        let Some(rest) = tag[at + word.len()..].trim_start().strip_prefix('[') else {
            continue;
        };
        let rest = rest.trim_start();
        let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let body = &rest[1..];
        let Some(close) = body.find(quote) else {
            continue;
        };
        let name = &body[..close];
        if !name.contains('\\') && body[close + 1..].trim_start().starts_with(']') {
            out.push((base + at, name.to_owned()));
        }
    }
}
