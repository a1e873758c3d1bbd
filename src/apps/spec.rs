//! The declared inputs of an application: [`InputSpec`], its [`InputType`] and the
//! type-specific [`InputOptions`], serialised exactly as Writer's `Input` object.
//!
//! This file also owns the load-time checks of an input's `options` table: the table must be
//! the one complete variant that matches `input_type`, with sensible values.

use serde::{Deserialize, Serialize};

/// One declared input of an application, as listed in the application object.
///
/// Serialises to `{name, input_type, required, description?, options?}`; `description` and
/// `options` are omitted when absent (an empty `options: {}` would fail the SDKs' validation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub(crate) struct InputSpec {
    /// The input's name, which is what a client passes as `inputs[].id`.
    pub(crate) name: String,
    /// What kind of value the input takes.
    pub(crate) input_type: InputType,
    /// Whether a generate request must give at least one (non-blank) value.
    pub(crate) required: bool,
    /// Human-readable explanation of the input, shown by clients.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) description: Option<String>,
    /// Type-specific options; always the variant matching `input_type`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) options: Option<InputOptions>,
}

/// The kind of an input, serialised in lowercase (`text`, `dropdown`, `file`, `media`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum InputType {
    /// Free text; possibly several values (fields).
    Text,
    /// One value chosen from a fixed list.
    Dropdown,
    /// Ids of documents uploaded through the Files API.
    File,
    /// Ids of images uploaded through the Files API.
    Media,
}

impl InputType {
    /// Whether values are ids of uploaded files (`file` and `media`).
    pub(crate) fn takes_files(self) -> bool {
        matches!(self, InputType::File | InputType::Media)
    }

    /// The wire name of the type (`"text"`, `"dropdown"`, `"file"` or `"media"`).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            InputType::Text => "text",
            InputType::Dropdown => "dropdown",
            InputType::File => "file",
            InputType::Media => "media",
        }
    }
}

impl std::fmt::Display for InputType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Type-specific options of an input, serialised UNTAGGED: only the variant's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(untagged)]
pub(crate) enum InputOptions {
    /// Options of a `text` input.
    Text(TextOptions),
    /// Options of a `dropdown` input.
    Dropdown(DropdownOptions),
    /// Options of a `file` input.
    File(FileOptions),
    /// Options of a `media` input.
    Media(MediaOptions),
}

/// `{min_fields, max_fields}`: how many values a text input takes when given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TextOptions {
    /// Fewest values accepted when the input is given (0 ..= `max_fields`).
    pub(crate) min_fields: u32,
    /// Most values accepted (at least 1).
    pub(crate) max_fields: u32,
}

/// `{list}`: the choices of a dropdown input (non-empty, unique, non-blank).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DropdownOptions {
    /// The accepted values, in display order.
    pub(crate) list: Vec<String>,
}

/// `{file_types, max_file_size_mb, max_files, max_word_count, upload_types}` of a file input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileOptions {
    /// Accepted file extensions, e.g. `["pdf", "docx"]`.
    pub(crate) file_types: Vec<String>,
    /// Largest accepted file, in megabytes (> 0).
    pub(crate) max_file_size_mb: u32,
    /// Most files accepted for this input (> 0).
    pub(crate) max_files: u32,
    /// Most words accepted in a text file (> 0).
    pub(crate) max_word_count: u32,
    /// How a client may provide files (non-empty).
    pub(crate) upload_types: Vec<UploadType>,
}

/// How a client may provide a file: by URL or by Files API id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum UploadType {
    /// `"url"`
    Url,
    /// `"file_id"`
    FileId,
}

/// `{file_types, max_image_size_mb}` of a media (image) input.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MediaOptions {
    /// Accepted image types, e.g. `["png", "jpg"]`.
    pub(crate) file_types: Vec<String>,
    /// Largest accepted image, in megabytes (> 0).
    pub(crate) max_image_size_mb: u32,
}

/// The field list of each variant, for error messages.
fn variant_shape(input_type: InputType) -> &'static str {
    match input_type {
        InputType::Text => "{min_fields, max_fields}",
        InputType::Dropdown => "{list}",
        InputType::File => {
            "{file_types, max_file_size_mb, max_files, max_word_count, upload_types}"
        }
        InputType::Media => "{file_types, max_image_size_mb}",
    }
}

/// Parses and checks the raw `options` table of an input of type `input_type`.
///
/// Returns every problem found (without a location; the caller adds it).
pub(crate) fn parse_options(
    input_type: InputType,
    raw: Option<toml::Value>,
) -> Result<Option<InputOptions>, Vec<String>> {
    let Some(raw) = raw else {
        return match input_type {
            InputType::Dropdown => Err(vec![
                "a dropdown input needs options = { list = [...] }".into(),
            ]),
            _ => Ok(None),
        };
    };
    let shape = |e: toml::de::Error| {
        vec![format!(
            "options of a {input_type} input must be {}: {}",
            variant_shape(input_type),
            e.message()
        )]
    };
    let options = match input_type {
        InputType::Text => InputOptions::Text(raw.try_into().map_err(shape)?),
        InputType::Dropdown => InputOptions::Dropdown(raw.try_into().map_err(shape)?),
        InputType::File => InputOptions::File(raw.try_into().map_err(shape)?),
        InputType::Media => InputOptions::Media(raw.try_into().map_err(shape)?),
    };
    let problems = check_options(&options);
    if problems.is_empty() {
        Ok(Some(options))
    } else {
        Err(problems)
    }
}

/// Value checks of well-formed options.
fn check_options(options: &InputOptions) -> Vec<String> {
    let mut problems = Vec::new();
    let positive = |value: u32, field: &str, problems: &mut Vec<String>| {
        if value == 0 {
            problems.push(format!("options.{field} must be greater than 0"));
        }
    };
    match options {
        InputOptions::Text(t) => {
            positive(t.max_fields, "max_fields", &mut problems);
            if t.min_fields > t.max_fields {
                problems.push(format!(
                    "options.min_fields ({}) must not exceed options.max_fields ({})",
                    t.min_fields, t.max_fields
                ));
            }
        }
        InputOptions::Dropdown(d) => {
            if d.list.is_empty() {
                problems.push("options.list must not be empty".into());
            }
            for (i, item) in d.list.iter().enumerate() {
                if item.trim().is_empty() {
                    problems.push("options.list must not contain blank items".into());
                } else if d.list[..i].contains(item) {
                    problems.push(format!("options.list contains '{item}' twice"));
                }
            }
        }
        InputOptions::File(f) => {
            positive(f.max_file_size_mb, "max_file_size_mb", &mut problems);
            positive(f.max_files, "max_files", &mut problems);
            positive(f.max_word_count, "max_word_count", &mut problems);
            check_file_types(&f.file_types, &mut problems);
            if f.upload_types.is_empty() {
                problems.push("options.upload_types must not be empty".into());
            }
        }
        InputOptions::Media(m) => {
            positive(m.max_image_size_mb, "max_image_size_mb", &mut problems);
            check_file_types(&m.file_types, &mut problems);
        }
    }
    problems
}

fn check_file_types(types: &[String], problems: &mut Vec<String>) {
    if types.is_empty() {
        problems.push("options.file_types must not be empty".into());
    }
    if types.iter().any(|t| t.trim().is_empty()) {
        problems.push("options.file_types must not contain blank items".into());
    }
}
