//! Test harness: a real recording upstream, authgate in-process on port 0,
//! and small HTTP helpers. Every server binds 127.0.0.1:0.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use authgate::app::State;
use authgate::config::{self, Sources};
use authgate::App;

/// What the upstream saw.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub version: http::Version,
    pub headers: HeaderMap,
    pub body_len: u64,
}

type UpBody = http_body_util::Either<
    Full<Bytes>,
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, Infallible>>>>,
>;

/// A real HTTP/1.1 upstream on 127.0.0.1 that records every request.
/// Paths: `/slow` (sleeps 3 s), `/stream?mib=N` (N MiB streamed), `/ws`
/// (WebSocket-style upgrade that echoes), anything else: JSON echo.
pub struct Upstream {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl Upstream {
    pub async fn start() -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = seen.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let rec = rec.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let rec = rec.clone();
                        async move { Ok::<_, Infallible>(upstream_handle(req, rec).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream { addr, seen }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().expect("lock").clone()
    }

    pub fn last(&self) -> Seen {
        self.requests()
            .last()
            .cloned()
            .expect("the upstream saw a request")
    }

    pub fn count(&self) -> usize {
        self.seen.lock().expect("lock").len()
    }
}

async fn upstream_handle(
    mut req: Request<Incoming>,
    rec: Arc<Mutex<Vec<Seen>>>,
) -> Response<UpBody> {
    // The request target exactly as received: origin-form, or the whole
    // URI if a proxy sent absolute-form.
    let target = req.uri().to_string();
    let method = req.method().to_string();
    let headers = req.headers().clone();
    let version = req.version();
    if req.uri().path() == "/ws" {
        rec.lock().expect("lock").push(Seen {
            method,
            target,
            version,
            headers,
            body_len: 0,
        });
        let on = hyper::upgrade::on(&mut req);
        tokio::spawn(async move {
            if let Ok(up) = on.await {
                let mut io = TokioIo::new(up);
                let mut buf = [0u8; 1024];
                while let Ok(n) = io.read(&mut buf).await {
                    if n == 0 || io.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        });
        let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::new())));
        *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        r.headers_mut()
            .insert("connection", "upgrade".parse().expect("hv"));
        r.headers_mut()
            .insert("upgrade", "websocket".parse().expect("hv"));
        return r;
    }
    // Count the body as it streams (never buffered).
    let mut body = req.into_body();
    let mut body_len = 0u64;
    while let Some(frame) = body.frame().await {
        match frame {
            Ok(f) => {
                if let Some(d) = f.data_ref() {
                    body_len += d.len() as u64;
                }
            }
            Err(_) => break,
        }
    }
    rec.lock().expect("lock").push(Seen {
        method: method.clone(),
        target: target.clone(),
        version,
        headers: headers.clone(),
        body_len,
    });
    if target.starts_with("/slow") {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    if let Some(q) = target.strip_prefix("/stream?mib=") {
        let mib: usize = q.parse().unwrap_or(1);
        let chunk = Bytes::from(vec![b'x'; 1 << 20]);
        let frames: Vec<Result<Frame<Bytes>, Infallible>> =
            (0..mib).map(|_| Ok(Frame::data(chunk.clone()))).collect();
        let mut r = Response::new(http_body_util::Either::Right(StreamBody::new(
            futures_util::stream::iter(frames),
        )));
        r.headers_mut().insert(
            "content-length",
            ((mib as u64) << 20).to_string().parse().expect("hv"),
        );
        return r;
    }
    let mut hdrs = serde_json::Map::new();
    for (k, v) in &headers {
        let entry = hdrs
            .entry(k.as_str().to_string())
            .or_insert_with(|| serde_json::Value::Array(vec![]));
        if let serde_json::Value::Array(a) = entry {
            a.push(serde_json::Value::String(
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            ));
        }
    }
    let body = serde_json::json!({"method": method, "target": target, "body_len": body_len, "headers": hdrs});
    let mut r = Response::new(http_body_util::Either::Left(Full::new(Bytes::from(
        body.to_string(),
    ))));
    r.headers_mut()
        .insert("content-type", "application/json".parse().expect("hv"));
    r.headers_mut().insert(
        "connection",
        "keep-alive, x-upstream-private".parse().expect("hv"),
    );
    r.headers_mut()
        .insert("x-upstream-private", "1".parse().expect("hv"));
    r
}

/// Keys written once per test into a private temp dir.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub signing_key: PathBuf,
    pub session_key: PathBuf,
}

impl Keys {
    pub fn new() -> Keys {
        let dir = tempfile::tempdir().expect("tempdir");
        let signing_key = dir.path().join("identity.pem");
        let session_key = dir.path().join("session.key");
        authgate::keygen(&signing_key, "ES256", Some(&session_key), false).expect("keygen");
        Keys {
            dir,
            signing_key,
            session_key,
        }
    }
}

/// authgate running in-process.
pub struct Gate {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub state: Arc<State>,
    pub keys: Keys,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// A configuration with fresh keys and the given upstream; `extra` is
/// appended TOML (sections may repeat only if not already present here).
pub fn config_text(keys: &Keys, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
public_url = "http://gate.test"
header_read_timeout = "2s"
shutdown_grace = "10s"
[upstream]
url = "{upstream}"
response_timeout = "1s"
connect_timeout = "1s"
[session]
secret_file = "{session}"
[identity]
signing_key = "{signing}"
audience = "labeling-app"
[log]
level = "warn"
{extra}
"#,
        session = keys.session_key.display(),
        signing = keys.signing_key.display(),
    )
}

impl Gate {
    pub async fn start(upstream: &str, extra: &str) -> Gate {
        let keys = Keys::new();
        let text = config_text(&keys, upstream, extra);
        Gate::start_with(keys, text, vec![]).await
    }

    pub async fn start_with(keys: Keys, text: String, env: Vec<(String, String)>) -> Gate {
        let cfg = config::load(&Sources {
            config_file: None,
            config_text: Some(("test.toml".into(), text)),
            env,
            env_file: None,
        })
        .unwrap_or_else(|e| panic!("test config: {e}"));
        let bound = App::build(cfg).expect("build").bind().expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = bound.addr;
        let metrics_addr = bound.metrics_addr;
        let state = bound.state();
        let task = tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        Gate {
            addr,
            metrics_addr,
            state,
            keys,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers graceful shutdown and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
    }

    /// Signs a user in directly (what LDAP/SAML login does) and returns the Cookie header value.
    pub async fn login(&self, identity: authgate::identity::Identity) -> String {
        let (_s, set_cookie) = self.state.start_session(identity).await.expect("session");
        let v = set_cookie.to_str().expect("ascii");
        v.split(';').next().expect("cookie pair").to_string()
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub fn identity(
    subject: &str,
    email: &str,
    role: Option<&str>,
    groups: &[&str],
) -> authgate::identity::Identity {
    authgate::identity::Identity {
        subject: subject.into(),
        email: Some(email.into()),
        name: Some("Test User".into()),
        given_name: Some("Test".into()),
        family_name: Some("User".into()),
        preferred_username: Some(
            subject
                .split(',')
                .next()
                .unwrap_or(subject)
                .trim_start_matches("uid=")
                .into(),
        ),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        role: role
            .map(|r| authgate::role::Role::from_claim(r).expect("a role, spelled as the claim")),
        workspaces: vec![],
        projects: Default::default(),
        method: authgate::identity::Method::Ldap,
        session_index: None,
        saml_idp: None,
    }
}

/// A simple response: status, headers, body.
pub struct Got {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Got {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&self.body)))
    }
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// One HTTP/1.1 request on a fresh connection.
pub async fn send(req: Request<Full<Bytes>>) -> Got {
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(Duration::from_secs(20), client.request(req))
        .await
        .expect("response in time")
        .expect("request");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Got {
        status,
        headers,
        body,
    }
}

pub async fn get(url: &str, headers: &[(&str, &str)]) -> Got {
    let mut b = Request::get(url);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    send(b.body(Full::new(Bytes::new())).expect("request")).await
}

/// Writes raw bytes on a new connection and reads until close or `limit`.
pub async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => {
                out.extend_from_slice(&buf[..n]);
                if out.windows(4).any(|w| w == b"\r\n\r\n") && !out.starts_with(b"HTTP/1.1 101") {
                    // Enough for a head; keep reading a little for bodies.
                    if let Ok(Ok(n)) =
                        tokio::time::timeout(Duration::from_millis(300), s.read(&mut buf)).await
                    {
                        out.extend_from_slice(&buf[..n]);
                    }
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The status code of a raw HTTP/1.1 response.
pub fn raw_status(resp: &str) -> u16 {
    resp.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}
