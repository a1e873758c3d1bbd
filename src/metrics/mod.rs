//! What `GET /metrics` answers, in Prometheus' text format.
//!
//! Two kinds of figures, kept apart so the hot path pays nothing it need not:
//! - observed as things happen, into this process's [`Metrics`] registry: the engine's queue
//!   wait and run time histograms ([`JobTimes`]), every HTTP request's route, status and
//!   latency ([`http`]). Each observation is a few atomic operations on a
//!   metric resolved once (the engine's) or looked up by its labels (HTTP's); no lock is held
//!   per job.
//!   The webhook worker counts its delivery attempts the same way ([`webhooks`]).
//! - read when scraped ([`scrape`]): jobs by organisation, application and status from the
//!   store's counters (never a count of the jobs table), the webhook events waiting for
//!   delivery (a counter the outbox's triggers keep, never a count of the events), and each
//!   provider's gate (in flight, limit, calls, errors by class, tokens, backpressure), which
//!   keeps its own figures.
//!
//! Everything is per process: in a cluster each node is scraped, and the job counts, which
//! come from the shared database, are the same on every node.

pub(crate) mod http;
mod scrape;
mod webhooks;

use std::time::Duration;

use prometheus::{Histogram, HistogramOpts, HistogramVec, Registry, TextEncoder};

use crate::providers::Providers;
use crate::store::{ClaimedJob, OutcomeKind, Store, StoreError};
use http::HttpFigures;
use webhooks::WebhookFigures;

/// The prefix of every family.
const PREFIX: &str = "scriptorium";
/// Queue wait buckets, in seconds: from "claimed at once" to an hour's backlog.
const QUEUE_WAIT_BUCKETS: &[f64] = &[
    0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0,
];
/// Run time buckets, in seconds: a mock's microseconds to a long generation's minutes.
const RUN_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ScrapeError {
    /// The job counters could not be read.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The families could not be written as text.
    #[error("cannot encode the metrics: {0}")]
    Encode(#[from] prometheus::Error),
}

/// This process's metrics.
pub(crate) struct Metrics {
    registry: Registry,
    /// The engine's timings.
    pub(crate) jobs: JobTimes,
    /// The HTTP requests.
    pub(crate) http: HttpFigures,
    /// The webhook delivery attempts.
    pub(crate) webhooks: WebhookFigures,
}

impl Metrics {
    /// A fresh registry with every family this process observes.
    pub(crate) fn new() -> Self {
        let registry = Registry::new();
        let jobs = JobTimes::new(&registry);
        let http = HttpFigures::new(&registry);
        let webhooks = WebhookFigures::new(&registry);
        Self {
            registry,
            jobs,
            http,
            webhooks,
        }
    }

    /// Every family as Prometheus text: the observed ones and those read now from the
    /// store's counters (jobs, pending webhook events) and the providers' gates.
    pub(crate) async fn render(
        &self,
        store: &dyn Store,
        providers: &Providers,
    ) -> Result<String, ScrapeError> {
        let mut families = self.registry.gather();
        families.extend(scrape::jobs(store.job_counts().await?)?);
        families.extend(scrape::pending_events(
            store.outbox().pending_events().await?,
        )?);
        families.extend(scrape::providers(&providers.views())?);
        // A family with no series yet (no job, no provider call) cannot be written as text.
        families.retain(|family| !family.get_metric().is_empty());
        families.sort_by(|a, b| a.name().cmp(b.name()));
        Ok(TextEncoder::new().encode_to_string(&families)?)
    }
}

/// Registers `metric` (built from constant, valid options) and answers it.
fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: prometheus::Result<M>,
) -> M {
    let metric = metric.expect("metric options are constant and valid");
    registry
        .register(Box::new(metric.clone()))
        .expect("each family is registered once");
    metric
}

/// The engine's histograms, each resolved once, so an observation is atomic additions only.
pub(crate) struct JobTimes {
    queue_wait: Histogram,
    /// Run time by outcome: completed, retry, wait, failed.
    run: [Histogram; 4],
}

impl JobTimes {
    fn new(registry: &Registry) -> Self {
        let queue_wait = register(
            registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "job_queue_wait_seconds",
                    "From a job's creation to its first claim.",
                )
                .namespace(PREFIX)
                .buckets(QUEUE_WAIT_BUCKETS.to_vec()),
            ),
        );
        let run = register(
            registry,
            HistogramVec::new(
                HistogramOpts::new(
                    "job_run_seconds",
                    "One attempt from its claim to its outcome, by outcome.",
                )
                .namespace(PREFIX)
                .buckets(RUN_BUCKETS.to_vec()),
                &["outcome"],
            ),
        );
        let run = ["completed", "retry", "wait", "failed"].map(|o| run.with_label_values(&[o]));
        Self { queue_wait, run }
    }

    /// Notes a claim: a job's first (its queue wait, from the time in its UUIDv7 id to the
    /// store's claim time); later attempts and waits for a busy provider are not queue wait.
    pub(crate) fn claimed(&self, job: &ClaimedJob) {
        if job.lease.attempt == 1 && job.waiting_since.is_none() {
            let waited = job.claimed_at.saturating_sub(job.id.created_at_micros());
            self.queue_wait.observe(waited.max(0) as f64 / 1e6);
        }
    }

    /// Notes how long an attempt took and how it ended.
    pub(crate) fn ran(&self, outcome: &OutcomeKind, took: Duration) {
        let i = match outcome {
            OutcomeKind::Completed { .. } => 0,
            OutcomeKind::Retry { .. } => 1,
            OutcomeKind::Wait { .. } => 2,
            OutcomeKind::Failed { .. } => 3,
        };
        self.run[i].observe(took.as_secs_f64());
    }
}
