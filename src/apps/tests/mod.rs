//! Unit tests of the apps module, with shared helpers to load applications from a
//! temporary folder.

mod files;
mod load;
mod load_templates;
mod render;
mod serialize;
mod submit;

use std::path::PathBuf;
use std::sync::Arc;

use super::{Application, LoadError, Registry};

/// A small valid application with one required text input named `Word`.
pub(super) const MINIMAL: &str = r#"id = "mini"
name = "Mini"
status = "deployed"
prompt = "Say {{ inputs['Word'] | join(' ') }}"

[[inputs]]
name = "Word"
input_type = "text"
required = true
"#;

/// The folder of the shipped example applications.
pub(super) fn examples_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("apps")
}

/// Loads a temporary folder holding `files` (name, contents).
pub(super) fn load(files: &[(&str, &str)]) -> Result<Registry, LoadError> {
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).expect("write app file");
    }
    Registry::load_dir(dir.path())
}

/// The problems of a folder that must fail to load.
pub(super) fn problems(files: &[(&str, &str)]) -> Vec<String> {
    match load(files) {
        Ok(registry) => panic!(
            "expected a load error, loaded {} apps",
            registry.all().len()
        ),
        Err(e) => e.problems,
    }
}

/// The problems of a single file `app.toml` that must fail to load.
pub(super) fn problems_of(text: &str) -> Vec<String> {
    problems(&[("app.toml", text)])
}

/// Asserts that some problem contains every one of `needles`.
pub(super) fn assert_problem(problems: &[String], needles: &[&str]) {
    assert!(
        problems
            .iter()
            .any(|p| needles.iter().all(|n| p.contains(n))),
        "no problem contains all of {needles:?}; problems: {problems:#?}"
    );
}

/// Loads one valid file and returns its (deployed) application.
pub(super) fn app(text: &str) -> Arc<Application> {
    let registry = load(&[("app.toml", text)]).unwrap_or_else(|e| panic!("load failed:\n{e}"));
    Arc::clone(&registry.all()[0])
}

/// The shipped example application `id`.
pub(super) fn example(id: &str) -> Arc<Application> {
    let registry = Registry::load_dir(&examples_dir()).unwrap_or_else(|e| panic!("{e}"));
    Arc::clone(registry.get(id).expect("example app"))
}
