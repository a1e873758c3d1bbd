//! Applications kept as data: each organisation's applications and their immutable versions.
//!
//! A definition is stored as the JSON document the API received (validated above the store);
//! the store only numbers versions and keeps the row of the current one.

use crate::store::{ApplicationId, OrgId};

/// A new version of an application: its first (create) or its next (update, restore).
#[derive(Clone, Debug)]
pub struct NewVersion {
    /// The organisation that owns the application.
    pub org: OrgId,
    /// The application.
    pub id: ApplicationId,
    /// The definition, as a JSON document.
    pub definition: String,
    /// Whether this version is deployed (served on Writer's routes).
    pub deployed: bool,
}

/// An application of an organisation at its current version.
#[derive(Clone, Debug)]
pub struct ApplicationRecord {
    /// The application.
    pub id: ApplicationId,
    /// Its current version (1 for the first; every change adds one).
    pub version: u32,
    /// The definition of the current version, as a JSON document.
    pub definition: String,
    /// Whether the current version is deployed.
    pub deployed: bool,
    /// When it was created.
    pub created_at: i64,
    /// When its current version was made.
    pub updated_at: i64,
    /// When a deployed version was last made, if ever.
    pub last_deployed_at: Option<i64>,
}

/// One immutable version of an application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApplicationVersion {
    /// Its number.
    pub version: u32,
    /// The definition, as a JSON document.
    pub definition: String,
    /// When it was made.
    pub created_at: i64,
}

/// A page of an application's versions, newest first.
#[derive(Clone, Debug)]
pub struct VersionQuery {
    /// The organisation asking.
    pub org: OrgId,
    /// The application.
    pub id: ApplicationId,
    /// Versions to skip.
    pub offset: u64,
    /// Versions to return at most.
    pub limit: u64,
}

/// One page of versions and how many the application has.
#[derive(Clone, Debug)]
pub struct VersionPage {
    /// The versions on this page, newest first.
    pub versions: Vec<ApplicationVersion>,
    /// How many versions the application has.
    pub total: u64,
}

/// Applications changed in the store, as heard by every process that shares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ApplicationsChanged {
    /// The application `id` of `org` was created, changed or deleted.
    Changed {
        /// The organisation that owns the application.
        org: OrgId,
        /// The application.
        id: ApplicationId,
    },
    /// Changes may have been missed (the process stopped hearing them for a while): any
    /// application of any organisation may differ from what was last heard.
    Missed,
}

/// What a node serves from its apps folder, recorded in a shared store at its start so that
/// nodes with different folders can be told apart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeApplications {
    /// The node, as it names itself (its host and listen address).
    pub node: String,
    /// Each provisioned application's id and a digest of its definition file, sorted by id.
    pub applications: std::collections::BTreeMap<String, String>,
    /// When the node recorded it (at its start), in microseconds since the Unix epoch; set
    /// by the store.
    pub recorded_at: i64,
}
