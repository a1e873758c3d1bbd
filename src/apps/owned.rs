//! The organisations' own applications held in memory by the [`Catalog`](super::Catalog): each
//! organisation's loaded at its first lookup and kept until a change to one of them is made
//! here or heard of.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::Application;
use crate::store::{ApplicationId, OrgId, StoreError};

/// One organisation's own applications at their current versions, drafts included.
pub(super) type Owned = HashMap<ApplicationId, Arc<Application>>;

/// Every loaded organisation's [`Owned`] applications.
#[derive(Default)]
pub(super) struct OwnedApps {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// Raised by every change, made here or heard of: a load that began before a change does
    /// not install its result (it may have read the store before the change committed).
    epoch: u64,
    orgs: HashMap<OrgId, Arc<Owned>>,
}

impl OwnedApps {
    /// `org`'s applications, from memory or else from `load` (kept unless a change came
    /// meanwhile).
    pub(super) async fn get_or_load<F, Fut>(
        &self,
        org: &OrgId,
        load: F,
    ) -> Result<Arc<Owned>, StoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Owned, StoreError>>,
    {
        let epoch = {
            let state = self.lock();
            if let Some(owned) = state.orgs.get(org) {
                return Ok(owned.clone());
            }
            state.epoch
        };
        let owned = Arc::new(load().await?);
        let mut state = self.lock();
        if state.epoch == epoch {
            state.orgs.insert(org.clone(), owned.clone());
        }
        Ok(owned)
    }

    /// Forgets `org`'s applications.
    pub(super) fn forget(&self, org: &OrgId) {
        let mut state = self.lock();
        state.epoch += 1;
        state.orgs.remove(org);
    }

    /// Forgets every organisation's applications.
    pub(super) fn forget_all(&self) {
        let mut state = self.lock();
        state.epoch += 1;
        state.orgs.clear();
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}
