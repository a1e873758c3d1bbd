//! Provider limits shared by every node ([`SharedLimits`]).
//!
//! One call's acquisition is one short transaction: lock the provider's `provider_state` row
//! (so acquisitions of one provider are serialised across the cluster, which at model-call
//! rates costs nothing), refuse while a 429 pause runs, refill and check the per-minute
//! budgets, then lease a free row of `provider_slots` (`slot < max_concurrency`; free means
//! unheld, or held past its lease by a node that died). Slot leases last the call's timeout
//! plus a margin, so they need no heartbeat: a dead node's slots come back by themselves.

use std::sync::LazyLock;
use std::time::Duration;

use tokio_postgres::Transaction;

use super::PostgresStore;
use super::errors::{map_err, pool_err};
use crate::store::limits::{Acquired, Budget, Limits, SharedLimits};
use crate::store::{StoreError, StoreFuture, after};

/// This process, as the holder of the slots it takes.
static NODE: LazyLock<String> = LazyLock::new(|| uuid::Uuid::now_v7().to_string());
/// How soon to look again when every slot is taken.
const SLOTS_FULL: Duration = Duration::from_millis(50);

impl SharedLimits for PostgresStore {
    fn acquire<'a>(
        &'a self,
        provider: &'a str,
        limits: Limits,
        tokens: u32,
        hold: Duration,
    ) -> StoreFuture<'a, Acquired> {
        Box::pin(async move {
            let mut client = self.pool.get().await.map_err(pool_err)?;
            let tx = client.transaction().await.map_err(map_err)?;
            let now = self.clock.now();
            let acquired = acquire(&tx, provider, limits, f64::from(tokens), hold, now).await?;
            if let Acquired::Slot(_) = acquired {
                tx.commit().await.map_err(map_err)?;
            }
            Ok(acquired)
        })
    }

    fn release<'a>(&'a self, provider: &'a str, slot: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_err)?;
            client
                .execute(
                    "UPDATE provider_slots SET holder = NULL, held_until = 0 \
                     WHERE provider = $1 AND slot = $2 AND holder = $3",
                    &[&provider, &slot, &*NODE],
                )
                .await
                .map_err(map_err)?;
            Ok(())
        })
    }

    fn pause<'a>(&'a self, provider: &'a str, until: i64) -> StoreFuture<'a, ()> {
        Box::pin(async move {
            let client = self.pool.get().await.map_err(pool_err)?;
            client
                .execute(
                    "INSERT INTO provider_state (provider, paused_until) VALUES ($1, $2) \
                     ON CONFLICT (provider) DO UPDATE \
                     SET paused_until = greatest(provider_state.paused_until, excluded.paused_until)",
                    &[&provider, &until],
                )
                .await
                .map_err(map_err)?;
            Ok(())
        })
    }
}

async fn acquire(
    tx: &Transaction<'_>,
    provider: &str,
    limits: Limits,
    tokens: f64,
    hold: Duration,
    now: i64,
) -> Result<Acquired, StoreError> {
    tx.execute(
        "INSERT INTO provider_state (provider, refilled_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&provider, &now],
    )
    .await
    .map_err(map_err)?;
    let row = tx
        .query_one(
            "SELECT paused_until, requests, tokens, refilled_at FROM provider_state \
             WHERE provider = $1 FOR UPDATE",
            &[&provider],
        )
        .await
        .map_err(map_err)?;
    let paused_until: i64 = row.get(0);
    if paused_until > now {
        return Ok(Acquired::Wait(micros(paused_until - now)));
    }
    let minutes = (now - row.get::<_, i64>(3)).max(0) as f64 / 60e6;
    let requests = budget(row.get(1), limits.requests_per_minute, minutes);
    let token_budget = budget(row.get(2), limits.tokens_per_minute, minutes);
    let wait = requests.wait_for(1.0).max(token_budget.wait_for(tokens));
    if !wait.is_zero() {
        return Ok(Acquired::Wait(wait));
    }
    let Some(slot) = lease_slot(tx, provider, limits.max_concurrency, hold, now).await? else {
        return Ok(Acquired::Wait(SLOTS_FULL));
    };
    tx.execute(
        "UPDATE provider_state SET requests = $2, tokens = $3, refilled_at = $4 WHERE provider = $1",
        &[&provider, &spent(requests, 1.0), &spent(token_budget, tokens), &now],
    )
    .await
    .map_err(map_err)?;
    Ok(Acquired::Slot(slot))
}

/// Leases the lowest free slot below `max`, creating the slot rows on first use.
async fn lease_slot(
    tx: &Transaction<'_>,
    provider: &str,
    max: usize,
    hold: Duration,
    now: i64,
) -> Result<Option<i64>, StoreError> {
    let max = max as i64;
    let until = after(now, hold);
    let take = "UPDATE provider_slots SET holder = $3, held_until = $4 \
                WHERE provider = $1 AND slot = (SELECT slot FROM provider_slots \
                  WHERE provider = $1 AND slot < $2 AND (holder IS NULL OR held_until < $5) \
                  ORDER BY slot LIMIT 1 FOR UPDATE SKIP LOCKED) \
                RETURNING slot";
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
        [&provider, &max, &*NODE, &until, &now];
    if let Some(row) = tx.query_opt(take, &params).await.map_err(map_err)? {
        return Ok(Some(row.get(0)));
    }
    let created = tx
        .execute(
            "INSERT INTO provider_slots (provider, slot) SELECT $1, g FROM generate_series(0::bigint, $2::bigint - 1) g \
             ON CONFLICT DO NOTHING",
            &[&provider, &max],
        )
        .await
        .map_err(map_err)?;
    if created == 0 {
        return Ok(None);
    }
    Ok(tx
        .query_opt(take, &params)
        .await
        .map_err(map_err)?
        .map(|row| row.get(0)))
}

/// A budget as stored: `None` means full (or unlimited, which stores nothing).
fn budget(stored: Option<f64>, per_minute: u32, minutes: f64) -> Budget {
    let full = Budget::full(per_minute);
    match stored {
        Some(available) => Budget { available, ..full }.refilled(minutes),
        None => full,
    }
}

/// What to store after spending `amount`.
fn spent(mut budget: Budget, amount: f64) -> Option<f64> {
    budget.spend(amount);
    (budget.per_minute > 0.0).then_some(budget.available)
}

fn micros(us: i64) -> Duration {
    Duration::from_micros(us.max(0) as u64)
}
