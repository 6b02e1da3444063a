//! Bypass resistance of the "manual management disabled" policy, end to end: every row of the
//! shipped route table that refuses in the armed state is sent through a running authgate, in
//! every spelling and method channel the issue lists, by a signed-in administrator, by a caller
//! with the upstream's own API token and by an anonymous caller, over HTTP/1.1 (raw bytes, so
//! nothing normalizes the target on the way) and HTTP/2. The recording upstream must see none of
//! them, and every answer must be authgate's own refusal. Positive controls show the same
//! upstream does receive read-only requests, and the same writes once the switches are back at
//! their defaults.

mod common;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{get, send};
use common::gate::{config_text, identity, Gate, Keys};
use common::upstream::Upstream;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use authgate::policy::{Decision, RouteTable, Switches};

/// Every switch armed: the directory manages roles, workspaces and project members, signup needs
/// a link, and LDAP is on (so authgate owns login and SSO). Upstream tokens are accepted, so the
/// token caller would be forwarded if the policy let it through.
const ARMED: &str = r#"
[policy]
manual_role_management = false
manual_workspace_management = false
manual_project_member_management = false
disable_signup_without_link = true
allow_upstream_tokens = true
[ldap]
enabled = true
server_uri = "ldap://127.0.0.1:1"
user_dn_template = "uid=%(user)s,dc=x"
"#;

/// How many requests are in flight at once.
const PARALLEL: usize = 32;

/// One (row, method) that the armed table refuses.
#[derive(Debug, Clone)]
struct Case {
    row: usize,
    method: String,
    /// The row's template with every `{x}` instantiated.
    path: String,
    /// The row is a native login page: browsers are sent to `/_auth/login`.
    login: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Caller {
    Administrator,
    UpstreamToken,
    Anonymous,
}

const CALLERS: [Caller; 3] = [
    Caller::Administrator,
    Caller::UpstreamToken,
    Caller::Anonymous,
];

impl Caller {
    fn headers(self, cookie: &str) -> Vec<(String, String)> {
        match self {
            Caller::Administrator => vec![("cookie".into(), cookie.to_string())],
            Caller::UpstreamToken => vec![("authorization".into(), "Token abc".into())],
            Caller::Anonymous => vec![],
        }
    }
}

fn switches_armed() -> Switches {
    Switches {
        manual_role_management: false,
        manual_workspace_management: false,
        manual_project_member_management: false,
        disable_signup_without_link: true,
        native_login_disabled: true,
        app_sso_disabled: true,
        overrides: Default::default(),
    }
}

/// `/api/projects/{id}/members/` → `/api/projects/7/members/`.
fn instantiate(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "7" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods a row names, read from its description (`"POST DELETE"`, `"PATCH (+PUT)"`,
/// `"* except GET HEAD OPTIONS"`); for `*`, a spread including an extension method.
fn row_methods(desc: &str) -> Vec<String> {
    if let Some(rest) = desc.strip_prefix('*') {
        let except: BTreeSet<&str> = rest
            .trim()
            .strip_prefix("except")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        return ["POST", "PUT", "PATCH", "DELETE", "PROPFIND"]
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

/// Every (row, method) of the embedded table that refuses in the armed state. The selection is
/// made from the row's own fields (action, switch default); the table's decision on the plain
/// spelling must agree, or the policy itself is wrong.
fn cases(table: &RouteTable) -> Vec<Case> {
    let sw = switches_armed();
    let mut out = Vec::new();
    for i in 0..table.len() {
        let rule = table.rule(i).expect("row in range");
        let refuses = match rule.action() {
            "deny" => true,
            "policy" => table.rule_switch(i).map(|(_, on)| on).unwrap_or(true),
            _ => false,
        };
        if !refuses {
            continue;
        }
        let path = instantiate(rule.path());
        for method in row_methods(&rule.methods()) {
            let m = Method::from_bytes(method.as_bytes()).expect("method token");
            let d = table.decide(&authgate::policy::Request::new(&m, &path), &sw);
            assert!(
                matches!(d, Decision::Deny { .. } | Decision::Login { .. }),
                "route[{i}] {rule}: {method} {path} is decided `{d}` in the armed state"
            );
            out.push(Case {
                row: i,
                method,
                path: path.clone(),
                login: matches!(d, Decision::Login { .. }),
            });
        }
    }
    out
}

/// The path spelled the ways a client or an attacker might, each naming the same resource.
fn spellings(path: &str) -> Vec<(&'static str, String)> {
    let trimmed = path.trim_end_matches('/');
    let inner = trimmed.trim_start_matches('/');
    let segments: Vec<&str> = inner.split('/').collect();
    let encode_first = |s: &str| -> String {
        match s.chars().next() {
            Some(c) if c.is_ascii_alphabetic() => format!("%{:02X}{}", c as u32, &s[1..]),
            _ => s.to_string(),
        }
    };
    let lower_hex = |s: &str| -> String {
        match s.chars().next() {
            Some(c) if c.is_ascii_alphabetic() => format!("%{:02x}{}", c as u32, &s[1..]),
            _ => s.to_string(),
        }
    };
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
        ("leading and trailing //", format!("//{inner}//")),
        (
            "/./ everywhere",
            format!("/./{}/./", inner.replace('/', "/./")),
        ),
        ("/zz/..", format!("/zz/..{path}")),
        (
            "x/../ inside",
            format!("/{}/x/../{}", segments[0], segments[1..].join("/")),
        ),
        ("%2e%2e", format!("/zz/%2e%2e{path}")),
        (
            "%2E%2E inside",
            format!("/{}/x/%2E%2E/{}", segments[0], segments[1..].join("/")),
        ),
        ("percent-encoded letters", join(&encode_first)),
        ("lower-case hex escapes", join(&lower_hex)),
        ("upper case", path.to_ascii_uppercase()),
        (";param on every segment", join(&|s| format!("{s};x=1"))),
        (
            ";param on the last segment",
            format!("{trimmed};jsessionid=1"),
        ),
        ("query string", format!("{path}?a=1&b=%2F")),
        ("format suffix", format!("{trimmed}.json")),
    ];
    if segments.len() == 1 {
        out.retain(|(l, _)| !l.ends_with("inside"));
    }
    out
}

/// One request as it goes on the wire.
#[derive(Debug, Clone)]
struct Wire {
    label: String,
    method: String,
    target: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// A browser navigation (GET/HEAD accepting text/html).
    navigation: bool,
}

impl Wire {
    fn new(label: impl Into<String>, method: &str, target: String) -> Wire {
        Wire {
            label: label.into(),
            method: method.to_string(),
            target,
            headers: Vec::new(),
            body: Vec::new(),
            navigation: false,
        }
    }

    fn header(mut self, k: &str, v: &str) -> Wire {
        self.headers.push((k.into(), v.into()));
        self
    }

    fn body(mut self, content_type: &str, body: &[u8]) -> Wire {
        self.headers
            .push(("content-type".into(), content_type.into()));
        self.body = body.to_vec();
        self
    }

    fn bytes(&self) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: gate.test\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.method,
            self.target,
            self.body.len()
        )
        .into_bytes();
        for (k, v) in &self.headers {
            out.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&self.body);
        out
    }
}

/// Every HTTP/1.1 request of one case: each spelling with the case's method, then the method
/// channels (lower-case method, override headers in both spellings, `_method` in the query and
/// in form bodies, HEAD for GET, a browser navigation, an absolute-form target) on the plain
/// path and on two hostile spellings.
fn wires(case: &Case) -> Vec<Wire> {
    let m = case.method.as_str();
    let mut out: Vec<Wire> = spellings(&case.path)
        .into_iter()
        .map(|(label, target)| Wire::new(label, m, target))
        .collect();
    let hostile: Vec<(&str, String)> = spellings(&case.path)
        .into_iter()
        .filter(|(l, _)| matches!(*l, "as listed" | "doubled slashes" | "upper case"))
        .collect();
    let writes = matches!(m, "PUT" | "PATCH" | "DELETE");
    for (spelling, path) in hostile {
        let w = |label: &str, method: &str| {
            Wire::new(format!("{spelling}, {label}"), method, path.clone())
        };
        out.push(w("lower-case method", &m.to_ascii_lowercase()));
        for header in [
            "X-HTTP-Method-Override",
            "X-Method-Override",
            "X_HTTP_Method_Override",
            "x-http-method-override",
        ] {
            out.push(w(&format!("POST + {header}"), "POST").header(header, m));
            out.push(w(&format!("GET + {header}"), "GET").header(header, m));
        }
        out.push(w("POST + X-HTTP-Method-Override list", "POST").header(
            "X-HTTP-Method-Override",
            &format!("GET, {}", m.to_ascii_lowercase()),
        ));
        let sep = if path.contains('?') { '&' } else { '?' };
        out.push(Wire::new(
            format!("{spelling}, POST + _method query"),
            "POST",
            format!("{path}{sep}_method={m}"),
        ));
        out.push(Wire::new(
            format!("{spelling}, GET + _method query"),
            "GET",
            format!("{path}{sep}_method={}", m.to_ascii_lowercase()),
        ));
        if writes {
            let form = format!("a=1&_method={m}");
            out.push(
                w("POST + _method form field", "POST")
                    .body("application/x-www-form-urlencoded", form.as_bytes()),
            );
            out.push(w("lower-case post + _method form field", "post").body(
                "Application/X-WWW-Form-Urlencoded; charset=utf-8",
                form.as_bytes(),
            ));
            let multipart = format!(
                "--b\r\nContent-Disposition: form-data; name=\"_method\"\r\n\r\n{m}\r\n--b--\r\n"
            );
            out.push(
                w("POST + _method multipart field", "POST")
                    .body("multipart/form-data; boundary=b", multipart.as_bytes()),
            );
        }
        if m == "GET" {
            out.push(w("HEAD", "HEAD"));
            let mut nav = w("browser navigation", "GET").header("accept", "text/html,*/*;q=0.8");
            nav.navigation = true;
            out.push(nav);
            let mut head = w("browser HEAD", "HEAD").header("accept", "text/html");
            head.navigation = true;
            out.push(head);
        }
        out.push(Wire::new(
            format!("{spelling}, absolute-form target"),
            m,
            format!("http://gate.test{path}"),
        ));
    }
    out
}

/// A raw HTTP/1.1 response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Sends `bytes` on a fresh connection (`Connection: close`) and reads the whole answer.
async fn exchange(addr: SocketAddr, bytes: &[u8]) -> Result<Reply, String> {
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(bytes)
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    match tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out)).await {
        Ok(Ok(_)) => {}
        Ok(Err(e)) if !out.is_empty() => {
            let _ = e;
        }
        Ok(Err(e)) => return Err(format!("read: {e}")),
        Err(_) => return Err("no answer within 10 s".into()),
    }
    let end = out
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no response head: {:?}", String::from_utf8_lossy(&out)))?;
    let head = String::from_utf8_lossy(&out[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line: {head}"))?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Reply {
        status,
        headers,
        body: out[end + 4..].to_vec(),
    })
}

/// Checks that `reply` is authgate's own refusal for `case`; an error message otherwise.
fn check_refusal(
    case: &Case,
    navigation: bool,
    head: bool,
    status: u16,
    location: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
) -> Result<(), String> {
    if case.login && navigation {
        return match (status, location) {
            (302, Some(l)) if l.starts_with("/_auth/login") => Ok(()),
            _ => Err(format!(
                "expected 302 to /_auth/login, got {status} {location:?}"
            )),
        };
    }
    if status != 403 {
        return Err(format!(
            "expected 403, got {status}: {:.200}",
            String::from_utf8_lossy(body)
        ));
    }
    let ct = content_type.unwrap_or("");
    if navigation {
        if !ct.starts_with("text/html") {
            return Err(format!("expected an HTML page, got {ct:?}"));
        }
        if !head && !String::from_utf8_lossy(body).contains("managed by your organization") {
            return Err(format!(
                "page without the reason: {}",
                String::from_utf8_lossy(body)
            ));
        }
        return Ok(());
    }
    if ct != "application/json" {
        return Err(format!("expected JSON, got {ct:?}"));
    }
    if head {
        return Ok(());
    }
    let v: serde_json::Value = serde_json::from_slice(body)
        .map_err(|_| format!("not JSON: {}", String::from_utf8_lossy(body)))?;
    if v["error"] != "managed_by_directory" || !v["reason"].is_string() {
        return Err(format!(
            "expected managed_by_directory with a reason, got {v}"
        ));
    }
    Ok(())
}

/// Re-decides every request the upstream recorded with the armed table: each must be allowed.
fn assert_upstream_saw_no_refused_request(up: &Upstream, table: &RouteTable) {
    let sw = switches_armed();
    for seen in up.requests() {
        let (path, query) = match seen.target.split_once('?') {
            Some((p, q)) => (p.to_string(), Some(q.to_string())),
            None => (seen.target.clone(), None),
        };
        let method = Method::from_bytes(seen.method.as_bytes()).expect("method");
        let overrides = authgate::policy::override_methods(&seen.headers, query.as_deref());
        let form = seen
            .headers
            .get_all("content-type")
            .iter()
            .any(|v| authgate::policy::is_form_content_type(v.to_str().unwrap_or("")));
        let d = table.decide(
            &authgate::policy::Request {
                method: &method,
                path: &path,
                query: query.as_deref(),
                override_methods: &overrides,
                form_body: form && method.as_str().eq_ignore_ascii_case("POST"),
            },
            &sw,
        );
        assert_eq!(
            d,
            Decision::Allow,
            "the upstream received a refused request: {} {}",
            seen.method,
            seen.target
        );
    }
}

fn administrator() -> authgate::identity::Identity {
    identity(
        "uid=admin,ou=users,dc=example,dc=com",
        "admin@example.com",
        Some("administrator"),
        &["cn=admins,ou=users,dc=example,dc=com"],
    )
}

fn report(failures: &[String], total: usize) {
    assert!(
        failures.is_empty(),
        "{} of {total} requests were not refused as expected:\n{}",
        failures.len(),
        failures
            .iter()
            .take(40)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_refused_route_reaches_the_upstream_in_any_spelling() {
    let started = Instant::now();
    let table = RouteTable::embedded();
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), ARMED).await;
    assert_eq!(
        gate.state.switches,
        switches_armed(),
        "the armed configuration"
    );
    assert_eq!(gate.state.config.policy.routes.len(), table.len());
    let cookie = gate.login(administrator()).await;

    let cases = cases(&table);
    // Every family the issue names is exercised.
    for family in ["a_", "b_", "c_", "d_", "e_", "f_"] {
        assert!(
            cases.iter().any(|c| table
                .rule(c.row)
                .is_some_and(|r| r.family().starts_with(family))),
            "no refused row of family {family}"
        );
    }
    assert!(cases.iter().any(|c| c.login), "no native login page");

    // HTTP/1.1, raw bytes.
    let limit = Arc::new(Semaphore::new(PARALLEL));
    let mut set = JoinSet::new();
    let mut total = 0;
    for case in &cases {
        for wire in wires(case) {
            for caller in CALLERS {
                let mut wire = wire.clone();
                wire.headers.extend(caller.headers(&cookie));
                let (case, limit, addr) = (case.clone(), limit.clone(), gate.addr);
                total += 1;
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await.expect("semaphore");
                    let head = wire.method.eq_ignore_ascii_case("HEAD");
                    let result = match exchange(addr, &wire.bytes()).await {
                        Ok(r) => check_refusal(
                            &case,
                            wire.navigation,
                            head,
                            r.status,
                            r.header("location"),
                            r.header("content-type"),
                            &r.body,
                        ),
                        Err(e) => Err(e),
                    };
                    result.map_err(|e| {
                        format!(
                            "route[{}] {caller:?} {} {} ({}): {e}",
                            case.row, wire.method, wire.target, wire.label
                        )
                    })
                });
            }
        }
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.expect("task") {
            failures.push(e);
        }
    }
    report(&failures, total);
    assert_eq!(up.count(), 0, "the upstream received refused requests");

    // HTTP/2 (prior knowledge), every case, the spellings an h2 client carries verbatim.
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let mut set = JoinSet::new();
    let mut total_h2 = 0;
    for case in &cases {
        let m = case.method.as_str();
        let mut variants: Vec<Wire> = spellings(&case.path)
            .into_iter()
            .map(|(label, target)| Wire::new(label, m, target))
            .collect();
        variants.push(
            Wire::new("POST + X-HTTP-Method-Override", "POST", case.path.clone())
                .header("x-http-method-override", m),
        );
        variants.push(Wire::new(
            "POST + _method query",
            "POST",
            format!("{}?_method={m}", case.path),
        ));
        if m == "GET" {
            variants.push(Wire::new("HEAD", "HEAD", case.path.clone()));
            let mut nav = Wire::new("browser navigation", "GET", case.path.clone())
                .header("accept", "text/html");
            nav.navigation = true;
            variants.push(nav);
        }
        for Wire {
            label,
            method,
            target,
            headers,
            navigation,
            ..
        } in variants
        {
            let uri = format!("http://{}{target}", gate.addr)
                .parse::<http::Uri>()
                .unwrap_or_else(|e| panic!("{target}: {e}"));
            for caller in CALLERS {
                let mut b = Request::builder()
                    .method(Method::from_bytes(method.as_bytes()).expect("method"))
                    .uri(uri.clone());
                for (k, v) in headers.iter().chain(caller.headers(&cookie).iter()) {
                    b = b.header(k.as_str(), v.as_str());
                }
                let req = b.body(Full::new(Bytes::new())).expect("request");
                let (client, limit, case) = (client.clone(), limit.clone(), case.clone());
                let (label, target) = (label.clone(), target.clone());
                total_h2 += 1;
                set.spawn(async move {
                    let _permit = limit.acquire_owned().await.expect("semaphore");
                    let fail = |e: String| {
                        format!(
                            "h2 route[{}] {caller:?} {} {target} ({label}): {e}",
                            case.row, case.method
                        )
                    };
                    let head = req.method() == Method::HEAD;
                    let resp = tokio::time::timeout(Duration::from_secs(10), client.request(req))
                        .await
                        .map_err(|_| fail("no answer within 10 s".into()))?
                        .map_err(|e| fail(format!("request: {e}")))?;
                    assert_eq!(resp.version(), http::Version::HTTP_2);
                    let status = resp.status().as_u16();
                    let h = resp.headers().clone();
                    let body = resp
                        .into_body()
                        .collect()
                        .await
                        .map_err(|e| fail(format!("body: {e}")))?
                        .to_bytes();
                    let text = |n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
                    check_refusal(
                        &case,
                        navigation,
                        head,
                        status,
                        text("location").as_deref(),
                        text("content-type").as_deref(),
                        &body,
                    )
                    .map_err(fail)
                });
            }
        }
    }
    let mut failures = Vec::new();
    while let Some(r) = set.join_next().await {
        if let Err(e) = r.expect("task") {
            failures.push(e);
        }
    }
    report(&failures, total_h2);
    assert_eq!(
        up.count(),
        0,
        "the upstream received refused requests over HTTP/2"
    );
    assert_upstream_saw_no_refused_request(&up, &table);

    // Positive control on the same gate and upstream: reads of the same families reach it.
    let reads: Vec<String> = (0..table.len())
        .filter_map(|i| table.rule(i))
        .filter(|r| r.action() == "allow" && r.methods() == "GET")
        .map(|r| instantiate(r.path()))
        .chain(
            [
                "/api/projects/7/members/",
                "/api/organizations/7/memberships/7/",
                "/api/workspaces/7/memberships/",
                "/api/projects/roles/",
                "/api/saml/settings",
            ]
            .map(String::from),
        )
        .collect();
    for path in &reads {
        let before = up.count();
        let got = get(&gate.url(path), &[("cookie", &cookie)]).await;
        assert_eq!(got.status, StatusCode::OK, "GET {path}: {}", got.text());
        assert_eq!(up.count(), before + 1, "GET {path} reached the upstream");
        let seen = up.last();
        assert_eq!(
            (seen.method.as_str(), seen.target.as_str()),
            ("GET", path.as_str())
        );
        assert!(seen.headers.contains_key("x-identity-assertion"));
    }
    // HEAD of a read is a read.
    let before = up.count();
    let got = send(
        Request::head(gate.url("/api/projects/7/members/"))
            .header("cookie", &cookie)
            .body(Full::new(Bytes::new()))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(up.count(), before + 1);
    assert_upstream_saw_no_refused_request(&up, &table);

    eprintln!(
        "{} cases ({} rows), {total} HTTP/1.1 and {total_h2} HTTP/2 requests refused in {:?}",
        cases.len(),
        cases.iter().map(|c| c.row).collect::<BTreeSet<_>>().len(),
        started.elapsed()
    );
}

#[tokio::test]
async fn with_the_switches_at_their_defaults_the_same_writes_reach_the_upstream() {
    let table = RouteTable::embedded();
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "").await;
    assert_eq!(gate.state.switches, Switches::default());
    let cookie = gate.login(administrator()).await;
    for case in cases(&table) {
        let before = up.count();
        let req = Request::builder()
            .method(Method::from_bytes(case.method.as_bytes()).expect("method"))
            .uri(gate.url(&case.path))
            .header("cookie", &cookie)
            .body(Full::new(Bytes::from_static(b"{}")))
            .expect("req");
        let got = send(req).await;
        assert_eq!(
            got.status,
            StatusCode::OK,
            "route[{}] {} {}: {}",
            case.row,
            case.method,
            case.path,
            got.text()
        );
        assert_eq!(up.count(), before + 1, "{} {}", case.method, case.path);
        let seen = up.last();
        assert_eq!(seen.method, case.method);
        assert_eq!(seen.target, case.path);
    }
}

#[tokio::test]
async fn signup_needs_an_invite_link_while_disable_signup_without_link_is_set() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "[policy]\ndisable_signup_without_link = true\n").await;
    for target in [
        "/user/signup/",
        "/user/signup",
        "/user/signup/?token=",
        "/USER/SIGNUP/?x=1",
    ] {
        let got = get(&gate.url(target), &[]).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{target}");
        assert_eq!(got.json()["error"], "managed_by_directory");
        assert_eq!(got.json()["reason"], "disable_signup_without_link");
        let page = get(&gate.url(target), &[("accept", "text/html")]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{target}");
        assert!(page.text().contains("managed by your organization"));
    }
    assert_eq!(up.count(), 0);
    // With the invite link the upstream's signup is reached (it has no session of ours yet:
    // the signup page is public while authgate does not own login).
    let keys = Keys::new();
    let text = config_text(
        &keys,
        &up.url(),
        "[policy]\ndisable_signup_without_link = true\npublic_paths = [\"/user/signup/\"]\n",
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    for (method, target) in [
        (Method::GET, "/user/signup/?token=abc123"),
        (Method::POST, "/user/signup/?next=/&token=abc123"),
    ] {
        let before = up.count();
        let got = send(
            Request::builder()
                .method(method.clone())
                .uri(gate.url(target))
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await;
        assert_eq!(
            got.status,
            StatusCode::OK,
            "{method} {target}: {}",
            got.text()
        );
        assert_eq!(up.count(), before + 1);
        assert_eq!(up.last().target, target);
    }
    // Invite writes stay refused.
    let got = send(
        Request::post(gate.url("/api/invite/reset-token"))
            .body(Full::new(Bytes::new()))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
}
