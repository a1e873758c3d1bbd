//! Applications as data: versions numbered per application, kept per organisation, pinned
//! by the jobs created with them.

use std::time::Duration;

use scriptorium::store::{ApplicationId, NewJob, NewVersion, VersionQuery};

use super::{Harness, job_for, org};

fn version(org: &str, id: &str, definition: &str, deployed: bool) -> NewVersion {
    NewVersion {
        org: org.into(),
        id: id.into(),
        definition: definition.into(),
        deployed,
    }
}

fn versions(org: &str, id: &str, offset: u64, limit: u64) -> VersionQuery {
    VersionQuery {
        org: org.into(),
        id: id.into(),
        offset,
        limit,
    }
}

pub(super) async fn applications_are_versioned_per_organisation(h: Harness) {
    let store = &*h.store;
    let (default, other) = (org("default"), org("other"));
    let echo = ApplicationId::from("echo");
    let created = store
        .create_application(version("default", "echo", "{\"v\":1}", false))
        .await
        .unwrap()
        .expect("created");
    assert_eq!((created.version, created.deployed), (1, false));
    assert_eq!(created.last_deployed_at, None);
    let again = store
        .create_application(version("default", "echo", "{\"v\":9}", true))
        .await
        .unwrap();
    assert!(
        again.is_none(),
        "an id taken in the organisation: {again:?}"
    );
    let theirs = store
        .create_application(version("other", "echo", "{\"theirs\":1}", true))
        .await
        .unwrap()
        .expect("ids are per organisation");
    assert_eq!(theirs.version, 1);

    h.clock.advance(Duration::from_secs(1));
    let deployed = store
        .update_application(version("default", "echo", "{\"v\":2}", true))
        .await
        .unwrap()
        .expect("updated");
    assert_eq!((deployed.version, deployed.deployed), (2, true));
    assert_eq!(deployed.created_at, created.created_at);
    assert!(deployed.updated_at > created.updated_at);
    assert_eq!(deployed.last_deployed_at, Some(deployed.updated_at));
    h.clock.advance(Duration::from_secs(1));
    let draft = store
        .update_application(version("default", "echo", "{\"v\":3}", false))
        .await
        .unwrap()
        .expect("updated");
    assert_eq!(draft.version, 3);
    assert_eq!(
        draft.last_deployed_at, deployed.last_deployed_at,
        "a draft keeps the last deployment's time"
    );
    let missing = store
        .update_application(version("default", "nope", "{}", true))
        .await
        .unwrap();
    assert!(missing.is_none());

    let mine = store.list_applications(&default).await.unwrap();
    let listed: Vec<(&str, u32, &str)> = mine
        .iter()
        .map(|a| (a.id.as_str(), a.version, a.definition.as_str()))
        .collect();
    assert_eq!(listed, [("echo", 3, "{\"v\":3}")]);
    let theirs = store.list_applications(&other).await.unwrap();
    assert_eq!(theirs[0].definition, "{\"theirs\":1}");

    let page = store
        .list_application_versions(versions("default", "echo", 1, 1))
        .await
        .unwrap();
    assert_eq!(page.total, 3);
    assert_eq!(page.versions.len(), 1);
    assert_eq!(
        (
            page.versions[0].version,
            page.versions[0].definition.as_str()
        ),
        (2, "{\"v\":2}"),
        "newest first"
    );
    let first = store
        .application_version(&default, &echo, 1)
        .await
        .unwrap()
        .expect("version 1");
    assert_eq!(first.definition, "{\"v\":1}");
    assert_eq!(first.created_at, created.created_at);
    assert_eq!(
        store.application_version(&other, &echo, 2).await.unwrap(),
        None,
        "another organisation's versions are its own"
    );
}

pub(super) async fn a_deleted_application_keeps_its_versions_and_their_numbers(h: Harness) {
    let store = &*h.store;
    let default = org("default");
    let echo = ApplicationId::from("echo");
    store
        .create_application(version("default", "echo", "{\"v\":1}", true))
        .await
        .unwrap()
        .expect("created");
    assert!(store.delete_application(&default, &echo).await.unwrap());
    assert!(!store.delete_application(&default, &echo).await.unwrap());
    assert!(
        !store
            .delete_application(&org("other"), &echo)
            .await
            .unwrap()
    );
    assert!(store.list_applications(&default).await.unwrap().is_empty());
    let gone = store
        .update_application(version("default", "echo", "{}", true))
        .await
        .unwrap();
    assert!(gone.is_none(), "a deleted application cannot be changed");
    assert!(
        store
            .application_version(&default, &echo, 1)
            .await
            .unwrap()
            .is_some(),
        "its versions stay, for the jobs pinned to them"
    );
    let reborn = store
        .create_application(version("default", "echo", "{\"v\":2}", true))
        .await
        .unwrap()
        .expect("the id is free again");
    assert_eq!(
        reborn.version, 2,
        "numbers continue after the deleted one's"
    );
    let listed = store.list_applications(&default).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].version, 2);
}

pub(super) async fn a_claimed_job_carries_the_version_it_was_created_with(h: Harness) {
    let store = &*h.store;
    store
        .insert_job(NewJob {
            application_version: Some(7),
            ..job_for("pinned", "default", "echo")
        })
        .await
        .unwrap();
    store
        .insert_job(job_for("provisioned", "default", "echo"))
        .await
        .unwrap();
    let claimed = store.claim(10, Duration::from_secs(30)).await.unwrap();
    let mut versions: Vec<Option<u32>> = claimed.iter().map(|j| j.application_version).collect();
    versions.sort();
    assert_eq!(versions, [None, Some(7)]);
}
