//! The recording upstream: a real HTTP/1.1 server on 127.0.0.1:0 that
//! records every request it receives.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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
