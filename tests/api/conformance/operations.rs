//! What operators read of the store itself: the job counters `/metrics` exports, and the
//! schema version `/readyz` checks.

use std::time::Duration;

use scriptorium::store::{JobCount, WriterStatus};

use super::{Harness, completed, failed, job_for, org};

fn count(org: &str, app: &str, status: WriterStatus, n: i64) -> JobCount {
    JobCount {
        org: org.into(),
        application_id: app.into(),
        status,
        n,
    }
}

pub(super) async fn job_counts_follow_inserts_outcomes_and_retries_per_org_and_application(
    h: Harness,
) {
    let store = &*h.store;
    assert_eq!(store.job_counts().await.unwrap(), Vec::new());
    for (name, owner, app) in [
        ("a-1", "default", "echo"),
        ("a-2", "default", "echo"),
        ("a-3", "default", "echo"),
        ("b-1", "default", "draft"),
        ("c-1", "other", "echo"),
    ] {
        store.insert_job(job_for(name, owner, app)).await.unwrap();
    }
    let claimed = store.claim(10, Duration::from_secs(30)).await.unwrap();
    assert_eq!(claimed.len(), 5);
    // The default organisation's echo jobs complete but one; the other's fails.
    let outcomes = claimed
        .iter()
        .filter(|job| job.application_id.as_str() == "echo")
        .filter(|job| job.id != super::job_id("a-3"))
        .map(|job| match job.org.as_str() {
            "other" => failed(job.lease, "bad"),
            _ => completed(job.lease, "ok"),
        })
        .collect();
    assert_eq!(store.finish(outcomes).await.unwrap(), 3);
    use WriterStatus::{Completed, Failed, InProgress};
    let mut counts = store.job_counts().await.unwrap();
    counts.sort_by_key(|c| {
        (
            c.org.clone(),
            c.application_id.clone(),
            format!("{:?}", c.status),
        )
    });
    assert_eq!(
        counts,
        vec![
            count("default", "draft", InProgress, 1),
            count("default", "echo", Completed, 2),
            count("default", "echo", InProgress, 1),
            count("other", "echo", Failed, 1),
        ]
    );

    // A retried job moves back; a count of zero is left out.
    let retried = store.retry_job(&org("other"), super::job_id("c-1")).await;
    assert!(retried.is_ok());
    let counts = store.job_counts().await.unwrap();
    assert!(
        counts.contains(&count("other", "echo", InProgress, 1)),
        "{counts:?}"
    );
    assert!(!counts.iter().any(|c| c.status == Failed), "{counts:?}");
}

pub(super) async fn the_schema_is_at_the_version_this_build_migrates_to(h: Harness) {
    let version = h.store.schema_version().await.unwrap();
    assert!(version.expected > 0);
    assert_eq!(version.applied, version.expected);
}
