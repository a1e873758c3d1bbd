//! The store conformance suite: every case is written once against `dyn Store` and run on
//! both backends, as `conformance::sqlite::<case>` and `conformance::postgres::<case>`.
//!
//! PostgreSQL cases read the server's URL from `SCRIPTORIUM_TEST_POSTGRES_URL`; when it is
//! unset they print a notice and pass. Each case gets a schema of its own (created through
//! a bootstrap connection, selected with `options=-c search_path=…`, dropped afterwards) and
//! an `application_name` of its own, so cases run in parallel on one database and the
//! connection-killing case kills only its own store's connections.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scriptorium::store::postgres::PostgresStore;
use scriptorium::store::sqlite::{Durability, SqliteStore};
use scriptorium::store::{
    FileInserted, FileProcessed, JobQuery, JobState, KeyInfo, Lease, NewFile, NewJob, Outcome,
    OutcomeKind, RetryOutcome, RetryPolicy, Store, StoreError, UNSTORABLE, Usage, WriterStatus,
    now_micros,
};
use tempfile::TempDir;

use crate::pg::{Schema, bootstrap, kill_connections};
use tokio::time::{sleep, timeout};

/// A store under test, a second instance on the same data where the backend allows one,
/// and what to clean up afterwards (dropped last).
struct Harness {
    store: Arc<dyn Store>,
    peer: Option<Arc<dyn Store>>,
    _dir: Option<TempDir>,
    _schema: Option<Schema>,
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), Durability::Normal).unwrap();
    Harness {
        store: Arc::new(store),
        peer: None,
        _dir: Some(dir),
        _schema: None,
    }
}

/// A PostgreSQL harness, or `None` (after a notice) when no server is configured.
async fn postgres() -> Option<Harness> {
    let schema = Schema::create().await?;
    let store = PostgresStore::open(&schema.url("t")).await.unwrap();
    let peer = PostgresStore::open(&schema.url("p")).await.unwrap();
    Some(Harness {
        store: Arc::new(store),
        peer: Some(Arc::new(peer)),
        _dir: None,
        _schema: Some(schema),
    })
}

/// Every case, on both backends.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$case(super::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                if let Some(harness) = super::postgres().await {
                    super::$case(harness).await;
                }
            })*
        }
    };
}

conformance!(
    an_inserted_job_is_read_back_by_its_org_only,
    a_repeated_idempotency_key_answers_the_existing_job,
    lists_are_newest_first_with_paging_and_counts_per_status,
    only_a_failed_job_can_be_retried_and_it_starts_a_fresh_series,
    a_claim_takes_at_most_its_limit_of_due_jobs_and_raises_the_attempt,
    a_stale_lease_can_neither_finish_renew_nor_release,
    a_batch_with_a_stale_and_a_fresh_outcome_applies_only_the_fresh,
    a_finished_job_cannot_be_overwritten,
    a_lease_lapsing_on_the_last_attempt_fails_the_job,
    a_released_job_keeps_its_attempt_count,
    a_renewed_lease_is_not_reaped,
    keys_are_created_authenticated_listed_and_revoked,
    graphs_are_kept_per_org_and_application,
    an_insert_wakes_the_engine,
    token_usage_round_trips_through_finish,
    files_belong_to_their_org_and_count_against_its_quota,
    concurrent_uploads_never_exceed_the_quota,
    file_processing_is_recorded_once_and_failed_files_can_be_retried,
    a_poisonous_row_in_a_group_fails_alone,
);

fn job(id: &str) -> NewJob {
    job_for(id, "default", "echo")
}

fn job_for(id: &str, org: &str, app: &str) -> NewJob {
    NewJob {
        id: id.into(),
        org: org.into(),
        application_id: app.into(),
        inputs: r#"{"topic":["x"]}"#.into(),
        retry: RetryPolicy {
            max_attempts: 5,
            backoff_initial_ms: 10,
            backoff_max_ms: 10,
        },
        idempotency_key: None,
    }
}

fn completed(lease: Lease, text: &str) -> Outcome {
    Outcome {
        lease,
        kind: OutcomeKind::Completed {
            title: None,
            suggestion: text.into(),
            usage: None,
        },
    }
}

fn failed(lease: Lease, error: &str) -> Outcome {
    let error = error.into();
    Outcome {
        lease,
        kind: OutcomeKind::Failed { error },
    }
}

fn retry_at(lease: Lease, run_at: i64) -> Outcome {
    let error = "try later".into();
    Outcome {
        lease,
        kind: OutcomeKind::Retry { run_at, error },
    }
}

async fn claim_one(store: &dyn Store, lease: Duration) -> Lease {
    let claimed = store.claim(1, lease).await.unwrap();
    assert_eq!(claimed.len(), 1, "one job is due");
    claimed[0].lease
}

async fn state_of(store: &dyn Store, id: &str) -> JobState {
    store.get_job("default", id).await.unwrap().unwrap().state
}

async fn an_inserted_job_is_read_back_by_its_org_only(h: Harness) {
    let store = &*h.store;
    let inserted = store.insert_job(job("job-1")).await.unwrap();
    assert_eq!(
        (inserted.id.as_str(), inserted.state),
        ("job-1", JobState::Queued)
    );
    let got = store.get_job("default", "job-1").await.unwrap().unwrap();
    assert_eq!(got.application_id, "echo");
    assert_eq!((got.state, got.attempt), (JobState::Queued, 0));
    assert_eq!(got.created_at, inserted.created_at);
    assert!(got.started_at.is_none() && got.completed_at.is_none() && got.usage.is_none());
    assert!(store.get_job("other", "job-1").await.unwrap().is_none());
    assert!(store.get_job("default", "nope").await.unwrap().is_none());
}

async fn a_repeated_idempotency_key_answers_the_existing_job(h: Harness) {
    let store = &*h.store;
    let keyed = |id: &str, org: &str| NewJob {
        idempotency_key: Some("key-1".into()),
        ..job_for(id, org, "echo")
    };
    let first = store.insert_job(keyed("job-a", "default")).await.unwrap();
    let again = store.insert_job(keyed("job-b", "default")).await.unwrap();
    assert_eq!(
        (again.id.as_str(), again.created_at),
        ("job-a", first.created_at)
    );
    assert!(store.get_job("default", "job-b").await.unwrap().is_none());
    let elsewhere = store.insert_job(keyed("job-c", "other")).await.unwrap();
    assert_eq!(elsewhere.id, "job-c", "keys are per organisation");
    // Concurrent repeats (one group on PostgreSQL) all answer one job.
    let racing = (0..8).map(|i| {
        store.insert_job(NewJob {
            idempotency_key: Some("key-2".into()),
            ..job(&format!("race-{i}"))
        })
    });
    let answers = futures_util::future::join_all(racing).await;
    let ids: Vec<String> = answers.into_iter().map(|a| a.unwrap().id).collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    let page = store
        .list_jobs(query("default", "echo", None, 0, 100))
        .await
        .unwrap();
    assert_eq!(page.total, 2);
}

fn query(org: &str, app: &str, status: Option<WriterStatus>, offset: u64, limit: u64) -> JobQuery {
    JobQuery {
        org: org.into(),
        application_id: app.into(),
        status,
        offset,
        limit,
    }
}

async fn lists_are_newest_first_with_paging_and_counts_per_status(h: Harness) {
    let store = &*h.store;
    let ids: Vec<String> = (0..5).map(|i| format!("job-{i}")).collect();
    for id in &ids {
        store.insert_job(job(id)).await.unwrap();
    }
    store
        .insert_job(job_for("elsewhere-1", "default", "draft"))
        .await
        .unwrap();
    store
        .insert_job(job_for("elsewhere-2", "other", "echo"))
        .await
        .unwrap();
    let claimed = store.claim(3, Duration::from_secs(30)).await.unwrap();
    let (done, lost) = (&claimed[..2], &claimed[2]);
    let outcomes = vec![
        completed(done[0].lease, "a"),
        completed(done[1].lease, "b"),
        failed(lost.lease, "bad"),
    ];
    assert_eq!(store.finish(outcomes).await.unwrap(), 3);

    let all = store
        .list_jobs(query("default", "echo", None, 0, 10))
        .await
        .unwrap();
    let newest_first: Vec<&str> = ids.iter().rev().map(String::as_str).collect();
    let listed: Vec<&str> = all.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!((listed, all.total), (newest_first.clone(), 5));
    let page = store
        .list_jobs(query("default", "echo", None, 1, 2))
        .await
        .unwrap();
    let listed: Vec<&str> = page.jobs.iter().map(|j| j.id.as_str()).collect();
    assert_eq!((listed, page.total), (newest_first[1..3].to_vec(), 5));
    let beyond = store
        .list_jobs(query("default", "echo", None, 10, 2))
        .await
        .unwrap();
    assert_eq!((beyond.jobs.len(), beyond.total), (0, 5));

    for (status, want) in [
        (WriterStatus::Completed, 2),
        (WriterStatus::Failed, 1),
        (WriterStatus::InProgress, 2),
    ] {
        let page = store
            .list_jobs(query("default", "echo", Some(status), 0, 10))
            .await
            .unwrap();
        assert_eq!(
            (page.jobs.len(), page.total),
            (want, want as u64),
            "{status:?}"
        );
        assert!(page.jobs.iter().all(|j| j.state.writer_status() == status));
        assert!(
            page.jobs
                .windows(2)
                .all(|w| w[0].created_at >= w[1].created_at)
        );
    }
    let one = store.list_jobs(query(
        "default",
        "echo",
        Some(WriterStatus::Completed),
        1,
        1,
    ));
    let one = one.await.unwrap();
    assert_eq!((one.jobs.len(), one.total), (1, 2));
    assert_eq!(
        store
            .list_jobs(query("other", "echo", None, 0, 10))
            .await
            .unwrap()
            .total,
        1
    );
}

async fn only_a_failed_job_can_be_retried_and_it_starts_a_fresh_series(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let not_failed = store.retry_job("default", "job-1").await.unwrap();
    assert!(matches!(
        not_failed,
        RetryOutcome::NotFailed(JobState::Queued)
    ));
    let lease = claim_one(store, Duration::from_secs(30)).await;
    let running = store.retry_job("default", "job-1").await.unwrap();
    assert!(matches!(
        running,
        RetryOutcome::NotFailed(JobState::Running)
    ));
    store.finish(vec![failed(lease, "boom")]).await.unwrap();
    let failed_job = store.get_job("default", "job-1").await.unwrap().unwrap();
    assert_eq!(
        (failed_job.state, failed_job.error.as_deref()),
        (JobState::Failed, Some("boom"))
    );
    assert!(failed_job.completed_at.is_some());

    assert!(matches!(
        store.retry_job("other", "job-1").await.unwrap(),
        RetryOutcome::NotFound
    ));
    assert!(matches!(
        store.retry_job("default", "nope").await.unwrap(),
        RetryOutcome::NotFound
    ));
    let RetryOutcome::Requeued(requeued) = store.retry_job("default", "job-1").await.unwrap()
    else {
        panic!("a failed job is queued again");
    };
    assert_eq!(
        (requeued.id.as_str(), requeued.state),
        ("job-1", JobState::Queued)
    );
    let again = store.get_job("default", "job-1").await.unwrap().unwrap();
    assert_eq!((again.state, again.attempt), (JobState::Queued, 0));
    assert!(again.error.is_none() && again.completed_at.is_none());
    let page = store.list_jobs(query("default", "echo", Some(WriterStatus::Failed), 0, 10));
    assert_eq!(page.await.unwrap().total, 0);
    assert_eq!(claim_one(store, Duration::from_secs(30)).await.attempt, 1);
    let twice = store.retry_job("default", "job-1").await.unwrap();
    assert!(matches!(twice, RetryOutcome::NotFailed(JobState::Running)));
}

async fn a_claim_takes_at_most_its_limit_of_due_jobs_and_raises_the_attempt(h: Harness) {
    let store = &*h.store;
    for i in 0..5 {
        store.insert_job(job(&format!("job-{i}"))).await.unwrap();
    }
    let lease = Duration::from_secs(30);
    let first = store.claim(3, lease).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(
        first
            .iter()
            .all(|j| j.lease.attempt == 1 && j.application_id == "echo")
    );
    assert_eq!(first[0].retry.max_attempts, 5);
    assert_eq!(first[0].inputs, r#"{"topic":["x"]}"#);
    let running = store
        .get_job("default", &first[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((running.state, running.attempt), (JobState::Running, 1));
    assert!(running.started_at.is_some());
    assert_eq!(store.claim(10, lease).await.unwrap().len(), 2);
    assert!(
        store.claim(10, lease).await.unwrap().is_empty(),
        "nothing is left"
    );

    // A retry due later is not claimed until it is due.
    let due = now_micros() + 400_000;
    assert_eq!(
        store
            .finish(vec![retry_at(first[0].lease, due)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(state_of(store, &first[0].id).await, JobState::Retrying);
    assert!(
        store.claim(10, lease).await.unwrap().is_empty(),
        "not due yet"
    );
    sleep(Duration::from_millis(500)).await;
    let again = store.claim(10, lease).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].id.as_str(), again[0].lease.attempt),
        (first[0].id.as_str(), 2)
    );
}

async fn a_stale_lease_can_neither_finish_renew_nor_release(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let stale = claim_one(store, Duration::from_millis(1)).await;
    sleep(Duration::from_millis(5)).await;
    assert_eq!(
        store.reap(now_micros()).await.unwrap(),
        1,
        "the lapsed lease is reaped"
    );
    let fresh = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(fresh.attempt, stale.attempt + 1);

    assert_eq!(
        store.finish(vec![completed(stale, "stale")]).await.unwrap(),
        0
    );
    assert_eq!(store.finish(vec![retry_at(stale, 0)]).await.unwrap(), 0);
    assert_eq!(store.finish(vec![failed(stale, "stale")]).await.unwrap(), 0);
    assert_eq!(
        store
            .renew(vec![stale], Duration::from_secs(30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.release(vec![stale]).await.unwrap(), 0);

    assert_eq!(
        store.finish(vec![completed(fresh, "fresh")]).await.unwrap(),
        1
    );
    let job = store.get_job("default", "job-1").await.unwrap().unwrap();
    assert_eq!(job.suggestion.as_deref(), Some("fresh"));
}

async fn a_batch_with_a_stale_and_a_fresh_outcome_applies_only_the_fresh(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let stale = claim_one(store, Duration::from_millis(1)).await;
    sleep(Duration::from_millis(5)).await;
    assert_eq!(store.reap(now_micros()).await.unwrap(), 1);
    let fresh = claim_one(store, Duration::from_secs(30)).await;
    // Both in one batch, the stale one first and then last: only the fresh one counts.
    for order in [[stale, fresh], [fresh, stale]] {
        let outcomes = order
            .iter()
            .map(|lease| completed(*lease, if *lease == fresh { "fresh" } else { "stale" }))
            .collect();
        let applied = store.finish(outcomes).await.unwrap();
        let job = store.get_job("default", "job-1").await.unwrap().unwrap();
        assert_eq!(job.suggestion.as_deref(), Some("fresh"), "{order:?}");
        assert_eq!(job.attempt, fresh.attempt);
        if order[0] == stale {
            assert_eq!(applied, 1, "only the fresh outcome applies");
        } else {
            assert_eq!(applied, 0, "the job has finished: nothing applies again");
        }
    }
}

async fn a_finished_job_cannot_be_overwritten(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let lease = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(
        store.finish(vec![completed(lease, "first")]).await.unwrap(),
        1
    );
    assert_eq!(
        store
            .finish(vec![completed(lease, "second")])
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.finish(vec![failed(lease, "late")]).await.unwrap(), 0);
    assert_eq!(
        store
            .renew(vec![lease], Duration::from_secs(30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.release(vec![lease]).await.unwrap(), 0);
    assert_eq!(
        store.reap(i64::MAX).await.unwrap(),
        0,
        "a finished job is never reaped"
    );
    let job = store.get_job("default", "job-1").await.unwrap().unwrap();
    assert_eq!(
        (job.state, job.suggestion.as_deref()),
        (JobState::Completed, Some("first"))
    );
    assert!(job.error.is_none() && job.completed_at.is_some());
}

async fn a_lease_lapsing_on_the_last_attempt_fails_the_job(h: Harness) {
    let store = &*h.store;
    let mut last = job("job-1");
    last.retry.max_attempts = 1;
    store.insert_job(last).await.unwrap();
    store.insert_job(job("job-2")).await.unwrap();
    store.claim(2, Duration::from_millis(1)).await.unwrap();
    sleep(Duration::from_millis(5)).await;
    assert_eq!(store.reap(now_micros()).await.unwrap(), 2);
    let lost = store.get_job("default", "job-1").await.unwrap().unwrap();
    assert_eq!(lost.state, JobState::Failed);
    assert!(lost.error.unwrap().contains("lease expired"));
    assert!(lost.completed_at.is_some());
    assert_eq!(
        state_of(store, "job-2").await,
        JobState::Queued,
        "attempts remain"
    );
}

async fn a_released_job_keeps_its_attempt_count(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let lease = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(store.release(vec![lease]).await.unwrap(), 1);
    assert_eq!(state_of(store, "job-1").await, JobState::Queued);
    let again = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(again.attempt, lease.attempt);
}

async fn a_renewed_lease_is_not_reaped(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let lease = claim_one(store, Duration::from_millis(1)).await;
    assert_eq!(
        store
            .renew(vec![lease], Duration::from_secs(30))
            .await
            .unwrap(),
        1
    );
    sleep(Duration::from_millis(5)).await;
    assert_eq!(store.reap(now_micros()).await.unwrap(), 0);
    assert_eq!(state_of(store, "job-1").await, JobState::Running);
    assert_eq!(store.finish(vec![completed(lease, "ok")]).await.unwrap(), 1);
}

async fn keys_are_created_authenticated_listed_and_revoked(h: Harness) {
    let store = &*h.store;
    let key = |id: &str, org: &str, at: i64| KeyInfo {
        id: id.into(),
        org: org.into(),
        name: format!("{id} key"),
        created_at: at,
        revoked_at: None,
    };
    let (one, two) = ([1u8; 32], [2u8; 32]);
    store
        .create_key(key("k1", "default", 1), one)
        .await
        .unwrap();
    store.create_key(key("k2", "other", 2), two).await.unwrap();
    let again = store.create_key(key("k1", "default", 3), [3u8; 32]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.authenticate(one).await.unwrap().as_deref(),
        Some("default")
    );
    assert_eq!(
        store.authenticate(two).await.unwrap().as_deref(),
        Some("other")
    );
    assert_eq!(store.authenticate([9u8; 32]).await.unwrap(), None);

    assert!(store.revoke_key("k1").await.unwrap());
    assert!(!store.revoke_key("k1").await.unwrap(), "already revoked");
    assert!(!store.revoke_key("nope").await.unwrap());
    assert_eq!(store.authenticate(one).await.unwrap(), None);
    let keys = store.list_keys().await.unwrap();
    let listed: Vec<(&str, &str, bool)> = keys
        .iter()
        .map(|k| (k.id.as_str(), k.org.as_str(), k.revoked_at.is_some()))
        .collect();
    assert_eq!(listed, [("k1", "default", true), ("k2", "other", false)]);
    assert_eq!(keys[0].name, "k1 key");
}

async fn graphs_are_kept_per_org_and_application(h: Harness) {
    let store = &*h.store;
    assert!(store.graphs("default", "echo").await.unwrap().is_empty());
    let ids = vec!["g1".to_owned(), "g2".to_owned()];
    store
        .set_graphs("default", "echo", ids.clone())
        .await
        .unwrap();
    assert_eq!(store.graphs("default", "echo").await.unwrap(), ids);
    assert!(store.graphs("other", "echo").await.unwrap().is_empty());
    assert!(store.graphs("default", "draft").await.unwrap().is_empty());
    store
        .set_graphs("default", "echo", vec!["g3".into()])
        .await
        .unwrap();
    assert_eq!(store.graphs("default", "echo").await.unwrap(), ["g3"]);
}

/// On PostgreSQL the job is inserted through a second store, so only LISTEN/NOTIFY can
/// carry the wake-up.
async fn an_insert_wakes_the_engine(h: Harness) {
    let wakeups = h.store.wakeups();
    let writer = h.peer.clone().unwrap_or_else(|| h.store.clone());
    let _ = timeout(Duration::from_millis(100), wakeups.notified()).await;
    writer.insert_job(job("job-1")).await.unwrap();
    let woken = timeout(Duration::from_secs(5), wakeups.notified()).await;
    assert!(woken.is_ok(), "an insert signals the engine");
}

async fn token_usage_round_trips_through_finish(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    store.insert_job(job("job-2")).await.unwrap();
    let leases = store.claim(2, Duration::from_secs(30)).await.unwrap();
    let usage = Usage {
        prompt_tokens: 12,
        completion_tokens: 345,
    };
    let with_usage = Outcome {
        lease: leases[0].lease,
        kind: OutcomeKind::Completed {
            title: Some("A title".into()),
            suggestion: "text".into(),
            usage: Some(usage),
        },
    };
    let outcomes = vec![with_usage, completed(leases[1].lease, "plain")];
    assert_eq!(store.finish(outcomes).await.unwrap(), 2);
    let job = store
        .get_job("default", &leases[0].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.usage, Some(usage));
    assert_eq!(job.title.as_deref(), Some("A title"));
    let plain = store
        .get_job("default", &leases[1].id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(plain.usage, None);
}

/// Waits until `check` holds, for at most `limit`.
fn file(id: &str, org: &str, size: i64) -> NewFile {
    NewFile {
        id: id.to_owned(),
        org: org.to_owned(),
        name: format!("{id}.txt"),
        kind: "txt".to_owned(),
        size,
        graph_ids: Vec::new(),
    }
}

async fn files_belong_to_their_org_and_count_against_its_quota(h: Harness) {
    let s = h.store.as_ref();
    let stored = s.insert_file(file("f1", "a", 60), 100).await.unwrap();
    let FileInserted::Stored(record) = stored else {
        panic!("stored: {stored:?}")
    };
    assert_eq!((record.status, record.size), (WriterStatus::InProgress, 60));
    let over = s.insert_file(file("f2", "a", 50), 100).await.unwrap();
    assert!(
        matches!(over, FileInserted::OverQuota { used: 60 }),
        "{over:?}"
    );
    // Another organisation has its own quota.
    assert!(matches!(
        s.insert_file(file("g1", "b", 90), 100).await.unwrap(),
        FileInserted::Stored(_)
    ));
    let ids = ["f1".to_owned(), "f2".to_owned(), "g1".to_owned()];
    let mine: Vec<String> = s
        .get_files(Some("a"), &ids, false)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(mine, ["f1"]);
    assert_eq!(s.get_files(None, &ids, false).await.unwrap().len(), 2);
    assert!(
        !s.delete_file("b", "f1").await.unwrap(),
        "another org cannot delete it"
    );
    assert!(s.delete_file("a", "f1").await.unwrap());
    assert!(!s.delete_file("a", "f1").await.unwrap());
    // Deleting freed the quota.
    assert!(matches!(
        s.insert_file(file("f2", "a", 100), 100).await.unwrap(),
        FileInserted::Stored(_)
    ));
}

async fn concurrent_uploads_never_exceed_the_quota(h: Harness) {
    // Twenty uploads of 10 bytes against a quota of 100, from two stores where the backend
    // allows a second one (two nodes): exactly ten fit.
    let mut tasks = Vec::new();
    for i in 0..20 {
        let store = match (&h.peer, i % 2) {
            (Some(peer), 1) => peer.clone(),
            _ => h.store.clone(),
        };
        tasks.push(tokio::spawn(async move {
            store
                .insert_file(file(&format!("q{i}"), "quota", 10), 100)
                .await
                .unwrap()
        }));
    }
    let mut stored = 0;
    for task in tasks {
        if matches!(task.await.unwrap(), FileInserted::Stored(_)) {
            stored += 1;
        }
    }
    assert_eq!(stored, 10);
}

async fn file_processing_is_recorded_once_and_failed_files_can_be_retried(h: Harness) {
    let s = h.store.as_ref();
    for id in ["ok", "bad"] {
        s.insert_file(file(id, "a", 1), 100).await.unwrap();
    }
    let pending: Vec<String> = s
        .unprocessed_files(i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(pending, ["bad", "ok"]);
    let done = FileProcessed::Completed {
        text: Some("the text".into()),
        word_count: Some(2),
    };
    assert!(s.file_processed("ok", done.clone()).await.unwrap());
    assert!(
        !s.file_processed("ok", done).await.unwrap(),
        "recorded once"
    );
    let failed = FileProcessed::Failed {
        error: "unreadable".into(),
    };
    assert!(s.file_processed("bad", failed).await.unwrap());
    let ids = ["ok".to_owned(), "bad".to_owned()];
    let mut files = s.get_files(Some("a"), &ids, true).await.unwrap();
    files.sort_by(|x, y| x.id.cmp(&y.id));
    assert_eq!(
        (files[0].status, files[0].error.as_deref()),
        (WriterStatus::Failed, Some("unreadable"))
    );
    assert_eq!(
        (files[1].text.as_deref(), files[1].word_count),
        (Some("the text"), Some(2))
    );
    let without_text = s.get_files(Some("a"), &ids, false).await.unwrap();
    assert!(without_text.iter().all(|f| f.text.is_none()));
    assert!(s.unprocessed_files(i64::MAX).await.unwrap().is_empty());
    let before_retry = now_micros();
    // Only the failed one is reset, and only for its own organisation.
    assert!(s.retry_files("b", &ids).await.unwrap().is_empty());
    let reset = s.retry_files("a", &ids).await.unwrap();
    assert_eq!(reset.len(), 1);
    assert_eq!(
        (reset[0].id.as_str(), reset[0].status),
        ("bad", WriterStatus::InProgress)
    );
    let pending: Vec<String> = s
        .unprocessed_files(i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(pending, ["bad"]);
    // A retry counts as touching the file: it is not left over from before the retry.
    assert!(s.unprocessed_files(before_retry).await.unwrap().is_empty());
}

async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        sleep(Duration::from_millis(50)).await;
    }
    false
}

/// PostgreSQL only: killing every connection of a store (as a restart does) costs at most
/// a failed call each; the pool and the LISTEN connection then recover by themselves.
#[tokio::test]
async fn postgres_store_recovers_when_its_connections_are_killed() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let store = PostgresStore::open(&schema.url("t")).await.unwrap();
    let peer = PostgresStore::open(&schema.url("p")).await.unwrap();
    let admin = bootstrap(&schema.base).await;
    store.insert_job(job("job-1")).await.unwrap();
    // Several pooled connections, so the pool has more than one corpse to clear.
    let reads = (0..6).map(|_| store.get_job("default", "job-1"));
    futures_util::future::join_all(reads).await;

    let killed = kill_connections(&admin, &schema.app("t")).await;
    assert!(
        killed >= 2,
        "the pool's and the listener's connections ({killed})"
    );
    let right_after = [
        store.get_job("default", "job-1").await.map(drop),
        store
            .list_jobs(query("default", "echo", None, 0, 10))
            .await
            .map(drop),
        store.insert_job(job("job-2")).await.map(drop),
    ];
    for result in right_after {
        assert!(
            matches!(result, Ok(()) | Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
    let recovered = eventually(Duration::from_secs(5), || async {
        matches!(store.get_job("default", "job-1").await, Ok(Some(_)))
    });
    assert!(recovered.await, "calls succeed again within seconds");
    store.insert_job(job("job-3")).await.unwrap();
    assert_eq!(
        store
            .claim(10, Duration::from_secs(30))
            .await
            .unwrap()
            .len()
            .min(2),
        2
    );

    // The listener reconnects, and a later insert on another node still wakes this one.
    let listener = format!("{}-listen", schema.app("t"));
    let listening = eventually(Duration::from_secs(10), || async {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                   AND state = 'idle'";
        admin
            .query_one(sql, &[&listener])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    assert!(listening.await, "the LISTEN connection is back");
    let wakeups = store.wakeups();
    for i in 0..2 {
        let _ = timeout(Duration::from_millis(300), wakeups.notified()).await;
        peer.insert_job(job(&format!("late-{i}"))).await.unwrap();
        let woken = timeout(Duration::from_secs(5), wakeups.notified()).await;
        assert!(woken.is_ok(), "insert {i} on the peer wakes the store");
    }
}

/// PostgreSQL only: nodes starting at once on a fresh schema migrate it exactly once.
#[tokio::test]
async fn postgres_nodes_starting_together_migrate_once() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let url = schema.url("m");
    let opens = (0..6).map(|_| PostgresStore::open(&url));
    for opened in futures_util::future::join_all(opens).await {
        assert!(opened.is_ok(), "{:?}", opened.err());
    }
    let admin = bootstrap(&schema.base).await;
    let sql = format!(
        "SELECT count(*), count(DISTINCT version), max(version) FROM {}.schema_migrations",
        schema.name
    );
    let row = admin.query_one(&sql, &[]).await.unwrap();
    let (rows, distinct, max): (i64, i64, i32) = (row.get(0), row.get(1), row.get(2));
    assert!(
        max >= 1 && rows == distinct && rows == i64::from(max),
        "{rows} {distinct} {max}"
    );
    scriptorium::store::postgres::migrate(&url).await.unwrap();
}

/// Prints intake and work throughput on each backend (not asserted): 64 concurrent
/// inserters, then claim + finish in batches of 512.
/// `cargo test --test api conformance::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn throughput() {
    let sqlite = sqlite().await;
    measure("SQLite", sqlite.store.clone()).await;
    if let Some(postgres) = postgres().await {
        measure("PostgreSQL", postgres.store.clone()).await;
    }
}

async fn measure(backend: &str, store: Arc<dyn Store>) {
    const INSERTERS: usize = 64;
    const EACH: usize = 500;
    let started = Instant::now();
    let inserters: Vec<_> = (0..INSERTERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    store
                        .insert_job(job(&format!("job-{w}-{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for inserter in inserters {
        inserter.await.unwrap();
    }
    let total = INSERTERS * EACH;
    let took = started.elapsed();
    println!(
        "{backend}: {total} inserts by {INSERTERS} concurrent callers in {took:.2?}: {:.0} jobs/s",
        total as f64 / took.as_secs_f64()
    );

    let started = Instant::now();
    let mut worked = 0;
    loop {
        let claimed = store.claim(512, Duration::from_secs(60)).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        let outcomes: Vec<Outcome> = claimed.iter().map(|j| completed(j.lease, "done")).collect();
        worked += store.finish(outcomes).await.unwrap();
    }
    let took = started.elapsed();
    assert_eq!(worked, total);
    println!(
        "{backend}: {worked} jobs claimed and finished in batches of 512 in {took:.2?}: {:.0} jobs/s",
        worked as f64 / took.as_secs_f64()
    );
}

/// A value the database cannot hold (NUL: PostgreSQL's text refuses it, SQLite keeps it) in
/// the middle of a group of outcomes and of concurrent inserts, for jobs of two organisations:
/// every other row is written, and the poisonous one is stored faithfully or fails alone with
/// an error saying why. Groups of 9 and of 600 (which PostgreSQL writes as two halves at once).
async fn a_poisonous_row_in_a_group_fails_alone(h: Harness) {
    let store = &*h.store;
    for size in [9usize, 600] {
        let poison_at = size / 2 + 1;
        let id = |n: usize| format!("poison-{size}-{n}");
        // Concurrent inserts, grouped by the backend; the poisonous one holds NUL in its inputs.
        let inserts = (0..size).map(|n| {
            let mut job = job_for(&id(n), ["org-a", "org-b"][n % 2], "echo");
            if n == poison_at {
                job.inputs = "{\"topic\":[\"a\u{0}b\"]}".into();
            }
            store.insert_job(job)
        });
        let inserted = futures_util::future::join_all(inserts).await;
        for (n, result) in inserted.iter().enumerate() {
            match result {
                Ok(job) => assert_eq!(job.id, id(n)),
                Err(StoreError::Database(_)) if n == poison_at => {}
                Err(e) => panic!("insert {n} of {size} failed beside the poisonous one: {e}"),
            }
        }
        let mut claimed = store.claim(size, Duration::from_secs(30)).await.unwrap();
        claimed.sort_by_key(|c| c.id.clone());
        let poisoned = id(poison_at + 1);
        let outcomes = claimed
            .iter()
            .map(|c| {
                let text = if c.id == poisoned {
                    "x\u{0}y".to_owned()
                } else {
                    format!("for {}", c.id)
                };
                completed(c.lease, &text)
            })
            .collect();
        let applied = store.finish(outcomes).await.unwrap();
        assert_eq!(
            applied,
            claimed.len(),
            "every outcome is applied, as a result or a failure"
        );
        for c in &claimed {
            let org =
                ["org-a", "org-b"][c.id.rsplit('-').next().unwrap().parse::<usize>().unwrap() % 2];
            let job = store.get_job(org, &c.id).await.unwrap().unwrap();
            if c.id != poisoned {
                assert_eq!(job.state, JobState::Completed, "{}", c.id);
                assert_eq!(job.suggestion, Some(format!("for {}", c.id)));
            } else if job.state == JobState::Completed {
                assert_eq!(
                    job.suggestion.as_deref(),
                    Some("x\u{0}y"),
                    "stored faithfully"
                );
            } else {
                assert_eq!(job.state, JobState::Failed);
                let error = job.error.unwrap_or_default();
                assert!(error.starts_with(UNSTORABLE), "{error}");
            }
        }
    }
}
