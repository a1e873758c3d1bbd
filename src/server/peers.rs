//! The check that the nodes sharing a database serve the same apps folder: at start, a node
//! records what its folder serves (each application's id and file digest) and compares it with
//! what the node that recorded last serves, warning about every difference. Applications kept
//! as data need no check: every node reads them from the database.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use crate::apps::Registry;
use crate::report::Chain;
use crate::store::{NodeApplications, Store};

/// Records this node's apps folder and warns when the last node to start served another.
/// A store that cannot record (SQLite: one node) has nothing to compare; a failure to record
/// is logged, not fatal (the check is advice to operators).
pub(super) async fn check_apps_folder(store: &dyn Store, apps: &Registry, address: SocketAddr) {
    let mine = NodeApplications {
        node: node_name(address),
        applications: apps.digests().clone(),
        recorded_at: 0,
    };
    let theirs = match store.record_node(mine.clone()).await {
        Ok(Some(theirs)) => theirs,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(error = %Chain(&e), "cannot record this node's applications to compare with other nodes'");
            return;
        }
    };
    let differences = differences(&mine.applications, &theirs.applications);
    if differences.is_empty() {
        tracing::info!(other = %theirs.node, "the apps folder serves what the other node's does");
    } else {
        tracing::warn!(
            node = %mine.node,
            other = %theirs.node,
            differences = differences.join("; "),
            "this node's apps folder differs from the other node's: they serve different \
             provisioned applications; give every node the same folder"
        );
    }
}

/// This node as others see it: its host name and the address it listens on, `HOST@IP:PORT`.
fn node_name(address: SocketAddr) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_owned())
        .unwrap_or_else(|_| "unknown-host".to_owned());
    format!("{host}@{address}")
}

/// Each application that `mine` (this node) and `theirs` (the other node) do not share:
/// missing on either side, or with a different file.
fn differences(mine: &BTreeMap<String, String>, theirs: &BTreeMap<String, String>) -> Vec<String> {
    let mut found: Vec<String> = mine
        .iter()
        .filter_map(|(id, digest)| match theirs.get(id) {
            None => Some(format!("'{id}' only here")),
            Some(other) if other != digest => Some(format!("'{id}' differs")),
            Some(_) => None,
        })
        .collect();
    found.extend(
        theirs
            .keys()
            .filter(|id| !mine.contains_key(*id))
            .map(|id| format!("'{id}' only there")),
    );
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    fn folder(apps: &[(&str, &str)]) -> BTreeMap<String, String> {
        apps.iter()
            .map(|(id, digest)| (id.to_string(), digest.to_string()))
            .collect()
    }

    #[test]
    fn differences_name_each_application_missing_on_either_side_or_changed() {
        let mine = folder(&[("echo", "1"), ("summary", "2"), ("draft", "3")]);
        let theirs = folder(&[("echo", "1"), ("summary", "9"), ("extra", "4")]);
        assert_eq!(
            differences(&mine, &theirs),
            [
                "'draft' only here",
                "'summary' differs",
                "'extra' only there"
            ]
        );
        assert!(differences(&mine, &mine).is_empty());
    }
}
