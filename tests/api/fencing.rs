//! Fencing at the store: a worker whose lease was taken over can overwrite neither the newer
//! attempt nor a finished job. Driven directly, without the engine, so nothing races.

use std::time::Duration;

use scriptorium::apps::RetryPolicy;
use scriptorium::store::sqlite::{Durability, SqliteStore};
use scriptorium::store::{NewJob, Outcome, OutcomeKind, Store, now_micros};

fn new_job(id: &str) -> NewJob {
    NewJob {
        id: id.into(),
        org: "default".into(),
        application_id: "echo".into(),
        inputs: "{}".into(),
        retry: RetryPolicy {
            max_attempts: 5,
            backoff_initial_ms: 10,
            backoff_max_ms: 10,
        },
        idempotency_key: None,
    }
}

fn completed(lease: scriptorium::store::Lease, text: &str) -> Outcome {
    Outcome {
        lease,
        kind: OutcomeKind::Completed {
            title: None,
            suggestion: text.into(),
            usage: None,
        },
    }
}

#[tokio::test]
async fn a_worker_whose_lease_was_taken_over_cannot_overwrite_the_newer_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), Durability::Normal).unwrap();
    store.insert_job(new_job("job-1")).await.unwrap();

    let first = store.claim(10, Duration::from_millis(1)).await.unwrap();
    assert_eq!(first.len(), 1);
    let stale = first[0].lease;
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(
        store.reap(now_micros()).await.unwrap(),
        1,
        "the lapsed lease is reaped"
    );

    let second = store.claim(10, Duration::from_secs(30)).await.unwrap();
    let fresh = second[0].lease;
    assert_eq!(fresh.attempt, stale.attempt + 1);

    // The stale worker wakes up and tries every kind of write: none lands.
    assert_eq!(
        store.finish(vec![completed(stale, "stale")]).await.unwrap(),
        0
    );
    let retry = Outcome {
        lease: stale,
        kind: OutcomeKind::Retry {
            run_at: 0,
            error: "x".into(),
        },
    };
    assert_eq!(store.finish(vec![retry]).await.unwrap(), 0);
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

#[tokio::test]
async fn a_finished_job_cannot_be_overwritten_by_a_second_outcome() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), Durability::Normal).unwrap();
    store.insert_job(new_job("job-2")).await.unwrap();
    let lease = store.claim(1, Duration::from_secs(30)).await.unwrap()[0].lease;
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
    let failed = Outcome {
        lease,
        kind: OutcomeKind::Failed {
            error: "late".into(),
        },
    };
    assert_eq!(store.finish(vec![failed]).await.unwrap(), 0);
    assert_eq!(
        store.reap(i64::MAX).await.unwrap(),
        0,
        "a finished job is never reaped"
    );
    let job = store.get_job("default", "job-2").await.unwrap().unwrap();
    assert_eq!(job.suggestion.as_deref(), Some("first"));
    assert!(job.error.is_none());
}

#[tokio::test]
async fn a_lease_lapsing_on_the_last_attempt_fails_the_job_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), Durability::Normal).unwrap();
    let mut job = new_job("job-3");
    job.retry.max_attempts = 1;
    store.insert_job(job).await.unwrap();
    store.claim(1, Duration::from_millis(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    store.reap(now_micros()).await.unwrap();
    let job = store.get_job("default", "job-3").await.unwrap().unwrap();
    assert_eq!(job.state, scriptorium::store::JobState::Failed);
    assert!(job.error.unwrap().contains("lease expired"));
}

#[tokio::test]
async fn a_released_job_runs_again_without_losing_an_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&dir.path().join("db"), Durability::Normal).unwrap();
    store.insert_job(new_job("job-4")).await.unwrap();
    let lease = store.claim(1, Duration::from_secs(30)).await.unwrap()[0].lease;
    assert_eq!(store.release(vec![lease]).await.unwrap(), 1);
    let again = store.claim(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(again[0].lease.attempt, lease.attempt);
}
