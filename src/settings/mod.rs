//! Settings saved from the SSO & SAML page (`{prefix}/admin/sso`): the IdP
//! metadata and the three group-mapping tables.
//!
//! Owns: the saved document ([`Saved`]), checking what the page submits
//! ([`check_tables`]), laying saved settings over the loaded configuration
//! ([`overlay`]: only where the file and the environment leave a key at its
//! default, so settings managed as code cannot be overridden from a
//! browser), and what a save changed ([`changes`], for the audit event).
//! `store` keeps the document on disk; `app::sso` puts it in force.
//!
//! Must not: do I/O here (store.rs does), know about HTTP, or about the
//! running app.

pub mod seen;
pub mod store;

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::config::raw::{self, ProjectRule};
use crate::config::Origins;
use crate::mapping::{self, dn, ProjectRole, Role};

/// The settings the page saved; `None` fields leave the configuration as
/// it is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Saved {
    /// Increases with every save (shared by every replica with Redis).
    pub version: u64,
    /// Who saved, and when (unix seconds).
    pub saved_by: String,
    pub saved_at: u64,
    pub metadata: Option<Metadata>,
    pub mapping: Option<Tables>,
}

/// Where the IdP metadata comes from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "source", rename_all = "lowercase", deny_unknown_fields)]
pub enum Metadata {
    /// An uploaded document (already checked: parses, has a signing
    /// certificate).
    Xml { xml: String },
    /// Fetched at start and every `saml.metadata_refresh`.
    Url { url: String },
}

/// The three mapping tables of the page.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Tables {
    pub roles: BTreeMap<String, Vec<String>>,
    pub workspaces: BTreeMap<String, Vec<String>>,
    pub projects: Vec<ProjectRule>,
}

impl Tables {
    pub fn from_raw(m: &raw::Mapping) -> Tables {
        Tables {
            roles: m.roles.clone(),
            workspaces: m.workspaces.clone(),
            projects: m.projects.clone(),
        }
    }
}

/// The configuration keys the page can set.
pub const KEY_METADATA: &str = "saml.idp_metadata";
pub const KEY_ROLES: &str = "mapping.roles";
pub const KEY_WORKSPACES: &str = "mapping.workspaces";
pub const KEY_PROJECTS: &str = "mapping.projects";

/// Which page settings the configuration file or environment already
/// decides: key → its source (shown read-only on the page).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Locks(pub BTreeMap<&'static str, String>);

impl Locks {
    pub fn of(origins: &Origins) -> Locks {
        let mut m = BTreeMap::new();
        if let Some(src) = origins
            .explicit("saml.idp_metadata_file")
            .or_else(|| origins.explicit("saml.idp_metadata_url"))
        {
            m.insert(KEY_METADATA, src);
        }
        for key in [KEY_ROLES, KEY_WORKSPACES, KEY_PROJECTS] {
            if let Some(src) = origins.explicit(key) {
                m.insert(key, src);
            }
        }
        Locks(m)
    }

    /// The source that decides `key`, when it is not the page.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }
}

/// Lays `saved` over the loaded configuration where nothing else decides.
/// `metadata_file` is where the uploaded document was written. SAML is
/// turned on by saved metadata unless `saml.enabled` is set explicitly.
/// Returns the keys that took the page's value.
pub fn overlay(
    raw: &mut raw::Raw,
    origins: &mut Origins,
    saved: &Saved,
    metadata_file: &Path,
) -> Vec<&'static str> {
    let locks = Locks::of(origins);
    let source = format!(
        "SSO settings page (version {}, saved by {})",
        saved.version, saved.saved_by
    );
    let mut applied = Vec::new();
    if let (Some(md), None) = (&saved.metadata, locks.get(KEY_METADATA)) {
        match md {
            Metadata::Xml { .. } => {
                raw.saml.idp_metadata_file = metadata_file.display().to_string();
                raw.saml.idp_metadata_url.clear();
                origins.record("saml.idp_metadata_file", &source);
            }
            Metadata::Url { url } => {
                raw.saml.idp_metadata_url = url.clone();
                raw.saml.idp_metadata_file.clear();
                origins.record("saml.idp_metadata_url", &source);
            }
        }
        if origins.explicit("saml.enabled").is_none() {
            raw.saml.enabled = true;
            origins.record("saml.enabled", &source);
        }
        applied.push(KEY_METADATA);
    }
    if let Some(t) = &saved.mapping {
        if locks.get(KEY_ROLES).is_none() {
            raw.mapping.roles = t.roles.clone();
            origins.record(KEY_ROLES, &source);
            applied.push(KEY_ROLES);
        }
        if locks.get(KEY_WORKSPACES).is_none() {
            raw.mapping.workspaces = t.workspaces.clone();
            origins.record(KEY_WORKSPACES, &source);
            applied.push(KEY_WORKSPACES);
        }
        if locks.get(KEY_PROJECTS).is_none() {
            raw.mapping.projects = t.projects.clone();
            origins.record(KEY_PROJECTS, &source);
            applied.push(KEY_PROJECTS);
        }
    }
    applied
}

/// One problem with what the page submitted: which field, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// `roles[0].groups`, `workspaces[1].title`, `projects[2].project`...
    pub field: String,
    pub message: String,
}

/// Longest workspace title, project reference and group accepted.
const MAX_TITLE: usize = 200;
const MAX_GROUP: usize = 1024;

/// One row of a table as the page submitted it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RoleRow {
    pub role: String,
    pub groups: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WorkspaceRow {
    pub title: String,
    pub groups: Vec<String>,
}

/// Checks the submitted rows and builds the tables. Rows naming the same
/// role or workspace are merged. Every problem is reported.
pub fn check_tables(
    roles: &[RoleRow],
    workspaces: &[WorkspaceRow],
    projects: &[ProjectRule],
    roles_managed_by_directory: bool,
) -> Result<Tables, Vec<Problem>> {
    let mut problems = Vec::new();
    let mut t = Tables::default();
    for (i, row) in roles.iter().enumerate() {
        let field = format!("roles[{i}]");
        match Role::parse(row.role.trim()) {
            Some(Role::Owner) | None => problems.push(Problem {
                field: format!("{field}.role"),
                message: format!(
                    "{:?} is not a role a group can grant (administrator, manager, reviewer, annotator, not_activated, deactivated)",
                    row.role
                ),
            }),
            Some(role) => {
                let groups = check_groups(&row.groups, &format!("{field}.groups"), &mut problems);
                t.roles
                    .entry(role.as_str().to_string())
                    .or_default()
                    .extend(groups);
            }
        }
    }
    for (i, row) in workspaces.iter().enumerate() {
        let field = format!("workspaces[{i}]");
        let title = row.title.trim();
        if let Some(m) = text_problem(title, "workspace title") {
            problems.push(Problem {
                field: format!("{field}.title"),
                message: m,
            });
            continue;
        }
        let groups = check_groups(&row.groups, &format!("{field}.groups"), &mut problems);
        t.workspaces
            .entry(title.to_string())
            .or_default()
            .extend(groups);
    }
    for (i, rule) in projects.iter().enumerate() {
        let field = format!("projects[{i}]");
        let project = rule.project.trim();
        if let Some(m) = text_problem(project, "project id or title") {
            problems.push(Problem {
                field: format!("{field}.project"),
                message: m,
            });
        }
        let groups = check_groups(
            std::slice::from_ref(&rule.group),
            &format!("{field}.group"),
            &mut problems,
        );
        if groups.is_empty() && !rule.group.trim().is_empty() {
            continue;
        }
        if rule.group.trim().is_empty() {
            problems.push(Problem {
                field: format!("{field}.group"),
                message: "a project rule needs a group".into(),
            });
        }
        let role = match ProjectRole::parse(rule.role.trim()) {
            Some(r) => r.as_str().to_string(),
            None => {
                problems.push(Problem {
                    field: format!("{field}.role"),
                    message: format!(
                        "{:?} is not a project role (annotator, reviewer, inherit)",
                        rule.role
                    ),
                });
                continue;
            }
        };
        t.projects.push(ProjectRule {
            project: project.to_string(),
            group: rule.group.trim().to_string(),
            role,
        });
    }
    for list in t.roles.values_mut().chain(t.workspaces.values_mut()) {
        let mut seen = std::collections::BTreeSet::new();
        list.retain(|g| seen.insert(g.clone()));
    }
    if problems.is_empty() {
        // The same compiler as start-up: what passes here loads.
        let m = raw::Mapping {
            roles: t.roles.clone(),
            workspaces: t.workspaces.clone(),
            projects: t.projects.clone(),
            ..raw::Mapping::default()
        };
        if let Err(errors) = mapping::Mapping::compile_all(&m, roles_managed_by_directory) {
            problems.extend(errors.into_iter().map(|e| Problem {
                field: e.key().to_string(),
                message: e.to_string(),
            }));
        }
    }
    if problems.is_empty() {
        Ok(t)
    } else {
        Err(problems)
    }
}

/// The trimmed, non-empty groups; a group that looks like a DN (has a
/// `=`) must parse as one.
fn check_groups(groups: &[String], field: &str, problems: &mut Vec<Problem>) -> Vec<String> {
    let mut out = Vec::new();
    for g in groups {
        let g = g.trim();
        if g.is_empty() {
            continue;
        }
        if g.len() > MAX_GROUP || g.chars().any(char::is_control) {
            problems.push(Problem {
                field: field.into(),
                message: format!(
                    "group {:?}: too long or contains control characters",
                    short(g)
                ),
            });
            continue;
        }
        if g.contains('=') {
            let why = match dn::parse(g) {
                Ok(d) if !d.is_empty() => None,
                Ok(_) => Some("it is empty".to_string()),
                Err(e) => Some(e.to_string()),
            };
            if let Some(why) = why {
                problems.push(Problem {
                    field: field.into(),
                    message: format!(
                        "group {g:?} is not a valid DN ({why}); write e.g. cn=team,ou=groups,dc=example,dc=com"
                    ),
                });
                continue;
            }
        }
        out.push(g.to_string());
    }
    out
}

/// Why a workspace title or project reference is refused, if it is.
fn text_problem(text: &str, what: &str) -> Option<String> {
    if text.is_empty() {
        return Some(format!("the {what} is empty"));
    }
    if text.chars().count() > MAX_TITLE {
        return Some(format!("the {what} is longer than {MAX_TITLE} characters"));
    }
    if text.chars().any(char::is_control) {
        return Some(format!(
            "the {what} {:?} contains control characters",
            short(text)
        ));
    }
    None
}

fn short(s: &str) -> String {
    s.chars().take(60).collect()
}

/// What a save changed, as short phrases for the audit event (no metadata
/// XML, only its source).
pub fn changes(old: &Saved, new: &Saved) -> Vec<String> {
    let mut out = Vec::new();
    let describe = |m: &Option<Metadata>| match m {
        None => "none".to_string(),
        Some(Metadata::Xml { xml }) => format!("uploaded XML ({} bytes)", xml.len()),
        Some(Metadata::Url { url }) => format!("URL {url}"),
    };
    if old.metadata != new.metadata {
        out.push(format!(
            "{KEY_METADATA}: {} -> {}",
            describe(&old.metadata),
            describe(&new.metadata)
        ));
    }
    let empty = Tables::default();
    let (a, b) = (
        old.mapping.as_ref().unwrap_or(&empty),
        new.mapping.as_ref().unwrap_or(&empty),
    );
    diff_map(KEY_ROLES, &a.roles, &b.roles, &mut out);
    diff_map(KEY_WORKSPACES, &a.workspaces, &b.workspaces, &mut out);
    if a.projects.len() != b.projects.len()
        || a.projects
            .iter()
            .zip(&b.projects)
            .any(|(x, y)| (&x.project, &x.group, &x.role) != (&y.project, &y.group, &y.role))
    {
        let list = |p: &[ProjectRule]| {
            p.iter()
                .map(|r| format!("{}:{}:{}", r.project, r.group, r.role))
                .collect::<Vec<_>>()
                .join(", ")
        };
        out.push(format!(
            "{KEY_PROJECTS}: [{}] -> [{}]",
            list(&a.projects),
            list(&b.projects)
        ));
    }
    out
}

fn diff_map(
    key: &str,
    a: &BTreeMap<String, Vec<String>>,
    b: &BTreeMap<String, Vec<String>>,
    out: &mut Vec<String>,
) {
    let names: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    for n in names {
        let (x, y) = (a.get(n), b.get(n));
        if x != y {
            let show = |v: Option<&Vec<String>>| match v {
                None => "(none)".to_string(),
                Some(v) => format!("[{}]", v.join("; ")),
            };
            out.push(format!("{key}.{n}: {} -> {}", show(x), show(y)));
        }
    }
}

#[cfg(test)]
mod tests;
