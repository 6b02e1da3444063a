//! LDAP sign-in against a real OpenLDAP (Debian `slapd`), started by the
//! tests themselves on free loopback ports with a private configuration
//! and a CA they generate. Each case does the browser's flow: GET the login
//! page (CSRF token + pre-login cookie) → POST the form → 303 + session
//! cookie → a proxied request, checking what a real upstream receives.
//!
//! The directory (`common/slapd.rs`): under `ou=users,o=123abc,dc=example,dc=com`
//! admin1 (admins, team1, team2), manager1 (managers), reviewer1
//! (reviewers, team2), annotator1 (annotators), guest1 (guests), multi
//! (managers + reviewers), deact (deactivated + admins), nogroup (none),
//! notact (not), nested1 (inner ∈ outer ∈ cyclic ∈ outer), uniq1
//! (groupOfUniqueNames), posix1 (posixGroup), owner (the owner email),
//! o'brien, a*b, x(y), juergen (Jürgen Müller, team1), mover and deleteme
//! (changed mid-test); teams under `dc=jumpcloud,dc=com`; a service account.

mod common;

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use common::client::{get, send, Got};
use common::cookies::{cookie_pair, csrf_of, form};
use common::gate::{config_text, Gate, Keys};
use common::slapd::*;
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;

/// The directory most cases share (they do not change it, except for the
/// users only the refresh case uses).
fn shared() -> &'static Slapd {
    static S: OnceLock<Slapd> = OnceLock::new();
    S.get_or_init(Slapd::start)
}

/// authgate in-process, with an optional env file (the seed's).
async fn start(
    up: &Upstream,
    extra: &str,
    env: Vec<(String, String)>,
    env_file: Option<PathBuf>,
) -> Gate {
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), extra);
    Gate::start_with_env_file(keys, text, env, env_file).await
}

const ROLES: &str = r#"
[mapping.roles]
administrator = ["cn=admins,ou=users,o=123abc,dc=example,dc=com", "cn=unique-admins,ou=users,o=123abc,dc=example,dc=com"]
manager = ["cn=managers,ou=users,o=123abc,dc=example,dc=com"]
reviewer = ["cn=reviewers,ou=users,o=123abc,dc=example,dc=com", "cn=outer,ou=users,o=123abc,dc=example,dc=com", "cn=posix-reviewers,ou=users,o=123abc,dc=example,dc=com"]
annotator = ["cn=annotators,ou=users,o=123abc,dc=example,dc=com", "cn=guests,ou=users,o=123abc,dc=example,dc=com"]
not_activated = ["cn=not,ou=users,o=123abc,dc=example,dc=com"]
deactivated = ["cn=deactivated,ou=users,o=123abc,dc=example,dc=com"]
[mapping.workspaces]
"Workspace 1" = ["cn=team1,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com"]
"Workspace 2" = ["cn=team2,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com"]
"#;

/// `[policy]`, `[ldap]` (search mode over ldaps:// with the test CA) with
/// `overrides` (key, TOML value) replacing defaults, and the role mapping.
fn ldap_toml(s: &Slapd, overrides: &[(&str, &str)]) -> String {
    let q = |v: &str| format!("{v:?}");
    let mut keys: Vec<(String, String)> = vec![
        ("enabled".into(), "true".into()),
        ("server_uri".into(), q(&s.ldaps_url())),
        ("ca_file".into(), q(&s.ca.display().to_string())),
        ("bind_dn".into(), q(SVC_DN)),
        ("bind_password".into(), q(SVC_PW)),
        ("user_search_bases".into(), format!("[{}]", q(USERS))),
        ("user_query_field".into(), q("username")),
        ("attr_username".into(), q("uid")),
        ("group_search_base_dn".into(), q("dc=com")),
        (
            "group_search_filter".into(),
            q("(objectClass=groupOfNames)"),
        ),
        ("group_type".into(), q("member")),
        ("organization_owner_email".into(), q("heartex@heartex.net")),
        ("timeout".into(), q("2s")),
        ("max_failures".into(), "100".into()),
        ("max_failures_per_client".into(), "1000".into()),
    ];
    for (k, v) in overrides {
        match keys.iter_mut().find(|(key, _)| key == k) {
            Some(e) => e.1 = v.to_string(),
            None => keys.push((k.to_string(), v.to_string())),
        }
    }
    let mut out = String::from("[policy]\nmanual_role_management = false\n[ldap]\n");
    for (k, v) in keys {
        out.push_str(&format!("{k} = {v}\n"));
    }
    out.push_str(ROLES);
    out
}

/// What a login attempt returned.
struct Login {
    status: StatusCode,
    /// `authgate=...` when a session started.
    session: Option<String>,
    location: Option<String>,
    got: Got,
}

async fn post_login(g: &Gate, cookie: &str, body: String) -> Login {
    let req = Request::post(g.url("/_auth/ldap/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let got = send(req).await;
    Login {
        status: got.status,
        session: cookie_pair(&got, "authgate"),
        location: got
            .headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string),
        got,
    }
}

/// The browser flow: login page, then the form.
async fn login(g: &Gate, username: &str, password: &str) -> Login {
    let page = get(
        &g.url("/_auth/login?rd=/projects/1"),
        &[("accept", "text/html")],
    )
    .await;
    assert!(
        page.status == StatusCode::OK || page.status == StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        page.text()
    );
    let csrf = csrf_of(&page.text());
    let cookie = cookie_pair(&page, "authgate_login").expect("pre-login cookie");
    post_login(
        g,
        &cookie,
        form(&[
            ("username", username),
            ("password", password),
            ("rd", "/projects/1"),
            ("csrf", &csrf),
        ]),
    )
    .await
}

/// Signs in and returns the session cookie (asserting the 303).
async fn sign_in(g: &Gate, username: &str) -> String {
    let l = login(g, username, PASSWORD).await;
    assert_eq!(
        l.status,
        StatusCode::SEE_OTHER,
        "{username}: {}",
        l.got.text()
    );
    assert_eq!(l.location.as_deref(), Some("/projects/1"));
    l.session.expect("session cookie")
}

/// The identity claims the upstream received for a proxied request, or the status.
async fn upstream_claims(g: &Gate, up: &Upstream, session: &str) -> Result<Value, StatusCode> {
    let before = up.count();
    let got = get(&g.url("/projects/1"), &[("cookie", session)]).await;
    if got.status != StatusCode::OK {
        return Err(got.status);
    }
    assert_eq!(up.count(), before + 1);
    let seen = up.last();
    let jwt = seen.headers["x-identity-assertion"]
        .to_str()
        .expect("ascii");
    let payload = jwt.split('.').nth(1).expect("payload");
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .expect("base64"),
    )
    .expect("json");
    if let Some(role) = claims["role"].as_str() {
        assert_eq!(seen.headers["x-forwarded-role"], role);
    }
    Ok(claims)
}

fn workspaces(c: &Value) -> Vec<String> {
    c["workspaces"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

async fn expect_role(g: &Gate, up: &Upstream, user: &str, role: &str, ws: &[&str]) -> Value {
    let s = sign_in(g, user).await;
    let c = upstream_claims(g, up, &s)
        .await
        .unwrap_or_else(|st| panic!("{user}: proxied request got {st}"));
    assert_eq!(c["role"], role, "{user}: {c}");
    assert_eq!(workspaces(&c), ws, "{user}");
    assert_eq!(c["amr"], serde_json::json!(["ldap"]));
    c
}

#[tokio::test]
async fn search_mode_users_get_their_roles_and_workspaces_over_ldaps() {
    let s = shared();
    let up = Upstream::start().await;
    let g = start(&up, &ldap_toml(s, &[]), vec![], None).await;
    let c = expect_role(
        &g,
        &up,
        "admin1",
        "administrator",
        &["Workspace 1", "Workspace 2"],
    )
    .await;
    assert_eq!(c["sub"], user_dn("admin1"));
    assert_eq!(c["email"], "admin1@example.com");
    assert_eq!(c["preferred_username"], "admin1");
    expect_role(&g, &up, "manager1", "manager", &[]).await;
    expect_role(&g, &up, "reviewer1", "reviewer", &["Workspace 2"]).await;
    expect_role(&g, &up, "annotator1", "annotator", &[]).await;
    expect_role(&g, &up, "guest1", "annotator", &[]).await;
    expect_role(&g, &up, "multi", "manager", &[]).await;
    expect_role(&g, &up, "owner", "owner", &[]).await;
    expect_role(&g, &up, "o'brien", "annotator", &[]).await;
    expect_role(&g, &up, "a*b", "annotator", &[]).await;
    expect_role(&g, &up, "x(y)", "annotator", &[]).await;
    let c = expect_role(&g, &up, "juergen", "annotator", &["Workspace 1"]).await;
    assert_eq!(c["given_name"], "Jürgen");
    assert_eq!(c["family_name"], "Müller");
    // Deactivated wins over administrators; no group = deactivated while
    // roles are directory-managed: both refused at login.
    for user in ["deact", "nogroup"] {
        let l = login(&g, user, PASSWORD).await;
        assert_eq!(l.status, StatusCode::FORBIDDEN, "{user}");
        assert!(l.session.is_none());
    }
    // not_activated: signed in, every proxied request 403.
    let s = sign_in(&g, "notact").await;
    assert_eq!(
        upstream_claims(&g, &up, &s).await.unwrap_err(),
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn template_mode_over_starttls_escapes_the_dn() {
    let s = shared();
    let up = Upstream::start().await;
    let tmpl = format!("{:?}", format!("uid=%(user)s,{USERS}"));
    let toml = ldap_toml(
        s,
        &[
            ("server_uri", &format!("{:?}", s.ldap_url())),
            ("start_tls", "true"),
            ("user_dn_template", &tmpl),
            ("bind_dn", "\"\""),
            ("bind_password", "\"\""),
        ],
    );
    let g = start(&up, &toml, vec![], None).await;
    expect_role(
        &g,
        &up,
        "admin1",
        "administrator",
        &["Workspace 1", "Workspace 2"],
    )
    .await;
    expect_role(&g, &up, "o'brien", "annotator", &[]).await;
    expect_role(&g, &up, "a*b", "annotator", &[]).await;
    expect_role(&g, &up, "x(y)", "annotator", &[]).await;
    let c = expect_role(&g, &up, "juergen", "annotator", &["Workspace 1"]).await;
    assert_eq!(c["name"], "Jürgen Müller");
    // DN injection: the comma is escaped, so this names no entry.
    for u in ["admin1,ou=users", "admin1\\", "*", "admin1+cn=x"] {
        assert_eq!(
            login(&g, u, PASSWORD).await.status,
            StatusCode::UNAUTHORIZED,
            "{u}"
        );
    }
}

#[tokio::test]
async fn email_query_field_and_username_for_login() {
    let s = shared();
    let up = Upstream::start().await;
    let g = start(
        &up,
        &ldap_toml(s, &[("user_query_field", "\"email\"")]),
        vec![],
        None,
    )
    .await;
    expect_role(
        &g,
        &up,
        "admin1@example.com",
        "administrator",
        &["Workspace 1", "Workspace 2"],
    )
    .await;
    assert_eq!(
        login(&g, "admin1", PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = get(&g.url("/_auth/login"), &[]).await.text();
    assert!(page.contains(">Email</label>"), "{page}");

    // USE_USERNAME_FOR_LOGIN: either works.
    let g = start(
        &up,
        &ldap_toml(
            s,
            &[
                ("user_query_field", "\"email\""),
                ("use_username_for_login", "true"),
            ],
        ),
        vec![],
        None,
    )
    .await;
    expect_role(&g, &up, "manager1", "manager", &[]).await;
    expect_role(&g, &up, "manager1@example.com", "manager", &[]).await;
}

#[tokio::test]
async fn every_group_type() {
    let s = shared();
    let up = Upstream::start().await;
    // groupOfUniqueNames
    let g = start(
        &up,
        &ldap_toml(
            s,
            &[
                ("group_type", "\"uniqueMember\""),
                (
                    "group_search_filter",
                    "\"(objectClass=groupOfUniqueNames)\"",
                ),
            ],
        ),
        vec![],
        None,
    )
    .await;
    expect_role(&g, &up, "uniq1", "administrator", &[]).await;
    // posixGroup (memberUid)
    let g = start(
        &up,
        &ldap_toml(
            s,
            &[
                ("group_type", "\"posixGroup\""),
                ("group_search_filter", "\"(objectClass=posixGroup)\""),
            ],
        ),
        vec![],
        None,
    )
    .await;
    expect_role(&g, &up, "posix1", "reviewer", &[]).await;
    // memberOf (memberof overlay), groups anywhere under dc=com
    let g = start(
        &up,
        &ldap_toml(s, &[("group_type", "\"memberOf\"")]),
        vec![],
        None,
    )
    .await;
    expect_role(
        &g,
        &up,
        "admin1",
        "administrator",
        &["Workspace 1", "Workspace 2"],
    )
    .await;
    expect_role(&g, &up, "multi", "manager", &[]).await;
    // memberOf restricted to a base outside the teams: no workspaces.
    let g = start(
        &up,
        &ldap_toml(
            s,
            &[
                ("group_type", "\"memberOf\""),
                ("group_search_base_dn", &format!("{USERS:?}")),
            ],
        ),
        vec![],
        None,
    )
    .await;
    expect_role(&g, &up, "admin1", "administrator", &[]).await;
    // Direct membership only: nested1 is in `inner` alone (unmapped) → refused.
    let g = start(&up, &ldap_toml(s, &[]), vec![], None).await;
    assert_eq!(
        login(&g, "nested1", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
    // Nested: inner ∈ outer (reviewer), through a cycle back to outer.
    let g = start(
        &up,
        &ldap_toml(s, &[("group_type", "\"nested\"")]),
        vec![],
        None,
    )
    .await;
    let c = expect_role(&g, &up, "nested1", "reviewer", &[]).await;
    assert_eq!(c["groups"], serde_json::json!([group_dn("outer")]));
    // Depth limit 1 = direct groups only.
    let g = start(
        &up,
        &ldap_toml(s, &[("group_type", "\"nested\""), ("max_group_depth", "1")]),
        vec![],
        None,
    )
    .await;
    assert_eq!(
        login(&g, "nested1", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn failures_get_one_generic_answer() {
    let s = shared();
    let up = Upstream::start().await;
    let g = start(&up, &ldap_toml(s, &[]), vec![], None).await;
    let wrong = login(&g, "admin1", "not-the-password").await;
    let unknown = login(&g, "nobody", "not-the-password").await;
    // An empty password would be an anonymous bind that succeeds.
    let empty = login(&g, "admin1", "").await;
    for l in [&wrong, &unknown, &empty] {
        assert_eq!(l.status, StatusCode::UNAUTHORIZED);
        assert!(l.session.is_none());
        assert!(l.got.text().contains("Invalid username or password."));
        assert!(l.got.text().contains("role=\"alert\""));
    }
    // Filter injection: each is escaped (RFC 4515) and matches nobody.
    for u in ["*", "*)(uid=*", "admin)(|(uid=*", "admin1)(|(uid=*", "adm*"] {
        let l = login(&g, u, PASSWORD).await;
        assert_eq!(l.status, StatusCode::UNAUTHORIZED, "{u}");
    }
    // 100 KB inputs.
    let big = "a".repeat(100 * 1024);
    assert_eq!(
        login(&g, &big, PASSWORD).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        login(&g, "admin1", &big).await.status,
        StatusCode::UNAUTHORIZED
    );
    // Still healthy afterwards.
    sign_in(&g, "admin1").await;
}

#[tokio::test]
async fn login_post_needs_the_csrf_token_bound_to_the_browser() {
    let s = shared();
    let up = Upstream::start().await;
    let g = start(&up, &ldap_toml(s, &[]), vec![], None).await;
    let body = |csrf: &str| {
        form(&[
            ("username", "admin1"),
            ("password", PASSWORD),
            ("rd", "/"),
            ("csrf", csrf),
        ])
    };
    // No cookie at all.
    let l = post_login(&g, "", body("x")).await;
    assert_eq!(l.status, StatusCode::FORBIDDEN);
    assert!(l.session.is_none());
    // A cookie, but another browser's token.
    let page = get(&g.url("/_auth/login"), &[]).await;
    let cookie = cookie_pair(&page, "authgate_login").expect("cookie");
    let other = get(&g.url("/_auth/login"), &[]).await;
    let l = post_login(&g, &cookie, body(&csrf_of(&other.text()))).await;
    assert_eq!(l.status, StatusCode::FORBIDDEN);
    // The matching pair works; an off-site rd falls back to /.
    let l = post_login(
        &g,
        &cookie,
        form(&[
            ("username", "admin1"),
            ("password", PASSWORD),
            ("rd", "https://evil.example/"),
            ("csrf", &csrf_of(&page.text())),
        ]),
    )
    .await;
    assert_eq!(l.status, StatusCode::SEE_OTHER);
    assert_eq!(l.location.as_deref(), Some("/"));
}

#[tokio::test]
async fn failed_logins_are_throttled_per_username() {
    let s = shared();
    let up = Upstream::start().await;
    let g = start(
        &up,
        &ldap_toml(s, &[("max_failures", "3"), ("throttle_window", "\"1m\"")]),
        vec![],
        None,
    )
    .await;
    for _ in 0..3 {
        assert_eq!(
            login(&g, "reviewer1", "wrong").await.status,
            StatusCode::UNAUTHORIZED
        );
    }
    let l = login(&g, "Reviewer1", PASSWORD).await;
    assert_eq!(l.status, StatusCode::TOO_MANY_REQUESTS);
    let wait: u64 = l.got.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds");
    assert!((1..=60).contains(&wait), "{wait}");
    // Other users are not affected.
    sign_in(&g, "manager1").await;
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused() {
    let s = shared();
    let up = Upstream::start().await;
    let wrong = format!("{:?}", s.wrong_ca.display().to_string());
    for uri in [s.ldaps_url(), s.ldap_url()] {
        let g = start(
            &up,
            &ldap_toml(
                s,
                &[
                    ("server_uri", &format!("{uri:?}")),
                    ("start_tls", "true"),
                    ("ca_file", &wrong),
                ],
            ),
            vec![],
            None,
        )
        .await;
        let l = login(&g, "admin1", PASSWORD).await;
        assert_eq!(l.status, StatusCode::SERVICE_UNAVAILABLE, "{uri}");
        assert!(l.got.text().contains("directory is unavailable"));
    }
}

/// `OPT_X_TLS_REQUIRE_CERT` as OpenLDAP means it (ldap.conf(5) TLS_REQCERT)
/// against a directory whose certificate comes from another CA than the
/// configured one: `try`, `demand` and `hard` (in every python-ldap
/// spelling) end the connection, so sign-in answers "directory
/// unavailable"; `allow` and `never` carry on and the user signs in.
#[tokio::test]
async fn require_cert_try_and_demand_refuse_another_ca_allow_and_never_proceed() {
    let s = shared();
    let up = Upstream::start().await;
    for (mode, verifies) in [
        ("try", true),
        ("ldap.OPT_X_TLS_TRY", true),
        ("4", true),
        ("demand", true),
        ("OPT_X_TLS_HARD", true),
        ("allow", false),
        ("ldap.OPT_X_TLS_NEVER", false),
    ] {
        for (uri, start_tls) in [(s.ldaps_url(), "false"), (s.ldap_url(), "true")] {
            let env = vec![(
                "AUTH_LDAP_CONNECTION_OPTIONS".to_string(),
                format!(
                    "OPT_X_TLS_CACERTFILE={};OPT_X_TLS_NEWCTX=0;OPT_X_TLS_REQUIRE_CERT={mode}",
                    s.wrong_ca.display()
                ),
            )];
            let g = start(
                &up,
                &ldap_toml(
                    s,
                    &[
                        ("server_uri", &format!("{uri:?}")),
                        ("start_tls", start_tls),
                    ],
                ),
                env,
                None,
            )
            .await;
            let l = login(&g, "admin1", PASSWORD).await;
            if verifies {
                assert_eq!(l.status, StatusCode::SERVICE_UNAVAILABLE, "{mode} {uri}");
                assert!(l.got.text().contains("directory is unavailable"));
                assert!(l.session.is_none());
            } else {
                assert_eq!(l.status, StatusCode::SEE_OTHER, "{mode} {uri}");
                assert!(l.session.is_some());
            }
        }
    }
}

/// What a TLS server impersonating the directory (the test directory's
/// key and certificate, whose CA authgate is not told to trust) read.
struct Rogue {
    port: u16,
    /// Handshakes that completed.
    handshakes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    /// Every plaintext byte clients sent after a completed handshake.
    received: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
}

async fn rogue_directory(s: &Slapd) -> Rogue {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use tokio::io::AsyncReadExt;

    let certs = CertificateDer::pem_file_iter(s.dir.path().join("server.pem"))
        .expect("server.pem")
        .collect::<Result<Vec<_>, _>>()
        .expect("certificates");
    let key = PrivateKeyDer::from_pem_file(s.dir.path().join("server.key")).expect("server.key");
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("protocols")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handshakes = Arc::new(AtomicUsize::new(0));
    let received = Arc::new(Mutex::new(Vec::new()));
    let (h, r) = (handshakes.clone(), received.clone());
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, h, r) = (acceptor.clone(), h.clone(), r.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                h.fetch_add(1, Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                // Read what the client sends first (its bind), then hang up.
                let read = tokio::time::timeout(Duration::from_secs(2), tls.read(&mut buf)).await;
                if let Ok(Ok(n)) = read {
                    r.lock().expect("lock").extend_from_slice(&buf[..n]);
                }
            });
        }
    });
    Rogue {
        port,
        handshakes,
        received,
    }
}

/// The risk the start-up warning names, measured: whoever answers on the
/// directory's address with a certificate from another CA receives the
/// typed password under `never`, and nothing at all under `try`.
#[tokio::test]
async fn a_directory_impostor_gets_no_password_under_try_and_the_password_under_never() {
    let s = shared();
    let up = Upstream::start().await;
    for mode in ["try", "never"] {
        let rogue = rogue_directory(s).await;
        let template = format!("uid=%(user)s,{USERS}");
        let g = start(
            &up,
            &ldap_toml(
                s,
                &[
                    (
                        "server_uri",
                        &format!("\"ldaps://127.0.0.1:{}\"", rogue.port),
                    ),
                    ("user_dn_template", &format!("{template:?}")),
                    ("bind_dn", "\"\""),
                    ("bind_password", "\"\""),
                    (
                        "ca_file",
                        &format!("{:?}", s.wrong_ca.display().to_string()),
                    ),
                    ("require_cert", &format!("{mode:?}")),
                    ("timeout", "\"1s\""),
                ],
            ),
            vec![],
            None,
        )
        .await;
        let l = login(&g, "admin1", PASSWORD).await;
        assert_eq!(l.status, StatusCode::SERVICE_UNAVAILABLE, "{mode}");
        let handshakes = rogue.handshakes.load(std::sync::atomic::Ordering::SeqCst);
        let received = rogue.received.lock().expect("lock").clone();
        let has_password = received
            .windows(PASSWORD.len())
            .any(|w| w == PASSWORD.as_bytes());
        match mode {
            "try" => {
                assert_eq!(handshakes, 0, "try: the handshake must fail");
                assert!(received.is_empty(), "try: nothing may be sent");
            }
            _ => {
                assert!(handshakes >= 1, "never: the handshake completes");
                assert!(has_password, "never: the impostor reads the password");
            }
        }
    }
}

#[tokio::test]
async fn directory_down_then_back() {
    let s = Slapd::start();
    let up = Upstream::start().await;
    let g = start(&up, &ldap_toml(&s, &[("timeout", "\"1s\"")]), vec![], None).await;
    let session = sign_in(&g, "admin1").await;
    let ready = get(&g.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(ready["checks"]["ldap"], "reachable");

    s.stop();
    // Signed-in users are unaffected.
    let c = upstream_claims(&g, &up, &session).await.expect("proxied");
    assert_eq!(c["role"], "administrator");
    // Sign-in says the directory is unavailable; readiness reports it.
    let l = login(&g, "manager1", PASSWORD).await;
    assert_eq!(l.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(l.got.text().contains("directory is unavailable"));
    let ready = get(&g.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(ready["checks"]["ldap"], "unreachable");
    let page = get(&g.url("/_auth/login"), &[("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::SERVICE_UNAVAILABLE);

    s.restart();
    // Logins work again by themselves (stale pooled connections replaced).
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let l = login(&g, "manager1", PASSWORD).await;
        if l.status == StatusCode::SEE_OTHER {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "login never recovered: {}",
            l.status
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let ready = get(&g.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(ready["checks"]["ldap"], "reachable");
}

/// `ldap.server_uri` with several URIs (OpenLDAP's failover list): a server
/// that stops mid-run is skipped, logins keep working without waiting for
/// it, readiness lists each server, and the first one is preferred again
/// once it is back and its back-off is over. A server that accepts TCP but
/// never answers costs one `ldap.connect_timeout`, then is skipped.
#[tokio::test]
async fn several_server_uris_fail_over_when_the_first_stops() {
    let (a, b) = (Slapd::start(), Slapd::start());
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let bundle = dir.path().join("cas.pem");
    let cas = [&a.ca, &b.ca]
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("ca"))
        .collect::<String>();
    std::fs::write(&bundle, cas).expect("bundle");
    let ca = format!("{:?}", bundle.display().to_string());
    let timeout = Duration::from_secs(2);
    let g = start(
        &up,
        &ldap_toml(
            &a,
            &[
                (
                    "server_uri",
                    &format!("\"{} {}\"", a.ldaps_url(), b.ldaps_url()),
                ),
                ("ca_file", &ca),
                ("timeout", "\"2s\""),
                ("connect_timeout", "\"500ms\""),
                ("failover_backoff", "\"1s\""),
            ],
        ),
        vec![],
        None,
    )
    .await;
    let state = |ready: &Value, i: usize| ready["checks"]["ldap_servers"][i]["state"].clone();
    sign_in(&g, "admin1").await;
    let ready = get(&g.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(ready["checks"]["ldap_servers"][0]["uri"], a.ldaps_url());
    assert_eq!(ready["checks"]["ldap_servers"][1]["uri"], b.ldaps_url());
    assert_eq!(state(&ready, 0), "up", "{ready}");
    assert_eq!(state(&ready, 1), "unknown", "{ready}");

    a.stop();
    for user in ["manager1", "reviewer1", "admin1", "annotator1"] {
        let t = Instant::now();
        let l = login(&g, user, PASSWORD).await;
        assert_eq!(l.status, StatusCode::SEE_OTHER, "{user}");
        assert!(t.elapsed() < timeout, "{user}: {:?}", t.elapsed());
    }
    let ready = get(&g.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(ready["checks"]["ldap"], "reachable", "{ready}");
    assert_eq!(state(&ready, 0), "down", "{ready}");
    assert_eq!(state(&ready, 1), "up", "{ready}");
    assert!(ready["checks"]["ldap_servers"][0]["retry_in_seconds"].is_u64());

    // Back, and its back-off over: preferred again.
    a.restart();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    sign_in(&g, "reviewer1").await;
    let ready = get(&g.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(state(&ready, 0), "up", "{ready}");
    drop(g);

    // A server that accepts TCP and never answers (its TLS handshake hangs).
    let silent = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let silent_uri = format!("ldaps://{}", silent.local_addr().expect("addr"));
    let g = start(
        &up,
        &ldap_toml(
            &b,
            &[
                ("server_uri", &format!("\"{silent_uri} {}\"", b.ldaps_url())),
                ("ca_file", &ca),
                ("timeout", "\"2s\""),
                ("connect_timeout", "\"500ms\""),
                ("failover_backoff", "\"30s\""),
            ],
        ),
        vec![],
        None,
    )
    .await;
    for user in ["manager1", "reviewer1", "admin1"] {
        let t = Instant::now();
        let l = login(&g, user, PASSWORD).await;
        assert_eq!(l.status, StatusCode::SEE_OTHER, "{user}");
        assert!(t.elapsed() < timeout, "{user}: {:?}", t.elapsed());
    }
    let ready = get(&g.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(state(&ready, 0), "down", "{ready}");
    assert_eq!(state(&ready, 1), "up", "{ready}");
}

/// Polls proxied requests until `ok` holds for the claims (or status).
async fn eventually(
    g: &Gate,
    up: &Upstream,
    session: &str,
    ok: impl Fn(&Result<Value, StatusCode>) -> bool,
) -> Result<Value, StatusCode> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = upstream_claims(g, up, session).await;
        if ok(&r) {
            return r;
        }
        assert!(Instant::now() < deadline, "never changed: {r:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn group_changes_and_deletion_apply_at_the_next_refresh() {
    let s = shared();
    let up = Upstream::start().await;
    let g = start(
        &up,
        &ldap_toml(s, &[("refresh_interval", "\"1s\"")]),
        vec![],
        None,
    )
    .await;
    let mover = sign_in(&g, "mover").await;
    let c = upstream_claims(&g, &up, &mover).await.expect("ok");
    assert_eq!(c["role"], "manager");
    assert_eq!(workspaces(&c), ["Workspace 1"]);
    let gone = sign_in(&g, "deleteme").await;

    // Moved from managers (and team1) to reviewers.
    s.ldapmodify(&format!(
        "dn: {m}\nchangetype: modify\ndelete: member\nmember: {u}\n\n\
dn: {r}\nchangetype: modify\nadd: member\nmember: {u}\n\n\
dn: cn=team1,{TEAMS}\nchangetype: modify\ndelete: member\nmember: {u}\n\n",
        m = group_dn("managers"),
        r = group_dn("reviewers"),
        u = user_dn("mover"),
    ));
    s.ldapmodify(&format!(
        "dn: {}\nchangetype: delete\n\n",
        user_dn("deleteme")
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let c = eventually(&g, &up, &mover, |r| {
        r.as_ref().is_ok_and(|c| c["role"] == "reviewer")
    })
    .await
    .expect("ok");
    assert!(workspaces(&c).is_empty());
    // Deleted from the directory: the session is revoked.
    eventually(&g, &up, &gone, |r| r == &Err(StatusCode::UNAUTHORIZED))
        .await
        .ok();

    // Removed from every role group: deactivated, session revoked.
    s.ldapmodify(&format!(
        "dn: {r}\nchangetype: modify\ndelete: member\nmember: {u}\n\n",
        r = group_dn("reviewers"),
        u = user_dn("mover"),
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    eventually(&g, &up, &mover, |r| r == &Err(StatusCode::UNAUTHORIZED))
        .await
        .ok();
}

#[tokio::test]
async fn the_seed_env_file_pointed_at_the_test_directory_signs_users_in() {
    let s = shared();
    let up = Upstream::start().await;
    let env = vec![
        ("AUTH_LDAP_SERVER_URI".to_string(), s.ldaps_url()),
        ("AUTH_LDAP_BIND_DN".to_string(), SVC_DN.to_string()),
        ("AUTH_LDAP_BIND_PASSWORD".to_string(), SVC_PW.to_string()),
        (
            "AUTH_LDAP_GROUP_SEARCH_BASE_DN".to_string(),
            "dc=com".to_string(),
        ),
        (
            "AUTH_LDAP_CONNECTION_OPTIONS".to_string(),
            format!("OPT_X_TLS_CACERTFILE={};OPT_X_TLS_NEWCTX=0", s.ca.display()),
        ),
    ];
    let g = start(
        &up,
        "",
        env,
        Some(PathBuf::from("tests/fixtures/lse-example.env")),
    )
    .await;
    // The seed: DN template uid=%(user)s,ou=Users,..., AUTH_LDAP_GROUP_TYPE=ou.
    expect_role(
        &g,
        &up,
        "admin1",
        "administrator",
        &["Workspace 1", "Workspace 2"],
    )
    .await;
    expect_role(&g, &up, "reviewer1", "reviewer", &["Workspace 2"]).await;
    expect_role(&g, &up, "guest1", "annotator", &[]).await;
    expect_role(&g, &up, "juergen", "annotator", &["Workspace 1"]).await;
    expect_role(&g, &up, "owner", "owner", &[]).await;
    let s = sign_in(&g, "notact").await;
    assert_eq!(
        upstream_claims(&g, &up, &s).await.unwrap_err(),
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        login(&g, "nogroup", PASSWORD).await.status,
        StatusCode::FORBIDDEN
    );
}
