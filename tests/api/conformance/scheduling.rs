//! The scheduler's part of the queue: claims take turns across organisations, priority
//! orders an organisation's work without starving `low`, and waiting for a provider gives
//! the attempt back and keeps when the wait began.

use std::time::Duration;

use scriptorium::store::{ClaimedJob, JobState, Outcome, OutcomeKind, Priority, Store};

use super::{Harness, job, job_for, state_of};

const LEASE: Duration = Duration::from_secs(30);

/// The one job due next.
async fn claim_one(store: &dyn Store) -> ClaimedJob {
    let mut claimed = store.claim(1, LEASE).await.unwrap();
    assert_eq!(claimed.len(), 1, "one job is due");
    claimed.remove(0)
}

pub(super) async fn claims_take_turns_across_organisations(h: Harness) {
    let store = &*h.store;
    // One organisation's backlog, inserted before another's two jobs.
    for i in 0..20 {
        store
            .insert_job(job_for(&format!("big-{i}"), "big", "echo"))
            .await
            .unwrap();
    }
    for i in 0..2 {
        store
            .insert_job(job_for(&format!("small-{i}"), "small", "echo"))
            .await
            .unwrap();
    }
    let first = store.claim(4, LEASE).await.unwrap();
    let small = first.iter().filter(|j| j.org.as_str() == "small").count();
    assert_eq!(
        small, 2,
        "four claimed, two of them the small organisation's"
    );
    // One at a time, the turn still moves: the small organisation's jobs are done, the rest
    // is the big one's, oldest first.
    let next = store.claim(1, LEASE).await.unwrap();
    assert_eq!(next[0].org.as_str(), "big");

    for i in 0..2 {
        store
            .insert_job(job_for(&format!("late-{i}"), "small", "echo"))
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(claim_one(store).await.org.as_str().to_owned());
    }
    assert_eq!(
        seen.iter().filter(|o| *o == "small").count(),
        2,
        "single claims alternate between the organisations: {seen:?}"
    );
}

pub(super) async fn priority_orders_an_organisations_work(h: Harness) {
    let store = &*h.store;
    let with = |name: &str, priority| {
        let mut job = job(name);
        job.priority = priority;
        job
    };
    store.insert_job(with("low", Priority::Low)).await.unwrap();
    store
        .insert_job(with("normal", Priority::Normal))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(1));
    store
        .insert_job(with("high", Priority::High))
        .await
        .unwrap();
    let mut order = Vec::new();
    for _ in 0..3 {
        order.push(claim_one(store).await.priority);
    }
    assert_eq!(order, [Priority::High, Priority::Normal, Priority::Low]);

    // A low job goes before normal ones due more than an hour after it.
    store
        .insert_job(with("old-low", Priority::Low))
        .await
        .unwrap();
    h.clock.advance(Duration::from_secs(3601));
    store
        .insert_job(with("new-normal", Priority::Normal))
        .await
        .unwrap();
    assert_eq!(
        claim_one(store).await.priority,
        Priority::Low,
        "low is not starved"
    );
}

pub(super) async fn waiting_for_a_provider_gives_the_attempt_back(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("busy")).await.unwrap();
    let claimed = claim_one(store).await;
    assert_eq!((claimed.lease.attempt, claimed.waiting_since), (1, None));
    let started = claimed.claimed_at;
    let wait = |lease| Outcome {
        lease,
        kind: OutcomeKind::Wait {
            delay: Duration::from_secs(2),
            error: "model server answered 503: busy".into(),
        },
    };
    assert_eq!(store.finish(vec![wait(claimed.lease)]).await.unwrap(), 1);
    assert_eq!(
        state_of(store, claimed.id).await,
        JobState::WaitingForProvider
    );
    assert!(
        store.claim(10, LEASE).await.unwrap().is_empty(),
        "not before its delay"
    );

    h.clock.advance(Duration::from_secs(3));
    let again = claim_one(store).await;
    assert_eq!(again.lease.attempt, 1, "the wait spent no attempt");
    assert_eq!(
        again.waiting_since,
        Some(started),
        "the wait began at the first 503"
    );
    assert_eq!(store.finish(vec![wait(again.lease)]).await.unwrap(), 1);
    h.clock.advance(Duration::from_secs(3));
    let third = claim_one(store).await;
    assert_eq!(
        third.waiting_since,
        Some(started),
        "a second wait keeps the first's start"
    );

    // Any other answer ends the series.
    let retried = Outcome {
        lease: third.lease,
        kind: OutcomeKind::Retry {
            delay: Duration::ZERO,
            error: "model server answered 500".into(),
        },
    };
    assert_eq!(store.finish(vec![retried]).await.unwrap(), 1);
    let fourth = claim_one(store).await;
    assert_eq!((fourth.lease.attempt, fourth.waiting_since), (2, None));
    let job = store
        .get_job(&fourth.org, fourth.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(job.state, JobState::Running);
}
