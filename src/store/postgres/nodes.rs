//! What each node serves from its apps folder: one row per node, written at its start.

use deadpool_postgres::Pool;

use super::connection;
use super::errors::map_err;
use crate::store::{NodeApplications, StoreError};

/// Serialises nodes recording at once, so that of two nodes starting together the second
/// sees the first.
const LOCK: &str = "LOCK TABLE nodes IN EXCLUSIVE MODE";

const LAST_OTHER: &str = "SELECT node, applications, recorded_at FROM nodes \
     WHERE node <> $1 ORDER BY recorded_at DESC LIMIT 1";

const UPSERT: &str = "INSERT INTO nodes (node, applications, recorded_at) VALUES ($1, $2, $3) \
     ON CONFLICT (node) DO UPDATE SET applications = excluded.applications, \
       recorded_at = excluded.recorded_at";

/// Records `node` at `now` and answers the record another node wrote last.
pub(super) async fn record(
    pool: &Pool,
    node: &NodeApplications,
    now: i64,
) -> Result<Option<NodeApplications>, StoreError> {
    let applications = serde_json::to_string(&node.applications)
        .map_err(|e| StoreError::database("cannot encode the node's applications", e))?;
    let mut client = connection(pool).await?;
    let tx = client.transaction().await.map_err(map_err)?;
    tx.batch_execute(LOCK).await.map_err(map_err)?;
    let last = tx
        .query_opt(LAST_OTHER, &[&node.node])
        .await
        .map_err(map_err)?;
    tx.execute(UPSERT, &[&node.node, &applications, &now])
        .await
        .map_err(map_err)?;
    tx.commit().await.map_err(map_err)?;
    let Some(row) = last else {
        return Ok(None);
    };
    let applications: String = row.get(1);
    Ok(Some(NodeApplications {
        node: row.get(0),
        applications: serde_json::from_str(&applications)
            .map_err(|e| StoreError::database("cannot read another node's applications", e))?,
        recorded_at: row.get(2),
    }))
}
