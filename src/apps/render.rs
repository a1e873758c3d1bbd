//! The compiled templates of an application (`system`, `prompt`, `title`) and their rendering
//! into a [`Prompt`].
//!
//! Templates are minijinja with strict undefined behaviour and no auto-escaping. They see two
//! variables: `inputs`, a map from every declared input name to its list of values, and
//! `files`, a map from every file and media input name to its files ([`InputFile`]).

use std::collections::BTreeMap;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use super::inputs::Inputs;
use super::spec::InputSpec;

/// A file given to a file or media input, as templates see it: `{id, name, type, text}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub(crate) struct InputFile {
    /// The file's id.
    pub(crate) id: String,
    /// The name it was uploaded with.
    pub(crate) name: String,
    /// Its type, as a canonical extension (`pdf`, `png`, ...).
    #[serde(rename = "type")]
    pub(crate) kind: String,
    /// Its extracted text (empty for images).
    pub(crate) text: String,
}

/// The files of each file and media input, by input name, in the order given.
pub(crate) type InputFiles = BTreeMap<String, Vec<InputFile>>;

/// The texts produced by rendering an application's templates for one set of inputs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Prompt {
    /// The rendered `system` template, when the application has one and it is not blank.
    pub(crate) system: Option<String>,
    /// The rendered `prompt` template: the user message sent to the model (never blank).
    pub(crate) user: String,
    /// The rendered `title` template, when the application has one and it is not blank.
    pub(crate) title: Option<String>,
}

/// Why rendering failed (a template error, or a prompt that rendered blank).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub(crate) struct RenderError(pub(crate) String);

/// Which template of an application; also its name inside the environment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Field {
    System,
    Prompt,
    Title,
}

impl Field {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Field::System => "system",
            Field::Prompt => "prompt",
            Field::Title => "title",
        }
    }
}

/// One template source as read from an application file.
#[derive(Debug, Clone)]
pub(crate) struct Source {
    pub(crate) field: Field,
    pub(crate) text: String,
    /// The file line on which the template's first line sits.
    pub(crate) first_line: usize,
}

impl Source {
    /// The file line of line `template_line` (1-based) of this template.
    pub(crate) fn file_line(&self, template_line: usize) -> usize {
        self.first_line + template_line.max(1) - 1
    }
}

/// A template error at load time: a file line (when known) and a reason.
pub(crate) type Problem = (Option<usize>, String);

/// The compiled templates of one application; owns their sources.
pub(crate) struct Templates {
    env: Environment<'static>,
    sources: Vec<Source>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates")
            .field("sources", &self.sources)
            .finish_non_exhaustive()
    }
}

impl Templates {
    /// Compiles `sources`, reporting every syntax error with its file line.
    pub(crate) fn compile(sources: Vec<Source>) -> Result<Templates, Vec<Problem>> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        let mut problems = Vec::new();
        for source in &sources {
            if let Err(e) = env.add_template_owned(source.field.name(), source.text.clone()) {
                let line = e.line().map(|l| source.file_line(l));
                let detail = e.detail().unwrap_or("invalid template");
                problems.push((
                    line,
                    format!("template `{}`: {}: {detail}", source.field.name(), e.kind()),
                ));
            }
        }
        if problems.is_empty() {
            Ok(Templates { env, sources })
        } else {
            Err(problems)
        }
    }

    /// The sources the templates were compiled from.
    pub(crate) fn sources(&self) -> &[Source] {
        &self.sources
    }

    /// The names of the environment's global functions (`range`, `dict`, ...).
    pub(crate) fn globals(&self) -> Vec<String> {
        self.env
            .globals()
            .map(|(name, _)| name.to_owned())
            .collect()
    }

    /// Top-level variables a template reads; with `nested`, also `a.b` attribute chains.
    pub(crate) fn undeclared(&self, field: Field, nested: bool) -> Vec<String> {
        let mut names: Vec<String> = match self.env.get_template(field.name()) {
            Ok(template) => template.undeclared_variables(nested).into_iter().collect(),
            Err(_) => Vec::new(),
        };
        names.sort();
        names
    }

    /// Renders one template with `inputs` and `files`; `Ok(None)` when the application has no
    /// such template.
    pub(crate) fn render_field(
        &self,
        field: Field,
        specs: &[InputSpec],
        inputs: &Inputs,
        files: &InputFiles,
    ) -> Result<Option<String>, minijinja::Error> {
        if !self.sources.iter().any(|source| source.field == field) {
            return Ok(None);
        }
        // Exactly the declared inputs: missing ones are empty, undeclared ones are dropped.
        let context: BTreeMap<&str, &[String]> = specs
            .iter()
            .map(|spec| (spec.name.as_str(), inputs.values(&spec.name)))
            .collect();
        let file_context: BTreeMap<&str, &[InputFile]> = specs
            .iter()
            .filter(|spec| spec.input_type.takes_files())
            .map(|spec| {
                let given = files.get(&spec.name).map(Vec::as_slice);
                (spec.name.as_str(), given.unwrap_or_default())
            })
            .collect();
        let template = self.env.get_template(field.name())?;
        let text =
            template.render(minijinja::context! { inputs => context, files => file_context })?;
        Ok(Some(text.trim().to_owned()))
    }

    /// Renders all templates into a [`Prompt`].
    pub(crate) fn render(
        &self,
        specs: &[InputSpec],
        inputs: &Inputs,
        files: &InputFiles,
    ) -> Result<Prompt, RenderError> {
        let render = |field: Field| {
            self.render_field(field, specs, inputs, files)
                .map(|text| text.filter(|text| !text.is_empty()))
                .map_err(|e| RenderError(format!("template `{}`: {e}", field.name())))
        };
        let user = render(Field::Prompt)?
            .ok_or_else(|| RenderError("template `prompt` rendered to an empty text".to_owned()))?;
        Ok(Prompt {
            system: render(Field::System)?,
            user,
            title: render(Field::Title)?,
        })
    }
}
