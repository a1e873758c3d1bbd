//! The dashboard's part of the store: finished jobs rolled up per minute (once, whichever
//! store rolls up first), sessions shared by every store on the data, and the jobs list by
//! keyset with its filters.

use std::time::Duration;

use scriptorium::store::{
    JobFilter, JobId, MINUTE_MICROS, NewJob, Store, StoredSession, WriterStatus, minute_of,
};
use uuid::{NoContext, Timestamp, Uuid};

use super::batches::{batch, batch_id, insert_whole};
use super::{Harness, completed, failed, job, job_for, job_id, org};

pub(super) async fn finished_jobs_are_rolled_up_once_per_minute_and_organisation(h: Harness) {
    let store = h.store.as_ref();
    let start = minute_of(h.clock.now()) + MINUTE_MICROS;
    h.clock.advance(Duration::from_micros(
        (start - h.clock.now()) as u64 + 1_000_000,
    ));
    for (name, org) in [
        ("a", "default"),
        ("b", "default"),
        ("c", "default"),
        ("d", "other"),
    ] {
        store.insert_job(job_for(name, org, "echo")).await.unwrap();
    }
    // Queued for 2 s, then each runs 3 s: two complete, one fails, the other org's completes.
    h.clock.advance(Duration::from_secs(2));
    let mut claimed = Vec::new();
    while claimed.len() < 4 {
        claimed.extend(store.claim(4, LEASE).await.unwrap());
    }
    h.clock.advance(Duration::from_secs(3));
    let outcomes = claimed
        .iter()
        .map(|c| {
            if c.id == job_id("c") {
                failed(c.lease, "no")
            } else {
                completed(c.lease, "ok")
            }
        })
        .collect();
    assert_eq!(store.finish(outcomes).await.unwrap(), 4);

    // Not rolled up while its minute has not ended.
    let dashboard = store.dashboard();
    assert_eq!(dashboard.roll_up(start).await.unwrap(), 0);
    assert!(
        dashboard
            .minutes(&org("default"), 0)
            .await
            .unwrap()
            .is_empty()
    );

    let until = start + MINUTE_MICROS;
    assert_eq!(
        dashboard.roll_up(until).await.unwrap(),
        2,
        "one row per org"
    );
    let minutes = dashboard.minutes(&org("default"), 0).await.unwrap();
    assert_eq!(minutes.len(), 1, "{minutes:?}");
    let m = &minutes[0];
    assert_eq!((m.minute, m.completed, m.failed, m.ran), (start, 2, 1, 3));
    assert_eq!(m.application_id.as_str(), "echo");
    // Claimed 2 s after their creation, finished 3 s after their claim.
    assert_eq!((m.wait_total, m.wait_max), (6_000_000, 2_000_000));
    assert_eq!((m.run_total, m.run_max), (9_000_000, 3_000_000));
    assert_eq!(dashboard.minutes(&org("other"), 0).await.unwrap().len(), 1);

    // Again, or by another store on the same data: nothing more is written.
    assert_eq!(dashboard.roll_up(until).await.unwrap(), 0);
    if let Some(peer) = &h.peer {
        assert_eq!(peer.dashboard().roll_up(until).await.unwrap(), 0);
    }
    assert_eq!(
        dashboard.minutes(&org("default"), 0).await.unwrap(),
        minutes
    );
    assert!(
        dashboard
            .minutes(&org("default"), until)
            .await
            .unwrap()
            .is_empty(),
        "read from a minute on"
    );

    // Two days later the minute is forgotten.
    let later = until + 3 * 24 * 60 * MINUTE_MICROS;
    dashboard.roll_up(later).await.unwrap();
    assert!(
        dashboard
            .minutes(&org("default"), 0)
            .await
            .unwrap()
            .is_empty()
    );
}

const LEASE: Duration = Duration::from_secs(60);

pub(super) async fn sessions_are_shared_and_end_when_closed_or_expired(h: Harness) {
    let session = |n: u8, ttl: i64| StoredSession {
        id_hash: [n; 32],
        org: org("default"),
        csrf: format!("token-{n}"),
        expires_at: h.clock.now() + ttl,
    };
    let dashboard = h.store.dashboard();
    dashboard
        .open_session(session(1, 60_000_000))
        .await
        .unwrap();
    dashboard
        .open_session(session(2, 10_000_000))
        .await
        .unwrap();
    let other = h.peer.as_ref().unwrap_or(&h.store).dashboard();
    let read = other
        .session([1; 32])
        .await
        .unwrap()
        .expect("seen by every store");
    assert_eq!(read, session(1, 60_000_000));
    assert!(other.session([3; 32]).await.unwrap().is_none());

    other.close_session([1; 32]).await.unwrap();
    assert!(dashboard.session([1; 32]).await.unwrap().is_none());

    assert!(dashboard.session([2; 32]).await.unwrap().is_some());
    h.clock.advance(Duration::from_secs(11));
    assert!(
        dashboard.session([2; 32]).await.unwrap().is_none(),
        "expired"
    );
}

/// A job named `name` whose id carries the time `ms` (milliseconds since the epoch).
fn job_at(name: &str, ms: u64) -> NewJob {
    let id = Uuid::new_v7(Timestamp::from_unix(
        NoContext,
        ms / 1000,
        (ms % 1000) as u32 * 1_000_000,
    ));
    NewJob {
        id: JobId::from(id),
        ..job(name)
    }
}

fn filter(limit: u64) -> JobFilter {
    JobFilter {
        org: org("default"),
        application_id: "echo".into(),
        status: None,
        batch_id: None,
        created_after: None,
        created_before: None,
        older_than: None,
        limit,
    }
}

async fn browse(store: &dyn Store, f: JobFilter) -> Vec<JobId> {
    let jobs = store.dashboard().browse_jobs(f).await.unwrap();
    jobs.into_iter().map(|j| j.id).collect()
}

pub(super) async fn the_jobs_list_pages_by_keyset_and_filters_by_status_batch_and_time(h: Harness) {
    let store = h.store.as_ref();
    let base = 1_800_000_000_000u64;
    let mut ids = Vec::new();
    for i in 0..5u64 {
        let job = job_at(&format!("j{i}"), base + i * 1000);
        ids.push(job.id);
        store.insert_job(job).await.unwrap();
    }
    // Newest first, two a page, each page after the last job of the one before.
    assert_eq!(browse(store, filter(2)).await, [ids[4], ids[3]]);
    let page = |older: JobId| JobFilter {
        older_than: Some(older),
        ..filter(2)
    };
    assert_eq!(browse(store, page(ids[3])).await, [ids[2], ids[1]]);
    assert_eq!(browse(store, page(ids[1])).await, [ids[0]]);
    assert!(browse(store, page(ids[0])).await.is_empty());
    let elsewhere = JobFilter {
        org: org("other"),
        ..page(ids[3])
    };
    assert!(
        browse(store, elsewhere).await.is_empty(),
        "another org's cursor"
    );

    // By the time in their ids: made at or after j1's second, before j4's.
    let micros = |i: u64| ((base + i * 1000) * 1000) as i64;
    let between = JobFilter {
        created_after: Some(micros(1)),
        created_before: Some(micros(4)),
        ..filter(10)
    };
    assert_eq!(browse(store, between).await, [ids[3], ids[2], ids[1]]);
    let before = JobFilter {
        created_before: Some(micros(1)),
        ..filter(10)
    };
    assert_eq!(browse(store, before).await, [ids[0]]);
    let after = JobFilter {
        created_after: Some(micros(9)),
        ..filter(10)
    };
    assert!(browse(store, after).await.is_empty());

    // By status: the one claimed fails.
    let claimed = store.claim(1, LEASE).await.unwrap();
    store
        .finish(vec![failed(claimed[0].lease, "no")])
        .await
        .unwrap();
    let failures = JobFilter {
        status: Some(WriterStatus::Failed),
        ..filter(10)
    };
    assert_eq!(browse(store, failures).await, [claimed[0].id]);

    // By batch: its items only, newest first.
    insert_whole(&h, batch("b", "default", "echo", 3, &[])).await;
    let items = JobFilter {
        batch_id: Some(batch_id("b")),
        ..filter(10)
    };
    let listed = browse(store, items).await;
    assert_eq!(listed.len(), 3);
    assert!(!listed.contains(&ids[4]));
    assert_eq!(
        browse(store, filter(1)).await,
        [listed[0]],
        "the batch's last item is the newest job"
    );
}
