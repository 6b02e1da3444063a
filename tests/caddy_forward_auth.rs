//! Forward-auth mode behind a real Caddy (Debian's `caddy`, 2.6.2 on
//! Debian 12, installed by scripts/test): the shipped
//! `deploy/caddy/Caddyfile` runs on a free loopback port in front of the
//! recording upstream, with authgate in-process as the auth backend. The
//! test rewrites only the site address and the two upstream addresses, so
//! the deploy file stays the single source.

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::client::{get, raw_get, raw_status, send};
use common::cookies::rd_of;
use common::gate::{Gate, ISSUER};
use common::headers::{assert_jane, assert_no_spoofed, jane, spoofed_lines, HTML, IDENTITY_NAMES};
use common::process::{start_on_free_port, Proc, Server};
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::Full;

const CADDY: &str = "/usr/bin/caddy";
const DEPLOY_FILE: &str = "deploy/caddy/Caddyfile";

/// The deploy file with the site address and the two upstreams replaced;
/// panics unless each original appears exactly as expected.
fn deploy_file(authgate: SocketAddr, app: SocketAddr, listen: SocketAddr) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEPLOY_FILE);
    let mut out = std::fs::read_to_string(&path).expect("read the deploy file");
    for (from, to, count) in [
        (
            "http://labels.example.com {".to_string(),
            format!("http://{listen} {{"),
            1,
        ),
        ("127.0.0.1:4180".to_string(), authgate.to_string(), 2),
        ("127.0.0.1:8081".to_string(), app.to_string(), 1),
    ] {
        assert_eq!(out.matches(&from).count(), count, "{DEPLOY_FILE}: {from:?}");
        out = out.replace(&from, &to);
    }
    // The test's own global options: no admin endpoint, no HTTPS machinery.
    format!("{{\n\tadmin off\n\tauto_https off\n}}\n{out}")
}

/// A real Caddy running the deploy file; killed on drop.
async fn start_caddy(authgate: SocketAddr, app: SocketAddr) -> Server {
    assert!(
        Path::new(CADDY).exists(),
        "{CADDY} is missing: install Debian's caddy (scripts/test does)"
    );
    start_on_free_port(
        "caddy",
        "address already in use",
        Duration::from_secs(20),
        |listen| spawn_caddy(authgate, app, listen),
    )
    .await
}

fn spawn_caddy(authgate: SocketAddr, app: SocketAddr, listen: SocketAddr) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("Caddyfile");
    std::fs::write(&file, deploy_file(authgate, app, listen)).expect("write Caddyfile");
    let log_path = dir.path().join("caddy.log");
    let log = std::fs::File::create(&log_path).expect("log");
    let proc = Proc::spawn(
        Command::new(CADDY)
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&file)
            // Caddy keeps state under HOME / XDG dirs: a private one.
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log),
        "start caddy",
    )
    .with_log(log_path);
    Server {
        proc,
        addr: listen,
        dir,
    }
}

/// authgate owns sign-in (so the upstream's login and logout are
/// governed by it); the directory itself is never asked.
const SIGN_IN_BY_LDAP: &str = "[ldap]\nenabled = true\nserver_uri = \"ldap://127.0.0.1:1\"\nuser_dn_template = \"uid=%(user)s,dc=x\"\n";

async fn stack(extra: &str) -> (Upstream, Gate, Server) {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), extra).await;
    let caddy = start_caddy(gate.addr, up.addr).await;
    (up, gate, caddy)
}

/// Spellings beyond `SPOOFED` that WSGI servers merge with the dash ones.
const MORE_SPOOFED: &str = "X-Remote-User: spoof-remote\r\nRemote-User: spoof-remote-2\r\n\
X-Forwarded_User: spoof-mixed-1\r\nX_Forwarded-Role: spoof-mixed-2\r\n\
X-Forwarded_Preferred-Username: spoof-mixed-3\r\nRemote_User: spoof-remote-3\r\n";

#[tokio::test]
async fn caddy_sends_browsers_to_login_and_apis_get_401() {
    let (up, _gate, caddy) = stack("").await;
    let got = get(&caddy.url("/projects/1?tab=data"), &[("accept", HTML)]).await;
    assert_eq!(got.status, StatusCode::FOUND, "{}", caddy.log());
    let loc = got.headers["location"].to_str().expect("ascii").to_string();
    // Forward-auth answers name the login page by server.public_url.
    let path = loc.strip_prefix(ISSUER).unwrap_or(&loc).to_string();
    assert!(path.starts_with("/_auth/login?rd="), "{loc}");
    assert_eq!(rd_of(&path).as_deref(), Some("/projects/1?tab=data"));
    let page = get(&caddy.url(&path), &[("accept", HTML)]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("Sign in"), "{}", page.text());
    for (method, accept) in [
        ("GET", "application/json"),
        ("POST", HTML),
        ("PATCH", "*/*"),
    ] {
        let got = send(
            Request::builder()
                .method(method)
                .uri(caddy.url("/api/projects"))
                .header("accept", accept)
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("req"),
        )
        .await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{method} {accept}");
    }
    assert_eq!(up.count(), 0, "nothing unauthenticated reached the app");
}

#[tokio::test]
async fn caddy_forwards_the_identity_and_never_a_spoofed_header() {
    let (up, gate, caddy) = stack("[policy]\npublic_paths = [\"/public\"]\n").await;
    let cookie = gate.login(jane()).await;
    let spoofed = format!("{}{MORE_SPOOFED}", spoofed_lines());

    // Signed in: ours, once each, a JWT PyJWT accepts; nothing of the client's.
    let resp = raw_get(
        caddy.addr,
        &caddy.addr.to_string(),
        "/api/projects?page=2",
        &format!("Cookie: {cookie}\r\nAccept: application/json\r\n{spoofed}"),
    )
    .await;
    assert_eq!(raw_status(&resp), 200, "{resp}\n{}", caddy.log());
    assert_eq!(up.count(), 1, "{resp}\n{}", caddy.log());
    let seen = up.last();
    assert_eq!(seen.target, "/api/projects?page=2");
    assert_no_spoofed(&seen.headers, "caddy, signed in");
    assert_jane(&seen.headers, &caddy.url("/_auth/jwks.json"), "caddy").await;

    // Public path, anonymous: no identity at all, nothing of the client's.
    let resp = raw_get(
        caddy.addr,
        &caddy.addr.to_string(),
        "/public/logo.png",
        &spoofed,
    )
    .await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    let seen = up.last();
    assert_no_spoofed(&seen.headers, "caddy, public path");
    // authgate's answer names each identity header with an empty value, so
    // Caddy 2.6 copies nothing (not its placeholder text) and no client copy.
    for name in IDENTITY_NAMES {
        let v = seen.headers.get(name);
        assert!(v.is_none_or(|v| v.is_empty()), "public path: {name}: {v:?}");
    }

    // Not signed in, the client describing a public request in the
    // forward-auth headers: refused before the app.
    let n = up.count();
    let resp = raw_get(
        caddy.addr,
        &caddy.addr.to_string(),
        "/api/projects",
        "Accept: application/json\r\nX-Original-URI: /public/logo.png\r\nX-Original-Method: GET\r\n",
    )
    .await;
    assert!(matches!(raw_status(&resp), 401 | 403), "{resp}");
    assert_eq!(up.count(), n);

    // Logout through Caddy ends the session.
    let out = get(&caddy.url("/_auth/logout"), &[("cookie", cookie.as_str())]).await;
    assert!(out.status.is_success() || out.status.is_redirection());
    let got = get(
        &caddy.url("/api/projects"),
        &[("cookie", cookie.as_str()), ("accept", "application/json")],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), n);
}

/// Label Studio's own "Log out" behind Caddy: Caddy hands authgate's 303 to
/// the browser, which lands on authgate's logout; the app never sees it.
#[tokio::test]
async fn caddy_sends_the_apps_own_logout_to_authgates() {
    let (up, gate, caddy) = stack(SIGN_IN_BY_LDAP).await;
    let cookie = gate.login(jane()).await;
    let got = get(
        &caddy.url("/logout"),
        &[("cookie", cookie.as_str()), ("accept", HTML)],
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", caddy.log());
    let loc = got.headers["location"].to_str().expect("ascii").to_string();
    assert_eq!(loc, format!("{ISSUER}/_auth/logout"));
    let out = get(
        &caddy.url("/_auth/logout"),
        &[("cookie", cookie.as_str()), ("accept", HTML)],
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    let got = get(
        &caddy.url("/api/projects"),
        &[("cookie", cookie.as_str()), ("accept", "application/json")],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), 0, "nothing reached the app");
}

#[tokio::test]
async fn caddy_refuses_policy_denied_routes_and_pending_users() {
    let (up, gate, caddy) = stack("[policy]\nmanual_role_management = false\n").await;
    let cookie = gate.login(jane()).await;
    for (method, extra) in [
        ("PATCH", None),
        ("POST", Some(("x-http-method-override", "PATCH"))),
    ] {
        let mut req = Request::builder()
            .method(method)
            .uri(caddy.url("/api/organizations/1/memberships"))
            .header("cookie", cookie.as_str())
            .header("content-type", "application/json");
        if let Some((k, v)) = extra {
            req = req.header(k, v);
        }
        let got = send(
            req.body(Full::new(Bytes::from_static(
                b"{\"user_id\":2,\"role\":\"AD\"}",
            )))
            .expect("req"),
        )
        .await;
        assert_eq!(
            got.status,
            StatusCode::FORBIDDEN,
            "{method}: {}",
            caddy.log()
        );
    }
    assert_eq!(up.count(), 0, "the denied change never reached the app");
    let got = get(
        &caddy.url("/api/organizations/1/memberships"),
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(up.count(), 1);
    let mut pending = jane();
    pending.role = Some(authgate::role::Role::NotActivated);
    let pending = gate.login(pending).await;
    let got = get(&caddy.url("/projects"), &[("cookie", pending.as_str())]).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(up.count(), 1);
}
