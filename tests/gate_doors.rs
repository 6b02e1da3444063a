//! One gate, two doors: the same table of requests goes through the proxy
//! (authgate forwards it itself) and through forward-auth (`/_auth/check`,
//! asked the way nginx `auth_request` and Traefik ForwardAuth ask), and the
//! verdicts must be identical — and the expected one. Each answer is read
//! back as a verdict: forwarded with whose identity (or none), sent to sign
//! in (302 to the login page or 401), or refused with which error.
//!
//! Left out of the table on purpose, because the doors answer differently by
//! design: the upstream's logout (the proxy answers it with authgate's
//! logout, forward-auth sends browsers there; the session ends at every door,
//! its own test below), the native login page for browsers (the proxy
//! redirects them, forward-auth answers 403) and encoded slashes (the proxy
//! answers 400, which nginx cannot pass on).

mod common;

use bytes::Bytes;
use common::client::{get, send, Got};
use common::gate::{identity, Gate};
use common::upstream::Upstream;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::Full;

/// The directory manages roles, authgate owns login (LDAP on, so the
/// upstream's login page is refused), `/static` is public.
const POLICY: &str = r#"
[policy]
manual_role_management = false
public_paths = ["/static"]
allow_upstream_tokens = true
[ldap]
enabled = true
server_uri = "ldap://127.0.0.1:1"
user_dn_template = "uid=%(user)s,dc=x"
"#;

const API: (&str, &str) = ("accept", "application/json");
const BROWSER: (&str, &str) = (
    "accept",
    "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
);

const FORWARD_ANON: &str = "forward anonymously";
const SIGN_IN: &str = "sign in";
const ROLES_MANAGED: &str = "refuse managed_by_directory manual_role_management";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    Anonymous,
    /// A signed-in administrator, `jane`.
    Jane,
    /// Signed in as `not_activated`.
    Pending,
    /// A session whose role became `deactivated`.
    Deactivated,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tokens {
    Allowed,
    Refused,
}

struct Case {
    method: &'static str,
    target: &'static str,
    who: Who,
    headers: Vec<(&'static str, &'static str)>,
    tokens: Tokens,
    want: String,
}

fn case(
    method: &'static str,
    target: &'static str,
    who: Who,
    headers: &[(&'static str, &'static str)],
    want: &str,
) -> Case {
    Case {
        method,
        target,
        who,
        headers: headers.to_vec(),
        tokens: Tokens::Allowed,
        want: want.to_string(),
    }
}

/// A method, a request target and extra headers.
type Spelling = (
    &'static str,
    &'static str,
    &'static [(&'static str, &'static str)],
);

fn table() -> Vec<Case> {
    let mut t = vec![
        // Public paths: forwarded without identity, session or not.
        case(
            "GET",
            "/static/app.js",
            Who::Anonymous,
            &[API],
            FORWARD_ANON,
        ),
        case(
            "GET",
            "/static/app.js",
            Who::Anonymous,
            &[BROWSER],
            FORWARD_ANON,
        ),
        case("GET", "/static/app.js", Who::Jane, &[API], FORWARD_ANON),
        // No session: browsers and API clients are both sent to sign in.
        case("GET", "/api/projects", Who::Anonymous, &[API], SIGN_IN),
        case(
            "GET",
            "/projects/1?tab=data",
            Who::Anonymous,
            &[BROWSER],
            SIGN_IN,
        ),
        case("POST", "/api/projects", Who::Anonymous, &[API], SIGN_IN),
        // A valid session.
        case("GET", "/api/projects", Who::Jane, &[API], "forward as jane"),
        case(
            "GET",
            "/projects/1",
            Who::Jane,
            &[BROWSER],
            "forward as jane",
        ),
        case(
            "POST",
            "/api/projects",
            Who::Jane,
            &[API],
            "forward as jane",
        ),
        case(
            "GET",
            "/api/organizations/1/memberships",
            Who::Jane,
            &[API],
            "forward as jane",
        ),
        // Role gates.
        case(
            "GET",
            "/api/projects",
            Who::Pending,
            &[API],
            "refuse pending_activation",
        ),
        case(
            "GET",
            "/api/projects",
            Who::Deactivated,
            &[API],
            "refuse deactivated",
        ),
        // The upstream's own login while authgate owns login (API clients).
        case(
            "GET",
            "/user/login/",
            Who::Anonymous,
            &[API],
            "refuse managed_by_directory native_login",
        ),
        case(
            "POST",
            "/user/login/",
            Who::Jane,
            &[API],
            "refuse managed_by_directory native_login",
        ),
        // A form POST may hide `_method=DELETE` in its body; JSON may not.
        case(
            "POST",
            "/api/users/7/",
            Who::Jane,
            &[API, ("content-type", "application/x-www-form-urlencoded")],
            ROLES_MANAGED,
        ),
        case(
            "POST",
            "/api/users/7/",
            Who::Jane,
            &[API, ("content-type", "application/json")],
            "forward as jane",
        ),
    ];

    // A directory-managed route in several spellings and method channels,
    // for every kind of caller: the policy comes before the session.
    let denied: &[Spelling] = &[
        ("PATCH", "/api/organizations/1/memberships", &[]),
        ("PATCH", "/API/Organizations/1/MEMBERSHIPS", &[]),
        ("PATCH", "/api/organizations/1/memberships/", &[]),
        ("PATCH", "//api//organizations/1//memberships", &[]),
        ("PATCH", "/api/organizations/1/./memberships", &[]),
        ("PATCH", "/api/x/../organizations/1/memberships", &[]),
        ("PATCH", "/api/%6Frganizations/1/memberships", &[]),
        ("PATCH", "/api/organizations/1/memberships;x=1", &[]),
        ("PATCH", "/api/organizations/1/memberships.json", &[]),
        ("PATCH", "/api/organizations/1/memberships?x=1", &[]),
        ("patch", "/api/organizations/1/memberships", &[]),
        ("PUT", "/api/organizations/1/memberships", &[]),
        ("DELETE", "/api/organizations/1/memberships/2/", &[]),
        (
            "GET",
            "/api/organizations/1/memberships",
            &[("x-http-method-override", "PATCH")],
        ),
        (
            "POST",
            "/api/organizations/1/set-default-role",
            &[("x_http_method_override", "PATCH")],
        ),
        (
            "GET",
            "/api/organizations/1/memberships",
            &[("x-method-override", "patch")],
        ),
        ("GET", "/api/organizations/1/memberships?_method=PATCH", &[]),
        ("POST", "/api/users/7/?_method=DELETE", &[]),
    ];
    for (method, target, extra) in denied {
        for (who, auth) in [
            (Who::Anonymous, None),
            (Who::Jane, None),
            (Who::Pending, None),
            (Who::Anonymous, Some("Token abc")),
        ] {
            let mut headers = vec![API];
            headers.extend_from_slice(extra);
            if let Some(a) = auth {
                headers.push(("authorization", a));
            }
            t.push(Case {
                method,
                target,
                who,
                headers,
                tokens: Tokens::Allowed,
                want: ROLES_MANAGED.into(),
            });
        }
    }

    // The upstream's API token: one rule, scheme in any case.
    for (auth, want) in [
        ("Token abc", FORWARD_ANON),
        ("token abc", FORWARD_ANON),
        ("TOKEN abc", FORWARD_ANON),
        ("ToKeN abc", FORWARD_ANON),
        ("Bearer abc.def.ghi", FORWARD_ANON),
        ("bearer abc", FORWARD_ANON),
        ("BEARER abc", FORWARD_ANON),
        ("Token  abc", FORWARD_ANON),
        ("Token", SIGN_IN),
        ("Bearer", SIGN_IN),
        ("Token x", FORWARD_ANON),
        ("Tokenabc", SIGN_IN),
        ("Tokens abc", SIGN_IN),
        ("Basic YTpi", SIGN_IN),
    ] {
        t.push(case(
            "GET",
            "/api/projects",
            Who::Anonymous,
            &[API, ("authorization", auth)],
            want,
        ));
        // Roles are enforced (policy.enforce_roles follows manual_role_management = false):
        // a token's owner is unknown, so it is decided as an annotator, and creating a
        // project needs a manager.
        t.push(case(
            "POST",
            "/api/projects",
            Who::Anonymous,
            &[API, ("authorization", auth)],
            if want == FORWARD_ANON {
                "refuse role_required"
            } else {
                want
            },
        ));
    }
    // A session wins over a token, both ways.
    t.push(case(
        "GET",
        "/api/projects",
        Who::Jane,
        &[API, ("authorization", "Token abc")],
        "forward as jane",
    ));
    t.push(case(
        "GET",
        "/api/projects",
        Who::Pending,
        &[API, ("authorization", "Token abc")],
        "refuse pending_activation",
    ));
    // Tokens not accepted: sign in, whatever the spelling.
    for auth in ["Token abc", "token abc", "BEARER abc"] {
        let mut c = case(
            "GET",
            "/api/projects",
            Who::Anonymous,
            &[API, ("authorization", auth)],
            SIGN_IN,
        );
        c.tokens = Tokens::Refused;
        t.push(c);
    }
    t
}

struct Doors {
    up: Upstream,
    tokens_allowed: Gate,
    tokens_refused: Gate,
    jane: String,
    pending: String,
    deactivated: String,
}

impl Doors {
    async fn start() -> Doors {
        let up = Upstream::start().await;
        let tokens_allowed = Gate::start(&up.url(), POLICY).await;
        let tokens_refused = Gate::start(
            &up.url(),
            &POLICY.replace(
                "allow_upstream_tokens = true",
                "allow_upstream_tokens = false",
            ),
        )
        .await;
        let user = |name: &str, role: &str| {
            let mut id = identity(
                &format!("uid={name},ou=users,dc=example,dc=com"),
                &format!("{name}@example.com"),
                Some(role),
                &["ls-admins"],
            );
            id.preferred_username = Some(name.into());
            id
        };
        // Sessions live in the store of the gate that started them: the
        // cases for the gate refusing tokens are all anonymous.
        let jane = tokens_allowed.login(user("jane", "administrator")).await;
        let pending = tokens_allowed.login(user("pat", "not_activated")).await;
        let deactivated = tokens_allowed.login(user("dee", "deactivated")).await;
        Doors {
            up,
            tokens_allowed,
            tokens_refused,
            jane,
            pending,
            deactivated,
        }
    }

    fn gate(&self, c: &Case) -> &Gate {
        match c.tokens {
            Tokens::Allowed => &self.tokens_allowed,
            Tokens::Refused => &self.tokens_refused,
        }
    }

    fn cookie(&self, c: &Case) -> Option<&str> {
        assert!(
            c.tokens == Tokens::Allowed || c.who == Who::Anonymous,
            "sessions exist only in the gate that allows tokens"
        );
        match c.who {
            Who::Anonymous => None,
            Who::Jane => Some(&self.jane),
            Who::Pending => Some(&self.pending),
            Who::Deactivated => Some(&self.deactivated),
        }
    }

    /// The case's own headers plus the session cookie, if any.
    fn headers(&self, c: &Case) -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = c
            .headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        if let Some(cookie) = self.cookie(c) {
            h.push(("cookie".into(), cookie.to_string()));
        }
        h
    }

    /// Door 1: the proxy.
    async fn proxy(&self, c: &Case) -> String {
        let gate = self.gate(c);
        let method = Method::from_bytes(c.method.as_bytes()).expect("method");
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{}{}", gate.addr, c.target));
        for (k, v) in self.headers(c) {
            b = b.header(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(&v).expect("value"),
            );
        }
        let before = self.up.count();
        let got = send(b.body(Full::new(Bytes::new())).expect("request")).await;
        if got.status == StatusCode::OK {
            assert_eq!(self.up.count(), before + 1, "{}: not forwarded", c.target);
            let seen = self.up.last();
            return forwarded(&seen.headers);
        }
        assert_eq!(self.up.count(), before, "{}: forwarded anyway", c.target);
        match got.status {
            StatusCode::FOUND => {
                let loc = got.headers["location"].to_str().expect("ascii");
                assert!(loc.starts_with("/_auth/login"), "{loc}");
                SIGN_IN.into()
            }
            _ => refused(&got),
        }
    }

    /// Door 2: `/_auth/check`, with the original request in nginx's
    /// (`X-Original-*`) or Traefik's (`X-Forwarded-*`) headers and the
    /// client's headers copied, as both proxies do.
    async fn check(&self, c: &Case, traefik: bool) -> String {
        let gate = self.gate(c);
        let (m, u) = if traefik {
            ("x-forwarded-method", "x-forwarded-uri")
        } else {
            ("x-original-method", "x-original-uri")
        };
        let mut headers = self.headers(c);
        headers.push((m.into(), c.method.into()));
        headers.push((u.into(), c.target.into()));
        let pairs: Vec<(&str, &str)> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let before = self.up.count();
        let got = get(&gate.url("/_auth/check"), &pairs).await;
        assert_eq!(self.up.count(), before, "the check never calls the app");
        match got.status {
            StatusCode::OK => forwarded(&got.headers),
            StatusCode::FOUND if traefik => {
                let loc = got.headers["location"].to_str().expect("ascii");
                assert!(loc.starts_with("http://gate.test/_auth/login"), "{loc}");
                SIGN_IN.into()
            }
            _ => refused(&got),
        }
    }
}

impl Doors {
    /// Door 3: Envoy `ext_authz` (HTTP service, `path_prefix: /_auth/check`):
    /// the original method, `/_auth/check` + the original path and query,
    /// the client's headers the filter is told to pass (all of them here).
    async fn envoy(&self, c: &Case) -> String {
        let gate = self.gate(c);
        let method = Method::from_bytes(c.method.as_bytes()).expect("method");
        let mut b = Request::builder()
            .method(method)
            .uri(format!("http://{}/_auth/check{}", gate.addr, c.target));
        for (k, v) in self.headers(c) {
            b = b.header(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(&v).expect("value"),
            );
        }
        let before = self.up.count();
        let got = send(b.body(Full::new(Bytes::new())).expect("request")).await;
        assert_eq!(self.up.count(), before, "the check never calls the app");
        match got.status {
            StatusCode::OK => forwarded(&got.headers),
            StatusCode::FOUND => {
                let loc = got.headers["location"].to_str().expect("ascii");
                assert!(loc.starts_with("http://gate.test/_auth/login"), "{loc}");
                SIGN_IN.into()
            }
            _ => refused(&got),
        }
    }
}

/// A forwarded request's verdict, from the identity headers it carries
/// (upstream side for the proxy, the 200 answer for forward-auth).
/// An empty value carries no identity (forward-auth answers to Traefik and
/// Caddy name every identity header, empty when there is none).
fn forwarded(h: &http::HeaderMap) -> String {
    let given = |name: &str| h.get(name).filter(|v| !v.is_empty());
    match (given("x-identity-assertion"), given("x-forwarded-user")) {
        (None, None) => FORWARD_ANON.into(),
        (Some(_), Some(user)) => format!("forward as {}", user.to_str().expect("ascii")),
        other => panic!("half an identity: {other:?}"),
    }
}

/// A refusal's verdict: 401 is "sign in", 403 names its error and reason.
fn refused(got: &Got) -> String {
    match got.status {
        StatusCode::UNAUTHORIZED => SIGN_IN.into(),
        StatusCode::FORBIDDEN => {
            let j = got.json();
            let error = j["error"].as_str().expect("error code");
            match j["reason"].as_str() {
                Some(reason) => format!("refuse {error} {reason}"),
                None => format!("refuse {error}"),
            }
        }
        s => format!("status {s}: {}", got.text()),
    }
}

#[tokio::test]
async fn proxy_and_forward_auth_reach_the_same_verdict() {
    let doors = Doors::start().await;
    let table = table();
    let mut wrong = Vec::new();
    for c in &table {
        let proxy = doors.proxy(c).await;
        let nginx = doors.check(c, false).await;
        let traefik = doors.check(c, true).await;
        let envoy = doors.envoy(c).await;
        let auth = c
            .headers
            .iter()
            .filter(|(k, _)| *k != "accept")
            .map(|(k, v)| format!("{k}: {v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let what = format!(
            "{} {} as {:?} [{auth}] tokens {:?}",
            c.method, c.target, c.who, c.tokens
        );
        if proxy != c.want || nginx != c.want || traefik != c.want || envoy != c.want {
            wrong.push(format!(
                "{what}: want {:?}; proxy {proxy:?}, nginx check {nginx:?}, traefik check {traefik:?}, envoy check {envoy:?}",
                c.want
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {} cases:\n{}",
        wrong.len(),
        table.len(),
        wrong.join("\n")
    );
}

/// The upstream's logout ends authgate's session at every door, for
/// browsers and API clients, and never reaches the app: the proxy answers
/// it with authgate's logout; forward-auth sends a browser to
/// `/_auth/logout` (303 where the answer goes to the browser as it is, 401
/// with `Location` for nginx, whose shipped configuration redirects) and
/// ends an API client's session itself (401).
#[tokio::test]
async fn the_upstreams_logout_ends_the_session_at_every_door() {
    let doors = Doors::start().await;
    let gate = &doors.tokens_allowed;
    let alive = |cookie: String| async move {
        let got = get(
            &gate.url("/api/projects"),
            &[API, ("cookie", cookie.as_str())],
        )
        .await;
        match got.status {
            StatusCode::OK => true,
            StatusCode::UNAUTHORIZED => false,
            s => panic!("status {s}"),
        }
    };
    for door in ["proxy", "nginx", "traefik", "envoy"] {
        for (method, target, accept) in [
            ("GET", "/logout", BROWSER),
            ("POST", "/api-auth/logout/", API),
        ] {
            let what = format!("{door}: {method} {target} ({})", accept.1);
            let mut id = identity(
                "uid=jane,ou=users,dc=example,dc=com",
                "jane@example.com",
                Some("administrator"),
                &["ls-admins"],
            );
            id.preferred_username = Some("jane".into());
            let cookie = gate.login(id).await;
            assert!(alive(cookie.clone()).await, "{what}: fresh session");
            let before = doors.up.count();
            let m = Method::from_bytes(method.as_bytes()).expect("method");
            let url = match door {
                "proxy" => gate.url(target),
                "envoy" => gate.url(&format!("/_auth/check{target}")),
                _ => gate.url("/_auth/check"),
            };
            let mut b = Request::builder()
                .method(if door == "proxy" || door == "envoy" {
                    m
                } else {
                    Method::GET
                })
                .uri(url)
                .header("accept", accept.1)
                .header("cookie", cookie.as_str());
            b = match door {
                "nginx" => b
                    .header("x-original-method", method)
                    .header("x-original-uri", target),
                "traefik" => b
                    .header("x-forwarded-method", method)
                    .header("x-forwarded-uri", target),
                _ => b,
            };
            let got = send(b.body(Full::new(Bytes::new())).expect("request")).await;
            assert_eq!(doors.up.count(), before, "{what}: reached the app");
            let location = got
                .headers
                .get("location")
                .map(|v| v.to_str().expect("ascii").to_string());
            let browser = accept == BROWSER;
            match (door, browser) {
                ("proxy", true) => {
                    assert_eq!(got.status, StatusCode::OK, "{what}");
                    assert!(got.text().contains("signed out"), "{what}: {}", got.text());
                }
                ("proxy", false) => {
                    assert_eq!(got.status, StatusCode::OK, "{what}");
                    assert_eq!(got.json()["signed_out"], true, "{what}");
                }
                ("nginx", true) => {
                    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{what}");
                    assert_eq!(location.as_deref(), Some("/_auth/logout"), "{what}");
                }
                ("traefik" | "envoy", true) => {
                    assert_eq!(got.status, StatusCode::SEE_OTHER, "{what}");
                    assert_eq!(
                        location.as_deref(),
                        Some("http://gate.test/_auth/logout"),
                        "{what}"
                    );
                }
                (_, false) => {
                    assert_eq!(got.status, StatusCode::UNAUTHORIZED, "{what}");
                    assert_eq!(location, None, "{what}");
                }
                _ => unreachable!(),
            }
            if door != "proxy" && browser {
                // The browser follows the redirect to authgate's logout.
                assert!(
                    alive(cookie.clone()).await,
                    "{what}: ended before the redirect"
                );
                let out = get(
                    &gate.url("/_auth/logout"),
                    &[BROWSER, ("cookie", cookie.as_str())],
                )
                .await;
                assert_eq!(out.status, StatusCode::OK, "{what}");
            }
            // The answer that ends the session clears the cookie too (a
            // redirect leaves that to authgate's logout).
            let set = got
                .headers
                .get("set-cookie")
                .map(|v| v.to_str().expect("ascii").to_string());
            let clears = set.as_deref().is_some_and(|c| c.contains("Max-Age=0"));
            assert_eq!(clears, door == "proxy" || !browser, "{what}: {set:?}");
            assert!(
                !alive(cookie).await,
                "{what}: the session outlived the logout"
            );
        }
    }
}

/// A sign-in never leads to the upstream's logout: reached from one (an
/// older nginx file sends a browser asking for `/logout` to the login page
/// with `rd=/logout`), the new session would end as soon as it started.
#[tokio::test]
async fn a_login_never_returns_to_the_upstreams_logout() {
    let doors = Doors::start().await;
    let gate = &doors.tokens_allowed;
    for (rd, kept) in [
        ("/logout", "/"),
        ("/logout/", "/"),
        ("/api-auth/logout/", "/"),
        ("/logout?next=/projects", "/"),
        ("/projects/1?tab=data", "/projects/1?tab=data"),
        ("/logouts", "/logouts"),
    ] {
        let encoded: String = rd
            .bytes()
            .map(|b| match b {
                b'?' | b'=' | b'&' => format!("%{b:02X}"),
                _ => (b as char).to_string(),
            })
            .collect();
        let page = get(&gate.url(&format!("/_auth/login?rd={encoded}")), &[BROWSER]).await;
        assert_eq!(page.status, StatusCode::OK, "{rd}");
        let want = format!("name=\"rd\" value=\"{}\"", kept.replace('&', "&amp;"));
        assert!(
            page.text().contains(&want),
            "{rd}: want {want}: {}",
            page.text()
        );
    }
}
