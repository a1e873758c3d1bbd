//! The [`Registry`] of applications loaded from a folder, and [`LoadError`], the list of every
//! problem found while loading it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::Application;
use super::definition::load_file;
use crate::store::ApplicationId;

/// Every application loaded from a folder, sorted by `(created_at, id)`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Registry {
    all: Vec<Arc<Application>>,
    deployed: Vec<Arc<Application>>,
    by_id: HashMap<ApplicationId, Arc<Application>>,
    /// Each application's id and the digest of its file, drafts included.
    digests: BTreeMap<String, String>,
}

/// Everything wrong with an applications folder, one problem per entry, each formatted as
/// `path:line: reason` (or `path: reason` when no line is known).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", problems.join("\n"))]
pub struct LoadError {
    /// The problems, in file name order.
    pub(crate) problems: Vec<String>,
}

impl Registry {
    /// Loads and validates every `*.toml` file directly inside `dir` (other files, hidden files
    /// and subfolders are ignored). Fails with every problem found, across all files.
    /// An empty folder gives an empty registry; a missing or unreadable folder is an error.
    pub(crate) fn load_dir(dir: &Path) -> Result<Registry, LoadError> {
        let mut problems = Vec::new();
        let paths = app_files(dir, &mut problems)?;
        let mut loaded: Vec<Application> = Vec::new();
        let mut seen: HashMap<ApplicationId, (PathBuf, usize)> = HashMap::new();
        let mut digests = BTreeMap::new();
        for path in paths {
            match load_file(&path) {
                Ok(file) => {
                    let here = format!("{}:{}", path.display(), file.id_line);
                    if let Some((other, line)) = seen.get(&file.app.id) {
                        problems.push(format!(
                            "{here}: duplicate application id '{}' (also defined at {}:{line})",
                            file.app.id,
                            other.display()
                        ));
                    } else {
                        seen.insert(file.app.id.clone(), (path.clone(), file.id_line));
                        digests.insert(file.app.id.to_string(), file.digest);
                        loaded.push(file.app);
                    }
                }
                Err(mut file_problems) => {
                    file_problems.sort_by_key(|(line, _)| *line);
                    problems.extend(file_problems.into_iter().map(|(line, reason)| match line {
                        Some(line) => format!("{}:{line}: {reason}", path.display()),
                        None => format!("{}: {reason}", path.display()),
                    }));
                }
            }
        }
        if !problems.is_empty() {
            return Err(LoadError { problems });
        }
        Ok(Registry::from_apps(loaded, digests))
    }

    fn from_apps(mut apps: Vec<Application>, digests: BTreeMap<String, String>) -> Registry {
        apps.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        let all: Vec<Arc<Application>> = apps.into_iter().map(Arc::new).collect();
        let deployed: Vec<Arc<Application>> =
            all.iter().filter(|a| a.is_deployed()).cloned().collect();
        let by_id = deployed
            .iter()
            .map(|a| (a.id.clone(), Arc::clone(a)))
            .collect();
        Registry {
            all,
            deployed,
            by_id,
            digests,
        }
    }

    /// The deployed application with this id; `None` for unknown ids and for drafts.
    pub(crate) fn get(&self, id: &str) -> Option<&Arc<Application>> {
        self.by_id.get(id)
    }

    /// The deployed applications, sorted by `(created_at, id)` ascending.
    pub(crate) fn deployed(&self) -> &[Arc<Application>] {
        &self.deployed
    }

    /// Each application's id (drafts included) and the SHA-256 of its file's text, sorted by
    /// id: two folders that serve the same have the same.
    pub(crate) fn digests(&self) -> &BTreeMap<String, String> {
        &self.digests
    }

    /// Every loaded application, drafts included, sorted by `(created_at, id)` ascending
    /// (e.g. to check that every application's provider exists).
    pub(crate) fn all(&self) -> &[Arc<Application>] {
        &self.all
    }
}

/// The `*.toml` files directly inside `dir`, sorted by path; unreadable entries are problems.
fn app_files(dir: &Path, problems: &mut Vec<String>) -> Result<Vec<PathBuf>, LoadError> {
    let entries = std::fs::read_dir(dir).map_err(|e| LoadError {
        problems: vec![format!(
            "{}: cannot read the applications folder: {e}",
            dir.display()
        )],
    })?;
    let mut paths = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                problems.push(format!(
                    "{}: cannot list the applications folder: {e}",
                    dir.display()
                ));
                continue;
            }
        };
        let hidden = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with('.'));
        let toml = path.extension().is_some_and(|ext| ext == "toml");
        if toml && !hidden && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort();
    Ok(paths)
}
