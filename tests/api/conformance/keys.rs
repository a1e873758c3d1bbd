//! API keys and the graph ids attached to applications, kept per organisation.

use scriptorium::store::{ApplicationId, KeyInfo, OrgId, StoreError};

use super::{Harness, org};

pub(super) async fn keys_are_created_authenticated_listed_and_revoked(h: Harness) {
    let store = &*h.store;
    let key = |id: &str, org: &str, at: i64| KeyInfo {
        id: id.into(),
        org: org.into(),
        name: format!("{id} key"),
        created_at: at,
        revoked_at: None,
    };
    let (one, two) = ([1u8; 32], [2u8; 32]);
    store
        .create_key(key("k1", "default", 1), one)
        .await
        .unwrap();
    store.create_key(key("k2", "other", 2), two).await.unwrap();
    let again = store.create_key(key("k1", "default", 3), [3u8; 32]).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store
            .authenticate(one)
            .await
            .unwrap()
            .as_ref()
            .map(OrgId::as_str),
        Some("default")
    );
    assert_eq!(
        store
            .authenticate(two)
            .await
            .unwrap()
            .as_ref()
            .map(OrgId::as_str),
        Some("other")
    );
    assert_eq!(store.authenticate([9u8; 32]).await.unwrap(), None);

    assert!(store.revoke_key("k1").await.unwrap());
    assert!(!store.revoke_key("k1").await.unwrap(), "already revoked");
    assert!(!store.revoke_key("nope").await.unwrap());
    assert_eq!(store.authenticate(one).await.unwrap(), None);
    let keys = store.list_keys().await.unwrap();
    let listed: Vec<(&str, &str, bool)> = keys
        .iter()
        .map(|k| (k.id.as_str(), k.org.as_str(), k.revoked_at.is_some()))
        .collect();
    assert_eq!(listed, [("k1", "default", true), ("k2", "other", false)]);
    assert_eq!(keys[0].name, "k1 key");
}

pub(super) async fn graphs_are_kept_per_org_and_application(h: Harness) {
    let store = &*h.store;
    let (default, other) = (org("default"), org("other"));
    let (echo, draft) = (ApplicationId::from("echo"), ApplicationId::from("draft"));
    assert!(store.graphs(&default, &echo).await.unwrap().is_empty());
    let ids = vec!["g1".to_owned(), "g2".to_owned()];
    store
        .set_graphs(&default, &echo, ids.clone())
        .await
        .unwrap();
    assert_eq!(store.graphs(&default, &echo).await.unwrap(), ids);
    assert!(store.graphs(&other, &echo).await.unwrap().is_empty());
    assert!(store.graphs(&default, &draft).await.unwrap().is_empty());
    store
        .set_graphs(&default, &echo, vec!["g3".into()])
        .await
        .unwrap();
    assert_eq!(store.graphs(&default, &echo).await.unwrap(), ["g3"]);
}
