//! The overview: jobs by state per application, charts of the jobs finished and their times
//! over the last hour and day, each provider's load and limits, and the running batches; its
//! live part is fetched again every few seconds while the page is open.
//!
//! Every figure is cheap at any number of jobs: the counts are the store's `job_counts`
//! counters (the totals of the jobs list, read with an empty page, three per application),
//! the providers' figures are this node's gates in memory (the same as
//! `GET /v1/scriptorium/providers`: throughput and latencies over their latest calls, at
//! most 1,024 calls or five minutes), and the batches are a page of each application's
//! batches in progress, with their kept counts. The charts read the store's per-minute
//! roll-up of the last day ([`charts`]): at most 1,440 rows per application.
//!
//! [`charts`]: super::charts

use axum::extract::State;
use axum::response::Html;
use minijinja::{Value, context};
use serde::Serialize;

use super::charts::charts;
use super::pages::Pages;
use super::session::LoggedIn;
use super::{UiError, UiState};
use crate::api::views::BatchView;
use crate::store::{BatchQuery, BatchStatus, JobQuery, OrgId, WriterStatus, now_micros};

/// How far back the charts read: the day chart's 24 hours and the hour it begins in.
const CHARTED: i64 = 25 * 3_600_000_000;

/// Running batches shown per application at most.
const BATCHES_PER_APP: u64 = 20;

/// One application's jobs by Writer status.
#[derive(Serialize, Default)]
struct Counts {
    application_id: String,
    in_progress: u64,
    completed: u64,
    failed: u64,
}

/// `GET /ui/`: the overview page.
pub(crate) async fn page(
    State(state): State<UiState>,
    user: LoggedIn,
) -> Result<Html<String>, UiError> {
    let live = Pages::fragment("live.html", figures(&state, &user.session.org).await?)?;
    let live = Value::from_safe_string(live.0);
    Pages::page(
        &user,
        "/ui/",
        "Overview",
        "overview.html",
        context! { live },
    )
}

/// `GET /ui/overview/live`: the live part of the overview, which the page's script swaps in.
pub(crate) async fn live(
    State(state): State<UiState>,
    user: LoggedIn,
) -> Result<Html<String>, UiError> {
    Pages::fragment("live.html", figures(&state, &user.session.org).await?)
}

/// Everything the live part shows.
async fn figures(state: &UiState, org: &OrgId) -> Result<Value, UiError> {
    let apps = state.api.apps.listed(org).await?;
    let mut counts = Vec::with_capacity(apps.len());
    let mut total = Counts {
        application_id: "all".to_owned(),
        ..Counts::default()
    };
    let mut batches = Vec::new();
    for app in &apps {
        let mut row = Counts {
            application_id: app.id.to_string(),
            ..Counts::default()
        };
        for (status, n) in [
            (WriterStatus::InProgress, &mut row.in_progress),
            (WriterStatus::Completed, &mut row.completed),
            (WriterStatus::Failed, &mut row.failed),
        ] {
            let query = JobQuery {
                org: org.clone(),
                application_id: app.id.clone(),
                status: Some(status),
                offset: 0,
                limit: 0,
            };
            *n = state.api.store.list_jobs(query).await?.total;
        }
        total.in_progress += row.in_progress;
        total.completed += row.completed;
        total.failed += row.failed;
        if row.in_progress + row.completed + row.failed > 0 {
            counts.push(row);
        }
        let query = BatchQuery {
            org: org.clone(),
            application_id: app.id.clone(),
            status: Some(BatchStatus::InProgress),
            offset: 0,
            limit: BATCHES_PER_APP,
        };
        let page = state.api.store.list_batches(query).await?;
        batches.extend(page.batches.into_iter().map(BatchView::from));
    }
    let now = now_micros();
    let minutes = state
        .api
        .store
        .dashboard()
        .minutes(org, now - CHARTED)
        .await?;
    Ok(context! {
        counts,
        total,
        batches,
        charts => charts(&minutes, now),
        providers => state.api.providers.views(),
    })
}
