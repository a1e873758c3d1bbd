//! A batch whose server stops in the middle of its work, by `kill -9` or by a graceful
//! restart (SIGTERM), on SQLite and on PostgreSQL: a new server on the same data finishes it,
//! its counts are exact (and agree with the jobs list), every item finished once with its own
//! result, and its results, read by cursor from the start or from a cursor taken before the
//! stop, answer each item exactly once. And a server killed while it takes a batch in leaves
//! nothing of it. The model is mock-llm, in this process, so it outlives the servers.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};

use futures_util::stream;
use reqwest::Client;
use serde_json::{Value, json};
use tempfile::TempDir;

use crate::cluster::write_provider_config;
use crate::helpers::KEY;
use crate::pg::{Schema, bootstrap};
use crate::process::{Serve, ServerProcess, client};
use crate::providers::{Llm, start_llm};

/// Items in the batch: enough that a stop lands in the middle of its work.
const ITEMS: usize = 3_000;
/// The application: quick attempts, many of them.
const APP: &str = "sturdy";

/// How the first server stops.
#[derive(Clone, Copy, Debug)]
enum Stop {
    /// `kill -9`: nothing is given back; leases lapse (PostgreSQL) or the next start queues
    /// the running items again (SQLite).
    Kill,
    /// SIGTERM: in-flight calls end or are given back, then the process exits cleanly.
    Graceful,
}

/// Where the servers keep their data: a data directory's SQLite file, or a test schema.
fn database_flags(schema: Option<&Schema>) -> Vec<String> {
    match schema {
        Some(schema) => vec!["--database-url".into(), schema.url("batch_crash")],
        None => vec!["--sqlite-sync".into(), "normal".into()],
    }
}

/// A server on `data_dir` (and `schema`, if any) working the provider apps against `config`,
/// `concurrency` at a time ("0": it only serves the API).
fn serve<'a>(
    data_dir: &'a Path,
    config: &'a str,
    flags: &'a [String],
    concurrency: &'a str,
) -> Serve<'a> {
    let mut serve = Serve::new(data_dir);
    serve.api_key = Some(KEY);
    serve.apps = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/provider-apps");
    serve.args = [
        "--config",
        config,
        "--concurrency",
        concurrency,
        "--lease",
        "2s",
    ]
    .into_iter()
    .chain(flags.iter().map(String::as_str))
    .collect();
    serve
}

/// The text of item `i`, which its result must carry.
fn text(i: usize) -> String {
    format!("batch-crash-item-{i:05}")
}

/// Creates the batch of [`ITEMS`] items; answers its id.
async fn create(http: &Client, server: &ServerProcess) -> String {
    let items: Vec<Value> = (0..ITEMS)
        .map(|i| json!({"custom_id": format!("item-{i}"), "inputs": [{"id": "Text", "value": [text(i)]}]}))
        .collect();
    let response = http
        .post(server.url(&format!("/v1/applications/{APP}/batches")))
        .bearer_auth(KEY)
        .json(&json!({ "items": items }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let created: Value = response.json().await.unwrap();
    assert_eq!(count(&created, "total"), ITEMS as u64, "{created}");
    created["id"].as_str().unwrap().to_owned()
}

async fn get_json(http: &Client, url: &str) -> Value {
    let response = http.get(url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url}");
    response.json().await.unwrap()
}

/// The batch's results after `cursor`, as JSON lines.
async fn results(http: &Client, server: &ServerProcess, batch: &str, cursor: u64) -> Vec<Value> {
    let url = server.url(&format!(
        "/v1/applications/batches/{batch}/results?after={cursor}"
    ));
    let response = http.get(url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let lines: Vec<Value> = response
        .text()
        .await
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let cursors: Vec<u64> = lines
        .iter()
        .map(|l| l["cursor"].as_u64().unwrap())
        .collect();
    assert!(
        cursors.windows(2).all(|w| w[0] < w[1]) && cursors.first().is_none_or(|&c| c > cursor),
        "results after {cursor} are not in increasing cursor order: {cursors:?}"
    );
    lines
}

/// `totalCount` of the application's jobs with `status` (`""`: all).
async fn listed(http: &Client, server: &ServerProcess, status: &str) -> u64 {
    let url = server.url(&format!(
        "/v1/applications/{APP}/jobs?status={status}&limit=1"
    ));
    get_json(http, &url).await["totalCount"].as_u64().unwrap()
}

/// Polls the batch until `done` holds for it; panics after `limit`.
async fn wait_for(
    http: &Client,
    server: &ServerProcess,
    batch: &str,
    limit: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let url = server.url(&format!("/v1/applications/batches/{batch}"));
    let deadline = Instant::now() + limit;
    loop {
        let batch = get_json(http, &url).await;
        if done(&batch) {
            return batch;
        }
        assert!(
            Instant::now() < deadline,
            "the batch did not get there within {limit:?}: {batch}; server log:\n{}",
            server.child.stderr.text()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn count(batch: &Value, key: &str) -> u64 {
    batch["counts"][key].as_u64().unwrap()
}

/// Each line's item, by custom_id, asserting that none is answered twice and that each
/// completed with its own text.
fn items_of(lines: &[Value]) -> HashMap<String, Value> {
    let mut items = HashMap::new();
    for line in lines {
        let custom_id = line["custom_id"].as_str().unwrap().to_owned();
        assert_eq!(line["status"], "completed", "{line}");
        let i: usize = custom_id.trim_start_matches("item-").parse().unwrap();
        let suggestion = line["data"]["suggestion"].as_str().unwrap_or_default();
        assert!(
            suggestion.contains(&text(i)),
            "{custom_id} has another item's result: {line}"
        );
        assert!(
            items.insert(custom_id, line.clone()).is_none(),
            "an item is answered twice: {line}"
        );
    }
    items
}

/// The scenario: see the module's doc.
async fn a_batch_survives(stop: Stop, schema: Option<&Schema>) {
    let llm = start_llm(&["--ttft", "5ms"], 0).await;
    let config_dir = tempfile::tempdir().unwrap();
    let config = write_provider_config(config_dir.path(), &llm.base, 16);
    let data_dir = tempfile::tempdir().unwrap();
    let flags = database_flags(schema);
    let serve = serve(data_dir.path(), &config, &flags, "16");
    let http = client();
    let server = serve.start();

    let batch = create(&http, &server).await;

    // Stop it once a fifth has completed, with a cursor read before.
    let running = wait_for(&http, &server, &batch, Duration::from_secs(60), |b| {
        count(b, "completed") >= ITEMS as u64 / 5
    })
    .await;
    let before = results(&http, &server, &batch, 0).await;
    let cursor = before.last().map_or(0, |l| l["cursor"].as_u64().unwrap());
    let first_run = match stop {
        Stop::Kill => server.kill_9(),
        Stop::Graceful => {
            server.child.sigterm();
            let ServerProcess { child, .. } = server;
            let stopped = child.wait(Duration::from_secs(30));
            assert!(stopped.status.success(), "{}", stopped.all());
            stopped
        }
    };
    let stopped_at = format!("counts {}", running["counts"]);
    assert!(
        count(&running, "completed") < ITEMS as u64,
        "the batch had finished before the stop; the test proves nothing: {running}\n{}",
        first_run.all()
    );

    // A new server on the same data finishes the batch.
    let server = serve.start();
    let done = wait_for(&http, &server, &batch, Duration::from_secs(120), |b| {
        count(b, "in_progress") == 0
    })
    .await;
    let sum: u64 = ["in_progress", "completed", "failed", "cancelled"]
        .iter()
        .map(|k| count(&done, k))
        .sum();
    assert_eq!(sum, count(&done, "total"), "{done}");
    assert_eq!(count(&done, "total"), ITEMS as u64, "{done}");
    assert_eq!(count(&done, "completed"), ITEMS as u64, "{done}");
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(listed(&http, &server, "").await, ITEMS as u64);
    assert_eq!(listed(&http, &server, "completed").await, ITEMS as u64);
    assert_eq!(listed(&http, &server, "in_progress").await, 0);

    // From the start, each item once; from the cursor taken before, the others, each once.
    let all = items_of(&results(&http, &server, &batch, 0).await);
    assert_eq!(all.len(), ITEMS);
    let earlier = items_of(&before);
    let later = items_of(&results(&http, &server, &batch, cursor).await);
    assert_eq!(earlier.len() + later.len(), ITEMS, "{stopped_at}");
    assert!(earlier.keys().all(|id| !later.contains_key(id)));
    let job_ids: HashSet<&str> = all
        .values()
        .map(|l| l["job_id"].as_str().unwrap())
        .collect();
    assert_eq!(job_ids.len(), ITEMS);
    let calls = llm.mock.stats().requests;
    assert!(
        calls >= ITEMS as u64,
        "{calls} model calls for {ITEMS} items"
    );
    println!(
        "{stop:?} with {stopped_at}; {} results before the stop, {} after; {calls} model calls",
        earlier.len(),
        later.len()
    );
    server.kill_9();
}

/// A server killed while it stores a batch: the request's items are in an open transaction,
/// and after a restart there is no batch and no item.
async fn a_batch_taken_in_when_killed_leaves_nothing(schema: Option<&Schema>) {
    let data_dir = tempfile::tempdir().unwrap();
    let flags = database_flags(schema);
    let mut serve = Serve::new(data_dir.path());
    serve.api_key = Some(KEY);
    serve.args = ["--concurrency", "0"]
        .into_iter()
        .chain(flags.iter().map(String::as_str))
        .collect();
    let server = serve.start();

    // Three chunks' worth of items, then the body stalls, unfinished.
    let items: String = (0..10_000)
        .map(|i| {
            format!(r#"{{"custom_id": "k{i}", "inputs": [{{"id": "Text", "value": ["x"]}}]}},"#)
        })
        .collect();
    let parts: Vec<Result<String, std::io::Error>> = vec![Ok(format!("{{\"items\": [{items}"))];
    let body = reqwest::Body::wrap_stream(stream::StreamExt::chain(
        stream::iter(parts),
        stream::pending(),
    ));
    let request = client()
        .post(server.url("/v1/applications/echo/batches"))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(body)
        .send();
    let sent = tokio::spawn(request);
    // Give the server time to take in what it has (a wait, not a timed assertion: the test
    // holds whether or not it got that far).
    tokio::time::sleep(Duration::from_secs(1)).await;
    server.kill_9();
    assert!(sent.await.unwrap().is_err(), "the request was answered");

    let server = serve.start();
    let http = client();
    let url = server.url("/v1/applications/echo/jobs?limit=1");
    assert_eq!(get_json(&http, &url).await["totalCount"], 0);
    let url = server.url("/v1/applications/echo/batches");
    let batches = get_json(&http, &url).await;
    assert_eq!(batches["totalCount"], 0, "{batches}");
    server.kill_9();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_batch_on_sqlite_loses_nothing_and_answers_each_item_once() {
    a_batch_survives(Stop::Kill, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_mid_batch_on_sqlite_answers_each_item_once() {
    a_batch_survives(Stop::Graceful, None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_mid_batch_on_postgres_loses_nothing_and_answers_each_item_once() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    a_batch_survives(Stop::Kill, Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_restart_mid_batch_on_postgres_answers_each_item_once() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    a_batch_survives(Stop::Graceful, Some(&schema)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_while_a_batch_is_taken_in_leaves_nothing_on_sqlite() {
    a_batch_taken_in_when_killed_leaves_nothing(None).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_9_while_a_batch_is_taken_in_leaves_nothing_on_postgres() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    a_batch_taken_in_when_killed_leaves_nothing(Some(&schema)).await;
}

/// Items of the batch that keep their queue rows when [`unqueue_after`] undoes the rest.
const KEPT_QUEUED: i64 = 1_000;

/// Waits until the queuer of a PostgreSQL server queued every item of `batch`: a batch's
/// items get their queue rows after its 202, a chunk per transaction
/// (0018_queued_after_intake.sql).
async fn wait_queued(db: &tokio_postgres::Client, batch: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let queued = "SELECT unqueued_from IS NULL FROM batches WHERE id = $1";
    while !db
        .query_one(queued, &[&batch])
        .await
        .unwrap()
        .get::<_, bool>(0)
    {
        assert!(
            Instant::now() < deadline,
            "the batch's items were not queued"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Leaves a queued batch as a queuer stopped after its first [`KEPT_QUEUED`] items would:
/// the later items without queue rows and the batch's `unqueued_from` at the first of them.
/// Answers that `seq`.
async fn unqueue_after(db: &tokio_postgres::Client, batch: &str) -> i64 {
    let undo = "WITH b AS (SELECT first_seq + $2 AS start FROM batches WHERE id = $1), \
         gone AS (DELETE FROM job_queue WHERE seq >= (SELECT start FROM b) RETURNING 1), \
         moved AS (UPDATE batches SET unqueued_from = (SELECT start FROM b) WHERE id = $1) \
         SELECT (SELECT start FROM b), (SELECT count(*) FROM gone)";
    let row = db.query_one(undo, &[&batch, &KEPT_QUEUED]).await.unwrap();
    assert_eq!(row.get::<_, i64>(1), ITEMS as i64 - KEPT_QUEUED);
    row.get(0)
}

/// How many queue rows there are, and where the batch's unqueued items start.
async fn queue_state(db: &tokio_postgres::Client, batch: &str) -> (i64, Option<i64>) {
    let sql = "SELECT (SELECT count(*) FROM job_queue), \
         (SELECT unqueued_from FROM batches WHERE id = $1)";
    let row = db.query_one(sql, &[&batch]).await.unwrap();
    (row.get(0), row.get(1))
}

/// Where the two queueing tests start: a PostgreSQL schema of their own, mock-llm, and a
/// batch of [`ITEMS`] items taken in by a server that works nothing (returned beside), whose
/// queuer has queued them. Dropped in field order, the schema last.
struct QueuedBatch {
    llm: Llm,
    config: String,
    flags: Vec<String>,
    http: Client,
    db: tokio_postgres::Client,
    batch: String,
    data_dir: TempDir,
    _config_dir: TempDir,
    schema: Schema,
}

impl QueuedBatch {
    /// `None` (after a notice) when no PostgreSQL server is configured.
    async fn start() -> Option<(Self, ServerProcess)> {
        let schema = Schema::create().await?;
        let llm = start_llm(&["--ttft", "5ms"], 0).await;
        let config_dir = tempfile::tempdir().unwrap();
        let config = write_provider_config(config_dir.path(), &llm.base, 16);
        let db = bootstrap(&schema.url("test")).await;
        let mut started = Self {
            llm,
            config,
            flags: database_flags(Some(&schema)),
            http: client(),
            db,
            batch: String::new(),
            data_dir: tempfile::tempdir().unwrap(),
            _config_dir: config_dir,
            schema,
        };
        let server = started.serve(started.data_dir.path(), "0").start();
        started.batch = create(&started.http, &server).await;
        wait_queued(&started.db, &started.batch).await;
        Some((started, server))
    }

    /// A server on the schema, working `concurrency` at a time.
    fn serve<'a>(&'a self, data_dir: &'a Path, concurrency: &'a str) -> Serve<'a> {
        serve(data_dir, &self.config, &self.flags, concurrency)
    }

    /// Waits until `server` has worked the batch off, then checks that every item completed,
    /// each with one model call, and that no queue row is left; answers the batch.
    async fn ran_each_once(&self, server: &ServerProcess) -> Value {
        let (batch, limit) = (self.batch.as_str(), Duration::from_secs(120));
        let done = wait_for(&self.http, server, batch, limit, |b| {
            count(b, "in_progress") == 0
        })
        .await;
        assert_eq!(count(&done, "completed"), ITEMS as u64, "{done}");
        let calls = self.llm.mock.stats().requests;
        assert_eq!(calls, ITEMS as u64, "an item ran twice");
        assert_eq!(queue_state(&self.db, batch).await, (0, None));
        done
    }
}

/// A PostgreSQL server killed after a batch's 202 but before its queuer queued every item
/// (the state is made by [`unqueue_after`] once the server is gone): the next server queues
/// the rest, and every item runs once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_whose_queueing_a_kill_9_cut_short_runs_each_item_once_on_postgres() {
    let Some((t, server)) = QueuedBatch::start().await else {
        return;
    };
    let (http, db, batch) = (&t.http, &t.db, t.batch.as_str());
    server.kill_9();
    let start = unqueue_after(db, batch).await;
    assert_eq!(queue_state(db, batch).await, (KEPT_QUEUED, Some(start)));

    // The next server queues the rest and works them all.
    let server = t.serve(t.data_dir.path(), "16").start();
    let done = t.ran_each_once(&server).await;
    assert_eq!(done["status"], "completed", "{done}");
    let answered = items_of(&results(http, &server, batch, 0).await);
    assert_eq!(answered.len(), ITEMS);
    server.kill_9();
}

/// Waits until `waiters` of the server's connections wait for an advisory lock.
async fn wait_for_lock_waiters(db: &tokio_postgres::Client, schema: &Schema, waiters: i64) {
    let sql = "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid \
         WHERE l.locktype = 'advisory' AND NOT l.granted AND a.application_name = $1";
    let app = schema.app("batch_crash");
    let deadline = Instant::now() + Duration::from_secs(30);
    while db.query_one(sql, &[&app]).await.unwrap().get::<_, i64>(0) < waiters {
        assert!(
            Instant::now() < deadline,
            "no cancel waits for the queueing lock"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// On PostgreSQL, cancels reach a batch's items that its queuer has not queued yet: one item's
/// cancel, then the batch's, each waiting for the batch's queueing lock as for a queuer's
/// chunk (the test holds it, so no queuer moves meanwhile). Every item ends cancelled, nothing
/// of the batch is queued after, and a retry runs every item once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancels_reach_the_items_the_queuer_has_not_queued_on_postgres() {
    let Some((t, server)) = QueuedBatch::start().await else {
        return;
    };
    let (http, db, batch) = (&t.http, &t.db, t.batch.as_str());
    let lock = "SELECT pg_advisory_lock(batch_queueing_lock($1))";
    db.execute(lock, &[&batch]).await.unwrap();
    let start = unqueue_after(db, batch).await;

    // One item not queued yet, then the whole batch.
    let sql = "SELECT id FROM jobs WHERE seq = $1";
    let job: String = db.query_one(sql, &[&(start + 5)]).await.unwrap().get(0);
    let post = |path: String| {
        let request = http.post(server.url(&path)).bearer_auth(KEY).send();
        tokio::spawn(request)
    };
    let one = post(format!("/v1/applications/jobs/{job}/cancel"));
    wait_for_lock_waiters(db, &t.schema, 1).await;
    let all = post(format!("/v1/applications/batches/{batch}/cancel"));
    wait_for_lock_waiters(db, &t.schema, 2).await;
    let unlock = "SELECT pg_advisory_unlock(batch_queueing_lock($1))";
    db.execute(unlock, &[&batch]).await.unwrap();
    let one = one.await.unwrap().unwrap();
    assert_eq!(one.status(), 202, "{}", one.text().await.unwrap());
    let all = all.await.unwrap().unwrap();
    assert_eq!(all.status(), 202, "{}", all.text().await.unwrap());

    let url = server.url(&format!("/v1/applications/jobs/{job}"));
    let cancelled = get_json(http, &url).await;
    assert_eq!(cancelled["status"], "failed", "{cancelled}");
    assert_eq!(cancelled["error"], "cancelled", "{cancelled}");
    let url = server.url(&format!("/v1/applications/batches/{batch}"));
    let ended = get_json(http, &url).await;
    assert_eq!(count(&ended, "cancelled"), ITEMS as u64, "{ended}");
    assert_eq!(count(&ended, "in_progress"), 0, "{ended}");
    assert_eq!(queue_state(db, batch).await, (0, None));

    // A retry queues them all again, and a working node runs each once.
    let url = server.url(&format!("/v1/applications/batches/{batch}/retry"));
    let retried = http.post(url).bearer_auth(KEY).send().await.unwrap();
    assert_eq!(retried.status(), 202);
    let worker_dir = tempfile::tempdir().unwrap();
    let worker = t.serve(worker_dir.path(), "16").start();
    t.ran_each_once(&worker).await;
    worker.kill_9();
    server.kill_9();
}
