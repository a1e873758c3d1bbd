//! Reading jobs, retrying them and claiming them; inserts live in [`super::inserter`], the
//! writes of running jobs in [`super::leases`]. Same semantics as SQLite's `jobs.rs`, written
//! for many nodes at once: a claim is one `UPDATE job_queue … (SELECT … FOR UPDATE SKIP
//! LOCKED)`, so concurrent claimers take disjoint batches without waiting on each other, and a
//! retry notifies listeners inside its transaction. Reads go through the `job_records` view,
//! which shows the queue's state while a job is queued or running.

use std::sync::Mutex;

use deadpool_postgres::Pool;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;

use super::errors::map_err;
use super::{connection, notify};
use crate::report::Cause;
use crate::store::{
    ClaimedJob, EndedAttempt, Inserted, JobCount, JobId, JobInputs, JobPage, JobQuery, JobRecord,
    JobState, Lease, OrgId, Priority, RetryOutcome, RetryPolicy, StoreError, Usage, WriterStatus,
};

pub(super) const RECORD_COLUMNS: &str = "id, application_id, state, attempt, created_at, updated_at, \
     started_at, completed_at, title, suggestion, error, prompt_tokens, completion_tokens, \
     priority, provider, model, batch_id, custom_id";

/// Statement parameters.
pub(super) type Params<'a> = [&'a (dyn ToSql + Sync)];

/// Runs one statement on a pooled connection.
pub(super) async fn query(
    pool: &Pool,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client.prepare_cached(sql).await.map_err(map_err)?;
    client.query(&stmt, params).await.map_err(map_err)
}

/// Every non-zero counter of `job_counts`, its shards summed.
pub(super) async fn counts(pool: &Pool) -> Result<Vec<JobCount>, StoreError> {
    let rows = query(
        pool,
        "SELECT org, application_id, status, sum(n)::bigint FROM job_counts \
         GROUP BY org, application_id, status HAVING sum(n) <> 0 \
         ORDER BY org, application_id, status",
        &[],
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| JobCount {
            org: r.get(0),
            application_id: r.get(1),
            status: WriterStatus::parse(r.get(2)).unwrap_or(WriterStatus::Failed),
            n: r.get(3),
        })
        .collect())
}

/// Runs one statement in a transaction and notifies listeners before committing when
/// `wakes` says, from its rows, that jobs became runnable.
pub(super) async fn query_then_notify(
    pool: &Pool,
    sql: &str,
    params: &Params<'_>,
    wakes: impl FnOnce(&[Row]) -> bool,
) -> Result<Vec<Row>, StoreError> {
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    // These statements join a table with a batch of `unnest`ed rows. Without statistics on
    // the arrays the planner may pick a nested loop that rescans the batch for every row:
    // quadratic, half a second for 4,096 outcomes. A hash join is linear.
    // The setting and the statement go out together (tokio-postgres pipelines requests in
    // the order they are first polled, and `try_join` polls in argument order): one round
    // trip, not two.
    let stmt = tx.prepare_cached(sql).await.map_err(map_err)?;
    let (_, rows) = futures_util::future::try_join(
        tx.batch_execute("SET LOCAL enable_nestloop = off"),
        tx.query(&stmt, params),
    )
    .await
    .map_err(map_err)?;
    if wakes(&rows) {
        notify(&tx).await?;
    }
    tx.commit().await.map_err(map_err)?;
    Ok(rows)
}

/// Runs one statement with every table read through an index and no JIT compilation, in one
/// round trip.
///
/// A claim must walk `job_queue_due` in rank order and stop after its share. The planner
/// judges that walk against reading all of an organisation's waiting rows and sorting them,
/// by its estimate of how many there are; while the queue grows faster than its statistics
/// (no statistics at all: one row in 200; a burst of 100,000 inserts), it picks the sort, and
/// each claim sorts the whole queue (measured: 56 ms a claim instead of 10). Without bitmap
/// and sequential scans, the walk is its only plan. The same estimates, multiplied over the
/// organisations it guesses, put the claim's cost over `jit_above_cost`: compiling it took
/// ~40 ms, every claim, for a statement that runs in 10.
async fn query_by_index(
    pool: &Pool,
    sql: &str,
    params: &Params<'_>,
) -> Result<Vec<Row>, StoreError> {
    let client = connection(pool).await?;
    let stmt = client.prepare_cached(sql).await.map_err(map_err)?;
    // The three requests are pipelined (see `query_then_notify`). When the statement fails,
    // the COMMIT ends the failed transaction as a rollback.
    let (_, rows, _) = futures_util::future::try_join3(
        client.batch_execute(
            "BEGIN; SET LOCAL enable_bitmapscan = off; SET LOCAL enable_seqscan = off; \
             SET LOCAL jit = off",
        ),
        client.query(&stmt, params),
        client.batch_execute("COMMIT"),
    )
    .await
    .map_err(map_err)?;
    Ok(rows)
}

/// One job of `org`.
pub(super) async fn get(
    pool: &Pool,
    org: &OrgId,
    id: JobId,
) -> Result<Option<JobRecord>, StoreError> {
    let sql = format!("SELECT {RECORD_COLUMNS} FROM job_records WHERE id = $1 AND org = $2");
    let rows = query(pool, &sql, &[&id, &org]).await?;
    rows.first().map(record).transpose()
}

/// What a job of `org` was created with.
pub(super) async fn inputs(
    pool: &Pool,
    org: &OrgId,
    id: JobId,
) -> Result<Option<JobInputs>, StoreError> {
    let sql = "SELECT inputs, application_version FROM jobs WHERE id = $1 AND org = $2";
    let rows = query(pool, sql, &[&id, &org]).await?;
    Ok(rows.first().map(|r| JobInputs {
        inputs: r.get(0),
        application_version: r.get::<_, Option<i32>>(1).map(|v| v as u32),
    }))
}

/// The attempts of a job that ended without its result, oldest first.
pub(super) async fn ended_attempts(
    pool: &Pool,
    org: &OrgId,
    id: JobId,
) -> Result<Vec<EndedAttempt>, StoreError> {
    let sql = "SELECT a.attempt, a.started_at, a.ended_at, a.state, a.error FROM job_attempts a \
         JOIN jobs j ON j.seq = a.job_seq WHERE j.id = $1 AND j.org = $2 \
         ORDER BY a.ended_at, a.attempt";
    let rows = query(pool, sql, &[&id, &org]).await?;
    Ok(rows
        .iter()
        .map(|r| EndedAttempt {
            attempt: r.get::<_, i32>(0) as u32,
            started_at: r.get(1),
            ended_at: r.get(2),
            state: r.get(3),
            error: r.get(4),
        })
        .collect())
}

/// A page of an application's jobs, newest first, and the count from `job_counts`.
pub(super) async fn list(pool: &Pool, q: &JobQuery) -> Result<JobPage, StoreError> {
    let status = q.status.map(|s| s.as_str());
    // Without a status `$3` is still named, so that both statements take the same parameters.
    let filter = if status.is_some() {
        "org = $1 AND application_id = $2"
    } else {
        "org = $1 AND application_id = $2 AND $3::text IS NULL"
    };
    // The offset is skipped in the index alone (an index-only scan); only the page's rows
    // are read from the table.
    let page = format!(
        "SELECT {RECORD_COLUMNS} FROM job_records WHERE seq IN ({}) ORDER BY seq DESC",
        newest_first(filter, status.and(Some("$3")), "$4", "$5")
    );
    let total = "SELECT coalesce(sum(n), 0)::bigint FROM job_counts \
         WHERE org = $1 AND application_id = $2 AND ($3::text IS NULL OR status = $3)";
    let (limit, offset) = (
        q.limit.min(i64::MAX as u64) as i64,
        q.offset.min(i64::MAX as u64) as i64,
    );
    let client = connection(pool).await?;
    let (page, total) = (
        client.prepare_cached(&page).await.map_err(map_err)?,
        client.prepare_cached(total).await.map_err(map_err)?,
    );
    // Both statements go out together on the one connection (tokio-postgres pipelines).
    let page_params: [&(dyn ToSql + Sync); 5] =
        [&q.org, &q.application_id, &status, &limit, &offset];
    let total_params: [&(dyn ToSql + Sync); 3] = [&q.org, &q.application_id, &status];
    let (rows, total) = tokio::try_join!(
        client.query(&page, &page_params),
        client.query_one(&total, &total_params),
    )
    .map_err(map_err)?;
    Ok(JobPage {
        jobs: rows.iter().map(record).collect::<Result<_, _>>()?,
        total: total.get::<_, i64>(0).max(0) as u64,
    })
}

/// The seqs of the `jobs` rows that match `filter` (which begins with `org = $1 AND
/// application_id = $2`) and, when given, have the status `status`, newest first,
/// `LIMIT {limit} OFFSET {offset}` (SQL expressions). Each status's rows are a range of
/// `jobs_by_app_status`, read no further than the page's end nor past the range's last live
/// row: its count in `job_counts`, exact in the statement's snapshot, ends the scan before the
/// range's dead entries (a finished job leaves one in `in_progress` until a vacuum). When
/// `filter` names no status, the three ranges are merged (a Merge Append of three index scans;
/// the planner makes none from the statuses of a `UNION ALL` without the inner limits). Lists
/// need no index on `(org, application_id, seq)`: each finish gave it an entry with the old
/// row version's key, and the page cleaning that caused was a seventh of PostgreSQL's work
/// per job (0015_lists_by_status.sql).
pub(super) fn newest_first(
    filter: &str,
    status: Option<&str>,
    limit: &str,
    offset: &str,
) -> String {
    // The status's rows, and how many of them are live.
    let range = |status: &str| {
        let rows = format!("SELECT seq FROM jobs WHERE {filter} AND status = {status}");
        let live = format!(
            "(SELECT coalesce(sum(n), 0)::bigint FROM job_counts \
              WHERE org = $1 AND application_id = $2 AND status = {status})"
        );
        (rows, live)
    };
    if let Some(status) = status {
        // No more rows than the status has live past the offset (none once it is past).
        let (rows, live) = range(status);
        return format!(
            "{rows} ORDER BY seq DESC \
             LIMIT least({limit}::bigint, greatest({live} - {offset}::bigint, 0)) OFFSET {offset}"
        );
    }
    // The page's end saturates rather than overflows (an offset may be any `bigint`).
    const MAX: i64 = i64::MAX;
    let ranges: Vec<String> = [
        WriterStatus::InProgress,
        WriterStatus::Completed,
        WriterStatus::Failed,
    ]
    .iter()
    .map(|status| {
        let (rows, live) = range(&format!("'{}'", status.as_str()));
        format!(
            "({rows} ORDER BY seq DESC \
             LIMIT least(least({offset}::bigint, {MAX} - {limit}::bigint) + {limit}::bigint, \
               {live}))"
        )
    })
    .collect();
    format!(
        "SELECT seq FROM ({}) s ORDER BY seq DESC LIMIT {limit} OFFSET {offset}",
        ranges.join(" UNION ALL ")
    )
}

/// Queues a failed job again with attempt 0; otherwise says why not.
pub(super) async fn retry(
    pool: &Pool,
    org: &OrgId,
    id: JobId,
    now: i64,
) -> Result<RetryOutcome, StoreError> {
    // A failed job has no queue row; it gets one back, fresh, as on insert.
    let requeue = "WITH r AS (UPDATE jobs SET state = 'queued', attempt = 0, run_at = $3, \
           error = NULL, title = NULL, suggestion = NULL, \
           completed_at = NULL, cancelled_at = NULL, updated_at = $3 \
         WHERE id = $1 AND org = $2 AND state = 'failed' \
           AND (attempt > 0 OR cancelled_at IS NOT NULL) \
           RETURNING seq, started_at, created_at, priority), \
         q AS (INSERT INTO job_queue (seq, state, attempt, run_at, started_at, updated_at, \
             org, priority) \
           SELECT seq, 'queued', 0, $3, started_at, $3, $2, priority FROM r) \
         SELECT created_at FROM r";
    let rows = query_then_notify(pool, requeue, &[&id, &org, &now], |r| !r.is_empty()).await?;
    if let Some(row) = rows.first() {
        return Ok(RetryOutcome::Requeued(Inserted {
            id,
            created_at: row.get(0),
            state: JobState::Queued,
        }));
    }
    let current = "SELECT state FROM job_records WHERE id = $1 AND org = $2";
    match query(pool, current, &[&id, &org]).await?.first() {
        Some(row) => match parse_state(row.get(0))? {
            // Failed with no attempt: refused at create.
            JobState::Failed => Ok(RetryOutcome::Refused),
            other => Ok(RetryOutcome::NotFailed(other)),
        },
        None => Ok(RetryOutcome::NotFound),
    }
}

/// The order of an organisation's waiting jobs: the due time, a day earlier for high
/// priority and an hour later for low. The same text as the `job_queue_due` index's
/// expression (0006_scheduler.sql), or the planner cannot use it.
const RANK: &str =
    "(run_at + CASE priority WHEN 0 THEN -86400000000 WHEN 2 THEN 3600000000 ELSE 0 END)";

/// Claims up to `limit` due jobs with a lease until `now + lease`, taking turns across
/// organisations (starting after `turn`, the organisation served last, which it then
/// updates), each organisation's in rank order.
pub(super) async fn claim(
    pool: &Pool,
    limit: usize,
    lease: i64,
    now: i64,
    turn: &Mutex<Option<OrgId>>,
) -> Result<Vec<ClaimedJob>, StoreError> {
    // `lanes` are the organisations with jobs in progress, read from the `job_counts`
    // counters (a few rows; walking `job_queue_due` for them instead reads past every entry
    // claims left dead since the last vacuum, a second time after `d`); `d` takes each
    // one's first due jobs (locked, skipping those other nodes are claiming), numbered in
    // rank order as they come (`OVER ()`: `due` is sorted, and nothing between it and the
    // numbering reorders rows; `OVER (ORDER BY …)` would sort them again); `pick` deals them
    // out one per organisation per round (`last_dealt` then finds whose turn was last). With
    // one organisation there is nothing to deal: the one-time filters skip the sort, which
    // with the window's took a fifth of a claim of 1,024 jobs.
    // A `cancelling` row is in `job_queue_due` (its predicate names 'running' only) but is
    // not waiting: taken again, its new attempt would run a cancelled job to its end.
    // Only the narrow `job_queue` rows are written; the wide `jobs` rows are only read, for
    // the inputs. `= ANY(ARRAY(…))` makes each claimed row a primary-key probe; as a join,
    // the planner may hash the whole table.
    let sql = format!(
        "WITH lanes AS (SELECT org FROM job_counts WHERE status = 'in_progress' \
           GROUP BY org HAVING sum(n) > 0), \
         d AS (SELECT d.seq, l.org, d.round FROM lanes l CROSS JOIN LATERAL ( \
           SELECT seq, row_number() OVER () AS round FROM ( \
             SELECT seq FROM job_queue \
             WHERE org = l.org AND state <> 'running' AND state <> 'cancelling' \
               AND run_at <= $2 \
             ORDER BY {RANK} LIMIT $3 FOR UPDATE SKIP LOCKED) due) d), \
         pick AS ((SELECT seq FROM d WHERE (SELECT count(*) FROM lanes) > 1 \
             ORDER BY round, (org > $4) DESC, org LIMIT $3) \
           UNION ALL SELECT seq FROM d WHERE (SELECT count(*) FROM lanes) <= 1), \
         q AS (UPDATE job_queue q SET state = 'running', attempt = q.attempt + 1, \
             lease_until = $1, started_at = $2, updated_at = $2 \
           WHERE q.seq = ANY(ARRAY(SELECT seq FROM pick)) \
           RETURNING q.seq, q.attempt, q.org, q.priority, q.waiting_since) \
         SELECT q.seq, q.attempt, j.id, j.application_id, j.inputs, j.max_attempts, \
           j.backoff_initial_ms, j.backoff_max_ms, j.max_wait_ms, q.org, q.priority, \
           q.waiting_since, j.application_version \
         FROM q JOIN jobs j ON j.seq = q.seq"
    );
    let limit = limit.min(i64::MAX as usize) as i64;
    let after = lock(turn)
        .as_ref()
        .map_or(String::new(), |org| org.as_str().to_owned());
    let rows = query_by_index(pool, &sql, &[&(now + lease), &now, &limit, &after]).await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for r in &rows {
        let org: OrgId = r.try_get(9).map_err(map_err)?;
        claimed.push(ClaimedJob {
            lease: Lease {
                seq: r.get(0),
                attempt: r.get::<_, i32>(1) as u32,
            },
            id: r.try_get(2).map_err(map_err)?,
            application_id: r.try_get(3).map_err(map_err)?,
            application_version: r.get::<_, Option<i32>>(12).map(|v| v as u32),
            inputs: r.get(4),
            retry: RetryPolicy {
                max_attempts: r.get::<_, i32>(5) as u32,
                backoff_initial_ms: r.get::<_, i64>(6) as u64,
                backoff_max_ms: r.get::<_, i64>(7) as u64,
                max_wait_ms: r.get::<_, i64>(8) as u64,
            },
            org,
            priority: Priority::from_code(r.get::<_, i16>(10).into()),
            waiting_since: r.get(11),
            claimed_at: now,
        });
    }
    if let Some(org) = last_dealt(&claimed, &after) {
        *lock(turn) = Some(org);
    }
    Ok(claimed)
}

/// The organisation `pick` dealt to last: each organisation got one job per round it took
/// part in, so the last round is the largest count, and its last organisation the last of
/// those in the order of the rounds (after `after` first, then the rest).
fn last_dealt(claimed: &[ClaimedJob], after: &str) -> Option<OrgId> {
    let mut rounds: std::collections::HashMap<&OrgId, usize> = std::collections::HashMap::new();
    for job in claimed {
        *rounds.entry(&job.org).or_default() += 1;
    }
    rounds
        .into_iter()
        .max_by_key(|(org, n)| (*n, org.as_str() <= after, org.as_str()))
        .map(|(org, _)| org.clone())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

pub(super) fn record(r: &Row) -> Result<JobRecord, StoreError> {
    let tokens = |i: usize| {
        r.get::<_, Option<i64>>(i)
            .map(|n| n.clamp(0, i64::from(u32::MAX)) as u32)
    };
    Ok(JobRecord {
        id: r.try_get(0).map_err(map_err)?,
        application_id: r.get(1),
        state: parse_state(r.get(2))?,
        attempt: r.get::<_, i32>(3).max(0) as u32,
        created_at: r.get(4),
        updated_at: r.get(5),
        started_at: r.get(6),
        completed_at: r.get(7),
        title: r.get(8),
        suggestion: r.get(9),
        error: r.get(10),
        usage: tokens(11).map(|prompt_tokens| Usage {
            prompt_tokens,
            completion_tokens: tokens(12).unwrap_or(0),
        }),
        priority: Priority::from_code(r.get::<_, i16>(13).into()),
        provider: r.get(14),
        model: r.get(15),
        batch_id: r.try_get(16).map_err(map_err)?,
        custom_id: r.get(17),
    })
}

/// Parses a stored state name.
pub(super) fn parse_state(s: &str) -> Result<JobState, StoreError> {
    JobState::parse(s)
        .ok_or_else(|| StoreError::Database(Cause::message(format!("unknown job state {s:?}"))))
}
