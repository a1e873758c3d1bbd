//! The store conformance suite: every case is written once against `dyn Store` and run on
//! both backends, as `conformance::sqlite::<case>` and `conformance::postgres::<case>`.
//!
//! The cases live by topic (`jobs.rs`, `leases.rs`, `keys.rs`, `files.rs`, `applications.rs`,
//! `batches.rs`, `operations.rs`, `webhooks.rs`, `dashboard.rs`); this file holds
//! the harness, the helpers they share and the list of cases. `postgres_only.rs` holds the
//! tests of PostgreSQL alone, `throughput.rs` a measurement.
//!
//! PostgreSQL cases read the server's URL from `SCRIPTORIUM_TEST_POSTGRES_URL`; when it is
//! unset they print a notice and pass, unless `SCRIPTORIUM_REQUIRE_POSTGRES=1` (as in CI)
//! makes them fail. Each case gets a schema of its own (created through a bootstrap
//! connection, selected with `options=-c search_path=…`, dropped afterwards) and an
//! `application_name` of its own, so cases run in parallel on one database and the
//! connection-killing case kills only its own store's connections.

mod applications;
mod batches;
mod dashboard;
mod files;
mod jobs;
mod keys;
mod leases;
mod lifecycle;
mod operations;
mod postgres_only;
mod scheduling;
mod throughput;
mod webhooks;

use std::sync::Arc;
use std::time::{Duration, Instant};

use scriptorium::store::postgres::PostgresStore;
use scriptorium::store::sqlite::{Durability, SqliteStore};
use scriptorium::store::{
    Clock, FileId, JobId, JobQuery, JobState, Lease, NewJob, OrgId, Outcome, OutcomeKind, Priority,
    RetryPolicy, Store, WriterStatus,
};
use tempfile::TempDir;
use uuid::Uuid;

use crate::pg::{Schema, bootstrap};

/// A store under test, a second instance on the same data where the backend allows one,
/// and what to clean up afterwards (dropped last).
struct Harness {
    store: Arc<dyn Store>,
    /// The stores' clock, moved by hand: leases lapse and retries come due without sleeping.
    clock: Clock,
    peer: Option<Arc<dyn Store>>,
    _dir: Option<TempDir>,
    schema: Option<Schema>,
}

async fn sqlite() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::manual();
    let path = dir.path().join("db");
    let store = SqliteStore::open_with_clock(&path, Durability::Normal, clock.clone()).unwrap();
    Harness {
        store: Arc::new(store),
        clock,
        peer: None,
        _dir: Some(dir),
        schema: None,
    }
}

/// A PostgreSQL harness, or `None` (after a notice) when no server is configured.
async fn postgres() -> Option<Harness> {
    let schema = Schema::create().await?;
    let clock = Clock::manual();
    let store = PostgresStore::open_with_clock(&schema.url("t"), clock.clone())
        .await
        .unwrap();
    let peer = PostgresStore::open_with_clock(&schema.url("p"), clock.clone())
        .await
        .unwrap();
    Some(Harness {
        store: Arc::new(store),
        clock,
        peer: Some(Arc::new(peer)),
        _dir: None,
        schema: Some(schema),
    })
}

impl Harness {
    /// Waits until the store has queued the items of every batch it stored: PostgreSQL's
    /// queuer gives them their queue rows after the insert returns
    /// (0018_queued_after_intake.sql); SQLite queues them as it stores them.
    async fn queued(&self) {
        let Some(schema) = &self.schema else {
            return;
        };
        let db = bootstrap(&schema.url("queued")).await;
        let sql = "SELECT count(*) FROM batches WHERE unqueued_from IS NOT NULL";
        let deadline = Instant::now() + Duration::from_secs(30);
        while db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) > 0 {
            assert!(
                Instant::now() < deadline,
                "the stored batches were not queued"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
}

/// Every case, on both backends.
macro_rules! conformance {
    ($($topic:ident::$case:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $case() {
                super::$topic::$case(super::sqlite().await).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $case() {
                if let Some(harness) = super::postgres().await {
                    super::$topic::$case(harness).await;
                }
            })*
        }
    };
}

conformance!(
    jobs::an_inserted_job_is_read_back_by_its_org_only,
    jobs::a_repeated_idempotency_key_answers_the_existing_job,
    jobs::lists_are_newest_first_with_paging_and_counts_per_status,
    jobs::only_a_failed_job_can_be_retried_and_it_starts_a_fresh_series,
    leases::a_claim_takes_at_most_its_limit_of_due_jobs_and_raises_the_attempt,
    leases::a_stale_lease_can_neither_finish_renew_nor_release,
    leases::a_batch_with_a_stale_and_a_fresh_outcome_applies_only_the_fresh,
    leases::a_finished_job_cannot_be_overwritten,
    leases::a_lease_lapsing_on_the_last_attempt_fails_the_job,
    leases::a_released_job_keeps_its_attempt_count,
    leases::a_renewed_lease_is_not_reaped,
    leases::attempts_that_end_without_a_result_are_listed_with_their_times,
    keys::keys_are_created_authenticated_listed_and_revoked,
    keys::graphs_are_kept_per_org_and_application,
    leases::an_insert_wakes_the_engine,
    jobs::usage_provider_and_model_round_trip_through_finish,
    files::files_belong_to_their_org_and_count_against_its_quota,
    files::concurrent_uploads_never_exceed_the_quota,
    files::file_processing_is_recorded_once_and_failed_files_can_be_retried,
    files::file_extraction_is_leased_fenced_and_given_up_after_its_attempts,
    jobs::a_poisonous_row_in_a_group_fails_alone,
    scheduling::claims_take_turns_across_organisations,
    scheduling::priority_orders_an_organisations_work,
    scheduling::waiting_for_a_provider_gives_the_attempt_back,
    applications::applications_are_versioned_per_organisation,
    applications::a_deleted_application_keeps_its_versions_and_their_numbers,
    applications::a_claimed_job_carries_the_version_it_was_created_with,
    batches::a_batch_is_stored_whole_with_its_refused_items_failed,
    batches::batch_counts_follow_outcomes_and_retries_exactly,
    batches::batches_are_listed_newest_first_per_application_by_status,
    operations::job_counts_follow_inserts_outcomes_and_retries_per_org_and_application,
    operations::the_schema_is_at_the_version_this_build_migrates_to,
    jobs::a_jobs_inputs_and_version_are_read_by_its_org_only,
    lifecycle::a_batch_cancel_stops_waiting_items_at_once_and_running_ones_at_their_beat,
    lifecycle::a_cancelled_job_whose_worker_died_is_ended_by_the_reaper_and_can_retry,
    lifecycle::a_batch_retry_runs_its_failed_and_cancelled_items_again_once,
    lifecycle::results_follow_the_finishing_order_and_the_pace_gives_an_eta,
    webhooks::events_are_written_with_the_state_change_and_claimed_under_a_lease,
    webhooks::a_batch_completed_event_is_written_each_time_the_batch_finishes,
    webhooks::the_secret_is_kept_per_organisation_until_rotated,
    batches::a_batch_whose_parts_stop_before_their_end_writes_nothing,
    batches::a_priority_named_after_the_items_moves_the_stored_items,
    dashboard::finished_jobs_are_rolled_up_once_per_minute_and_organisation,
    dashboard::sessions_are_shared_and_end_when_closed_or_expired,
    dashboard::the_jobs_list_pages_by_keyset_and_filters_by_status_batch_and_time,
);

/// The id of job `name` ([`named`]).
fn job_id(name: &str) -> JobId {
    named(name).into()
}

/// The id of file `name` ([`named`]).
fn file_id(name: &str) -> FileId {
    named(name).into()
}

/// An id made from a short name, the same every time: the name's bytes, padded with zeros.
/// Ids so made sort as their names do (as ids made later sort after earlier ones).
fn named(name: &str) -> Uuid {
    let mut bytes = [0; 16];
    assert!(
        name.len() <= bytes.len(),
        "'{name}' is too long to make an id of"
    );
    bytes[..name.len()].copy_from_slice(name.as_bytes());
    Uuid::from_bytes(bytes)
}

/// The organisation named `name`.
fn org(name: &str) -> OrgId {
    name.into()
}

/// Job `name` of the `echo` application of the default organisation.
fn job(name: &str) -> NewJob {
    job_for(name, "default", "echo")
}

/// Job `name` of `app` of `org`.
fn job_for(name: &str, org: &str, app: &str) -> NewJob {
    NewJob {
        id: job_id(name),
        org: org.into(),
        application_id: app.into(),
        application_version: None,
        inputs: r#"{"topic":["x"]}"#.into(),
        retry: RetryPolicy {
            max_attempts: 5,
            backoff_initial_ms: 10,
            backoff_max_ms: 10,
            max_wait_ms: 60_000,
        },
        priority: Priority::Normal,
        idempotency_key: None,
    }
}

fn completed(lease: Lease, text: &str) -> Outcome {
    Outcome {
        lease,
        kind: OutcomeKind::Completed {
            title: None,
            suggestion: text.into(),
            usage: None,
            provider: "default".into(),
            model: None,
        },
    }
}

fn failed(lease: Lease, error: &str) -> Outcome {
    let error = error.into();
    Outcome {
        lease,
        kind: OutcomeKind::Failed { error },
    }
}

fn retry_after(lease: Lease, delay: Duration) -> Outcome {
    let error = "try later".into();
    Outcome {
        lease,
        kind: OutcomeKind::Retry { delay, error },
    }
}

async fn claim_one(store: &dyn Store, lease: Duration) -> Lease {
    let claimed = store.claim(1, lease).await.unwrap();
    assert_eq!(claimed.len(), 1, "one job is due");
    claimed[0].lease
}

async fn state_of(store: &dyn Store, id: JobId) -> JobState {
    let job = store.get_job(&org("default"), id).await.unwrap();
    job.unwrap().state
}

fn query(org: &str, app: &str, status: Option<WriterStatus>, offset: u64, limit: u64) -> JobQuery {
    JobQuery {
        org: org.into(),
        application_id: app.into(),
        status,
        offset,
        limit,
    }
}
