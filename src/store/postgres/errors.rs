//! Sorting PostgreSQL's failures into the store's three kinds.
//!
//! `Unavailable` means "worth trying again soon": the connection broke or could not be made,
//! the server is shutting down or out of resources, an operator cancelled the query, or the
//! transaction lost a serialization race or a deadlock. The API answers 503 and the engine
//! retries. A unique violation is a `Conflict`; anything else is a `Database` error.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::store::StoreError;

/// SQLSTATE classes that say the server or the connection, not the statement, is at fault:
/// 08 connection exception, 40 transaction rollback (serialization failure, deadlock),
/// 53 insufficient resources (too many connections, disk full), 57 operator intervention
/// (admin shutdown, crash shutdown, cannot connect now, query cancelled), 58 system error.
const RETRYABLE_CLASSES: &[&str] = &["08", "40", "53", "57", "58"];

/// Maps a client error.
pub(super) fn map_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(code) = e.code() {
        let message = e
            .as_db_error()
            .map_or_else(|| e.to_string(), |db| db.to_string());
        return if *code == SqlState::UNIQUE_VIOLATION {
            StoreError::Conflict(message)
        } else if retryable(code) {
            StoreError::Unavailable(message)
        } else {
            StoreError::Database(message)
        };
    }
    let broken = e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout");
    let message = match e.source() {
        Some(source) => format!("{e}: {source}"),
        None => e.to_string(),
    };
    if broken {
        StoreError::Unavailable(message)
    } else {
        StoreError::Database(message)
    }
}

/// Maps a failure to get a pooled connection: a timeout, a failed connect, or a closed pool
/// are all "unavailable".
pub(super) fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => match map_err(e) {
            StoreError::Database(message) => StoreError::Unavailable(message),
            other => other,
        },
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}

fn retryable(code: &SqlState) -> bool {
    code == &SqlState::READ_ONLY_SQL_TRANSACTION
        || RETRYABLE_CLASSES
            .iter()
            .any(|class| code.code().starts_with(class))
}
