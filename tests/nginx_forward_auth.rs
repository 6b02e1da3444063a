//! Forward-auth mode against real front proxies' expectations.
//!
//! nginx `auth_request`: the shipped `deploy/nginx/authgate-auth-request.conf`
//! runs in a real nginx (`/usr/sbin/nginx`, Debian's nginx-light, installed by
//! scripts/test) on a free loopback port, in front of the recording upstream,
//! with authgate in-process as the auth backend. The test rewrites only the
//! two `server` lines of the upstream blocks and the `listen` line, so the
//! deploy file stays the single source.
//!
//! Traefik ForwardAuth: no Traefik binary; the test calls `/_auth/check`
//! exactly as Traefik does (X-Forwarded-Method, X-Forwarded-Uri, the
//! client's headers copied).

mod common;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use bytes::Bytes;
use common::client::{get, raw_get, raw_status, send, Got};
use common::cookies::{is_local_path, rd_of};
use common::gate::Gate;
use common::headers::{
    assert_jane, assert_no_spoofed, jane, spoofed_lines, HTML, IDENTITY_NAMES, SPOOFED,
};
use common::process::{start_on_free_port, Proc, Server};
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::Full;

const NGINX: &str = "/usr/sbin/nginx";
const DEPLOY_CONF: &str = "deploy/nginx/authgate-auth-request.conf";
/// The `Host` browsers send to the deploy file's site.
const SITE: &str = "labels.example.com";

/// The deploy file with its two upstream servers and its listen address
/// replaced; panics if any of the three lines is not there exactly once.
fn deploy_conf(authgate: SocketAddr, app: SocketAddr, listen: SocketAddr) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(DEPLOY_CONF);
    let text = std::fs::read_to_string(&path).expect("read the deploy file");
    let mut out = text.clone();
    for (from, to) in [
        (
            "    server 127.0.0.1:4180;\n",
            format!("    server {authgate};\n"),
        ),
        (
            "    server 127.0.0.1:8081;\n",
            format!("    server {app};\n"),
        ),
        ("    listen 80;\n", format!("    listen {listen};\n")),
    ] {
        assert_eq!(
            out.matches(from).count(),
            1,
            "{DEPLOY_CONF}: expected exactly one {from:?}"
        );
        out = out.replacen(from, &to, 1);
    }
    out
}

/// A real nginx running the deploy file; killed (by its own pid) on drop.
async fn start_nginx(authgate: SocketAddr, app: SocketAddr) -> Server {
    assert!(
        Path::new(NGINX).exists(),
        "{NGINX} is missing: install Debian's nginx-light (scripts/test does)"
    );
    start_on_free_port(
        "nginx",
        "Address already in use",
        Duration::from_secs(15),
        |listen| spawn_nginx(authgate, app, listen),
    )
    .await
}

fn spawn_nginx(authgate: SocketAddr, app: SocketAddr, listen: SocketAddr) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    // Worker processes run as an unprivileged user when started as root.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
            .expect("chmod");
    }
    let d = dir.path().display();
    let conf = format!(
        "worker_processes 1;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
         access_log off;\n\
         client_body_temp_path {d}/client_body;\n\
         proxy_temp_path {d}/proxy;\n\
         fastcgi_temp_path {d}/fastcgi;\n\
         uwsgi_temp_path {d}/uwsgi;\n\
         scgi_temp_path {d}/scgi;\n\
         {}\n\
         }}\n",
        deploy_conf(authgate, app, listen)
    );
    let conf_path = dir.path().join("nginx.conf");
    std::fs::write(&conf_path, conf).expect("write nginx.conf");
    let log_path = dir.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let mut cmd = Command::new(NGINX);
    cmd.arg("-e")
        .arg("stderr")
        .arg("-p")
        .arg(dir.path())
        .arg("-c")
        .arg(&conf_path)
        .arg("-g")
        // One process: killing it leaves no worker behind (a killed
        // master's workers keep running, listening, for ever).
        .arg(format!(
            "daemon off; master_process off; pid {d}/nginx.pid; error_log stderr;"
        ))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    Server {
        proc: Proc::spawn(&mut cmd, "start nginx").with_log(log_path),
        addr: listen,
        dir,
    }
}

/// authgate (auth backend), the recording application, and nginx in front.
/// authgate owns sign-in (so the upstream's login and logout are
/// governed by it); the directory itself is never asked.
const SIGN_IN_BY_LDAP: &str = "[ldap]\nenabled = true\nserver_uri = \"ldap://127.0.0.1:1\"\nuser_dn_template = \"uid=%(user)s,dc=x\"\n";

async fn stack(extra: &str) -> (Upstream, Gate, Server) {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), extra).await;
    let nginx = start_nginx(gate.addr, up.addr).await;
    (up, gate, nginx)
}

/// More names the deploy file must clear, as a client would forge them.
const MORE_SPOOFED: &str =
    "X-Remote-User: spoof-remote\r\nRemote-User: spoof-remote-2\r\nX-Auth-Request-User: spoof-oauth2\r\n";

/// [`assert_jane`], and the JWT's role claim and its `kid`, the RFC 7638
/// thumbprint of its key.
async fn assert_identity(headers: &http::HeaderMap, jwks_url: &str, context: &str) {
    let v = assert_jane(headers, jwks_url, context).await;
    assert_eq!(v.claims["role"], "administrator");
    let kid = v.header["kid"].as_str().expect("kid");
    assert_eq!(v.thumbprints[kid], kid);
}

// ---------------------------------------------------------------------------
// nginx auth_request

#[tokio::test]
async fn nginx_sends_browsers_to_login_and_apis_get_401() {
    let (up, _gate, nginx) = stack("").await;

    let got = get(&nginx.url("/projects/1?tab=data"), &[("accept", HTML)]).await;
    assert_eq!(got.status, StatusCode::FOUND, "{}", nginx.log());
    let loc = got.headers["location"].to_str().expect("ascii").to_string();
    assert!(loc.starts_with("/_auth/login?rd="), "{loc}");
    assert_eq!(rd_of(&loc).as_deref(), Some("/projects/1?tab=data"));
    // The login page itself is authgate's, through nginx.
    let page = get(&nginx.url(&loc), &[("accept", HTML)]).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("Sign in"), "{}", page.text());

    for (method, accept) in [
        ("GET", "application/json"),
        ("GET", "*/*"),
        ("POST", HTML),
        ("PATCH", "application/json"),
    ] {
        let got = send(
            Request::builder()
                .method(method)
                .uri(nginx.url("/api/projects"))
                .header("accept", accept)
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("req"),
        )
        .await;
        assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{method} {accept}");
        assert_eq!(got.json()["error"], "unauthenticated", "{method} {accept}");
    }
    // Browsers never get sent off this host, whatever the target.
    let resp = raw_get(
        nginx.addr,
        SITE,
        "//evil.com/x",
        &format!("Accept: {HTML}\r\n"),
    )
    .await;
    assert_eq!(raw_status(&resp), 302, "{resp}");
    let loc = resp
        .lines()
        .find_map(|l| l.strip_prefix("Location: "))
        .expect("location")
        .to_string();
    assert!(loc.starts_with("/_auth/login?rd="), "{loc}");
    let login = get(&nginx.url(&loc), &[]).await;
    assert!(
        !login.text().contains("evil.com"),
        "the login page keeps only local targets: {}",
        login.text()
    );
    assert_eq!(up.count(), 0, "nothing unauthenticated reached the app");
}

#[tokio::test]
async fn nginx_forwards_the_identity_headers_and_a_valid_jwt() {
    let (up, gate, nginx) = stack("").await;
    let cookie = gate.login(jane()).await;
    let got = get(
        &nginx.url("/api/projects?page=2"),
        &[("cookie", cookie.as_str()), ("accept", "application/json")],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", nginx.log());
    let seen = up.last();
    assert_eq!(seen.target, "/api/projects?page=2");
    assert_eq!(seen.headers["host"], nginx.addr.to_string().as_str());
    assert_identity(&seen.headers, &nginx.url("/_auth/jwks.json"), "nginx").await;

    // A body reaches the app with its Content-Length.
    let got = send(
        Request::post(nginx.url("/api/projects"))
            .header("cookie", cookie.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"title\":\"x\"}")))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.body_len, 13);

    // Logout through nginx ends the session for nginx too.
    let n = up.count();
    let out = get(&nginx.url("/_auth/logout"), &[("cookie", cookie.as_str())]).await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.headers["set-cookie"]
        .to_str()
        .expect("ascii")
        .contains("Max-Age=0"));
    let got = get(
        &nginx.url("/api/projects"),
        &[("cookie", cookie.as_str()), ("accept", "application/json")],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), n);
}

/// Label Studio's own "Log out" (`GET /logout`) behind nginx: the shipped
/// file sends the browser to authgate's logout instead of the app, so the
/// session ends with the app's (it would otherwise sign the user straight
/// back in); an API client's `POST /api-auth/logout/` ends it at once.
#[tokio::test]
async fn nginx_ends_the_session_on_the_apps_own_logout() {
    let (up, gate, nginx) = stack(SIGN_IN_BY_LDAP).await;
    let alive = |cookie: String| {
        let url = nginx.url("/api/projects");
        async move {
            get(
                &url,
                &[("cookie", cookie.as_str()), ("accept", "application/json")],
            )
            .await
            .status
        }
    };

    let cookie = gate.login(jane()).await;
    let n = up.count();
    let got = get(
        &nginx.url("/logout"),
        &[("cookie", cookie.as_str()), ("accept", HTML)],
    )
    .await;
    assert_eq!(got.status, StatusCode::FOUND, "{}", nginx.log());
    assert_eq!(got.headers["location"], "/_auth/logout");
    let out = get(
        &nginx.url("/_auth/logout"),
        &[("cookie", cookie.as_str()), ("accept", HTML)],
    )
    .await;
    assert_eq!(out.status, StatusCode::OK);
    assert!(out.text().contains("signed out"), "{}", out.text());
    assert!(out.headers["set-cookie"]
        .to_str()
        .expect("ascii")
        .contains("Max-Age=0"));
    assert_eq!(alive(cookie).await, StatusCode::UNAUTHORIZED);

    let cookie = gate.login(jane()).await;
    assert_eq!(alive(cookie.clone()).await, StatusCode::OK);
    let n2 = up.count();
    let got = send(
        Request::post(nginx.url("/api-auth/logout/"))
            .header("cookie", cookie.as_str())
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{}", nginx.log());
    assert_eq!(alive(cookie).await, StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), n2, "the app's logout never reached the app");
    assert_eq!(n + 1, n2, "only the liveness probe reached the app");
}

#[tokio::test]
async fn nginx_never_forwards_spoofed_identity_headers() {
    let (up, gate, nginx) = stack("[policy]\npublic_paths = [\"/public\"]\n").await;
    let cookie = gate.login(jane()).await;
    let spoofed = format!("{}{MORE_SPOOFED}", spoofed_lines());

    // Signed in: ours, once each; nothing of the client's.
    let resp = raw_get(
        nginx.addr,
        SITE,
        "/api/projects",
        &format!("Cookie: {cookie}\r\nAccept: application/json\r\n{spoofed}"),
    )
    .await;
    assert_eq!(raw_status(&resp), 200, "{resp}\n{}", nginx.log());
    let seen = up.last();
    assert_no_spoofed(&seen.headers, "nginx, signed in");
    for name in ["x-remote-user", "remote-user", "x-auth-request-user"] {
        assert!(seen.headers.get(name).is_none(), "{name}");
    }
    assert_identity(
        &seen.headers,
        &nginx.url("/_auth/jwks.json"),
        "nginx spoofed",
    )
    .await;

    // Public path, anonymous: no identity at all, nothing of the client's.
    let resp = raw_get(nginx.addr, SITE, "/public/logo.png", &spoofed).await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    let seen = up.last();
    assert_eq!(seen.target, "/public/logo.png");
    assert_no_spoofed(&seen.headers, "nginx, public path");
    for name in IDENTITY_NAMES {
        assert!(seen.headers.get(name).is_none(), "public path: {name}");
    }

    // Not signed in: refused before the app, also when the client describes
    // the request as one to a public path in Traefik's headers.
    let n = up.count();
    let resp = raw_get(
        nginx.addr,
        SITE,
        "/api/projects",
        "Accept: application/json\r\nX-Forwarded-Uri: /public/logo.png\r\nX-Forwarded-Method: GET\r\n",
    )
    .await;
    assert!(matches!(raw_status(&resp), 401 | 403), "{resp}");
    assert_eq!(up.count(), n);
    let resp = raw_get(
        nginx.addr,
        SITE,
        "/api/projects",
        &format!("Accept: application/json\r\n{spoofed}"),
    )
    .await;
    assert_eq!(raw_status(&resp), 401, "{resp}");
    assert_eq!(up.count(), n);
}

#[tokio::test]
async fn nginx_refuses_policy_denied_routes_with_403() {
    let (up, gate, nginx) = stack("[policy]\nmanual_role_management = false\n").await;
    let cookie = gate.login(jane()).await;
    let patch = |path: &str| {
        Request::patch(nginx.url(path))
            .header("cookie", cookie.as_str())
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(
                b"{\"user_id\":2,\"role\":\"AD\"}",
            )))
            .expect("req")
    };
    let got = send(patch("/api/organizations/1/memberships")).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", nginx.log());
    assert_eq!(up.count(), 0, "the denied change never reached the app");
    // nginx passes the client's other headers on: Traefik's pair, forged to
    // describe a harmless request, does not get the PATCH through.
    let forged = Request::patch(nginx.url("/api/organizations/1/memberships"))
        .header("cookie", cookie.as_str())
        .header("x-forwarded-method", "GET")
        .header("x-forwarded-uri", "/api/projects")
        .header("x-original-method", "GET")
        .header("x-original-uri", "/api/projects")
        .body(Full::new(Bytes::from_static(b"{}")))
        .expect("req");
    let got = send(forged).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(up.count(), 0);
    // Reading is still allowed.
    let got = get(
        &nginx.url("/api/organizations/1/memberships"),
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(up.count(), 1);

    // A user pending activation is refused everywhere.
    let mut pending = jane();
    pending.role = Some(authgate::role::Role::NotActivated);
    let pending = gate.login(pending).await;
    let got = get(&nginx.url("/projects"), &[("cookie", pending.as_str())]).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(up.count(), 1);
}

// ---------------------------------------------------------------------------
// /_auth/check as nginx and Traefik call it

/// A request to /_auth/check with the given headers.
async fn check(gate: &Gate, headers: &[(&str, &str)]) -> Got {
    get(&gate.url("/_auth/check"), headers).await
}

#[tokio::test]
async fn traefik_forward_auth_check() {
    let up = Upstream::start().await;
    let gate = Gate::start(
        &up.url(),
        "[policy]\nmanual_role_management = false\npublic_paths = [\"/static\"]\n",
    )
    .await;

    // No session, API client: 401 JSON.
    let got = check(
        &gate,
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/api/projects"),
            ("x-forwarded-host", "labels.example.com"),
            ("x-forwarded-proto", "https"),
            ("accept", "application/json"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    assert_eq!(got.json()["error"], "unauthenticated");

    // No session, browser: Traefik hands the 302 to the browser as it is,
    // so it points at the public URL's login page.
    let got = check(
        &gate,
        &[
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/projects/1?tab=data"),
            ("accept", HTML),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FOUND);
    let loc = got.headers["location"].to_str().expect("ascii");
    assert!(loc.starts_with("http://gate.test/_auth/login?rd="), "{loc}");
    assert_eq!(rd_of(loc).as_deref(), Some("/projects/1?tab=data"));
    for evil in ["//evil.com/x", "/..//evil.com", "https://evil.com/x"] {
        let got = check(
            &gate,
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", evil),
                ("accept", HTML),
            ],
        )
        .await;
        if got.status == StatusCode::FOUND {
            let loc = got.headers["location"].to_str().expect("ascii");
            assert!(
                loc.starts_with("http://gate.test/_auth/login"),
                "{evil}: {loc}"
            );
            if let Some(rd) = rd_of(loc) {
                assert!(is_local_path(&rd), "{evil}: rd {rd:?}");
            }
        } else {
            assert!(got.status.is_client_error(), "{evil}: {}", got.status);
        }
    }

    // Signed in: 200 with the identity headers; the client's spoofed copies
    // (Traefik forwards the client's headers) are not echoed.
    let cookie = gate.login(jane()).await;
    let mut headers = vec![
        ("x-forwarded-method", "GET"),
        ("x-forwarded-uri", "/api/projects"),
        ("cookie", cookie.as_str()),
    ];
    headers.extend_from_slice(SPOOFED);
    let got = check(&gate, &headers).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_no_spoofed(&got.headers, "check response");
    assert_identity(&got.headers, &gate.url("/_auth/jwks.json"), "traefik").await;

    // Traefik passes the client's other headers on: a client adding nginx's
    // pair cannot have another request checked than the one Traefik
    // forwards (here: a public GET instead of a denied PATCH).
    for (what, c) in [("anonymous", ""), ("signed in", cookie.as_str())] {
        let got = check(
            &gate,
            &[
                ("x-forwarded-method", "PATCH"),
                ("x-forwarded-uri", "/api/organizations/1/memberships"),
                ("x-original-method", "GET"),
                ("x-original-uri", "/static/app.js"),
                ("cookie", c),
            ],
        )
        .await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{what}: {}", got.text());
        for name in IDENTITY_NAMES {
            assert!(got.headers.get(name).is_none(), "{what}: {name}");
        }
    }

    // Policy: the original method and path decide.
    let got = check(
        &gate,
        &[
            ("x-forwarded-method", "PATCH"),
            ("x-forwarded-uri", "/api/organizations/1/memberships"),
            ("cookie", cookie.as_str()),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(got.json()["error"], "managed_by_directory");

    // Public path: 200 without identity, session or not: each identity
    // header named with an empty value (Traefik replaces the request's
    // copies with it; Caddy 2.6 would otherwise copy its placeholder text).
    for c in ["", cookie.as_str()] {
        let got = check(
            &gate,
            &[
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/static/app.js"),
                ("cookie", c),
            ],
        )
        .await;
        assert_eq!(got.status, StatusCode::OK);
        for name in IDENTITY_NAMES {
            let v = got.headers.get(name);
            assert!(v.is_some_and(|v| v.is_empty()), "public: {name}: {v:?}");
        }
    }
    assert_eq!(up.count(), 0, "the check never calls the app");
}

#[tokio::test]
async fn nginx_style_check_answers_only_200_401_403() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "[policy]\nmanual_role_management = false\n").await;
    // nginx's auth_request understands 2xx, 401 and 403 only: a browser
    // without a session gets 401 here (nginx turns it into the redirect).
    let got = check(
        &gate,
        &[
            ("x-original-method", "GET"),
            ("x-original-uri", "/projects"),
            ("accept", HTML),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    let cookie = gate.login(jane()).await;
    let got = check(
        &gate,
        &[
            ("x-original-method", "GET"),
            ("x-original-uri", "/projects?x=1"),
            ("cookie", cookie.as_str()),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_identity(&got.headers, &gate.url("/_auth/jwks.json"), "check").await;
    let got = check(
        &gate,
        &[
            ("x-original-method", "PATCH"),
            ("x-original-uri", "/api/organizations/1/memberships"),
            ("cookie", cookie.as_str()),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    // An ambiguous original path is refused, not guessed at.
    let got = check(
        &gate,
        &[
            ("x-original-method", "GET"),
            ("x-original-uri", "/api/organizations/1%2Fmemberships"),
            ("cookie", cookie.as_str()),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
}

// ---------------------------------------------------------------------------
// /_auth/check/<original path> as Envoy's ext_authz HTTP service calls it
// (no Envoy binary in Debian: the requests are shaped as Envoy sends them:
// the original method, `path_prefix` + the original path and query, the
// headers `allowed_headers` lets through, no body).

async fn envoy(gate: &Gate, method: &str, target: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::builder()
        .method(method)
        .uri(gate.url(&format!("/_auth/check{target}")));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(Bytes::new())).expect("req")).await
}

#[tokio::test]
async fn envoy_ext_authz_check() {
    let up = Upstream::start().await;
    let gate = Gate::start(
        &up.url(),
        "[policy]\nmanual_role_management = false\npublic_paths = [\"/static\"]\n",
    )
    .await;
    // No session: APIs 401, browsers a 302 Envoy hands on (the public URL's login).
    let got = envoy(
        &gate,
        "GET",
        "/api/projects",
        &[("accept", "application/json")],
    )
    .await;
    assert_eq!(got.status, StatusCode::UNAUTHORIZED);
    let got = envoy(&gate, "GET", "/Projects/1?tab=data", &[("accept", HTML)]).await;
    assert_eq!(got.status, StatusCode::FOUND);
    let loc = got.headers["location"].to_str().expect("ascii");
    assert!(loc.starts_with("http://gate.test/_auth/login?rd="), "{loc}");
    assert_eq!(
        rd_of(loc.trim_start_matches("http://gate.test")).as_deref(),
        Some("/Projects/1?tab=data"),
        "the original path keeps its case"
    );

    // Signed in: 200 with the identity headers and a JWT PyJWT accepts.
    let cookie = gate.login(jane()).await;
    let got = envoy(
        &gate,
        "GET",
        "/api/projects?page=2",
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert_identity(&got.headers, &gate.url("/_auth/jwks.json"), "envoy").await;

    // The original method is what is checked: a directory-managed change is
    // refused, by method, override header or a client's forged pair.
    let got = envoy(
        &gate,
        "PATCH",
        "/api/organizations/1/memberships",
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(got.json()["error"], "managed_by_directory");
    let got = envoy(
        &gate,
        "POST",
        "/api/organizations/1/memberships",
        &[
            ("cookie", cookie.as_str()),
            ("x-http-method-override", "PATCH"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    let got = envoy(
        &gate,
        "PATCH",
        "/api/organizations/1/memberships",
        &[
            ("cookie", cookie.as_str()),
            ("x-forwarded-method", "GET"),
            ("x-forwarded-uri", "/static/app.js"),
        ],
    )
    .await;
    assert_eq!(
        got.status,
        StatusCode::FORBIDDEN,
        "a forged pair never wins"
    );

    // Public path: 200, every identity header named and empty (Envoy's
    // allowed_upstream_headers then replaces a client's copies).
    let got = envoy(
        &gate,
        "GET",
        "/static/app.js",
        &[("cookie", cookie.as_str())],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    for name in IDENTITY_NAMES {
        let v = got.headers.get(name);
        assert!(v.is_some_and(|v| v.is_empty()), "public: {name}: {v:?}");
    }
    assert_eq!(up.count(), 0, "the check never calls the app");
}
