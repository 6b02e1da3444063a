//! Identity headers: the copies a client forges (every test sends them and
//! none may reach the upstream), and the set authgate sends for one
//! signed-in user, checked with the independent PyJWT verifier.

use http::StatusCode;

use super::client::get;
use super::gate::{identity, AUDIENCE, ISSUER};
use super::python::{pyjwt_verify, Verified};

/// Identity headers as a client might forge them: every default name, in
/// several cases, repeated, and in the `_` spelling WSGI/CGI servers merge
/// with the `-` one. Every value contains `spoof`, so one scan of what the
/// upstream saw finds any that got through.
pub const SPOOFED: &[(&str, &str)] = &[
    ("X-Identity-Assertion", "spoof.assertion.one"),
    ("x-identity-assertion", "spoof.assertion.two"),
    ("X_Identity_Assertion", "spoof.assertion.three"),
    ("X-Forwarded-User", "spoof-user-1"),
    ("x-forwarded-user", "spoof-user-2"),
    ("X_Forwarded_User", "spoof-user-3"),
    ("x_FORWARDED-user", "spoof-user-4"),
    ("X-Forwarded-Email", "spoof1@evil.test"),
    ("X-FORWARDED-EMAIL", "spoof2@evil.test"),
    ("X-Forwarded-Groups", "spoof-admins"),
    ("x-forwarded-groups", "spoof-owners"),
    ("X_Forwarded_Groups", "spoof-root"),
    ("X-Forwarded-Role", "spoof-owner"),
    ("x-Forwarded-ROLE", "spoof-administrator"),
    ("X-Forwarded-Preferred-Username", "spoof-admin"),
    ("x-forwarded-preferred-USERNAME", "spoof-admin-2"),
    ("X_Forwarded_Preferred_Username", "spoof-admin-3"),
];

/// `SPOOFED` as raw header lines for [`super::client::raw`].
pub fn spoofed_lines() -> String {
    SPOOFED
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect()
}

/// Panics naming every header the upstream saw that carries a spoofed value
/// or an underscore name.
pub fn assert_no_spoofed(headers: &http::HeaderMap, context: &str) {
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !v.contains("spoof"),
            "{context}: spoofed value reached the upstream: {name}: {v}"
        );
        assert!(
            !name.as_str().contains('_'),
            "{context}: underscore header reached the upstream: {name}"
        );
    }
}

/// The `Accept` header of a browser's page load.
pub const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// Every identity header authgate sets.
pub const IDENTITY_NAMES: [&str; 6] = [
    "x-identity-assertion",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-role",
];

/// The user the front-proxy tests sign in: an administrator whose group
/// DN has a space and commas.
pub fn jane() -> authgate::identity::Identity {
    let mut id = identity(
        "uid=jane,ou=users,dc=example,dc=com",
        "jane@example.com",
        Some("administrator"),
        &["cn=Team A,ou=groups,dc=example,dc=com", "ls-admins"],
    );
    id.preferred_username = Some("jane".into());
    id
}

/// The plain identity headers of [`jane`].
pub const JANE_HEADERS: [(&str, &str); 5] = [
    ("x-forwarded-user", "jane"),
    ("x-forwarded-email", "jane@example.com"),
    ("x-forwarded-preferred-username", "jane"),
    (
        "x-forwarded-groups",
        "cn=Team%20A%2Cou=groups%2Cdc=example%2Cdc=com,ls-admins",
    ),
    ("x-forwarded-role", "administrator"),
];

/// Exactly one copy of each of [`jane`]'s identity headers, with her
/// values, and a JWT that PyJWT accepts against the JWKS (fetched through
/// `jwks_url`) naming her; what PyJWT read from it.
pub async fn assert_jane(headers: &http::HeaderMap, jwks_url: &str, context: &str) -> Verified {
    for (name, want) in JANE_HEADERS {
        let all: Vec<_> = headers.get_all(name).iter().collect();
        assert_eq!(all, [want], "{context}: {name}");
    }
    let tokens: Vec<_> = headers.get_all("x-identity-assertion").iter().collect();
    assert_eq!(tokens.len(), 1, "{context}: one assertion");
    let jwks = get(jwks_url, &[]).await;
    assert_eq!(jwks.status, StatusCode::OK, "{context}: jwks");
    let v = pyjwt_verify(
        &jwks.json(),
        tokens[0].to_str().expect("ascii"),
        ISSUER,
        AUDIENCE,
        "ES256",
    )
    .await
    .unwrap_or_else(|e| panic!("{context}: PyJWT refused the assertion: {e}"));
    assert_eq!(v.claims["sub"], "uid=jane,ou=users,dc=example,dc=com");
    v
}
