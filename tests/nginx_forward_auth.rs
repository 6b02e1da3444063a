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
mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use support::*;

const NGINX: &str = "/usr/sbin/nginx";
const DEPLOY_CONF: &str = "deploy/nginx/authgate-auth-request.conf";
const ISSUER: &str = "http://gate.test";
const AUDIENCE: &str = "labeling-app";
const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

/// A real nginx running the deploy file; killed (by its own pid) on drop.
struct Nginx {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

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

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl Nginx {
    async fn start(authgate: SocketAddr, app: SocketAddr) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: install Debian's nginx-light (scripts/test does)"
        );
        // The listen port was free a moment ago; a rare clash is retried.
        let mut last_error = String::new();
        for _ in 0..5 {
            let mut nginx = Nginx::spawn(authgate, app, free_port());
            match nginx.wait_ready().await {
                Ok(()) => return nginx,
                Err(e) if e.contains("Address already in use") => last_error = e,
                Err(e) => panic!("nginx did not start: {e}"),
            }
        }
        panic!("nginx did not start: {last_error}");
    }

    fn spawn(authgate: SocketAddr, app: SocketAddr, listen: SocketAddr) -> Nginx {
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
        let log = std::fs::File::create(dir.path().join("stderr.log")).expect("log file");
        let child = Command::new(NGINX)
            .arg("-e")
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
            .stderr(log)
            .spawn()
            .expect("start nginx");
        Nginx {
            child,
            addr: listen,
            dir,
        }
    }

    /// Waits (bounded) until nginx accepts connections; `Err` with its log
    /// when it exits first.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("exited with {status}: {}", self.log()));
            }
            if tokio::net::TcpStream::connect(self.addr).await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(format!("not listening after 15 s: {}", self.log()))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stderr.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// authgate (auth backend), the recording application, and nginx in front.
async fn stack(extra: &str) -> (Upstream, Gate, Nginx) {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), extra).await;
    let nginx = Nginx::start(gate.addr, up.addr).await;
    (up, gate, nginx)
}

fn jane() -> authgate::identity::Identity {
    let mut id = identity(
        "uid=jane,ou=users,dc=example,dc=com",
        "jane@example.com",
        Some("administrator"),
        &["cn=Team A,ou=groups,dc=example,dc=com", "ls-admins"],
    );
    id.preferred_username = Some("jane".into());
    id
}

const OURS: [(&str, &str); 5] = [
    ("x-forwarded-user", "jane"),
    ("x-forwarded-email", "jane@example.com"),
    ("x-forwarded-preferred-username", "jane"),
    (
        "x-forwarded-groups",
        "cn=Team%20A%2Cou=groups%2Cdc=example%2Cdc=com,ls-admins",
    ),
    ("x-forwarded-role", "administrator"),
];

const IDENTITY_NAMES: [&str; 6] = [
    "x-identity-assertion",
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-role",
];

/// More names the deploy file must clear, as a client would forge them.
const MORE_SPOOFED: &str =
    "X-Remote-User: spoof-remote\r\nRemote-User: spoof-remote-2\r\nX-Auth-Request-User: spoof-oauth2\r\n";

async fn raw_get(addr: SocketAddr, target: &str, lines: &str) -> String {
    raw(
        addr,
        format!(
            "GET {target} HTTP/1.1\r\nHost: labels.example.com\r\n{lines}Connection: close\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
}

/// Exactly one copy of each identity header, with our values, and a JWT
/// that PyJWT accepts against the JWKS (fetched through `jwks_url`).
async fn assert_identity(headers: &http::HeaderMap, jwks_url: &str, context: &str) {
    for (name, want) in OURS {
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
    let resp = raw_get(nginx.addr, "//evil.com/x", &format!("Accept: {HTML}\r\n")).await;
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

#[tokio::test]
async fn nginx_never_forwards_spoofed_identity_headers() {
    let (up, gate, nginx) = stack("[policy]\npublic_paths = [\"/public\"]\n").await;
    let cookie = gate.login(jane()).await;
    let spoofed = format!("{}{MORE_SPOOFED}", spoofed_lines());

    // Signed in: ours, once each; nothing of the client's.
    let resp = raw_get(
        nginx.addr,
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
    let resp = raw_get(nginx.addr, "/public/logo.png", &spoofed).await;
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
        "/api/projects",
        "Accept: application/json\r\nX-Forwarded-Uri: /public/logo.png\r\nX-Forwarded-Method: GET\r\n",
    )
    .await;
    assert!(matches!(raw_status(&resp), 401 | 403), "{resp}");
    assert_eq!(up.count(), n);
    let resp = raw_get(
        nginx.addr,
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
