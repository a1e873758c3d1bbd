//! A batch's lifecycle: cancels (waiting items at once, running ones when their heartbeat or
//! the reaper finds them), retries of a batch's failed and cancelled items, and the results
//! in finishing order, read by cursor.

use std::collections::HashSet;
use std::time::Duration;

use scriptorium::store::{
    BatchRecord, BatchResult, BatchRetryOutcome, BatchStatus, CancelOutcome, ClaimedJob, JobId,
    JobState, ResultQuery, RetryOutcome, Store, WriterStatus,
};

use super::batches::{batch, batch_id, insert_whole, read};
use super::{Harness, completed, failed, job, job_id, org, state_of};

const LEASE: Duration = Duration::from_secs(30);

/// Every result of batch `name` after `after`, read `page` at a time.
async fn results(
    store: &dyn Store,
    name: &str,
    state: Option<JobState>,
    page: u64,
) -> Vec<BatchResult> {
    let mut all: Vec<BatchResult> = Vec::new();
    loop {
        let query = ResultQuery {
            org: org("default"),
            batch_id: batch_id(name),
            after: all.last().map_or(0, |r| r.cursor),
            state,
            limit: page,
            newest_first: false,
        };
        let got = store.batch_results(query).await.unwrap();
        let short = (got.len() as u64) < page;
        all.extend(got);
        if short {
            return all;
        }
    }
}

fn custom_ids(results: &[BatchResult]) -> Vec<String> {
    results.iter().map(|r| r.custom_id.clone()).collect()
}

/// The items of batch `name` (of `items`, not counting refused ones) no claim took.
fn waiting_items(claimed: &[ClaimedJob], name: &str, items: usize) -> Vec<JobId> {
    (0..items)
        .map(|at| job_id(&format!("{name}-{at}")))
        .filter(|id| claimed.iter().all(|c| c.id != *id))
        .collect()
}

fn counts(b: &BatchRecord) -> (u64, u64, u64, u64) {
    (b.completed, b.failed, b.cancelled, b.in_progress())
}

pub(super) async fn a_batch_cancel_stops_waiting_items_at_once_and_running_ones_at_their_beat(
    h: Harness,
) {
    let store = &*h.store;
    let owner = org("default");
    insert_whole(&h, batch("c1", "default", "echo", 5, &[4])).await;
    let claimed = store.claim(2, LEASE).await.unwrap();
    let (done, running) = (&claimed[0], &claimed[1]);
    let waiting = waiting_items(&claimed, "c1", 4);
    store.insert_job(job("plain")).await.unwrap();
    h.clock.advance(Duration::from_secs(1));
    store
        .finish(vec![completed(done.lease, "kept")])
        .await
        .unwrap();

    h.clock.advance(Duration::from_secs(1));
    let CancelOutcome::Cancelled(cancelling) =
        store.cancel_batch(&owner, batch_id("c1")).await.unwrap()
    else {
        panic!("the batch runs: it can be cancelled");
    };
    assert_eq!(cancelling.status(), BatchStatus::Cancelling);
    assert_eq!(counts(&cancelling), (1, 1, 2, 1));
    assert_eq!(cancelling.cancelled_at, Some(h.clock.now()));
    assert_eq!(state_of(store, running.id).await, JobState::Cancelling);
    let stopped = store.get_job(&owner, waiting[0]).await.unwrap().unwrap();
    assert_eq!(stopped.state, JobState::Cancelled);
    assert_eq!(stopped.state.writer_status(), WriterStatus::Failed);
    assert_eq!(stopped.error.as_deref(), Some("cancelled"));
    let kept = store.get_job(&owner, done.id).await.unwrap().unwrap();
    assert_eq!(kept.suggestion.as_deref(), Some("kept"));

    // A claim made while the running item is cancelling takes the plain job, never the item
    // (taken again, its new attempt would run to the end and complete a cancelled batch).
    let next = store.claim(10, LEASE).await.unwrap();
    let next: Vec<_> = next.iter().map(|c| c.id).collect();
    assert_eq!(next, vec![job_id("plain")]);
    assert_eq!(state_of(store, running.id).await, JobState::Cancelling);

    // The running item's result is dropped; its heartbeat finds the lease gone and ends it.
    let late = store
        .finish(vec![completed(running.lease, "too late")])
        .await
        .unwrap();
    assert_eq!(late, 0);
    assert_eq!(
        store.renew(vec![running.lease], LEASE).await.unwrap(),
        vec![running.lease]
    );
    assert_eq!(state_of(store, running.id).await, JobState::Cancelled);
    let cancelled = read(store, &owner, "c1").await;
    assert_eq!(cancelled.status(), BatchStatus::Cancelled);
    assert_eq!(counts(&cancelled), (1, 1, 3, 0));
    assert_eq!(cancelled.completed_at(), None);
    if let Some(peer) = &h.peer {
        assert_eq!(counts(&read(&**peer, &owner, "c1").await), (1, 1, 3, 0));
    }

    // Nothing of another job changed; finished work cannot be cancelled.
    assert_eq!(state_of(store, job_id("plain")).await, JobState::Running);
    let again = store.cancel_batch(&owner, batch_id("c1")).await.unwrap();
    assert!(matches!(again, CancelOutcome::Finished), "{again:?}");
    let finished = store.cancel_job(&owner, done.id).await.unwrap();
    assert!(matches!(finished, CancelOutcome::Finished), "{finished:?}");
    let stranger = store
        .cancel_batch(&org("acme"), batch_id("c1"))
        .await
        .unwrap();
    assert!(matches!(stranger, CancelOutcome::NotFound), "{stranger:?}");

    // The results: the refused item first, then in the order the items finished.
    let all = results(store, "c1", None, 2).await;
    let ids: Vec<_> = all.iter().map(|r| r.job_id).collect();
    assert_eq!(ids.len(), 5, "{ids:?}");
    assert_eq!(
        (ids[0], ids[1], ids[4]),
        (job_id("c1-4"), done.id, running.id)
    );
    assert_eq!((all[0].position, &all[0].custom_id[..]), (5, "c4"));
    assert_eq!(all[1].state, JobState::Completed);
    assert_eq!(all[1].suggestion.as_deref(), Some("kept"));
    assert!(all.windows(2).all(|w| w[0].cursor < w[1].cursor));
    let only = results(store, "c1", Some(JobState::Cancelled), 10).await;
    assert_eq!(only.len(), 3);
    assert!(only.iter().all(|r| r.error.as_deref() == Some("cancelled")));
    assert_eq!(only.last().unwrap().job_id, running.id);
}

pub(super) async fn a_cancelled_job_whose_worker_died_is_ended_by_the_reaper_and_can_retry(
    h: Harness,
) {
    let store = &*h.store;
    let owner = org("default");
    store.insert_job(job("r1")).await.unwrap();
    store.claim(1, Duration::from_secs(10)).await.unwrap();
    let CancelOutcome::Cancelled(job) = store.cancel_job(&owner, job_id("r1")).await.unwrap()
    else {
        panic!("a running job can be cancelled");
    };
    assert_eq!(job.state, JobState::Cancelling);
    assert_eq!(job.state.writer_status(), WriterStatus::InProgress);
    // Asking again changes nothing.
    let again = store.cancel_job(&owner, job_id("r1")).await.unwrap();
    assert!(matches!(again, CancelOutcome::Cancelled(ref j) if j.state == JobState::Cancelling));
    assert_eq!(store.reap().await.unwrap(), 0, "the lease still holds");
    h.clock.advance(Duration::from_secs(20));
    assert_eq!(store.reap().await.unwrap(), 1);
    assert_eq!(state_of(store, job_id("r1")).await, JobState::Cancelled);

    let retried = store.retry_job(&owner, job_id("r1")).await.unwrap();
    assert!(matches!(retried, RetryOutcome::Requeued(_)), "{retried:?}");
    let claimed = store.claim(1, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease.attempt, 1, "a fresh series");
    let missing = store.cancel_job(&org("acme"), job_id("r1")).await.unwrap();
    assert!(matches!(missing, CancelOutcome::NotFound), "{missing:?}");
}

pub(super) async fn a_batch_retry_runs_its_failed_and_cancelled_items_again_once(h: Harness) {
    let store = &*h.store;
    let owner = org("default");
    insert_whole(&h, batch("t1", "default", "echo", 5, &[4])).await;
    let claimed = store.claim(2, LEASE).await.unwrap();
    let waiting = waiting_items(&claimed, "t1", 4);
    h.clock.advance(Duration::from_secs(1));
    store
        .finish(vec![
            completed(claimed[0].lease, "ok"),
            failed(claimed[1].lease, "no"),
        ])
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    let cancelled = store.cancel_job(&owner, waiting[0]).await.unwrap();
    assert!(matches!(cancelled, CancelOutcome::Cancelled(ref j) if j.state == JobState::Cancelled));
    assert_eq!(counts(&read(store, &owner, "t1").await), (1, 2, 1, 1));
    let before: Vec<_> = results(store, "t1", None, 10)
        .await
        .iter()
        .map(|r| r.job_id)
        .collect();
    let refused = job_id("t1-4");
    assert_eq!(before, [refused, claimed[0].id, claimed[1].id, waiting[0]]);

    h.clock.advance(Duration::from_secs(1));
    let BatchRetryOutcome::Requeued(n, batch) =
        store.retry_batch(&owner, batch_id("t1")).await.unwrap()
    else {
        panic!("the batch has a failed and a cancelled item");
    };
    assert_eq!(n, 2);
    assert_eq!(counts(&batch), (1, 1, 0, 3));
    assert_eq!(batch.status(), BatchStatus::InProgress);
    let kept: Vec<_> = results(store, "t1", None, 10)
        .await
        .iter()
        .map(|r| r.job_id)
        .collect();
    assert_eq!(kept, [refused, claimed[0].id]);
    let nothing = store.retry_batch(&owner, batch_id("t1")).await.unwrap();
    assert!(
        matches!(nothing, BatchRetryOutcome::NothingToRetry),
        "{nothing:?}"
    );

    let first = claimed[0].id;
    let claimed = store.claim(10, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 3);
    assert!(claimed.iter().all(|c| c.lease.attempt == 1), "fresh series");
    h.clock.advance(Duration::from_secs(1));
    let outcomes = claimed
        .iter()
        .map(|c| completed(c.lease, "again"))
        .collect();
    store.finish(outcomes).await.unwrap();
    let done = read(store, &owner, "t1").await;
    assert_eq!(counts(&done), (4, 1, 0, 0));
    assert_eq!(done.status(), BatchStatus::Completed);
    let all = results(store, "t1", None, 2).await;
    let ids: HashSet<String> = custom_ids(&all).into_iter().collect();
    assert_eq!(all.len(), 5, "each item once");
    assert_eq!(ids.len(), 5);
    assert_eq!(
        (all[0].job_id, all[1].job_id),
        (refused, first),
        "the retried items come after"
    );
    let missing = store
        .retry_batch(&org("acme"), batch_id("t1"))
        .await
        .unwrap();
    assert!(
        matches!(missing, BatchRetryOutcome::NotFound),
        "{missing:?}"
    );
}

pub(super) async fn results_follow_the_finishing_order_and_the_pace_gives_an_eta(h: Harness) {
    let store = &*h.store;
    let owner = org("default");
    insert_whole(&h, batch("f1", "default", "echo", 10, &[])).await;
    assert_eq!(read(store, &owner, "f1").await.throughput, None);
    store.insert_job(job("solo")).await.unwrap();
    let claimed = store.claim(20, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 11);
    // Finished one at a time, one second apart, last first; the plain job among them.
    let mut order = Vec::new();
    for c in claimed.iter().rev() {
        h.clock.advance(Duration::from_secs(1));
        store.finish(vec![completed(c.lease, "ok")]).await.unwrap();
        if c.id != job_id("solo") {
            order.push(c.id);
        }
        if order.len() == 4 {
            // Four items in four seconds (since the batch was created): six left, six seconds.
            let running = read(store, &owner, "f1").await;
            let pace = running.throughput.unwrap();
            assert_eq!(pace.items, 4);
            let eta = running.eta(h.clock.now()).unwrap();
            let left = eta - h.clock.now();
            assert!((5_000_000..=9_000_000).contains(&left), "{left} µs");
        }
    }
    let all = results(store, "f1", None, 3).await;
    let ids: Vec<_> = all.iter().map(|r| r.job_id).collect();
    assert_eq!(ids, order);
    let after_fifth = ResultQuery {
        org: owner.clone(),
        batch_id: batch_id("f1"),
        after: all[4].cursor,
        state: None,
        limit: 100,
        newest_first: false,
    };
    assert_eq!(store.batch_results(after_fifth).await.unwrap().len(), 5);
    let latest_two = ResultQuery {
        org: owner.clone(),
        batch_id: batch_id("f1"),
        after: 0,
        state: None,
        limit: 2,
        newest_first: true,
    };
    let latest: Vec<_> = store.batch_results(latest_two).await.unwrap();
    let latest: Vec<_> = latest.iter().map(|r| r.job_id).collect();
    let last_two: Vec<_> = order.iter().rev().take(2).copied().collect();
    assert_eq!(latest, last_two, "newest first");
    let done = read(store, &owner, "f1").await;
    assert_eq!(done.eta(h.clock.now()), None);
    let none = ResultQuery {
        org: org("acme"),
        batch_id: batch_id("f1"),
        after: 0,
        state: None,
        limit: 100,
        newest_first: false,
    };
    assert!(store.batch_results(none).await.unwrap().is_empty());
}
