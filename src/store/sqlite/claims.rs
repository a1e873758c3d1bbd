//! Claims: the due jobs taken in turns across organisations, each organisation's in rank
//! order, in the writer's transaction.

use rusqlite::{Connection, params};

use crate::store::{ClaimedJob, Lease, OrgId, Priority, RetryPolicy};

/// The jobs waiting to be claimed: the condition of the partial index `jobs_due`, in the same
/// form (SQLite uses a partial index only for a query that says its condition as it is written;
/// OR rather than IN: see 0005_due_index_without_in.sql).
pub(super) const WAITING: &str =
    "(state = 'queued' OR state = 'retrying' OR state = 'waiting_for_provider')";

/// Claims up to `limit` due jobs, taking turns across organisations (starting after `turn`,
/// the organisation served last, which it then updates), each organisation's in rank order.
pub(super) fn claim(
    conn: &Connection,
    limit: usize,
    lease: i64,
    now: i64,
    turn: &mut Option<OrgId>,
) -> rusqlite::Result<Vec<ClaimedJob>> {
    let lanes = conn
        .prepare_cached(&lanes_query())?
        .query_map([], |r| r.get::<_, OrgId>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    // How many each organisation gets: alone, all it has; else dealt one per round.
    let shares = if lanes.len() == 1 {
        *turn = lanes.first().cloned();
        lanes.into_iter().map(|org| (org, limit)).collect()
    } else {
        let mut due = conn.prepare_cached(&due_query())?;
        let mut counts = Vec::with_capacity(lanes.len());
        for org in lanes {
            let n: i64 = due.query_row(params![org, now, limit as i64], |r| r.get(0))?;
            counts.push((org, n as usize));
        }
        take_turns(counts, limit, turn)
    };
    let mut take = conn.prepare_cached(&take_query())?;
    let mut claimed = Vec::new();
    for (org, share) in shares {
        if share == 0 {
            continue;
        }
        let rows = take.query_map(params![now + lease, now, share as i64, org], |r| {
            Ok(ClaimedJob {
                lease: Lease {
                    seq: r.get(0)?,
                    attempt: r.get(1)?,
                },
                id: r.get(2)?,
                application_id: r.get(3)?,
                application_version: r.get(12)?,
                inputs: r.get(4)?,
                retry: RetryPolicy {
                    max_attempts: r.get(5)?,
                    backoff_initial_ms: r.get::<_, i64>(6)? as u64,
                    backoff_max_ms: r.get::<_, i64>(7)? as u64,
                    max_wait_ms: r.get::<_, i64>(8)? as u64,
                },
                org: r.get(9)?,
                priority: Priority::from_code(r.get(10)?),
                waiting_since: r.get(11)?,
                claimed_at: now,
            })
        })?;
        for job in rows {
            claimed.push(job?);
        }
    }
    Ok(claimed)
}

/// The organisations with waiting jobs, each found by one seek in `jobs_due` past the last.
fn lanes_query() -> String {
    format!(
        "WITH RECURSIVE lanes(org) AS ( \
           SELECT (SELECT org FROM jobs \
                   WHERE {WAITING} \
                   ORDER BY org LIMIT 1) \
           UNION ALL \
           SELECT (SELECT org FROM jobs \
                   WHERE {WAITING} \
                   AND org > lanes.org ORDER BY org LIMIT 1) \
           FROM lanes WHERE lanes.org IS NOT NULL) \
         SELECT org FROM lanes WHERE org IS NOT NULL"
    )
}

/// How many jobs organisation ?1 has due at ?2, counting at most ?3.
fn due_query() -> String {
    format!(
        "SELECT count(*) FROM (SELECT 1 FROM jobs WHERE org = ?1 \
         AND {WAITING} AND run_at <= ?2 \
         LIMIT ?3)"
    )
}

/// Claims the first ?3 due jobs of organisation ?4 in rank order, leased until ?1, at ?2.
fn take_query() -> String {
    format!(
        "UPDATE jobs SET state = 'running', attempt = attempt + 1, lease_until = ?1, \
         started_at = ?2, updated_at = ?2 \
         WHERE seq IN (SELECT seq FROM jobs WHERE org = ?4 \
                       AND {WAITING} \
                       AND run_at <= ?2 ORDER BY rank LIMIT ?3) \
         RETURNING seq, attempt, id, application_id, inputs, max_attempts, \
                   backoff_initial_ms, backoff_max_ms, max_wait_ms, org, priority, waiting_since, \
                   application_version"
    )
}

/// How many of `limit` jobs each organisation gets, given how many it has due (`counts`, in
/// organisation order): one per organisation per round, starting with the first after
/// `turn`; `turn` becomes the last organisation dealt to.
fn take_turns(
    counts: Vec<(OrgId, usize)>,
    limit: usize,
    turn: &mut Option<OrgId>,
) -> Vec<(OrgId, usize)> {
    let start = turn.as_ref().map_or(0, |last| {
        counts.iter().position(|(org, _)| org > last).unwrap_or(0)
    });
    let mut shares: Vec<(OrgId, usize, usize)> =
        counts.into_iter().map(|(org, due)| (org, due, 0)).collect();
    shares.rotate_left(start);
    let (mut dealt, mut last) = (0, None);
    while dealt < limit {
        let before = dealt;
        for (i, (_, due, share)) in shares.iter_mut().enumerate() {
            if dealt == limit {
                break;
            }
            if *share < *due {
                *share += 1;
                dealt += 1;
                last = Some(i);
            }
        }
        if dealt == before {
            break;
        }
    }
    if let Some(i) = last {
        *turn = Some(shares[i].0.clone());
    }
    shares
        .into_iter()
        .map(|(org, _, share)| (org, share))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each claim query finds its jobs through `jobs_due`, never by reading the table: a
    /// query that says the waiting states otherwise than the index does would scan it.
    #[test]
    fn claims_search_the_due_index() {
        let conn = Connection::open_in_memory().unwrap();
        super::super::migrate(&conn).unwrap();
        for query in [lanes_query(), due_query(), take_query()] {
            let plan = super::super::query_plan(&conn, &query);
            let jobs: Vec<&String> = plan.iter().filter(|step| step.contains(" jobs ")).collect();
            assert!(!jobs.is_empty(), "{query}: {plan:?}");
            for step in jobs {
                assert!(
                    step.contains("INDEX jobs_due") || step.contains("INTEGER PRIMARY KEY"),
                    "{query} reads jobs without jobs_due: {plan:?}"
                );
            }
        }
    }
}
