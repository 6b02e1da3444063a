//! Bypass resistance of the role table, end to end: every (row, method) of the shipped role
//! table is sent through a running authgate with `policy.enforce_roles = true`, as a signed-in
//! person whose role is just below the row's, in every spelling and method channel (case,
//! slashes, dot-segments, escapes, `;param`, format suffix, method case, override headers,
//! `_method` in the query and in form bodies, HEAD for GET), over raw HTTP/1.1 and over HTTP/2.
//! The recording upstream must see none of them and every answer must be authgate's 403
//! `role_required` naming the row's role. Positive controls: the same canonical requests by a
//! person of the row's role reach the upstream, and with `enforce_roles = false` everything does.

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::client::{get, raw, raw_status, send};
use common::gate::{identity, Gate};
use common::upstream::Upstream;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use authgate::policy::{Role, RoleTable};

const ENFORCED: &str = r#"
[policy]
enforce_roles = true
allow_upstream_tokens = true
"#;

#[derive(Debug, Clone)]
struct Case {
    row: usize,
    method: String,
    path: String,
    needed: Role,
    /// The highest role below `needed`: who is sent.
    below: Role,
}

/// `/api/projects/{id}/` → `/api/projects/7/`.
fn instantiate(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "7" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

fn row_methods(desc: &str) -> Vec<String> {
    if let Some(rest) = desc.strip_prefix('*') {
        let except: Vec<&str> = rest
            .trim()
            .strip_prefix("except")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        return ["GET", "POST", "PUT", "PATCH", "DELETE"]
            .into_iter()
            .filter(|m| !except.contains(m))
            .map(String::from)
            .collect();
    }
    desc.split_whitespace()
        .map(|m| m.trim_matches(|c| c == '(' || c == ')' || c == '+'))
        .map(String::from)
        .collect()
}

/// Every (row, method) whose canonical request the table refuses to the role just below.
fn cases(t: &RoleTable) -> Vec<Case> {
    let mut out = Vec::new();
    for (row, r) in t.rules().enumerate() {
        let Some(below) = Role::ALL.into_iter().rev().find(|x| *x < r.role()) else {
            continue;
        };
        let path = instantiate(r.path());
        for method in row_methods(&r.methods()) {
            let m = Method::from_bytes(method.as_bytes()).expect("method");
            let Some((needed, _)) = t.required(&authgate::policy::Request::new(&m, &path)) else {
                continue;
            };
            if needed <= below {
                continue;
            }
            out.push(Case {
                row,
                method,
                path: path.clone(),
                needed,
                below,
            });
        }
    }
    out
}

fn spellings(path: &str) -> Vec<(&'static str, String)> {
    let trimmed = path.trim_end_matches('/');
    let inner = trimmed.trim_start_matches('/');
    let segments: Vec<&str> = inner.split('/').collect();
    let join = |f: &dyn Fn(&str) -> String| -> String {
        format!(
            "/{}",
            segments.iter().map(|s| f(s)).collect::<Vec<_>>().join("/")
        )
    };
    let toggled = if path.ends_with('/') {
        trimmed.to_string()
    } else {
        format!("{path}/")
    };
    let mut out = vec![
        ("as listed", path.to_string()),
        ("trailing slash toggled", toggled),
        ("doubled slashes", format!("/{}", inner.replace('/', "//"))),
        (
            "/./ everywhere",
            format!("/./{}/./", inner.replace('/', "/./")),
        ),
        ("/zz/..", format!("/zz/..{path}")),
        ("%2e%2e", format!("/zz/%2e%2e{path}")),
        (
            "percent-encoded letters",
            join(&|s| match s.chars().next() {
                Some(c) if c.is_ascii_alphabetic() => format!("%{:02X}{}", c as u32, &s[1..]),
                _ => s.to_string(),
            }),
        ),
        ("upper case", path.to_ascii_uppercase()),
        (";param on every segment", join(&|s| format!("{s};x=1"))),
        ("format suffix", format!("{trimmed}.json")),
        ("query string", format!("{path}?a=1")),
    ];
    if segments.len() > 1 {
        out.push((
            "x/../ inside",
            format!("/{}/x/../{}", segments[0], segments[1..].join("/")),
        ));
    }
    out
}

/// (label, method, target, headers, form body)
type Wire = (
    String,
    String,
    String,
    Vec<(String, String)>,
    Option<String>,
);

fn wires(c: &Case) -> Vec<Wire> {
    let m = c.method.as_str();
    let mut out: Vec<Wire> = spellings(&c.path)
        .into_iter()
        .map(|(l, p)| (l.to_string(), m.to_string(), p, vec![], None))
        .collect();
    let p = c.path.clone();
    out.push((
        "lower-case method".into(),
        m.to_ascii_lowercase(),
        p.clone(),
        vec![],
        None,
    ));
    for carrier in ["GET", "POST"] {
        for h in [
            "X-HTTP-Method-Override",
            "X-Method-Override",
            "X_HTTP_Method_Override",
        ] {
            out.push((
                format!("{carrier} + {h}"),
                carrier.into(),
                p.clone(),
                vec![(h.into(), m.into())],
                None,
            ));
        }
        out.push((
            format!("{carrier} + _method query"),
            carrier.into(),
            format!("{p}?_method={m}"),
            vec![],
            None,
        ));
    }
    if matches!(m, "PUT" | "PATCH" | "DELETE") {
        out.push((
            "POST + _method form field".into(),
            "POST".into(),
            p.clone(),
            vec![],
            Some(format!("_method={m}")),
        ));
    }
    if m == "GET" {
        out.push(("HEAD".into(), "HEAD".into(), p.clone(), vec![], None));
    }
    if m == "PATCH" {
        out.push(("PUT for PATCH".into(), "PUT".into(), p, vec![], None));
    }
    out
}

fn person(role: Role) -> authgate::identity::Identity {
    identity(
        &format!("uid={role},ou=users,dc=example,dc=com"),
        &format!("{role}@example.com"),
        Some(role.as_str()),
        &[],
    )
}

/// authgate's refusal naming `needed` (HEAD: the status only).
fn check(head: bool, status: u16, body: &[u8], needed: Role) -> Result<(), String> {
    if status != 403 {
        return Err(format!(
            "status {status}: {}",
            String::from_utf8_lossy(body)
        ));
    }
    if head {
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| format!("not JSON: {:?}", String::from_utf8_lossy(body)))?;
    if v["error"] != "role_required" || v["required_role"] != needed.as_str() {
        return Err(format!("body {v}"));
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_role_gated_route_reaches_the_upstream_below_its_role_in_any_spelling() {
    let table = RoleTable::embedded();
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), ENFORCED).await;
    assert!(gate.state.config.policy.enforce_roles);
    let mut cookies = std::collections::BTreeMap::new();
    for role in Role::ALL {
        cookies.insert(role, gate.login(person(role)).await);
    }
    let cases = cases(&table);
    assert!(cases.len() > 60, "{} cases", cases.len());
    for role in [
        Role::Annotator,
        Role::Reviewer,
        Role::Manager,
        Role::Administrator,
    ] {
        assert!(
            cases.iter().any(|c| c.below == role),
            "no case refuses {role}"
        );
    }

    // HTTP/1.1, raw bytes: nothing normalizes the target on the way.
    let limit = Arc::new(Semaphore::new(32));
    let mut set = JoinSet::new();
    let mut total = 0;
    for c in &cases {
        let cookie = cookies[&c.below].clone();
        for (label, method, target, headers, form) in wires(c) {
            let mut bytes = format!(
                "{method} {target} HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\nAccept: application/json\r\nCookie: {cookie}\r\n"
            );
            for (k, v) in &headers {
                bytes.push_str(&format!("{k}: {v}\r\n"));
            }
            let body = form.unwrap_or_default();
            if !body.is_empty() {
                bytes.push_str("Content-Type: application/x-www-form-urlencoded\r\n");
            }
            bytes.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
            let (c, limit, addr) = (c.clone(), limit.clone(), gate.addr);
            total += 1;
            set.spawn(async move {
                let _p = limit.acquire_owned().await.expect("semaphore");
                let resp = raw(addr, bytes.as_bytes()).await;
                let status = raw_status(&resp);
                let body = resp.split_once("\r\n\r\n").map_or("", |(_, b)| b);
                // Chunked bodies: the JSON sits between the chunk-size lines.
                let json = body
                    .find('{')
                    .and_then(|i| body.rfind('}').map(|j| &body[i..=j]))
                    .unwrap_or("");
                check(method == "HEAD", status, json.as_bytes(), c.needed).map_err(|e| {
                    format!(
                        "role route[{}] as {}: {method} {target} ({label}): {e}",
                        c.row, c.below
                    )
                })
            });
        }
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.expect("task") {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} HTTP/1.1 requests not refused:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
    assert_eq!(up.count(), 0, "the upstream received a refused request");

    // HTTP/2 (prior knowledge), every case, the same wires.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut set = JoinSet::new();
    let mut total_h2 = 0;
    for c in &cases {
        let cookie = cookies[&c.below].clone();
        for (label, method, target, headers, form) in wires(c) {
            let Ok(uri) = format!("http://{}{target}", gate.addr).parse::<http::Uri>() else {
                continue;
            };
            let Ok(m) = Method::from_bytes(method.as_bytes()) else {
                continue;
            };
            let mut b = Request::builder()
                .method(m)
                .uri(uri)
                .header("cookie", &cookie)
                .header("accept", "application/json");
            for (k, v) in &headers {
                b = b.header(k.as_str(), v.as_str());
            }
            let body = match form {
                Some(f) => {
                    b = b.header("content-type", "application/x-www-form-urlencoded");
                    Bytes::from(f)
                }
                None => Bytes::new(),
            };
            let req = b.body(Full::new(body)).expect("request");
            let (client, limit, c) = (client.clone(), limit.clone(), c.clone());
            total_h2 += 1;
            set.spawn(async move {
                let _p = limit.acquire_owned().await.expect("semaphore");
                let fail = |e: String| {
                    format!(
                        "h2 role route[{}] as {}: {method} {target} ({label}): {e}",
                        c.row, c.below
                    )
                };
                let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
                    .await
                    .map_err(|_| fail("no answer".into()))?
                    .map_err(|e| fail(e.to_string()))?;
                if resp.version() != http::Version::HTTP_2 {
                    return Err(fail("not HTTP/2".into()));
                }
                let status = resp.status().as_u16();
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| fail(e.to_string()))?
                    .to_bytes();
                check(method == "HEAD", status, &body, c.needed).map_err(fail)
            });
        }
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.expect("task") {
            failures.push(e);
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total_h2} HTTP/2 requests not refused:\n{}",
        failures.len(),
        failures[..failures.len().min(30)].join("\n")
    );
    assert_eq!(
        up.count(),
        0,
        "the upstream received a refused request over HTTP/2"
    );
    eprintln!(
        "{} cases, {total} HTTP/1.1 and {total_h2} HTTP/2 requests refused",
        cases.len()
    );

    // An upstream API token without a session is decided as an annotator.
    let req = Request::post(gate.url("/api/projects/"))
        .header("authorization", "Token abc")
        .header("accept", "application/json")
        .body(Full::new(Bytes::new()))
        .expect("request");
    let got = send(req).await;
    check(false, got.status.as_u16(), &got.body, Role::Manager).expect("token as annotator");
    assert_eq!(up.count(), 0);

    // Positive control: the person of the row's role is forwarded.
    for c in &cases {
        let before = up.count();
        let req = Request::builder()
            .method(Method::from_bytes(c.method.as_bytes()).expect("method"))
            .uri(gate.url(&c.path))
            .header("cookie", &cookies[&c.needed])
            .body(Full::new(Bytes::new()))
            .expect("request");
        let got = send(req).await;
        assert_eq!(
            got.status,
            StatusCode::OK,
            "{} {} as {}: {}",
            c.method,
            c.path,
            c.needed,
            got.text()
        );
        assert_eq!(up.count(), before + 1);
    }
}

#[tokio::test]
async fn with_enforce_roles_off_an_annotator_reaches_every_route() {
    let table = RoleTable::embedded();
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "[policy]\nenforce_roles = false\n").await;
    let cookie = gate.login(person(Role::Annotator)).await;
    for c in cases(&table) {
        let req = Request::builder()
            .method(Method::from_bytes(c.method.as_bytes()).expect("method"))
            .uri(gate.url(&c.path))
            .header("cookie", &cookie)
            .body(Full::new(Bytes::new()))
            .expect("request");
        assert_eq!(
            send(req).await.status,
            StatusCode::OK,
            "{} {}",
            c.method,
            c.path
        );
    }
}

#[tokio::test]
async fn a_browser_gets_a_page_naming_the_role_and_the_refusal_is_audited() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), ENFORCED).await;
    let cookie = gate.login(person(Role::Annotator)).await;
    let got = get(
        &gate.url("/projects/3/settings/"),
        &[("cookie", &cookie), ("accept", "text/html")],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    let page = got.text();
    assert!(page.contains("manager"), "{page}");
    assert!(page.contains("annotator"), "{page}");
    assert!(got
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html")));
    let got = get(
        &gate.url("/api/projects/3/export"),
        &[("cookie", &cookie), ("accept", "application/json")],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    let v = got.json();
    assert_eq!(v["error"], "role_required");
    assert_eq!(v["required_role"], "manager");
    assert_eq!(v["role"], "annotator");
    assert!(v["request_id"].is_string());
    assert_eq!(up.count(), 0);
    // The forward-auth door decides the same.
    let got = get(
        &gate.url("/_auth/check"),
        &[
            ("cookie", &cookie),
            ("x-original-method", "DELETE"),
            ("x-original-uri", "/api/projects/3/"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    let got = get(
        &gate.url("/_auth/check"),
        &[
            ("cookie", &cookie),
            ("x-original-method", "POST"),
            ("x-original-uri", "/api/tasks/5/annotations/"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
}
