//! The engine: turns queued jobs into results.
//!
//! # The run loop
//! One dispatcher task per node. It wakes when the store signals new work (an in-process
//! notification on SQLite), when a slot frees up, or every `poll_interval` as a fallback for
//! retries coming due. Each time it claims at most as many jobs as it has free slots
//! (`concurrency - in flight`) in one statement, and spawns one task per job. A task renders
//! the prompt, calls the provider, decides retry versus fail, and hands its [`Outcome`] to the
//! completer, which writes outcomes in batches. Beside them:
//! - the heartbeat renews every in-flight lease each `lease / 3`, in one call, and at once
//!   when a running job was cancelled through this node's store; a lease that no longer
//!   holds (its node stalled and another took the job over, or the job was cancelled) stops
//!   its attempt, aborting the model call, so the server's slot is freed and no outcome is
//!   written;
//! - the reaper returns jobs whose lease lapsed (a dead worker) to the queue.
//!
//! # Who may write what
//! Only the dispatcher claims, only the completer writes outcomes, and every outcome is
//! fenced by its [`Lease`] (row + attempt), so a late worker can never overwrite a newer
//! attempt or a finished job. No database transaction is held across a model call.
//!
//! # Failure points
//! [`failpoint`] names the places a job can be when its process dies (claim taken, before and
//! after the model call, before its outcome is written); the crash tests abort a server at
//! each and check that nothing accepted is lost.
//!
//! # Shutdown
//! Stop claiming; let in-flight calls finish until `shutdown_grace`; write their outcomes;
//! give the leases of calls that did not finish back to the queue. A `kill -9` skips all of
//! this and loses nothing: the leases lapse and the jobs run again.

mod attempt;
mod failpoint;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinSet;

pub(crate) use attempt::{PrepareError, Prepared, prepare};

use crate::apps::Catalog;
use crate::claims::{self, Pace};
use crate::files::Files;
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::report::Chain;
use crate::store::{ClaimedJob, Lease, Outcome, Store, StoreError};
use failpoint::FailurePoint;

/// Outcomes written in one call at most.
const MAX_COMPLETION_BATCH: usize = 4096;
/// How soon after a cancel the leases are renewed once more (see `Engine::heartbeat`).
const CANCEL_RECHECK: Duration = Duration::from_secs(1);

/// How the engine paces itself.
#[derive(Clone, Copy, Debug)]
pub(crate) struct EngineSettings {
    /// Jobs in flight on this node at most; 0 makes a node that only serves the API.
    pub(crate) concurrency: usize,
    /// Jobs claimed in one statement at most.
    pub(crate) claim_batch: usize,
    /// How long a claim holds without a heartbeat.
    pub(crate) lease: Duration,
    /// How often to look for due jobs when nothing signals.
    pub(crate) poll_interval: Duration,
    /// How long in-flight calls may run on after shutdown begins.
    pub(crate) shutdown_grace: Duration,
}

/// The engine's parts, shared by its tasks.
pub(crate) struct Engine {
    store: Arc<dyn Store>,
    apps: Arc<Catalog>,
    providers: Arc<Providers>,
    files: Files,
    settings: EngineSettings,
    /// Where the queue wait and run time of each attempt are observed.
    metrics: Arc<Metrics>,
    /// The leases of the attempts under way, each with what stops it.
    in_flight: Mutex<HashMap<Lease, Arc<Notify>>>,
}

impl Engine {
    /// An engine over these parts; nothing runs until [`Engine::run`].
    pub(crate) fn new(
        store: Arc<dyn Store>,
        apps: Arc<Catalog>,
        providers: Arc<Providers>,
        files: Files,
        settings: EngineSettings,
        metrics: Arc<Metrics>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            apps,
            providers,
            files,
            settings,
            metrics,
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    /// Works jobs until `shutdown` turns true (or its sender is dropped), then drains.
    pub(crate) async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let (done_tx, done_rx) = mpsc::channel(self.settings.concurrency.max(1) * 2);
        let completer = tokio::spawn(self.clone().complete(done_rx));
        let heartbeat = tokio::spawn(self.clone().heartbeat());
        let reaper = tokio::spawn(self.clone().reap());
        let mut tasks = JoinSet::new();
        self.dispatch(&mut tasks, &done_tx, &mut shutdown).await;

        let grace = self.settings.shutdown_grace;
        let drained =
            tokio::time::timeout(grace, async { while tasks.join_next().await.is_some() {} });
        if drained.await.is_err() {
            tracing::warn!(
                jobs = tasks.len(),
                "shutdown grace over; giving unfinished jobs back"
            );
            tasks.shutdown().await;
        }
        drop(done_tx);
        let _ = completer.await;
        heartbeat.abort();
        reaper.abort();
        // Wait for them to drop their handles, so the store closes when `run` returns.
        let _ = tokio::join!(heartbeat, reaper);
        let unfinished: Vec<Lease> = self.leases();
        if !unfinished.is_empty() {
            match self.store.release(unfinished).await {
                Ok(n) => tracing::info!(jobs = n, "released unfinished jobs to the queue"),
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), "could not release jobs; their leases will lapse")
                }
            }
        }
    }

    async fn dispatch(
        self: &Arc<Self>,
        tasks: &mut JoinSet<()>,
        done: &mpsc::Sender<Outcome>,
        shutdown: &mut watch::Receiver<bool>,
    ) {
        if self.settings.concurrency == 0 {
            tracing::info!("concurrency is 0: this node serves the API and works no jobs");
            let _ = shutdown.wait_for(|stop| *stop).await;
            return;
        }
        let wakeups = self.store.wakeups();
        let pace = Pace {
            slots: self.settings.concurrency,
            max_claim: self.settings.claim_batch,
            poll_interval: self.settings.poll_interval,
            wake: &wakeups,
        };
        let claim = |want| async move {
            let claimed = match self.store.claim(want, self.settings.lease).await {
                Ok(jobs) => jobs,
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), "claim failed; retrying after the poll interval");
                    Vec::new()
                }
            };
            if !claimed.is_empty() {
                failpoint::reached(FailurePoint::ClaimTaken);
            }
            claimed
        };
        let start = |job: ClaimedJob| {
            self.metrics.jobs.claimed(&job);
            let stop = self.track(job.lease);
            let (engine, done) = (self.clone(), done.clone());
            // The attempt's future is large (every provider's call is in its type): boxed, the
            // task that holds it stays small, and spawning it copies a few words, not the
            // attempt (measured: a tenth of the burn-down's process time was those copies).
            async move {
                tokio::select! {
                    outcome = Box::pin(engine.work(job)) => {
                        let _ = done.send(outcome).await;
                    }
                    () = stop.notified() => {}
                }
            }
        };
        claims::run(pace, tasks, shutdown, claim, start).await;
    }

    /// Writes outcomes in batches: whatever has queued up while the previous batch was written.
    async fn complete(self: Arc<Self>, mut done: mpsc::Receiver<Outcome>) {
        let mut batch = Vec::with_capacity(MAX_COMPLETION_BATCH);
        while done.recv_many(&mut batch, MAX_COMPLETION_BATCH).await > 0 {
            let leases: Vec<Lease> = batch.iter().map(|o| o.lease).collect();
            failpoint::reached(FailurePoint::BeforeOutcomeWritten);
            if let Err(e) = self.finish_with_retries(std::mem::take(&mut batch)).await {
                tracing::error!(error = %Chain(&e), jobs = leases.len(),
                    "could not record outcomes; the jobs will run again when their leases lapse");
            }
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            for lease in leases {
                in_flight.remove(&lease);
            }
        }
    }

    async fn finish_with_retries(&self, outcomes: Vec<Outcome>) -> Result<usize, StoreError> {
        let mut delay = Duration::from_millis(50);
        for _ in 0..6 {
            match self.store.finish(outcomes.clone()).await {
                Err(StoreError::Unavailable(e)) => {
                    tracing::warn!(error = %Chain(&e), "recording outcomes failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => return other,
            }
        }
        self.store.finish(outcomes).await
    }

    /// Renews every in-flight lease each `lease / 3`, and at once when the store says a
    /// running job was cancelled (so its call stops now, not at the next beat). A cancel can
    /// name a job claimed here whose attempt is not tracked yet (it is starting): the renewal
    /// a cancel causes is made once more [`CANCEL_RECHECK`] later, to stop that one too.
    async fn heartbeat(self: Arc<Self>) {
        let every = self.settings.lease / 3;
        let cancels = self.store.cancels();
        let mut recheck = false;
        loop {
            let wait = if recheck {
                CANCEL_RECHECK.min(every)
            } else {
                every
            };
            recheck = tokio::select! {
                () = tokio::time::sleep(wait) => false,
                () = cancels.notified() => true,
            };
            let leases = self.leases();
            if leases.is_empty() {
                continue;
            }
            match self.store.renew(leases, self.settings.lease).await {
                Ok(lost) => self.stop(&lost),
                Err(e) => tracing::warn!(error = %Chain(&e), "lease renewal failed"),
            }
        }
    }

    async fn reap(self: Arc<Self>) {
        let every = (self.settings.lease / 2).max(Duration::from_millis(100));
        loop {
            tokio::time::sleep(every).await;
            match self.store.reap().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(jobs = n, "returned jobs with lapsed leases to the queue"),
                Err(e) => tracing::warn!(error = %Chain(&e), "reaping lapsed leases failed"),
            }
        }
    }

    /// Counts an attempt in; answers what stops it.
    fn track(&self, lease: Lease) -> Arc<Notify> {
        let stop = Arc::new(Notify::new());
        self.in_flight
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(lease, stop.clone());
        stop
    }

    fn leases(&self) -> Vec<Lease> {
        let in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        in_flight.keys().copied().collect()
    }

    /// Stops the attempts whose leases were lost: their model calls are dropped (the
    /// connection closes), and they write nothing.
    fn stop(&self, lost: &[Lease]) {
        if lost.is_empty() {
            return;
        }
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        for lease in lost {
            if let Some(stop) = in_flight.remove(lease) {
                // A permit is kept if the attempt is not waiting yet: it stops when it does.
                stop.notify_one();
            }
        }
        tracing::info!(
            jobs = lost.len(),
            "leases lost (the jobs were cancelled, or another worker took them over): \
             their calls are stopped"
        );
    }

    /// Runs one attempt of a claimed job, to the outcome its lease will write; what a model
    /// returns is kept as both backends can hold it.
    async fn work(&self, job: ClaimedJob) -> Outcome {
        let started = Instant::now();
        let kind = attempt::run(&self.apps, &self.providers, &self.files, &job).await;
        self.metrics.jobs.ran(&kind, started.elapsed());
        Outcome {
            lease: job.lease,
            kind: kind.storable(),
        }
    }

    /// Works every job that is due, and every job its attempts make due, until none is left,
    /// in this task: claim, attempt, write, and again. Answers how many attempts ran. Time
    /// moves only as the store's clock does, so a test drives retries and backoff by
    /// advancing a manual clock instead of sleeping.
    #[cfg(test)]
    pub(crate) async fn run_until_idle(&self) -> Result<usize, StoreError> {
        let mut attempts = 0;
        loop {
            let claimed = self
                .store
                .claim(self.settings.claim_batch, self.settings.lease)
                .await?;
            if claimed.is_empty() {
                return Ok(attempts);
            }
            attempts += claimed.len();
            let outcomes = claimed.into_iter().map(|job| self.work(job));
            let outcomes = futures_util::future::join_all(outcomes).await;
            self.store.finish(outcomes).await?;
        }
    }
}
