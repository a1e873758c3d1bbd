//! Text extraction as leased work on the durable queue, like jobs: a worker on every node
//! claims `in_progress` files from the store ([`Store::claim_files`]: attempt raised, a lease),
//! extracts at most [`Extraction::concurrency`] at once on blocking threads, renews the leases
//! of those it is extracting every `lease / 3`, and records each result fenced by its attempt,
//! so a worker whose lease was taken over can never overwrite a newer result. A node that
//! dies leaves leases that lapse, and another node (or this one, restarted) claims the files
//! again; a file whose extraction was started three times without finishing is failed. At
//! shutdown the worker stops claiming, lets extractions finish until the grace runs out, and
//! gives the rest back without using up an attempt.
//!
//! It wakes when this node records an upload or a retry, and otherwise every
//! `poll_interval` (uploads on other nodes, lapsed leases).

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinSet;

use super::extract::{self, Extracted};
use super::{FileKind, Files};
use crate::claims::{self, Pace};
use crate::report::Chain;
use crate::store::{ClaimedFile, FileLease, FileProcessed, StoreError};

/// Extractions started for one file at most before it is failed.
const MAX_ATTEMPTS: u32 = 3;

/// How the extraction worker paces itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Extraction {
    /// Files extracted at once on this node at most.
    pub(crate) concurrency: usize,
    /// How long a claim holds without a renewal.
    pub(crate) lease: Duration,
    /// How often to look for files when nothing signals.
    pub(crate) poll_interval: Duration,
    /// How long extractions may run on after shutdown begins.
    pub(crate) shutdown_grace: Duration,
}

impl Files {
    /// Extracts files until `shutdown` turns true (or its sender is dropped), then drains.
    pub(crate) async fn extract_files(self, mut shutdown: watch::Receiver<bool>) {
        let settings = self.extraction;
        if settings.concurrency == 0 {
            tracing::info!("extract concurrency is 0: this node extracts no files");
            let _ = shutdown.wait_for(|stop| *stop).await;
            return;
        }
        let heartbeat = tokio::spawn(self.clone().renew_leases());
        let mut tasks = JoinSet::new();
        let pace = Pace {
            slots: settings.concurrency,
            max_claim: settings.concurrency,
            poll_interval: settings.poll_interval,
            wake: &self.wake,
        };
        let this = &self;
        let claim = |want| async move {
            let claimed = this
                .store
                .claim_files(want, settings.lease, MAX_ATTEMPTS)
                .await;
            claimed.unwrap_or_else(|e| {
                tracing::warn!(error = %Chain(&e), "claiming files to extract failed");
                Vec::new()
            })
        };
        let start = |file: ClaimedFile| {
            this.track(file.lease, true);
            let files = this.clone();
            async move { files.extract_one(file).await }
        };
        claims::run(pace, &mut tasks, &mut shutdown, claim, start).await;
        let drained = tokio::time::timeout(settings.shutdown_grace, async {
            while tasks.join_next().await.is_some() {}
        });
        if drained.await.is_err() {
            tasks.shutdown().await;
        }
        heartbeat.abort();
        let unfinished = self.leases();
        if !unfinished.is_empty() {
            match self.store.release_files(unfinished).await {
                Ok(n) => {
                    tracing::info!(files = n, "gave back files whose extraction did not finish")
                }
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), "could not give files back; their leases will lapse")
                }
            }
        }
    }

    /// Extracts one claimed file and records the result under its lease.
    async fn extract_one(&self, file: ClaimedFile) {
        tracing::debug!(file = %file.lease.id, name = file.name, "extracting");
        // The type was detected from the bytes at upload; it need not be detected again.
        let kind = FileKind::from_extension(&file.kind).unwrap_or(FileKind::Other);
        let outcome = match self.blobs.get(&file.lease.id.to_string()).await {
            Ok(bytes) => {
                let extracted = tokio::task::spawn_blocking(move || extract::extract(kind, &bytes))
                    .await
                    .map_err(|e| format!("text extraction crashed: {e}"));
                outcome(kind, extracted)
            }
            Err(e) => FileProcessed::Failed {
                error: format!("the file's bytes cannot be read: {}", Chain(&e)),
            },
        };
        self.record(file.lease, outcome.storable()).await;
        self.track(file.lease, false);
        self.processed.notify_waiters();
    }

    /// Records a result, retrying while the store is unavailable; a result the database
    /// refuses fails the file, saying why.
    async fn record(&self, lease: FileLease, mut outcome: FileProcessed) {
        let mut wait = Duration::from_millis(100);
        loop {
            match self.store.file_processed(lease, outcome.clone()).await {
                Ok(_) => return,
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(file = %lease.id, error = %Chain(&e), "cannot record an extraction yet");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(Duration::from_secs(5));
                }
                Err(StoreError::Database(e))
                    if !matches!(outcome, FileProcessed::Failed { .. }) =>
                {
                    tracing::warn!(file = %lease.id, error = %Chain(&e), "an extracted text could not be stored");
                    outcome = FileProcessed::Failed {
                        error: format!("the file's text could not be stored: {}", Chain(&e)),
                    };
                }
                Err(e) => {
                    tracing::error!(file = %lease.id, error = %Chain(&e), "cannot record an extraction");
                    return;
                }
            }
        }
    }

    /// Renews the leases of the files being extracted, every `lease / 3`.
    async fn renew_leases(self) {
        let every = self.extraction.lease / 3;
        loop {
            tokio::time::sleep(every).await;
            let leases = self.leases();
            if leases.is_empty() {
                continue;
            }
            if let Err(e) = self.store.renew_files(leases, self.extraction.lease).await {
                tracing::warn!(error = %Chain(&e), "renewing extraction leases failed");
            }
        }
    }

    fn track(&self, lease: FileLease, extracting: bool) {
        let mut leases = self.extracting.lock().unwrap_or_else(|e| e.into_inner());
        if extracting {
            leases.insert(lease);
            self.peak.fetch_max(leases.len(), Ordering::Relaxed);
        } else {
            leases.remove(&lease);
        }
    }

    fn leases(&self) -> Vec<FileLease> {
        let leases = self.extracting.lock().unwrap_or_else(|e| e.into_inner());
        leases.iter().copied().collect()
    }

    /// Files this node is extracting now, the most it extracted at once, and its limit.
    pub(crate) fn extraction_load(&self) -> (usize, usize, usize) {
        let now = self.extracting.lock().map_or(0, |l| l.len());
        let peak = self.peak.load(Ordering::Relaxed);
        (now, peak, self.extraction.concurrency)
    }
}

/// What an extraction's result means for the file.
fn outcome(
    kind: FileKind,
    extracted: Result<Result<Extracted, extract::ExtractError>, String>,
) -> FileProcessed {
    match extracted {
        Ok(Ok(Extracted::Text(text))) if text.trim().is_empty() => FileProcessed::Failed {
            error: format!("no text found in this {kind} file (text in images is not read)"),
        },
        Ok(Ok(Extracted::Text(text))) => FileProcessed::Completed {
            word_count: Some(extract::word_count(&text) as i64),
            text: Some(text),
        },
        Ok(Ok(Extracted::Image)) => FileProcessed::Completed {
            text: None,
            word_count: None,
        },
        Ok(Err(e)) => FileProcessed::Failed {
            error: Chain(&e).to_string(),
        },
        Err(message) => FileProcessed::Failed { error: message },
    }
}

/// The set type of the leases in flight (kept here so `Files` need not name it twice).
pub(super) type Extracting = std::sync::Mutex<HashSet<FileLease>>;
