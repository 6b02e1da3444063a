//! The verified assertion's user: NameID → subject, attributes → email,
//! names and groups, looked up by the configured name first and then by the
//! built-in aliases of common IdPs (`saml::settings::aliases`).
//!
//! Names compare exactly (Name or FriendlyName); groups are collected from
//! every matching attribute, in order, without duplicates (Entra ID sends
//! both `groups` and `role` claims).
//!
//! A "groups overage" claim refuses the sign-in: Entra ID sends it instead
//! of the groups when a user is in more groups than fit a SAML token (150),
//! and a sign-in without them would silently get the default role (or only
//! what the app-role claims grant). Okta has no such claim for SAML: its
//! group attribute statements send every matching group.

use samael::schema::Assertion;

use super::Error;
use crate::identity::{Method, Principal};
use crate::saml::settings::Settings;

/// Builds the principal, refusing a missing email or a domain outside
/// `saml.allowed_email_domains`.
pub fn principal(a: &Assertion, subject: String, settings: &Settings) -> Result<Principal, Error> {
    if let Some(claim) = overage_claim(a) {
        return Err(Error::GroupsOverage { claim, subject });
    }
    let names = &settings.attributes;
    let email = first(a, &names.email).ok_or_else(|| {
        Error::MissingEmail(
            names
                .email
                .first()
                .cloned()
                .unwrap_or_else(|| "Email".into()),
        )
    })?;
    if !settings.allowed_email_domains.is_empty() {
        let domain = email
            .rsplit_once('@')
            .map(|(_, d)| d.to_ascii_lowercase())
            .unwrap_or_default();
        if !settings.allowed_email_domains.contains(&domain) {
            return Err(Error::EmailDomain(domain));
        }
    }
    let session_index = a
        .authn_statements
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .find_map(|s| s.session_index.clone());
    Ok(Principal {
        subject,
        email: Some(email.clone()),
        name: first(a, &names.name),
        given_name: first(a, &names.first_name),
        family_name: first(a, &names.last_name),
        preferred_username: first(a, &names.username).or(Some(email)),
        groups: all(a, &names.groups),
        method: Method::Saml,
        session_index,
        saml_idp: None,
    })
}

/// Attribute names that announce a group list left out of the token
/// ("groups overage"): Entra ID's link to the user's groups in Microsoft
/// Graph (SAML token claims reference, "Groups overage indicator").
pub const OVERAGE_CLAIMS: &[&str] = &["http://schemas.microsoft.com/claims/groups.link"];

/// The overage claim the assertion carries, if any (names compared
/// without surrounding spaces and case: Microsoft's own example spells it
/// with a leading space).
fn overage_claim(a: &Assertion) -> Option<String> {
    attributes(a).find_map(|at| {
        [at.name.as_deref(), at.friendly_name.as_deref()]
            .into_iter()
            .flatten()
            .map(str::trim)
            .find(|n| OVERAGE_CLAIMS.iter().any(|o| o.eq_ignore_ascii_case(n)))
            .map(str::to_string)
    })
}

fn attributes(a: &Assertion) -> impl Iterator<Item = &samael::attribute::Attribute> {
    a.attribute_statements
        .as_deref()
        .unwrap_or(&[])
        .iter()
        .flat_map(|s| s.attributes.iter())
}

fn is_named(attr: &samael::attribute::Attribute, name: &str) -> bool {
    attr.name.as_deref() == Some(name) || attr.friendly_name.as_deref() == Some(name)
}

fn values(attr: &samael::attribute::Attribute) -> impl Iterator<Item = String> + '_ {
    attr.values
        .iter()
        .filter_map(|v| v.value.as_deref())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
}

/// The first non-empty value of the first name (in `names` order) present.
fn first(a: &Assertion, names: &[String]) -> Option<String> {
    names.iter().find_map(|n| {
        attributes(a)
            .filter(|at| is_named(at, n))
            .find_map(|at| values(at).next())
    })
}

/// Every value of every attribute named in `names`, deduplicated.
fn all(a: &Assertion, names: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for n in names {
        for at in attributes(a).filter(|at| is_named(at, n)) {
            for v in values(at) {
                if !out.contains(&v) {
                    out.push(v);
                }
            }
        }
    }
    out
}
