//! A streamed answer: server-sent events of `chat.completion.chunk`s, one token each, the
//! first after `--ttft` and carrying the role, the next ones `--per-token` apart; then a chunk
//! with the finish reason, a usage chunk when `stream_options.include_usage` asks, and
//! `data: [DONE]`.
//!
//! The stream owns the request's [`InFlight`] guard: a client that leaves mid-stream is
//! counted out when hyper drops the body.

use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde_json::json;

use super::MockLlm;
use super::admission::InFlight;
use super::clock::sleep;
use super::text::pieces;
use super::wire::Answer;
use super::wire::Envelope;

/// What is left to send.
struct Feed {
    slot: InFlight,
    answer: Answer,
    /// Each event's data and the wait before it.
    events: std::vec::IntoIter<(Duration, String)>,
}

/// The streamed answer.
pub fn respond(
    mock: &MockLlm,
    slot: InFlight,
    envelope: Envelope,
    answer: Answer,
    include_usage: bool,
) -> Response {
    let events = events(mock, &envelope, &answer, include_usage).into_iter();
    let feed = Feed {
        slot,
        answer,
        events,
    };
    let body = stream::unfold(feed, |mut feed| async move {
        let (wait, data) = feed.events.next()?;
        sleep(wait).await;
        if feed.events.as_slice().is_empty() {
            // Counted before `[DONE]` leaves, so a client that reads it sees the count.
            feed.slot.complete(&feed.answer);
        }
        Some((Ok::<_, Infallible>(Event::default().data(data)), feed))
    });
    Sse::new(body).into_response()
}

/// Every event of the stream, in order, with the wait before each.
fn events(
    mock: &MockLlm,
    envelope: &Envelope,
    answer: &Answer,
    include_usage: bool,
) -> Vec<(Duration, String)> {
    let mut events = Vec::new();
    for (i, piece) in pieces(&answer.text).into_iter().enumerate() {
        let (wait, delta) = if i == 0 {
            (
                mock.config.ttft,
                json!({"role": "assistant", "content": piece}),
            )
        } else {
            (mock.config.per_token, json!({"content": piece}))
        };
        events.push((wait, envelope.chunk(delta, None).to_string()));
    }
    let last = envelope.chunk(json!({}), Some(answer.finish_reason));
    events.push((Duration::ZERO, last.to_string()));
    if include_usage {
        events.push((Duration::ZERO, envelope.usage_chunk(answer).to_string()));
    }
    events.push((Duration::ZERO, "[DONE]".to_owned()));
    events
}
