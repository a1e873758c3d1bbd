//! The state file of a `batch run`, beside its output (`results.csv.scriptorium-state`): what
//! was sent, so that the same command run again sends nothing twice.
//!
//! It is a journal, one JSON entry a line, only ever appended, each entry flushed to disk
//! (`fdatasync`) before the run relies on it:
//! - `start`: the SHA-256 of the input file, the application, and a random run token. A run
//!   against a changed input file is refused (its rows would no longer be the ones sent).
//! - `mode`: `batches`, or `jobs` when the server has no batch route (api.writer.com).
//! - `sending` (a chunk of rows, before its batch is created; the create carries the run
//!   token and chunk number in the batch's `metadata`) and `sent` (its batch id, after the
//!   202). A `sending` without its `sent` is looked for among the application's batches by
//!   that metadata before it is sent again.
//! - `job`: a row's job id, in jobs mode. Every job create carries the `Idempotency-Key`
//!   `scriptorium-batch-<run>-<row>`, so a row sent again answers the job it made.
//!
//! A last line cut short by a crash is dropped on reading.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

/// The version of the journal's format.
const VERSION: u32 = 1;

/// How rows go to the server.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(super) enum Mode {
    /// In chunks, one batch each.
    Batches,
    /// One job a row (a server without the batch route).
    Jobs,
}

/// One line of the journal.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Entry {
    Start {
        version: u32,
        input_sha256: String,
        application: String,
        run: String,
    },
    Mode {
        mode: Mode,
    },
    Sending(Chunk),
    Sent {
        chunk: usize,
        batch_id: String,
    },
    Job {
        row: usize,
        job_id: String,
    },
}

/// A chunk of consecutive rows sent as one batch.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(super) struct Chunk {
    /// Its number in the run, from 0.
    pub(super) chunk: usize,
    /// Its first row (0-based).
    pub(super) first: usize,
    /// The row after its last.
    pub(super) end: usize,
    /// Rows in `first..end` not sent (invalid); the batch's items are the others, in order.
    pub(super) skipped: Vec<usize>,
    /// Its batch, once created.
    #[serde(skip)]
    pub(super) batch_id: Option<String>,
}

impl Chunk {
    /// The rows that are its batch's items, in item order (position 1 is the first).
    pub(super) fn items(&self) -> Vec<usize> {
        (self.first..self.end)
            .filter(|r| !self.skipped.contains(r))
            .collect()
    }
}

/// The state of a run, read from its journal, with the journal open for appending.
pub(super) struct State {
    file: File,
    path: PathBuf,
    /// The run's token (in batch metadata and idempotency keys).
    pub(super) run: String,
    /// How rows are sent, once known.
    pub(super) mode: Option<Mode>,
    /// The chunks sent or being sent, by number.
    pub(super) chunks: Vec<Chunk>,
    /// Jobs mode: each sent row's job.
    pub(super) jobs: HashMap<usize, String>,
}

impl State {
    /// Opens the journal at `path`, or starts one for this input and application.
    pub(super) fn open(path: &Path, input_sha256: &str, application: &str) -> anyhow::Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        // Only whole lines count: a crash may have cut the last one short.
        let whole = &text[..text.rfind('\n').map_or(0, |i| i + 1)];
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        file.set_len(whole.len() as u64)?;
        let mut state = Self {
            file,
            path: path.to_owned(),
            run: String::new(),
            mode: None,
            chunks: Vec::new(),
            jobs: HashMap::new(),
        };
        if whole.is_empty() {
            state.run = uuid::Uuid::now_v7().simple().to_string();
            state.append(&Entry::Start {
                version: VERSION,
                input_sha256: input_sha256.to_owned(),
                application: application.to_owned(),
                run: state.run.clone(),
            })?;
            sync_dir(path)?;
            return Ok(state);
        }
        for (at, line) in whole.lines().enumerate() {
            let entry: Entry = serde_json::from_str(line).with_context(|| {
                format!("{} line {}: not a state entry", path.display(), at + 1)
            })?;
            state.apply(entry, input_sha256, application)?;
        }
        if state.run.is_empty() {
            bail!("{}: no start entry", path.display());
        }
        Ok(state)
    }

    fn apply(&mut self, entry: Entry, input_sha256: &str, application: &str) -> anyhow::Result<()> {
        match entry {
            Entry::Start {
                version,
                input_sha256: sha,
                application: app,
                run,
            } => {
                if version != VERSION {
                    bail!(
                        "{}: state format {version}, not {VERSION}",
                        self.path.display()
                    );
                }
                if sha != input_sha256 || app != application {
                    bail!(
                        "{} belongs to another run (the input file changed, or another \
                         application): remove it, or choose another --output",
                        self.path.display()
                    );
                }
                self.run = run;
            }
            Entry::Mode { mode } => self.mode = Some(mode),
            Entry::Sending(chunk) => self.chunks.push(chunk),
            Entry::Sent { chunk, batch_id } => {
                if let Some(c) = self.chunks.iter_mut().find(|c| c.chunk == chunk) {
                    c.batch_id = Some(batch_id);
                }
            }
            Entry::Job { row, job_id } => {
                self.jobs.insert(row, job_id);
            }
        }
        Ok(())
    }

    /// Records how rows are sent.
    pub(super) fn set_mode(&mut self, mode: Mode) -> anyhow::Result<()> {
        self.append(&Entry::Mode { mode })?;
        self.mode = Some(mode);
        Ok(())
    }

    /// Records that `chunk` is about to be sent.
    pub(super) fn sending(&mut self, chunk: Chunk) -> anyhow::Result<()> {
        self.append(&Entry::Sending(chunk.clone()))?;
        self.chunks.push(chunk);
        Ok(())
    }

    /// Records the batch that chunk number `chunk` became.
    pub(super) fn sent(&mut self, chunk: usize, batch_id: &str) -> anyhow::Result<()> {
        self.append(&Entry::Sent {
            chunk,
            batch_id: batch_id.to_owned(),
        })?;
        if let Some(c) = self.chunks.iter_mut().find(|c| c.chunk == chunk) {
            c.batch_id = Some(batch_id.to_owned());
        }
        Ok(())
    }

    /// Records row `row`'s job.
    pub(super) fn job(&mut self, row: usize, job_id: &str) -> anyhow::Result<()> {
        self.append(&Entry::Job {
            row,
            job_id: job_id.to_owned(),
        })?;
        self.jobs.insert(row, job_id.to_owned());
        Ok(())
    }

    /// The idempotency key of row `row`'s job create.
    pub(super) fn job_key(&self, row: usize) -> String {
        format!("scriptorium-batch-{}-{row}", self.run)
    }

    /// The journal's path.
    pub(super) fn path(&self) -> &Path {
        &self.path
    }

    fn append(&mut self, entry: &Entry) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(entry)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .and_then(|()| self.file.sync_data())
            .with_context(|| format!("cannot write {}", self.path.display()))
    }
}

/// Makes a new file's name in its folder durable.
fn sync_dir(path: &Path) -> anyhow::Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    File::open(dir.unwrap_or(Path::new(".")))
        .and_then(|d| d.sync_all())
        .context("cannot sync the state file's folder")
}

#[cfg(test)]
mod tests {
    use super::{Chunk, Mode, State};

    #[test]
    fn the_journal_reads_back_what_was_written_drops_a_torn_line_and_refuses_another_input() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.csv.scriptorium-state");
        let mut state = State::open(&path, "sha-a", "echo").unwrap();
        let run = state.run.clone();
        let chunk = |n, first, end| Chunk {
            chunk: n,
            first,
            end,
            skipped: vec![first + 1],
            batch_id: None,
        };
        state.sending(chunk(0, 0, 3)).unwrap();
        state.sent(0, "batch-0").unwrap();
        state.sending(chunk(1, 3, 6)).unwrap();
        drop(state);
        // A crash in the middle of writing the next line.
        let mut text = std::fs::read_to_string(&path).unwrap();
        text += "{\"sent\":{\"chunk\":1,\"bat";
        std::fs::write(&path, text).unwrap();

        let mut state = State::open(&path, "sha-a", "echo").unwrap();
        assert_eq!(state.run, run);
        assert_eq!(state.mode, None);
        assert_eq!(state.chunks.len(), 2);
        assert_eq!(state.chunks[0].batch_id.as_deref(), Some("batch-0"));
        assert_eq!(state.chunks[0].items(), [0, 2]);
        assert_eq!(state.chunks[1].batch_id, None, "the torn line is dropped");
        state.set_mode(Mode::Jobs).unwrap();
        state.job(4, "job-4").unwrap();
        drop(state);

        let state = State::open(&path, "sha-a", "echo").unwrap();
        assert_eq!(state.mode, Some(Mode::Jobs));
        assert_eq!(state.jobs[&4], "job-4");
        assert!(state.job_key(4).ends_with(&format!("{run}-4")));
        let changed = State::open(&path, "sha-b", "echo")
            .err()
            .unwrap()
            .to_string();
        assert!(changed.contains("belongs to another run"), "{changed}");
    }
}
