//! Directory groups → organization role, workspaces and project roles.
//!
//! Owns: compiling `[mapping]` (where the Label Studio Enterprise
//! `AUTH_LDAP_ORGANIZATION_*` variables also land) into an immutable,
//! pre-indexed [`Mapping`], and resolving one user's groups and email into a
//! [`Resolved`] grant, following DESIGN.md "Roles, workspaces, projects".
//! DN groups are compared normalized ([`dn`], RFC 4514); plain names (SAML
//! `Groups` values) exactly and case-sensitively, as LSE does.
//!
//! Must not: do I/O, log, read the clock, or know about LDAP, SAML or HTTP.
//! What a role means for a request is `policy`'s business; how it is
//! asserted is `identity`'s. Callers that read `;`-separated LSE variables
//! split them before handing the groups over: `;` is also a (legacy) RDN
//! separator, so an unsplit list would parse as one long DN.

pub mod dn;
pub mod explain;
pub mod raw;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

pub use crate::role::Role;

/// The role a project rule grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProjectRole {
    Annotator,
    Reviewer,
    /// The organization role, when it is annotator or above.
    Inherit,
}

impl ProjectRole {
    pub fn as_str(&self) -> &'static str {
        match self {
            ProjectRole::Annotator => "annotator",
            ProjectRole::Reviewer => "reviewer",
            ProjectRole::Inherit => "inherit",
        }
    }

    /// `annotator`, `reviewer` or `inherit`, case-insensitive.
    pub fn parse(s: &str) -> Option<ProjectRole> {
        match s.trim().to_ascii_lowercase().as_str() {
            "annotator" => Some(ProjectRole::Annotator),
            "reviewer" => Some(ProjectRole::Reviewer),
            "inherit" => Some(ProjectRole::Inherit),
            _ => None,
        }
    }
}

impl fmt::Display for ProjectRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A group reference from configuration: a DN (parsed + normalized) or a
/// plain name (exact, case-sensitive).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum GroupRef {
    /// The canonical form of [`dn::normalize`].
    Dn(String),
    Name(String),
}

impl GroupRef {
    /// A string that parses as a DN with at least one `type=value` RDN is a
    /// DN; anything else is a plain name, surrounding whitespace trimmed.
    /// (The DN parser ignores surrounding whitespace itself, but keeps an
    /// escaped trailing space such as `cn=a\ `, which a trim would break.)
    pub fn parse(s: &str) -> GroupRef {
        match dn::parse(s) {
            Ok(parsed) if !parsed.is_empty() => GroupRef::Dn(parsed.normalized()),
            _ => GroupRef::Name(s.trim().to_owned()),
        }
    }

    /// Whether a group as the directory or IdP returned it is this group.
    pub fn matches(&self, group: &str) -> bool {
        match (self, Key::of(group)) {
            (GroupRef::Dn(want), Key::Dn(got)) => *want == got,
            (GroupRef::Name(want), Key::Name(got)) => want == got,
            _ => false,
        }
    }
}

impl fmt::Display for GroupRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GroupRef::Dn(s) | GroupRef::Name(s) => f.write_str(s),
        }
    }
}

/// A configuration error in `[mapping]`; every message names the offending
/// value and its key, and [`Error::key`] returns that key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "unknown role {value:?} in {key} (expected administrator, manager, reviewer, annotator, \
         not_activated, deactivated; owner is only granted by owner_email)"
    )]
    UnknownRole { value: String, key: String },
    #[error(
        "role \"owner\" in {key} cannot be granted by a mapping; \
         owner is only granted by owner_email"
    )]
    OwnerMapped { key: String },
    #[error("unknown project role {value:?} in {key} (expected annotator, reviewer, inherit)")]
    UnknownProjectRole { value: String, key: String },
    #[error(
        "empty group in {key} (expected a DN such as cn=team,dc=example,dc=com or a group name)"
    )]
    EmptyGroup { key: String },
    #[error("empty project in {key} (expected a project id or title)")]
    EmptyProject { key: String },
    #[error("empty workspace title in {key}")]
    EmptyWorkspace { key: String },
    #[error("invalid email {value:?} in {key}")]
    InvalidEmail { value: String, key: String },
}

impl Error {
    /// The configuration key the error is about, e.g. `mapping.roles.manager[1]`.
    pub fn key(&self) -> &str {
        match self {
            Error::UnknownRole { key, .. }
            | Error::OwnerMapped { key }
            | Error::UnknownProjectRole { key, .. }
            | Error::EmptyGroup { key }
            | Error::EmptyProject { key }
            | Error::EmptyWorkspace { key }
            | Error::InvalidEmail { key, .. } => key,
        }
    }
}

/// What one group grants, merged over every rule that mentions it.
#[derive(Debug, Clone, Default)]
struct Grants {
    /// Highest role (by [`Role`]'s order) of the role lists naming the group.
    role: Option<Role>,
    workspaces: Vec<String>,
    projects: Vec<(String, ProjectRole)>,
    /// Every rule naming the group, with its configuration key, in
    /// configuration order (for [`Mapping::explain`]).
    rows: Vec<(String, explain::Grant)>,
}

/// The compiled mapping: immutable, `Send + Sync`, built once at start-up.
/// Groups are indexed by their normalized key, so resolving costs one DN
/// parse and one hash lookup per user group.
#[derive(Debug, Clone, Default)]
pub struct Mapping {
    /// Trimmed and lowercased.
    owner_email: Option<String>,
    default_role: Option<Role>,
    by_dn: HashMap<String, Grants>,
    by_name: HashMap<String, Grants>,
}

/// The grant for one user.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Resolved {
    /// None = no role claim (the upstream keeps its own).
    pub role: Option<Role>,
    /// Sorted, deduplicated titles.
    pub workspaces: Vec<String>,
    /// project -> "annotator" | "reviewer" | org-role name.
    pub projects: BTreeMap<String, String>,
}

impl Mapping {
    /// `roles_managed_by_directory` = !policy.manual_role_management. It decides the default role when
    /// `raw.default_role` is empty: deactivated when true, no role claim (None) when false.
    /// Mapping "owner" in `roles` is an error (owners come only from owner_email). Each error says which key.
    pub fn compile(raw: &raw::Mapping, roles_managed_by_directory: bool) -> Result<Mapping, Error> {
        Mapping::compile_all(raw, roles_managed_by_directory).map_err(|mut errors| {
            // compile_all never fails with an empty list.
            errors.swap_remove(0)
        })
    }

    /// Like [`Mapping::compile`], but reports every error at once (in
    /// configuration order), for `config::validate`.
    pub fn compile_all(
        raw: &raw::Mapping,
        roles_managed_by_directory: bool,
    ) -> Result<Mapping, Vec<Error>> {
        let mut errors = Vec::new();
        let mut mapping = Mapping::default();

        let owner = raw.owner_email.trim();
        if !owner.is_empty() {
            if is_plausible_email(owner) {
                mapping.owner_email = Some(owner.to_lowercase());
            } else {
                errors.push(Error::InvalidEmail {
                    value: raw.owner_email.clone(),
                    key: "mapping.owner_email".into(),
                });
            }
        }

        mapping.default_role = if raw.default_role.trim().is_empty() {
            // As Label Studio Enterprise does: while the directory manages
            // roles, a user in no mapped group is locked out.
            roles_managed_by_directory.then_some(Role::Deactivated)
        } else {
            let key = "mapping.default_role";
            match Role::parse(&raw.default_role) {
                Some(Role::Owner) => {
                    errors.push(Error::OwnerMapped { key: key.into() });
                    None
                }
                Some(role) => Some(role),
                None => {
                    errors.push(Error::UnknownRole {
                        value: raw.default_role.clone(),
                        key: key.into(),
                    });
                    None
                }
            }
        };

        for (name, groups) in &raw.roles {
            let role = match Role::parse(name) {
                Some(Role::Owner) => {
                    errors.push(Error::OwnerMapped {
                        key: format!("mapping.roles.{}", toml_key(name)),
                    });
                    continue;
                }
                Some(role) => role,
                None => {
                    errors.push(Error::UnknownRole {
                        value: name.clone(),
                        key: "mapping.roles".into(),
                    });
                    continue;
                }
            };
            for (i, group) in groups.iter().enumerate() {
                let key = || format!("mapping.roles.{}[{i}]", toml_key(name));
                let k = key();
                if let Some(grants) = mapping.grants_mut(group, key, &mut errors) {
                    grants.role = grants.role.max(Some(role));
                    grants.rows.push((k, explain::Grant::Role(role)));
                }
            }
        }

        for (title, groups) in &raw.workspaces {
            if title.trim().is_empty() {
                errors.push(Error::EmptyWorkspace {
                    key: "mapping.workspaces".into(),
                });
                continue;
            }
            for (i, group) in groups.iter().enumerate() {
                let key = || format!("mapping.workspaces.{}[{i}]", toml_key(title));
                let k = key();
                if let Some(grants) = mapping.grants_mut(group, key, &mut errors) {
                    grants.workspaces.push(title.clone());
                    grants
                        .rows
                        .push((k, explain::Grant::Workspace(title.clone())));
                }
            }
        }

        for (i, rule) in raw.projects.iter().enumerate() {
            let project = rule.project.trim();
            if project.is_empty() {
                errors.push(Error::EmptyProject {
                    key: format!("mapping.projects[{i}].project"),
                });
            }
            let role = ProjectRole::parse(&rule.role);
            if role.is_none() {
                errors.push(Error::UnknownProjectRole {
                    value: rule.role.clone(),
                    key: format!("mapping.projects[{i}].role"),
                });
            }
            let key = || format!("mapping.projects[{i}].group");
            if let Some(grants) = mapping.grants_mut(&rule.group, key, &mut errors) {
                if let (false, Some(role)) = (project.is_empty(), role) {
                    grants.projects.push((project.to_owned(), role));
                    grants.rows.push((
                        format!("mapping.projects[{i}]"),
                        explain::Grant::Project(project.to_owned(), role),
                    ));
                }
            }
        }

        if errors.is_empty() {
            Ok(mapping)
        } else {
            Err(errors)
        }
    }

    /// Resolve one user. `groups`: what the directory / IdP said (LDAP DNs
    /// as returned, SAML plain names); `email`: the user's email.
    ///
    /// Role: the highest role of the user's mapped groups, deactivated
    /// winning over everything; `default_role` when no role group matches.
    /// Then the owner: the user whose email equals `owner_email` is `owner`
    /// whatever the groups say — deactivated included — because Label
    /// Studio's organization owner must never be locked out of their own
    /// organization by a group (LSE likewise never demotes the owner).
    /// A deactivated user gets no workspaces and no projects.
    pub fn resolve(&self, email: Option<&str>, groups: &[String]) -> Resolved {
        let mut group_role: Option<Role> = None;
        let mut workspaces: BTreeSet<&str> = BTreeSet::new();
        let mut rules: Vec<&(String, ProjectRole)> = Vec::new();
        for group in groups {
            if let Some(grants) = self.lookup(group) {
                group_role = group_role.max(grants.role);
                workspaces.extend(grants.workspaces.iter().map(String::as_str));
                rules.extend(grants.projects.iter());
            }
        }

        let mut role = group_role.or(self.default_role);
        if self.is_owner(email) {
            role = Some(Role::Owner);
        }
        if role == Some(Role::Deactivated) {
            return Resolved {
                role,
                ..Resolved::default()
            };
        }

        // Project values rank by Role's order: annotator < reviewer <
        // manager < administrator < owner, so the highest rule wins.
        let mut projects: BTreeMap<&str, Role> = BTreeMap::new();
        for (project, rule) in rules {
            let granted = match rule {
                ProjectRole::Annotator => Some(Role::Annotator),
                ProjectRole::Reviewer => Some(Role::Reviewer),
                ProjectRole::Inherit => role.filter(|r| r.is_active()),
            };
            if let Some(granted) = granted {
                let value = projects.entry(project).or_insert(granted);
                *value = (*value).max(granted);
            }
        }

        Resolved {
            role,
            workspaces: workspaces.into_iter().map(str::to_owned).collect(),
            projects: projects
                .into_iter()
                .map(|(project, role)| (project.to_owned(), role.as_str().to_owned()))
                .collect(),
        }
    }

    /// True when some role/workspace/project rule mentions this group (used to keep the `groups` claim small).
    pub fn mentions(&self, group: &str) -> bool {
        self.lookup(group).is_some()
    }

    /// True when no rule mentions any group (owner_email and default_role
    /// still apply).
    pub fn is_empty(&self) -> bool {
        self.by_dn.is_empty() && self.by_name.is_empty()
    }

    /// The owner's email, trimmed and lowercased.
    pub fn owner_email(&self) -> Option<&str> {
        self.owner_email.as_deref()
    }

    /// The role of a user in no mapped group (None = no role claim).
    pub fn default_role(&self) -> Option<Role> {
        self.default_role
    }

    fn is_owner(&self, email: Option<&str>) -> bool {
        match (&self.owner_email, email) {
            (Some(owner), Some(email)) => *owner == email.trim().to_lowercase(),
            _ => false,
        }
    }

    fn lookup(&self, group: &str) -> Option<&Grants> {
        match Key::of(group) {
            Key::Dn(normalized) => self.by_dn.get(&normalized),
            Key::Name(name) => self.by_name.get(name),
        }
    }

    /// The grants entry of a configured group, or `None` (and an error
    /// under `key`) when the group is empty.
    fn grants_mut(
        &mut self,
        group: &str,
        key: impl FnOnce() -> String,
        errors: &mut Vec<Error>,
    ) -> Option<&mut Grants> {
        match GroupRef::parse(group) {
            GroupRef::Name(name) if name.is_empty() => {
                errors.push(Error::EmptyGroup { key: key() });
                None
            }
            GroupRef::Name(name) => Some(self.by_name.entry(name).or_default()),
            GroupRef::Dn(normalized) => Some(self.by_dn.entry(normalized).or_default()),
        }
    }
}

/// How a user's group is looked up: DNs by normalized form, anything else
/// as given (no trimming, no case folding).
enum Key<'a> {
    Dn(String),
    Name(&'a str),
}

impl<'a> Key<'a> {
    fn of(group: &'a str) -> Key<'a> {
        match dn::parse(group) {
            Ok(parsed) if !parsed.is_empty() => Key::Dn(parsed.normalized()),
            _ => Key::Name(group),
        }
    }
}

/// A TOML key as an operator would write it: bare when it can be, quoted
/// otherwise (`mapping.workspaces."Workspace 1"`).
fn toml_key(k: &str) -> String {
    let bare = !k.is_empty()
        && k.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if bare {
        k.to_owned()
    } else {
        format!("{k:?}")
    }
}

/// Catches a mistyped owner_email (a name, a DN, two addresses) at
/// start-up rather than silently never matching.
fn is_plausible_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && !domain.is_empty()
                && !domain.contains('@')
                && !s.chars().any(|c| c.is_whitespace() || c == ',' || c == ';')
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::raw;
    use serde_json::json;

    const ADMINS: &str = "cn=admins,ou=users,o=123abc,dc=example,dc=com ";
    const MANAGERS: &str = "cn=managers,ou=users,o=123abc,dc=example,dc=com ";
    const NOT: &str = "cn=not,ou=users,o=123abc,dc=example,dc=com ";

    /// The seed's lse-example.env mapping (role DNs byte for byte, trailing
    /// spaces included) plus SAML plain names, workspaces and projects.
    fn fixture(default_role: &str) -> raw::Mapping {
        let value = json!({
            "owner_email": "Heartex@Heartex.net",
            "default_role": default_role,
            "roles": {
                "administrator": [ADMINS, "ls-administrators"],
                "manager": [MANAGERS],
                "reviewer": ["cn=reviewers,ou=users,o=123abc,dc=example,dc=com", "ls-reviewers"],
                "annotator": [
                    "cn=annotators,ou=users,o=123abc,dc=example,dc=com",
                    "cn=guests,ou=users,o=123abc,dc=example,dc=com",
                    "ls-annotators"
                ],
                "not_activated": [NOT],
                "deactivated": ["cn=deactivated,ou=users,o=123abc,dc=example,dc=com", "ls-deactivated"]
            },
            "workspaces": {
                "Workspace 1": ["cn=team1,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com", "team-a"],
                "Workspace 2": ["cn=team2,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com", "team-a"],
                "Research": ["team-research", "cn=R\\2CD,ou=labs,dc=example,dc=com"],
                "Staff": [ADMINS]
            },
            "projects": [
                { "project": "42", "group": "ls-annotators", "role": "inherit" },
                { "project": "42", "group": "team-a", "role": "reviewer" },
                { "project": "7", "group": "team-a", "role": "annotator" },
                { "project": "7", "group": "ls-reviewers", "role": "Inherit" },
                { "project": "9", "group": NOT, "role": "inherit" },
                { "project": "11", "group": ADMINS, "role": "inherit" },
                { "project": "11", "group": MANAGERS, "role": "inherit" },
                { "project": "11", "group": "ls-annotators", "role": "reviewer" },
                { "project": "13", "group": "team-research", "role": "inherit" },
                { "project": "13", "group": "cn=deactivated,ou=users,o=123abc,dc=example,dc=com", "role": "annotator" }
            ]
        });
        serde_json::from_value(value).expect("fixture matches raw::Mapping")
    }

    struct Case {
        name: &'static str,
        /// `!policy.manual_role_management`
        managed: bool,
        /// `mapping.default_role` ("" = documented default)
        default_role: &'static str,
        email: Option<&'static str>,
        groups: &'static [&'static str],
        role: Option<Role>,
        workspaces: &'static [&'static str],
        projects: &'static [(&'static str, &'static str)],
    }

    const BASE: Case = Case {
        name: "",
        managed: true,
        default_role: "",
        email: Some("user@example.com"),
        groups: &[],
        role: None,
        workspaces: &[],
        projects: &[],
    };

    fn cases() -> Vec<Case> {
        use Role::*;
        vec![
            Case {
                name: "lse admin DN as the directory returns it",
                groups: &["CN=admins,OU=users,O=123abc,DC=example,DC=com"],
                role: Some(Administrator),
                workspaces: &["Staff"],
                projects: &[("11", "administrator")],
                ..BASE
            },
            Case {
                name: "two role groups: reviewer beats annotator",
                groups: &["ls-annotators", "ls-reviewers"],
                role: Some(Reviewer),
                projects: &[("11", "reviewer"), ("42", "reviewer"), ("7", "reviewer")],
                ..BASE
            },
            Case {
                name: "two role groups: administrator beats manager, either order",
                groups: &[
                    "cn=managers,ou=users,o=123abc,dc=example,dc=com",
                    "cn=admins,ou=users,o=123abc,dc=example,dc=com",
                ],
                role: Some(Administrator),
                workspaces: &["Staff"],
                projects: &[("11", "administrator")],
                ..BASE
            },
            Case {
                name: "deactivated plus administrator: deactivated, nothing else",
                groups: &[
                    "ls-administrators",
                    "cn=deactivated,ou=users,o=123abc,dc=example,dc=com",
                    "team-a",
                ],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "deactivated plus administrator with role management off",
                managed: false,
                groups: &["ls-deactivated", "ls-administrators"],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "not_activated plus annotator: annotator",
                groups: &[NOT, "ls-annotators"],
                role: Some(Annotator),
                projects: &[("11", "reviewer"), ("42", "annotator"), ("9", "annotator")],
                ..BASE
            },
            Case {
                name: "only not_activated",
                groups: &["cn=not,ou=users,o=123abc,dc=example,dc=com"],
                role: Some(NotActivated),
                ..BASE
            },
            Case {
                name: "inherit from not_activated adds nothing, explicit rules still apply",
                groups: &[NOT, "team-a"],
                role: Some(NotActivated),
                workspaces: &["Workspace 1", "Workspace 2"],
                projects: &[("42", "reviewer"), ("7", "annotator")],
                ..BASE
            },
            Case {
                name: "inherit resolves to the org role: annotator",
                groups: &["ls-annotators"],
                role: Some(Annotator),
                projects: &[("11", "reviewer"), ("42", "annotator")],
                ..BASE
            },
            Case {
                name: "inherit resolves to the org role from another group: reviewer",
                groups: &[
                    "team-research",
                    "cn=reviewers,ou=users,o=123abc,dc=example,dc=com",
                ],
                role: Some(Reviewer),
                workspaces: &["Research"],
                projects: &[("13", "reviewer")],
                ..BASE
            },
            Case {
                name: "inherit with manager keeps the org role name",
                groups: &[MANAGERS, "team-research"],
                role: Some(Manager),
                workspaces: &["Research"],
                projects: &[("11", "manager"), ("13", "manager")],
                ..BASE
            },
            Case {
                name: "inherit from the default role",
                default_role: "annotator",
                groups: &["team-research"],
                role: Some(Annotator),
                workspaces: &["Research"],
                projects: &[("13", "annotator")],
                ..BASE
            },
            Case {
                name: "inherit with no role claim adds nothing",
                managed: false,
                groups: &["team-research"],
                role: None,
                workspaces: &["Research"],
                ..BASE
            },
            Case {
                name: "several rules on one project: highest wins",
                groups: &["ls-annotators", "team-a"],
                role: Some(Annotator),
                workspaces: &["Workspace 1", "Workspace 2"],
                projects: &[("11", "reviewer"), ("42", "reviewer"), ("7", "annotator")],
                ..BASE
            },
            Case {
                name: "several rules on one project: an org-role value beats reviewer",
                groups: &["ls-administrators", "ls-annotators", "team-a"],
                role: Some(Administrator),
                workspaces: &["Workspace 1", "Workspace 2"],
                projects: &[
                    ("11", "reviewer"),
                    ("42", "administrator"),
                    ("7", "annotator"),
                ],
                ..BASE
            },
            Case {
                name: "a group mapped to several workspaces and projects",
                groups: &["team-a", "ls-reviewers"],
                role: Some(Reviewer),
                workspaces: &["Workspace 1", "Workspace 2"],
                projects: &[("42", "reviewer"), ("7", "reviewer")],
                ..BASE
            },
            Case {
                name: "DN spacing variant",
                groups: &[" cn = admins , ou=users,  o=123abc ,dc=example, dc=com  "],
                role: Some(Administrator),
                workspaces: &["Staff"],
                projects: &[("11", "administrator")],
                ..BASE
            },
            Case {
                name: "DN case variant",
                groups: &["CN=Managers,OU=Users,O=123ABC,DC=Example,DC=COM"],
                role: Some(Manager),
                projects: &[("11", "manager")],
                ..BASE
            },
            Case {
                name: "DN hex-escaped and OID variant",
                groups: &["2.5.4.3=\\67uests,ou=users,o=123abc,dc=example,dc=com"],
                role: Some(Annotator),
                ..BASE
            },
            Case {
                name: "DN escaped comma: \\, matches \\2C",
                groups: &["CN=r\\,d,OU=Labs,DC=example,DC=com"],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "DN escaped comma with a role: workspace granted",
                groups: &["CN=r\\,d,OU=Labs,DC=example,DC=com", "ls-annotators"],
                role: Some(Annotator),
                workspaces: &["Research"],
                projects: &[("11", "reviewer"), ("42", "annotator")],
                ..BASE
            },
            Case {
                name: "DN with an escaped trailing space is another group",
                groups: &["cn=admins\\ ,ou=users,o=123abc,dc=example,dc=com"],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "jumpcloud workspace DNs from the seed",
                managed: false,
                groups: &[
                    "CN=team2,OU=Users,O=60cbc901ec2e8e387a3b2d3e,DC=jumpcloud,DC=com",
                    "cn=team1,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com",
                ],
                role: None,
                workspaces: &["Workspace 1", "Workspace 2"],
                ..BASE
            },
            Case {
                name: "unknown groups are ignored",
                groups: &[
                    "cn=strangers,ou=users,o=123abc,dc=example,dc=com",
                    "random-team",
                    "ls-annotators",
                    "cn=admins,ou=users,o=other,dc=example,dc=com",
                ],
                role: Some(Annotator),
                projects: &[("11", "reviewer"), ("42", "annotator")],
                ..BASE
            },
            Case {
                name: "malformed and empty group strings are ignored",
                groups: &["cn=admins\\", "", "   ", "cn=#zz", "ls-reviewers"],
                role: Some(Reviewer),
                projects: &[("7", "reviewer")],
                ..BASE
            },
            Case {
                name: "no mapped group, role management on: deactivated",
                groups: &["random-team", "cn=strangers,dc=example,dc=com"],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "no mapped group, role management on, only a workspace group",
                groups: &["team-a"],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "no groups at all, role management on: deactivated",
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "no mapped group, role management off: no role claim",
                managed: false,
                groups: &["random-team"],
                role: None,
                ..BASE
            },
            Case {
                name: "no mapped group, role management off, workspace still granted",
                managed: false,
                groups: &["team-a"],
                role: None,
                workspaces: &["Workspace 1", "Workspace 2"],
                projects: &[("42", "reviewer"), ("7", "annotator")],
                ..BASE
            },
            Case {
                name: "explicit default_role when nothing matches",
                default_role: "not_activated",
                groups: &["random-team"],
                role: Some(NotActivated),
                ..BASE
            },
            Case {
                name: "explicit default_role applies with role management off too",
                managed: false,
                default_role: "Annotator",
                role: Some(Annotator),
                ..BASE
            },
            Case {
                name: "explicit default_role is not used when a group matches",
                default_role: "annotator",
                groups: &["ls-reviewers"],
                role: Some(Reviewer),
                projects: &[("7", "reviewer")],
                ..BASE
            },
            Case {
                name: "SAML group names are case-sensitive",
                groups: &["LS-Administrators", "Ls-reviewers", "TEAM-A"],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "SAML group names are exact: no trimming of what the IdP sent",
                groups: &["ls-administrators ", " ls-reviewers"],
                role: Some(Deactivated),
                ..BASE
            },
            Case {
                name: "SAML exact name matches",
                groups: &["ls-administrators"],
                role: Some(Administrator),
                ..BASE
            },
            Case {
                name: "DN and SAML groups together",
                groups: &[
                    "ls-reviewers",
                    "cn=managers,ou=users,o=123abc,dc=example,dc=com",
                    "team-research",
                ],
                role: Some(Manager),
                workspaces: &["Research"],
                projects: &[("11", "manager"), ("13", "manager"), ("7", "manager")],
                ..BASE
            },
            Case {
                name: "duplicate groups give deduplicated, sorted workspaces",
                groups: &[
                    "team-research",
                    "team-a",
                    "team-a",
                    "ls-administrators",
                    ADMINS,
                ],
                role: Some(Administrator),
                workspaces: &["Research", "Staff", "Workspace 1", "Workspace 2"],
                projects: &[
                    ("11", "administrator"),
                    ("13", "administrator"),
                    ("42", "reviewer"),
                    ("7", "annotator"),
                ],
                ..BASE
            },
            Case {
                name: "owner by email with no groups, role management on",
                email: Some("heartex@heartex.net"),
                role: Some(Owner),
                ..BASE
            },
            Case {
                name: "owner email compared lowercased and trimmed",
                email: Some("  HEARTEX@heartex.NET "),
                groups: &["ls-annotators"],
                role: Some(Owner),
                projects: &[("11", "reviewer"), ("42", "owner")],
                ..BASE
            },
            Case {
                name: "owner is never locked out by the deactivated group",
                email: Some("heartex@heartex.net"),
                groups: &["ls-deactivated", "team-research"],
                role: Some(Owner),
                workspaces: &["Research"],
                projects: &[("13", "owner")],
                ..BASE
            },
            Case {
                name: "owner with role management off",
                managed: false,
                email: Some("heartex@heartex.net"),
                groups: &["ls-annotators"],
                role: Some(Owner),
                projects: &[("11", "reviewer"), ("42", "owner")],
                ..BASE
            },
            Case {
                name: "administrator groups never grant owner",
                email: Some("other@heartex.net"),
                groups: &["ls-administrators"],
                role: Some(Administrator),
                ..BASE
            },
            Case {
                name: "no email is never the owner",
                email: None,
                role: Some(Deactivated),
                ..BASE
            },
        ]
    }

    #[test]
    fn resolve_table() {
        let cases = cases();
        assert!(cases.len() >= 30, "only {} cases", cases.len());
        for case in &cases {
            let mapping = Mapping::compile(&fixture(case.default_role), case.managed)
                .unwrap_or_else(|e| panic!("{}: {e}", case.name));
            let groups: Vec<String> = case.groups.iter().map(|g| g.to_string()).collect();
            let got = mapping.resolve(case.email, &groups);
            let want = Resolved {
                role: case.role,
                workspaces: case.workspaces.iter().map(|w| w.to_string()).collect(),
                projects: case
                    .projects
                    .iter()
                    .map(|(p, r)| (p.to_string(), r.to_string()))
                    .collect(),
            };
            assert_eq!(got, want, "case: {}", case.name);
        }
    }

    fn compile_errors(value: serde_json::Value, managed: bool) -> Vec<String> {
        let raw: raw::Mapping = serde_json::from_value(value).expect("valid raw shape");
        match Mapping::compile_all(&raw, managed) {
            Ok(_) => Vec::new(),
            Err(errors) => errors.iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn configuration_errors_name_value_and_key() {
        let cases: &[(serde_json::Value, &[&str])] = &[
            (
                json!({ "roles": { "boss": ["x"] } }),
                &["unknown role \"boss\" in mapping.roles (expected administrator, manager, reviewer, annotator, not_activated, deactivated; owner is only granted by owner_email)"],
            ),
            (
                json!({ "roles": { "owner": ["cn=owners,dc=example,dc=com"] } }),
                &["role \"owner\" in mapping.roles.owner cannot be granted by a mapping; owner is only granted by owner_email"],
            ),
            (
                json!({ "default_role": "Owner" }),
                &["role \"owner\" in mapping.default_role cannot be granted by a mapping; owner is only granted by owner_email"],
            ),
            (
                json!({ "default_role": "guest" }),
                &["unknown role \"guest\" in mapping.default_role (expected administrator, manager, reviewer, annotator, not_activated, deactivated; owner is only granted by owner_email)"],
            ),
            (
                json!({ "roles": { "manager": ["a", "  "] } }),
                &["empty group in mapping.roles.manager[1] (expected a DN such as cn=team,dc=example,dc=com or a group name)"],
            ),
            (
                json!({ "workspaces": { "Workspace 1": [""] } }),
                &["empty group in mapping.workspaces.\"Workspace 1\"[0] (expected a DN such as cn=team,dc=example,dc=com or a group name)"],
            ),
            (
                json!({ "workspaces": { " ": ["team"] } }),
                &["empty workspace title in mapping.workspaces"],
            ),
            (
                json!({ "projects": [
                    { "project": "1", "group": "g", "role": "annotator" },
                    { "project": " ", "group": "", "role": "admin" }
                ] }),
                &[
                    "empty project in mapping.projects[1].project (expected a project id or title)",
                    "unknown project role \"admin\" in mapping.projects[1].role (expected annotator, reviewer, inherit)",
                    "empty group in mapping.projects[1].group (expected a DN such as cn=team,dc=example,dc=com or a group name)",
                ],
            ),
            (
                json!({ "owner_email": "heartex" }),
                &["invalid email \"heartex\" in mapping.owner_email"],
            ),
            (
                json!({ "owner_email": "a@b.c; d@e.f" }),
                &["invalid email \"a@b.c; d@e.f\" in mapping.owner_email"],
            ),
            (json!({ "owner_email": "  Owner@Example.com " }), &[]),
            (json!({ "default_role": "not-activated", "roles": { "Not-Activated": ["x"] } }), &[]),
        ];
        for (value, want) in cases {
            assert_eq!(compile_errors(value.clone(), true), *want, "{value}");
        }
    }

    #[test]
    fn compile_reports_the_first_error_with_its_key() {
        let raw: raw::Mapping = serde_json::from_value(json!({
            "roles": { "boss": ["x"], "owner": ["y"] }
        }))
        .expect("valid raw shape");
        let err = Mapping::compile(&raw, true).err();
        assert_eq!(err.as_ref().map(Error::key), Some("mapping.roles"));
        assert!(matches!(err, Some(Error::UnknownRole { .. })));
    }

    #[test]
    fn default_role_follows_role_management() {
        let empty = raw::Mapping::default();
        let managed = Mapping::compile(&empty, true).expect("empty mapping compiles");
        let manual = Mapping::compile(&empty, false).expect("empty mapping compiles");
        assert_eq!(managed.default_role(), Some(Role::Deactivated));
        assert_eq!(manual.default_role(), None);
        assert!(managed.is_empty() && manual.is_empty());
        assert_eq!(manual.resolve(Some("a@b.c"), &[]), Resolved::default());
        assert_eq!(managed.owner_email(), None);
    }

    #[test]
    fn mentions_only_mapped_groups() {
        let mapping = Mapping::compile(&fixture(""), true).expect("fixture compiles");
        assert!(!mapping.is_empty());
        assert_eq!(mapping.owner_email(), Some("heartex@heartex.net"));
        let cases: &[(&str, bool)] = &[
            ("CN=Admins,OU=Users,O=123abc,DC=example,DC=com", true),
            (
                "cn=team1,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com",
                true,
            ),
            ("team-a", true),
            ("team-research", true),
            ("ls-annotators", true),
            ("LS-annotators", false),
            ("cn=strangers,dc=example,dc=com", false),
            ("", false),
            ("cn=admins\\", false),
        ];
        for (group, want) in cases {
            assert_eq!(mapping.mentions(group), *want, "{group:?}");
        }
    }

    #[test]
    fn role_names_parse_and_print() {
        let cases: &[(&str, Option<Role>)] = &[
            ("owner", Some(Role::Owner)),
            ("Administrator", Some(Role::Administrator)),
            ("MANAGER", Some(Role::Manager)),
            (" reviewer ", Some(Role::Reviewer)),
            ("annotator", Some(Role::Annotator)),
            ("not_activated", Some(Role::NotActivated)),
            ("Not-Activated", Some(Role::NotActivated)),
            ("deactivated", Some(Role::Deactivated)),
            ("admin", None),
            ("notactivated", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(Role::parse(s), *want, "{s:?}");
        }
        for role in Role::EVERY {
            assert_eq!(Role::parse(role.as_str()), Some(role));
            assert_eq!(role.to_string(), role.as_str());
            let json = serde_json::to_string(&role).expect("serializes");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
        }
        assert!(Role::Deactivated > Role::Owner && Role::Owner > Role::Administrator);
        assert!(Role::Administrator > Role::Manager && Role::Manager > Role::Reviewer);
        assert!(Role::Reviewer > Role::Annotator && Role::Annotator > Role::NotActivated);
        for (s, want) in [
            ("annotator", Some(ProjectRole::Annotator)),
            ("Reviewer", Some(ProjectRole::Reviewer)),
            ("INHERIT", Some(ProjectRole::Inherit)),
            ("manager", None),
        ] {
            assert_eq!(ProjectRole::parse(s), want, "{s:?}");
            if let Some(p) = want {
                assert_eq!(ProjectRole::parse(p.as_str()), Some(p));
            }
        }
    }

    #[test]
    fn group_refs_are_dns_or_plain_names() {
        let cases: &[(&str, GroupRef)] = &[
            (
                ADMINS,
                GroupRef::Dn("cn=admins,ou=users,o=123abc,dc=example,dc=com".into()),
            ),
            ("  CN=A , DC=B ", GroupRef::Dn("cn=a,dc=b".into())),
            ("cn=a\\ ", GroupRef::Dn("cn=a\\ ".into())),
            (
                "ls-administrators",
                GroupRef::Name("ls-administrators".into()),
            ),
            ("  Team A  ", GroupRef::Name("Team A".into())),
            ("cn=broken\\", GroupRef::Name("cn=broken\\".into())),
            ("", GroupRef::Name(String::new())),
        ];
        for (s, want) in cases {
            assert_eq!(GroupRef::parse(s), *want, "{s:?}");
        }
        let admins = GroupRef::parse(ADMINS);
        assert!(admins.matches("CN=Admins, OU=Users,O=123abc,DC=example,DC=com"));
        assert!(!admins.matches("cn=admins"));
        let saml = GroupRef::parse("ls-admins");
        assert!(saml.matches("ls-admins"));
        assert!(!saml.matches("LS-admins"));
    }

    #[test]
    fn mapping_is_send_and_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Mapping>();
        assert_send_sync::<Resolved>();
    }
}
