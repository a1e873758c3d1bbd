//! The dashboard's pages with many jobs stored (queued, as the engine is off, but for a few
//! thousand finished through the store and rolled up, so the charts have figures): each page
//! fetched sequentially by one logged-in browser-like client; p50 and p99 per page.

use std::time::{Duration, Instant};

use reqwest::header;
use scriptorium::store::{
    JobQuery, MINUTE_MICROS, Outcome, OutcomeKind, Store, minute_of, now_micros, rfc3339,
};

use super::harness::{APP, KEY, Workspace, start};
use super::{BenchArgs, percentiles};

/// Fetches of each page.
const REQUESTS: usize = 200;
/// Jobs finished (one in ten failed) before measuring, for the charts and the filters.
const FINISHED: usize = 5_000;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let seeded = Instant::now();
    let first_half = now_micros();
    workspace.seed(args.stored / 2).await?;
    let middle = now_micros();
    workspace.seed(args.stored - args.stored / 2).await?;
    let store = workspace.store().await?;
    finish_some(store.as_ref(), FINISHED).await?;
    println!(
        "dashboard: seeded {} jobs ({FINISHED} finished and rolled up) in {:.1}s",
        args.stored,
        seeded.elapsed().as_secs_f64()
    );
    let deep = job_at(store.as_ref(), args.stored as u64 / 2).await?;
    drop(store);
    let server = start(workspace.options(0, args.sqlite_sync)).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = log_in(&client, &server.base).await?;
    // The first half of the seeding, to the second (as `YYYY-MM-DDTHH:MM:SS`, UTC).
    let second = |micros: i64| rfc3339(micros)[..19].to_owned();
    let (from, to) = (second(first_half), second(middle + 1_000_000));
    for (what, path) in [
        ("the overview, with its charts", "/ui/".to_owned()),
        ("the overview's live part", "/ui/overview/live".to_owned()),
        ("the jobs list", format!("/ui/jobs?application={APP}")),
        (
            "the jobs list half-way down, by its cursor",
            format!("/ui/jobs?application={APP}&older={deep}"),
        ),
        (
            "the jobs list filtered by status (failed)",
            format!("/ui/jobs?application={APP}&status=failed"),
        ),
        (
            "the jobs list filtered by time (the first half, in progress)",
            format!("/ui/jobs?application={APP}&status=in_progress&after={from}&before={to}"),
        ),
        ("an application's page", format!("/ui/applications/{APP}")),
    ] {
        let mut samples = Vec::with_capacity(REQUESTS);
        for _ in 0..REQUESTS {
            samples.push(fetch(&client, &format!("{}{path}", server.base), &cookie).await?);
        }
        let (p50, p99) = percentiles(&mut samples);
        println!("dashboard: GET {what}: p50 {p50:.2} ms, p99 {p99:.2} ms");
    }
    server.stop().await
}

/// Claims and finishes `n` jobs (one in ten failed), then rolls their minute up.
async fn finish_some(store: &dyn Store, n: usize) -> anyhow::Result<()> {
    let mut done = 0;
    while done < n {
        let claimed = store
            .claim(500.min(n - done), Duration::from_secs(60))
            .await?;
        anyhow::ensure!(!claimed.is_empty(), "no job left to finish");
        done += claimed.len();
        let outcomes = claimed
            .into_iter()
            .enumerate()
            .map(|(i, job)| Outcome {
                lease: job.lease,
                kind: if i % 10 == 0 {
                    OutcomeKind::Failed {
                        error: "bench".into(),
                    }
                } else {
                    OutcomeKind::Completed {
                        title: None,
                        suggestion: "done".into(),
                        usage: None,
                        provider: "mock".into(),
                        model: None,
                    }
                },
            })
            .collect();
        store.finish(outcomes).await?;
    }
    let until = minute_of(now_micros()) + MINUTE_MICROS;
    store.dashboard().roll_up(until).await?;
    Ok(())
}

/// The id of the job `offset` places down the benchmark application's list (read once,
/// through the API's offset paging).
async fn job_at(store: &dyn Store, offset: u64) -> anyhow::Result<String> {
    let page = store
        .list_jobs(JobQuery {
            org: scriptorium::auth::DEFAULT_ORG.into(),
            application_id: APP.into(),
            status: None,
            offset,
            limit: 1,
        })
        .await?;
    let job = page
        .jobs
        .first()
        .ok_or_else(|| anyhow::anyhow!("no job at offset {offset}"))?;
    Ok(job.id.to_string())
}

/// Logs in as a browser does; answers the session cookie (`name=value`).
async fn log_in(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/ui/login"))
        .header(header::ORIGIN, base)
        .form(&[("key", KEY)])
        .send()
        .await?;
    let cookie = response
        .headers()
        .get(header::SET_COOKIE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .ok_or_else(|| anyhow::anyhow!("log-in answered {} without a cookie", response.status()))?;
    Ok(cookie.to_owned())
}

/// The time to fetch one page whole.
async fn fetch(client: &reqwest::Client, url: &str, cookie: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client
        .get(url)
        .header(header::COOKIE, cookie)
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "{url}: {}",
        response.status()
    );
    response.bytes().await?;
    Ok(started.elapsed())
}
