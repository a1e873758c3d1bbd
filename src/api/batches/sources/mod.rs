//! Where a batch's items come from, each read as a stream on a blocking thread and handed
//! item by item to the [`Intake`](super::intake::Intake):
//! - [`body`]: the request's JSON body, its `items` array parsed one item at a time;
//! - [`jsonl`]: an uploaded JSON Lines file, one item object per line;
//! - [`table`]: an uploaded CSV file, the header naming the inputs.
//!
//! [`ChunkReader`] turns the async stream of bytes (the request body, a blob) into the
//! `std::io::Read` the parsers take, so neither source is ever read whole into memory.

pub(super) mod body;
pub(super) mod jsonl;
pub(super) mod table;

use std::io::Read;

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use tokio::runtime::Handle;

use super::super::ApiError;

/// A chunk of a source, or why it broke off (already in Writer's shape).
pub(super) type Chunk = Result<Bytes, ApiError>;

/// A blocking reader over an async stream of chunks: each `read` that finds its chunk used
/// up waits for the next one on the runtime. Why a read failed is kept for the caller
/// ([`ChunkReader::failure`]), since the parsers only see an I/O error.
pub(super) struct ChunkReader {
    chunks: BoxStream<'static, Chunk>,
    current: Bytes,
    /// Whether the stream has ended (it must not be polled again).
    ended: bool,
    handle: Handle,
    failure: Option<ApiError>,
}

impl ChunkReader {
    /// A reader of `chunks`; call from the runtime (it keeps its handle).
    pub(super) fn new(chunks: BoxStream<'static, Chunk>) -> Self {
        Self {
            chunks,
            current: Bytes::new(),
            ended: false,
            handle: Handle::current(),
            failure: None,
        }
    }

    /// Why the stream broke off, if it did: this error, rather than the parser's.
    pub(super) fn failure(&mut self) -> Option<ApiError> {
        self.failure.take()
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            if self.ended {
                return Ok(0);
            }
            match self.handle.block_on(self.chunks.next()) {
                Some(Ok(chunk)) => self.current = chunk,
                Some(Err(e)) => {
                    self.failure = Some(e);
                    return Err(std::io::Error::other("the source broke off"));
                }
                None => self.ended = true,
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current.advance(n);
        Ok(n)
    }
}

/// Whether any string in `value` holds a NUL character, which no field accepts.
pub(super) fn holds_nul(value: &serde_json::Value) -> bool {
    use serde_json::Value;
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Array(items) => items.iter().any(holds_nul),
        Value::Object(map) => map
            .iter()
            .any(|(key, value)| key.contains('\0') || holds_nul(value)),
        _ => false,
    }
}
