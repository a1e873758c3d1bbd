//! Files' metadata: ownership, the quota (also under concurrent uploads), and text
//! extraction as leased work: claimed, fenced, recorded once, given up after its attempts,
//! with retries of failed files.

use std::time::Duration;

use scriptorium::store::{
    ClaimedFile, FileId, FileInserted, FileProcessed, NewFile, Store, WriterStatus,
};

use super::{Harness, file_id, org};

/// File `name` ([`file_id`]) of `org`, of `size` bytes.
fn file(name: &str, org: &str, size: i64) -> NewFile {
    NewFile {
        id: file_id(name),
        org: org.into(),
        name: format!("{name}.txt"),
        kind: "txt".to_owned(),
        size,
        graph_ids: Vec::new(),
    }
}

pub(super) async fn files_belong_to_their_org_and_count_against_its_quota(h: Harness) {
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
    let (a, b) = (org("a"), org("b"));
    let ids = [file_id("f1"), file_id("f2"), file_id("g1")];
    let mine: Vec<FileId> = s
        .get_files(Some(&a), &ids, false)
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.id)
        .collect();
    assert_eq!(mine, [file_id("f1")]);
    assert_eq!(s.get_files(None, &ids, false).await.unwrap().len(), 2);
    assert!(
        !s.delete_file(&b, file_id("f1")).await.unwrap(),
        "another org cannot delete it"
    );
    assert!(s.delete_file(&a, file_id("f1")).await.unwrap());
    assert!(!s.delete_file(&a, file_id("f1")).await.unwrap());
    // Deleting freed the quota.
    assert!(matches!(
        s.insert_file(file("f2", "a", 100), 100).await.unwrap(),
        FileInserted::Stored(_)
    ));
}

pub(super) async fn concurrent_uploads_never_exceed_the_quota(h: Harness) {
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

pub(super) async fn file_processing_is_recorded_once_and_failed_files_can_be_retried(h: Harness) {
    let s = h.store.as_ref();
    for name in ["ok", "bad"] {
        s.insert_file(file(name, "a", 1), 100).await.unwrap();
    }
    let claimed = claim_files(s, 10).await;
    assert_eq!(
        ids_of(&claimed),
        [file_id("bad"), file_id("ok")],
        "oldest (lowest id) first"
    );
    let lease = |name: &str| {
        claimed
            .iter()
            .find(|c| c.lease.id == file_id(name))
            .unwrap()
            .lease
    };
    let done = FileProcessed::Completed {
        text: Some("the text".into()),
        word_count: Some(2),
    };
    assert!(s.file_processed(lease("ok"), done.clone()).await.unwrap());
    assert!(
        !s.file_processed(lease("ok"), done).await.unwrap(),
        "recorded once"
    );
    let failed = FileProcessed::Failed {
        error: "unreadable".into(),
    };
    assert!(s.file_processed(lease("bad"), failed).await.unwrap());
    let (a, b) = (org("a"), org("b"));
    let ids = [file_id("ok"), file_id("bad")];
    let mut files = s.get_files(Some(&a), &ids, true).await.unwrap();
    files.sort_by_key(|f| f.id);
    assert_eq!(
        (files[0].status, files[0].error.as_deref()),
        (WriterStatus::Failed, Some("unreadable"))
    );
    assert_eq!(
        (files[1].text.as_deref(), files[1].word_count),
        (Some("the text"), Some(2))
    );
    let without_text = s.get_files(Some(&a), &ids, false).await.unwrap();
    assert!(without_text.iter().all(|f| f.text.is_none()));
    assert!(
        claim_files(s, 10).await.is_empty(),
        "nothing left to extract"
    );
    // Only the failed one is reset, and only for its own organisation.
    assert!(s.retry_files(&b, &ids).await.unwrap().is_empty());
    let reset = s.retry_files(&a, &ids).await.unwrap();
    assert_eq!(reset.len(), 1);
    assert_eq!(
        (reset[0].id, reset[0].status),
        (file_id("bad"), WriterStatus::InProgress)
    );
    let again = claim_files(s, 10).await;
    assert_eq!(ids_of(&again), [file_id("bad")]);
    assert_eq!(
        again[0].lease.attempt, 1,
        "a retry starts a fresh series of attempts"
    );
}

async fn claim_files(s: &dyn Store, limit: usize) -> Vec<ClaimedFile> {
    s.claim_files(limit, Duration::from_secs(30), 3)
        .await
        .unwrap()
}

fn ids_of(claimed: &[ClaimedFile]) -> Vec<FileId> {
    let mut ids: Vec<FileId> = claimed.iter().map(|c| c.lease.id).collect();
    ids.sort();
    ids
}

/// Extraction is leased like a job: a claim takes at most its limit, a held lease keeps the
/// file from other workers, a lapsed one gives it to the next claim with its attempt raised,
/// and only the newest attempt's result counts; a renewed lease holds, a released file is
/// claimed again without using up an attempt, and a file whose extraction was started
/// `max_attempts` times without finishing is failed.
pub(super) async fn file_extraction_is_leased_fenced_and_given_up_after_its_attempts(h: Harness) {
    let s = h.store.as_ref();
    for name in ["f1", "f2", "f3"] {
        s.insert_file(file(name, "a", 1), 100).await.unwrap();
    }
    let claim = |limit, lease_ms| s.claim_files(limit, Duration::from_millis(lease_ms), 3);
    let held = claim(1, 30_000).await.unwrap();
    assert_eq!(
        (ids_of(&held), held[0].name.as_str()),
        (vec![file_id("f1")], "f1.txt"),
        "oldest first"
    );
    let first = claim(10, 1).await.unwrap();
    assert_eq!(
        ids_of(&first),
        [file_id("f2"), file_id("f3")],
        "a held lease keeps f1 from other workers"
    );
    h.clock.advance(Duration::from_millis(5));
    let retaken = claim(10, 30_000).await.unwrap();
    assert_eq!(
        ids_of(&retaken),
        [file_id("f2"), file_id("f3")],
        "lapsed leases are claimed again"
    );
    assert!(retaken.iter().all(|c| c.lease.attempt == 2));
    let lease_of = |claimed: &[ClaimedFile], name: &str| {
        claimed
            .iter()
            .find(|c| c.lease.id == file_id(name))
            .unwrap()
            .lease
    };
    let (stale, fresh) = (lease_of(&first, "f2"), lease_of(&retaken, "f2"));
    let done = FileProcessed::Completed {
        text: Some("x".into()),
        word_count: Some(1),
    };
    assert!(
        !s.file_processed(stale, done.clone()).await.unwrap(),
        "stale attempt"
    );
    assert_eq!(
        s.renew_files(vec![stale], Duration::from_secs(30))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        s.renew_files(vec![fresh], Duration::from_secs(30))
            .await
            .unwrap(),
        1
    );
    assert!(s.file_processed(fresh, done).await.unwrap());
    // A release gives f3 back without using up its attempt.
    assert_eq!(
        s.release_files(vec![lease_of(&retaken, "f3")])
            .await
            .unwrap(),
        1
    );
    let again = claim(10, 1).await.unwrap();
    assert_eq!(
        (ids_of(&again), again[0].lease.attempt),
        (vec![file_id("f3")], 2)
    );
    // Started a third time and lapsed again: the next claim fails it instead.
    h.clock.advance(Duration::from_millis(5));
    let third = claim(10, 1).await.unwrap();
    assert_eq!(
        (ids_of(&third), third[0].lease.attempt),
        (vec![file_id("f3")], 3)
    );
    h.clock.advance(Duration::from_millis(5));
    assert!(
        claim(10, 30_000).await.unwrap().is_empty(),
        "f3 is given up, not claimed"
    );
    let f3 = &s
        .get_files(Some(&org("a")), &[file_id("f3")], false)
        .await
        .unwrap()[0];
    assert_eq!(f3.status, WriterStatus::Failed);
    let error = f3.error.as_deref().unwrap_or_default();
    assert!(error.contains("started 3 times"), "{error}");
}
