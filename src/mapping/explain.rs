//! Why a user gets what [`Mapping::resolve`] gives: the grant itself (from
//! `resolve`, the function sign-in calls, never a copy of it) and every
//! mapping row that named one of the user's groups, marked with whether it
//! decided part of the result.
//!
//! Must not: do I/O or know about HTTP (the SSO settings page renders it).

use super::{Mapping, ProjectRole, Resolved, Role};

/// What one mapping row grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grant {
    Role(Role),
    Workspace(String),
    Project(String, ProjectRole),
}

/// One row that named one of the user's groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// The group as the user has it.
    pub group: String,
    /// The configuration key of the row, e.g. `mapping.roles.reviewer[1]`.
    pub key: String,
    pub grant: Grant,
    /// Part of the result comes from this row (a lower role, or a project
    /// value beaten by a higher one, did not decide).
    pub decided: bool,
}

/// Where the organization role came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleFrom {
    /// `mapping.owner_email` named the user.
    OwnerEmail,
    /// The highest role of the user's mapped groups.
    Groups,
    /// No role group matched: `mapping.default_role`.
    Default,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Explanation {
    pub resolved: Resolved,
    pub role_from: RoleFrom,
    pub rows: Vec<Row>,
    /// The user's groups no row names.
    pub unmatched: Vec<String>,
}

impl Mapping {
    /// [`Mapping::resolve`] with the reasons.
    pub fn explain(&self, email: Option<&str>, groups: &[String]) -> Explanation {
        let resolved = self.resolve(email, groups);
        let mut rows = Vec::new();
        let mut unmatched = Vec::new();
        let mut group_role = None;
        for group in groups {
            let Some(grants) = self.lookup(group) else {
                unmatched.push(group.clone());
                continue;
            };
            group_role = group_role.max(grants.role);
            for (key, grant) in &grants.rows {
                rows.push(Row {
                    group: group.clone(),
                    key: key.clone(),
                    grant: grant.clone(),
                    decided: false,
                });
            }
        }
        let role_from = if self.is_owner(email) {
            RoleFrom::OwnerEmail
        } else if group_role.is_some() {
            RoleFrom::Groups
        } else {
            RoleFrom::Default
        };
        for row in &mut rows {
            row.decided = match &row.grant {
                Grant::Role(r) => role_from == RoleFrom::Groups && resolved.role == Some(*r),
                Grant::Workspace(t) => resolved.workspaces.contains(t),
                Grant::Project(p, pr) => {
                    let value = match pr {
                        ProjectRole::Annotator => Some(Role::Annotator),
                        ProjectRole::Reviewer => Some(Role::Reviewer),
                        ProjectRole::Inherit => resolved.role.filter(|r| r.is_active()),
                    };
                    value.is_some_and(|v| {
                        resolved.projects.get(p).map(String::as_str) == Some(v.as_str())
                    })
                }
            };
        }
        Explanation {
            resolved,
            role_from,
            rows,
            unmatched,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::raw;
    use serde_json::json;

    fn mapping() -> Mapping {
        let value = json!({
            "owner_email": "boss@example.com",
            "roles": {
                "administrator": ["ls-admins"],
                "reviewer": ["ls-reviewers", "cn=rev,dc=example,dc=com"],
                "annotator": ["ls-annotators"],
                "deactivated": ["gone"]
            },
            "workspaces": { "Team A": ["team-a", "ls-reviewers"], "Team B": ["team-b"] },
            "projects": [
                { "project": "42", "group": "ls-annotators", "role": "inherit" },
                { "project": "42", "group": "team-a", "role": "reviewer" },
                { "project": "7", "group": "team-b", "role": "annotator" }
            ]
        });
        let raw: raw::Mapping = serde_json::from_value(value).expect("raw mapping");
        Mapping::compile(&raw, true).expect("compiles")
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    type Case = (
        Option<&'static str>,
        &'static [&'static str],
        RoleFrom,
        &'static [(&'static str, bool)],
        &'static [&'static str],
    );

    #[test]
    fn every_row_that_names_a_group_is_listed_with_whether_it_decided() {
        let table: &[Case] = &[
            // Two role groups: the higher decides, the lower is listed.
            (
                None,
                &["ls-annotators", "ls-reviewers", "stranger"],
                RoleFrom::Groups,
                &[
                    ("mapping.roles.annotator[0]", false),
                    ("mapping.projects[0]", true),
                    ("mapping.roles.reviewer[0]", true),
                    ("mapping.workspaces.\"Team A\"[1]", true),
                ],
                &["stranger"],
            ),
            // A DN group, matched normalized.
            (
                None,
                &["CN=Rev, DC=Example,DC=com"],
                RoleFrom::Groups,
                &[("mapping.roles.reviewer[1]", true)],
                &[],
            ),
            // Project 42: inherit (annotator) loses to the reviewer rule.
            (
                None,
                &["ls-annotators", "team-a"],
                RoleFrom::Groups,
                &[
                    ("mapping.roles.annotator[0]", true),
                    ("mapping.projects[0]", false),
                    ("mapping.workspaces.\"Team A\"[0]", true),
                    ("mapping.projects[1]", true),
                ],
                &[],
            ),
            // No role group: the default role (deactivated) decides, so no
            // workspace or project does.
            (
                None,
                &["team-b"],
                RoleFrom::Default,
                &[
                    ("mapping.workspaces.\"Team B\"[0]", false),
                    ("mapping.projects[2]", false),
                ],
                &[],
            ),
            // The owner's email beats the groups.
            (
                Some("Boss@example.com"),
                &["ls-annotators"],
                RoleFrom::OwnerEmail,
                &[
                    ("mapping.roles.annotator[0]", false),
                    ("mapping.projects[0]", true),
                ],
                &[],
            ),
        ];
        let m = mapping();
        for (email, groups, from, want_rows, want_unmatched) in table {
            let groups = s(groups);
            let e = m.explain(*email, &groups);
            assert_eq!(e.resolved, m.resolve(*email, &groups), "{groups:?}");
            assert_eq!(e.role_from, *from, "{groups:?}");
            let got: Vec<(&str, bool)> =
                e.rows.iter().map(|r| (r.key.as_str(), r.decided)).collect();
            assert_eq!(got, *want_rows, "{groups:?}");
            assert_eq!(e.unmatched, s(want_unmatched), "{groups:?}");
        }
    }
}
