//! The webhooks' outbox: events written by the database as a subscribed batch's items and the
//! batch itself finish (and never for plain jobs or unsubscribed batches), claimed under a
//! lease, their attempts recorded and fenced, listed per organisation and batch; the secrets;
//! on PostgreSQL, a batch finished by two nodes at once completes once.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scriptorium::store::{
    AttemptRecord, BatchEnd, BatchId, BatchItem, BatchRecord, ClaimedEvent, Delivery,
    DeliveryQuery, EventKind, EventKinds, EventStatus, NewBatch, NextStep, Priority, RetryPolicy,
    SigningSecrets, Store, StoreError, Subscription,
};

use scriptorium::store::postgres::PostgresStore;

use super::{Harness, completed, failed, job, job_id, named, org};
use crate::pg::{Schema, bootstrap};

const LEASE: Duration = Duration::from_secs(40);

/// Batch `name` of the default organisation's echo application with `items` items (those at
/// `refused` refused), subscribed to `events` when given.
fn batch(name: &str, items: usize, refused: &[usize], events: Option<&[EventKind]>) -> Subscribed {
    let head = NewBatch {
        id: batch_id(name),
        org: org("default"),
        application_id: "echo".into(),
        application_version: None,
        retry: RetryPolicy {
            max_attempts: 1,
            backoff_initial_ms: 10,
            backoff_max_ms: 10,
            max_wait_ms: 60_000,
        },
        priority: Priority::Normal,
    };
    let items = (0..items)
        .map(|at| BatchItem {
            id: job_id(&format!("{name}-{at}")),
            custom_id: at.to_string(),
            inputs: "{}".into(),
            refused: refused.contains(&at).then(|| "refused".into()),
        })
        .collect();
    let end = BatchEnd {
        metadata: "{}".into(),
        errors: "[]".into(),
        priority: Priority::Normal,
        webhook: events.map(|kinds| Subscription {
            url: format!("https://hooks.example/{name}"),
            events: kinds
                .iter()
                .fold(EventKinds::default(), |set, k| set.with(*k)),
        }),
    };
    (head, items, end)
}

/// A batch, its items and its end with the subscription.
type Subscribed = (NewBatch, Vec<BatchItem>, BatchEnd);

/// Inserts a batch as a request does (see [`super::batches::insert`]).
async fn insert_batch(
    h: &Harness,
    (head, items, end): Subscribed,
) -> Result<BatchRecord, StoreError> {
    super::batches::insert(h, (head, items), Some(end)).await
}

fn batch_id(name: &str) -> BatchId {
    named(name).into()
}

/// Claims every due job and finishes each named one: completed, or failed when its name
/// is in `failing`.
async fn finish_all(store: &dyn Store, failing: &[&str]) {
    let claimed = store.claim(100, LEASE).await.unwrap();
    let outcomes = claimed
        .iter()
        .map(|c| {
            let fails = failing.iter().any(|n| job_id(n) == c.id);
            if fails {
                failed(c.lease, "broken")
            } else {
                completed(c.lease, "done")
            }
        })
        .collect();
    assert_eq!(store.finish(outcomes).await.unwrap(), claimed.len());
}

async fn claim_events(store: &dyn Store) -> Vec<ClaimedEvent> {
    store.outbox().claim_events(100, LEASE).await.unwrap()
}

fn delivery(event: &ClaimedEvent, at: i64, status: u16, next: NextStep) -> Delivery {
    Delivery {
        seq: event.seq,
        record: AttemptRecord {
            attempt: event.attempt,
            at,
            duration_ms: 3,
            status_code: Some(status),
            error: None,
        },
        next,
    }
}

pub(super) async fn events_are_written_with_the_state_change_and_claimed_under_a_lease(h: Harness) {
    let store = &*h.store;
    let all = [
        EventKind::BatchCompleted,
        EventKind::JobCompleted,
        EventKind::JobFailed,
    ];
    insert_batch(&h, batch("w1", 3, &[], Some(&all)))
        .await
        .unwrap();
    insert_batch(&h, batch("w2", 1, &[], None)).await.unwrap();
    store.insert_job(job("plain")).await.unwrap();
    assert!(claim_events(store).await.is_empty(), "nothing finished yet");

    finish_all(store, &["w1-1"]).await;
    let events = claim_events(store).await;
    let mut kinds: Vec<(&str, Option<_>)> =
        events.iter().map(|e| (e.kind.as_str(), e.job_id)).collect();
    kinds.sort_by_key(|(kind, job)| (*kind, job.map(|j| j.to_string())));
    assert_eq!(
        kinds,
        [
            ("batch.completed", None),
            ("job.completed", Some(job_id("w1-0"))),
            ("job.completed", Some(job_id("w1-2"))),
            ("job.failed", Some(job_id("w1-1"))),
        ],
        "only the subscribed batch's events"
    );
    let ids: HashSet<&str> = events.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids.len(), 4, "each event has an id of its own");
    for e in &events {
        assert!(e.id.starts_with("msg_"), "{}", e.id);
        assert_eq!((e.attempt, e.org.as_str()), (1, "default"));
        assert_eq!(e.batch_id, batch_id("w1"));
        assert_eq!(e.url, "https://hooks.example/w1");
    }
    assert!(
        claim_events(store).await.is_empty(),
        "claimed events are leased"
    );

    let by_kind = |kind: EventKind| events.iter().find(|e| e.kind == kind).unwrap();
    let (done, failing) = (
        by_kind(EventKind::BatchCompleted),
        by_kind(EventKind::JobFailed),
    );
    let now = h.clock.now();
    let outbox = store.outbox();
    assert!(
        outbox
            .record_delivery(delivery(done, now, 204, NextStep::Delivered))
            .await
            .unwrap()
    );
    let again = delivery(done, now, 204, NextStep::Delivered);
    assert!(
        !outbox.record_delivery(again).await.unwrap(),
        "delivered once"
    );
    let retry_at = now + 1_000_000;
    let first_try = delivery(failing, now, 500, NextStep::RetryAt(retry_at));
    assert!(outbox.record_delivery(first_try).await.unwrap());
    assert!(
        claim_events(store).await.is_empty(),
        "not due before its backoff"
    );

    h.clock.advance(Duration::from_secs(2));
    let retried = claim_events(store).await;
    assert_eq!(retried.len(), 1);
    assert_eq!(
        (retried[0].id.as_str(), retried[0].attempt),
        (failing.id.as_str(), 2)
    );
    let stale = delivery(failing, now, 500, NextStep::GiveUp);
    assert!(
        !outbox.record_delivery(stale).await.unwrap(),
        "a stale attempt is fenced"
    );

    // The leases of the two never answered lapse: they are claimed again.
    h.clock.advance(LEASE);
    let mut lapsed: Vec<u32> = claim_events(store)
        .await
        .iter()
        .map(|e| e.attempt)
        .collect();
    lapsed.sort();
    assert_eq!(lapsed, [2, 2, 3], "{lapsed:?}");

    let page = outbox
        .list_deliveries(DeliveryQuery {
            org: org("default"),
            batch_id: Some(batch_id("w1")),
            offset: 0,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!((page.total, page.events.len()), (4, 4));
    let listed = |id: &str| page.events.iter().find(|e| e.id == id).unwrap();
    let delivered = listed(&done.id);
    assert_eq!(delivered.status, EventStatus::Delivered);
    assert_eq!(delivered.next_attempt_at, None);
    assert_eq!(
        delivered.attempts.len(),
        1,
        "the fenced repeat is the same attempt"
    );
    assert_eq!(delivered.attempts[0].status_code, Some(204));
    let pending = listed(&failing.id);
    assert_eq!(pending.status, EventStatus::Pending);
    assert!(pending.next_attempt_at.is_some());
    let codes: Vec<_> = pending
        .attempts
        .iter()
        .map(|a| (a.attempt, a.status_code))
        .collect();
    assert_eq!(
        codes,
        [(1, Some(500))],
        "the stale attempt's record was its first's"
    );
    let newest_first: Vec<i64> = page.events.iter().map(|e| e.created_at).collect();
    assert!(
        newest_first.windows(2).all(|w| w[0] >= w[1]),
        "{newest_first:?}"
    );

    let others = outbox
        .list_deliveries(DeliveryQuery {
            org: org("other"),
            batch_id: None,
            offset: 0,
            limit: 10,
        })
        .await
        .unwrap();
    assert_eq!(others.total, 0, "another organisation sees none");
}

pub(super) async fn a_batch_completed_event_is_written_each_time_the_batch_finishes(h: Harness) {
    let store = &*h.store;
    let batch_only = [EventKind::BatchCompleted];
    insert_batch(&h, batch("r1", 2, &[0, 1], Some(&batch_only)))
        .await
        .unwrap();
    let refused = claim_events(store).await;
    assert_eq!(
        refused.len(),
        1,
        "a batch refused whole is finished at once"
    );
    assert_eq!(
        (refused[0].kind, refused[0].batch_id),
        (EventKind::BatchCompleted, batch_id("r1"))
    );

    insert_batch(&h, batch("r2", 2, &[], Some(&batch_only)))
        .await
        .unwrap();
    let claimed = store.claim(1, LEASE).await.unwrap();
    store
        .finish(vec![completed(claimed[0].lease, "done")])
        .await
        .unwrap();
    assert!(claim_events(store).await.is_empty(), "one item still runs");
    finish_all(store, &["r2-0", "r2-1"]).await;
    let finished = claim_events(store).await;
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].kind, EventKind::BatchCompleted);

    // A retried item runs the batch again; it finishes again, and says so again.
    let failed_item = if claimed[0].id == job_id("r2-0") {
        "r2-1"
    } else {
        "r2-0"
    };
    store
        .retry_job(&org("default"), job_id(failed_item))
        .await
        .unwrap();
    finish_all(store, &[]).await;
    let again = claim_events(store).await;
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].kind, EventKind::BatchCompleted);
    assert_ne!(again[0].id, finished[0].id);
}

pub(super) async fn the_secret_is_kept_per_organisation_until_rotated(h: Harness) {
    let outbox = h.store.outbox();
    let (a, b) = (org("a"), org("b"));
    let current = |secrets: SigningSecrets| secrets.current;
    let first = outbox.webhook_secret(&a, "whsec_one".into()).await.unwrap();
    assert_eq!(
        first,
        SigningSecrets {
            current: "whsec_one".into(),
            previous: None
        }
    );
    assert_eq!(
        current(outbox.webhook_secret(&a, "whsec_two".into()).await.unwrap()),
        "whsec_one"
    );
    assert_eq!(
        current(outbox.webhook_secret(&b, "whsec_bee".into()).await.unwrap()),
        "whsec_bee"
    );
    h.clock.advance(Duration::from_secs(5));
    outbox
        .rotate_webhook_secret(&a, "whsec_new".into())
        .await
        .unwrap();
    let rotated = outbox.webhook_secret(&a, "whsec_x".into()).await.unwrap();
    assert_eq!(rotated.current, "whsec_new");
    assert_eq!(rotated.previous, Some(("whsec_one".into(), h.clock.now())));
    assert_eq!(
        current(outbox.webhook_secret(&b, "whsec_x".into()).await.unwrap()),
        "whsec_bee"
    );
}

/// PostgreSQL only: two nodes finishing a subscribed batch's last two items at once write its
/// batch.completed exactly once. The batch's counts are sharded per connection, so each
/// would see the other's count uncommitted; the second waits for the first to commit (on the
/// batch's lock), then sees the batch finished.
#[tokio::test]
async fn concurrent_finishers_of_a_batch_write_its_completion_once() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let store = PostgresStore::open(&schema.url("t")).await.unwrap();
    let batch_only = [EventKind::BatchCompleted];
    let (head, items, end) = batch("c1", 2, &[], Some(&batch_only));
    super::batches::store_batch(&store, (head, items), Some(end))
        .await
        .unwrap();
    let admin = bootstrap(&schema.base).await;
    let first = bootstrap(&schema.url("a")).await;
    // A connection counting in another shard than the first's (on the same one, the second
    // would wait on the counter row, and the lock would go untested).
    let mut tries = 0;
    let second = loop {
        let candidate = bootstrap(&schema.url(&format!("b{tries}"))).await;
        if shard(&candidate).await != shard(&first).await {
            break (candidate, schema.app(&format!("b{tries}")));
        }
        tries += 1;
    };
    let (second, second_app) = (Arc::new(second.0), second.1);
    let finish = "UPDATE jobs SET state = 'completed', updated_at = updated_at + 1 WHERE id = $1";
    first.batch_execute("BEGIN").await.unwrap();
    first
        .execute(finish, &[&job_id("c1-0").to_string()])
        .await
        .unwrap();
    second.batch_execute("BEGIN").await.unwrap();
    let finishing = tokio::spawn({
        let second = second.clone();
        async move { second.execute(finish, &[&job_id("c1-1").to_string()]).await }
    });
    let waiting = "SELECT count(*) FROM pg_stat_activity \
         WHERE application_name = $1 AND wait_event_type = 'Lock'";
    let deadline = Instant::now() + Duration::from_secs(10);
    while admin
        .query_one(waiting, &[&second_app])
        .await
        .unwrap()
        .get::<_, i64>(0)
        == 0
    {
        assert!(
            Instant::now() < deadline,
            "the second finisher never waited on the first"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    first.batch_execute("COMMIT").await.unwrap();
    finishing.await.unwrap().unwrap();
    second.batch_execute("COMMIT").await.unwrap();

    let events = claim_events(&store).await;
    let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
    assert_eq!(kinds, [EventKind::BatchCompleted]);
}

/// The counter shard a connection writes (its backend's pid modulo 16, as the triggers take it).
async fn shard(client: &tokio_postgres::Client) -> i32 {
    let row = client
        .query_one("SELECT pg_backend_pid() % 16", &[])
        .await
        .unwrap();
    row.get(0)
}
