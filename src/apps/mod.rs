//! No-code applications: loading them from a folder of TOML files, keeping each
//! organisation's own in the store as versions, validating the inputs of a generate request
//! against them, and rendering their prompt templates.
//!
//! - [`Catalog`] (in `catalog.rs`) is what the API and the engine ask: the provisioned
//!   applications and each organisation's own, created, changed and versioned through it,
//!   the own ones held in memory by `owned.rs`;
//! - [`Registry`] (in `registry.rs`) loads and validates every `*.toml` file of a folder;
//! - `document.rs` validates a JSON definition by the rules of the file format, and turns a
//!   definition into a file's text and back (for `apps pull` and `apps push`);
//! - [`Application`] (here) is one loaded application, with its retry policy and templates;
//! - `definition.rs` owns the file format, `spec.rs` the declared inputs ([`InputSpec`]),
//!   `inputs.rs` submit-time validation ([`Inputs`]), `render.rs` the templates ([`Prompt`]),
//!   and `checks.rs` the load-time checks of templates against inputs.

mod catalog;
mod checks;
mod definition;
mod document;
mod fields;
mod inputs;
mod owned;
mod registry;
mod render;
mod spec;

#[cfg(test)]
mod tests;

use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::store::{ApplicationId, Priority, RetryPolicy};

pub(crate) use catalog::{Catalog, CatalogError};
pub(crate) use document::{definition_of, file_text};
pub(crate) use inputs::InputError;
pub use inputs::Inputs;
pub(crate) use registry::{LoadError, Registry};
pub(crate) use render::{InputFile, InputFiles, Prompt, RenderError};
pub(crate) use spec::{InputOptions, InputSpec, InputType};

/// Whether an application is served (`deployed`) or only loaded and validated (`draft`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AppStatus {
    /// Served by the API.
    Deployed,
    /// Loaded and validated, but not served.
    Draft,
}

/// One loaded application: its metadata, declared inputs, model settings and templates.
#[derive(Debug)]
pub(crate) struct Application {
    /// URL-safe id (`[A-Za-z0-9_-]+`), unique across the folder.
    pub(crate) id: ApplicationId,
    /// Display name.
    pub(crate) name: String,
    /// Deployed (served) or draft (not served).
    pub(crate) status: AppStatus,
    /// Declared inputs, in file order.
    pub(crate) inputs: Vec<InputSpec>,
    /// From `created_at` in the file, else the file's modification time.
    pub(crate) created_at: SystemTime,
    /// The file's modification time (never earlier than `created_at`).
    pub(crate) updated_at: SystemTime,
    /// The model providers to run on, in order of preference (at least one; each checked by
    /// the server): `providers`, else `provider`, else `["default"]`. A call goes to the first
    /// with room, and spills to the next while it is busy, paused or failing.
    pub(crate) providers: Vec<String>,
    /// Model to ask the provider for, if the application sets one.
    pub(crate) model: Option<String>,
    /// Sampling temperature (0..=2), if set.
    pub(crate) temperature: Option<f32>,
    /// Output token limit (> 0), if set.
    pub(crate) max_tokens: Option<u32>,
    /// How failed generations are retried, and how long backpressure may hold a job.
    pub(crate) retry: RetryPolicy,
    /// The priority of its jobs when a request does not say.
    pub(crate) priority: Priority,
    /// When a deployed version was last made: for a provisioned application, `updated_at`
    /// when it is deployed.
    pub(crate) last_deployed_at: Option<SystemTime>,
    /// The version, for an application stored in the database; `None` for a provisioned one.
    pub(crate) version: Option<u32>,
    /// The JSON definition of a stored application (`None` for a provisioned one).
    pub(crate) definition: Option<serde_json::Value>,
    templates: render::Templates,
}

impl Application {
    /// Whether the application is served by the API.
    pub(crate) fn is_deployed(&self) -> bool {
        self.status == AppStatus::Deployed
    }

    /// Validates the `inputs` array of a generate request (the JSON value of its `"inputs"`
    /// field, or `None` when absent). The result maps every declared input to its values.
    pub(crate) fn validate_inputs(
        &self,
        raw: Option<&serde_json::Value>,
    ) -> Result<Inputs, InputError> {
        inputs::validate(&self.inputs, raw)
    }

    /// Renders the application's templates with `inputs` and the `files` of its file and
    /// media inputs. Declared inputs missing from either render as empty lists; undeclared
    /// entries are ignored.
    pub(crate) fn render(
        &self,
        inputs: &Inputs,
        files: &InputFiles,
    ) -> Result<Prompt, RenderError> {
        self.templates.render(&self.inputs, inputs, files)
    }

    /// The declared file and media inputs with the file ids given to each, in declaration
    /// order (inputs given no file are left out).
    pub(crate) fn file_inputs<'a>(
        &'a self,
        inputs: &'a Inputs,
    ) -> impl Iterator<Item = (&'a InputSpec, &'a [String])> {
        self.inputs
            .iter()
            .filter(|spec| spec.input_type.takes_files())
            .map(|spec| (spec, inputs.values(&spec.name)))
            .filter(|(_, ids)| !ids.is_empty())
    }
}
