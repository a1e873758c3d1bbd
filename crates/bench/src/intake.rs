//! Intake: `wrk` posts jobs over keep-alive connections to a server that only serves the API
//! (concurrency 0), so every cycle goes to accepting; then the no-op route, same server.

use std::path::Path;
use std::process::Command;

use super::BenchArgs;
use super::harness::{APP, KEY, Workspace, count, start};

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if Command::new("wrk").arg("--version").output().is_err() {
        println!("intake: skipped (wrk is not installed; apt-get install wrk)");
        return Ok(());
    }
    let workspace = Workspace::new(args).await?;
    let server = start(workspace.options(0, args.sqlite_sync)).await?;
    let script = workspace.path().join("post_job.lua");
    std::fs::write(&script, lua_script())?;
    let jobs_url = format!("{}/v1/applications/{APP}/jobs", server.base);
    let intake = wrk(args, &jobs_url, Some(&script)).await?;
    let noop = wrk(args, &format!("{}/healthz", server.base), None).await?;
    let stored = count(&reqwest::Client::new(), &server.base, "in_progress").await?;
    println!(
        "intake: {:.0} jobs/s accepted ({} answered, {} stored, {} non-2xx) with {} connections",
        intake.rate, intake.requests, stored, intake.errors, args.connections
    );
    println!(
        "intake: no-op route {:.0} requests/s; durable intake is {:.2} of it",
        noop.rate,
        intake.rate / noop.rate
    );
    server.stop().await
}

fn lua_script() -> String {
    format!(
        "wrk.method = \"POST\"\n\
         wrk.body = '{{\"inputs\": [{{\"id\": \"Text\", \"value\": [\"a product page\"]}}]}}'\n\
         wrk.headers[\"Content-Type\"] = \"application/json\"\n\
         wrk.headers[\"Authorization\"] = \"Bearer {KEY}\"\n"
    )
}

struct WrkResult {
    rate: f64,
    requests: u64,
    errors: u64,
}

async fn wrk(args: &BenchArgs, url: &str, script: Option<&Path>) -> anyhow::Result<WrkResult> {
    let mut cmd = Command::new("wrk");
    cmd.args(["-t", "2", "-c"])
        .arg(args.connections.to_string())
        .arg("-d")
        .arg(format!("{}s", args.duration.as_secs().max(1)));
    if let Some(script) = script {
        cmd.arg("-s").arg(script);
    }
    cmd.arg(url);
    let output = tokio::task::spawn_blocking(move || cmd.output()).await??;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let field = |label: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .and_then(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
    };
    let rate = field("Requests/sec:")
        .and_then(|v| v.parse::<f64>().ok())
        .ok_or_else(|| anyhow::anyhow!("unexpected wrk output:\n{text}"))?;
    let requests = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let errors = field("Non-2xx or 3xx responses:")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok(WrkResult {
        rate,
        requests,
        errors,
    })
}
