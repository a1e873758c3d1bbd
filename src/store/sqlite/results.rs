//! A batch's results: its finished items in the order they finished, a page after a cursor,
//! read through `jobs_finished`. The single writer numbers them as it commits them, so a
//! page never shows an item while one numbered before it is still to come.

use rusqlite::{Connection, Row, params};

use super::jobs::{self, state_column};
use crate::store::{BatchResult, ResultQuery};

/// The page's query, without its order.
macro_rules! select {
    () => {
        concat!(
            "SELECT finished_seq, position, custom_id, id, ",
            state_column!(),
            " AS ended, title, suggestion, error, prompt_tokens, completion_tokens, inputs \
             FROM jobs WHERE batch_id = ?1 AND org = ?2 AND finished_seq IS NOT NULL \
               AND finished_seq > ?3 AND (?4 IS NULL OR ended = ?4) "
        )
    };
}

pub(super) fn page(conn: &Connection, q: &ResultQuery) -> rusqlite::Result<Vec<BatchResult>> {
    let sql = match q.newest_first {
        false => concat!(select!(), "ORDER BY finished_seq LIMIT ?5"),
        true => concat!(select!(), "ORDER BY finished_seq DESC LIMIT ?5"),
    };
    conn.prepare_cached(sql)?
        .query_map(
            params![
                q.batch_id,
                q.org,
                q.after,
                q.state.map(|s| s.as_str()),
                q.limit.min(i64::MAX as u64) as i64
            ],
            result,
        )?
        .collect()
}

fn result(r: &Row<'_>) -> rusqlite::Result<BatchResult> {
    Ok(BatchResult {
        cursor: r.get(0)?,
        position: r.get::<_, Option<i64>>(1)?.unwrap_or(0).max(0) as u64,
        custom_id: r.get::<_, Option<String>>(2)?.unwrap_or_default(),
        job_id: r.get(3)?,
        state: jobs::state(r, 4)?,
        title: r.get(5)?,
        suggestion: r.get(6)?,
        error: r.get(7)?,
        usage: jobs::usage(r, 8)?,
        inputs: r.get(10)?,
    })
}
