//! The gate's state machine, driven with explicit times.

use super::state::{FIRST_COOLDOWN, OPEN_AFTER};
use super::*;

fn limits() -> Limits {
    Limits {
        max_concurrency: 2,
        requests_per_minute: 0,
        tokens_per_minute: 0,
    }
}

fn unavailable() -> ProviderError {
    ProviderError::Retryable {
        class: ErrorClass::Server,
        message: "503".into(),
        retry_after: None,
    }
}

#[test]
fn five_failures_open_the_circuit_and_a_probe_closes_it() {
    let gate = Gate::new("test".into(), limits(), None, None);
    let now = Instant::now();
    let mut state = gate.state();
    for _ in 0..OPEN_AFTER {
        assert!(state.try_admit(1.0, now).is_zero());
        state.record("test", Err(&unavailable()), 1.0, now);
    }
    assert!(!state.try_admit(1.0, now).is_zero(), "open: calls wait");
    let later = now + FIRST_COOLDOWN;
    assert!(state.try_admit(1.0, later).is_zero(), "the probe goes");
    assert!(
        !state.try_admit(1.0, later).is_zero(),
        "one probe at a time"
    );
    state.record("test", Ok(None), 1.0, later);
    assert!(state.try_admit(1.0, later).is_zero(), "closed again");
}

#[test]
fn a_429_pauses_every_call_until_its_retry_after() {
    let gate = Gate::new("test".into(), limits(), None, None);
    let now = Instant::now();
    let mut state = gate.state();
    let limited = ProviderError::Retryable {
        class: ErrorClass::RateLimited,
        message: "429".into(),
        retry_after: Some(Duration::from_secs(3)),
    };
    state.record("test", Err(&limited), 1.0, now);
    assert_eq!(state.try_admit(1.0, now), Duration::from_secs(3));
    assert!(state.try_admit(1.0, now + Duration::from_secs(3)).is_zero());
}

#[test]
fn backpressure_counts_each_answer_and_the_time_paused_once() {
    let gate = Gate::new("test".into(), limits(), None, None);
    let now = Instant::now();
    let mut state = gate.state();
    let busy = |secs| ProviderError::Retryable {
        class: ErrorClass::Overloaded,
        message: "503".into(),
        retry_after: Some(Duration::from_secs(secs)),
    };
    state.record("test", Err(&busy(3)), 1.0, now);
    // Inside the first pause: only what lies beyond it counts.
    state.record("test", Err(&busy(3)), 1.0, now + Duration::from_secs(1));
    state.record("test", Err(&busy(1)), 1.0, now + Duration::from_secs(2));
    // After it: a new pause counts whole.
    state.record("test", Err(&busy(2)), 1.0, now + Duration::from_secs(10));
    state.record(
        "test",
        Err(&unavailable()),
        1.0,
        now + Duration::from_secs(20),
    );
    assert_eq!(state.backpressure_events, 4, "a 500 is not backpressure");
    assert_eq!(state.paused, Duration::from_secs(6));
}

#[test]
fn the_request_budget_spaces_calls_out() {
    let gate = Gate::new(
        "test".into(),
        Limits {
            requests_per_minute: 60,
            ..limits()
        },
        None,
        None,
    );
    let now = Instant::now();
    let mut state = gate.state();
    for _ in 0..60 {
        assert!(state.try_admit(0.0, now).is_zero());
    }
    let wait = state.try_admit(0.0, now);
    assert!(
        wait > Duration::from_millis(900) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
}
