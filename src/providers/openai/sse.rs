//! Reading an OpenAI-style server-sent event stream of `chat.completion.chunk`s: the
//! client hands it a response, and it imports nothing of the client back.

use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::{self, BoxStream};
use reqwest::Response;
use serde_json::Value;

use super::errors::{malformed, transport};
use crate::providers::{ErrorClass, ProviderError};

/// The content pieces of a streamed answer. Ends at `[DONE]` or the end of the body; a
/// silence longer than `idle` between chunks, a broken connection or an `error` object in
/// the stream ends it with an error.
pub(super) fn pieces(
    response: Response,
    idle: Duration,
) -> BoxStream<'static, Result<String, ProviderError>> {
    let state = Reader {
        bytes: response.bytes_stream().boxed(),
        buffer: Vec::new(),
        done: false,
    };
    stream::unfold(state, move |mut reader| async move {
        loop {
            if reader.done {
                return None;
            }
            if let Some(line) = reader.next_line() {
                match event(&line) {
                    Event::Piece(text) => return Some((Ok(text), reader)),
                    Event::Done => return None,
                    Event::Skip => continue,
                    Event::Failed(e) => {
                        reader.done = true;
                        return Some((Err(e), reader));
                    }
                }
            }
            match tokio::time::timeout(idle, reader.bytes.next()).await {
                Ok(Some(Ok(chunk))) => reader.buffer.extend_from_slice(&chunk),
                Ok(None) => return None,
                Ok(Some(Err(e))) => {
                    reader.done = true;
                    return Some((Err(transport(e)), reader));
                }
                Err(_) => {
                    reader.done = true;
                    let e = ProviderError::Retryable {
                        class: ErrorClass::Timeout,
                        message: format!("the model server's stream went silent for {idle:?}"),
                        retry_after: None,
                    };
                    return Some((Err(e), reader));
                }
            }
        }
    })
    .boxed()
}

struct Reader {
    bytes: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
    done: bool,
}

impl Reader {
    fn next_line(&mut self) -> Option<String> {
        let end = self.buffer.iter().position(|b| *b == b'\n')?;
        let line: Vec<u8> = self.buffer.drain(..=end).collect();
        Some(String::from_utf8_lossy(&line).trim_end().to_owned())
    }
}

enum Event {
    Piece(String),
    Done,
    Skip,
    Failed(ProviderError),
}

fn event(line: &str) -> Event {
    let Some(data) = line.strip_prefix("data:").map(str::trim) else {
        return Event::Skip;
    };
    if data == "[DONE]" {
        return Event::Done;
    }
    let Ok(chunk) = serde_json::from_str::<Value>(data) else {
        return Event::Failed(malformed("a stream chunk is not JSON"));
    };
    if let Some(message) = chunk["error"]["message"]
        .as_str()
        .or(chunk["error"].as_str())
    {
        return Event::Failed(ProviderError::Retryable {
            class: ErrorClass::Server,
            message: format!("the model server failed mid-stream: {message}"),
            retry_after: None,
        });
    }
    match chunk["choices"][0]["delta"]["content"].as_str() {
        Some(text) if !text.is_empty() => Event::Piece(text.to_owned()),
        _ => Event::Skip,
    }
}
