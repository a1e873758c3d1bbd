//! Webhook delivery attempts by event type and outcome, resolved once per pair (three types,
//! three outcomes), so the delivery worker's observation is one atomic addition.

use prometheus::{IntCounter, IntCounterVec, Opts, Registry};

use super::{PREFIX, register};
use crate::store::{EventKind, NextStep};

/// What an attempt led to.
const OUTCOMES: [&str; 3] = ["delivered", "failed", "given_up"];

/// `scriptorium_webhook_deliveries_total{type, outcome}`.
pub(crate) struct WebhookFigures {
    /// By [`EventKind::ALL`]'s order, then [`OUTCOMES`]'.
    attempts: [[IntCounter; 3]; 3],
}

impl WebhookFigures {
    /// Registers the family in `registry`.
    pub(super) fn new(registry: &Registry) -> Self {
        let family = register(
            registry,
            IntCounterVec::new(
                Opts::new(
                    "webhook_deliveries_total",
                    "Webhook delivery attempts by event type and outcome: delivered (a 2xx), \
                     failed (to be tried again), given_up (the last one).",
                )
                .namespace(PREFIX),
                &["type", "outcome"],
            ),
        );
        let attempts = EventKind::ALL.map(|kind| {
            OUTCOMES.map(|outcome| family.with_label_values(&[kind.as_str(), outcome]))
        });
        Self { attempts }
    }

    /// Notes an attempt at an event of `kind` that led to `next`.
    pub(crate) fn attempted(&self, kind: EventKind, next: &NextStep) {
        let outcome = match next {
            NextStep::Delivered => 0,
            NextStep::RetryAt(_) => 1,
            NextStep::GiveUp => 2,
        };
        let kind = EventKind::ALL.iter().position(|k| *k == kind).unwrap_or(0);
        self.attempts[kind][outcome].inc();
    }
}
