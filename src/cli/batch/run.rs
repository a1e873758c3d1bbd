//! `batch run`: the steps in order, and Ctrl-C.
//!
//! The first Ctrl-C stops the run cleanly: creates in flight are finished and recorded,
//! nothing more is sent, and the command exits 130 saying how to resume (the server goes on
//! with what it has; `batch cancel` stops that). A second Ctrl-C exits at once.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use super::follow::{Outcome, Outcomes, follow};
use super::progress::Progress;
use super::rows::Format;
use super::state::State;
use super::submit::Submission;
use super::{check, output, rows};
use crate::cli::remote::{Remote, ServerArgs};

/// The exit code of a run stopped by Ctrl-C (128 + SIGINT).
const INTERRUPTED: u8 = 130;

/// What `batch run` takes.
#[derive(clap::Args)]
pub(in crate::cli) struct RunArgs {
    /// The application each row runs through.
    #[arg(long)]
    app: String,
    /// The rows: a .csv file (a header row naming the inputs) or a .jsonl file (one batch
    /// item a line).
    input: PathBuf,
    /// Where the results go: a .csv or .jsonl file, written once every row has finished
    /// [default: INPUT's name with .results before its extension]. Its state file sits
    /// beside it.
    #[arg(long, short)]
    output: Option<PathBuf>,
    /// Rows a batch covers at most.
    #[arg(long, default_value_t = 5000, value_parser = clap::value_parser!(u32).range(1..))]
    chunk_size: u32,
    #[command(flatten)]
    server: ServerArgs,
}

/// Ctrl-C, seen by every step that must stop at a clean point.
pub(super) struct Interrupt(watch::Receiver<bool>);

impl Interrupt {
    /// Takes over SIGINT: the first sets the flag, the second exits at once.
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut interrupts = signal(SignalKind::interrupt()).context("cannot handle Ctrl-C")?;
        let (tx, rx) = watch::channel(false);
        tokio::spawn(async move {
            interrupts.recv().await;
            let _ = tx.send(true);
            interrupts.recv().await;
            std::process::exit(INTERRUPTED.into());
        });
        Ok(Self(rx))
    }

    /// Whether Ctrl-C was pressed.
    pub(super) fn is_set(&self) -> bool {
        *self.0.borrow()
    }

    /// Resolves once Ctrl-C is pressed.
    pub(super) async fn wait(&self) {
        let mut rx = self.0.clone();
        // The sender lives as long as the process, so this only ends on Ctrl-C.
        let _ = rx.wait_for(|set| *set).await;
    }
}

/// Runs the rows of `args.input` through the application; see the module docs.
pub(super) async fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let interrupt = Interrupt::install()?;
    let input = &args.input;
    let format = Format::of(input)?;
    let output = args.output.clone().unwrap_or_else(|| default_output(input));
    let output_format = Format::of(&output)?;
    let state_path = PathBuf::from(format!("{}.scriptorium-state", output.display()));
    if output.exists() && !state_path.exists() {
        bail!(
            "{} exists and is not this run's output: remove it, or choose another --output",
            output.display()
        );
    }
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let rows = rows::read(format, &bytes).with_context(|| input.display().to_string())?;
    let remote = Remote::new(args.server)?;
    let app = remote
        .find(&format!("/v1/applications/{}", args.app))
        .await?
        .with_context(|| format!("{} has no application '{}'", remote.base(), args.app))?;
    let verdicts = check::check(&app, &rows).with_context(|| input.display().to_string())?;
    let mut outcomes = Outcomes::new(rows.rows.len());
    for (row, verdict) in verdicts.iter().enumerate() {
        if let Some(problem) = verdict {
            eprintln!("{}: {problem}", input.display());
            outcomes.set(row, Outcome::refused("invalid", problem.clone()));
        }
    }
    let sha = format!("{:x}", Sha256::digest(&bytes));
    let mut state = State::open(&state_path, &sha, &args.app)?;
    let mut progress = Progress::new(rows.rows.len() as u64);
    let submission = Submission {
        remote: &remote,
        app: &args.app,
        rows: &rows,
        verdicts: &verdicts,
        chunk_size: args.chunk_size as usize,
        interrupt: &interrupt,
    };
    let finished = submission
        .send(&mut state, &mut outcomes, &mut progress)
        .await?
        && follow(&remote, &state, &mut outcomes, &interrupt, &mut progress).await?;
    progress.finish();
    if !finished {
        eprintln!(
            "Interrupted. The server goes on with what was sent (recorded in {}).\n\
             Run the same command again to resume.",
            state.path().display()
        );
        return Ok(ExitCode::from(INTERRUPTED));
    }
    let inputs: Vec<String> = app["inputs"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|i| i["name"].as_str().map(str::to_owned))
        .collect();
    output::write(&output, output_format, &rows, &inputs, &outcomes.rows)?;
    let total = rows.rows.len() as u64;
    eprintln!(
        "{total} rows: {} completed, {} failed, {} invalid (not sent). Results: {}",
        outcomes.completed,
        outcomes.failed(),
        outcomes.invalid,
        output.display()
    );
    Ok(if outcomes.completed == total {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// `rows.csv` → `rows.results.csv`, beside it.
fn default_output(input: &Path) -> PathBuf {
    let stem = input.file_stem().unwrap_or_default().to_string_lossy();
    let extension = input.extension().unwrap_or_default().to_string_lossy();
    input.with_file_name(format!("{stem}.results.{extension}"))
}
