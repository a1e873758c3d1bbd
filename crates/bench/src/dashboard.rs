//! The dashboard's pages with many jobs stored (queued, as the engine is off): each page
//! fetched sequentially by one logged-in browser-like client; p50 and p99 per page.

use std::time::{Duration, Instant};

use reqwest::header;

use super::harness::{APP, KEY, Workspace, start};
use super::{BenchArgs, percentiles};

/// Fetches of each page.
const REQUESTS: usize = 200;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let seeded = Instant::now();
    workspace.seed(args.stored).await?;
    println!(
        "dashboard: seeded {} jobs in {:.1}s",
        args.stored,
        seeded.elapsed().as_secs_f64()
    );
    let server = start(workspace.options(0, args.sqlite_sync)).await?;
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let cookie = log_in(&client, &server.base).await?;
    for (what, path) in [
        ("the overview", "/ui/".to_owned()),
        ("the overview's live part", "/ui/overview/live".to_owned()),
        ("the jobs list", format!("/ui/jobs?application={APP}")),
        (
            "the jobs list at offset 500,000",
            format!("/ui/jobs?application={APP}&offset=500000"),
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
