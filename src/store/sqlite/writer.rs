//! The single writer: one thread owns the only write connection and commits every queued
//! request in one transaction (group commit).
//!
//! Why: SQLite allows one writer at a time, and a commit costs an fsync. Funnelling writes
//! through one thread removes `SQLITE_BUSY` inside the process, and draining the queue into
//! one transaction lets 64 concurrent submits share one commit. Each request runs in its own
//! savepoint, so one failing request cannot undo the others; every reply is sent only after
//! the commit succeeded, so a caller that hears "ok" knows its write is durable.

use std::sync::Arc;
use std::sync::mpsc;

use rusqlite::Connection;
use tokio::sync::{Notify, oneshot};

use super::map_err;
use crate::store::StoreError;

/// Requests drained into one transaction at most.
const MAX_BATCH: usize = 4096;

/// The handle requests are sent through.
#[derive(Clone)]
pub(super) struct Writer {
    tx: mpsc::Sender<Box<dyn WriteOp>>,
}

/// One request as the writer thread sees it.
trait WriteOp: Send {
    /// Runs the request inside the open transaction; `false` if it failed.
    fn apply(&mut self, conn: &Connection) -> bool;
    /// Whether a successful commit of this request may have made jobs runnable.
    fn wakes(&self) -> bool;
    /// Sends the reply once the transaction's fate is known.
    fn settle(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Op<T, F> {
    work: Option<F>,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    wakes: bool,
}

impl<T, F> WriteOp for Op<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        let result = work(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn wakes(&self) -> bool {
        self.wakes
    }

    fn settle(self: Box<Self>, committed: Result<(), StoreError>) {
        let answer = match (self.result, committed) {
            (Some(Err(e)), _) => Err(map_err(e)),
            (_, Err(e)) => Err(e),
            (Some(Ok(value)), Ok(())) => Ok(value),
            (None, Ok(())) => Err(StoreError::Database("request was not run".into())),
        };
        // The caller may have gone away (e.g. a dropped HTTP request); the write stands.
        let _ = self.reply.send(answer);
    }
}

impl Writer {
    /// Starts the writer thread on `conn`. It stops when every handle is dropped.
    pub(super) fn spawn(conn: Connection, wakeups: Arc<Notify>) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn WriteOp>>();
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || run(conn, rx, wakeups))?;
        Ok(Self { tx })
    }

    /// Runs `work` in the next group transaction and answers its result once committed.
    /// `wakes` says whether success may make jobs runnable (so the engine is signalled).
    pub(super) async fn write<T, F>(&self, wakes: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            work: Some(work),
            result: None,
            reply,
            wakes,
        };
        self.tx
            .send(Box::new(op))
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?;
        answer
            .await
            .map_err(|_| StoreError::Unavailable("the database writer has stopped".into()))?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Box<dyn WriteOp>>, wakeups: Arc<Notify>) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let committed = commit(&conn, &mut batch);
        let wake = committed.is_ok() && batch.iter().any(|op| op.wakes());
        if let Err(e) = &committed {
            tracing::error!(error = %e, requests = batch.len(), "group commit failed");
        }
        for op in batch {
            op.settle(committed.clone());
        }
        if wake {
            wakeups.notify_one();
        }
    }
}

fn commit(conn: &Connection, batch: &mut [Box<dyn WriteOp>]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
    let applied = batch.iter_mut().try_for_each(|op| apply_in_savepoint(conn, op.as_mut()));
    let result = applied.and_then(|()| conn.execute_batch("COMMIT"));
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result.map_err(map_err)
}

fn apply_in_savepoint(conn: &Connection, op: &mut dyn WriteOp) -> rusqlite::Result<()> {
    conn.prepare_cached("SAVEPOINT op")?.execute([])?;
    if op.apply(conn) {
        conn.prepare_cached("RELEASE op")?.execute([])?;
    } else {
        conn.prepare_cached("ROLLBACK TO op")?.execute([])?;
        conn.prepare_cached("RELEASE op")?.execute([])?;
    }
    Ok(())
}
