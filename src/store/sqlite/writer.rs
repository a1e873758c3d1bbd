//! The single writer: one thread owns the only write connection and commits every queued
//! request in one transaction (group commit).
//!
//! Why: SQLite allows one writer at a time, and a commit costs an fsync. Funnelling writes
//! through one thread removes `SQLITE_BUSY` inside the process, and draining the queue into
//! one transaction lets 64 concurrent submits share one commit. If any request in a group
//! fails, the group is rolled back and each request is replayed in a transaction of its own,
//! so one bad request cannot undo the others (requests are `Fn`, so replaying is safe).
//! Every reply is sent only after the commit succeeded: a caller that hears "ok" knows its
//! write is durable. A request that cannot be replayed (a batch whose items stream in, see
//! [`Writer::write_alone`]) runs in a transaction of its own, after the group before it. WAL checkpoints run on a thread of their own ([`checkpoint`]),
//! off the writer's path.

use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Notify, oneshot};

use super::map_err;
use crate::report::{Cause, Chain};
use crate::store::StoreError;

/// Requests drained into one transaction at most.
const MAX_BATCH: usize = 4096;
/// How often the checkpointer copies the WAL back into the database file.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(250);

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
    /// Whether it runs in a transaction of its own (it cannot be replayed).
    fn alone(&self) -> bool {
        false
    }
    /// Sends the reply once the transaction's fate is known.
    fn settle(self: Box<Self>, committed: Result<(), StoreError>);
}

struct Op<T, F> {
    work: F,
    result: Option<rusqlite::Result<T>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    wakes: bool,
}

impl<T, F> WriteOp for Op<T, F>
where
    T: Send,
    F: Fn(&Connection) -> rusqlite::Result<T> + Send,
{
    fn apply(&mut self, conn: &Connection) -> bool {
        let result = (self.work)(conn);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn wakes(&self) -> bool {
        self.wakes
    }

    fn settle(self: Box<Self>, committed: Result<(), StoreError>) {
        // The caller may have gone away (e.g. a dropped HTTP request); the write stands.
        let result = self.result.map(|r| r.map_err(map_err));
        let _ = self.reply.send(answer(result, committed));
    }
}

/// A request run once, alone: its work may consume what it reads (a channel of items).
struct OnceOp<T, F> {
    work: Option<F>,
    result: Option<Result<T, StoreError>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
    wakes: bool,
}

impl<T, F> WriteOp for OnceOp<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
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

    fn alone(&self) -> bool {
        true
    }

    fn settle(self: Box<Self>, committed: Result<(), StoreError>) {
        let _ = self.reply.send(answer(self.result, committed));
    }
}

/// The reply to a request: its result once its transaction committed.
fn answer<T>(
    result: Option<Result<T, StoreError>>,
    committed: Result<(), StoreError>,
) -> Result<T, StoreError> {
    match (result, committed) {
        (Some(Err(e)), _) => Err(e),
        (_, Err(e)) => Err(e),
        (Some(Ok(value)), Ok(())) => Ok(value),
        (None, Ok(())) => Err(StoreError::Database(Cause::message("request was not run"))),
    }
}

impl Writer {
    /// Starts the writer thread on `conn` and the checkpointer on `checkpoints`. Both stop
    /// when every handle is dropped.
    pub(super) fn spawn(
        conn: Connection,
        checkpoints: Connection,
        wakeups: Arc<Notify>,
    ) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::channel::<Box<dyn WriteOp>>();
        let (stop_checkpoints, stopped) = mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("sqlite-checkpoint".into())
            .spawn(move || checkpoint(&checkpoints, &stopped))?;
        std::thread::Builder::new()
            .name("sqlite-writer".into())
            .spawn(move || {
                run(conn, rx, wakeups);
                drop(stop_checkpoints);
            })?;
        Ok(Self { tx })
    }

    /// Runs `work` in the next group transaction and answers its result once committed.
    /// `wakes` says whether success may make jobs runnable (so the engine is signalled).
    pub(super) async fn write<T, F>(&self, wakes: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = Op {
            work,
            result: None,
            reply,
            wakes,
        };
        self.send(Box::new(op), answer).await
    }

    /// Runs `work` once, in a transaction of its own after the requests queued before it,
    /// and answers its result once committed (nothing of it is written if it fails). Other
    /// writes wait meanwhile: `work` must not wait on anything slower than the database.
    pub(super) async fn write_alone<T, F>(&self, wakes: bool, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let op = OnceOp {
            work: Some(work),
            result: None,
            reply,
            wakes,
        };
        self.send(Box::new(op), answer).await
    }

    async fn send<T>(
        &self,
        op: Box<dyn WriteOp>,
        answer: oneshot::Receiver<Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let stopped = || StoreError::Unavailable(Cause::message("the database writer has stopped"));
        self.tx.send(op).map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn run(conn: Connection, rx: mpsc::Receiver<Box<dyn WriteOp>>, wakeups: Arc<Notify>) {
    let mut next = None;
    while let Some(first) = next.take().or_else(|| rx.recv().ok()) {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH && !batch[0].alone() {
            match rx.try_recv() {
                Ok(op) if op.alone() => {
                    next = Some(op);
                    break;
                }
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        match commit(&conn, &mut batch) {
            Ok(()) => settle(batch, Ok(()), &wakeups),
            Err(e) if batch.len() == 1 => settle(batch, Err(e), &wakeups),
            Err(_) => {
                for op in batch {
                    let mut alone = vec![op];
                    let committed = commit(&conn, &mut alone);
                    settle(alone, committed, &wakeups);
                }
            }
        }
    }
}

fn settle(batch: Vec<Box<dyn WriteOp>>, committed: Result<(), StoreError>, wakeups: &Notify) {
    if let Err(e) = &committed {
        tracing::warn!(error = %Chain(e), requests = batch.len(), "write failed");
    }
    let wake = committed.is_ok() && batch.iter().any(|op| op.wakes());
    for op in batch {
        op.settle(committed.clone());
    }
    if wake {
        wakeups.notify_one();
    }
}

/// Runs every request in one transaction; any failure rolls back all of them.
fn commit(conn: &Connection, batch: &mut [Box<dyn WriteOp>]) -> Result<(), StoreError> {
    conn.execute_batch("BEGIN IMMEDIATE").map_err(map_err)?;
    let mut ok = true;
    for op in batch.iter_mut() {
        ok &= op.apply(conn);
    }
    let result = if ok {
        conn.execute_batch("COMMIT").map_err(map_err)
    } else {
        Err(StoreError::Database(Cause::message(
            "a request in the group failed",
        )))
    };
    if result.is_err() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    result
}

/// Checkpoints the WAL passively (never blocking the writer or readers) every
/// [`CHECKPOINT_EVERY`] until `stop` is dropped. The writer's automatic checkpoints are
/// turned off, so this work leaves the commit path.
fn checkpoint(conn: &Connection, stop: &mpsc::Receiver<()>) {
    while let Err(mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(CHECKPOINT_EVERY) {
        if let Err(e) = conn.execute_batch("PRAGMA wal_checkpoint(PASSIVE)") {
            tracing::warn!(error = %e, "WAL checkpoint failed");
        }
    }
}
