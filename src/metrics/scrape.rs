//! The families read at each scrape, from figures others keep: the store's job counters, the
//! outbox's pending counter and the providers' gates. Built afresh each time (a label set that is gone, such as a deleted
//! application's, leaves with it); the counters among them are totals their owners keep
//! since the process started, so they only grow, as Prometheus counters must.

use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use prometheus::{CounterVec, IntCounterVec, IntGauge, IntGaugeVec, Opts};

use super::PREFIX;
use crate::providers::BackendView;
use crate::store::JobCount;

/// The states a provider's circuit can be in, as its gate names them.
const CIRCUIT_STATES: [&str; 3] = ["closed", "open", "half_open"];

/// `scriptorium_jobs`: jobs by organisation, application and status.
pub(super) fn jobs(counts: Vec<JobCount>) -> prometheus::Result<Vec<MetricFamily>> {
    let jobs = IntGaugeVec::new(
        opts(
            "jobs",
            "Jobs by organisation, application and Writer status (in_progress, completed, failed).",
        ),
        &["org", "application", "status"],
    )?;
    for count in counts {
        jobs.with_label_values(&[
            count.org.as_str(),
            count.application_id.as_str(),
            count.status.as_str(),
        ])
        .set(count.n);
    }
    Ok(jobs.collect())
}

/// `scriptorium_webhook_events_pending`: events waiting for delivery, in the whole database.
pub(super) fn pending_events(n: i64) -> prometheus::Result<Vec<MetricFamily>> {
    let pending = IntGauge::with_opts(opts(
        "webhook_events_pending",
        "Webhook events waiting for delivery (their next attempt is due or scheduled).",
    ))?;
    pending.set(n);
    Ok(pending.collect())
}

/// The `scriptorium_provider_*` families, one series per provider (and class, direction or
/// state).
pub(super) fn providers(views: &[BackendView]) -> prometheus::Result<Vec<MetricFamily>> {
    let gauge = |name, help| IntGaugeVec::new(opts(name, help), &["provider"]);
    let counter = |name, help| IntCounterVec::new(opts(name, help), &["provider"]);
    let in_flight = gauge("provider_in_flight", "Calls in flight now.")?;
    let waiting = gauge("provider_waiting", "Calls waiting for a slot on this node.")?;
    let limit = gauge(
        "provider_concurrency_limit",
        "The concurrency limit now (with \"auto\", where it has moved).",
    )?;
    let paused = gauge(
        "provider_paused",
        "1 while a 429 or 503 pauses the provider.",
    )?;
    let circuit = IntGaugeVec::new(
        opts("provider_circuit", "1 for the state the circuit is in."),
        &["provider", "state"],
    )?;
    let calls = counter("provider_calls_total", "Calls made.")?;
    let errors = IntCounterVec::new(
        opts("provider_errors_total", "Failed calls by class."),
        &["provider", "class"],
    )?;
    let tokens = IntCounterVec::new(
        opts(
            "provider_tokens_total",
            "Tokens the backend reported: in (prompt) and out (completion).",
        ),
        &["provider", "direction"],
    )?;
    let backpressure = counter(
        "provider_backpressure_events_total",
        "429, 503 and 529 answers.",
    )?;
    let paused_seconds = CounterVec::new(
        opts(
            "provider_paused_seconds_total",
            "Time the provider was paused by backpressure.",
        ),
        &["provider"],
    )?;
    for view in views {
        let name = view.name.as_str();
        let gate = &view.gate;
        in_flight
            .with_label_values(&[name])
            .set(gauge_value(gate.in_flight));
        waiting
            .with_label_values(&[name])
            .set(gauge_value(gate.waiting));
        limit
            .with_label_values(&[name])
            .set(gauge_value(gate.max_concurrency));
        paused
            .with_label_values(&[name])
            .set(i64::from(gate.paused_for_ms.is_some()));
        for state in CIRCUIT_STATES {
            circuit
                .with_label_values(&[name, state])
                .set(i64::from(gate.circuit == state));
        }
        calls.with_label_values(&[name]).inc_by(gate.calls);
        for (class, n) in &gate.errors {
            errors.with_label_values(&[name, class]).inc_by(*n);
        }
        tokens
            .with_label_values(&[name, "in"])
            .inc_by(gate.prompt_tokens);
        tokens
            .with_label_values(&[name, "out"])
            .inc_by(gate.completion_tokens);
        backpressure
            .with_label_values(&[name])
            .inc_by(gate.backpressure.events);
        paused_seconds
            .with_label_values(&[name])
            .inc_by(gate.backpressure.paused_ms as f64 / 1000.0);
    }
    let collectors: [&dyn Collector; 10] = [
        &in_flight,
        &waiting,
        &limit,
        &paused,
        &circuit,
        &calls,
        &errors,
        &tokens,
        &backpressure,
        &paused_seconds,
    ];
    Ok(collectors.iter().flat_map(|c| c.collect()).collect())
}

fn opts(name: &str, help: &str) -> Opts {
    Opts::new(name, help).namespace(PREFIX)
}

fn gauge_value(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
