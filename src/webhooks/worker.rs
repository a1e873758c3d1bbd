//! The delivery worker: claims due events while it has room for them, attempts each in a task
//! of its own (so one slow receiver does not hold up the others), and records every attempt.
//! It polls the outbox every poll interval (the triggers that write events cannot wake it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::{ROTATION_OVERLAP, TIMEOUT, WebhookSettings, Webhooks, address, signature};
use crate::api::{BatchView, JobView};
use crate::report::Chain;
use crate::store::{
    AttemptRecord, ClaimedEvent, Delivery, EventKind, NextStep, SigningSecrets, StoreError, after,
    now_micros, rfc3339,
};

/// Deliveries in flight on this node at most.
const CONCURRENCY: usize = 32;
/// How long a claimed event is held: its attempt's timeout and a margin to record it. A node
/// that dies mid-attempt delays the event's next attempt by this much.
const LEASE: Duration = Duration::from_secs(40);

impl Webhooks {
    /// Delivers due events until `stop` turns true, then lets the attempts in flight finish
    /// (for up to the shutdown grace; an attempt cut short is retried once its lease lapses).
    pub(crate) async fn run(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let mut attempts = JoinSet::new();
        while !*stop.borrow() {
            while attempts.try_join_next().is_some() {}
            let room = CONCURRENCY - attempts.len();
            if room == 0 {
                tokio::select! {
                    _ = attempts.join_next() => {}
                    _ = stop.changed() => {}
                }
                continue;
            }
            let claimed = match self.store.outbox().claim_events(room, LEASE).await {
                Ok(events) => events,
                Err(e) => {
                    tracing::warn!(error = %Chain(&e), "cannot claim webhook events");
                    Vec::new()
                }
            };
            let full = claimed.len() == room;
            for event in claimed {
                attempts.spawn(self.clone().attempt(event));
            }
            if !full {
                tokio::select! {
                    _ = tokio::time::sleep(self.settings.poll_interval) => {}
                    _ = stop.changed() => {}
                }
            }
        }
        let drained = async { while attempts.join_next().await.is_some() {} };
        if tokio::time::timeout(self.settings.shutdown_grace, drained)
            .await
            .is_err()
        {
            tracing::warn!("webhook deliveries cut short by shutdown; they will be retried");
        }
    }

    /// One attempt: build, sign, send, record.
    async fn attempt(self: Arc<Self>, event: ClaimedEvent) {
        if let Err(e) = self.try_attempt(&event).await {
            // The claim lapses and the event is taken again.
            tracing::warn!(event = %event.id, error = %Chain(&e), "webhook attempt not recorded");
        }
    }

    async fn try_attempt(&self, event: &ClaimedEvent) -> Result<(), StoreError> {
        let body = serde_json::to_vec(&json!({
            "type": event.kind.as_str(),
            "timestamp": rfc3339(event.created_at),
            "data": self.data(event).await?,
        }))
        .expect("a JSON value serialises");
        let secrets = self
            .store
            .outbox()
            .webhook_secret(&event.org, signature::new_secret())
            .await?;
        let at = now_micros();
        let started = Instant::now();
        let (status_code, error) = self.send(event, &secrets, body).await;
        let delivered = status_code.is_some_and(|c| (200..300).contains(&c));
        let next = if delivered {
            NextStep::Delivered
        } else {
            next_try(
                &self.settings,
                event.attempt,
                event.created_at,
                now_micros(),
            )
        };
        let record = AttemptRecord {
            attempt: event.attempt,
            at,
            duration_ms: started.elapsed().as_millis() as u64,
            status_code,
            error,
        };
        tracing::debug!(event = %event.id, attempt = event.attempt, ?record.status_code, ?next, "webhook attempt");
        self.metrics.webhooks.attempted(event.kind, &next);
        let delivery = Delivery {
            seq: event.seq,
            record,
            next,
        };
        self.store.outbox().record_delivery(delivery).await?;
        Ok(())
    }

    /// The event's `data`: the batch or the job as the API shows it now (null if it is gone).
    async fn data(&self, event: &ClaimedEvent) -> Result<Value, StoreError> {
        let value = match (event.kind, event.job_id) {
            (EventKind::BatchCompleted, _) | (_, None) => {
                let batch = self.store.get_batch(&event.org, event.batch_id).await?;
                batch.map(|b| serde_json::to_value(BatchView::from(b)))
            }
            (_, Some(job)) => {
                let job = self.store.get_job(&event.org, job).await?;
                job.map(|j| serde_json::to_value(JobView::from(j)))
            }
        };
        Ok(value.and_then(Result::ok).unwrap_or(Value::Null))
    }

    /// POSTs the signed body: the receiver's status, or why there was none.
    async fn send(
        &self,
        event: &ClaimedEvent,
        secrets: &SigningSecrets,
        body: Vec<u8>,
    ) -> (Option<u16>, Option<String>) {
        let url = match reqwest::Url::parse(&event.url) {
            Ok(url) => url,
            Err(e) => return (None, Some(format!("invalid URL: {e}"))),
        };
        if !self.settings.allow_private
            && let Some(refusal) = address::refused_literal(&url)
        {
            return (None, Some(refusal));
        }
        let now = now_micros();
        let timestamp = now / 1_000_000;
        let signature =
            signature::header(secrets, ROTATION_OVERLAP, now, &event.id, timestamp, &body);
        let sent = self
            .client
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header("webhook-signature", signature)
            .body(body)
            .send()
            .await;
        match sent {
            Ok(response) => (Some(response.status().as_u16()), None),
            Err(e) if e.is_timeout() => (None, Some(format!("timed out after {TIMEOUT:?}"))),
            Err(e) => (None, Some(Chain(&e).to_string())),
        }
    }
}

/// When to try a failed event again, or to give it up: the wait doubles from `backoff` with
/// each attempt (`attempt` is the one that just failed), up to `backoff_max`, while within
/// `retry_for` of the event.
fn next_try(s: &WebhookSettings, attempt: u32, created_at: i64, now: i64) -> NextStep {
    let doublings = attempt.saturating_sub(1).min(31);
    let wait = s.backoff.saturating_mul(1 << doublings).min(s.backoff_max);
    let at = after(now, wait);
    if at > after(created_at, s.retry_for) {
        NextStep::GiveUp
    } else {
        NextStep::RetryAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wait_doubles_from_the_backoff_up_to_its_cap_until_the_retry_window_closes() {
        let s = WebhookSettings {
            allow_private: false,
            backoff: Duration::from_secs(5),
            backoff_max: Duration::from_secs(3600),
            retry_for: Duration::from_secs(24 * 3600),
            poll_interval: Duration::from_secs(1),
            shutdown_grace: Duration::from_secs(1),
        };
        let secs = |n: i64| n * 1_000_000;
        let waits: Vec<NextStep> = (1..=12).map(|a| next_try(&s, a, 0, 0)).collect();
        let expected: Vec<NextStep> = [5, 10, 20, 40, 80, 160, 320, 640, 1280, 2560, 3600, 3600]
            .into_iter()
            .map(|w| NextStep::RetryAt(secs(w)))
            .collect();
        assert_eq!(waits, expected);
        assert_eq!(next_try(&s, 40, 0, 0), NextStep::RetryAt(secs(3600)));
        let near_the_end = secs(24 * 3600 - 10);
        assert_eq!(next_try(&s, 30, 0, near_the_end), NextStep::GiveUp);
        assert_eq!(
            next_try(&s, 1, 0, near_the_end),
            NextStep::RetryAt(near_the_end + secs(5))
        );
    }
}
