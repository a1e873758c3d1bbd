//! Bulk intake: for each size of `--batch-items` (100,000 and 1,000,000 by default), one
//! `POST …/batches` of that many inline items, then one batch from an uploaded JSON Lines
//! file and one from an uploaded CSV file of as many rows, each timed from the first byte sent to the 202 (which comes once every item
//! is stored): items per second, and the process's peak memory during the request (VmHWM,
//! reset before it; the server runs in this process, and the client streams its body from a
//! file, so the growth is the server's). Then what the stored batch costs to read: `GET` it
//! (exact counts), p50 and p99. The server works no jobs meanwhile, so only intake is
//! measured.

use std::io::{BufWriter, Write};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::harness::{APP, KEY, Workspace, start};
use super::{BenchArgs, percentiles};

/// Reads of the stored batch.
const READS: usize = 200;

pub(super) async fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let workspace = Workspace::new(args).await?;
    let mut options = workspace.options(0, args.sqlite_sync);
    options.max_upload_mb = Some(1024);
    options.max_batch_mb = Some(1024);
    let server = start(options).await?;
    let client = reqwest::Client::new();
    let mut last = Value::Null;
    for &n in &args.batch_items {
        let body = workspace.path().join(format!("items-{n}.json"));
        write_inline_body(&body, n)?;
        let inline = measure(&client, &server.base, "inline items", n, &body, None).await?;
        std::fs::remove_file(&body)?;

        for (kind, write) in FILES {
            let rows = workspace
                .path()
                .join(format!("rows-{n}.{}", kind.extension()));
            write(&rows, n)?;
            let file_id = upload(&client, &server.base, &rows).await?;
            std::fs::remove_file(&rows)?;
            let body = workspace.path().join(format!("file-{n}.json"));
            std::fs::write(&body, json!({ "file_id": file_id }).to_string())?;
            measure(&client, &server.base, kind.rows(), n, &body, Some(kind)).await?;
        }
        last = inline;
    }

    let url = format!(
        "{}/v1/applications/batches/{}",
        server.base,
        last["id"].as_str().unwrap_or_default()
    );
    let mut samples: Vec<Duration> = Vec::with_capacity(READS);
    for _ in 0..READS {
        let started = Instant::now();
        let response = client.get(&url).bearer_auth(KEY).send().await?;
        anyhow::ensure!(response.status().is_success(), "{}", response.status());
        response.bytes().await?;
        samples.push(started.elapsed());
    }
    let (p50, p99) = percentiles(&mut samples);
    println!(
        "batches: GET the batch of {} (exact counts): p50 {p50:.2} ms, p99 {p99:.2} ms",
        last["counts"]["total"]
    );
    server.stop().await
}

/// The kinds of file a batch is read from.
#[derive(Clone, Copy)]
enum FileKind {
    JsonLines,
    Csv,
}

impl FileKind {
    fn extension(self) -> &'static str {
        match self {
            Self::JsonLines => "jsonl",
            Self::Csv => "csv",
        }
    }

    /// What its items are called in the figures.
    fn rows(self) -> &'static str {
        match self {
            Self::JsonLines => "JSON lines",
            Self::Csv => "CSV rows",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::JsonLines => "JSON Lines",
            Self::Csv => "CSV",
        }
    }
}

/// Writes a file of so many rows to a path.
type WriteRows = fn(&Path, usize) -> std::io::Result<()>;

/// The files each size is also measured from, and how each is written.
const FILES: [(FileKind, WriteRows); 2] = [
    (FileKind::JsonLines, write_jsonl_rows),
    (FileKind::Csv, write_csv_rows),
];

/// Posts the body in `body` (streamed from the file) and prints the figures of its intake.
async fn measure(
    client: &reqwest::Client,
    base: &str,
    what: &str,
    n: usize,
    body: &Path,
    file: Option<FileKind>,
) -> anyhow::Result<Value> {
    let size = std::fs::metadata(body)?.len();
    let source = tokio::fs::File::open(body).await?;
    let before = memory("VmRSS")?;
    reset_peak_memory()?;
    let started = Instant::now();
    let response = client
        .post(format!("{base}/v1/applications/{APP}/batches"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(reqwest::Body::from(source))
        .send()
        .await?;
    let took = started.elapsed();
    let peak = memory("VmHWM")?;
    anyhow::ensure!(response.status().as_u16() == 202, "{}", response.status());
    let batch: Value = response.json().await?;
    anyhow::ensure!(
        batch["counts"]["total"].as_u64() == Some(n as u64),
        "{batch}"
    );
    let source = match file {
        Some(kind) => format!("from an uploaded {} file", kind.name()),
        None => format!("inline ({:.1} MB body)", size as f64 / 1e6),
    };
    println!(
        "batches: {n} {what} {source} stored in {:.2}s = {:.0} items/s; \
         peak memory {:.0} MB ({:.0} MB before)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64(),
        peak as f64 / 1024.0,
        before as f64 / 1024.0,
    );
    Ok(batch)
}

/// Writes `{"items": [...]}` with `n` items, each with a custom_id, to `path`.
fn write_inline_body(path: &Path, n: usize) -> std::io::Result<()> {
    let mut body = BufWriter::new(std::fs::File::create(path)?);
    body.write_all(b"{\"items\": [")?;
    for i in 0..n {
        let comma = if i > 0 { "," } else { "" };
        write!(
            body,
            "{comma}{{\"custom_id\": \"item-{i}\", \"inputs\": [{{\"id\": \"Text\", \"value\": [\"product {i}\"]}}]}}"
        )?;
    }
    body.write_all(b"]}")?;
    body.flush()
}

/// Writes a JSON Lines file of `n` items, each with a custom_id, to `path`.
fn write_jsonl_rows(path: &Path, n: usize) -> std::io::Result<()> {
    let mut rows = BufWriter::new(std::fs::File::create(path)?);
    for i in 0..n {
        writeln!(
            rows,
            "{{\"custom_id\": \"line-{i}\", \"inputs\": [{{\"id\": \"Text\", \"value\": [\"product {i}\"]}}]}}"
        )?;
    }
    rows.flush()
}

/// Writes a CSV file of `n` rows, `custom_id,Text`, to `path`.
fn write_csv_rows(path: &Path, n: usize) -> std::io::Result<()> {
    let mut rows = BufWriter::new(std::fs::File::create(path)?);
    rows.write_all(b"custom_id,Text\n")?;
    for i in 0..n {
        writeln!(rows, "row-{i},product {i}")?;
    }
    rows.flush()
}

/// Uploads the file at `path` and waits until it is processed; answers its id.
async fn upload(client: &reqwest::Client, base: &str, path: &Path) -> anyhow::Result<String> {
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("rows.csv");
    let file: Value = client
        .post(format!("{base}/v1/files"))
        .bearer_auth(KEY)
        .header(
            "content-disposition",
            format!("attachment; filename=\"{name}\""),
        )
        .body(reqwest::Body::from(tokio::fs::File::open(path).await?))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let id = file["id"].as_str().unwrap_or_default().to_owned();
    // Its text extraction runs in the server: let it finish before measuring.
    loop {
        let file: Value = client
            .get(format!("{base}/v1/files/{id}"))
            .bearer_auth(KEY)
            .send()
            .await?
            .json()
            .await?;
        if file["status"] != "in_progress" {
            return Ok(id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A memory figure of this process from /proc/self/status (`VmRSS`, `VmHWM`), in KiB.
fn memory(field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no {field} in /proc/self/status"))
}

/// Resets the process's peak memory (VmHWM) to its current size.
fn reset_peak_memory() -> anyhow::Result<()> {
    std::fs::write("/proc/self/clear_refs", "5")?;
    Ok(())
}
