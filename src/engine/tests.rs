//! The engine driven by hand: a store on a manual clock, the fixture applications, the mock
//! provider. [`Engine::run_until_idle`] works what is due; the tests move the clock to make
//! retries come due and leases lapse, so nothing here sleeps or polls.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tempfile::TempDir;

use super::Engine;
use crate::apps::{Catalog, Registry};
use crate::config::{ServeOptions, Settings};
use crate::files::blobs::Blobs;
use crate::files::{Extraction, Files};
use crate::metrics::Metrics;
use crate::providers::Providers;
use crate::store::sqlite::{Durability, SqliteStore};
use crate::store::{Clock, JobId, JobRecord, JobState, NewJob, Priority, RetryPolicy, Store};

/// An engine over a fresh SQLite store whose clock moves only when the test says.
struct Bench {
    engine: Arc<Engine>,
    store: Arc<dyn Store>,
    clock: Clock,
    _dir: TempDir,
}

impl Bench {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let apps_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/apps");
        let options = ServeOptions {
            data_dir: Some(dir.path().to_path_buf()),
            apps_dir: Some(apps_dir.clone()),
            ..ServeOptions::default()
        };
        let settings = Settings::resolve(options, None, |_| None).unwrap();
        let clock = Clock::manual();
        let path = dir.path().join("scriptorium.db");
        let store: Arc<dyn Store> = Arc::new(
            SqliteStore::open_with_clock(&path, Durability::Normal, clock.clone()).unwrap(),
        );
        let provisioned = Arc::new(Registry::load_dir(&apps_dir).unwrap());
        let providers = Arc::new(Providers::build(&settings.providers, None).unwrap());
        let apps = Arc::new(Catalog::new(provisioned, store.clone(), providers.clone()));
        let blobs = Blobs::open(&settings.file_storage, dir.path()).unwrap();
        let extraction = Extraction {
            concurrency: 0,
            lease: settings.engine.lease,
            poll_interval: settings.engine.poll_interval,
            shutdown_grace: settings.engine.shutdown_grace,
        };
        let files = Files::new(store.clone(), blobs, settings.file_limits, extraction);
        let engine = Engine::new(
            store.clone(),
            apps,
            providers,
            files,
            settings.engine,
            Arc::new(Metrics::new()),
        );
        Self {
            engine,
            store,
            clock,
            _dir: dir,
        }
    }

    /// Stores a job of the `echo` application (3 attempts, backoff 20 ms to 50 ms, 10 s of
    /// backpressure at most); answers its id.
    async fn submit(&self, text: &str) -> JobId {
        let job = NewJob {
            id: JobId::generate(),
            org: "default".into(),
            application_id: "echo".into(),
            application_version: None,
            inputs: serde_json::json!({ "Text": [text] }).to_string(),
            retry: RetryPolicy {
                max_attempts: 3,
                backoff_initial_ms: 20,
                backoff_max_ms: 50,
                max_wait_ms: 10_000,
            },
            priority: Priority::Normal,
            idempotency_key: None,
        };
        self.store.insert_job(job).await.unwrap().id
    }

    async fn run(&self) -> usize {
        self.engine.run_until_idle().await.unwrap()
    }

    async fn job(&self, id: JobId) -> JobRecord {
        let org = "default".into();
        self.store.get_job(&org, id).await.unwrap().unwrap()
    }

    /// Past the longest backoff of the `echo` jobs.
    fn past_the_backoff(&self) {
        self.clock.advance(Duration::from_millis(51));
    }
}

#[tokio::test]
async fn a_retry_waits_for_its_backoff_and_then_runs() {
    let bench = Bench::new();
    let id = bench.submit("hello [[mock:fail-first=2]]").await;

    assert_eq!(bench.run().await, 1, "the first attempt fails");
    let job = bench.job(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Retrying, 1));
    assert!(
        job.error.unwrap().contains("mock"),
        "the attempt's error is kept"
    );
    assert_eq!(
        bench.run().await,
        0,
        "the retry is not due before its backoff"
    );

    bench.past_the_backoff();
    assert_eq!(bench.run().await, 1);
    assert_eq!(bench.job(id).await.state, JobState::Retrying);
    bench.past_the_backoff();
    assert_eq!(bench.run().await, 1);
    let job = bench.job(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 3));
    assert!(job.suggestion.unwrap().contains("hello"));
    assert!(job.error.is_none());
}

#[tokio::test]
async fn backpressure_waits_without_spending_attempts() {
    let bench = Bench::new();
    // Five "overloaded" answers, more than the three attempts the job has.
    let id = bench.submit("busy [[mock:busy-first=5]]").await;
    for call in 1..=5 {
        assert_eq!(bench.run().await, 1, "call {call}");
        let job = bench.job(id).await;
        assert_eq!((job.state, job.attempt), (JobState::WaitingForProvider, 0));
        assert!(job.error.unwrap().contains("overloaded"));
        assert_eq!(
            bench.run().await,
            0,
            "it waits for the provider's Retry-After"
        );
        bench.clock.advance(Duration::from_millis(1_300));
    }
    assert_eq!(bench.run().await, 1);
    let job = bench.job(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 1));
    assert!(job.error.is_none());
}

#[tokio::test]
async fn backpressure_fails_a_job_once_it_has_waited_max_wait() {
    let bench = Bench::new();
    let id = bench.submit("[[mock:busy-first=100]]").await;
    // 10 s of max_wait, counted from the first "not now"; each wait is 1 to 1.25 s.
    let mut calls = 0;
    while bench.run().await == 1 {
        calls += 1;
        bench.clock.advance(Duration::from_millis(1_300));
    }
    assert!((8..=12).contains(&calls), "{calls} calls");
    let job = bench.job(id).await;
    assert_eq!(job.state, JobState::Failed);
    let error = job.error.unwrap();
    assert!(
        error.starts_with("provider 'default' was unavailable for 1") && error.contains("max_wait"),
        "{error}"
    );
}

#[tokio::test]
async fn a_job_gives_up_after_its_last_attempt() {
    let bench = Bench::new();
    let id = bench.submit("[[mock:error]]").await;
    for _ in 0..3 {
        assert_eq!(bench.run().await, 1);
        bench.past_the_backoff();
    }
    assert_eq!(bench.run().await, 0, "no fourth attempt");
    let job = bench.job(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Failed, 3));
    assert!(job.error.unwrap().ends_with("(gave up after 3 attempts)"));
}

#[tokio::test]
async fn a_fatal_failure_is_not_retried() {
    let bench = Bench::new();
    let id = bench.submit("[[mock:fail]]").await;
    assert_eq!(bench.run().await, 1);
    bench.past_the_backoff();
    assert_eq!(bench.run().await, 0);
    let job = bench.job(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Failed, 1));
}

#[tokio::test]
async fn a_job_whose_worker_vanished_runs_again_once_its_lease_lapses() {
    let bench = Bench::new();
    let id = bench.submit("orphan").await;
    // A worker claims it and dies: nothing finishes the attempt.
    let lease = Duration::from_secs(30);
    assert_eq!(bench.store.claim(1, lease).await.unwrap().len(), 1);
    assert_eq!(bench.run().await, 0, "a held job is not claimed again");
    assert_eq!(
        bench.store.reap().await.unwrap(),
        0,
        "the lease still holds"
    );

    bench.clock.advance(lease + Duration::from_millis(1));
    assert_eq!(bench.store.reap().await.unwrap(), 1);
    assert_eq!(bench.run().await, 1);
    let job = bench.job(id).await;
    assert_eq!((job.state, job.attempt), (JobState::Completed, 2));
}

#[tokio::test]
async fn many_jobs_run_to_the_end_in_claimed_batches() {
    let bench = Bench::new();
    let mut ids = Vec::new();
    for i in 0..300 {
        let text = if i % 3 == 0 {
            "x [[mock:fail-first=1]]"
        } else {
            "x"
        };
        ids.push(bench.submit(text).await);
    }
    assert_eq!(bench.run().await, 300);
    bench.past_the_backoff();
    assert_eq!(bench.run().await, 100, "a third needed a second attempt");
    for id in ids {
        assert_eq!(bench.job(id).await.state, JobState::Completed);
    }
}
