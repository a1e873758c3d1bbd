//! Injected faults: at most one per request, drawn from the run's seeded generator, so the
//! same seed and the same order of requests give the same faults.
//!
//! A dropped connection is a body that fails before its first byte: hyper then aborts the
//! connection without writing the head it had buffered, and the client sees the connection
//! close with no answer.

use std::io;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use tokio::time::Instant;

use super::MockLlm;
use super::args::MockLlmArgs;
use super::error::MockError;

/// How long a hung request is held before its connection is dropped.
pub const HANG: Duration = Duration::from_secs(600);

/// One way to fail a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    /// 500 with an OpenAI error.
    Internal,
    /// 503 with an OpenAI error.
    Unavailable,
    /// 429 with `Retry-After`.
    RateLimited,
    /// No answer until the client leaves (or [`HANG`] passes, then a dropped connection).
    Hang,
    /// 200 with a body that is not JSON.
    Malformed,
    /// The connection closes without an answer.
    Drop,
}

impl Fault {
    /// Draws a fault, or none, with `roll` in `0..1`: the rates are stacked in flag order, so
    /// rates that add up past 1 favour the earlier flags.
    pub fn draw(roll: f64, args: &MockLlmArgs) -> Option<Self> {
        let rates = [
            (Self::Internal, args.fail_500),
            (Self::Unavailable, args.fail_503),
            (Self::RateLimited, args.fail_429),
            (Self::Hang, args.fail_hang),
            (Self::Malformed, args.fail_malformed),
            (Self::Drop, args.fail_drop),
        ];
        let mut edge = 0.0;
        rates.into_iter().find_map(|(fault, rate)| {
            edge += rate.get();
            (roll < edge).then_some(fault)
        })
    }

    /// The name `faults` counts it under.
    pub fn key(self) -> &'static str {
        match self {
            Self::Internal => "500",
            Self::Unavailable => "503",
            Self::RateLimited => "429",
            Self::Hang => "hang",
            Self::Malformed => "malformed",
            Self::Drop => "drop",
        }
    }

    /// Counts the fault and answers with it. A hang waits here, so the caller's in-flight
    /// guard stays alive until the client leaves.
    pub async fn respond(self, mock: &MockLlm, streams: bool) -> Response {
        tracing::debug!(fault = self.key(), "injecting a fault");
        if self == Self::RateLimited {
            mock.ledger().rate_limited(self.key(), Instant::now());
        } else {
            mock.ledger().fault(self.key());
        }
        match self {
            Self::Internal => MockError::Internal.into_response(),
            Self::Unavailable => MockError::Unavailable.into_response(),
            Self::RateLimited => MockError::RateLimited {
                retry_after: mock.config.retry_after,
                reason: "injected",
            }
            .into_response(),
            Self::Hang => {
                tokio::select! {
                    () = tokio::time::sleep(HANG) => {}
                    () = mock.stopped() => {}
                }
                dropped()
            }
            Self::Malformed => malformed(streams),
            Self::Drop => dropped(),
        }
    }
}

/// A response whose body fails at once, which makes hyper abort the connection.
fn dropped() -> Response {
    let failure = io::Error::new(io::ErrorKind::ConnectionAborted, "dropped on purpose");
    Body::from_stream(stream::iter([Err::<Bytes, _>(failure)])).into_response()
}

/// A 200 that looks like the start of an answer and stops mid-object.
fn malformed(streams: bool) -> Response {
    let (content_type, body) = if streams {
        (
            "text/event-stream",
            "data: {\"id\":\"chatcmpl-malformed\",\"choices\":[{\"delta\":\n\ndata: [DONE]\n\n",
        )
    } else {
        (
            "application/json",
            "{\"id\":\"chatcmpl-malformed\",\"object\":\"chat.completion\",\"choices\":[{",
        )
    };
    ([(CONTENT_TYPE, content_type)], body).into_response()
}

#[cfg(test)]
mod tests {
    use super::super::args::Rate;
    use super::*;

    #[test]
    fn rates_stack_in_flag_order_and_a_zero_rate_never_fires() {
        let args = MockLlmArgs {
            fail_500: Rate::new(0.25).unwrap(),
            fail_drop: Rate::new(0.5).unwrap(),
            ..MockLlmArgs::default()
        };
        assert_eq!(Fault::draw(0.1, &args), Some(Fault::Internal));
        assert_eq!(Fault::draw(0.3, &args), Some(Fault::Drop));
        assert_eq!(Fault::draw(0.8, &args), None);
        assert_eq!(Fault::draw(0.0, &MockLlmArgs::default()), None);
    }

    #[test]
    fn a_rate_of_one_always_fires() {
        let args = MockLlmArgs {
            fail_hang: Rate::ALWAYS,
            ..MockLlmArgs::default()
        };
        assert_eq!(Fault::draw(0.999_999, &args), Some(Fault::Hang));
    }
}
