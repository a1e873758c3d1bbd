//! A burst of uploads: `UPLOADS` HTML documents (about 100 KB each, so extraction is real
//! work) sent by `SENDERS` concurrent clients, while one more client creates jobs one after
//! another. Printed: how long the uploads and their extraction took, the most extractions
//! the server ran at once against its `--extract-concurrency`, and the job-create latency
//! during the burst beside the same server's latency before it (the ratio is the figure:
//! the API stays responsive when it is near 1).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{APP, KEY, Workspace, start};
use super::{BenchArgs, percentiles};

const UPLOADS: usize = 1000;
const SENDERS: usize = 16;
const PROBES_BEFORE: usize = 300;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let server = start(workspace.options(0, args.sqlite_sync)).await?;
    let client = reqwest::Client::new();
    let base = server.base.clone();

    let mut idle = Vec::with_capacity(PROBES_BEFORE);
    for _ in 0..PROBES_BEFORE {
        idle.push(create_job(&client, &base).await?);
    }

    let document = Arc::new(html_document());
    let burst_started = Instant::now();
    let bursting = Arc::new(AtomicBool::new(true));
    let probe = tokio::spawn({
        let (client, base, bursting) = (client.clone(), base.clone(), bursting.clone());
        async move {
            let mut busy = Vec::new();
            while bursting.load(Ordering::Relaxed) {
                busy.push(create_job(&client, &base).await?);
            }
            anyhow::Ok(busy)
        }
    });
    let mut senders = Vec::new();
    for lane in 0..SENDERS {
        let (client, base, document) = (client.clone(), base.clone(), document.clone());
        senders.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            for n in (lane..UPLOADS).step_by(SENDERS) {
                ids.push(upload(&client, &base, n, &document).await?);
            }
            anyhow::Ok(ids)
        }));
    }
    let mut ids = Vec::with_capacity(UPLOADS);
    for sender in senders {
        ids.extend(sender.await??);
    }
    let uploaded = burst_started.elapsed();
    wait_extracted(&client, &base, &ids).await?;
    let extracted = burst_started.elapsed();
    bursting.store(false, Ordering::Relaxed);
    let mut busy = probe.await??;
    let load = get(&client, &format!("{base}/v1/scriptorium/files")).await?;
    server.stop().await?;

    println!(
        "uploads: {UPLOADS} uploads of {} KB from {SENDERS} clients in {:.1}s = {:.0}/s; \
         all extracted after {:.1}s",
        document.len() / 1024,
        uploaded.as_secs_f64(),
        UPLOADS as f64 / uploaded.as_secs_f64(),
        extracted.as_secs_f64(),
    );
    println!(
        "uploads: at most {} extractions at once (extract_concurrency {})",
        load["extracting_peak"], load["extract_concurrency"]
    );
    let (idle50, idle99) = percentiles(&mut idle);
    let (busy50, busy99) = percentiles(&mut busy);
    println!(
        "uploads: job create before the burst p50 {idle50:.2} ms, p99 {idle99:.2} ms; during \
         it ({} creates) p50 {busy50:.2} ms, p99 {busy99:.2} ms (p50 ×{:.1})",
        busy.len(),
        busy50 / idle50
    );
    Ok(())
}

/// An HTML page of about 100 KB: headings, paragraphs and a table, as a product page might be.
fn html_document() -> Vec<u8> {
    let mut html = String::from("<html><head><title>Catalogue</title></head><body>");
    let mut n = 0;
    while html.len() < 100 * 1024 {
        n += 1;
        html.push_str(&format!(
            "<h2>Product {n}</h2><p>The <b>model {n}</b> is made of recycled aluminium and \
             ships in <i>three</i> colours.</p><table><tr><td>price</td><td>{n}.99</td></tr>\
             <tr><td>weight</td><td>{n} g</td></tr></table>"
        ));
    }
    html.push_str("</body></html>");
    html.into_bytes()
}

async fn upload(
    client: &reqwest::Client,
    base: &str,
    n: usize,
    document: &[u8],
) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/v1/files"))
        .bearer_auth(KEY)
        .header("content-type", "text/html")
        .header(
            "content-disposition",
            format!("attachment; filename=\"page-{n}.html\""),
        )
        .body(document.to_vec())
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "upload: {}",
        response.status()
    );
    let file: Value = response.json().await?;
    file["id"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no id in {file}"))
}

/// One `POST …/jobs`, timed.
async fn create_job(client: &reqwest::Client, base: &str) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let response = client
        .post(format!("{base}/v1/applications/{APP}/jobs"))
        .bearer_auth(KEY)
        .json(&json!({ "inputs": [{ "id": "Text", "value": ["probe"] }] }))
        .send()
        .await?;
    anyhow::ensure!(
        response.status().is_success(),
        "create: {}",
        response.status()
    );
    response.bytes().await?;
    Ok(started.elapsed())
}

/// Waits until every file in `ids` has left `in_progress`, checking they all completed.
async fn wait_extracted(
    client: &reqwest::Client,
    base: &str,
    ids: &[String],
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(600);
    for id in ids {
        loop {
            let file = get(client, &format!("{base}/v1/files/{id}")).await?;
            match file["status"].as_str() {
                Some("completed") => break,
                Some("in_progress") => {}
                _ => anyhow::bail!("file {id} did not complete: {file}"),
            }
            anyhow::ensure!(Instant::now() < deadline, "extraction took over 600 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(())
}

async fn get(client: &reqwest::Client, url: &str) -> anyhow::Result<Value> {
    Ok(client
        .get(url)
        .bearer_auth(KEY)
        .send()
        .await?
        .json()
        .await?)
}
