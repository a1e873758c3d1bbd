//! One application file: the raw TOML shape ([`RawApp`], unknown keys refused), and its
//! validation into an [`Application`], collecting every problem with the file line it is on.

use std::path::Path;
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use sha2::{Digest, Sha256};
use toml::Spanned;

use super::checks::check_templates;
use super::fields::{check_id, line_of, millis, parse_created_at, template_first_line};
use super::render::{Field, Problem, Source, Templates};
use super::spec::{InputSpec, InputType, parse_options};
use super::{AppStatus, Application};
use crate::providers::DEFAULT_PROVIDER;
use crate::store::{Priority, RetryPolicy};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    id: Spanned<String>,
    name: Spanned<String>,
    status: AppStatus,
    provider: Option<Spanned<String>>,
    providers: Option<Spanned<Vec<Spanned<String>>>>,
    model: Option<Spanned<String>>,
    temperature: Option<Spanned<f32>>,
    max_tokens: Option<Spanned<u32>>,
    max_attempts: Option<Spanned<u32>>,
    backoff_initial: Option<Spanned<String>>,
    backoff_max: Option<Spanned<String>>,
    max_wait: Option<Spanned<String>>,
    priority: Option<Spanned<String>>,
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

/// A successfully loaded application, the file line of its `id`, and the SHA-256 of its
/// file's text in hex (to tell whether two nodes load the same file).
pub(crate) struct Loaded {
    pub(crate) app: Application,
    pub(crate) id_line: usize,
    pub(crate) digest: String,
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
    let mut problems = Problems {
        text,
        list: Vec::new(),
    };
    let (retry, created_at) = check_settings(&raw, mtime, &mut problems);
    let providers = provider_names(&raw, &mut problems);
    let priority = match &raw.priority {
        None => Priority::Normal,
        Some(value) => Priority::parse(value.get_ref().trim()).unwrap_or_else(|| {
            problems.at(value, "priority must be \"high\", \"normal\" or \"low\"");
            Priority::Normal
        }),
    };
    let before_inputs = problems.list.len();
    let inputs = input_specs(&raw.inputs, &mut problems);
    let inputs_ok = problems.list.len() == before_inputs;

    let fields = [
        (Field::System, raw.system.as_ref()),
        (Field::Prompt, Some(&raw.prompt)),
        (Field::Title, raw.title.as_ref()),
    ];
    let sources = fields
        .into_iter()
        .filter_map(|(field, value)| {
            let value = value?;
            let first_line = template_first_line(text, value.span().start);
            Some(Source {
                field,
                text: value.get_ref().clone(),
                first_line,
            })
        })
        .collect();
    let templates = match Templates::compile(sources) {
        Ok(templates) => {
            problems
                .list
                .extend(check_templates(&templates, &inputs, inputs_ok));
            Some(templates)
        }
        Err(errors) => {
            problems.list.extend(errors);
            None
        }
    };
    let problems = problems.list;
    let Some(templates) = templates.filter(|_| problems.is_empty()) else {
        return Err(problems);
    };
    let app = Application {
        id: raw.id.get_ref().clone().into(),
        name: raw.name.into_inner(),
        status: raw.status,
        inputs,
        created_at,
        updated_at: mtime.max(created_at),
        providers,
        model: raw.model.map(Spanned::into_inner),
        temperature: raw.temperature.map(Spanned::into_inner),
        max_tokens: raw.max_tokens.map(Spanned::into_inner),
        retry,
        priority,
        templates,
        last_deployed_at: (raw.status == AppStatus::Deployed).then_some(mtime.max(created_at)),
        version: None,
        definition: None,
    };
    Ok(Loaded {
        app,
        id_line: line_of(text, raw.id.span().start),
        digest: format!("{:x}", Sha256::digest(text)),
    })
}

/// Problems of one file, located by byte span.
struct Problems<'a> {
    text: &'a str,
    list: Vec<Problem>,
}

impl Problems<'_> {
    fn at<T>(&mut self, value: &Spanned<T>, reason: impl Into<String>) {
        let line = line_of(self.text, value.span().start);
        self.list.push((Some(line), reason.into()));
    }
}

/// Checks the scalar settings; returns the retry policy and the creation time.
fn check_settings(
    raw: &RawApp,
    mtime: SystemTime,
    problems: &mut Problems,
) -> (RetryPolicy, SystemTime) {
    if let Err(reason) = check_id(raw.id.get_ref()) {
        problems.at(&raw.id, reason);
    }
    for (field, value) in [("name", Some(&raw.name)), ("model", raw.model.as_ref())] {
        if let Some(value) = value.filter(|v| v.get_ref().trim().is_empty()) {
            problems.at(value, format!("{field} must not be blank"));
        }
    }
    if let Some(t) = raw
        .temperature
        .as_ref()
        .filter(|t| !(0.0..=2.0).contains(t.get_ref()))
    {
        problems.at(
            t,
            format!("temperature must be between 0 and 2, got {}", t.get_ref()),
        );
    }
    if let Some(n) = raw.max_tokens.as_ref().filter(|n| *n.get_ref() == 0) {
        problems.at(n, "max_tokens must be greater than 0");
    }
    if let Some(n) = raw.max_attempts.as_ref().filter(|n| *n.get_ref() == 0) {
        problems.at(n, "max_attempts must be at least 1");
    }
    let mut duration = |field: &str, value: &Option<Spanned<String>>, default: u64| match value {
        None => Duration::from_secs(default),
        Some(v) => humantime::parse_duration(v.get_ref().trim()).unwrap_or_else(|e| {
            problems.at(
                v,
                format!("{field} must be a duration like \"1s\" or \"500ms\": {e}"),
            );
            Duration::from_secs(default)
        }),
    };
    let backoff_initial = duration("backoff_initial", &raw.backoff_initial, 1);
    let backoff_max = duration("backoff_max", &raw.backoff_max, 60);
    let max_wait = duration("max_wait", &raw.max_wait, 24 * 3600);
    if backoff_max < backoff_initial
        && let Some(value) = raw.backoff_max.as_ref().or(raw.backoff_initial.as_ref())
    {
        problems.at(
            value,
            "backoff_max must not be shorter than backoff_initial",
        );
    }
    let created_at = match &raw.created_at {
        None => mtime,
        Some(value) => parse_created_at(value.get_ref()).unwrap_or_else(|| {
            problems.at(value, "created_at must be an RFC 3339 timestamp with an offset, e.g. \"2025-01-01T00:00:00Z\"");
            mtime
        }),
    };
    let retry = RetryPolicy {
        max_attempts: raw.max_attempts.as_ref().map_or(3, |n| *n.get_ref()),
        backoff_initial_ms: millis(backoff_initial),
        backoff_max_ms: millis(backoff_max),
        max_wait_ms: millis(max_wait),
    };
    (retry, created_at)
}

/// The providers the application runs on, in order of preference: `providers`, else
/// `provider`, else [`DEFAULT_PROVIDER`]. Both at once, an empty list, and a blank or repeated
/// name are problems (whether each is configured, the server checks when it starts).
fn provider_names(raw: &RawApp, problems: &mut Problems) -> Vec<String> {
    let names: Vec<&Spanned<String>> = match (&raw.provider, &raw.providers) {
        (Some(_), Some(list)) => {
            problems.at(list, "give either provider or providers, not both");
            return Vec::new();
        }
        (None, Some(list)) if list.get_ref().is_empty() => {
            problems.at(list, "providers must name at least one provider");
            return Vec::new();
        }
        (None, Some(list)) => list.get_ref().iter().collect(),
        (Some(one), None) => vec![one],
        (None, None) => return vec![DEFAULT_PROVIDER.to_owned()],
    };
    let blank = if raw.providers.is_some() {
        "providers must not contain a blank name"
    } else {
        "provider must not be blank"
    };
    let mut seen: Vec<String> = Vec::with_capacity(names.len());
    for name in names {
        let text = name.get_ref().trim();
        if text.is_empty() {
            problems.at(name, blank);
        } else if seen.iter().any(|s| s == text) {
            problems.at(name, format!("providers names '{text}' twice"));
        } else {
            seen.push(text.to_owned());
        }
    }
    seen
}

/// Converts the declared inputs, checking names and options. An input whose options are
/// invalid is still returned (without options) so that templates can be checked against it.
fn input_specs(raw_inputs: &[Spanned<RawInput>], problems: &mut Problems) -> Vec<InputSpec> {
    let mut inputs: Vec<InputSpec> = Vec::new();
    for spanned in raw_inputs {
        let raw = spanned.get_ref();
        let name = raw.name.get_ref().clone();
        if name.trim().is_empty() {
            problems.at(&raw.name, "input name must not be blank");
        } else if inputs.iter().any(|input| input.name == name) {
            problems.at(&raw.name, format!("input '{name}' is declared twice"));
        }
        let options = match parse_options(
            raw.input_type,
            raw.options.as_ref().map(|o| o.get_ref().clone()),
        ) {
            Ok(options) => options,
            Err(reasons) => {
                for reason in reasons {
                    let reason = format!("input '{name}': {reason}");
                    match &raw.options {
                        Some(options) => problems.at(options, reason),
                        None => problems.at(spanned, reason),
                    }
                }
                None
            }
        };
        inputs.push(InputSpec {
            name,
            input_type: raw.input_type,
            required: raw.required,
            description: raw.description.clone(),
            options,
        });
    }
    inputs
}
