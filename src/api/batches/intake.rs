//! The intake of a batch's items, whatever they come from: each item is checked as a single
//! job is ([`refused_or_checked`]), given its `custom_id`, and queued for the store in chunks
//! of [`CHUNK`], so the items never all sit in memory at once.
//!
//! It runs on the blocking thread that parses the source, and talks to the store through a
//! bounded channel: the store writes one chunk while the next is parsed (two cores at work),
//! and a parser that outruns the store waits. The store's transaction starts with the first
//! chunk and ends with [`Intake::finish`]; anything else (an error, a strict refusal, a
//! dropped request) drops the channel, and the store rolls everything back.
//!
//! An intake made by [`Intake::checking`] runs the very same checks and stores nothing: it
//! only counts and keeps what it refused, for a look at a file before its batch is created
//! ([`super::check`]).

use std::collections::HashSet;
use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::super::applications::refused_or_checked;
use super::super::{ApiError, AppState, ErrorCode};
use super::check::ColumnCheck;
use crate::apps::Application;
use crate::store::{
    BatchEnd, BatchId, BatchItem, BatchPart, BatchRecord, JobId, NewBatch, OrgId, Priority,
    StoreError, Subscription,
};

/// Items sent to the store at once: one statement's worth.
const CHUNK: usize = 4_096;
/// Chunks waiting for the store at most (bounds the memory a fast parser takes).
const CHUNKS_AHEAD: usize = 2;
/// Characters a `custom_id` may have at most.
const MAX_CUSTOM_ID: usize = 255;
/// Refused items a batch names in its `errors` (and a strict refusal in its answer) at most.
pub(super) const MAX_ERRORS: usize = 100;

/// Where an item came from, for the messages that name it.
#[derive(Clone, Copy, Debug)]
pub(super) enum Place {
    /// An item of the inline `items` array.
    Item,
    /// A line of a JSON Lines file (1-based).
    Line(u64),
    /// A row of a CSV file (1-based, the header being row 1, as a spreadsheet counts).
    Row(u64),
}

impl Place {
    /// `message` about the item at `position` from this place.
    pub(super) fn says(self, position: u64, message: &str) -> String {
        match self {
            Self::Item => format!("item {position}: {message}"),
            Self::Line(n) => format!("line {n}: {message}"),
            Self::Row(n) => format!("row {n}: {message}"),
        }
    }
}

/// What a source read for one item.
pub(super) enum Raw {
    /// The item's `inputs` as sent (absent: `None`), to check as a job's.
    Inputs(Option<Value>),
    /// The item could not be read (a line that is not JSON, a row of the wrong width):
    /// it fails alone with `message`, keeping `sent` as its inputs.
    Unreadable {
        /// Why, in words for the client (the place is added).
        message: String,
        /// The input (a CSV column) it is about, when it is about one.
        input: Option<String>,
        /// What was sent, as JSON text.
        sent: String,
    },
}

/// An item refused by the checks, as a batch's `errors` and a file's check name it.
#[derive(Debug)]
pub(super) struct Refused {
    /// The item's custom id.
    pub(super) custom_id: String,
    /// Where it was.
    pub(super) place: Place,
    /// The input it is about, when it is about one.
    pub(super) input: Option<String>,
    /// Why, without its place.
    pub(super) message: String,
    /// Why, with its place when it came from a file (the batch's `errors` say this).
    pub(super) description: String,
}

/// The store's side of an intake once its first chunk is ready.
struct Storing {
    parts: mpsc::Sender<BatchPart>,
    stored: JoinHandle<Result<BatchRecord, StoreError>>,
}

/// A batch being taken in: see the module's doc.
pub(super) struct Intake {
    state: AppState,
    org: OrgId,
    app: Arc<Application>,
    id: BatchId,
    /// The priority the items are stored with.
    priority: Priority,
    handle: Handle,
    /// The custom ids so far, as 128-bit hashes (a million take 32 MB, not 80).
    seen: HashSet<u128>,
    hashers: (RandomState, RandomState),
    chunk: Vec<BatchItem>,
    storing: Option<Storing>,
    /// Items taken so far.
    count: u64,
    /// The first refused items.
    refusals: Vec<Refused>,
    /// Items refused.
    refused: u64,
    /// Whether the items are only checked, never stored.
    checking: bool,
    /// The columns of a CSV file, as a check shows them.
    columns: Vec<ColumnCheck>,
}

impl Intake {
    /// An intake of `app`'s items for `org`, stored with `priority` unless told otherwise
    /// before the first item. Call from the runtime (it keeps its handle).
    pub(super) fn new(
        state: AppState,
        org: OrgId,
        app: Arc<Application>,
        priority: Priority,
    ) -> Self {
        Self {
            state,
            org,
            app,
            id: BatchId::generate(),
            priority,
            handle: Handle::current(),
            seen: HashSet::new(),
            hashers: (RandomState::new(), RandomState::new()),
            chunk: Vec::with_capacity(CHUNK),
            storing: None,
            count: 0,
            refusals: Vec::new(),
            refused: 0,
            checking: false,
            columns: Vec::new(),
        }
    }

    /// An intake of `app`'s items for `org` that checks them as [`Intake::new`]'s does and
    /// stores nothing; [`Intake::tally`] says what it found.
    pub(super) fn checking(state: AppState, org: OrgId, app: Arc<Application>) -> Self {
        let priority = app.priority;
        Self {
            checking: true,
            ..Self::new(state, org, app, priority)
        }
    }

    /// Whether the items are only checked, never stored.
    pub(super) fn is_checking(&self) -> bool {
        self.checking
    }

    /// Notes the columns of a CSV file's header, for a check to show.
    pub(super) fn set_columns(&mut self, columns: Vec<ColumnCheck>) {
        self.columns = columns;
    }

    /// What a checking intake found: items taken, items refused, the first refused ones,
    /// and the columns of a CSV file.
    pub(super) fn tally(self) -> (u64, u64, Vec<Refused>, Vec<ColumnCheck>) {
        (self.count, self.refused, self.refusals, self.columns)
    }

    /// The application the items are for.
    pub(super) fn app(&self) -> &Application {
        &self.app
    }

    /// The priority of the items. Items already sent to the store are moved to it at the
    /// end (a body may name it after its items).
    pub(super) fn set_priority(&mut self, priority: Priority) {
        self.priority = priority;
    }

    /// Checks one item and queues it for the store. A malformed `custom_id` (empty, too long,
    /// taken) refuses the whole batch; anything wrong with the inputs fails the item alone.
    /// Runs on a blocking thread.
    pub(super) fn push(
        &mut self,
        custom_id: Option<String>,
        raw: Raw,
        place: Place,
    ) -> Result<(), ApiError> {
        self.count += 1;
        let position = self.count;
        let custom_id = self.custom_id(custom_id, place, position)?;
        let outcome = match raw {
            Raw::Inputs(inputs) => {
                let checked =
                    refused_or_checked(&self.state, &self.org, &self.app, inputs.as_ref());
                match self.handle.block_on(checked)? {
                    Ok(inputs) => Ok(json_text(&inputs)),
                    Err(e) => Err((e.message, e.input, json_text(&inputs))),
                }
            }
            Raw::Unreadable {
                message,
                input,
                sent,
            } => Err((message, input, sent)),
        };
        let (inputs, refused) = match outcome {
            Ok(inputs) => (inputs, None),
            Err((message, input, sent)) => {
                let description = match place {
                    Place::Item => message.clone(),
                    _ => place.says(position, &message),
                };
                self.refused += 1;
                if self.refusals.len() < MAX_ERRORS {
                    self.refusals.push(Refused {
                        custom_id: custom_id.clone(),
                        place,
                        input,
                        message,
                        description: description.clone(),
                    });
                }
                (sent, Some(description))
            }
        };
        if self.checking {
            return Ok(());
        }
        self.chunk.push(BatchItem {
            id: JobId::generate(),
            custom_id,
            inputs,
            refused,
        });
        if self.chunk.len() == CHUNK {
            self.flush()?;
        }
        Ok(())
    }

    /// The item's custom id, its position when it has none; a 400 naming it when it is
    /// empty, too long, holds a NUL or was taken by an earlier item.
    fn custom_id(
        &mut self,
        given: Option<String>,
        place: Place,
        position: u64,
    ) -> Result<String, ApiError> {
        let bad = |message: String| {
            ApiError::new(ErrorCode::InvalidCustomId, place.says(position, &message))
        };
        let id = match given {
            Some(id) if id.is_empty() || id.chars().count() > MAX_CUSTOM_ID => {
                return Err(bad(format!(
                    "custom_id must be 1 to {MAX_CUSTOM_ID} characters"
                )));
            }
            Some(id) if id.contains('\0') => {
                return Err(bad("custom_id holds a NUL character".to_owned()));
            }
            Some(id) => id,
            None => position.to_string(),
        };
        let hash = |h: &RandomState| h.hash_one(&id) as u128;
        let key = hash(&self.hashers.0) << 64 | hash(&self.hashers.1);
        if !self.seen.insert(key) {
            return Err(bad(format!(
                "custom_id '{id}' is already used in this batch"
            )));
        }
        Ok(id)
    }

    /// Sends the items queued so far to the store. Runs on a blocking thread.
    fn flush(&mut self) -> Result<(), ApiError> {
        let chunk = std::mem::replace(&mut self.chunk, Vec::with_capacity(CHUNK));
        if self
            .storing()
            .parts
            .blocking_send(BatchPart::Items(chunk))
            .is_ok()
        {
            return Ok(());
        }
        let storing = self.storing.take();
        Err(self.handle.block_on(failure(storing)))
    }

    /// The store's side, its transaction started with the priority known now.
    fn storing(&mut self) -> &mut Storing {
        self.storing.get_or_insert_with(|| {
            let (parts, receiver) = mpsc::channel(CHUNKS_AHEAD);
            let batch = NewBatch {
                id: self.id,
                org: self.org.clone(),
                application_id: self.app.id.clone(),
                application_version: self.app.version,
                retry: self.app.retry,
                priority: self.priority,
            };
            let store = self.state.store.clone();
            let stored = self
                .handle
                .spawn(async move { store.insert_batch(batch, receiver).await });
            Storing { parts, stored }
        })
    }

    /// Ends the intake: with no items, a 400 ([`no_items`]); under `strict` with refused
    /// items, a 400 listing them, and nothing written; else the batch row (with `metadata`), and the
    /// batch as stored once every item is durable. Runs on the runtime.
    pub(super) async fn finish(
        mut self,
        strict: bool,
        metadata: String,
        webhook: Option<Subscription>,
    ) -> Result<BatchRecord, ApiError> {
        if self.count == 0 {
            return Err(no_items());
        }
        if strict && self.refused > 0 {
            let descriptions = self
                .refusals
                .drain(..)
                .map(|r| format!("item '{}': {}", r.custom_id, r.description))
                .collect();
            return Err(ApiError::many(ErrorCode::InvalidInputs, descriptions));
        }
        let end = BatchEnd {
            metadata,
            errors: self.errors(),
            priority: self.priority,
            webhook,
        };
        let chunk = std::mem::take(&mut self.chunk);
        let storing = self.storing();
        let sent = async {
            if !chunk.is_empty() {
                storing.parts.send(BatchPart::Items(chunk)).await?;
            }
            storing.parts.send(BatchPart::End(end)).await
        };
        if sent.await.is_err() {
            return Err(failure(self.storing.take()).await);
        }
        let storing = self.storing.take().expect("started above");
        drop(storing.parts);
        match storing.stored.await {
            Ok(stored) => Ok(stored?),
            Err(e) => Err(panicked(e)),
        }
    }

    /// The first refused items as the batch's `errors`: `[{custom_id, description}]`.
    fn errors(&self) -> String {
        let errors: Vec<Value> = self
            .refusals
            .iter()
            .map(|r| json!({"custom_id": r.custom_id, "description": r.description}))
            .collect();
        json_text(&errors)
    }
}

/// The answer to a batch without items.
pub(super) fn no_items() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidBatch,
        "send items (a list of {custom_id?, inputs}) or a file_id; this batch has no items",
    )
}

/// Why the store stopped taking parts early: its own answer.
async fn failure(storing: Option<Storing>) -> ApiError {
    let Some(Storing { parts, stored }) = storing else {
        return ApiError::new(ErrorCode::Internal, "internal server error");
    };
    drop(parts);
    match stored.await {
        Ok(Err(e)) => e.into(),
        Ok(Ok(_)) => ApiError::new(ErrorCode::Internal, "internal server error"),
        Err(e) => panicked(e),
    }
}

/// The answer when a task of the intake panicked (logged here).
pub(super) fn panicked(e: tokio::task::JoinError) -> ApiError {
    tracing::error!(error = %e, "a task of a batch create failed");
    ApiError::new(ErrorCode::Internal, "internal server error")
}

/// `value` as JSON text (which cannot fail for these values: string keys only).
fn json_text(value: &impl serde::Serialize) -> String {
    serde_json::to_string(value).unwrap_or_else(|_| "null".to_owned())
}
