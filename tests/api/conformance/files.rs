//! Files' metadata: ownership, the quota (also under concurrent uploads), and the record of
//! processing, once, with retries of failed files.

use scriptorium::store::{FileInserted, FileProcessed, NewFile, WriterStatus, now_micros};

use super::Harness;

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
