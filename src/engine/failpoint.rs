//! Named points on a job's way through the engine where a test can make the process die as
//! `kill -9` would: `SCRIPTORIUM_CRASH_AT=<point>` (or `<point>@<n>`, the n-th time it is
//! reached) aborts the process there, without flushing, releasing or answering anything. The
//! crash tests kill a server at each point and prove that nothing accepted is lost and that
//! every job ends with its own single result. Read once at start; unset, a point costs one
//! load of a static.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// Where a job can be when its process dies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailurePoint {
    /// A claim has been committed: jobs are `running` under a lease this node holds.
    ClaimTaken,
    /// An attempt is about to call its provider.
    BeforeModelCall,
    /// The provider has answered; the outcome is not yet queued for writing.
    AfterModelCall,
    /// A group of outcomes is about to be written.
    BeforeOutcomeWritten,
}

impl FailurePoint {
    const ALL: [Self; 4] = [
        Self::ClaimTaken,
        Self::BeforeModelCall,
        Self::AfterModelCall,
        Self::BeforeOutcomeWritten,
    ];

    /// The name `SCRIPTORIUM_CRASH_AT` takes.
    fn name(self) -> &'static str {
        match self {
            Self::ClaimTaken => "claim-taken",
            Self::BeforeModelCall => "before-model-call",
            Self::AfterModelCall => "after-model-call",
            Self::BeforeOutcomeWritten => "before-outcome-written",
        }
    }
}

/// The point to crash at, and after how many passes.
struct Crash {
    point: FailurePoint,
    at: u64,
    passes: AtomicU64,
}

static CRASH: LazyLock<Option<Crash>> = LazyLock::new(|| {
    let value = std::env::var("SCRIPTORIUM_CRASH_AT").ok()?;
    let (name, at) = value.split_once('@').unwrap_or((&value, "1"));
    let point = FailurePoint::ALL.into_iter().find(|p| p.name() == name);
    let (Some(point), Ok(at)) = (point, at.parse()) else {
        tracing::error!(%value, "SCRIPTORIUM_CRASH_AT names no failure point; ignored");
        return None;
    };
    tracing::warn!(
        point = point.name(),
        at,
        "this process will crash on purpose"
    );
    Some(Crash {
        point,
        at,
        passes: AtomicU64::new(0),
    })
});

/// Marks that a job passed `point`; aborts the process if this is where it should die.
pub(crate) fn reached(point: FailurePoint) {
    let Some(crash) = &*CRASH else { return };
    if crash.point == point && crash.passes.fetch_add(1, Ordering::Relaxed) + 1 == crash.at {
        eprintln!(
            "crashing on purpose at {} (SCRIPTORIUM_CRASH_AT)",
            point.name()
        );
        std::process::abort();
    }
}
