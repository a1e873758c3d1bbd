//! Sorting PostgreSQL's failures into the store's three kinds.
//!
//! `Unavailable` means "worth trying again soon": the connection broke or could not be made,
//! the server is shutting down or out of resources, an operator cancelled the query, or the
//! transaction lost a serialization race or a deadlock. The API answers 503 and the engine
//! retries. A unique violation is a `Conflict`; anything else is a `Database` error.

use std::error::Error as _;

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

use crate::report::Cause;
use crate::store::StoreError;

/// SQLSTATE classes that say the server or the connection, not the statement, is at fault:
/// 08 connection exception, 40 transaction rollback (serialization failure, deadlock),
/// 53 insufficient resources (too many connections, disk full), 57 operator intervention
/// (admin shutdown, crash shutdown, cannot connect now, query cancelled), 58 system error.
const RETRYABLE_CLASSES: &[&str] = &["08", "40", "53", "57", "58"];

/// Maps a client error. An error the server sent is kept as the server's own error (the
/// client's wrapper only says "db error"); any other keeps the client's error and its causes.
pub(super) fn map_err(e: tokio_postgres::Error) -> StoreError {
    if let Some(db) = e.as_db_error() {
        let code = db.code();
        let cause = Cause::new(db.clone());
        return if *code == SqlState::UNIQUE_VIOLATION {
            StoreError::Conflict(cause)
        } else if retryable(code) {
            StoreError::Unavailable(cause)
        } else {
            StoreError::Database(cause)
        };
    }
    let broken = e.is_closed()
        || e.source().is_some_and(|s| s.is::<std::io::Error>())
        || e.to_string().starts_with("timeout");
    if broken {
        StoreError::Unavailable(Cause::new(e))
    } else {
        StoreError::Database(Cause::new(e))
    }
}

/// Maps a failure to get a pooled connection: a timeout, a failed connect, or a closed pool
/// are all "unavailable".
pub(super) fn pool_err(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => match map_err(e) {
            StoreError::Database(cause) => StoreError::Unavailable(cause),
            other => other,
        },
        other => StoreError::Unavailable(Cause::context("no database connection", other)),
    }
}

fn retryable(code: &SqlState) -> bool {
    code == &SqlState::READ_ONLY_SQL_TRANSACTION
        || RETRYABLE_CLASSES
            .iter()
            .any(|class| code.code().starts_with(class))
}
