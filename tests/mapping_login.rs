//! Group mapping at the door and in the assertion: `State::sign_in` refuses deactivated users,
//! signs not_activated users in but refuses every proxied request, and puts the mapped role,
//! workspaces and projects in the identity JWT and the plain headers the upstream receives.
//! The seed's Label Studio Enterprise env file, loaded unchanged, maps directory DNs as a real
//! directory spells them.

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use common::client::{get, send};
use common::cookies::pair_of;
use common::gate::{config_text, load_config, Gate, Keys};
use common::pki::CA_PEM;
use common::upstream::{Seen, Upstream};
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};

use authgate::identity::{Method, Principal};

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

/// Roles managed by the directory (so no mapped group means deactivated), plain SAML-style
/// names and DNs mixed, one workspace and two project rules.
const MAPPING: &str = r#"
[policy]
manual_role_management = false
[mapping]
owner_email = "Owner@Example.com"
[mapping.roles]
administrator = ["cn=admins,ou=users,o=123abc,dc=example,dc=com"]
reviewer = ["ls-reviewers"]
annotator = ["ls-annotators"]
not_activated = ["cn=not,ou=users,o=123abc,dc=example,dc=com"]
deactivated = ["ls-deactivated"]
[mapping.workspaces]
"Workspace 1" = ["team-a", "cn=admins,ou=users,o=123abc,dc=example,dc=com"]
[[mapping.projects]]
project = "42"
group = "ls-annotators"
role = "inherit"
[[mapping.projects]]
project = "7"
group = "team-a"
role = "reviewer"
"#;

fn principal(subject: &str, email: &str, groups: &[&str]) -> Principal {
    Principal {
        subject: subject.into(),
        email: Some(email.into()),
        name: None,
        given_name: Some("Ada".into()),
        family_name: Some("Lovelace".into()),
        preferred_username: subject
            .split(',')
            .next()
            .and_then(|rdn| rdn.split_once('='))
            .map(|(_, v)| v.to_string()),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        method: Method::Ldap,
        session_index: None,
        saml_idp: None,
    }
}

/// The claims of a compact JWS, unverified (signature checks live in tests/identity.rs).
fn claims(jws: &str) -> serde_json::Value {
    let payload = jws.split('.').nth(1).expect("three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// `X-Forwarded-Groups`: comma-separated, each value percent-encoded.
fn forwarded_groups(seen: &Seen) -> Vec<String> {
    seen.headers
        .get("x-forwarded-groups")
        .map(|v| {
            v.to_str()
                .expect("ascii")
                .split(',')
                .map(|g| {
                    percent_encoding::percent_decode_str(g)
                        .decode_utf8()
                        .expect("utf-8")
                        .into_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn metrics(addr: Option<SocketAddr>) -> String {
    get(
        &format!("http://{}/metrics", addr.expect("metrics listener")),
        &[],
    )
    .await
    .text()
}

/// Signs `p` in and sends one API GET through the gate; returns what the upstream saw.
async fn through(gate: &Gate, up: &Upstream, p: Principal) -> (Seen, serde_json::Value) {
    let (_, set_cookie) = gate.state.sign_in(p, CLIENT).await.expect("signed in");
    let before = up.count();
    let got = get(
        &gate.url("/api/projects/"),
        &[("cookie", &pair_of(&set_cookie))],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_eq!(up.count(), before + 1);
    let seen = up.last();
    let jwt = seen
        .headers
        .get("x-identity-assertion")
        .expect("identity assertion")
        .to_str()
        .expect("ascii")
        .to_string();
    (seen, claims(&jwt))
}

#[tokio::test]
async fn deactivated_users_are_refused_at_login() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), MAPPING).await;
    let sessions = gate.state.sessions.len().await;
    for groups in [
        // Deactivated wins over everything, administrator included.
        &[
            "ls-deactivated",
            "cn=admins,ou=users,o=123abc,dc=example,dc=com",
        ][..],
        // Roles are managed by the directory: no mapped group is no access.
        &["cn=strangers,ou=users,o=123abc,dc=example,dc=com", "team-a"][..],
        &[][..],
    ] {
        let p = principal(
            "uid=mallory,ou=users,dc=example,dc=com",
            "m@example.com",
            groups,
        );
        let err = gate
            .state
            .sign_in(p, CLIENT)
            .await
            .expect_err("a deactivated user is refused");
        assert!(
            matches!(err, authgate::error::Error::Deactivated),
            "{groups:?}: {err:?}"
        );
    }
    assert_eq!(
        gate.state.sessions.len().await,
        sessions,
        "no session started"
    );
    let text = metrics(gate.metrics_addr).await;
    assert!(
        text.contains("authgate_logins_total{result=\"failure\"} 3"),
        "{text}"
    );
    assert!(text.contains("authgate_logins_total{result=\"success\"} 0"));

    // What the login endpoint renders for that error: a clear page for browsers, JSON otherwise.
    let nav = http::HeaderMap::from_iter([(
        http::header::ACCEPT,
        http::HeaderValue::from_static("text/html"),
    )]);
    let ctx = authgate::request::context::RequestCtx::new(
        "req-1".into(),
        &http::Method::GET,
        &nav,
        "/_auth".into(),
        CLIENT,
    );
    let page = authgate::error::respond(&authgate::error::Error::Deactivated, &ctx);
    assert_eq!(page.status(), StatusCode::FORBIDDEN);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    let body = page.into_body().collect().await.expect("body").to_bytes();
    let body = String::from_utf8_lossy(&body);
    assert!(body.contains("Your account is deactivated"), "{body}");
    assert!(body.contains("Contact your administrator"), "{body}");
    let ctx = authgate::request::context::RequestCtx::new(
        "req-2".into(),
        &http::Method::POST,
        &http::HeaderMap::new(),
        "/_auth".into(),
        CLIENT,
    );
    let api = authgate::error::respond(&authgate::error::Error::Deactivated, &ctx);
    assert_eq!(api.status(), StatusCode::FORBIDDEN);
    let body = api.into_body().collect().await.expect("body").to_bytes();
    let v: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
    assert_eq!(v["error"], "deactivated");
}

#[tokio::test]
async fn not_activated_users_are_signed_in_but_every_proxied_request_is_refused() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), MAPPING).await;
    // Spelled as a directory returns it; not_activated outranks nothing else here.
    let p = principal(
        "uid=newbie,ou=users,dc=example,dc=com",
        "newbie@example.com",
        &["CN=Not, OU=Users, O=123abc, DC=example, DC=com"],
    );
    let (session, set_cookie) = gate.state.sign_in(p, CLIENT).await.expect("signed in");
    assert_eq!(
        session.identity.role.map(authgate::role::Role::as_str),
        Some("not_activated")
    );
    let cookie = pair_of(&set_cookie);

    let page = get(
        &gate.url("/projects/"),
        &[
            ("cookie", &cookie),
            ("accept", "text/html,application/xhtml+xml"),
        ],
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));
    assert!(
        page.text().contains("pending activation"),
        "{}",
        page.text()
    );

    for (method, path) in [
        (http::Method::GET, "/api/projects/"),
        (http::Method::POST, "/api/projects/"),
        (http::Method::GET, "/"),
    ] {
        let got = send(
            Request::builder()
                .method(method.clone())
                .uri(gate.url(path))
                .header("cookie", &cookie)
                .header("accept", "application/json")
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(got.json()["error"], "pending_activation", "{method} {path}");
    }
    assert_eq!(up.count(), 0, "nothing reached the upstream");

    // Signed in all the same: authgate's own endpoints know who it is.
    let me = get(&gate.url("/_auth/userinfo"), &[("cookie", &cookie)]).await;
    assert_eq!(me.status, StatusCode::OK);
    assert_eq!(me.json()["role"], "not_activated");
    let text = metrics(gate.metrics_addr).await;
    assert!(
        text.contains("authgate_logins_total{result=\"success\"} 1"),
        "{text}"
    );
}

#[tokio::test]
async fn mapped_role_workspaces_and_projects_reach_the_upstream() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), MAPPING).await;

    // Plain names (SAML Groups values), one group no rule mentions.
    let (seen, c) = through(
        &gate,
        &up,
        principal(
            "uid=ann,ou=users,dc=example,dc=com",
            "ann@example.com",
            &[
                "ls-annotators",
                "team-a",
                "cn=unmapped,ou=groups,dc=example,dc=com",
            ],
        ),
    )
    .await;
    assert_eq!(c["sub"], "uid=ann,ou=users,dc=example,dc=com");
    assert_eq!(c["role"], "annotator");
    assert_eq!(c["workspaces"], serde_json::json!(["Workspace 1"]));
    assert_eq!(
        c["projects"],
        serde_json::json!({"42": "annotator", "7": "reviewer"})
    );
    assert_eq!(
        c["groups"],
        serde_json::json!(["ls-annotators", "team-a"]),
        "only the groups some rule mentions"
    );
    assert_eq!(c["amr"], serde_json::json!(["ldap"]));
    assert_eq!(c["email"], "ann@example.com");
    assert_eq!(c["name"], "Ada Lovelace");
    assert_eq!(seen.headers["x-forwarded-role"], "annotator");
    assert_eq!(forwarded_groups(&seen), ["ls-annotators", "team-a"]);

    // A DN as the directory spells it matches the configured one; the claim keeps the
    // directory's spelling.
    let admins = "CN=Admins, OU=Users, O=123abc, DC=example, DC=com";
    let (seen, c) = through(
        &gate,
        &up,
        principal(
            "uid=alice,ou=users,dc=example,dc=com",
            "alice@example.com",
            &[admins, "ls-reviewers", "ls-annotators"],
        ),
    )
    .await;
    assert_eq!(c["role"], "administrator", "the highest role wins");
    assert_eq!(c["workspaces"], serde_json::json!(["Workspace 1"]));
    assert_eq!(
        c["projects"],
        serde_json::json!({"42": "administrator"}),
        "inherit keeps a higher organization role"
    );
    assert_eq!(seen.headers["x-forwarded-role"], "administrator");
    assert_eq!(
        forwarded_groups(&seen),
        [admins, "ls-reviewers", "ls-annotators"]
    );
    assert!(seen.headers["x-forwarded-groups"]
        .to_str()
        .unwrap_or("")
        .starts_with("CN=Admins%2C%20OU=Users"));

    // The owner, by email (compared lowercased), whatever the groups say.
    let (seen, c) = through(
        &gate,
        &up,
        principal(
            "uid=olga,ou=users,dc=example,dc=com",
            "OWNER@example.COM",
            &["ls-annotators"],
        ),
    )
    .await;
    assert_eq!(c["role"], "owner");
    assert_eq!(seen.headers["x-forwarded-role"], "owner");

    // Inbound copies are never what the upstream sees.
    let (_, set_cookie) = gate
        .state
        .sign_in(
            principal(
                "uid=ann,ou=users,dc=example,dc=com",
                "ann@example.com",
                &["ls-annotators"],
            ),
            CLIENT,
        )
        .await
        .expect("signed in");
    get(
        &gate.url("/api/projects/"),
        &[
            ("cookie", &pair_of(&set_cookie)),
            ("x-forwarded-role", "administrator"),
            (
                "x-forwarded-groups",
                "cn=admins,ou=users,o=123abc,dc=example,dc=com",
            ),
        ],
    )
    .await;
    let seen = up.last();
    assert_eq!(seen.headers.get_all("x-forwarded-role").iter().count(), 1);
    assert_eq!(seen.headers["x-forwarded-role"], "annotator");
    assert_eq!(forwarded_groups(&seen), ["ls-annotators"]);
}

#[tokio::test]
async fn all_groups_puts_every_group_in_the_claim() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), MAPPING)
        .replace("[identity]\n", "[identity]\nall_groups = true\n");
    let gate = Gate::start_with(keys, text, vec![]).await;
    let groups = [
        "ls-annotators",
        "cn=unmapped,ou=groups,dc=example,dc=com",
        "everyone",
    ];
    let (seen, c) = through(
        &gate,
        &up,
        principal(
            "uid=ann,ou=users,dc=example,dc=com",
            "ann@example.com",
            &groups,
        ),
    )
    .await;
    assert_eq!(c["groups"], serde_json::json!(groups));
    assert_eq!(c["role"], "annotator");
    assert_eq!(forwarded_groups(&seen), groups);
}

/// authgate configured by the seed's env file, unchanged, below a TOML file that names only the
/// keys and the upstream; the process environment supplies the CA file the seed leaves as a
/// placeholder, as an operator's deployment would.
async fn seed_gate(up: &Upstream) -> Gate {
    let keys = Keys::new();
    let ca = keys.dir.path().join("ldap-ca.crt");
    std::fs::write(&ca, CA_PEM).expect("write CA");
    let env_file = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/lse-example.env");
    let cfg = load_config(
        &config_text(&keys, &up.url(), ""),
        vec![(
            "AUTH_LDAP_CONNECTION_OPTIONS".into(),
            format!("OPT_X_TLS_CACERTFILE={};OPT_X_TLS_NEWCTX=0", ca.display()),
        )],
        Some(env_file),
    )
    .unwrap_or_else(|e| panic!("the seed env file loads: {e}"));
    assert!(cfg.ldap.enabled);
    assert!(!cfg.policy.manual_role_management);
    assert!(!cfg.policy.manual_workspace_management);
    assert!(!cfg.policy.manual_project_member_management);
    Gate::from_config(keys, cfg, None).await
}

/// uid, email, groups as the directory returns them, expected role, expected workspaces.
type SeedUser<'a> = (&'a str, &'a str, &'a [&'a str], &'a str, &'a [&'a str]);

#[tokio::test]
async fn the_seed_env_file_maps_real_directory_dns() {
    let up = Upstream::start().await;
    let gate = seed_gate(&up).await;
    let (addr, state) = (gate.addr, Arc::clone(&gate.state));
    let user = |uid: &str| format!("uid={uid},ou=Users,o=123abc,dc=example,dc=com");
    let team1 = "CN=team1,OU=users,O=60cbc901ec2e8e387a3b2d3e,DC=jumpcloud,DC=com";
    let team2 = "cn=team2, ou=users, o=60cbc901ec2e8e387a3b2d3e, dc=jumpcloud, dc=com";

    // (uid, email, groups as the directory returns them, role, workspaces)
    let cases: [SeedUser; 8] = [
        (
            "alice",
            "alice@example.com",
            &["CN=Admins, OU=Users, O=123abc, DC=example, DC=com", team1],
            "administrator",
            &["Workspace 1"],
        ),
        (
            "bob",
            "bob@example.com",
            &["cn=annotators,ou=users,o=123abc,dc=example,dc=com", team2],
            "annotator",
            &["Workspace 2"],
        ),
        (
            "gus",
            "gus@example.com",
            &[
                "cn=Guests,ou=Users,o=123abc,dc=Example,dc=COM",
                team1,
                team2,
            ],
            "annotator",
            &["Workspace 1", "Workspace 2"],
        ),
        (
            // The env value carries a trailing space; the directory does not.
            "mia",
            "mia@example.com",
            &["cn=managers,ou=users,o=123abc,dc=example,dc=com"],
            "manager",
            &[],
        ),
        (
            "rita",
            "rita@example.com",
            &[
                "cn=reviewers,ou=users,o=123abc,dc=example,dc=com",
                "cn=annotators,ou=users,o=123abc,dc=example,dc=com",
            ],
            "reviewer",
            &[],
        ),
        (
            "nina",
            "nina@example.com",
            &["CN=not,OU=users,O=123abc,DC=example,DC=com"],
            "not_activated",
            &[],
        ),
        (
            // AUTH_LDAP_ORGANIZATION_OWNER_EMAIL, compared lowercased; no group needed.
            "heartex",
            "Heartex@Heartex.NET",
            &[],
            "owner",
            &[],
        ),
        (
            "otto",
            "heartex@heartex.net",
            &["cn=deactivated,ou=users,o=123abc,dc=example,dc=com"],
            "owner",
            &[],
        ),
    ];
    for (uid, email, groups, role, workspaces) in cases {
        let (session, set_cookie) = state
            .sign_in(principal(&user(uid), email, groups), CLIENT)
            .await
            .unwrap_or_else(|e| panic!("{uid} signs in: {e}"));
        let id = &session.identity;
        assert_eq!(
            id.role.map(authgate::role::Role::as_str),
            Some(role),
            "{uid}"
        );
        assert_eq!(id.workspaces, workspaces, "{uid}");

        let before = up.count();
        let got = get(
            &format!("http://{addr}/api/projects/"),
            &[("cookie", &pair_of(&set_cookie))],
        )
        .await;
        if role == "not_activated" {
            assert_eq!(got.status, StatusCode::FORBIDDEN, "{uid}");
            assert_eq!(got.json()["error"], "pending_activation");
            assert_eq!(up.count(), before);
            continue;
        }
        assert_eq!(got.status, StatusCode::OK, "{uid}: {}", got.text());
        let seen = up.last();
        assert_eq!(seen.headers["x-forwarded-role"], role, "{uid}");
        let c = claims(
            seen.headers["x-identity-assertion"]
                .to_str()
                .expect("ascii"),
        );
        assert_eq!(c["role"], role, "{uid}");
        assert_eq!(c["workspaces"], serde_json::json!(workspaces), "{uid}");
        assert_eq!(c["sub"], user(uid));
        // Every group of these users is mentioned by the env file's variables.
        assert_eq!(c["groups"], serde_json::json!(groups), "{uid}");
        assert_eq!(forwarded_groups(&seen), groups, "{uid}");
    }

    // Refused: deactivated (which beats administrator), and, since the file sets
    // MANUAL_ROLE_MANAGEMENT=0, anyone in no mapped group.
    for (uid, groups) in [
        (
            "dave",
            &[
                "cn=Deactivated,ou=Users,o=123abc,dc=example,dc=com",
                "cn=admins,ou=users,o=123abc,dc=example,dc=com",
            ][..],
        ),
        (
            "sam",
            &["cn=strangers,ou=users,o=123abc,dc=example,dc=com", team1][..],
        ),
        ("zoe", &[][..]),
    ] {
        let err = state
            .sign_in(
                principal(&user(uid), &format!("{uid}@example.com"), groups),
                CLIENT,
            )
            .await
            .expect_err("refused");
        assert!(
            matches!(err, authgate::error::Error::Deactivated),
            "{uid}: {err:?}"
        );
    }

    // And the file's MANUAL_*=0 arm the policy for everyone, administrators included.
    let (_, set_cookie) = state
        .sign_in(
            principal(
                &user("alice"),
                "alice@example.com",
                &["cn=admins,ou=users,o=123abc,dc=example,dc=com"],
            ),
            CLIENT,
        )
        .await
        .expect("signed in");
    let before = up.count();
    for (method, path) in [
        (http::Method::PATCH, "/api/organizations/1/memberships"),
        (http::Method::POST, "/api/workspaces/1/memberships/"),
        (http::Method::DELETE, "/api/projects/1/members/"),
    ] {
        let got = send(
            Request::builder()
                .method(method.clone())
                .uri(format!("http://{addr}{path}"))
                .header("cookie", pair_of(&set_cookie))
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("req"),
        )
        .await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{method} {path}");
        assert_eq!(got.json()["error"], "managed_by_directory");
    }
    assert_eq!(up.count(), before);
}
