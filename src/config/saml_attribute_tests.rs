//! `saml::attributes::principal` with settings as `config::saml::check`
//! builds them from `[saml]` (every IdP's attribute spelling, aliases,
//! overage claims). Kept beside the config layer, which the SAML module
//! itself does not import.

use samael::schema::Assertion;

use crate::identity::Method;
use crate::saml::attributes::principal;
use crate::saml::{Error, Settings};

fn settings(extra: impl FnOnce(&mut crate::config::raw::Saml)) -> Settings {
    let mut raw = crate::config::raw::Saml {
        enabled: true,
        idp_metadata_url: "https://idp.example.com/metadata".into(),
        ..Default::default()
    };
    extra(&mut raw);
    let mut problems = Vec::new();
    let s = super::check(&raw, "https://sp.example.com", "/_auth", &mut |k, m| {
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
    assert!(matches!(principal(&a, "s".into(), &s), Err(Error::MissingEmail(n)) if n == "Email"));
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
