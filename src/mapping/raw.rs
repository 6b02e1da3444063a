//! The serde shape of `[mapping]`, exactly as operators write it (part of
//! `config::raw`, which re-exports it). `Mapping::compile` validates it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `[mapping]`: directory groups → organization role, workspaces, projects.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Mapping {
    pub owner_email: String,
    /// Role for users in no mapped group; empty = the documented default.
    pub default_role: String,
    /// role name → groups (DNs or plain names).
    pub roles: BTreeMap<String, Vec<String>>,
    /// workspace title → groups.
    pub workspaces: BTreeMap<String, Vec<String>>,
    pub projects: Vec<ProjectRule>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectRule {
    pub project: String,
    pub group: String,
    /// annotator | reviewer | inherit
    pub role: String,
}
