//! Sessions and the signed identity, end to end: the real authgate in
//! process, a recording upstream, and an independent verifier (PyJWT, in
//! tests/jwt_verify.py) for the identity JWT.
//!
//! Covers: every DESIGN.md claim for ES256, EdDSA and RS256 with the `kid`
//! equal to the RFC 7638 thumbprint; the per-session token cache; key
//! rotation (session secrets and signing keys); tampered, truncated,
//! wrong-key and expired cookies; the `__Host-` cookie on https; logout
//! revoking a copied cookie; spoofed identity headers in every spelling on
//! public, token and authenticated requests; configurable header names;
//! unauthenticated browser vs API answers; upstream tokens; `rd` staying on
//! this host; `/_auth/userinfo`.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::client::{get, raw_get, raw_status, send};
use common::cookies::{is_local_path, rd_of};
use common::gate::{
    config_text, identity, login, with_lines, Gate, Keys, AUDIENCE, GATE_HOST, ISSUER,
};
use common::headers::{assert_no_spoofed, spoofed_lines};
use common::python::pyjwt_verify;
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::Full;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A user with every claim filled in, groups with commas and spaces.
fn jane() -> authgate::identity::Identity {
    let mut id = identity(
        "uid=jane,ou=users,dc=example,dc=com",
        "jane@example.com",
        Some("reviewer"),
        &["cn=Team A,ou=groups,dc=example,dc=com", "ls-reviewers"],
    );
    id.name = Some("Jane Doe".into());
    id.given_name = Some("Jane".into());
    id.family_name = Some("Doe".into());
    id.preferred_username = Some("jane".into());
    id.workspaces = vec!["Workspace 1".into(), "Team B".into()];
    id.projects = BTreeMap::from([
        ("42".to_string(), "reviewer".to_string()),
        ("7".to_string(), "annotator".to_string()),
    ]);
    id
}

fn api(cookie: &str) -> Vec<(&str, &str)> {
    vec![("cookie", cookie), ("accept", "application/json")]
}

async fn jwks(url: &str) -> serde_json::Value {
    let got = get(url, &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["content-type"], "application/json");
    got.json()
}

/// The one identity assertion the upstream saw on its last request.
fn assertion(up: &Upstream) -> String {
    let seen = up.last();
    let all: Vec<_> = seen
        .headers
        .get_all("x-identity-assertion")
        .iter()
        .collect();
    assert_eq!(all.len(), 1, "exactly one assertion: {:?}", seen.headers);
    all[0].to_str().expect("ascii").to_string()
}

fn location(resp: &str) -> String {
    resp.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("location")
                .then(|| v.trim().to_string())
        })
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// The identity JWT

async fn claims_for_algorithm(alg: &str) {
    let up = Upstream::start().await;
    let keys = Keys::new();
    if alg != "ES256" {
        authgate::keygen(&keys.signing_key, alg, None, true).expect("keygen");
    }
    let mut text = config_text(&keys, &up.url(), "");
    if alg != "ES256" {
        text = with_lines(&text, "identity", &format!("algorithm = \"{alg}\""));
    }
    text = with_lines(&text, "identity", "ttl = \"90s\"");
    let gate = Gate::start_with(keys, text, vec![]).await;
    let (sid, cookie) = login(&gate.state, jane()).await;

    let before = now();
    let got = get(&gate.url("/projects/42"), &api(&cookie)).await;
    let after = now();
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let token = assertion(&up);
    let jwks = jwks(&gate.url("/_auth/jwks.json")).await;

    let v = pyjwt_verify(&jwks, &token, ISSUER, AUDIENCE, alg)
        .await
        .unwrap_or_else(|e| panic!("{alg}: PyJWT refused the assertion: {e}"));

    // Header: alg, typ, and kid = the RFC 7638 thumbprint of the published key.
    assert_eq!(v.header["alg"], alg);
    assert_eq!(v.header["typ"], "JWT");
    let kid = v.header["kid"].as_str().expect("kid");
    let published = jwks["keys"].as_array().expect("keys");
    assert_eq!(published.len(), 1, "no previous keys configured");
    assert_eq!(published[0]["kid"], kid, "the current key comes first");
    assert_eq!(published[0]["alg"], alg);
    assert_eq!(published[0]["use"], "sig");
    assert!(published[0].get("d").is_none(), "no private members");
    assert_eq!(
        v.thumbprints[kid], kid,
        "{alg}: kid is not the RFC 7638 thumbprint"
    );

    // Every claim of DESIGN.md, with its value.
    let c = &v.claims;
    assert_eq!(c["iss"], ISSUER);
    assert_eq!(c["aud"], AUDIENCE);
    assert_eq!(c["sub"], "uid=jane,ou=users,dc=example,dc=com");
    assert_eq!(c["email"], "jane@example.com");
    assert_eq!(c["name"], "Jane Doe");
    assert_eq!(c["given_name"], "Jane");
    assert_eq!(c["family_name"], "Doe");
    assert_eq!(c["preferred_username"], "jane");
    assert_eq!(
        c["groups"],
        serde_json::json!(["cn=Team A,ou=groups,dc=example,dc=com", "ls-reviewers"])
    );
    assert_eq!(c["role"], "reviewer");
    assert_eq!(
        c["workspaces"],
        serde_json::json!(["Workspace 1", "Team B"])
    );
    assert_eq!(
        c["projects"],
        serde_json::json!({"42": "reviewer", "7": "annotator"})
    );
    assert_eq!(c["amr"], serde_json::json!(["ldap"]));
    assert_eq!(c["sid"], sid.as_str());
    let iat = c["iat"].as_u64().expect("iat");
    assert!(
        (before..=after).contains(&iat),
        "iat {iat} not in [{before}, {after}]"
    );
    assert_eq!(c["nbf"].as_u64(), Some(iat));
    assert_eq!(
        c["exp"].as_u64(),
        Some(iat + 90),
        "exp = iat + identity.ttl"
    );
    let jti = c["jti"].as_str().expect("jti");
    assert!(jti.len() >= 16, "jti {jti:?}");

    // The plain headers went with it, once each.
    let seen = up.last();
    for (name, want) in [
        ("x-forwarded-user", "jane"),
        ("x-forwarded-email", "jane@example.com"),
        ("x-forwarded-preferred-username", "jane"),
        (
            "x-forwarded-groups",
            "cn=Team%20A%2Cou=groups%2Cdc=example%2Cdc=com,ls-reviewers",
        ),
        ("x-forwarded-role", "reviewer"),
    ] {
        let all: Vec<_> = seen.headers.get_all(name).iter().collect();
        assert_eq!(all.len(), 1, "{name}: {all:?}");
        assert_eq!(all[0], want, "{name}");
    }

    // The verifier is not a rubber stamp: wrong audience, wrong issuer,
    // wrong algorithm and a flipped signature are all refused.
    for (iss, aud, a) in [
        (ISSUER, "another-app", alg),
        ("https://evil.test", AUDIENCE, alg),
        (
            ISSUER,
            AUDIENCE,
            if alg == "RS256" { "ES256" } else { "RS256" },
        ),
    ] {
        assert!(
            pyjwt_verify(&jwks, &token, iss, aud, a).await.is_err(),
            "{alg}: accepted with iss={iss} aud={aud} alg={a}"
        );
    }
    let (head_payload, sig) = token.rsplit_once('.').expect("three parts");
    let mut sig = sig.as_bytes().to_vec();
    sig[3] = if sig[3] == b'A' { b'B' } else { b'A' };
    let forged = format!("{head_payload}.{}", String::from_utf8(sig).expect("ascii"));
    assert!(pyjwt_verify(&jwks, &forged, ISSUER, AUDIENCE, alg)
        .await
        .is_err());
}

#[tokio::test]
async fn es256_assertion_carries_every_claim_and_verifies_with_pyjwt() {
    claims_for_algorithm("ES256").await;
}

#[tokio::test]
async fn eddsa_assertion_carries_every_claim_and_verifies_with_pyjwt() {
    claims_for_algorithm("EdDSA").await;
}

#[tokio::test]
async fn rs256_assertion_carries_every_claim_and_verifies_with_pyjwt() {
    claims_for_algorithm("RS256").await;
}

#[tokio::test]
async fn absent_claims_are_omitted_and_saml_sessions_say_so() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let mut id = identity("jane-nameid", "jane@example.com", None, &[]);
    id.given_name = None;
    id.family_name = None;
    id.method = authgate::identity::Method::Saml;
    let (_, cookie) = login(&gate.state, id).await;
    assert_eq!(
        get(&gate.url("/x"), &api(&cookie)).await.status,
        StatusCode::OK
    );
    let jwks = jwks(&gate.url("/_auth/jwks.json")).await;
    let v = pyjwt_verify(&jwks, &assertion(&up), ISSUER, AUDIENCE, "ES256")
        .await
        .expect("verifies");
    let c = &v.claims;
    assert_eq!(c["amr"], serde_json::json!(["saml"]));
    assert!(c.get("role").is_none(), "no role: no role claim");
    assert!(c.get("given_name").is_none());
    assert_eq!(c["groups"], serde_json::json!([]), "arrays always present");
    assert_eq!(c["workspaces"], serde_json::json!([]));
    assert_eq!(c["projects"], serde_json::json!({}));
    // No groups and no role: those plain headers are absent, not empty.
    let seen = up.last();
    assert!(seen.headers.get("x-forwarded-groups").is_none());
    assert!(seen.headers.get("x-forwarded-role").is_none());
}

#[tokio::test]
async fn the_token_is_cached_per_session() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let (sid_a, a) = login(&gate.state, jane()).await;
    let (sid_b, b) = login(&gate.state, jane()).await;
    assert_ne!(sid_a, sid_b);
    get(&gate.url("/one"), &api(&a)).await;
    let first = assertion(&up);
    get(&gate.url("/two"), &api(&a)).await;
    assert_eq!(assertion(&up), first, "same session, same token (60 s ttl)");
    get(&gate.url("/three"), &api(&b)).await;
    let other = assertion(&up);
    assert_ne!(other, first, "another session, another token");
    let jwks = jwks(&gate.url("/_auth/jwks.json")).await;
    let ca = pyjwt_verify(&jwks, &first, ISSUER, AUDIENCE, "ES256")
        .await
        .expect("a");
    let cb = pyjwt_verify(&jwks, &other, ISSUER, AUDIENCE, "ES256")
        .await
        .expect("b");
    assert_eq!(ca.claims["sid"], sid_a.as_str());
    assert_eq!(cb.claims["sid"], sid_b.as_str());
    assert_ne!(ca.claims["jti"], cb.claims["jti"]);
}

#[tokio::test]
async fn jwks_is_served_as_cacheable_json_without_a_session() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let got = get(&gate.url("/_auth/jwks.json"), &[]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert!(got.headers["cache-control"]
        .to_str()
        .unwrap_or("")
        .contains("max-age"));
    let keys = got.json()["keys"].as_array().cloned().expect("keys");
    assert_eq!(keys[0]["kty"], "EC");
    assert_eq!(keys[0]["crv"], "P-256");
    assert_eq!(keys[0]["kid"], gate.state.signer.kid());
    assert_eq!(up.count(), 0, "served by authgate itself");
}

// ---------------------------------------------------------------------------
// Key rotation

#[tokio::test]
async fn key_rotation_keeps_old_sessions_and_old_tokens_valid() {
    let up = Upstream::start().await;

    // Before: signing key A (ES256), session secret A.
    let keys_a = Keys::new();
    let gate_a =
        Gate::start_with(keys_a.share(), config_text(&keys_a, &up.url(), ""), vec![]).await;
    let cookie_a = gate_a.login(jane()).await;
    assert_eq!(
        get(&gate_a.url("/before"), &api(&cookie_a)).await.status,
        StatusCode::OK
    );
    let token_a = assertion(&up);
    let jwks_a = jwks(&gate_a.url("/_auth/jwks.json")).await;
    let kid_a = jwks_a["keys"][0]["kid"].as_str().expect("kid").to_string();

    // After: signing key B (EdDSA, to show the algorithm may change too)
    // with A still published; session secrets "B, then A" one per line.
    // The in-memory registry does not survive a restart, so the new
    // instance shares the old one's, as replicas on a shared store do.
    let keys_b = Keys::new();
    authgate::keygen(&keys_b.signing_key, "EdDSA", None, true).expect("keygen");
    let secret_a = std::fs::read_to_string(&keys_a.session_key).expect("secret a");
    let secret_b = std::fs::read_to_string(&keys_b.session_key).expect("secret b");
    std::fs::write(
        &keys_b.session_key,
        format!("{}\n{}\n", secret_b.trim(), secret_a.trim()),
    )
    .expect("write rotated secrets");
    let mut text_b = config_text(&keys_b, &up.url(), "");
    text_b = with_lines(
        &text_b,
        "identity",
        &format!(
            "algorithm = \"EdDSA\"\nprevious_keys = [\"{}\"]",
            keys_a.signing_key.display()
        ),
    );
    let store = gate_a.state.sessions.clone();
    drop(gate_a);
    let gate_b = Gate::with_store(keys_b, text_b, store.clone()).await;

    // The old cookie still works, and is now asserted with key B.
    let got = get(&gate_b.url("/after"), &api(&cookie_a)).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let token_b = assertion(&up);
    let jwks_b = jwks(&gate_b.url("/_auth/jwks.json")).await;
    let kids: Vec<&str> = jwks_b["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert_eq!(kids.len(), 2, "current and previous: {kids:?}");
    assert_eq!(kids[1], kid_a, "previous key still published");
    assert_eq!(kids[0], gate_b.state.signer.kid(), "current key first");
    let vb = pyjwt_verify(&jwks_b, &token_b, ISSUER, AUDIENCE, "EdDSA")
        .await
        .expect("new token verifies");
    assert_eq!(vb.header["kid"], kids[0]);
    for kid in &kids {
        assert_eq!(vb.thumbprints[*kid], *kid, "kid = RFC 7638 thumbprint");
    }
    // The token minted before the rotation verifies against the new JWKS.
    let va = pyjwt_verify(&jwks_b, &token_a, ISSUER, AUDIENCE, "ES256")
        .await
        .expect("old token still verifies against the new JWKS");
    assert_eq!(va.header["kid"], kid_a.as_str());

    // New cookies are sealed with the first secret (B): an instance that
    // knows only A cannot open them, one that knows only B cannot open the
    // old cookie — it is the second line that keeps old sessions alive.
    let cookie_b = gate_b.login(jane()).await;
    let only_a = Gate::with_store(
        keys_a.share(),
        config_text(&keys_a, &up.url(), ""),
        store.clone(),
    )
    .await;
    assert_eq!(
        get(&only_a.url("/x"), &api(&cookie_a)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&only_a.url("/x"), &api(&cookie_b)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let keys_only_b = Keys::new();
    std::fs::write(&keys_only_b.session_key, secret_b).expect("write");
    let text = config_text(&keys_only_b, &up.url(), "");
    let only_b = Gate::with_store(keys_only_b, text, store).await;
    assert_eq!(
        get(&only_b.url("/x"), &api(&cookie_b)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        get(&only_b.url("/x"), &api(&cookie_a)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------
// Cookies

/// Replaces the cookie value (after the first `=`) with `f(value)`.
fn with_value(cookie: &str, f: impl Fn(&str) -> String) -> String {
    let (name, value) = cookie.split_once('=').expect("name=value");
    format!("{name}={}", f(value))
}

#[tokio::test]
async fn tampered_truncated_and_wrong_key_cookies_are_refused() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let cookie = gate.login(jane()).await;
    let value = cookie.split_once('=').expect("pair").1.to_string();
    assert!(!value.contains("jane"), "the cookie holds no identity");

    // Another instance sharing the registry but with another secret: the
    // session it starts exists, yet this instance cannot open its cookie.
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), "");
    let other = Gate::with_store(keys, text, gate.state.sessions.clone()).await;
    let foreign = other.login(jane()).await;
    assert_eq!(
        get(&other.url("/x"), &api(&foreign)).await.status,
        StatusCode::OK
    );

    let flip = |v: &str, i: usize| {
        let mut b = v.as_bytes().to_vec();
        b[i] = if b[i] == b'A' { b'B' } else { b'A' };
        String::from_utf8(b).expect("ascii")
    };
    let mid = value.len() / 2;
    let bad: Vec<(&str, String)> = vec![
        ("flipped first byte", with_value(&cookie, |v| flip(v, 0))),
        ("flipped middle byte", with_value(&cookie, |v| flip(v, mid))),
        (
            "flipped last byte",
            with_value(&cookie, |v| flip(v, v.len() - 1)),
        ),
        (
            "truncated by one",
            with_value(&cookie, |v| v[..v.len() - 1].to_string()),
        ),
        (
            "truncated by half",
            with_value(&cookie, |v| v[..v.len() / 2].to_string()),
        ),
        ("extended", with_value(&cookie, |v| format!("{v}AAAA"))),
        ("empty", with_value(&cookie, |_| String::new())),
        (
            "not base64",
            with_value(&cookie, |_| "!!not-a-cookie!!".into()),
        ),
        ("huge", with_value(&cookie, |_| "A".repeat(5000))),
        ("wrong key", foreign.clone()),
        ("other name", format!("authgate2={value}")),
    ];
    let before = up.count();
    for (what, c) in &bad {
        for path in ["/api/projects", "/_auth/userinfo"] {
            let got = get(&gate.url(path), &api(c)).await;
            assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{what} on {path}");
            assert_eq!(got.json()["error"], "unauthenticated", "{what}");
        }
    }
    assert_eq!(up.count(), before, "no refused cookie reached the upstream");

    // The real cookie still works, also behind a planted bad duplicate.
    assert_eq!(
        get(&gate.url("/ok"), &api(&cookie)).await.status,
        StatusCode::OK
    );
    let planted = format!("{}; {cookie}", bad[1].1);
    assert_eq!(
        get(&gate.url("/ok"), &api(&planted)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn session_cookie_attributes_over_http_and_https() {
    let up = Upstream::start().await;

    let http_gate = Gate::start(&up.url(), "").await;
    let (_, set) = http_gate
        .state
        .start_session(jane())
        .await
        .expect("session");
    let set = set.to_str().expect("ascii").to_string();
    assert!(set.starts_with("authgate="), "{set}");
    for attr in [
        "; Path=/",
        "; HttpOnly",
        "; SameSite=Lax",
        "; Max-Age=43200",
    ] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.contains("Secure"), "plain http: no Secure: {set}");
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");

    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), "").replace(
        "public_url = \"http://gate.test\"",
        "public_url = \"https://gate.test\"",
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    let (_, set) = gate.state.start_session(jane()).await.expect("session");
    let set = set.to_str().expect("ascii").to_string();
    assert!(set.starts_with("__Host-authgate="), "{set}");
    for attr in ["; Path=/", "; HttpOnly", "; Secure", "; SameSite=Lax"] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    assert!(!set.to_ascii_lowercase().contains("domain="), "{set}");
    let cookie = set.split(';').next().expect("pair").to_string();
    assert_eq!(
        get(&gate.url("/x"), &api(&cookie)).await.status,
        StatusCode::OK
    );
    // The same value without the prefix is not our cookie.
    let unprefixed = cookie.replacen("__Host-", "", 1);
    assert_eq!(
        get(&gate.url("/x"), &api(&unprefixed)).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Logout clears the prefixed cookie with matching attributes.
    let out = get(&gate.url("/_auth/logout"), &api(&cookie)).await;
    let clear = out.headers["set-cookie"].to_str().expect("ascii");
    assert!(clear.starts_with("__Host-authgate=;"), "{clear}");
    assert!(
        clear.contains("Max-Age=0") && clear.contains("; Secure") && clear.contains("; Path=/")
    );
}

#[tokio::test]
async fn absolute_ttl_ends_a_session_even_while_it_is_used() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = with_lines(
        &config_text(&keys, &up.url(), ""),
        "session",
        "ttl = \"3s\"",
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    let (_, cookie) = login(&gate.state, jane()).await;
    let (_, set) = gate.state.start_session(jane()).await.expect("session");
    assert!(set.to_str().expect("ascii").contains("Max-Age=3;"));
    let started = std::time::Instant::now();
    assert_eq!(
        get(&gate.url("/x"), &api(&cookie)).await.status,
        StatusCode::OK
    );
    // Used every 200 ms, it still ends at its absolute expiry (3 s after
    // issue, whole seconds); the bound is generous.
    let mut ended = None;
    while started.elapsed() < Duration::from_secs(15) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let got = get(&gate.url("/x"), &api(&cookie)).await;
        if got.status == StatusCode::UNAUTHORIZED {
            ended = Some(started.elapsed());
            break;
        }
        assert_eq!(got.status, StatusCode::OK);
    }
    let ended = ended.expect("the session outlived its ttl");
    assert!(
        ended >= Duration::from_millis(1000),
        "ended after {ended:?}"
    );
    assert_eq!(
        get(&gate.url("/_auth/userinfo"), &api(&cookie))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn idle_timeout_ends_an_unused_session_but_not_a_used_one() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = with_lines(
        &config_text(&keys, &up.url(), ""),
        "session",
        "idle_timeout = \"3s\"",
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    let (_, cookie) = login(&gate.state, jane()).await;
    // In use for longer than the idle timeout: still alive.
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_millis(3500) {
        let got = get(&gate.url("/x"), &api(&cookie)).await;
        assert_eq!(got.status, StatusCode::OK, "after {:?}", started.elapsed());
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Unused for over 3 s (4.2 s is more than 3 whole seconds on any clock
    // tick alignment): gone.
    tokio::time::sleep(Duration::from_millis(4200)).await;
    assert_eq!(
        get(&gate.url("/x"), &api(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

// ---------------------------------------------------------------------------
// Logout and userinfo

#[tokio::test]
async fn logout_revokes_the_session_server_side() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let cookie = gate.login(jane()).await;
    let stolen_copy = cookie.clone();
    let (_, other_session) = login(&gate.state, jane()).await;
    assert_eq!(
        get(&gate.url("/x"), &api(&cookie)).await.status,
        StatusCode::OK
    );

    let out = get(
        &gate.url("/_auth/logout"),
        &[("cookie", cookie.as_str()), ("accept", "text/html")],
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.text().contains("signed out"), "{}", out.text());
    let clear = out.headers["set-cookie"].to_str().expect("ascii");
    assert!(
        clear.starts_with("authgate=;") && clear.contains("Max-Age=0"),
        "{clear}"
    );

    // The cookie a browser (or an attacker) kept is dead everywhere.
    let n = up.count();
    let got = get(&gate.url("/x"), &api(&stolen_copy)).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        get(&gate.url("/_auth/userinfo"), &api(&stolen_copy))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let check = get(
        &gate.url("/_auth/check"),
        &[("cookie", stolen_copy.as_str()), ("x-original-uri", "/x")],
    )
    .await;
    assert_eq!(check.status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), n);

    // Logout ends that session only.
    assert_eq!(
        get(&gate.url("/x"), &api(&other_session)).await.status,
        StatusCode::OK
    );
    // POST logout answers JSON for API clients.
    let post = |c: String| {
        Request::post(gate.url("/_auth/logout"))
            .header("cookie", c)
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    let out = send(post(other_session.clone())).await;
    assert_eq!(out.status, StatusCode::OK);
    assert_eq!(out.json()["signed_out"], true);
    let again = send(post(other_session.clone())).await;
    assert_eq!(again.json()["signed_out"], false);
    assert_eq!(
        get(&gate.url("/x"), &api(&other_session)).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn userinfo_shows_the_identity_or_401() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let none = get(&gate.url("/_auth/userinfo"), &[]).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED);
    assert_eq!(none.json()["error"], "unauthenticated");
    let cookie = gate.login(jane()).await;
    let got = get(&gate.url("/_auth/userinfo"), &[("cookie", cookie.as_str())]).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.headers["cache-control"], "no-store");
    let u = got.json();
    assert_eq!(u["sub"], "uid=jane,ou=users,dc=example,dc=com");
    assert_eq!(u["email"], "jane@example.com");
    assert_eq!(u["role"], "reviewer");
    assert_eq!(u["preferred_username"], "jane");
    assert_eq!(
        u["workspaces"],
        serde_json::json!(["Workspace 1", "Team B"])
    );
    assert_eq!(u["projects"]["42"], "reviewer");
    assert_eq!(u["amr"], serde_json::json!(["ldap"]));
    assert_eq!(up.count(), 0);
}

// ---------------------------------------------------------------------------
// Identity headers: strip, then set

#[tokio::test]
async fn spoofed_identity_headers_never_reach_the_upstream_when_signed_in() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let cookie = gate.login(jane()).await;
    let lines = format!(
        "Cookie: {cookie}\r\nAccept: application/json\r\n{}",
        spoofed_lines()
    );
    let resp = raw_get(gate.addr, GATE_HOST, "/api/projects", &lines).await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    let seen = up.last();
    assert_no_spoofed(&seen.headers, "signed in");
    for (name, want) in [
        ("x-forwarded-user", "jane"),
        ("x-forwarded-email", "jane@example.com"),
        ("x-forwarded-preferred-username", "jane"),
        (
            "x-forwarded-groups",
            "cn=Team%20A%2Cou=groups%2Cdc=example%2Cdc=com,ls-reviewers",
        ),
        ("x-forwarded-role", "reviewer"),
    ] {
        let all: Vec<_> = seen.headers.get_all(name).iter().collect();
        assert_eq!(all, [want], "{name}");
    }
    let token = assertion(&up);
    let jwks = jwks(&gate.url("/_auth/jwks.json")).await;
    let v = pyjwt_verify(&jwks, &token, ISSUER, AUDIENCE, "ES256")
        .await
        .expect("our assertion, not the spoofed one");
    assert_eq!(v.claims["preferred_username"], "jane");
}

#[tokio::test]
async fn public_paths_get_no_identity_and_no_spoofed_headers() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "[policy]\npublic_paths = [\"/public\"]\n").await;
    let cookie = gate.login(jane()).await;
    for (what, extra) in [
        ("anonymous", String::new()),
        ("with a session cookie", format!("Cookie: {cookie}\r\n")),
    ] {
        let lines = format!("{extra}{}", spoofed_lines());
        let resp = raw_get(gate.addr, GATE_HOST, "/public/logo.png", &lines).await;
        assert_eq!(raw_status(&resp), 200, "{what}: {resp}");
        let seen = up.last();
        assert_eq!(seen.target, "/public/logo.png");
        assert_no_spoofed(&seen.headers, what);
        for name in [
            "x-identity-assertion",
            "x-forwarded-user",
            "x-forwarded-email",
            "x-forwarded-preferred-username",
            "x-forwarded-groups",
            "x-forwarded-role",
        ] {
            assert!(
                seen.headers.get(name).is_none(),
                "{what}: {name} on a public path"
            );
        }
    }
    // `/publicity` is not under `/public`.
    let got = get(&gate.url("/publicity"), &[("accept", "application/json")]).await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn upstream_tokens_pass_only_when_allowed_and_never_with_identity() {
    let up = Upstream::start().await;

    // Default: a token is not a session.
    let gate = Gate::start(&up.url(), "").await;
    for auth in ["Token abc123", "Bearer eyJhbGciOi.x.y"] {
        let got = get(&gate.url("/api/projects"), &[("authorization", auth)]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{auth}");
    }
    assert_eq!(up.count(), 0);

    let gate = Gate::start(
        &up.url(),
        "[policy]\nallow_upstream_tokens = true\nmanual_role_management = false\n",
    )
    .await;
    for auth in ["Token abc123", "Bearer eyJhbGciOi.x.y", "token lower-case"] {
        let lines = format!("Authorization: {auth}\r\n{}", spoofed_lines());
        let resp = raw_get(gate.addr, GATE_HOST, "/api/projects", &lines).await;
        assert_eq!(raw_status(&resp), 200, "{auth}: {resp}");
        let seen = up.last();
        assert_eq!(
            seen.headers["authorization"], auth,
            "the token goes through"
        );
        assert_no_spoofed(&seen.headers, auth);
        for name in [
            "x-identity-assertion",
            "x-forwarded-user",
            "x-forwarded-role",
        ] {
            assert!(seen.headers.get(name).is_none(), "{auth}: {name}");
        }
    }
    // Other schemes are no upstream token.
    let n = up.count();
    for auth in ["Basic YWxpY2U6cHc=", "Token ", "Tokenabc"] {
        let got = get(&gate.url("/api/projects"), &[("authorization", auth)]).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{auth:?}");
    }
    // The policy still applies to token holders.
    let got = send(
        Request::patch(gate.url("/api/organizations/1/memberships"))
            .header("authorization", "Token abc123")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"role\":\"AD\"}")))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert_eq!(got.json()["error"], "managed_by_directory");
    assert_eq!(up.count(), n, "nothing refused reached the upstream");
}

#[tokio::test]
async fn configured_header_names_are_set_and_stripped() {
    let up = Upstream::start().await;
    let gate = Gate::start(
        &up.url(),
        "[identity.headers]\nuser = \"X-WEBAUTH-USER\"\nrole = \"X-Webauth-Role\"\n",
    )
    .await;
    let cookie = gate.login(jane()).await;
    let lines = format!(
        "Cookie: {cookie}\r\nX-WEBAUTH-USER: spoof-w1\r\nx-webauth-user: spoof-w2\r\nX_WebAuth_User: spoof-w3\r\nX-Webauth-Role: spoof-owner\r\n{}",
        spoofed_lines()
    );
    let resp = raw_get(gate.addr, GATE_HOST, "/grafana/", &lines).await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    let seen = up.last();
    assert_no_spoofed(&seen.headers, "custom names");
    let user: Vec<_> = seen.headers.get_all("x-webauth-user").iter().collect();
    assert_eq!(user, ["jane"]);
    let role: Vec<_> = seen.headers.get_all("x-webauth-role").iter().collect();
    assert_eq!(role, ["reviewer"]);
    assert!(
        seen.headers.get("x-forwarded-user").is_none(),
        "the default name is replaced, not added"
    );
    assert_eq!(seen.headers["x-forwarded-email"], "jane@example.com");

    // Anonymous requests to a public path: the custom names are stripped too.
    let gate = Gate::start(
        &up.url(),
        "[policy]\npublic_paths = [\"/\"]\n[identity.headers]\nuser = \"X-WEBAUTH-USER\"\n",
    )
    .await;
    let resp = raw_get(
        gate.addr,
        GATE_HOST,
        "/",
        &format!(
            "X-WEBAUTH-USER: spoof-admin\r\nx_webauth_user: spoof-admin2\r\n{}",
            spoofed_lines()
        ),
    )
    .await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    assert_no_spoofed(&up.last().headers, "custom names, public path");
}

// ---------------------------------------------------------------------------
// Unauthenticated requests and `rd`

#[tokio::test]
async fn unauthenticated_browsers_are_redirected_and_apis_get_401_json() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    let html = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

    let got = get(
        &gate.url("/projects/1?tab=data&page=2"),
        &[("accept", html)],
    )
    .await;
    assert_eq!(got.status, StatusCode::FOUND);
    let loc = got.headers["location"].to_str().expect("ascii");
    assert!(loc.starts_with("/_auth/login?rd="), "{loc}");
    assert_eq!(rd_of(loc).as_deref(), Some("/projects/1?tab=data&page=2"));
    assert_eq!(got.headers["cache-control"], "no-store");

    let head = send(
        Request::head(gate.url("/projects"))
            .header("accept", html)
            .body(Full::new(Bytes::new()))
            .expect("req"),
    )
    .await;
    assert_eq!(head.status, StatusCode::FOUND);

    // Not navigations: API calls, XHR, form posts, no Accept at all.
    for (method, accept) in [
        ("GET", "application/json"),
        ("GET", "*/*"),
        ("GET", ""),
        ("POST", html),
        ("DELETE", "application/json"),
    ] {
        let mut b = Request::builder()
            .method(method)
            .uri(gate.url("/api/projects"));
        if !accept.is_empty() {
            b = b.header("accept", accept);
        }
        let got = send(b.body(Full::new(Bytes::new())).expect("req")).await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{method} {accept}");
        assert_eq!(got.json()["error"], "unauthenticated", "{method} {accept}");
        assert!(got.headers.get("location").is_none());
    }
    assert_eq!(
        up.count(),
        0,
        "nothing unauthenticated reached the upstream"
    );
}

#[tokio::test]
async fn login_redirect_targets_stay_on_this_host() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    // Request targets that try to smuggle another origin into `rd`.
    let targets = [
        "//evil.com",
        "//evil.com/x",
        "///evil.com",
        "/..//evil.com",
        "/./..//evil.com",
        "/x?next=//evil.com",
        "/x?next=https://evil.com",
        "http://evil.com/x",
        "https:evil.com",
    ];
    for t in targets {
        let resp = raw_get(gate.addr, GATE_HOST, t, "Accept: text/html\r\n").await;
        let status = raw_status(&resp);
        if status == 400 {
            continue; // refused outright: no redirect at all
        }
        assert_eq!(status, 302, "{t}: {resp}");
        let loc = location(&resp);
        assert!(loc.starts_with("/_auth/login"), "{t}: Location {loc}");
        if let Some(rd) = rd_of(&loc) {
            assert!(is_local_path(&rd), "{t}: rd {rd:?}");
        }
    }
    // Encoded slashes and backslashes in the path are refused, never redirected.
    for t in [
        "/%2F%2Fevil.com",
        "/%5Cevil.com",
        "/\\evil.com",
        "/%2f%2fevil.com",
    ] {
        let resp = raw_get(gate.addr, GATE_HOST, t, "Accept: text/html\r\n").await;
        assert_eq!(raw_status(&resp), 400, "{t}: {resp}");
    }
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn login_page_keeps_rd_local() {
    let up = Upstream::start().await;
    // The LDAP form carries rd in a hidden field; no directory is contacted
    // to render it.
    let gate = Gate::start(
        &up.url(),
        "[ldap]\nenabled = true\nserver_uri = \"ldap://127.0.0.1:1\"\nstart_tls = true\nuser_dn_template = \"uid=%(user)s,ou=users,dc=example,dc=com\"\n",
    )
    .await;
    let evil = [
        "//evil.com",
        "%2F%2Fevil.com",
        "/%5Cevil.com",
        "%2F%5Cevil.com",
        "https:evil.com",
        "https%3Aevil.com",
        "https://evil.com",
        "https%3A%2F%2Fevil.com",
        "%2F%252F%252Fevil.com",
        "/%252F%252Fevil.com",
        "%2F%2E%2E%2F%2Fevil.com",
        "/%09/evil.com",
        "%09//evil.com",
        "javascript:alert(1)",
        "%EF%BC%8F%EF%BC%8Fevil.com",
        "/%EF%BC%8F%EF%BC%8Fevil.com",
    ];
    for rd in evil {
        let got = get(
            &gate.url(&format!("/_auth/login?rd={rd}")),
            &[("accept", "text/html")],
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "{rd}");
        let page = got.text();
        assert!(
            page.contains("name=\"rd\" value=\"/\""),
            "{rd}: the hidden rd is not \"/\": {page}"
        );
        assert!(!page.contains("evil"), "{rd}: {page}");
    }
    let got = get(
        &gate.url("/_auth/login?rd=%2Fprojects%2F1%3Ftab%3Ddata"),
        &[],
    )
    .await;
    assert!(
        got.text()
            .contains("name=\"rd\" value=\"/projects/1?tab=data\""),
        "{}",
        got.text()
    );
    // A local target with markup in it is escaped, not injected.
    let got = get(
        &gate.url("/_auth/login?rd=%2Fx%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
        &[],
    )
    .await;
    let page = got.text();
    assert!(!page.contains("<script>"), "{page}");
    assert!(
        page.contains("value=\"/x&quot;&gt;&lt;script&gt;"),
        "{page}"
    );
}
