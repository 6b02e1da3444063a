//! `authgate selftest URL`: an operator's check of a deployed authgate.
//!
//! Owns sending the requests an attacker would send and saying, in plain
//! words, which of them got through:
//! - **forged identity headers**: every header authgate sets (the identity
//!   assertion, the plain `X-Forwarded-*` identity headers, the spellings
//!   other auth proxies use, `X-Forwarded-For` and kin, plus `--header`
//!   names), each in lower case, `Title-Case`, the `_` spelling
//!   (`X_Forwarded_User`, which WSGI/CGI servers merge with the `-` one) and
//!   repeated. A forged value "got through" when the upstream echoes it back
//!   (the demo upstream and any header-echo endpoint do) or when it turns an
//!   anonymous refusal into a success.
//! - **open redirects**: `rd` values that browsers or frameworks turn into
//!   another origin (`//evil`, `/\evil`, `https:evil`, encoded, tab and
//!   full-width slash forms) on `{prefix}/login` and `{prefix}/saml/login`.
//!   One got through when the evil host shows up in the response (the
//!   `Location`, the `RelayState` sent to the IdP, the login form's hidden
//!   target).
//! - **policy-route variants**: for every non-allow row of the route table
//!   (the embedded Label Studio table, or `--routes`), the canonical request
//!   first; when the deployment refuses it (403 `managed_by_directory`), every
//!   spelling of the same request (trailing slash, `//`, `/./`, `..`,
//!   percent-encoding, case, `;param`, format suffix, method case, PUT for
//!   PATCH, HEAD for GET, method-override headers, `_method` in the query and
//!   in a form body) must be refused too.
//! - **role probes** (with `--role-cookie ROLE=COOKIE`, one per role): for
//!   every row of the role table (the embedded Label Studio role table, or
//!   `--role-routes`) that needs a role above ROLE, the canonical request and
//!   its disguises (the same spellings and method channels) with ROLE's
//!   cookie must be refused (403 `role_required`, or `managed_by_directory`).
//!
//! Write requests carry no body (or only `_method=...`) and name the id `0`;
//! nothing is sent to `{prefix}/logout`, so a `--cookie` session survives.
//! The cookie is never printed.
//!
//! Must not: start servers, read authgate's configuration, or decide anything
//! the pure functions below do not decide (they are table-tested).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rustls_pki_types::pem::PemObject;
use serde::Deserialize;

use crate::role::Role;

/// The host every open-redirect probe points at.
pub const EVIL_HOST: &str = "authgate-selftest-evil.example";

/// What to check and how to reach it.
#[derive(Debug, Clone)]
pub struct Options {
    /// The deployment's base URL, e.g. `https://labels.example.com`.
    pub url: String,
    /// A `Cookie` header value of a signed-in session (never printed).
    pub cookie: Option<String>,
    /// The path the header probes are sent to.
    pub path: String,
    /// authgate's `server.prefix`.
    pub prefix: String,
    /// Extra header names to forge (e.g. configured `identity.headers.*`).
    pub headers: Vec<String>,
    /// A route table file; `None` = the embedded Label Studio table.
    pub routes: Option<PathBuf>,
    /// Signed-in sessions per organization role: (role, `Cookie` header value;
    /// never printed). Each is probed against the role table.
    pub role_cookies: Vec<(String, String)>,
    /// A role table file; `None` = the embedded Label Studio role table.
    pub role_routes: Option<PathBuf>,
    /// An extra CA certificate (PEM) to trust for https URLs.
    pub ca_file: Option<PathBuf>,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// Why the self-test could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0:?} is not an http:// or https:// URL")]
    Url(String),
    #[error("--header {0:?} is not a valid header name")]
    HeaderName(String),
    #[error("route table {path}: {reason}")]
    Routes { path: String, reason: String },
    #[error("--ca-file {path}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("TLS setup: {0}")]
    Tls(String),
    #[error("{url} does not answer: {reason}")]
    Unreachable { url: String, reason: String },
}

/// The three families of probes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Category {
    Headers,
    Redirects,
    Routes,
    Roles,
}

impl Category {
    fn title(self) -> &'static str {
        match self {
            Category::Headers => "forged identity headers",
            Category::Redirects => "open redirects (rd / RelayState)",
            Category::Routes => "policy-route variants",
            Category::Roles => "role-gated routes (per --role-cookie)",
        }
    }
}

/// One probe that got through, in plain words.
#[derive(Debug, Clone)]
pub struct Finding {
    pub category: Category,
    pub what: String,
}

/// The outcome of a run.
#[derive(Debug, Default)]
pub struct Report {
    pub url: String,
    /// Requests sent per category.
    pub sent: [usize; 4],
    pub findings: Vec<Finding>,
    /// Plain-words remarks (what could not be checked and why).
    pub notes: Vec<String>,
}

impl Report {
    /// Nothing got through.
    pub fn passed(&self) -> bool {
        self.findings.is_empty()
    }

    fn found(&mut self, category: Category, what: String) {
        self.findings.push(Finding { category, what });
    }

    /// The text printed to the operator.
    pub fn render(&self) -> String {
        let mut out = format!("authgate selftest of {}\n", self.url);
        for (i, c) in [
            Category::Headers,
            Category::Redirects,
            Category::Routes,
            Category::Roles,
        ]
        .into_iter()
        .enumerate()
        {
            let hits: Vec<&Finding> = self.findings.iter().filter(|f| f.category == c).collect();
            let verdict = if hits.is_empty() {
                "nothing got through".to_string()
            } else {
                format!("{} GOT THROUGH", hits.len())
            };
            out.push_str(&format!(
                "\n{}: {} requests, {verdict}\n",
                c.title(),
                self.sent[i]
            ));
            for f in hits {
                out.push_str(&format!("  GOT THROUGH: {}\n", f.what));
            }
        }
        if !self.notes.is_empty() {
            out.push('\n');
            for n in &self.notes {
                out.push_str(&format!("note: {n}\n"));
            }
        }
        out.push_str(if self.passed() {
            "\nPASS: nothing got through.\n"
        } else {
            "\nFAIL: some forged or disguised requests got through (listed above).\n"
        });
        out
    }
}

// ---------------------------------------------------------------------------
// Pure parts: what to send and how to judge the answers.
// ---------------------------------------------------------------------------

/// The header names forged by default: what authgate sets and what other
/// auth proxies set that upstreams are told to trust.
pub const DEFAULT_HEADERS: &[&str] = &[
    "X-Identity-Assertion",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Forwarded-Groups",
    "X-Forwarded-Role",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Auth-Request-Preferred-Username",
    "X-Remote-User",
    "Remote-User",
    "X-Forwarded-Access-Token",
    "X-Pomerium-Jwt-Assertion",
    "X-Forwarded-For",
    "X-Forwarded-Host",
    "X-Forwarded-Proto",
    "X-Real-Ip",
    "Forwarded",
];

/// One way of spelling a forged header on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spelling {
    /// How the report names it, e.g. `X_Forwarded_User (underscores)`.
    pub label: String,
    /// The field name to send (hyper writes it in lower case, or
    /// `Title-Case` when `title_case`).
    pub name: String,
    /// How many copies to send.
    pub copies: usize,
    pub title_case: bool,
}

/// The spellings of `name`: lower case, Title-Case, `_` for `-` (both
/// cases) and two copies.
pub fn spellings(name: &str) -> Vec<Spelling> {
    let lower = name.to_ascii_lowercase();
    let underscore = lower.replace('-', "_");
    let title = title_case(name);
    let mut out = vec![
        Spelling {
            label: lower.clone(),
            name: lower.clone(),
            copies: 1,
            title_case: false,
        },
        Spelling {
            label: title.clone(),
            name: lower.clone(),
            copies: 1,
            title_case: true,
        },
        Spelling {
            label: format!("{lower} (sent twice)"),
            name: lower.clone(),
            copies: 2,
            title_case: false,
        },
    ];
    if underscore != lower {
        out.push(Spelling {
            label: format!("{underscore} (underscores)"),
            name: underscore.clone(),
            copies: 1,
            title_case: false,
        });
        out.push(Spelling {
            label: format!("{} (underscores)", title.replace('-', "_")),
            name: underscore,
            copies: 1,
            title_case: true,
        });
    }
    out
}

fn title_case(name: &str) -> String {
    let mut up = true;
    name.chars()
        .map(|c| {
            let o = if up {
                c.to_ascii_uppercase()
            } else {
                c.to_ascii_lowercase()
            };
            up = c == '-' || c == '_';
            o
        })
        .collect()
}

/// A forged header got through when its unique value comes back in the
/// response, or when it turned an anonymous refusal into a success.
pub fn header_leaked(
    baseline: StatusCode,
    status: StatusCode,
    response_text: &str,
    canary: &str,
) -> bool {
    response_text.contains(canary) || (!baseline.is_success() && status.is_success())
}

/// The `rd` values tried, as they appear in the query string (already
/// encoded the way an attacker would send them), each with a description.
/// Every one names [`EVIL_HOST`] literally.
pub fn redirect_values() -> Vec<(String, &'static str)> {
    let e = EVIL_HOST;
    vec![
        (format!("//{e}/"), "protocol-relative //host"),
        (
            format!("%2F%2F{e}%2F"),
            "encoded protocol-relative %2F%2Fhost",
        ),
        (format!("///{e}/"), "triple slash ///host"),
        (format!("https://{e}/"), "absolute https URL"),
        (format!("HTTPS://{e}/"), "absolute URL, upper-case scheme"),
        (format!("https%3A%2F%2F{e}%2F"), "encoded absolute URL"),
        (format!("https:{e}"), "scheme without slashes (https:host)"),
        (format!("https:/{e}"), "scheme with one slash (https:/host)"),
        (format!("/%5C{e}/"), "/\\host (browsers read \\ as /)"),
        (format!("%5C%5C{e}/"), "\\\\host"),
        (format!("/%5C/{e}/"), "/\\/host"),
        (format!("/%252F{e}/"), "double-encoded slash /%2Fhost"),
        (format!("/%255C{e}/"), "double-encoded backslash /%5Chost"),
        (format!("/%09/{e}/"), "tab inside //host (browsers drop it)"),
        (format!("%09//{e}/"), "leading tab before //host"),
        (format!("%20//{e}/"), "leading space before //host"),
        (format!("/..//{e}/"), "dot-segment /..//host"),
        (
            format!("/%2e%2e//{e}/"),
            "encoded dot-segment /%2e%2e//host",
        ),
        (
            format!("%EF%BC%8F%EF%BC%8F{e}/"),
            "full-width slashes (U+FF0F)",
        ),
        (format!("/%EF%BC%8F{e}/"), "/ + full-width slash"),
        (format!("//user@{e}/"), "//user@host"),
        (format!("javascript:alert(1)//{e}"), "javascript: URL"),
        (
            format!("/%0D%0ALocation:%20https://{e}/"),
            "CR LF header injection",
        ),
    ]
}

/// An `rd` got through when the evil host appears in what came back: a
/// `Location`, the `RelayState` of a redirect to the IdP, a hidden form field.
pub fn redirect_leaked(location: Option<&str>, body: &str) -> bool {
    let needle = EVIL_HOST.as_bytes();
    let has = |s: &str| {
        let lower = s.to_ascii_lowercase();
        let once: Vec<u8> = percent_encoding::percent_decode(lower.as_bytes()).collect();
        let twice: Vec<u8> = percent_encoding::percent_decode(&once).collect();
        [lower.as_bytes(), &once, &twice]
            .iter()
            .any(|h| h.windows(needle.len()).any(|w| w == needle))
    };
    location.is_some_and(has) || has(body)
}

/// One request of a policy-route probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRequest {
    /// How the report names it.
    pub label: String,
    pub method: String,
    /// Path and optional query, as sent.
    pub target: String,
    pub headers: Vec<(String, String)>,
    /// A form body (`application/x-www-form-urlencoded`).
    pub form: Option<String>,
}

/// The canonical request for one row and method, and its disguises.
#[derive(Debug, Clone)]
pub struct RouteProbe {
    /// `route[i] METHOD /template`, for the report.
    pub rule: String,
    pub canonical: RouteRequest,
    pub variants: Vec<RouteRequest>,
}

#[derive(Debug, Deserialize)]
struct TableFile {
    #[serde(default)]
    route: Vec<Row>,
}

#[derive(Debug, Deserialize)]
struct Row {
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    except_methods: Vec<String>,
    path: String,
    #[serde(default)]
    action: String,
}

/// Methods tried for a `"*"` row, in order; the first not excepted is used.
const STAR_METHODS: [&str; 4] = ["POST", "PATCH", "DELETE", "PUT"];

/// The probes for every non-allow, non-intercept row of a route table.
///
/// # Errors
///
/// The table is not TOML of the route-table shape.
pub fn route_probes(table: &str) -> Result<Vec<RouteProbe>, String> {
    let file: TableFile = toml::from_str(table).map_err(|e| e.message().to_string())?;
    let mut out = Vec::new();
    for (i, row) in file.route.iter().enumerate() {
        if row.action == "allow" || row.action == "intercept" {
            continue;
        }
        let path = concrete_path(&row.path);
        let mut methods: Vec<String> = Vec::new();
        for m in &row.methods {
            let m = m.to_ascii_uppercase();
            if m == "*" {
                if let Some(pick) = STAR_METHODS
                    .iter()
                    .find(|s| !row.except_methods.iter().any(|e| e.eq_ignore_ascii_case(s)))
                {
                    methods.push((*pick).to_string());
                }
            } else if m != "OPTIONS" && m != "HEAD" && !methods.contains(&m) {
                methods.push(m);
            }
        }
        for m in methods {
            out.push(RouteProbe {
                rule: format!("route[{i}] {m} {}", row.path),
                canonical: plain(&m, &path, "canonical"),
                variants: variants(&m, &path),
            });
        }
    }
    Ok(out)
}

/// The template with every `{x}` as `0` (an id that names nothing).
fn concrete_path(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "0"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn plain(method: &str, target: &str, label: &str) -> RouteRequest {
    RouteRequest {
        label: label.to_string(),
        method: method.to_string(),
        target: target.to_string(),
        headers: vec![],
        form: None,
    }
}

/// Spellings of `path` that reach the same view in a Django-style upstream.
pub fn path_variants(path: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut add = |label: &str, p: String| {
        if p != path && !out.iter().any(|(_, q)| *q == p) {
            out.push((label.to_string(), p));
        }
    };
    let trimmed = path.trim_end_matches('/');
    let first = path.get(1..).unwrap_or("").split('/').next().unwrap_or("");
    // The path after its first segment, trailing slash kept.
    let tail = path.get(first.len() + 1..).unwrap_or("");
    if path.ends_with('/') {
        add("without the trailing slash", trimmed.to_string());
    } else {
        add("with a trailing slash", format!("{path}/"));
    }
    add("with a leading doubled slash", format!("/{path}"));
    if tail.len() > 1 {
        add("with a doubled slash", format!("/{first}/{tail}"));
        add("with /./", format!("/{first}/.{tail}"));
        add("with /x/../", format!("/{first}/x/..{tail}"));
        add("with %2F for a slash", format!("/{first}%2F{}", &tail[1..]));
        add("with %5C for a slash", format!("/{first}%5C{}", &tail[1..]));
        add("with ;param on a segment", format!("/{first};x=1{tail}"));
    }
    add("in upper case", path.to_ascii_uppercase());
    add("with a capital letter", title_case_first(path));
    if let Some(c) = first.chars().next().filter(char::is_ascii_alphanumeric) {
        add(
            "with a percent-encoded letter",
            format!("/%{:02x}{}{tail}", c as u32, &first[1..]),
        );
    }
    if let Some(c) = first.chars().last().filter(char::is_ascii_alphanumeric) {
        add(
            "with a percent-encoded letter (upper-case hex)",
            format!("/{}%{:02X}{tail}", &first[..first.len() - 1], c as u32),
        );
    }
    add("with ;param at the end", format!("{path};x=1"));
    if !trimmed.is_empty() {
        add("with a .json format suffix", format!("{trimmed}.json"));
    }
    add("with a query string", format!("{path}?x=1"));
    out
}

fn title_case_first(path: &str) -> String {
    let mut done = false;
    path.chars()
        .map(|c| {
            if !done && c.is_ascii_lowercase() {
                done = true;
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

fn variants(method: &str, path: &str) -> Vec<RouteRequest> {
    let mut out: Vec<RouteRequest> = path_variants(path)
        .into_iter()
        .map(|(label, p)| plain(method, &p, &format!("path {label} ({p})")))
        .collect();
    out.push(plain(
        &method.to_ascii_lowercase(),
        path,
        "method in lower case",
    ));
    if method == "PATCH" {
        out.push(plain("PUT", path, "PUT instead of PATCH"));
    }
    if method == "GET" {
        out.push(plain("HEAD", path, "HEAD instead of GET"));
    }
    // Method override: carried by a method the table may allow.
    let carrier = if method == "POST" { "GET" } else { "POST" };
    for h in [
        "X-HTTP-Method-Override",
        "X-Method-Override",
        "X_HTTP_Method_Override",
    ] {
        out.push(RouteRequest {
            label: format!("{carrier} with {h}: {method}"),
            method: carrier.into(),
            target: path.into(),
            headers: vec![(h.into(), method.into())],
            form: None,
        });
    }
    out.push(plain(
        carrier,
        &format!("{path}?_method={method}"),
        &format!("{carrier} with ?_method={method}"),
    ));
    out.push(plain(
        carrier,
        &format!("{path}?_METHOD={}", method.to_ascii_lowercase()),
        &format!("{carrier} with ?_METHOD={}", method.to_ascii_lowercase()),
    ));
    if carrier == "POST" {
        out.push(RouteRequest {
            label: format!("POST with a form field _method={method}"),
            method: "POST".into(),
            target: path.into(),
            headers: vec![],
            form: Some(format!("_method={method}")),
        });
    }
    out
}

#[derive(Debug, Deserialize)]
struct RoleFile {
    #[serde(default)]
    route: Vec<RoleRow>,
}

#[derive(Debug, Deserialize)]
struct RoleRow {
    #[serde(default)]
    methods: Vec<String>,
    #[serde(default)]
    except_methods: Vec<String>,
    path: String,
    role: String,
}

/// The probes of a role table for a session of `role`: one per row (and method) that needs a
/// higher role than `role`. No role (or not_activated, deactivated) is below every row.
///
/// # Errors
///
/// The table is not TOML of the role-table shape.
pub fn role_probes(table: &str, role: Option<Role>) -> Result<Vec<RouteProbe>, String> {
    let file: RoleFile = toml::from_str(table).map_err(|e| e.message().to_string())?;
    let have = role.filter(|r| r.is_active());
    let mut out = Vec::new();
    for (i, row) in file.route.iter().enumerate() {
        let Some(need) = Role::from_claim(&row.role).filter(|r| r.is_active()) else {
            return Err(format!("route[{i}]: unknown role {:?}", row.role));
        };
        if have.is_some_and(|h| h >= need) {
            continue;
        }
        let path = concrete_path(&row.path);
        let mut methods: Vec<String> = Vec::new();
        for m in &row.methods {
            let m = m.to_ascii_uppercase();
            if m == "*" {
                if let Some(pick) = ["GET", "POST", "PATCH", "DELETE"]
                    .iter()
                    .find(|s| !row.except_methods.iter().any(|e| e.eq_ignore_ascii_case(s)))
                {
                    methods.push((*pick).to_string());
                }
            } else if m != "OPTIONS" && m != "HEAD" && !methods.contains(&m) {
                methods.push(m);
            }
        }
        for m in methods {
            out.push(RouteProbe {
                rule: format!("role route[{i}] {m} {} (needs {})", row.path, row.role),
                canonical: plain(&m, &path, "canonical"),
                variants: variants(&m, &path),
            });
        }
    }
    Ok(out)
}

/// How a deployment answered a route probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// 403 `managed_by_directory`: the route rule applied.
    Refused,
    /// 400/405/414/431: refused as malformed or ambiguous before any rule.
    Rejected,
    /// Anything else (forwarded, or sent to sign in).
    Other(u16),
}

/// Classifies an answer. A HEAD answer has no body, so any 403 to HEAD
/// counts as the rule's refusal.
pub fn classify(method: &str, status: StatusCode, body: &str) -> Outcome {
    match status.as_u16() {
        403 if body.contains("managed_by_directory")
            || body.contains("role_required")
            || method.eq_ignore_ascii_case("HEAD") =>
        {
            Outcome::Refused
        }
        400 | 405 | 414 | 431 => Outcome::Rejected,
        s => Outcome::Other(s),
    }
}

/// A variant got through when the canonical request is refused by a rule
/// and the variant is neither refused by one nor rejected as malformed.
/// `None` when the canonical request is not refused here (nothing to check).
pub fn variant_leaked(canonical: Outcome, variant: Outcome) -> Option<bool> {
    if canonical != Outcome::Refused {
        return None;
    }
    Some(matches!(variant, Outcome::Other(_)))
}

// ---------------------------------------------------------------------------
// I/O: sending the probes.
// ---------------------------------------------------------------------------

type HttpsClient = Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

struct Prober {
    base: String,
    cookie: Option<HeaderValue>,
    plain: HttpsClient,
    title: HttpsClient,
    timeout: Duration,
}

struct Answer {
    status: StatusCode,
    location: Option<String>,
    /// The response headers and body as text.
    text: String,
    body: String,
}

impl Prober {
    fn new(opts: &Options) -> Result<Prober, Error> {
        let base = opts.url.trim_end_matches('/').to_string();
        let uri: http::Uri = base.parse().map_err(|_| Error::Url(opts.url.clone()))?;
        if !matches!(uri.scheme_str(), Some("http" | "https")) || uri.host().is_none() {
            return Err(Error::Url(opts.url.clone()));
        }
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls_native_certs::load_native_certs().certs {
            let _ = roots.add(cert);
        }
        if let Some(ca) = &opts.ca_file {
            let fail = |reason: String| Error::CaFile {
                path: ca.display().to_string(),
                reason,
            };
            let pem = std::fs::read(ca).map_err(|e| fail(e.to_string()))?;
            let mut any = false;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&pem) {
                let cert = cert.map_err(|e| fail(e.to_string()))?;
                roots.add(cert).map_err(|e| fail(e.to_string()))?;
                any = true;
            }
            if !any {
                return Err(fail("no PEM certificate in it".into()));
            }
        }
        let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let build = |title: bool| {
            let connector = hyper_rustls::HttpsConnectorBuilder::new()
                .with_tls_config(tls.clone())
                .https_or_http()
                .enable_http1()
                .build();
            Client::builder(TokioExecutor::new())
                .http1_title_case_headers(title)
                .build::<_, Full<Bytes>>(connector)
        };
        let cookie = match &opts.cookie {
            Some(c) => Some(
                HeaderValue::from_str(c)
                    .map_err(|_| Error::Url("--cookie is not a valid header value".into()))?,
            ),
            None => None,
        };
        Ok(Prober {
            base,
            cookie,
            plain: build(false),
            title: build(true),
            timeout: opts.timeout,
        })
    }

    async fn send(
        &self,
        method: &str,
        target: &str,
        headers: &[(HeaderName, HeaderValue)],
        form: Option<&str>,
        title_case: bool,
    ) -> Result<Answer, String> {
        self.send_as(None, method, target, headers, form, title_case)
            .await
    }

    /// [`Prober::send`] with another session's cookie (`None`: `--cookie`).
    async fn send_as(
        &self,
        cookie: Option<&HeaderValue>,
        method: &str,
        target: &str,
        headers: &[(HeaderName, HeaderValue)],
        form: Option<&str>,
        title_case: bool,
    ) -> Result<Answer, String> {
        let method = Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let url = format!("{}{target}", self.base);
        let mut b = Request::builder().method(method).uri(&url);
        b = b.header(http::header::ACCEPT, "application/json");
        b = b.header(http::header::USER_AGENT, "authgate-selftest");
        if let Some(c) = cookie.or(self.cookie.as_ref()) {
            b = b.header(http::header::COOKIE, c.clone());
        }
        for (k, v) in headers {
            b = b.header(k.clone(), v.clone());
        }
        let body = match form {
            Some(f) => {
                b = b.header(
                    http::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                );
                Bytes::from(f.to_string())
            }
            None => Bytes::new(),
        };
        let req = b.body(Full::new(body)).map_err(|e| e.to_string())?;
        let client = if title_case { &self.title } else { &self.plain };
        let work = async {
            let resp = client.request(req).await.map_err(|e| describe(&e))?;
            let status = resp.status();
            let location = resp
                .headers()
                .get(http::header::LOCATION)
                .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
            let mut text = String::new();
            for (k, v) in resp.headers() {
                text.push_str(k.as_str());
                text.push_str(": ");
                text.push_str(&String::from_utf8_lossy(v.as_bytes()));
                text.push('\n');
            }
            // Cap what is read: an echo fits in far less.
            let body = http_body_util::Limited::new(resp.into_body(), 4 << 20)
                .collect()
                .await
                .map(|c| c.to_bytes())
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&body).into_owned();
            text.push_str(&body);
            Ok(Answer {
                status,
                location,
                text,
                body,
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .map_err(|_| format!("no answer within {:?}", self.timeout))?
    }
}

fn describe(e: &hyper_util::client::legacy::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(inner) = src {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        src = inner.source();
    }
    s
}

/// A value unique to this run and probe.
fn canary(n: usize) -> String {
    let mut raw = [0u8; 6];
    let _ = aws_lc_rs::rand::fill(&mut raw);
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    format!("selftest{hex}n{n}")
}

/// Runs every probe against `opts.url`.
///
/// # Errors
///
/// The URL, `--header`, `--ca-file` or route table is unusable, or the
/// deployment does not answer at all.
pub async fn run(opts: &Options) -> Result<Report, Error> {
    let extra: Vec<String> = opts
        .headers
        .iter()
        .map(|h| {
            HeaderName::from_bytes(h.as_bytes())
                .map(|_| h.clone())
                .map_err(|_| Error::HeaderName(h.clone()))
        })
        .collect::<Result<_, _>>()?;
    let table = match &opts.routes {
        Some(p) => std::fs::read_to_string(p).map_err(|e| Error::Routes {
            path: p.display().to_string(),
            reason: e.to_string(),
        })?,
        None => include_str!("../config/label-studio-routes.toml").to_string(),
    };
    let table_name = opts.routes.as_ref().map_or_else(
        || "the embedded Label Studio table".to_string(),
        |p| p.display().to_string(),
    );
    let probes = route_probes(&table).map_err(|reason| Error::Routes {
        path: table_name.clone(),
        reason,
    })?;
    let prober = Prober::new(opts)?;
    let mut report = Report {
        url: prober.base.clone(),
        ..Report::default()
    };
    let path = if opts.path.starts_with('/') {
        opts.path.clone()
    } else {
        format!("/{}", opts.path)
    };

    // --- Forged headers. -------------------------------------------------
    let echo = canary(0);
    let echo_name = HeaderName::from_static("x-authgate-selftest-echo");
    let baseline = prober
        .send(
            "GET",
            &path,
            &[(
                echo_name,
                HeaderValue::from_str(&echo).map_err(|e| Error::Url(e.to_string()))?,
            )],
            None,
            false,
        )
        .await
        .map_err(|reason| Error::Unreachable {
            url: format!("{}{path}", prober.base),
            reason,
        })?;
    report.sent[0] += 1;
    let echoes = baseline.text.contains(&echo);
    if !echoes {
        report.notes.push(format!(
            "GET {path} answered {} without echoing request headers, so forged headers were only checked for turning a refusal into a success; {}",
            baseline.status.as_u16(),
            if opts.cookie.is_some() {
                "point --path at an upstream endpoint that echoes headers (the demo upstream does) for the full check"
            } else {
                "pass --cookie with a signed-in session and --path at an upstream endpoint that echoes headers for the full check"
            }
        ));
    }
    let mut names: Vec<String> = DEFAULT_HEADERS.iter().map(|s| s.to_string()).collect();
    for h in extra {
        if !names.iter().any(|n| n.eq_ignore_ascii_case(&h)) {
            names.push(h);
        }
    }
    let mut n = 1;
    for name in &names {
        for sp in spellings(name) {
            let value = canary(n);
            n += 1;
            let Ok(hn) = HeaderName::from_bytes(sp.name.as_bytes()) else {
                continue;
            };
            let hv = HeaderValue::from_str(&value).map_err(|e| Error::Url(e.to_string()))?;
            let hdrs: Vec<(HeaderName, HeaderValue)> =
                (0..sp.copies).map(|_| (hn.clone(), hv.clone())).collect();
            report.sent[0] += 1;
            match prober.send("GET", &path, &hdrs, None, sp.title_case).await {
                Ok(a) => {
                    if header_leaked(baseline.status, a.status, &a.text, &value) {
                        let how = if a.text.contains(&value) {
                            "its value came back from the upstream"
                        } else {
                            "it turned the refusal into a success"
                        };
                        report.found(
                            Category::Headers,
                            format!(
                                "forged header {} on GET {path} was passed on: {how} (status {})",
                                sp.label,
                                a.status.as_u16()
                            ),
                        );
                    }
                }
                Err(e) => report.notes.push(format!(
                    "forged header {} on GET {path}: no answer ({e})",
                    sp.label
                )),
            }
        }
    }

    // --- Open redirects. ------------------------------------------------
    let prefix = opts.prefix.trim_end_matches('/');
    for endpoint in ["/login", "/saml/login"] {
        let mut enabled = true;
        for (value, what) in redirect_values() {
            let target = format!("{prefix}{endpoint}?rd={value}");
            report.sent[1] += 1;
            match prober.send("GET", &target, &[], None, false).await {
                Ok(a) if a.status == StatusCode::NOT_FOUND => {
                    enabled = false;
                    break;
                }
                Ok(a) => {
                    if redirect_leaked(a.location.as_deref(), &a.body) {
                        report.found(
                            Category::Redirects,
                            format!(
                                "GET {target} ({what}) kept the foreign target: {}",
                                a.location.as_deref().map_or_else(
                                    || "it is in the page".to_string(),
                                    |l| format!("Location: {}", truncate(l, 160))
                                )
                            ),
                        );
                    }
                }
                Err(e) => report.notes.push(format!("GET {target}: no answer ({e})")),
            }
        }
        if !enabled {
            report.notes.push(format!(
                "{prefix}{endpoint} answered 404 (not enabled here); its rd was not checked"
            ));
        }
    }

    // --- Policy-route variants. ---------------------------------------------
    let mut not_refused = 0usize;
    for probe in &probes {
        let c = &probe.canonical;
        report.sent[2] += 1;
        let canonical = match send_route(&prober, c).await {
            Ok(o) => o,
            Err(e) => {
                report.notes.push(format!(
                    "{}: canonical request got no answer ({e})",
                    probe.rule
                ));
                continue;
            }
        };
        if canonical != Outcome::Refused {
            not_refused += 1;
            continue;
        }
        for v in &probe.variants {
            report.sent[2] += 1;
            match send_route(&prober, v).await {
                Ok(o) => {
                    if variant_leaked(canonical, o) == Some(true) {
                        let status = match o {
                            Outcome::Other(s) => s,
                            _ => 0,
                        };
                        report.found(
                            Category::Routes,
                            format!(
                                "{}: {} {} [{}] was not refused (status {status}) although {} {} is",
                                probe.rule, v.method, v.target, v.label, c.method, c.target
                            ),
                        );
                    }
                }
                Err(e) => report.notes.push(format!(
                    "{}: {} {} got no answer ({e})",
                    probe.rule, v.method, v.target
                )),
            }
        }
    }
    if not_refused > 0 {
        report.notes.push(format!(
            "{not_refused} of {} route rules from {table_name} are not in force here (the canonical request was not refused), so their variants were not sent",
            probes.len()
        ));
    }

    // --- Role-gated routes, per role cookie. -----------------------------
    if opts.role_cookies.is_empty() {
        report.notes.push(
            "no --role-cookie given: role-gated routes were not checked (pass one signed-in session per role, e.g. --role-cookie annotator='authgate=...')".into(),
        );
    } else {
        let role_table = match &opts.role_routes {
            Some(p) => std::fs::read_to_string(p).map_err(|e| Error::Routes {
                path: p.display().to_string(),
                reason: e.to_string(),
            })?,
            None => include_str!("../config/label-studio-role-routes.toml").to_string(),
        };
        let role_table_name = opts.role_routes.as_ref().map_or_else(
            || "the embedded Label Studio role table".to_string(),
            |p| p.display().to_string(),
        );
        for (role, cookie) in &opts.role_cookies {
            let cookie = HeaderValue::from_str(cookie).map_err(|_| {
                Error::Url(format!(
                    "--role-cookie {role}=... is not a valid header value"
                ))
            })?;
            let probes = role_probes(&role_table, Role::from_claim(role)).map_err(|reason| {
                Error::Routes {
                    path: role_table_name.clone(),
                    reason,
                }
            })?;
            role_checks(&prober, &mut report, role, &cookie, &probes).await;
        }
    }
    Ok(report)
}

/// Sends the role probes of one role: every canonical request must be refused (the role is
/// below the row's), and so must every disguise of it.
async fn role_checks(
    prober: &Prober,
    report: &mut Report,
    role: &str,
    cookie: &HeaderValue,
    probes: &[RouteProbe],
) {
    let mut refused_any = false;
    let mut through = Vec::new();
    for probe in probes {
        let c = &probe.canonical;
        report.sent[3] += 1;
        let canonical = match send_route_as(prober, Some(cookie), c).await {
            Ok(o) => o,
            Err(e) => {
                report.notes.push(format!(
                    "as {role}: {}: canonical request got no answer ({e})",
                    probe.rule
                ));
                continue;
            }
        };
        if canonical != Outcome::Refused {
            through.push(format!(
                "as {role}: {} {} was not refused ({:?})",
                c.method, c.target, canonical
            ));
            continue;
        }
        refused_any = true;
        for v in &probe.variants {
            report.sent[3] += 1;
            match send_route_as(prober, Some(cookie), v).await {
                Ok(o) if variant_leaked(canonical, o) == Some(true) => report.found(
                    Category::Roles,
                    format!(
                        "as {role}: {}: {} {} [{}] was not refused although {} {} is",
                        probe.rule, v.method, v.target, v.label, c.method, c.target
                    ),
                ),
                Ok(_) => {}
                Err(e) => report.notes.push(format!(
                    "as {role}: {}: {} {} got no answer ({e})",
                    probe.rule, v.method, v.target
                )),
            }
        }
    }
    if refused_any || probes.is_empty() {
        for t in through {
            report.found(Category::Roles, t);
        }
    } else {
        report.notes.push(format!(
            "as {role}: none of the {} role-gated routes above {role} was refused: organization roles are not enforced here (policy.enforce_roles off), or the cookie is not a signed-in {role}",
            probes.len()
        ));
    }
}

async fn send_route(prober: &Prober, r: &RouteRequest) -> Result<Outcome, String> {
    send_route_as(prober, None, r).await
}

async fn send_route_as(
    prober: &Prober,
    cookie: Option<&HeaderValue>,
    r: &RouteRequest,
) -> Result<Outcome, String> {
    let mut hdrs = Vec::new();
    for (k, v) in &r.headers {
        let k = HeaderName::from_bytes(k.as_bytes()).map_err(|e| e.to_string())?;
        let v = HeaderValue::from_str(v).map_err(|e| e.to_string())?;
        hdrs.push((k, v));
    }
    let a = prober
        .send_as(
            cookie,
            &r.method,
            &r.target,
            &hdrs,
            r.form.as_deref(),
            false,
        )
        .await?;
    Ok(classify(&r.method, a.status, &a.body))
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_cover_case_underscores_and_repeats() {
        let s = spellings("X-Forwarded-User");
        let labels: Vec<&str> = s.iter().map(|s| s.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "x-forwarded-user",
                "X-Forwarded-User",
                "x-forwarded-user (sent twice)",
                "x_forwarded_user (underscores)",
                "X_Forwarded_User (underscores)",
            ]
        );
        assert!(s.iter().any(|s| s.copies == 2));
        // No dash, no underscore spelling.
        assert_eq!(spellings("Forwarded").len(), 3);
    }

    #[test]
    fn header_leak_table() {
        let ok = StatusCode::OK;
        let unauth = StatusCode::UNAUTHORIZED;
        for (baseline, status, text, leaked) in [
            (ok, ok, "{\"x-forwarded-user\":[\"real\"]}", false),
            (ok, ok, "{\"x-forwarded-user\":[\"CANARY\"]}", true),
            (unauth, unauth, "sign in", false),
            (unauth, ok, "welcome", true),
            (unauth, StatusCode::FOUND, "", false),
            (ok, StatusCode::BAD_REQUEST, "", false),
        ] {
            assert_eq!(
                header_leaked(baseline, status, text, "CANARY"),
                leaked,
                "{baseline} {status} {text}"
            );
        }
    }

    #[test]
    fn every_redirect_value_names_the_evil_host() {
        let values = redirect_values();
        assert!(values.len() >= 20);
        for (v, _) in &values {
            assert!(v.contains(EVIL_HOST), "{v}");
        }
    }

    #[test]
    fn authgate_rejects_every_redirect_value() {
        // The probes are real attacks: authgate's own check refuses each
        // (after the query decoding its handlers do).
        for (v, what) in redirect_values() {
            let decoded: Vec<u8> = percent_encoding::percent_decode(v.as_bytes()).collect();
            let decoded = String::from_utf8_lossy(&decoded).into_owned();
            assert_eq!(
                crate::endpoints::redirect::local_target(&decoded),
                "/",
                "{what}: {decoded}"
            );
        }
    }

    #[test]
    fn redirect_leak_table() {
        let e = EVIL_HOST;
        for (location, body, leaked) in [
            (Some("/".to_string()), String::new(), false),
            (Some(format!("//{e}/")), String::new(), true),
            (
                Some(format!("https://{}/", e.to_uppercase())),
                String::new(),
                true,
            ),
            (
                Some(format!(
                    "https://idp.example/sso?SAMLRequest=x&RelayState=%2F%2F{e}%2F"
                )),
                String::new(),
                true,
            ),
            (
                Some("https://idp.example/sso?SAMLRequest=x&RelayState=%2F".to_string()),
                String::new(),
                false,
            ),
            (
                None,
                format!("<input type=hidden name=rd value=\"//{e}/\">"),
                true,
            ),
            (
                None,
                "<input type=hidden name=rd value=\"/\">".to_string(),
                false,
            ),
            (None, format!("RelayState=%252F%252F{e}"), true),
        ] {
            assert_eq!(
                redirect_leaked(location.as_deref(), &body),
                leaked,
                "{location:?} {body}"
            );
        }
    }

    #[test]
    fn path_variants_table() {
        let v = path_variants("/api/organizations/0/memberships");
        let paths: Vec<&str> = v.iter().map(|(_, p)| p.as_str()).collect();
        for want in [
            "/api/organizations/0/memberships/",
            "/api//organizations/0/memberships",
            "//api/organizations/0/memberships",
            "/api/./organizations/0/memberships",
            "/api/x/../organizations/0/memberships",
            "/API/ORGANIZATIONS/0/MEMBERSHIPS",
            "/Api/organizations/0/memberships",
            "/%61pi/organizations/0/memberships",
            "/ap%69/organizations/0/memberships",
            "/api%2Forganizations/0/memberships",
            "/api%5Corganizations/0/memberships",
            "/api;x=1/organizations/0/memberships",
            "/api/organizations/0/memberships;x=1",
            "/api/organizations/0/memberships.json",
            "/api/organizations/0/memberships?x=1",
        ] {
            assert!(paths.contains(&want), "missing {want} in {paths:?}");
        }
        assert!(!paths.contains(&"/api/organizations/0/memberships"));
        let v = path_variants("/api/users/0/");
        let paths: Vec<&str> = v.iter().map(|(_, p)| p.as_str()).collect();
        assert!(paths.contains(&"/api/users/0"));
        assert!(paths.contains(&"/api/users/0.json"));
        // Every variant is a valid request target.
        for (_, p) in path_variants("/api/invite/send") {
            assert!(p.parse::<http::Uri>().is_ok(), "{p}");
        }
    }

    #[test]
    fn route_probes_cover_the_embedded_table() {
        let probes = route_probes(include_str!("../config/label-studio-routes.toml"))
            .expect("embedded table parses");
        assert!(probes.len() > 30, "{}", probes.len());
        // Allow and intercept rows are never probed; logout is never sent.
        assert!(probes
            .iter()
            .all(|p| p.canonical.target != "/logout" && p.canonical.target != "/api-auth/logout/"));
        let patch = probes
            .iter()
            .find(|p| p.rule.contains("PATCH /api/organizations/{id}/memberships"))
            .expect("the membership PATCH row");
        assert_eq!(patch.canonical.target, "/api/organizations/0/memberships");
        let labels: Vec<&str> = patch.variants.iter().map(|v| v.label.as_str()).collect();
        assert!(labels.contains(&"PUT instead of PATCH"));
        assert!(labels.contains(&"method in lower case"));
        assert!(labels.contains(&"POST with X-HTTP-Method-Override: PATCH"));
        assert!(labels.contains(&"POST with ?_method=PATCH"));
        assert!(labels.contains(&"POST with a form field _method=PATCH"));
        assert!(route_probes("route = 1").is_err());
    }

    #[test]
    fn star_rows_pick_a_method_not_excepted() {
        let t = r#"
[[route]]
methods = ["*"]
except_methods = ["POST", "PATCH"]
path = "/a/{id}"
action = "deny"
[[route]]
methods = ["GET"]
path = "/b"
action = "allow"
"#;
        let p = route_probes(t).expect("parses");
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].canonical.method, "DELETE");
        assert_eq!(p[0].canonical.target, "/a/0");
    }

    #[test]
    fn judging_route_variants() {
        let refused = classify(
            "PATCH",
            StatusCode::FORBIDDEN,
            r#"{"error":"managed_by_directory"}"#,
        );
        assert_eq!(refused, Outcome::Refused);
        assert_eq!(
            classify("PATCH", StatusCode::FORBIDDEN, "nope"),
            Outcome::Other(403)
        );
        assert_eq!(
            classify("HEAD", StatusCode::FORBIDDEN, ""),
            Outcome::Refused
        );
        assert_eq!(classify("HEAD", StatusCode::OK, ""), Outcome::Other(200));
        assert_eq!(
            classify("GET", StatusCode::BAD_REQUEST, ""),
            Outcome::Rejected
        );
        assert_eq!(
            variant_leaked(Outcome::Other(200), Outcome::Other(200)),
            None
        );
        assert_eq!(variant_leaked(refused, Outcome::Refused), Some(false));
        assert_eq!(variant_leaked(refused, Outcome::Rejected), Some(false));
        assert_eq!(variant_leaked(refused, Outcome::Other(401)), Some(true));
        assert_eq!(variant_leaked(refused, Outcome::Other(200)), Some(true));
    }

    #[test]
    fn report_says_what_got_through() {
        let mut r = Report {
            url: "http://x".into(),
            ..Report::default()
        };
        assert!(r.passed());
        assert!(r.render().contains("PASS"));
        r.found(Category::Redirects, "GET /_auth/login?rd=//evil".into());
        assert!(!r.passed());
        let text = r.render();
        assert!(text.contains("GOT THROUGH: GET /_auth/login?rd=//evil"));
        assert!(text.contains("FAIL"));
    }
}
