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

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(extra: impl FnOnce(&mut crate::config::raw::Saml)) -> Settings {
        let mut raw = crate::config::raw::Saml {
            enabled: true,
            idp_metadata_url: "https://idp.example.com/metadata".into(),
            ..Default::default()
        };
        extra(&mut raw);
        let mut problems = Vec::new();
        let s =
            crate::config::saml::check(&raw, "https://sp.example.com", "/_auth", &mut |k, m| {
                problems.push(format!("{k}: {m}"))
            });
        assert!(problems.is_empty(), "{problems:?}");
        s.expect("enabled")
    }

    fn assertion(attrs: &[(&str, &[&str])]) -> Assertion {
        let mut xml = String::from(
            r#"<saml:Assertion xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a" IssueInstant="2024-01-01T00:00:00Z" Version="2.0"><saml:Issuer>idp</saml:Issuer><saml:AuthnStatement AuthnInstant="2024-01-01T00:00:00Z" SessionIndex="_s1"/><saml:AttributeStatement>"#,
        );
        for (name, values) in attrs {
            xml.push_str(&format!("<saml:Attribute Name=\"{name}\">"));
            for v in *values {
                xml.push_str(&format!("<saml:AttributeValue>{v}</saml:AttributeValue>"));
            }
            xml.push_str("</saml:Attribute>");
        }
        xml.push_str("</saml:AttributeStatement></saml:Assertion>");
        xml.parse().expect("assertion")
    }

    /// (attribute name, values)
    type Attrs<'a> = &'a [(&'a str, &'a [&'a str])];

    #[test]
    fn every_idp_style_is_understood() {
        let s = settings(|_| {});
        let table: &[(&str, Attrs)] = &[
            (
                "seed documentation",
                &[
                    ("Email", &["a@x.com"]),
                    ("FirstName", &["A"]),
                    ("LastName", &["B"]),
                    ("Groups", &["g1", "g2"]),
                ],
            ),
            (
                "Okta",
                &[
                    ("email", &["a@x.com"]),
                    ("firstName", &["A"]),
                    ("lastName", &["B"]),
                    ("groups", &["g1", "g2"]),
                ],
            ),
            (
                "OneLogin",
                &[
                    ("User.email", &["a@x.com"]),
                    ("User.FirstName", &["A"]),
                    ("User.LastName", &["B"]),
                    ("memberOf", &["g1", "g2"]),
                ],
            ),
            (
                "Ping",
                &[
                    ("mail", &["a@x.com"]),
                    ("givenName", &["A"]),
                    ("sn", &["B"]),
                    ("isMemberOf", &["g1", "g2"]),
                ],
            ),
            (
                "Entra ID / AD FS",
                &[
                    (
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
                        &["a@x.com"],
                    ),
                    (
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
                        &["A"],
                    ),
                    (
                        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
                        &["B"],
                    ),
                    (
                        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
                        &["g1"],
                    ),
                    (
                        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
                        &["g2", "g1"],
                    ),
                ],
            ),
        ];
        for (style, attrs) in table {
            let p = principal(&assertion(attrs), "sub".into(), &s).expect(style);
            assert_eq!(p.email.as_deref(), Some("a@x.com"), "{style}");
            assert_eq!(p.given_name.as_deref(), Some("A"), "{style}");
            assert_eq!(p.family_name.as_deref(), Some("B"), "{style}");
            assert_eq!(
                p.groups,
                vec!["g1".to_string(), "g2".to_string()],
                "{style}"
            );
            assert_eq!(p.session_index.as_deref(), Some("_s1"), "{style}");
            assert_eq!(p.method, Method::Saml);
        }
    }

    #[test]
    fn the_configured_name_wins_and_aliases_can_be_turned_off() {
        let s = settings(|r| r.attr_email = "corpMail".into());
        let a = assertion(&[("email", &["alias@x.com"]), ("corpMail", &["conf@x.com"])]);
        assert_eq!(
            principal(&a, "s".into(), &s).expect("ok").email.as_deref(),
            Some("conf@x.com")
        );
        let s = settings(|r| r.builtin_attribute_aliases = false);
        let a = assertion(&[("email", &["alias@x.com"])]);
        assert!(
            matches!(principal(&a, "s".into(), &s), Err(Error::MissingEmail(n)) if n == "Email")
        );
    }

    #[test]
    fn a_groups_overage_claim_refuses_whatever_else_is_sent() {
        let s = settings(|_| {});
        let link = "http://schemas.microsoft.com/claims/groups.link";
        let graph = "https://graph.windows.net/t/users/u/getMemberObjects";
        let role = "http://schemas.microsoft.com/ws/2008/06/identity/claims/role";
        let table: &[(&str, Attrs)] = &[
            (
                "the link alone",
                &[("Email", &["a@x.com"]), (link, &[graph])],
            ),
            (
                "the link beside app roles",
                &[
                    ("Email", &["a@x.com"]),
                    (role, &["ls-annotators"]),
                    (link, &[graph]),
                ],
            ),
            (
                "the link beside a groups claim",
                &[
                    ("Email", &["a@x.com"]),
                    ("Groups", &["g1"]),
                    (link, &[graph]),
                ],
            ),
            (
                "spaces and another case",
                &[
                    ("Email", &["a@x.com"]),
                    (" HTTP://schemas.microsoft.com/claims/Groups.Link", &[graph]),
                ],
            ),
            ("no email either", &[(link, &[graph])]),
        ];
        for (case, attrs) in table {
            match principal(&assertion(attrs), "sub".into(), &s) {
                Err(Error::GroupsOverage { claim, subject }) => {
                    assert!(claim.eq_ignore_ascii_case(link), "{case}: {claim}");
                    assert_eq!(subject, "sub", "{case}");
                }
                other => panic!("{case}: {other:?}"),
            }
        }
        let look_alike = assertion(&[
            ("Email", &["a@x.com"]),
            ("http://schemas.microsoft.com/claims/groups", &["g1"]),
        ]);
        assert!(principal(&look_alike, "s".into(), &s).is_ok());
    }

    #[test]
    fn email_domains_compare_case_insensitively() {
        let s = settings(|r| r.allowed_email_domains = vec!["@Example.COM".into()]);
        let ok = assertion(&[("Email", &["u@EXAMPLE.com"])]);
        assert!(principal(&ok, "s".into(), &s).is_ok());
        let bad = assertion(&[("Email", &["u@example.com.evil.org"])]);
        assert!(matches!(
            principal(&bad, "s".into(), &s),
            Err(Error::EmailDomain(_))
        ));
    }
}
