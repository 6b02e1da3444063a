//! `policy::RouteTable::decide` behind `request::path::normalize`: a path the
//! shipped table refuses (or sends to login, or intercepts) is decided the
//! same way in every spelling the normalizer maps to it — percent-encoded
//! unreserved characters, `./`, `x/../`, doubled slashes, case changes.
//! Arbitrary paths never panic either, and deciding is stable under a
//! second normalization.
#![no_main]

use std::collections::BTreeMap;
use std::sync::OnceLock;

use arbitrary::Arbitrary;
use authgate::policy::{Decision, Request, RouteTable, Switches};
use authgate::request::path::normalize;
use libfuzzer_sys::fuzz_target;

const METHODS: [&str; 7] = [
    "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
];

#[derive(Debug, Arbitrary)]
enum Spelling {
    /// Percent-encode the unreserved character at this position.
    Encode(u16, bool),
    /// Toggle the case of the letter at this position.
    Case(u16),
    /// Insert `./` after the n-th slash.
    Dot(u16),
    /// Insert `<x>/../` after the n-th slash.
    DotDot(u16, u8),
    /// Double the n-th slash.
    Slash(u16),
}

#[derive(Debug, Arbitrary)]
struct Input {
    rule: u16,
    method: u8,
    param: u32,
    spellings: Vec<Spelling>,
    raw: String,
}

fn table() -> &'static RouteTable {
    static T: OnceLock<RouteTable> = OnceLock::new();
    T.get_or_init(RouteTable::embedded)
}

fn switches() -> &'static Switches {
    static S: OnceLock<Switches> = OnceLock::new();
    S.get_or_init(|| Switches {
        manual_role_management: false,
        manual_workspace_management: false,
        manual_project_member_management: false,
        disable_signup_without_link: true,
        native_login_disabled: true,
        app_sso_disabled: true,
        overrides: BTreeMap::new(),
    })
}

/// The decision without the deciding row: an equivalent row may decide a
/// variant.
fn outcome(d: &Decision) -> String {
    match d {
        Decision::Allow => "allow".into(),
        Decision::Deny { reason, .. } => format!("deny {reason}"),
        Decision::Login { .. } => "login".into(),
        Decision::Logout { .. } => "logout".into(),
    }
}

fn decide(method: &http::Method, path: &str) -> String {
    outcome(&table().decide(&Request::new(method, path), switches()))
}

fn slash_positions(s: &str) -> Vec<usize> {
    s.match_indices('/').map(|(i, _)| i).collect()
}

fn respell(path: &str, s: &Spelling) -> String {
    let b = path.as_bytes();
    match *s {
        Spelling::Encode(pos, lower) => {
            let i = usize::from(pos) % b.len();
            let c = b[i];
            // An escape's own hex digits are not characters of the path.
            let in_escape = (i >= 1 && b[i - 1] == b'%') || (i >= 2 && b[i - 2] == b'%');
            if in_escape || !(c.is_ascii_alphanumeric() || b"-._~".contains(&c)) {
                return path.to_owned();
            }
            let enc = if lower {
                format!("%{c:02x}")
            } else {
                format!("%{c:02X}")
            };
            format!("{}{enc}{}", &path[..i], &path[i + 1..])
        }
        Spelling::Case(pos) => {
            let i = usize::from(pos) % b.len();
            let mut v = b.to_vec();
            v[i] = if v[i].is_ascii_lowercase() {
                v[i].to_ascii_uppercase()
            } else {
                v[i].to_ascii_lowercase()
            };
            String::from_utf8(v).expect("ASCII case change keeps UTF-8")
        }
        Spelling::Dot(n) | Spelling::DotDot(n, _) | Spelling::Slash(n) => {
            let slashes = slash_positions(path);
            let i = slashes[usize::from(n) % slashes.len()];
            let insert = match *s {
                Spelling::Dot(_) => "./".to_owned(),
                Spelling::DotDot(_, x) => {
                    let x = char::from(b'a' + x % 26);
                    format!("{x}{x}/../")
                }
                _ => "/".to_owned(),
            };
            format!("{}{insert}{}", &path[..=i], &path[i + 1..])
        }
    }
}

fuzz_target!(|input: Input| {
    let t = table();
    let method =
        http::Method::from_bytes(METHODS[usize::from(input.method) % METHODS.len()].as_bytes())
            .expect("a method token");

    // Arbitrary raw paths: no panic, and stable under a second normalization.
    if let Ok(n) = normalize(&input.raw) {
        let d = decide(&method, &n);
        let again = normalize(&n).expect("normalized paths normalize");
        assert_eq!(decide(&method, &again), d, "{:?}", input.raw);
    }

    // A row's own path, in many spellings.
    let Some(rule) = t.rule(usize::from(input.rule) % t.len()) else {
        return;
    };
    let param = input.param.to_string();
    let path: String = rule
        .path()
        .split('/')
        .map(|s| {
            if s.starts_with('{') {
                param.as_str()
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    let Ok(base) = normalize(&path) else {
        return;
    };
    let want = decide(&method, &base);
    if want == "allow" {
        return;
    }
    let mut spelled = base.clone();
    for s in input.spellings.iter().take(16) {
        spelled = respell(&spelled, s);
        let Ok(n) = normalize(&spelled) else {
            panic!("{spelled:?} (a spelling of {base:?}) is refused");
        };
        assert_eq!(
            decide(&method, &n),
            want,
            "{method} {spelled:?} (normalized {n:?}) is a spelling of {base:?}"
        );
    }
});
