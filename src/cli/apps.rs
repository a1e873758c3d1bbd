//! `apps push` and `apps pull`: application files to and from a running server, through its
//! applications-as-data routes, so that definitions can live in git; `apps list` and
//! `apps show`, through Writer's applications routes.
//!
//! A push is idempotent: a file whose definition is the server's current one (nulls aside,
//! which mean "not given") is reported unchanged and makes no new version, so push, pull,
//! push leaves the server as it was.

use std::fmt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use reqwest::Method;
use serde_json::{Map, Value};

use super::remote::{Remote, ServerArgs};
use super::{print_json, text};
use crate::apps::{definition_of, file_text};
use crate::report::Chain;

/// Our applications routes.
const ROUTE: &str = "/v1/scriptorium/applications";

/// What a push did to one application.
enum Pushed {
    Created(u64),
    Updated(u64),
    Unchanged(u64),
}

impl fmt::Display for Pushed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pushed::Created(v) => write!(f, "created v{v}"),
            Pushed::Updated(v) => write!(f, "updated to v{v}"),
            Pushed::Unchanged(v) => write!(f, "unchanged (v{v})"),
        }
    }
}

/// Creates or updates the application of each TOML file at `path` (a file, or a folder's
/// `*.toml`), printing one line per file; exits 1 if any file failed.
pub(super) async fn push(path: &Path, server: ServerArgs) -> anyhow::Result<ExitCode> {
    let files = toml_files(path)?;
    let remote = Remote::new(server)?;
    let mut failed = 0;
    for file in &files {
        match push_file(&remote, file).await {
            Ok((id, pushed)) => println!("{}: {id} {pushed}", file.display()),
            Err(e) => {
                failed += 1;
                println!("{}: error: {}", file.display(), Chain(e.as_ref()));
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files failed", files.len());
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes the current definition of application `id` as a TOML file: to `output` (replaced
/// if it exists), else to stdout.
pub(super) async fn pull(
    id: &str,
    output: Option<&Path>,
    server: ServerArgs,
) -> anyhow::Result<()> {
    let remote = Remote::new(server)?;
    let app = remote
        .find(&format!("{ROUTE}/{id}"))
        .await?
        .with_context(|| format!("no application '{id}'"))?;
    let Some(definition) = app["definition"].as_object() else {
        bail!("application '{id}' is provisioned from the server's apps folder: its file is there");
    };
    let header = format!(
        "# {id}, version {}: written by `scriptorium apps pull`",
        app["version"]
    );
    let text = file_text(definition, &header).map_err(anyhow::Error::msg)?;
    match output {
        None => print!("{text}"),
        Some(path) => {
            std::fs::write(path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("{}: {id} version {}", path.display(), app["version"]);
        }
    }
    Ok(())
}

/// `path` itself, or the `*.toml` files of the folder `path`, by name.
fn toml_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if !path.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in
        std::fs::read_dir(path).with_context(|| format!("cannot read {}", path.display()))?
    {
        let file = entry?.path();
        if file.extension().is_some_and(|e| e == "toml") {
            files.push(file);
        }
    }
    if files.is_empty() {
        bail!("no .toml files in {}", path.display());
    }
    files.sort();
    Ok(files)
}

/// Creates the application of `file`, or makes its definition the current one.
async fn push_file(remote: &Remote, file: &Path) -> anyhow::Result<(String, Pushed)> {
    let text = std::fs::read_to_string(file).context("cannot read it")?;
    let definition = definition_of(&text).map_err(anyhow::Error::msg)?;
    let Some(Value::String(id)) = definition.get("id") else {
        bail!("no id: a pushed file needs one, so that pushing it again updates it");
    };
    let id = id.clone();
    let pushed = match remote.find(&format!("{ROUTE}/{id}")).await? {
        None => Pushed::Created(version(
            &remote.call(Method::POST, ROUTE, &definition).await?,
        )),
        Some(current) if same(&current["definition"], &definition) => {
            Pushed::Unchanged(version(&current))
        }
        Some(_) => {
            let path = format!("{ROUTE}/{id}");
            Pushed::Updated(version(
                &remote.call(Method::PUT, &path, &definition).await?,
            ))
        }
    };
    Ok((id, pushed))
}

/// Whether the server's definition is `ours`, nulls aside.
fn same(theirs: &Value, ours: &Map<String, Value>) -> bool {
    without_nulls(theirs) == without_nulls(&Value::Object(ours.clone()))
}

fn without_nulls(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

fn version(app: &Value) -> u64 {
    app["version"].as_u64().unwrap_or_default()
}

/// `apps list`: every application the key sees, following Writer's cursor pages.
pub(super) async fn list(server: ServerArgs, json: bool) -> anyhow::Result<()> {
    let remote = Remote::new(server)?;
    let mut apps = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let path = match &after {
            Some(id) => format!("/v1/applications?order=asc&limit=100&after={id}"),
            None => "/v1/applications?order=asc&limit=100".to_owned(),
        };
        let page = remote.get(&path).await?;
        let data = page["data"].as_array().cloned().unwrap_or_default();
        after = data
            .last()
            .and_then(|a| a["id"].as_str())
            .map(str::to_owned);
        apps.extend(data);
        if page["has_more"] != Value::Bool(true) || after.is_none() {
            break;
        }
    }
    if json {
        return print_json(&Value::Array(apps));
    }
    println!(
        "{:<28} {:<28} {:<9} INPUTS (* required)",
        "ID", "NAME", "STATUS"
    );
    for app in &apps {
        let inputs: Vec<String> = app["inputs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|i| {
                let star = if i["required"] == Value::Bool(true) {
                    "*"
                } else {
                    ""
                };
                format!("{}{star}", text(&i["name"]))
            })
            .collect();
        println!(
            "{:<28} {:<28} {:<9} {}",
            text(&app["id"]),
            text(&app["name"]),
            text(&app["status"]),
            inputs.join(", ")
        );
    }
    Ok(())
}

/// `apps show ID`: an application and its inputs, as a client must fill them.
pub(super) async fn show(id: &str, server: ServerArgs, json: bool) -> anyhow::Result<()> {
    let remote = Remote::new(server)?;
    let app = remote.get(&format!("/v1/applications/{id}")).await?;
    if json {
        return print_json(&app);
    }
    println!(
        "{}: {} ({})",
        text(&app["id"]),
        text(&app["name"]),
        text(&app["status"])
    );
    println!("inputs:");
    for input in app["inputs"].as_array().into_iter().flatten() {
        let need = if input["required"] == Value::Bool(true) {
            "required"
        } else {
            "optional"
        };
        let mut line = format!(
            "  {:<24} {}, {need}",
            text(&input["name"]),
            text(&input["input_type"])
        );
        let options = &input["options"];
        if let Some(list) = options["list"].as_array() {
            let values: Vec<&str> = list.iter().filter_map(Value::as_str).collect();
            line += &format!(", one of: {}", values.join(" | "));
        } else if let (Some(min), Some(max)) = (
            options["min_fields"].as_u64(),
            options["max_fields"].as_u64(),
        ) {
            line += &format!(", {min} to {max} values");
        }
        if let Some(description) = input["description"].as_str() {
            line += &format!(" ({description})");
        }
        println!("{line}");
    }
    Ok(())
}
