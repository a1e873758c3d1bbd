//! Grouped writes of outcomes that one bad row cannot fail.
//!
//! Outcomes are written many to a statement. A row the database refuses (PostgreSQL's text
//! cannot hold NUL; a value too long for a column; a broken constraint) fails its whole
//! statement, and with it every other job finishing at that moment. So a group that fails
//! with a [`StoreError::Database`] error is split in halves and each half written again, down
//! to the one outcome at fault, which is then written as a failure of its job saying why
//! its result could not be stored. The other rows are written as they were. Unavailability
//! is not split: it fails the call, which the engine retries whole (fenced writes make the
//! replay of any half already written change nothing).

use std::future::Future;
use std::sync::Arc;

use super::{Outcome, OutcomeKind, StoreError};
use crate::report::Chain;

/// The error a job keeps when its outcome could not be stored, before the database's reason.
pub const UNSTORABLE: &str = "the result of this attempt could not be stored";

/// Writes `outcomes` with `write` (one group per call), splitting a group that fails with a
/// per-row error as the module docs say. Answers how many outcomes `write` applied.
pub async fn isolating<W, F>(outcomes: Vec<Outcome>, mut write: W) -> Result<usize, StoreError>
where
    W: FnMut(Arc<[Outcome]>) -> F,
    F: Future<Output = Result<usize, StoreError>>,
{
    let mut groups: Vec<Arc<[Outcome]>> = vec![outcomes.into()];
    let mut applied = 0;
    while let Some(group) = groups.pop() {
        match write(group.clone()).await {
            Ok(n) => applied += n,
            Err(StoreError::Database(cause)) if group.len() > 1 => {
                tracing::warn!(cause = %Chain(&cause), outcomes = group.len(), "an outcome group failed; splitting it");
                let (first, second) = group.split_at(group.len() / 2);
                groups.push(second.into());
                groups.push(first.into());
            }
            Err(StoreError::Database(cause)) => {
                let Some(outcome) = group.first() else {
                    continue;
                };
                let cause = Chain(&cause);
                if is_unstorable(outcome) {
                    tracing::error!(%cause, seq = outcome.lease.seq,
                        "even the failure of a job whose result could not be stored was refused; \
                         its lease will lapse");
                    continue;
                }
                tracing::warn!(%cause, seq = outcome.lease.seq, "an outcome could not be stored");
                let failed = Outcome {
                    lease: outcome.lease,
                    kind: OutcomeKind::Failed {
                        error: format!("{UNSTORABLE}: {cause}"),
                    },
                };
                groups.push(Arc::new([failed]));
            }
            Err(e) => return Err(e),
        }
    }
    Ok(applied)
}

fn is_unstorable(outcome: &Outcome) -> bool {
    matches!(&outcome.kind, OutcomeKind::Failed { error } if error.starts_with(UNSTORABLE))
}
