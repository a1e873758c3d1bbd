//! The queue: claims, leases fencing every write, retries at their time, the reaper, release
//! at shutdown, heartbeats, and the wake-up an insert gives the engine.

use std::time::Duration;

use scriptorium::store::{JobState, RetryOutcome};
use tokio::time::timeout;

use super::{Harness, claim_one, completed, failed, job, job_id, org, retry_after, state_of};

pub(super) async fn a_claim_takes_at_most_its_limit_of_due_jobs_and_raises_the_attempt(h: Harness) {
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
            .all(|j| j.lease.attempt == 1 && j.application_id.as_str() == "echo")
    );
    assert_eq!(first[0].retry.max_attempts, 5);
    assert_eq!(first[0].inputs, r#"{"topic":["x"]}"#);
    let running = store
        .get_job(&org("default"), first[0].id)
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
    let delay = Duration::from_millis(400);
    assert_eq!(
        store
            .finish(vec![retry_after(first[0].lease, delay)])
            .await
            .unwrap(),
        1
    );
    assert_eq!(state_of(store, first[0].id).await, JobState::Retrying);
    assert!(
        store.claim(10, lease).await.unwrap().is_empty(),
        "not due yet"
    );
    h.clock.advance(Duration::from_millis(500));
    let again = store.claim(10, lease).await.unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!((again[0].id, again[0].lease.attempt), (first[0].id, 2));
}

pub(super) async fn a_stale_lease_can_neither_finish_renew_nor_release(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let stale = claim_one(store, Duration::from_millis(1)).await;
    h.clock.advance(Duration::from_millis(5));
    assert_eq!(store.reap().await.unwrap(), 1, "the lapsed lease is reaped");
    let fresh = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(fresh.attempt, stale.attempt + 1);

    assert_eq!(
        store.finish(vec![completed(stale, "stale")]).await.unwrap(),
        0
    );
    assert_eq!(
        store
            .finish(vec![retry_after(stale, Duration::ZERO)])
            .await
            .unwrap(),
        0
    );
    assert_eq!(store.finish(vec![failed(stale, "stale")]).await.unwrap(), 0);
    assert_eq!(
        store
            .renew(vec![stale], Duration::from_secs(30))
            .await
            .unwrap(),
        vec![stale],
        "a stale lease is answered as lost"
    );
    assert_eq!(store.release(vec![stale]).await.unwrap(), 0);

    assert_eq!(
        store.finish(vec![completed(fresh, "fresh")]).await.unwrap(),
        1
    );
    let job = store
        .get_job(&org("default"), job_id("job-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.suggestion.as_deref(), Some("fresh"));
}

pub(super) async fn a_batch_with_a_stale_and_a_fresh_outcome_applies_only_the_fresh(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let stale = claim_one(store, Duration::from_millis(1)).await;
    h.clock.advance(Duration::from_millis(5));
    assert_eq!(store.reap().await.unwrap(), 1);
    let fresh = claim_one(store, Duration::from_secs(30)).await;
    // Both in one batch, the stale one first and then last: only the fresh one counts.
    for order in [[stale, fresh], [fresh, stale]] {
        let outcomes = order
            .iter()
            .map(|lease| completed(*lease, if *lease == fresh { "fresh" } else { "stale" }))
            .collect();
        let applied = store.finish(outcomes).await.unwrap();
        let job = store
            .get_job(&org("default"), job_id("job-1"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(job.suggestion.as_deref(), Some("fresh"), "{order:?}");
        assert_eq!(job.attempt, fresh.attempt);
        if order[0] == stale {
            assert_eq!(applied, 1, "only the fresh outcome applies");
        } else {
            assert_eq!(applied, 0, "the job has finished: nothing applies again");
        }
    }
}

pub(super) async fn a_finished_job_cannot_be_overwritten(h: Harness) {
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
        vec![lease]
    );
    assert_eq!(store.release(vec![lease]).await.unwrap(), 0);
    h.clock.advance(Duration::from_secs(3600));
    assert_eq!(
        store.reap().await.unwrap(),
        0,
        "a finished job is never reaped"
    );
    let job = store
        .get_job(&org("default"), job_id("job-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (job.state, job.suggestion.as_deref()),
        (JobState::Completed, Some("first"))
    );
    assert!(job.error.is_none() && job.completed_at.is_some());
}

pub(super) async fn a_lease_lapsing_on_the_last_attempt_fails_the_job(h: Harness) {
    let store = &*h.store;
    let mut last = job("job-1");
    last.retry.max_attempts = 1;
    store.insert_job(last).await.unwrap();
    store.insert_job(job("job-2")).await.unwrap();
    store.claim(2, Duration::from_millis(1)).await.unwrap();
    h.clock.advance(Duration::from_millis(5));
    assert_eq!(store.reap().await.unwrap(), 2);
    let lost = store
        .get_job(&org("default"), job_id("job-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(lost.state, JobState::Failed);
    assert!(lost.error.unwrap().contains("lease expired"));
    assert!(lost.completed_at.is_some());
    assert_eq!(
        state_of(store, job_id("job-2")).await,
        JobState::Queued,
        "attempts remain"
    );
}

pub(super) async fn a_released_job_keeps_its_attempt_count(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let lease = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(store.release(vec![lease]).await.unwrap(), 1);
    assert_eq!(state_of(store, job_id("job-1")).await, JobState::Queued);
    let again = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(again.attempt, lease.attempt);
}

pub(super) async fn a_renewed_lease_is_not_reaped(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let lease = claim_one(store, Duration::from_millis(1)).await;
    assert_eq!(
        store
            .renew(vec![lease], Duration::from_secs(30))
            .await
            .unwrap(),
        Vec::new(),
        "the lease holds"
    );
    h.clock.advance(Duration::from_millis(5));
    assert_eq!(store.reap().await.unwrap(), 0);
    assert_eq!(state_of(store, job_id("job-1")).await, JobState::Running);
    assert_eq!(store.finish(vec![completed(lease, "ok")]).await.unwrap(), 1);
}

/// On PostgreSQL the job is inserted through a second store, so only LISTEN/NOTIFY can
/// carry the wake-up.
pub(super) async fn an_insert_wakes_the_engine(h: Harness) {
    let wakeups = h.store.wakeups();
    let writer = h.peer.clone().unwrap_or_else(|| h.store.clone());
    let _ = timeout(Duration::from_millis(100), wakeups.notified()).await;
    writer.insert_job(job("job-1")).await.unwrap();
    let woken = timeout(Duration::from_secs(5), wakeups.notified()).await;
    assert!(woken.is_ok(), "an insert signals the engine");
}

pub(super) async fn attempts_that_end_without_a_result_are_listed_with_their_times(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let first = claim_one(store, Duration::from_secs(30)).await;
    h.clock.advance(Duration::from_millis(7));
    assert_eq!(
        store
            .finish(vec![retry_after(first, Duration::ZERO)])
            .await
            .unwrap(),
        1
    );
    // A stale outcome of the same attempt records nothing more.
    assert_eq!(
        store.finish(vec![failed(first, "too late")]).await.unwrap(),
        0
    );
    h.clock.advance(Duration::from_millis(1));
    let second = claim_one(store, Duration::from_secs(30)).await;
    h.clock.advance(Duration::from_millis(3));
    assert_eq!(
        store.finish(vec![failed(second, "gave up")]).await.unwrap(),
        1
    );
    let third_try = store
        .retry_job(&org("default"), job_id("job-1"))
        .await
        .unwrap();
    assert!(
        matches!(third_try, RetryOutcome::Requeued(_)),
        "{third_try:?}"
    );
    let again = claim_one(store, Duration::from_secs(30)).await;
    assert_eq!(store.finish(vec![completed(again, "ok")]).await.unwrap(), 1);

    let ended = store
        .ended_attempts(&org("default"), job_id("job-1"))
        .await
        .unwrap();
    let seen: Vec<(u32, &str, Option<&str>)> = ended
        .iter()
        .map(|a| (a.attempt, a.state.as_str(), a.error.as_deref()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (1, "retrying", Some("try later")),
            (2, "failed", Some("gave up")),
        ],
        "the completed attempt is the job's own row"
    );
    assert_eq!(ended[0].ended_at - ended[0].started_at.unwrap(), 7_000);
    assert_eq!(ended[1].ended_at - ended[1].started_at.unwrap(), 3_000);
    // Another organisation sees none of them.
    assert!(
        store
            .ended_attempts(&org("other"), job_id("job-1"))
            .await
            .unwrap()
            .is_empty()
    );
}
