//! The organization role: one type for what the mapping grants, what the
//! identity asserts (JWT `role` claim, role header), what the role table
//! requires and what the pages show.
//!
//! Parsed once at the edge: [`Role::parse`] for configuration and forms
//! (lenient spelling), [`Role::from_claim`] for values authgate wrote itself
//! or a role table names (exact spelling). Everywhere else a `Role` is
//! compared and matched as a value; [`Role::as_str`] is the one spelling on
//! the wire (claims, headers, audit fields, stored sessions).
//!
//! Must not: import any other authgate module (it sits below `mapping` and
//! `policy`, which both use it).

use std::fmt;

use serde::{Deserialize, Serialize};

/// An organization role. Declared in precedence order, so the derived `Ord`
/// answers "which role wins" for a user in several mapped groups:
/// not_activated < annotator < reviewer < manager < administrator, and
/// `Deactivated` last because it beats everything a group can grant.
/// `Owner` is never granted by a group (see `mapping::Mapping::resolve` for
/// how it is applied); its place in the order only matters for project
/// values and the role table, where it ranks above administrator.
///
/// Whether a role is *enough* for something is not `Ord` alone:
/// `NotActivated` and `Deactivated` grant nothing ([`Role::is_active`]), and
/// `Deactivated` sorts above every role.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    NotActivated,
    Annotator,
    Reviewer,
    Manager,
    Administrator,
    Owner,
    Deactivated,
}

impl Role {
    /// The roles that grant access, lowest first (the hierarchy a role
    /// table's rows require); not_activated and deactivated grant none.
    pub const ALL: [Role; 5] = [
        Role::Annotator,
        Role::Reviewer,
        Role::Manager,
        Role::Administrator,
        Role::Owner,
    ];

    /// Every role, in declaration (precedence) order.
    pub const EVERY: [Role; 7] = [
        Role::NotActivated,
        Role::Annotator,
        Role::Reviewer,
        Role::Manager,
        Role::Administrator,
        Role::Owner,
        Role::Deactivated,
    ];

    /// The claim's spelling (JWT `role`, the role header, audit `role`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::NotActivated => "not_activated",
            Role::Annotator => "annotator",
            Role::Reviewer => "reviewer",
            Role::Manager => "manager",
            Role::Administrator => "administrator",
            Role::Owner => "owner",
            Role::Deactivated => "deactivated",
        }
    }

    /// A role name as an operator writes it (configuration, the SSO page's
    /// forms): case-insensitive, surrounding spaces ignored; `not-activated`
    /// is accepted for `not_activated`.
    pub fn parse(s: &str) -> Option<Role> {
        match s.trim().to_ascii_lowercase().as_str() {
            "not-activated" => Some(Role::NotActivated),
            s => Role::from_claim(s),
        }
    }

    /// A role in the claim's exact spelling ([`Role::as_str`]), as authgate
    /// writes it and a role table names it; anything else is no role.
    pub fn from_claim(s: &str) -> Option<Role> {
        Role::EVERY.into_iter().find(|r| r.as_str() == s)
    }

    /// Annotator or above: a member the upstream lets in (one of
    /// [`Role::ALL`]); not_activated and deactivated are not.
    pub fn is_active(self) -> bool {
        Role::ALL.contains(&self)
    }

    /// Owner or administrator: who may use authgate's own admin pages.
    pub fn is_admin(self) -> bool {
        matches!(self, Role::Owner | Role::Administrator)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_claim_spelling_is_exact_and_round_trips() {
        for role in Role::EVERY {
            assert_eq!(Role::from_claim(role.as_str()), Some(role));
            let json = serde_json::to_string(&role).expect("serializes");
            assert_eq!(json, format!("\"{}\"", role.as_str()));
            assert_eq!(serde_json::from_str::<Role>(&json).expect("parses"), role);
        }
        for not in [
            "Administrator",
            "admin",
            " owner",
            "not-activated",
            "",
            "OWNER",
        ] {
            assert_eq!(Role::from_claim(not), None, "{not:?}");
        }
        assert!(serde_json::from_str::<Role>("\"Owner\"").is_err());
        assert_eq!(Role::parse("Not-Activated"), Some(Role::NotActivated));
        assert_eq!(Role::parse(" OWNER "), Some(Role::Owner));
    }

    #[test]
    fn only_annotator_and_above_are_active() {
        assert_eq!(
            Role::EVERY
                .into_iter()
                .filter(|r| r.is_active())
                .collect::<Vec<_>>(),
            Role::ALL
        );
        assert!(Role::ALL.windows(2).all(|w| w[0] < w[1]), "lowest first");
        assert_eq!(
            Role::EVERY
                .into_iter()
                .filter(|r| r.is_admin())
                .collect::<Vec<_>>(),
            [Role::Administrator, Role::Owner]
        );
    }
}
