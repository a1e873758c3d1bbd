//! The [`Catalog`]: the applications each organisation sees. The provisioned ones (the apps
//! folder, read-only, seen by every organisation) and each organisation's own, kept in the
//! store as immutable versions and created, changed and deleted through here.
//!
//! Job creates look applications up on every request, so an organisation's own applications
//! are held in memory at their current versions: loaded from the store at the organisation's
//! first lookup, and dropped when one of them changes (the next lookup loads them again):
//! at once when this process changes it, and when the store announces a change made by any
//! process sharing it ([`Catalog::follow_changes`]: PostgreSQL's notifications, heard by every
//! node); all of them when the store may have missed some. Jobs do not depend on it: a job
//! runs with the version it was created with ([`Catalog::pinned`]), read from the store when
//! it is not the one held here.

use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use super::owned::{Owned, OwnedApps};
use super::{Application, Registry, document};
use crate::providers::Providers;
use crate::report::Chain;
use crate::store::{
    ApplicationId, ApplicationRecord, ApplicationsChanged, NewVersion, OrgId, Store, StoreError,
    VersionPage, VersionQuery,
};

/// Every application, provisioned and per organisation.
pub(crate) struct Catalog {
    provisioned: Arc<Registry>,
    store: Arc<dyn Store>,
    providers: Arc<Providers>,
    cache: OwnedApps,
}

/// Why a change to an application was refused.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CatalogError {
    /// The definition breaks the rules: every problem, each naming its field.
    #[error("{}", .0.join("; "))]
    Invalid(Vec<String>),
    /// A provisioned application cannot be changed over the API.
    #[error("application '{0}' is provisioned from the apps folder and read-only")]
    ReadOnly(String),
    /// The organisation already has an application with this id.
    #[error("an application with the id '{0}' already exists")]
    Taken(String),
    /// The organisation has no such application.
    #[error("no application '{0}'")]
    NotFound(String),
    /// The application has no such version (as the path named it).
    #[error("application '{0}' has no version '{1}'")]
    NoVersion(String, String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Catalog {
    /// The catalog of `provisioned` applications and those kept in `store`, whose providers
    /// must be among `providers`.
    pub(crate) fn new(
        provisioned: Arc<Registry>,
        store: Arc<dyn Store>,
        providers: Arc<Providers>,
    ) -> Self {
        Self {
            provisioned,
            store,
            providers,
            cache: OwnedApps::default(),
        }
    }

    /// Follows the changes the store announces, for as long as the catalog and the store
    /// live: each drops its organisation's applications from memory; a missed one, all.
    /// Without announcements (SQLite: this process is the only writer) there is nothing to
    /// follow.
    pub(crate) fn follow_changes(self: &Arc<Self>) {
        let Some(mut changes) = self.store.application_changes() else {
            return;
        };
        let catalog: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                let change = changes.recv().await;
                let Some(catalog) = catalog.upgrade() else {
                    return;
                };
                match change {
                    Ok(ApplicationsChanged::Changed { org, id }) => {
                        tracing::debug!(%org, application = %id, "an application changed");
                        catalog.invalidate(&org);
                    }
                    Ok(ApplicationsChanged::Missed) | Err(RecvError::Lagged(_)) => {
                        tracing::info!("application changes may have been missed; forgetting all");
                        catalog.cache.forget_all();
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    /// The deployed application `id` as `org` sees it: its own, else a provisioned one.
    pub(crate) async fn served(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<Arc<Application>>, StoreError> {
        let own = self.owned(org).await?.get(id).cloned();
        Ok(match own {
            Some(app) => app.is_deployed().then_some(app),
            None => self.provisioned.get(id).cloned(),
        })
    }

    /// The deployed applications `org` sees, sorted by `(created_at, id)` ascending.
    pub(crate) async fn listed(&self, org: &OrgId) -> Result<Vec<Arc<Application>>, StoreError> {
        let owned = self.owned(org).await?;
        let mut apps: Vec<Arc<Application>> = owned
            .values()
            .filter(|a| a.is_deployed())
            .cloned()
            .chain(
                self.provisioned
                    .deployed()
                    .iter()
                    .filter(|a| !owned.contains_key(&a.id))
                    .cloned(),
            )
            .collect();
        apps.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(apps)
    }

    /// The application `id` as `org` sees it, drafts included: its own, else a provisioned
    /// one.
    pub(crate) async fn find(
        &self,
        org: &OrgId,
        id: &str,
    ) -> Result<Option<Arc<Application>>, StoreError> {
        if let Some(app) = self.owned(org).await?.get(id) {
            return Ok(Some(app.clone()));
        }
        Ok(self.provisioned_any(id).cloned())
    }

    /// The application a job of `org` runs: `version` of its own application `id`, or the
    /// provisioned application `id` when `version` is `None`. The current version is held in
    /// memory; an older one is read from the store.
    pub(crate) async fn pinned(
        &self,
        org: &OrgId,
        id: &ApplicationId,
        version: Option<u32>,
    ) -> Result<Option<Arc<Application>>, StoreError> {
        let Some(version) = version else {
            return Ok(self.provisioned.get(id.as_str()).cloned());
        };
        if let Some(app) = self.owned(org).await?.get(id)
            && app.version == Some(version)
        {
            return Ok(Some(app.clone()));
        }
        let Some(stored) = self.store.application_version(org, id, version).await? else {
            return Ok(None);
        };
        let record = ApplicationRecord {
            id: id.clone(),
            version,
            deployed: true,
            created_at: stored.created_at,
            updated_at: stored.created_at,
            last_deployed_at: None,
            definition: stored.definition,
        };
        Ok(parse_stored(&record).map(Arc::new))
    }

    /// Creates an application of `org` from a JSON definition, at version 1. Its id is the
    /// definition's `id`, else a new UUID.
    pub(crate) async fn create(
        &self,
        org: &OrgId,
        mut definition: Value,
    ) -> Result<Arc<Application>, CatalogError> {
        let id = given_or_new_id(&definition)?;
        if self.provisioned_any(&id).is_some() {
            return Err(CatalogError::ReadOnly(id));
        }
        set_id(&mut definition, &id)?;
        let new = self.checked(org, &id, &definition)?;
        let record = self.store.create_application(new).await?;
        self.invalidate(org);
        let record = record.ok_or(CatalogError::Taken(id))?;
        stamped(definition, &record)
    }

    /// Validates a definition that is not saved (a preview) by the rules of [`Catalog::create`];
    /// without an `id` it gets a new UUID.
    pub(crate) fn unsaved(&self, mut definition: Value) -> Result<Application, CatalogError> {
        let id = given_or_new_id(&definition)?;
        set_id(&mut definition, &id)?;
        self.validated(&definition)
    }

    /// Replaces the definition of `org`'s application `id`: its next version.
    pub(crate) async fn replace(
        &self,
        org: &OrgId,
        id: &str,
        mut definition: Value,
    ) -> Result<Arc<Application>, CatalogError> {
        self.writable(org, id).await?;
        match definition.get("id") {
            None | Some(Value::Null) => set_id(&mut definition, id)?,
            Some(Value::String(given)) if given == id => {}
            Some(_) => {
                return Err(CatalogError::Invalid(vec![format!(
                    "id: must be '{id}' (an application's id cannot change)"
                )]));
            }
        }
        let new = self.checked(org, id, &definition)?;
        let record = self.store.update_application(new).await?;
        self.invalidate(org);
        let record = record.ok_or_else(|| CatalogError::NotFound(id.to_owned()))?;
        stamped(definition, &record)
    }

    /// Makes `version` of `org`'s application `id` its current definition again, as a new
    /// version.
    pub(crate) async fn restore(
        &self,
        org: &OrgId,
        id: &str,
        version: u32,
    ) -> Result<Arc<Application>, CatalogError> {
        self.writable(org, id).await?;
        let app_id = ApplicationId::from(id.to_owned());
        let old = self
            .store
            .application_version(org, &app_id, version)
            .await?
            .ok_or_else(|| CatalogError::NoVersion(id.to_owned(), version.to_string()))?;
        let definition: Value = serde_json::from_str(&old.definition)
            .map_err(|e| CatalogError::Invalid(vec![format!("version {version}: {e}")]))?;
        self.replace(org, id, definition).await
    }

    /// Deletes `org`'s application `id`; its jobs stay readable.
    pub(crate) async fn delete(&self, org: &OrgId, id: &str) -> Result<(), CatalogError> {
        self.writable(org, id).await?;
        let deleted = self
            .store
            .delete_application(org, &ApplicationId::from(id.to_owned()))
            .await?;
        self.invalidate(org);
        if deleted {
            Ok(())
        } else {
            Err(CatalogError::NotFound(id.to_owned()))
        }
    }

    /// A page of the versions of `org`'s application `id`, newest first.
    pub(crate) async fn versions(
        &self,
        org: &OrgId,
        id: &str,
        offset: u64,
        limit: u64,
    ) -> Result<VersionPage, CatalogError> {
        self.writable(org, id).await?;
        let query = VersionQuery {
            org: org.clone(),
            id: id.to_owned().into(),
            offset,
            limit,
        };
        Ok(self.store.list_application_versions(query).await?)
    }

    /// `Ok` when `org` owns an application `id`; a provisioned one is read-only.
    async fn writable(&self, org: &OrgId, id: &str) -> Result<(), CatalogError> {
        if self.owned(org).await?.contains_key(id) {
            Ok(())
        } else if self.provisioned_any(id).is_some() {
            Err(CatalogError::ReadOnly(id.to_owned()))
        } else {
            Err(CatalogError::NotFound(id.to_owned()))
        }
    }

    /// Validates `definition` (with its id set) as a new version of `org`'s application `id`.
    fn checked(
        &self,
        org: &OrgId,
        id: &str,
        definition: &Value,
    ) -> Result<NewVersion, CatalogError> {
        let app = self.validated(definition)?;
        Ok(NewVersion {
            org: org.clone(),
            id: id.to_owned().into(),
            definition: definition.to_string(),
            deployed: app.is_deployed(),
        })
    }

    /// The application of `definition` (with its id set), if it keeps every rule and names
    /// only providers this server has.
    fn validated(&self, definition: &Value) -> Result<Application, CatalogError> {
        let app =
            document::from_json(definition, SystemTime::now()).map_err(CatalogError::Invalid)?;
        let problems = self.provider_problems(&app);
        if problems.is_empty() {
            Ok(app)
        } else {
            Err(CatalogError::Invalid(problems))
        }
    }

    /// The providers `app` names that this server does not have (checked at start for the
    /// provisioned applications).
    fn provider_problems(&self, app: &Application) -> Vec<String> {
        let mut problems = Vec::new();
        for name in &app.providers {
            match self.providers.get(name) {
                None => problems.push(format!(
                    "provider: '{name}' is not configured (configured: {})",
                    self.providers.names().join(", ")
                )),
                Some(backend) if app.model.is_none() && !backend.has_default_model() => problems
                    .push(format!(
                        "model: required, as provider '{name}' has no default model"
                    )),
                Some(_) => {}
            }
        }
        problems
    }

    /// A provisioned application, drafts included.
    fn provisioned_any(&self, id: &str) -> Option<&Arc<Application>> {
        self.provisioned.all().iter().find(|a| a.id.as_str() == id)
    }

    /// `org`'s own applications, from memory or else loaded from the store.
    async fn owned(&self, org: &OrgId) -> Result<Arc<Owned>, StoreError> {
        self.cache
            .get_or_load(org, || async {
                let records = self.store.list_applications(org).await?;
                Ok(records
                    .iter()
                    .filter_map(parse_stored)
                    .map(|app| (app.id.clone(), Arc::new(app)))
                    .collect())
            })
            .await
    }

    /// Forgets `org`'s applications: the next lookup loads them from the store.
    fn invalidate(&self, org: &OrgId) {
        self.cache.forget(org);
    }
}

/// The definition's `id`, else a new UUID.
fn given_or_new_id(definition: &Value) -> Result<String, CatalogError> {
    match definition.get("id") {
        None | Some(Value::Null) => Ok(uuid::Uuid::now_v7().to_string()),
        Some(Value::String(id)) => Ok(id.clone()),
        Some(_) => Err(CatalogError::Invalid(vec!["id: must be a string".into()])),
    }
}

/// Sets the `id` of a definition (an object; anything else is refused when validated).
fn set_id(definition: &mut Value, id: &str) -> Result<(), CatalogError> {
    match definition.as_object_mut() {
        Some(object) => {
            object.insert("id".into(), Value::String(id.to_owned()));
            Ok(())
        }
        None => Err(CatalogError::Invalid(vec![
            "the definition must be a JSON object".into(),
        ])),
    }
}

/// The application of a stored version; `None` (logged) if it no longer validates.
fn parse_stored(record: &ApplicationRecord) -> Option<Application> {
    let parsed = serde_json::from_str::<Value>(&record.definition)
        .map_err(|e| vec![Chain(&e).to_string()])
        .and_then(|definition| stamped_app(definition, record));
    match parsed {
        Ok(app) => Some(app),
        Err(problems) => {
            tracing::warn!(
                application = %record.id,
                version = record.version,
                problems = problems.join("; "),
                "a stored application version no longer validates; it is not served"
            );
            None
        }
    }
}

fn stamped(
    definition: Value,
    record: &ApplicationRecord,
) -> Result<Arc<Application>, CatalogError> {
    stamped_app(definition, record)
        .map(Arc::new)
        .map_err(CatalogError::Invalid)
}

/// The application of `definition` with the times and version of `record`.
fn stamped_app(definition: Value, record: &ApplicationRecord) -> Result<Application, Vec<String>> {
    let mut app = document::from_json(&definition, time(record.created_at))?;
    app.updated_at = time(record.updated_at);
    app.last_deployed_at = record.last_deployed_at.map(time);
    app.version = Some(record.version);
    app.definition = Some(definition);
    Ok(app)
}

fn time(micros: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(micros.max(0) as u64)
}
