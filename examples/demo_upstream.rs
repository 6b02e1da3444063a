//! The demo upstream: a tiny HTTP/1.1 application to put behind authgate.
//!
//! ```text
//! cargo run --release --example demo_upstream -- --listen 127.0.0.1:8081
//! ```
//!
//! - `/bench` and any path below it (`/bench/public`, `/bench/signed`): a
//!   fixed 208-byte JSON body, the benchmark's response (the same size as
//!   the performance yardstick's); `bench/run` puts one of these paths
//!   under `policy.public_paths` and not the other.
//! - any other path: what this upstream received — the request line and
//!   every header — as an HTML page for browsers (Accept names text/html),
//!   JSON otherwise. The identity headers authgate sets are highlighted:
//!   `X-Identity-Assertion` is shown decoded (the JWT header and payload
//!   are only base64url-decoded for display; a real upstream must verify
//!   the signature against `/_auth/jwks.json`), and
//!   `X-Forwarded-User/Email/Preferred-Username/Groups/Role` are listed
//!   with the groups percent-decoded.
//!
//! Keep-alive is on. It runs on one current-thread runtime, which is the
//! cheapest way to serve this little work per request and keeps the
//! benchmark's upstream cost small and steady.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// The benchmark body: 208 bytes of JSON, like the yardstick's upstream.
const BENCH_BODY: &[u8] = br#"{"id":42,"status":"ok","project":"demo","task":{"id":1001,"data":{"text":"The quick brown fox jumps over the lazy dog"},"annotations":3,"predictions":1},"updated_at":"2024-01-01T00:00:00Z","pad":"xxxxxxxxxx"}"#;
const _: () = assert!(BENCH_BODY.len() == 208);

/// The identity headers authgate sets by default, highlighted on the page.
const PLAIN_IDENTITY: [&str; 5] = [
    "x-forwarded-user",
    "x-forwarded-email",
    "x-forwarded-preferred-username",
    "x-forwarded-groups",
    "x-forwarded-role",
];
const ASSERTION: &str = "x-identity-assertion";

fn main() {
    let listen = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("demo_upstream: {e}\nusage: demo_upstream [--listen 127.0.0.1:8081]");
            std::process::exit(2);
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime can be built at start");
    runtime.block_on(serve(listen));
}

fn parse_args() -> Result<SocketAddr, String> {
    let mut listen: SocketAddr = "127.0.0.1:8081".parse().expect("a valid literal address");
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let value = match a.split_once('=') {
            Some(("--listen", v)) => v.to_string(),
            None if a == "--listen" => args.next().ok_or("--listen needs ADDR:PORT")?,
            _ => return Err(format!("unknown argument {a:?}")),
        };
        listen = value
            .parse()
            .map_err(|_| format!("--listen {value:?} is not ADDR:PORT"))?;
    }
    Ok(listen)
}

async fn serve(listen: SocketAddr) {
    let listener = match TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("demo_upstream: cannot listen on {listen}: {e}");
            std::process::exit(1);
        }
    };
    eprintln!("demo_upstream listening on http://{listen}");
    let shutdown = stop_signal();
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => {
                    eprintln!("demo_upstream: accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => return,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        });
    }
}

async fn stop_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

async fn handle(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = req.uri().path();
    if path == "/bench" || path.starts_with("/bench/") {
        return Ok(respond(
            StatusCode::OK,
            "application/json",
            Bytes::from_static(BENCH_BODY),
        ));
    }
    let wants_html = req
        .headers()
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.contains("text/html")));
    let seen = Seen::of(&req);
    Ok(if wants_html {
        respond(
            StatusCode::OK,
            "text/html; charset=utf-8",
            seen.html().into(),
        )
    } else {
        respond(StatusCode::OK, "application/json", seen.json().into())
    })
}

fn respond(status: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body));
    *r.status_mut() = status;
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    r
}

/// What one request looked like on arrival.
struct Seen {
    request_line: String,
    /// Every header in arrival order, values as (lossy) text.
    headers: Vec<(String, String)>,
    /// The assertion's JOSE header and claims, decoded for display only.
    assertion: Option<Result<(serde_json::Value, serde_json::Value), String>>,
    /// Plain identity headers present: (name, shown value).
    identity: Vec<(String, String)>,
}

impl Seen {
    fn of(req: &Request<Incoming>) -> Seen {
        let target = req
            .uri()
            .path_and_query()
            .map_or("/", |pq| pq.as_str())
            .to_string();
        let request_line = format!("{} {} {:?}", req.method(), target, req.version());
        let headers = req
            .headers()
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let assertion = req
            .headers()
            .get(ASSERTION)
            .map(|v| decode_jwt(&String::from_utf8_lossy(v.as_bytes())));
        Seen {
            request_line,
            headers,
            assertion,
            identity: plain_identity(req.headers()),
        }
    }

    fn json(&self) -> String {
        let headers: Vec<serde_json::Value> = self
            .headers
            .iter()
            .map(|(n, v)| serde_json::Value::String(format!("{n}: {v}")))
            .collect();
        let identity: serde_json::Map<String, serde_json::Value> = self
            .identity
            .iter()
            .map(|(n, v)| (n.clone(), serde_json::Value::String(v.clone())))
            .collect();
        let assertion = match &self.assertion {
            None => serde_json::Value::Null,
            Some(Ok((h, c))) => serde_json::json!({"header": h, "claims": c}),
            Some(Err(e)) => serde_json::json!({"undecodable": e}),
        };
        let body = serde_json::json!({
            "request_line": self.request_line,
            "headers": headers,
            "identity_headers": identity,
            "identity_assertion": assertion,
        });
        let mut s = serde_json::to_string_pretty(&body).unwrap_or_default();
        s.push('\n');
        s
    }

    fn html(&self) -> String {
        let mut h = String::with_capacity(8192);
        h.push_str(concat!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">",
            "<title>authgate demo upstream</title>",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">",
            "<style>",
            "body{font:15px/1.45 system-ui,sans-serif;margin:2rem auto;max-width:64rem;padding:0 1rem;color:#222}",
            "code,pre,td{font-family:ui-monospace,monospace;font-size:13px}",
            "pre{background:#f6f6f6;padding:.75rem;overflow-x:auto;border-radius:4px}",
            "table{border-collapse:collapse;width:100%}",
            "td{border-bottom:1px solid #e5e5e5;padding:.25rem .5rem;vertical-align:top;word-break:break-all}",
            "tr.id td{background:#fff6d6;font-weight:600}",
            ".none{color:#a33}.nav a{margin-right:1rem}",
            "</style></head><body>\n",
            "<h1>authgate demo upstream</h1>\n",
            "<p class=\"nav\"><a href=\"/\">/</a><a href=\"/public\">/public</a>",
            "<a href=\"/_auth/login?rd=/\">sign in</a><a href=\"/_auth/userinfo\">userinfo</a>",
            "<a href=\"/_auth/logout\">sign out</a></p>\n",
        ));
        let _ = writeln!(
            h,
            "<h2>Request line</h2>\n<pre>{}</pre>",
            esc(&self.request_line)
        );

        h.push_str("<h2>Identity</h2>\n");
        if self.identity.is_empty() && self.assertion.is_none() {
            h.push_str(
                "<p class=\"none\">No identity headers: this request came without a session \
                 (a public path, or straight to the upstream).</p>\n",
            );
        }
        if !self.identity.is_empty() {
            h.push_str("<table>\n");
            for (n, v) in &self.identity {
                let _ = writeln!(
                    h,
                    "<tr class=\"id\"><td>{}</td><td>{}</td></tr>",
                    esc(n),
                    esc(v)
                );
            }
            h.push_str("</table>\n");
        }
        match &self.assertion {
            None => {}
            Some(Ok((jose, claims))) => {
                let pretty =
                    |v: &serde_json::Value| serde_json::to_string_pretty(v).unwrap_or_default();
                let _ = writeln!(
                    h,
                    "<h3>X-Identity-Assertion (decoded for display; not verified here)</h3>\n\
                     <p>JOSE header</p><pre>{}</pre>\n<p>Claims</p><pre>{}</pre>",
                    esc(&pretty(jose)),
                    esc(&pretty(claims))
                );
            }
            Some(Err(e)) => {
                let _ = writeln!(
                    h,
                    "<p class=\"none\">X-Identity-Assertion present but undecodable: {}</p>",
                    esc(e)
                );
            }
        }

        h.push_str("<h2>Every header received</h2>\n<table>\n");
        for (n, v) in &self.headers {
            let class = if n == ASSERTION || PLAIN_IDENTITY.contains(&n.as_str()) {
                " class=\"id\""
            } else {
                ""
            };
            let _ = writeln!(h, "<tr{class}><td>{}</td><td>{}</td></tr>", esc(n), esc(v));
        }
        h.push_str("</table>\n</body></html>\n");
        h
    }
}

/// The plain identity headers present, in a fixed order; groups are shown
/// percent-decoded, one per line.
fn plain_identity(headers: &HeaderMap) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for name in PLAIN_IDENTITY {
        for v in headers.get_all(name) {
            let raw = String::from_utf8_lossy(v.as_bytes());
            let shown = if name == "x-forwarded-groups" {
                raw.split(',')
                    .map(|g| percent_encoding::percent_decode_str(g).decode_utf8_lossy())
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                raw.into_owned()
            };
            out.push((name.to_string(), shown));
        }
    }
    out
}

/// Splits a compact JWS and base64url-decodes its header and payload. No
/// signature check: this is a display aid.
fn decode_jwt(token: &str) -> Result<(serde_json::Value, serde_json::Value), String> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(p), Some(_sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err("not a compact JWS (three dot-separated parts)".into());
    };
    let part = |s: &str, what: &str| -> Result<serde_json::Value, String> {
        let bytes = URL_SAFE_NO_PAD
            .decode(s)
            .map_err(|e| format!("{what}: not base64url: {e}"))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{what}: not JSON: {e}"))
    };
    Ok((part(h, "header")?, part(p, "payload")?))
}

/// HTML-escapes text for element content and attribute values.
fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
