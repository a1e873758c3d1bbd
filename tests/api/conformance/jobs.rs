//! Jobs as the API sees them: insert and read back per organisation, idempotency keys,
//! newest-first lists with counts, retry of failed jobs, what a completion records (tokens,
//! provider, model), and a poisonous row in a group failing alone.

use std::collections::HashMap;
use std::time::Duration;

use scriptorium::store::{
    JobId, JobState, NewJob, Outcome, OutcomeKind, Priority, RetryOutcome, StoreError, UNSTORABLE,
    Usage, WriterStatus,
};

use super::{Harness, claim_one, completed, failed, job, job_for, job_id, org, query};

pub(super) async fn an_inserted_job_is_read_back_by_its_org_only(h: Harness) {
    let store = &*h.store;
    let inserted = store.insert_job(job("job-1")).await.unwrap();
    assert_eq!(
        (inserted.id, inserted.state),
        (job_id("job-1"), JobState::Queued)
    );
    let got = store
        .get_job(&org("default"), job_id("job-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.application_id.as_str(), "echo");
    assert_eq!((got.state, got.attempt), (JobState::Queued, 0));
    assert_eq!(got.created_at, inserted.created_at);
    assert!(got.started_at.is_none() && got.completed_at.is_none() && got.usage.is_none());
    assert!(
        store
            .get_job(&org("other"), job_id("job-1"))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get_job(&org("default"), job_id("nope"))
            .await
            .unwrap()
            .is_none()
    );
}

pub(super) async fn a_repeated_idempotency_key_answers_the_existing_job(h: Harness) {
    let store = &*h.store;
    let keyed = |name: &str, org: &str| NewJob {
        idempotency_key: Some("key-1".into()),
        ..job_for(name, org, "echo")
    };
    let first = store.insert_job(keyed("job-a", "default")).await.unwrap();
    let again = store.insert_job(keyed("job-b", "default")).await.unwrap();
    assert_eq!(
        (again.id, again.created_at),
        (job_id("job-a"), first.created_at)
    );
    assert!(
        store
            .get_job(&org("default"), job_id("job-b"))
            .await
            .unwrap()
            .is_none()
    );
    let elsewhere = store.insert_job(keyed("job-c", "other")).await.unwrap();
    assert_eq!(elsewhere.id, job_id("job-c"), "keys are per organisation");
    // Concurrent repeats (one group on PostgreSQL) all answer one job.
    let racing = (0..8).map(|i| {
        store.insert_job(NewJob {
            idempotency_key: Some("key-2".into()),
            ..job(&format!("race-{i}"))
        })
    });
    let answers = futures_util::future::join_all(racing).await;
    let ids: Vec<JobId> = answers.into_iter().map(|a| a.unwrap().id).collect();
    assert!(ids.iter().all(|id| id == &ids[0]), "{ids:?}");
    let page = store
        .list_jobs(query("default", "echo", None, 0, 100))
        .await
        .unwrap();
    assert_eq!(page.total, 2);
}

pub(super) async fn lists_are_newest_first_with_paging_and_counts_per_status(h: Harness) {
    let store = &*h.store;
    let names: Vec<String> = (0..5).map(|i| format!("job-{i}")).collect();
    for name in &names {
        store.insert_job(job(name)).await.unwrap();
    }
    store
        .insert_job(job_for("elsewhere-1", "default", "draft"))
        .await
        .unwrap();
    let claimed = store.claim(3, Duration::from_secs(30)).await.unwrap();
    let (done, lost) = (&claimed[..2], &claimed[2]);
    let outcomes = vec![
        completed(done[0].lease, "a"),
        completed(done[1].lease, "b"),
        failed(lost.lease, "bad"),
    ];
    assert_eq!(store.finish(outcomes).await.unwrap(), 3);
    // Inserted after the claim, which would have given another organisation its turn.
    store
        .insert_job(job_for("elsewhere-2", "other", "echo"))
        .await
        .unwrap();

    let all = store
        .list_jobs(query("default", "echo", None, 0, 10))
        .await
        .unwrap();
    let newest_first: Vec<JobId> = names.iter().rev().map(|name| job_id(name)).collect();
    let listed: Vec<JobId> = all.jobs.iter().map(|j| j.id).collect();
    assert_eq!((listed, all.total), (newest_first.clone(), 5));
    let page = store
        .list_jobs(query("default", "echo", None, 1, 2))
        .await
        .unwrap();
    let listed: Vec<JobId> = page.jobs.iter().map(|j| j.id).collect();
    assert_eq!((listed, page.total), (newest_first[1..3].to_vec(), 5));
    let beyond = store
        .list_jobs(query("default", "echo", None, 10, 2))
        .await
        .unwrap();
    assert_eq!((beyond.jobs.len(), beyond.total), (0, 5));

    for (status, want) in [
        (WriterStatus::Completed, 2),
        (WriterStatus::Failed, 1),
        (WriterStatus::InProgress, 2),
    ] {
        let page = store
            .list_jobs(query("default", "echo", Some(status), 0, 10))
            .await
            .unwrap();
        assert_eq!(
            (page.jobs.len(), page.total),
            (want, want as u64),
            "{status:?}"
        );
        assert!(page.jobs.iter().all(|j| j.state.writer_status() == status));
        assert!(
            page.jobs
                .windows(2)
                .all(|w| w[0].created_at >= w[1].created_at)
        );
    }
    let one = store.list_jobs(query(
        "default",
        "echo",
        Some(WriterStatus::Completed),
        1,
        1,
    ));
    let one = one.await.unwrap();
    assert_eq!((one.jobs.len(), one.total), (1, 2));
    assert_eq!(
        store
            .list_jobs(query("other", "echo", None, 0, 10))
            .await
            .unwrap()
            .total,
        1
    );
}

pub(super) async fn only_a_failed_job_can_be_retried_and_it_starts_a_fresh_series(h: Harness) {
    let store = &*h.store;
    store.insert_job(job("job-1")).await.unwrap();
    let not_failed = store
        .retry_job(&org("default"), job_id("job-1"))
        .await
        .unwrap();
    assert!(matches!(
        not_failed,
        RetryOutcome::NotFailed(JobState::Queued)
    ));
    let lease = claim_one(store, Duration::from_secs(30)).await;
    let running = store
        .retry_job(&org("default"), job_id("job-1"))
        .await
        .unwrap();
    assert!(matches!(
        running,
        RetryOutcome::NotFailed(JobState::Running)
    ));
    store.finish(vec![failed(lease, "boom")]).await.unwrap();
    let failed_job = store
        .get_job(&org("default"), job_id("job-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (failed_job.state, failed_job.error.as_deref()),
        (JobState::Failed, Some("boom"))
    );
    assert!(failed_job.completed_at.is_some());

    assert!(matches!(
        store
            .retry_job(&org("other"), job_id("job-1"))
            .await
            .unwrap(),
        RetryOutcome::NotFound
    ));
    assert!(matches!(
        store
            .retry_job(&org("default"), job_id("nope"))
            .await
            .unwrap(),
        RetryOutcome::NotFound
    ));
    let RetryOutcome::Requeued(requeued) = store
        .retry_job(&org("default"), job_id("job-1"))
        .await
        .unwrap()
    else {
        panic!("a failed job is queued again");
    };
    assert_eq!(
        (requeued.id, requeued.state),
        (job_id("job-1"), JobState::Queued)
    );
    let again = store
        .get_job(&org("default"), job_id("job-1"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.state, again.attempt), (JobState::Queued, 0));
    assert!(again.error.is_none() && again.completed_at.is_none());
    let page = store.list_jobs(query("default", "echo", Some(WriterStatus::Failed), 0, 10));
    assert_eq!(page.await.unwrap().total, 0);
    assert_eq!(claim_one(store, Duration::from_secs(30)).await.attempt, 1);
    let twice = store
        .retry_job(&org("default"), job_id("job-1"))
        .await
        .unwrap();
    assert!(matches!(twice, RetryOutcome::NotFailed(JobState::Running)));
}

/// What a completion records beside its text: the tokens, the provider and the model; a job
/// is shown with its priority from the start and with no provider until it completes.
pub(super) async fn usage_provider_and_model_round_trip_through_finish(h: Harness) {
    let store = &*h.store;
    let mut urgent = job("job-1");
    urgent.priority = Priority::High;
    store.insert_job(urgent).await.unwrap();
    store.insert_job(job("job-2")).await.unwrap();
    let read =
        |id: JobId| async move { store.get_job(&org("default"), id).await.unwrap().unwrap() };
    let queued = read(job_id("job-1")).await;
    assert_eq!(queued.priority, Priority::High);
    assert_eq!((queued.provider, queued.model), (None, None));
    let leases = store.claim(2, Duration::from_secs(30)).await.unwrap();
    let running = read(leases[0].id).await;
    assert_eq!((running.provider, running.model), (None, None));
    let usage = Usage {
        prompt_tokens: 12,
        completion_tokens: 345,
    };
    let with_usage = Outcome {
        lease: leases[0].lease,
        kind: OutcomeKind::Completed {
            title: Some("A title".into()),
            suggestion: "text".into(),
            usage: Some(usage),
            provider: "gpu".into(),
            model: Some("llama-3.1-8b".into()),
        },
    };
    let outcomes = vec![with_usage, completed(leases[1].lease, "plain")];
    assert_eq!(store.finish(outcomes).await.unwrap(), 2);
    let job = read(leases[0].id).await;
    assert_eq!(job.usage, Some(usage));
    assert_eq!(job.title.as_deref(), Some("A title"));
    assert_eq!(
        (job.provider.as_deref(), job.model.as_deref()),
        (Some("gpu"), Some("llama-3.1-8b"))
    );
    let plain = read(leases[1].id).await;
    assert_eq!(plain.usage, None);
    assert_eq!(
        (plain.provider.as_deref(), plain.model.as_deref()),
        (Some("default"), None)
    );
    let priorities = [job.priority, plain.priority];
    assert!(priorities.contains(&Priority::High) && priorities.contains(&Priority::Normal));
}

/// A value the database cannot hold (NUL: PostgreSQL's text refuses it, SQLite keeps it) in
/// the middle of a group of outcomes and of concurrent inserts, for jobs of two organisations:
/// every other row is written, and the poisonous one is stored faithfully or fails alone with
/// an error saying why. Groups of 9 and of 600 (which PostgreSQL writes as two halves at once).
pub(super) async fn a_poisonous_row_in_a_group_fails_alone(h: Harness) {
    let store = &*h.store;
    for size in [9usize, 600] {
        let poison_at = size / 2 + 1;
        let name = |n: usize| format!("poison-{size}-{n}");
        let org_of = |n: usize| ["org-a", "org-b"][n % 2];
        // Concurrent inserts, grouped by the backend; the poisonous one holds NUL in its inputs.
        let inserts = (0..size).map(|n| {
            let mut job = job_for(&name(n), org_of(n), "echo");
            if n == poison_at {
                job.inputs = "{\"topic\":[\"a\u{0}b\"]}".into();
            }
            store.insert_job(job)
        });
        let inserted = futures_util::future::join_all(inserts).await;
        for (n, result) in inserted.iter().enumerate() {
            match result {
                Ok(job) => assert_eq!(job.id, job_id(&name(n))),
                Err(StoreError::Database(_)) if n == poison_at => {}
                Err(e) => panic!("insert {n} of {size} failed beside the poisonous one: {e}"),
            }
        }
        let mut claimed = store.claim(size, Duration::from_secs(30)).await.unwrap();
        claimed.sort_by_key(|c| c.id);
        let poisoned = job_id(&name(poison_at + 1));
        let numbers: HashMap<JobId, usize> = (0..size).map(|n| (job_id(&name(n)), n)).collect();
        let outcomes = claimed
            .iter()
            .map(|c| {
                let text = if c.id == poisoned {
                    "x\u{0}y".to_owned()
                } else {
                    format!("for {}", c.id)
                };
                completed(c.lease, &text)
            })
            .collect();
        let applied = store.finish(outcomes).await.unwrap();
        assert_eq!(
            applied,
            claimed.len(),
            "every outcome is applied, as a result or a failure"
        );
        for c in &claimed {
            let owner = org(org_of(numbers[&c.id]));
            let job = store.get_job(&owner, c.id).await.unwrap().unwrap();
            if c.id != poisoned {
                assert_eq!(job.state, JobState::Completed, "{}", c.id);
                assert_eq!(job.suggestion, Some(format!("for {}", c.id)));
            } else if job.state == JobState::Completed {
                assert_eq!(
                    job.suggestion.as_deref(),
                    Some("x\u{0}y"),
                    "stored faithfully"
                );
            } else {
                assert_eq!(job.state, JobState::Failed);
                let error = job.error.unwrap_or_default();
                assert!(error.starts_with(UNSTORABLE), "{error}");
            }
        }
    }
}

pub(super) async fn a_jobs_inputs_and_version_are_read_by_its_org_only(h: Harness) {
    let store = &*h.store;
    let pinned = NewJob {
        application_version: Some(3),
        inputs: r#"{"Who":["Ada","Grace"]}"#.into(),
        ..job("pinned")
    };
    store.insert_job(pinned).await.unwrap();
    store.insert_job(job("provisioned")).await.unwrap();
    let read = |name: &'static str, org_name: &'static str| async move {
        store
            .job_inputs(&org(org_name), job_id(name))
            .await
            .unwrap()
    };
    let got = read("pinned", "default").await.unwrap();
    assert_eq!(
        (got.inputs.as_str(), got.application_version),
        (r#"{"Who":["Ada","Grace"]}"#, Some(3))
    );
    let got = read("provisioned", "default").await.unwrap();
    assert_eq!(
        (got.inputs.as_str(), got.application_version),
        (r#"{"topic":["x"]}"#, None)
    );
    assert!(read("pinned", "other").await.is_none());
    assert!(read("nope", "default").await.is_none());
}
