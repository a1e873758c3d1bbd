//! PostgreSQL only: a store whose connections are killed recovers by itself, nodes starting
//! together migrate a fresh schema once, application writes are heard by every store, and
//! each node's record of its apps folder is compared with the last other node's. Skipped (with a notice) without a server,
//! unless `SCRIPTORIUM_REQUIRE_POSTGRES=1`.

use std::future::Future;
use std::time::{Duration, Instant};

use scriptorium::store::postgres::PostgresStore;
use scriptorium::store::{ApplicationsChanged, NewVersion, NodeApplications, Store, StoreError};
use tokio::time::{sleep, timeout};

use super::{job, job_id, org, query};
use crate::pg::{Schema, bootstrap, kill_connections};

/// PostgreSQL only: killing every connection of a store (as a restart does) costs at most
/// a failed call each; the pool and the LISTEN connection then recover by themselves.
#[tokio::test]
async fn postgres_store_recovers_when_its_connections_are_killed() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let store = PostgresStore::open(&schema.url("t")).await.unwrap();
    let peer = PostgresStore::open(&schema.url("p")).await.unwrap();
    let admin = bootstrap(&schema.base).await;
    store.insert_job(job("job-1")).await.unwrap();
    // Several pooled connections, so the pool has more than one corpse to clear.
    let default = org("default");
    let reads = (0..6).map(|_| store.get_job(&default, job_id("job-1")));
    futures_util::future::join_all(reads).await;

    let killed = kill_connections(&admin, &schema.app("t")).await;
    assert!(
        killed >= 2,
        "the pool's and the listener's connections ({killed})"
    );
    let right_after = [
        store.get_job(&default, job_id("job-1")).await.map(drop),
        store
            .list_jobs(query("default", "echo", None, 0, 10))
            .await
            .map(drop),
        store.insert_job(job("job-2")).await.map(drop),
    ];
    for result in right_after {
        assert!(
            matches!(result, Ok(()) | Err(StoreError::Unavailable(_))),
            "{result:?}"
        );
    }
    let recovered = eventually(Duration::from_secs(5), || async {
        matches!(store.get_job(&default, job_id("job-1")).await, Ok(Some(_)))
    });
    assert!(recovered.await, "calls succeed again within seconds");
    store.insert_job(job("job-3")).await.unwrap();
    assert_eq!(
        store
            .claim(10, Duration::from_secs(30))
            .await
            .unwrap()
            .len()
            .min(2),
        2
    );

    // The listener reconnects, and a later insert on another node still wakes this one.
    let listener = format!("{}-listen", schema.app("t"));
    let listening = eventually(Duration::from_secs(10), || async {
        let sql = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 \
                   AND state = 'idle'";
        admin
            .query_one(sql, &[&listener])
            .await
            .unwrap()
            .get::<_, i64>(0)
            == 1
    });
    assert!(listening.await, "the LISTEN connection is back");
    let wakeups = store.wakeups();
    for i in 0..2 {
        let _ = timeout(Duration::from_millis(300), wakeups.notified()).await;
        peer.insert_job(job(&format!("late-{i}"))).await.unwrap();
        let woken = timeout(Duration::from_secs(5), wakeups.notified()).await;
        assert!(woken.is_ok(), "insert {i} on the peer wakes the store");
    }
}

/// PostgreSQL only: nodes starting at once on a fresh schema migrate it exactly once.
#[tokio::test]
async fn postgres_nodes_starting_together_migrate_once() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let url = schema.url("m");
    let opens = (0..6).map(|_| PostgresStore::open(&url));
    for opened in futures_util::future::join_all(opens).await {
        assert!(opened.is_ok(), "{:?}", opened.err());
    }
    let admin = bootstrap(&schema.base).await;
    let sql = format!(
        "SELECT count(*), count(DISTINCT version), max(version) FROM {}.schema_migrations",
        schema.name
    );
    let row = admin.query_one(&sql, &[]).await.unwrap();
    let (rows, distinct, max): (i64, i64, i32) = (row.get(0), row.get(1), row.get(2));
    assert!(
        max >= 1 && rows == distinct && rows == i64::from(max),
        "{rows} {distinct} {max}"
    );
    scriptorium::store::postgres::migrate(&url).await.unwrap();
}

/// PostgreSQL only: every committed write of an application is announced to every store on
/// the schema, the writer's own included, with its organisation and id; a write that changes
/// nothing announces nothing.
#[tokio::test]
async fn postgres_application_writes_are_heard_by_every_store() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let url = schema.url("apps");
    let (a, b) = (
        PostgresStore::open(&url).await.unwrap(),
        PostgresStore::open(&url).await.unwrap(),
    );
    let (mut heard_a, mut heard_b) = (
        a.application_changes().unwrap(),
        b.application_changes().unwrap(),
    );
    let new = |id: &str| NewVersion {
        org: org("acme"),
        id: id.into(),
        definition: "{}".into(),
        deployed: true,
    };
    assert!(a.update_application(new("nobody")).await.unwrap().is_none());
    assert!(
        !a.delete_application(&org("acme"), &"nobody".into())
            .await
            .unwrap()
    );
    a.create_application(new("greeter")).await.unwrap().unwrap();
    b.delete_application(&org("acme"), &"greeter".into())
        .await
        .unwrap();
    let changed = ApplicationsChanged::Changed {
        org: org("acme"),
        id: "greeter".into(),
    };
    for heard in [&mut heard_a, &mut heard_b] {
        for _ in 0..2 {
            let next = timeout(Duration::from_secs(10), heard.recv()).await;
            assert_eq!(next.unwrap().unwrap(), changed);
        }
        assert!(heard.try_recv().is_err(), "nothing else was announced");
    }
}

/// PostgreSQL only: a node's record of its apps folder answers the one another node wrote
/// last (not its own earlier one).
#[tokio::test]
async fn postgres_nodes_compare_their_apps_folder_with_the_last_other_node() {
    let Some(schema) = Schema::create().await else {
        return;
    };
    let store = PostgresStore::open(&schema.url("nodes")).await.unwrap();
    let node = |name: &str, digest: &str| NodeApplications {
        node: name.into(),
        applications: [("echo".to_owned(), digest.to_owned())].into(),
        recorded_at: 0,
    };
    assert_eq!(store.record_node(node("a", "1")).await.unwrap(), None);
    assert_eq!(store.record_node(node("a", "2")).await.unwrap(), None);
    let last = store.record_node(node("b", "3")).await.unwrap().unwrap();
    assert_eq!(
        (last.node.as_str(), &last.applications),
        ("a", &node("a", "2").applications)
    );
    let last = store.record_node(node("a", "4")).await.unwrap().unwrap();
    assert_eq!(last.node, "b");
}

/// Waits until `check` holds, for at most `limit`.
async fn eventually<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        sleep(Duration::from_millis(50)).await;
    }
    false
}
