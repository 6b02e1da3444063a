//! `authgate selftest URL`, the binary, against (1) a real authgate in
//! front of the recording upstream (which echoes every request header):
//! nothing gets through, exit 0; and (2) a deliberately broken proxy in
//! front of the same upstream that forwards spoofed headers, follows any
//! `rd` and refuses a managed route only in its canonical spelling: every
//! family of leak is reported in plain words, exit 1.

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::process::Output;

use bytes::Bytes;
use common::client::get;
use common::gate::{identity, Gate, BIN};
use common::ports::free_addr;
use common::upstream::Upstream;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// The directory manages roles, workspaces and project members; LDAP is on
/// (its server is never contacted: the session is made directly).
const ARMED: &str = r#"
[policy]
manual_role_management = false
manual_workspace_management = false
manual_project_member_management = false
disable_signup_without_link = true
[ldap]
enabled = true
server_uri = "ldap://127.0.0.1:1"
user_dn_template = "uid=%(user)s,dc=x"
"#;

async fn selftest(args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    // Every request the binary sends has its own timeout, so it ends.
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .arg("selftest")
            .args(&args)
            .env_remove("AUTHGATE_SELFTEST_COOKIE")
            .output()
    })
    .await
    .expect("join")
    .expect("selftest runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// "N requests" on the line of `title`.
fn sent(out: &str, title: &str) -> usize {
    let line = out
        .lines()
        .find(|l| l.starts_with(title))
        .unwrap_or_else(|| panic!("no {title:?} line in\n{out}"));
    line.split(": ")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_deployment_passes_with_a_session() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), ARMED).await;
    let cookie = gate
        .login(identity(
            "uid=alice,dc=x",
            "alice@example.com",
            Some("administrator"),
            &["admins"],
        ))
        .await;
    let out = selftest(&[&gate.url(""), "--cookie", &cookie, "--path", "/echo"]).await;
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PASS: nothing got through."), "{text}");
    // The check was not vacuous: the upstream echoed headers (no note says
    // otherwise), it received the forged requests, and every family sent
    // its probes, the route variants included.
    assert!(!text.contains("without echoing"), "{text}");
    assert!(sent(&text, "forged identity headers") > 80, "{text}");
    assert!(sent(&text, "open redirects") > 20, "{text}");
    assert!(sent(&text, "policy-route variants") > 500, "{text}");
    let echoed = up.requests().iter().filter(|s| s.target == "/echo").count();
    assert!(echoed > 80, "{echoed}");
    // The session cookie is never printed.
    let secret = cookie.split_once('=').map(|(_, v)| v).unwrap_or(&cookie);
    assert!(!text.contains(secret));
    // And the upstream never saw a managed write.
    assert!(!up
        .requests()
        .iter()
        .any(|s| s.target.to_ascii_lowercase().contains("memberships")));
    // The session survived the run (no logout was sent).
    let me = get(&gate.url("/_auth/userinfo"), &[("cookie", &cookie)]).await;
    assert_eq!(me.status, StatusCode::OK);
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn role_probes_with_a_cookie_per_role_find_nothing_on_a_deployment_that_enforces_roles() {
    let up = Upstream::start().await;
    // manual_role_management = false: policy.enforce_roles is on by default.
    let gate = Gate::start(&up.url(), ARMED).await;
    assert!(gate.state.config.policy.enforce_roles);
    let who = |role: &str| {
        identity(
            &format!("uid={role},dc=x"),
            &format!("{role}@example.com"),
            Some(role),
            &[],
        )
    };
    let annotator = gate.login(who("annotator")).await;
    let manager = gate.login(who("manager")).await;
    let a = format!("annotator={annotator}");
    let m = format!("manager={manager}");
    let out = selftest(&[&gate.url(""), "--role-cookie", &a, "--role-cookie", &m]).await;
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("PASS: nothing got through."), "{text}");
    assert!(sent(&text, "role-gated routes") > 500, "{text}");
    assert!(!text.contains("not enforced here"), "{text}");
    for c in [&annotator, &manager] {
        let secret = c.split_once('=').map(|(_, v)| v).unwrap_or(c);
        assert!(!text.contains(secret), "a cookie was printed");
    }
    // Nothing the annotator may not do reached the upstream.
    assert!(!up.requests().iter().any(|s| {
        let t = s.target.to_ascii_lowercase();
        t.contains("/storages") || t.contains("/export") || t.contains("/django-rq")
    }));
    gate.shutdown().await;

    // Roles not enforced: the run says so instead of passing silently.
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "[policy]\nenforce_roles = false\n").await;
    let annotator = gate.login(who("annotator")).await;
    let a = format!("annotator={annotator}");
    let out = selftest(&[&gate.url(""), "--role-cookie", &a]).await;
    let text = stdout(&out);
    assert!(
        text.contains("organization roles are not enforced here"),
        "{text}"
    );
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clean_deployment_passes_anonymously_and_says_what_it_could_not_check() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), ARMED).await;
    let out = selftest(&[&gate.url("/")]).await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("without echoing request headers"), "{text}");
    assert!(text.contains("pass --cookie"), "{text}");
    assert!(sent(&text, "policy-route variants") > 500, "{text}");
    gate.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_target_is_exit_2() {
    let addr = free_addr();
    let out = selftest(&[&format!("http://{addr}"), "--timeout", "3s"]).await;
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not answer"));
    let out = selftest(&["ftp://x"]).await;
    assert_eq!(out.status.code(), Some(2));
}

/// A broken front proxy: forwards every header to the upstream, follows any
/// `rd`, and refuses `PATCH /api/organizations/0/memberships` only when
/// spelled exactly so (a naive `location =` rule).
async fn broken_proxy(upstream: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let client = client.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: Request<Incoming>| {
                    let client = client.clone();
                    async move { Ok::<_, Infallible>(broken(req, upstream, client).await) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

async fn broken(
    req: Request<Incoming>,
    upstream: SocketAddr,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_string();
    let query = req.uri().query().unwrap_or("").to_string();
    if path == "/_auth/login" {
        let rd = query.strip_prefix("rd=").unwrap_or("/");
        let rd: Vec<u8> = percent_encoding::percent_decode(rd.as_bytes()).collect();
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::FOUND;
        if let Ok(v) = http::HeaderValue::from_bytes(&rd) {
            r.headers_mut().insert(http::header::LOCATION, v);
        }
        return r;
    }
    if path == "/_auth/saml/login" {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = StatusCode::NOT_FOUND;
        return r;
    }
    if req.method() == http::Method::PATCH && path == "/api/organizations/0/memberships" {
        let mut r = Response::new(Full::new(Bytes::from_static(
            br#"{"error":"managed_by_directory"}"#,
        )));
        *r.status_mut() = StatusCode::FORBIDDEN;
        return r;
    }
    let (parts, body) = req.into_parts();
    let body = body
        .collect()
        .await
        .map(|c| c.to_bytes())
        .unwrap_or_default();
    let target = parts
        .uri
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let mut out = Request::builder()
        .method(parts.method)
        .uri(format!("http://{upstream}{target}"));
    for (k, v) in &parts.headers {
        out = out.header(k, v);
    }
    let Ok(out) = out.body(Full::new(body)) else {
        return Response::new(Full::new(Bytes::new()));
    };
    match client.request(out).await {
        Ok(resp) => {
            let (parts, body) = resp.into_parts();
            let body = body
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            Response::from_parts(parts, Full::new(body))
        }
        Err(_) => {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::BAD_GATEWAY;
            r
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_proxy_is_reported_with_what_got_through() {
    let up = Upstream::start().await;
    let proxy = broken_proxy(up.addr).await;
    let out = selftest(&[
        &format!("http://{proxy}"),
        "--path",
        "/echo",
        "--header",
        "X-Custom-User",
    ])
    .await;
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("FAIL"), "{text}");
    for want in [
        // Forged headers, in each spelling, and the configured extra name.
        "GOT THROUGH: forged header x-forwarded-user on GET /echo was passed on",
        "GOT THROUGH: forged header X-Forwarded-User on GET /echo",
        "GOT THROUGH: forged header x_forwarded_user (underscores)",
        "GOT THROUGH: forged header x-identity-assertion (sent twice)",
        "GOT THROUGH: forged header x-custom-user",
        // Open redirects.
        "GOT THROUGH: GET /_auth/login?rd=//authgate-selftest-evil.example/ (protocol-relative //host) kept the foreign target: Location: //authgate-selftest-evil.example/",
        "GOT THROUGH: GET /_auth/login?rd=/%5Cauthgate-selftest-evil.example/",
        // Route variants of the one rule this proxy has.
        "GOT THROUGH: route[0] PATCH /api/organizations/{id}/memberships: PATCH /api/organizations/0/memberships/ [path with a trailing slash",
        "[PUT instead of PATCH]",
        "[POST with X-HTTP-Method-Override: PATCH]",
        "[path in upper case",
    ] {
        assert!(text.contains(want), "missing {want:?} in\n{text}");
    }
    // The SAML login does not exist there: said, not counted as a leak.
    assert!(
        text.contains("/_auth/saml/login answered 404 (not enabled here)"),
        "{text}"
    );
    // Other rules are not in force behind this proxy: said so.
    assert!(text.contains("are not in force here"), "{text}");
}
