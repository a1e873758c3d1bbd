//! Batches: stored whole in one call (refused items failed from the start), counts that
//! follow their items' outcomes and retries exactly, and lists per application.

use std::time::Duration;

use scriptorium::store::{
    BatchEnd, BatchId, BatchItem, BatchPart, BatchQuery, BatchRecord, BatchStatus, JobState,
    NewBatch, OrgId, Priority, RetryOutcome, RetryPolicy, Store, StoreError, WriterStatus,
};

use super::{Harness, completed, failed, job, job_id, named, org, query};

/// Batch `name` of `app` of `org`: `items` items, the ones at `refused` positions refused.
pub(super) fn batch(name: &str, org: &str, app: &str, items: usize, refused: &[usize]) -> Batch {
    let head = NewBatch {
        id: batch_id(name),
        org: org.into(),
        application_id: app.into(),
        application_version: None,
        retry: RetryPolicy {
            max_attempts: 2,
            backoff_initial_ms: 10,
            backoff_max_ms: 10,
            max_wait_ms: 60_000,
        },
        priority: Priority::Low,
    };
    let items = (0..items)
        .map(|at| BatchItem {
            id: job_id(&format!("{name}-{at}")),
            custom_id: format!("c{at}"),
            inputs: r#"{"topic":["x"]}"#.into(),
            refused: refused.contains(&at).then(|| format!("item {at} is bad")),
        })
        .collect();
    (head, items)
}

/// A batch to insert and its items.
pub(super) type Batch = (NewBatch, Vec<BatchItem>);

/// The end of a batch whose items come with `priority`.
fn end(priority: Priority) -> BatchEnd {
    BatchEnd {
        metadata: r#"{"owner":"me"}"#.into(),
        errors: "[]".into(),
        priority,
        webhook: None,
    }
}

/// Stores `batch` in `store` as a request does: its items in chunks of 5,000 through the
/// channel, then its end (or no end, when `end` is `None`).
pub(super) async fn store_batch(
    store: &dyn Store,
    (head, items): Batch,
    end: Option<BatchEnd>,
) -> Result<BatchRecord, StoreError> {
    let (parts, receiver) = tokio::sync::mpsc::channel(2);
    let feed = async move {
        for chunk in items.chunks(5_000) {
            parts.send(BatchPart::Items(chunk.to_vec())).await.ok();
        }
        if let Some(end) = end {
            parts.send(BatchPart::End(end)).await.ok();
        }
    };
    let (stored, ()) = tokio::join!(store.insert_batch(head, receiver), feed);
    stored
}

/// [`store_batch`] in the harness's store, then waits until its items are queued.
pub(super) async fn insert(
    h: &Harness,
    batch: Batch,
    end: Option<BatchEnd>,
) -> Result<BatchRecord, StoreError> {
    let stored = store_batch(&*h.store, batch, end).await;
    if stored.is_ok() {
        h.queued().await;
    }
    stored
}

/// Inserts `batch`, ended as it was created (low priority).
pub(super) async fn insert_whole(h: &Harness, batch: Batch) -> BatchRecord {
    insert(h, batch, Some(end(Priority::Low))).await.unwrap()
}

pub(super) fn batch_id(name: &str) -> BatchId {
    named(name).into()
}

pub(super) async fn read(store: &dyn Store, owner: &OrgId, name: &str) -> BatchRecord {
    store
        .get_batch(owner, batch_id(name))
        .await
        .unwrap()
        .unwrap()
}

pub(super) async fn a_batch_is_stored_whole_with_its_refused_items_failed(h: Harness) {
    let store = &*h.store;
    // More items than one statement of PostgreSQL's takes.
    let stored = insert_whole(
        &h,
        batch("b1", "default", "echo", 12_000, &[0, 5_000, 11_999]),
    )
    .await;
    assert_eq!(
        (stored.total, stored.completed, stored.failed),
        (12_000, 0, 3)
    );
    let read_back = read(store, &org("default"), "b1").await;
    assert_eq!(
        (read_back.total, read_back.failed, read_back.in_progress()),
        (12_000, 3, 11_997)
    );
    assert_eq!(read_back.created_at, stored.created_at);
    assert_eq!(read_back.status(), BatchStatus::InProgress);
    assert_eq!(read_back.priority, Priority::Low);
    assert_eq!(read_back.metadata, r#"{"owner":"me"}"#);
    assert!(
        store
            .get_batch(&org("other"), batch_id("b1"))
            .await
            .unwrap()
            .is_none()
    );

    // The items are jobs, counted as jobs are.
    let in_progress = store
        .list_jobs(query(
            "default",
            "echo",
            Some(WriterStatus::InProgress),
            0,
            1,
        ))
        .await
        .unwrap();
    assert_eq!(in_progress.total, 11_997);
    let failed_jobs = store
        .list_jobs(query("default", "echo", Some(WriterStatus::Failed), 0, 10))
        .await
        .unwrap();
    assert_eq!(failed_jobs.total, 3);
    let refused = store
        .get_job(&org("default"), job_id("b1-5000"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(refused.state, JobState::Failed);
    assert_eq!(refused.error.as_deref(), Some("item 5000 is bad"));
    assert!(refused.completed_at.is_some());
    assert_eq!(refused.batch_id, Some(batch_id("b1")));
    assert_eq!(refused.custom_id.as_deref(), Some("c5000"));
    let fine = store
        .get_job(&org("default"), job_id("b1-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (fine.state, fine.priority),
        (JobState::Queued, Priority::Low)
    );

    // A refused item never ran: retrying it would only fail again.
    let retried = store
        .retry_job(&org("default"), job_id("b1-0"))
        .await
        .unwrap();
    assert!(matches!(retried, RetryOutcome::Refused), "{retried:?}");

    // Only the valid items are claimed.
    let claimed = store.claim(20_000, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 11_997);
}

pub(super) async fn batch_counts_follow_outcomes_and_retries_exactly(h: Harness) {
    let store = &*h.store;
    let owner = org("default");
    insert_whole(&h, batch("b2", "default", "echo", 3, &[])).await;
    store.insert_job(job("alone")).await.unwrap();
    let claimed = store.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 4);
    let lease_of = |name: &str| claimed.iter().find(|c| c.id == job_id(name)).unwrap().lease;
    h.clock.advance(Duration::from_secs(1));
    store
        .finish(vec![
            completed(lease_of("b2-0"), "ok"),
            completed(lease_of("alone"), "ok"),
        ])
        .await
        .unwrap();
    let one = read(store, &owner, "b2").await;
    assert_eq!((one.completed, one.failed, one.in_progress()), (1, 0, 2));
    assert_eq!(one.updated_at, h.clock.now());
    assert!(one.completed_at().is_none());

    h.clock.advance(Duration::from_secs(1));
    store
        .finish(vec![
            completed(lease_of("b2-1"), "ok"),
            failed(lease_of("b2-2"), "no"),
        ])
        .await
        .unwrap();
    let done = read(store, &owner, "b2").await;
    assert_eq!((done.completed, done.failed, done.in_progress()), (2, 1, 0));
    assert_eq!(done.status(), BatchStatus::Completed);
    assert_eq!(done.completed_at(), Some(h.clock.now()));

    // A retried item makes the batch run again until it finishes once more.
    h.clock.advance(Duration::from_secs(1));
    let retried = store.retry_job(&owner, job_id("b2-2")).await.unwrap();
    assert!(matches!(retried, RetryOutcome::Requeued(_)));
    let again = read(store, &owner, "b2").await;
    assert_eq!(
        (again.completed, again.failed, again.in_progress()),
        (2, 0, 1)
    );
    assert_eq!(again.status(), BatchStatus::InProgress);
    let lease = store.claim(1, Duration::from_secs(30)).await.unwrap()[0].lease;
    h.clock.advance(Duration::from_secs(1));
    store.finish(vec![completed(lease, "ok")]).await.unwrap();
    let finally = read(store, &owner, "b2").await;
    assert_eq!((finally.completed, finally.failed), (3, 0));
    assert_eq!(finally.completed_at(), Some(h.clock.now()));

    // Read from another node, the counts are the same.
    if let Some(peer) = &h.peer {
        let seen = read(&**peer, &owner, "b2").await;
        assert_eq!((seen.completed, seen.failed), (3, 0));
    }
}

pub(super) async fn batches_are_listed_newest_first_per_application_by_status(h: Harness) {
    let store = &*h.store;
    insert_whole(&h, batch("l1", "default", "echo", 1, &[0])).await;
    insert_whole(&h, batch("l2", "default", "echo", 2, &[])).await;
    insert_whole(&h, batch("l3", "default", "echo", 2, &[1])).await;
    insert_whole(&h, batch("l4", "default", "other-app", 1, &[])).await;
    insert_whole(&h, batch("l5", "acme", "echo", 1, &[])).await;
    let page = |status, offset, limit| BatchQuery {
        org: org("default"),
        application_id: "echo".into(),
        status,
        offset,
        limit,
    };
    let names = |batches: &[scriptorium::store::BatchRecord]| -> Vec<BatchId> {
        batches.iter().map(|b| b.id).collect()
    };
    let first = store.list_batches(page(None, 0, 2)).await.unwrap();
    assert_eq!(first.total, 3);
    assert_eq!(names(&first.batches), [batch_id("l3"), batch_id("l2")]);
    let second = store.list_batches(page(None, 2, 2)).await.unwrap();
    assert_eq!(names(&second.batches), [batch_id("l1")]);
    let done = store
        .list_batches(page(Some(BatchStatus::Completed), 0, 10))
        .await
        .unwrap();
    assert_eq!(
        (done.total, names(&done.batches)),
        (1, vec![batch_id("l1")])
    );
    let running = store
        .list_batches(page(Some(BatchStatus::InProgress), 0, 10))
        .await
        .unwrap();
    assert_eq!(running.total, 2);
    assert_eq!(names(&running.batches), [batch_id("l3"), batch_id("l2")]);
}

pub(super) async fn a_batch_whose_parts_stop_before_their_end_writes_nothing(h: Harness) {
    let store = &*h.store;
    let owner = org("default");
    store.insert_job(job("before")).await.unwrap();
    // The sender goes away after two chunks (a request that failed or was dropped).
    let stopped = insert(&h, batch("s1", "default", "echo", 9_000, &[3]), None).await;
    assert!(stopped.is_err());
    // An item the database refuses (a job id taken) in a later chunk undoes the earlier ones.
    let (head, mut items) = batch("s2", "default", "echo", 7_000, &[]);
    items[6_500].id = job_id("before");
    let refused = insert(&h, (head, items), Some(end(Priority::Low))).await;
    assert!(refused.is_err());
    for name in ["s1", "s2"] {
        assert!(
            store
                .get_batch(&owner, batch_id(name))
                .await
                .unwrap()
                .is_none()
        );
    }
    let jobs = store
        .list_jobs(query("default", "echo", None, 0, 10))
        .await
        .unwrap();
    assert_eq!(jobs.total, 1);
    let claimed = store.claim(100, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 1);
    // The store is still whole: the next batch goes in.
    let stored = insert_whole(&h, batch("s3", "default", "echo", 2, &[])).await;
    assert_eq!(stored.total, 2);
}

pub(super) async fn a_priority_named_after_the_items_moves_the_stored_items(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("plain")).await.unwrap();
    let stored = insert(
        &h,
        batch("p1", "default", "echo", 6_000, &[1]),
        Some(end(Priority::High)),
    )
    .await
    .unwrap();
    assert_eq!(stored.priority, Priority::High);
    let read_back = read(store, &org("default"), "p1").await;
    assert_eq!(read_back.priority, Priority::High);
    for at in [0, 1, 5_999] {
        let item = store
            .get_job(&org("default"), job_id(&format!("p1-{at}")))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(item.priority, Priority::High, "item {at}");
    }
    let plain = store
        .get_job(&org("default"), job_id("plain"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(plain.priority, Priority::Normal);
    // Claims see the new priority: the batch's items come before the older plain job.
    let claimed = store.claim(1, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed[0].priority, Priority::High);
    assert_ne!(claimed[0].id, job_id("plain"));
}
