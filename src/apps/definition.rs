//! One application file: the raw TOML shape ([`RawApp`], unknown keys refused), and its
//! validation into an [`Application`], collecting every problem with the file line it is on.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use toml::Spanned;

use super::checks::check_templates;
use super::fields::{check_id, line_of, millis, parse_created_at, template_first_line};
use super::render::{Field, Problem, Source, Templates};
use super::spec::{InputSpec, InputType, parse_options};
use super::{AppStatus, Application, RetryPolicy};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    id: Spanned<String>,
    name: Spanned<String>,
    status: AppStatus,
    provider: Option<Spanned<String>>,
    model: Option<Spanned<String>>,
    temperature: Option<Spanned<f32>>,
    max_tokens: Option<Spanned<u32>>,
    max_attempts: Option<Spanned<u32>>,
    backoff_initial: Option<Spanned<String>>,
    backoff_max: Option<Spanned<String>>,
    created_at: Option<Spanned<toml::Value>>,
    system: Option<Spanned<String>>,
    prompt: Spanned<String>,
    title: Option<Spanned<String>>,
    #[serde(default)]
    inputs: Vec<Spanned<RawInput>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawInput {
    name: Spanned<String>,
    input_type: InputType,
    required: bool,
    description: Option<String>,
    options: Option<Spanned<toml::Value>>,
}

/// A successfully loaded application and the file line of its `id`.
pub(crate) struct Loaded {
    pub app: Application,
    pub id_line: usize,
}

/// Reads and validates one application file.
pub(crate) fn load_file(path: &Path) -> Result<Loaded, Vec<Problem>> {
    let text =
        std::fs::read_to_string(path).map_err(|e| vec![(None, format!("cannot read: {e}"))])?;
    let mtime = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .map_err(|e| vec![(None, format!("cannot read the modification time: {e}"))])?;
    parse(&text, mtime)
}

/// Validates the text of one application file; `mtime` is the file's modification time.
pub(crate) fn parse(text: &str, mtime: SystemTime) -> Result<Loaded, Vec<Problem>> {
    let raw: RawApp = toml::from_str(text).map_err(|e| {
        let line = e.span().map(|span| line_of(text, span.start));
        vec![(line, e.message().to_owned())]
    })?;
    let mut problems: Vec<Problem> = Vec::new();
    let at = |span: std::ops::Range<usize>| Some(line_of(text, span.start));

    let id = raw.id.get_ref();
    if let Err(reason) = check_id(id) {
        problems.push((at(raw.id.span()), reason));
    }
    let mut non_blank = |field: &str, value: &Spanned<String>| {
        if value.get_ref().trim().is_empty() {
            problems.push((at(value.span()), format!("{field} must not be blank")));
        }
    };
    non_blank("name", &raw.name);
    for (field, value) in [("provider", &raw.provider), ("model", &raw.model)] {
        if let Some(value) = value {
            non_blank(field, value);
        }
    }
    if let Some(t) = &raw.temperature
        && !(0.0..=2.0).contains(t.get_ref())
    {
        problems.push((
            at(t.span()),
            format!("temperature must be between 0 and 2, got {}", t.get_ref()),
        ));
    }
    if let Some(n) = raw.max_tokens.as_ref().filter(|n| *n.get_ref() == 0) {
        problems.push((at(n.span()), "max_tokens must be greater than 0".into()));
    }
    if let Some(n) = raw.max_attempts.as_ref().filter(|n| *n.get_ref() == 0) {
        problems.push((at(n.span()), "max_attempts must be at least 1".into()));
    }
    let mut duration = |field: &str, value: &Option<Spanned<String>>, default: u64| match value {
        None => Duration::from_secs(default),
        Some(v) => humantime::parse_duration(v.get_ref().trim()).unwrap_or_else(|e| {
            problems.push((
                at(v.span()),
                format!("{field} must be a duration like \"1s\" or \"500ms\": {e}"),
            ));
            Duration::from_secs(default)
        }),
    };
    let backoff_initial = duration("backoff_initial", &raw.backoff_initial, 1);
    let backoff_max = duration("backoff_max", &raw.backoff_max, 60);
    if backoff_max < backoff_initial {
        let span = raw
            .backoff_max
            .as_ref()
            .or(raw.backoff_initial.as_ref())
            .map(Spanned::span);
        problems.push((
            span.and_then(at),
            "backoff_max must not be shorter than backoff_initial".into(),
        ));
    }
    let created_at = match &raw.created_at {
        None => mtime,
        Some(value) => parse_created_at(value.get_ref()).unwrap_or_else(|| {
            problems.push((
                at(value.span()),
                "created_at must be an RFC 3339 timestamp with an offset, e.g. \"2025-01-01T00:00:00Z\"".into(),
            ));
            mtime
        }),
    };

    let mut inputs = Vec::new();
    let mut input_problems = Vec::new();
    for raw_input in raw.inputs {
        let line = at(raw_input.span());
        let raw_input = raw_input.into_inner();
        let name = raw_input.name.get_ref().clone();
        if name.trim().is_empty() {
            input_problems.push((
                at(raw_input.name.span()),
                "input name must not be blank".to_owned(),
            ));
        } else if inputs.iter().any(|i: &InputSpec| i.name == name) {
            input_problems.push((
                at(raw_input.name.span()),
                format!("input '{name}' is declared twice"),
            ));
        }
        let options_line = raw_input
            .options
            .as_ref()
            .map(|o| o.span())
            .and_then(at)
            .or(line);
        let options = parse_options(
            raw_input.input_type,
            raw_input.options.map(Spanned::into_inner),
        )
        .unwrap_or_else(|reasons| {
            input_problems.extend(
                reasons
                    .into_iter()
                    .map(|r| (options_line, format!("input '{name}': {r}"))),
            );
            None
        });
        inputs.push(InputSpec {
            name,
            input_type: raw_input.input_type,
            required: raw_input.required,
            description: raw_input.description,
            options,
        });
    }
    let inputs_ok = input_problems.is_empty();
    problems.extend(input_problems);

    let sources = [
        (Field::System, raw.system),
        (Field::Prompt, Some(raw.prompt)),
        (Field::Title, raw.title),
    ]
    .into_iter()
    .filter_map(|(field, value)| {
        let value = value?;
        let first_line = template_first_line(text, value.span().start);
        Some(Source {
            field,
            text: value.into_inner(),
            first_line,
        })
    })
    .collect();
    let templates = match Templates::compile(sources) {
        Ok(templates) => {
            if inputs_ok {
                problems.extend(check_templates(&templates, &inputs));
            }
            Some(templates)
        }
        Err(errors) => {
            problems.extend(errors);
            None
        }
    };
    let Some(templates) = templates.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    let id_line = line_of(text, raw.id.span().start);
    let app = Application {
        id: raw.id.into_inner(),
        name: raw.name.into_inner(),
        status: raw.status,
        inputs,
        created_at,
        updated_at: mtime.max(created_at),
        provider: raw
            .provider
            .map_or_else(|| "default".to_owned(), Spanned::into_inner),
        model: raw.model.map(Spanned::into_inner),
        temperature: raw.temperature.map(Spanned::into_inner),
        max_tokens: raw.max_tokens.map(Spanned::into_inner),
        retry: RetryPolicy {
            max_attempts: raw.max_attempts.map_or(3, Spanned::into_inner),
            backoff_initial_ms: millis(backoff_initial),
            backoff_max_ms: millis(backoff_max),
        },
        templates,
    };
    Ok(Loaded { app, id_line })
}
