//! Property tests of the pure modules (issue 10): mapping precedence, path
//! normalization, header stripping, DN escaping and the session cookie.
//! Case counts are kept small so the file runs in seconds in debug; the
//! fuzz targets in `fuzz/` explore the same properties for longer.

use authgate::config::raw;
use authgate::mapping::dn;
use authgate::mapping::{Mapping, Resolved, Role};
use authgate::request::headers::{strip_protected, Protected};
use authgate::request::path::normalize;
use authgate::session::{Keys, Sealed, SessionCookie};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::sample::select;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

// ---------------------------------------------------------------- mapping

const OWNER: &str = "Owner@Example.com";
const DEACTIVATED_DN: &str = "cn=deactivated,ou=groups,dc=example,dc=com";
const DEACTIVATED_NAME: &str = "ls-deactivated";

/// A mapping with every role, DN and plain-name groups, workspaces and
/// project rules.
fn mapping(managed: bool, default_role: &str) -> Mapping {
    let value = serde_json::json!({
        "owner_email": OWNER,
        "default_role": default_role,
        "roles": {
            "administrator": ["cn=admins,ou=groups,dc=example,dc=com", "ls-admins"],
            "manager": ["cn=managers,ou=groups,dc=example,dc=com"],
            "reviewer": ["ls-reviewers"],
            "annotator": ["cn=annotators,ou=groups,dc=example,dc=com", "ls-annotators"],
            "not_activated": ["cn=pending,ou=groups,dc=example,dc=com"],
            "deactivated": [DEACTIVATED_DN, DEACTIVATED_NAME]
        },
        "workspaces": {
            "Alpha": ["team-a", "cn=admins,ou=groups,dc=example,dc=com"],
            "Beta": ["team-b", "ls-reviewers"]
        },
        "projects": [
            { "project": "1", "group": "team-a", "role": "reviewer" },
            { "project": "1", "group": "ls-annotators", "role": "inherit" },
            { "project": "2", "group": "team-b", "role": "annotator" },
            { "project": "2", "group": "cn=managers,ou=groups,dc=example,dc=com", "role": "inherit" },
            { "project": "3", "group": "cn=pending,ou=groups,dc=example,dc=com", "role": "inherit" }
        ]
    });
    let raw: raw::Mapping = serde_json::from_value(value).expect("the fixture is a [mapping]");
    Mapping::compile(&raw, managed).expect("the fixture compiles")
}

/// Groups a directory or IdP may return: mapped ones in several spellings,
/// and unmapped ones.
const GROUPS: &[&str] = &[
    "cn=admins,ou=groups,dc=example,dc=com",
    "CN=Admins, OU=Groups, DC=Example, DC=Com",
    "ls-admins",
    "cn=managers,ou=groups,dc=example,dc=com",
    "ls-reviewers",
    "cn=annotators,ou=groups,dc=example,dc=com",
    "ls-annotators",
    "cn=pending,ou=groups,dc=example,dc=com",
    "team-a",
    "team-b",
    "cn=team-a,ou=groups,dc=example,dc=com",
    "LS-ADMINS",
    "cn=others,dc=example,dc=com",
];

const UNMAPPED: &[&str] = &[
    "unmapped",
    "cn=unmapped,ou=groups,dc=example,dc=com",
    "cn=admins,ou=other,dc=example,dc=com",
    "Team-A",
    "",
    "cn=",
];

fn emails() -> impl Strategy<Value = Option<String>> {
    prop_oneof![
        Just(None),
        Just(Some(OWNER.to_owned())),
        Just(Some(" owner@example.COM ".to_owned())),
        Just(Some("someone@example.com".to_owned())),
    ]
}

fn mappings() -> impl Strategy<Value = Mapping> {
    (
        any::<bool>(),
        select(vec!["", "annotator", "not_activated", "reviewer"]),
    )
        .prop_map(|(managed, default_role)| mapping(managed, default_role))
}

fn groups() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(select(GROUPS).prop_map(str::to_owned), 0..6)
}

fn is_owner(email: &Option<String>) -> bool {
    email
        .as_deref()
        .is_some_and(|e| e.trim().eq_ignore_ascii_case(OWNER))
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn the_order_of_groups_never_changes_the_result(
        m in mappings(),
        email in emails(),
        (groups, shuffled) in groups().prop_flat_map(|g| (Just(g.clone()), Just(g).prop_shuffle())),
    ) {
        prop_assert_eq!(
            m.resolve(email.as_deref(), &groups),
            m.resolve(email.as_deref(), &shuffled)
        );
    }

    #[test]
    fn a_deactivated_group_always_deactivates_except_the_owner(
        m in mappings(),
        email in emails(),
        mut groups in groups(),
        at in any::<prop::sample::Index>(),
        deactivated in select(vec![
            DEACTIVATED_DN,
            DEACTIVATED_NAME,
            "CN=Deactivated,OU=Groups,DC=Example,DC=Com",
        ]),
    ) {
        groups.insert(at.index(groups.len() + 1), deactivated.to_owned());
        let got = m.resolve(email.as_deref(), &groups);
        if is_owner(&email) {
            prop_assert_eq!(got.role, Some(Role::Owner));
        } else {
            prop_assert_eq!(
                got,
                Resolved { role: Some(Role::Deactivated), ..Resolved::default() }
            );
        }
    }

    #[test]
    fn an_unmapped_group_changes_nothing(
        m in mappings(),
        email in emails(),
        mut groups in groups(),
        at in any::<prop::sample::Index>(),
        extra in select(UNMAPPED),
    ) {
        let before = m.resolve(email.as_deref(), &groups);
        groups.insert(at.index(groups.len() + 1), extra.to_owned());
        prop_assert_eq!(m.resolve(email.as_deref(), &groups), before);
    }

    #[test]
    fn the_owner_is_always_owner(m in mappings(), groups in groups()) {
        prop_assert_eq!(m.resolve(Some(OWNER), &groups).role, Some(Role::Owner));
    }
}

// ---------------------------------------------------------- normalization

/// Paths built from the pieces that make normalization interesting.
fn raw_paths() -> impl Strategy<Value = String> {
    let piece = select(vec![
        "/", "/", "/", ".", "..", "%2e", "%2E", "a", "B", "api", "%41", "%7e", "%2F", "%5c", "%25",
        "%3A", ";", ";x=1", "~", "-", "%", "%g", "é", " ", "%20", "?", "\\", "@", "+", "%C3%A9",
        "%c3%a9", "%00", "\t",
    ]);
    prop_oneof![
        prop::collection::vec(piece, 0..12).prop_map(|p| format!("/{}", p.concat())),
        "/[a-zA-Z0-9./%;~_-]{0,24}",
        any::<String>(),
    ]
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn normalize_is_idempotent(p in raw_paths()) {
        if let Ok(once) = normalize(&p) {
            prop_assert_eq!(normalize(&once), Ok(once.clone()), "input {:?}", p);
        }
    }

    #[test]
    fn normalized_paths_have_no_dot_or_empty_segments(p in raw_paths()) {
        if let Ok(out) = normalize(&p) {
            prop_assert!(out.starts_with('/'), "{:?} -> {:?}", p, out);
            let inner = out.strip_suffix('/').unwrap_or(&out);
            // Every segment but a trailing empty one is non-empty and not a dot segment.
            for seg in inner.split('/').skip(1) {
                prop_assert!(
                    !seg.is_empty() || inner.is_empty(),
                    "empty segment: {:?} -> {:?}", p, out
                );
                prop_assert!(seg != "." && seg != "..", "dot segment: {:?} -> {:?}", p, out);
            }
            prop_assert!(!out.to_ascii_uppercase().contains("%2F"), "{:?} -> {:?}", p, out);
        }
    }
}

// ------------------------------------------------------- header stripping

const PROTECTED: &[&str] = &[
    "X-Identity-Assertion",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Forwarded-Role",
    "X-Forwarded-For",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
];

const OTHERS: &[&str] = &[
    "accept",
    "cookie",
    "x-forwarded-user-agent",
    "x-forwarded",
    "x-identity",
    "x-request-id",
    "forwarded-user",
];

fn canonical(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// One spelling of a protected name: each letter in either case, each `-`
/// as `-` or `_`.
fn spelling() -> impl Strategy<Value = String> {
    (
        select(PROTECTED),
        prop::collection::vec(any::<(bool, bool)>(), 32),
    )
        .prop_map(|(name, flips)| {
            name.chars()
                .zip(flips.iter().cycle())
                .map(|(c, &(upper, underscore))| match c {
                    '-' if underscore => '_',
                    c if upper => c.to_ascii_uppercase(),
                    c => c.to_ascii_lowercase(),
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn no_spelling_of_a_protected_header_survives(
        spoofed in prop::collection::vec((spelling(), 1..4usize), 1..8),
        kept in prop::collection::vec(select(OTHERS), 0..4),
    ) {
        let protected = Protected::new(PROTECTED.iter().copied()).expect("valid names");
        let mut headers = HeaderMap::new();
        for name in &kept {
            headers.append(*name, HeaderValue::from_static("kept"));
        }
        for (name, repeats) in &spoofed {
            let name = HeaderName::from_bytes(name.as_bytes()).expect("a token");
            for _ in 0..*repeats {
                headers.append(name.clone(), HeaderValue::from_static("spoofed"));
            }
        }
        strip_protected(&mut headers, &protected);
        let wanted: Vec<String> = PROTECTED.iter().map(|p| canonical(p)).collect();
        for (name, value) in &headers {
            prop_assert!(!wanted.contains(&canonical(name.as_str())), "{} survived", name);
            prop_assert_eq!(value, "kept");
        }
        for name in &kept {
            prop_assert!(headers.contains_key(*name), "{} was removed", name);
        }
    }
}

// ------------------------------------------------------------ DN escaping

proptest! {
    #![proptest_config(config(1000))]

    #[test]
    fn escaped_dn_values_parse_back_unchanged(
        value in prop_oneof![
            any::<String>(),
            "[ #,+\"\\\\<>;=\t\r\n\0a-zé]{0,12}",
        ],
    ) {
        prop_assume!(!value.is_empty());
        let escaped = dn::escape_value(&value);
        for (text, ava) in [
            (format!("cn={escaped}"), 0),
            (format!(" uid = {escaped} , ou=users,dc=example,dc=com"), 0),
            (format!("cn=a+uid={escaped};o=x"), 1),
        ] {
            let parsed = dn::parse(&text);
            prop_assert!(parsed.is_ok(), "{:?}: {:?}", text, parsed);
            let parsed = parsed.expect("checked");
            let got = parsed.rdns().first().and_then(|r| r.avas().get(ava)).map(|a| a.value().clone());
            prop_assert_eq!(got, Some(dn::Value::Text(value.clone())), "{:?}", text);
        }
    }

    #[test]
    fn dn_normalization_is_idempotent(value in "[ a-zA-Z,=+;\\\\#\"]{0,24}") {
        if let Ok(n) = dn::normalize(&value) {
            prop_assert_eq!(dn::normalize(&n), Ok(n.clone()), "{:?}", value);
        }
    }
}

// ---------------------------------------------------------- session cookie

fn keys(secrets: &[&[u8]]) -> Keys {
    let secrets: Vec<Vec<u8>> = secrets.iter().map(|s| s.to_vec()).collect();
    Keys::from_secrets(&secrets).expect("long secrets")
}

const OLD: &[u8] = b"the old session secret, at least 32 bytes";
const NEW: &[u8] = b"the new session secret, at least 32 bytes";

fn seal(keys: &Keys, sid: &str, issued: u64) -> String {
    let c = SessionCookie {
        sid: sid.to_string(),
    };
    Sealed::seal(keys, &c, issued).into_string()
}

/// The session id sealed in `text`, whatever its age.
fn open(keys: &Keys, text: &str) -> Option<String> {
    Sealed::<SessionCookie>::open_within(keys, text, u64::MAX - 1, std::time::Duration::MAX)
        .map(|c| c.sid)
}

/// Whether `text` opens at `now` with a one-second lifetime: only when it
/// was sealed at `now` (or up to a minute later).
fn opens_at(keys: &Keys, text: &str, now: u64) -> bool {
    Sealed::<SessionCookie>::open_within(keys, text, now, std::time::Duration::from_secs(1))
        .is_some()
}

proptest! {
    #![proptest_config(config(256))]

    #[test]
    fn sealed_cookies_open_to_what_was_sealed(sid in "\\PC{1,64}", issued in any::<u64>()) {
        let ring = keys(&[NEW, OLD]);
        let sealed = seal(&ring, &sid, issued);
        prop_assert_eq!(open(&ring, &sealed), Some(sid.clone()));
        // The time it was sealed travels with it.
        prop_assert!(opens_at(&ring, &sealed, issued));
        if let Some(later) = issued.checked_add(1) {
            prop_assert!(!opens_at(&ring, &sealed, later));
        }
        // Rotation: a cookie sealed with the old key still opens.
        let old = seal(&keys(&[OLD]), &sid, issued);
        prop_assert_eq!(open(&ring, &old), Some(sid.clone()));
        prop_assert!(opens_at(&ring, &old, issued));
        prop_assert_eq!(open(&keys(&[NEW]), &old), None);
    }

    #[test]
    fn any_single_flipped_bit_is_refused(
        sid in "[A-Za-z0-9_-]{1,48}",
        issued in any::<u64>(),
        bit in any::<prop::sample::Index>(),
    ) {
        let ring = keys(&[NEW, OLD]);
        let sealed = seal(&ring, &sid, issued);
        let mut raw = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        let i = bit.index(raw.len() * 8);
        raw[i / 8] ^= 1 << (i % 8);
        prop_assert_eq!(open(&ring, &URL_SAFE_NO_PAD.encode(&raw)), None, "bit {}", i);
    }

    #[test]
    fn random_values_never_open(value in prop_oneof!["[A-Za-z0-9_-]{0,120}", any::<String>()]) {
        prop_assert_eq!(open(&keys(&[NEW, OLD]), &value), None);
    }
}
