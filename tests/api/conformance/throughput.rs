//! A measurement, not a test of behaviour: intake and work throughput on each backend.

use std::sync::Arc;
use std::time::{Duration, Instant};

use scriptorium::store::{Outcome, Store};

use super::{completed, job, postgres, sqlite};

/// Prints intake and work throughput on each backend (not asserted): 64 concurrent
/// inserters, then claim + finish in batches of 512.
/// `cargo test --test api conformance::throughput -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: run with --ignored --nocapture"]
async fn throughput() {
    let sqlite = sqlite().await;
    measure("SQLite", sqlite.store.clone()).await;
    if let Some(postgres) = postgres().await {
        measure("PostgreSQL", postgres.store.clone()).await;
    }
}

async fn measure(backend: &str, store: Arc<dyn Store>) {
    const INSERTERS: usize = 64;
    const EACH: usize = 500;
    let started = Instant::now();
    let inserters: Vec<_> = (0..INSERTERS)
        .map(|w| {
            let store = store.clone();
            tokio::spawn(async move {
                for i in 0..EACH {
                    store
                        .insert_job(job(&format!("job-{w}-{i}")))
                        .await
                        .unwrap();
                }
            })
        })
        .collect();
    for inserter in inserters {
        inserter.await.unwrap();
    }
    let total = INSERTERS * EACH;
    let took = started.elapsed();
    println!(
        "{backend}: {total} inserts by {INSERTERS} concurrent callers in {took:.2?}: {:.0} jobs/s",
        total as f64 / took.as_secs_f64()
    );

    let started = Instant::now();
    let mut worked = 0;
    loop {
        let claimed = store.claim(512, Duration::from_secs(60)).await.unwrap();
        if claimed.is_empty() {
            break;
        }
        let outcomes: Vec<Outcome> = claimed.iter().map(|j| completed(j.lease, "done")).collect();
        worked += store.finish(outcomes).await.unwrap();
    }
    let took = started.elapsed();
    assert_eq!(worked, total);
    println!(
        "{backend}: {worked} jobs claimed and finished in batches of 512 in {took:.2?}: {:.0} jobs/s",
        worked as f64 / took.as_secs_f64()
    );
}
