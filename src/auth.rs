//! API keys: made here, shown once, stored only as SHA-256 hashes, and checked on every
//! request. Keys are long random strings, so a fast hash is enough (no password stretching).
//!
//! A key from `SCRIPTORIUM_API_KEY` is accepted for the default organisation without being
//! stored, for scripts and tests.

use std::fmt;
use std::sync::Arc;

use sha2::{Digest, Sha256};

use crate::store::{KeyInfo, OrgId, Store, StoreError, now_micros};

/// The organisation keys belong to unless another is named.
pub const DEFAULT_ORG: &str = "default";

/// Characters of a key shown as its id.
const ID_LEN: usize = 12;

/// A secret API key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// A new random key: `scr_` and 40 hex digits (160 bits).
    pub(crate) fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 20];
        getrandom::fill(&mut bytes)?;
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        Ok(Self(format!("scr_{hex}")))
    }

    /// Wraps a key given by the operator.
    pub(crate) fn new(key: String) -> Self {
        Self(key)
    }

    /// The key itself, to show once.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Its first characters, safe to list and used to revoke it.
    pub(crate) fn id(&self) -> String {
        self.0.chars().take(ID_LEN).collect()
    }

    /// What the store keeps.
    pub(crate) fn hash(&self) -> [u8; 32] {
        hash(&self.0)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({}…)", self.id())
    }
}

fn hash(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Creates, stores and returns a new key for `org`.
pub async fn create_key(
    store: &dyn Store,
    org: OrgId,
    name: &str,
) -> Result<(ApiKey, KeyInfo), StoreError> {
    let key = ApiKey::generate().map_err(|e| StoreError::database("no randomness", e))?;
    let info = KeyInfo {
        id: key.id(),
        org,
        name: name.to_owned(),
        created_at: now_micros(),
        revoked_at: None,
    };
    store.create_key(info.clone(), key.hash()).await?;
    Ok((key, info))
}

/// Checks keys: the operator's environment key first, then the stored ones.
pub(crate) struct Keys {
    store: Arc<dyn Store>,
    env_key: Option<[u8; 32]>,
}

impl Keys {
    /// A checker over `store`, also accepting `env_key` for the default organisation.
    pub(crate) fn new(store: Arc<dyn Store>, env_key: Option<&ApiKey>) -> Self {
        Self {
            store,
            env_key: env_key.map(ApiKey::hash),
        }
    }

    /// The organisation `key` belongs to, or `None` if it is unknown or revoked.
    pub(crate) async fn authenticate(&self, key: &str) -> Result<Option<OrgId>, StoreError> {
        let hashed = hash(key);
        if self.env_key == Some(hashed) {
            return Ok(Some(OrgId::from(DEFAULT_ORG)));
        }
        self.store.authenticate(hashed).await
    }
}
