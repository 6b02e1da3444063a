//! Listeners: the accept loop for the proxy (HTTP/1.1 and HTTP/2, optional
//! TLS) and the metrics listener. Knows connections and shutdown, nothing
//! about authentication.

mod app;
pub mod drain;
pub mod runtime;
pub mod timer;

pub use app::{App, Bound};

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_rustls::TlsAcceptor;

use crate::app::Live;
use crate::http::Body;
use crate::request::context::ConnInfo;
use drain::{Drain, Watch};

/// Serves the proxy on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to `server.shutdown_grace`.
///
/// Connections are accepted here and served round-robin on this runtime and
/// on `workers` (the other current-thread runtimes of [`runtime::Runtimes`];
/// empty: everything runs here).
pub async fn serve(
    live: Arc<Live>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    workers: Vec<Handle>,
    shutdown: impl Future<Output = ()>,
) {
    // Listener settings come from the configuration at start (a reload
    // does not rebind).
    let state = live.current();
    let cfg = &state.config.server;
    let shared = Arc::new(Shared {
        protocols: Protocols::new(cfg),
        tls,
        header_read_timeout: cfg.header_read_timeout,
        idle_timeout: cfg.idle_timeout,
        live,
    });
    let drain = Drain::default();
    tokio::pin!(shutdown);
    // Slot 0 is this runtime, 1.. the workers.
    let mut turn = 0usize;

    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let trusted = cfg.trusted_proxies.iter().any(|n| n.contains(&peer.ip()));
        let conn = Arc::new(ConnInfo::new(peer, shared.tls.is_some(), trusted));
        let watch = drain.watch();
        let shared = Arc::clone(&shared);
        let slot = turn;
        turn = if turn >= workers.len() { 0 } else { turn + 1 };
        match slot.checked_sub(1).and_then(|i| workers.get(i)) {
            None => {
                tokio::spawn(connection(stream, conn, shared, watch));
            }
            Some(worker) => {
                // Moved to the worker's I/O driver: deregistered here,
                // registered there.
                let std_stream = match stream.into_std() {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::debug!(error = %e, %peer, "cannot hand the connection to a worker");
                        continue;
                    }
                };
                worker.spawn(async move {
                    match TcpStream::from_std(std_stream) {
                        Ok(stream) => connection(stream, conn, shared, watch).await,
                        Err(e) => {
                            tracing::debug!(error = %e, %peer, "worker cannot take the connection")
                        }
                    }
                });
            }
        }
    }

    drop(listener);
    let grace = cfg.shutdown_grace;
    tracing::info!(
        in_flight_connections = drain.count(),
        grace_s = grace.as_secs(),
        "shutting down: draining"
    );
    tokio::select! {
        _ = drain.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed; closing remaining connections"),
    }
}

/// What every connection of one listener shares.
struct Shared {
    protocols: Protocols,
    tls: Option<TlsAcceptor>,
    /// Also the TLS handshake's deadline.
    header_read_timeout: Duration,
    idle_timeout: Duration,
    live: Arc<Live>,
}

/// The HTTP/1 and HTTP/2 connection settings.
///
/// The protocol is chosen before hyper reads from the connection (see
/// [`protocol_of`]), and the connection is served by hyper's own HTTP/1 or
/// HTTP/2 connection. hyper-util's detecting builder read the first 24
/// bytes on their own, so hyper's 8 KiB read buffer grew to 16 KiB for the
/// rest of the head — memory every idle keep-alive connection then kept.
struct Protocols {
    h1: hyper::server::conn::http1::Builder,
    h2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Protocols {
    fn new(cfg: &crate::config::validate::Server) -> Protocols {
        let mut h1 = hyper::server::conn::http1::Builder::new();
        // Each connection gets its own timer (see `serve_as`).
        h1.header_read_timeout(cfg.header_read_timeout)
            // The head limit (431). `max_buf_size` alone is not one: a read
            // may fill the buffer's whole capacity, which can exceed it.
            .max_header_size(cfg.max_header_bytes)
            .max_buf_size(cfg.max_header_bytes.max(8192))
            .keep_alive(true);
        let mut h2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        h2.timer(TokioTimer::new())
            .max_header_list_size(cfg.max_header_bytes as u32)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .max_concurrent_streams(256)
            // Rapid reset (CVE-2023-44487) and its server-side variant: the
            // connection is closed (GOAWAY) past these; explicit so a change
            // of library defaults cannot lift them (tests/hostile.rs).
            .max_pending_accept_reset_streams(Some(20))
            .max_local_error_reset_streams(Some(1024));
        Protocols { h1, h2 }
    }
}

/// Which protocol a connection speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    Http1,
    Http2,
}

/// `PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n`: how every HTTP/2 connection
/// without TLS starts (RFC 9113 section 3.4).
const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Tells the protocol from the first bytes received: any byte that differs
/// from the HTTP/2 preface means HTTP/1; the whole preface means HTTP/2;
/// `None` while the bytes so far are only a part of the preface.
fn protocol_of(first: &[u8]) -> Option<Protocol> {
    let n = first.len().min(H2_PREFACE.len());
    if first[..n] != H2_PREFACE[..n] {
        Some(Protocol::Http1)
    } else if n == H2_PREFACE.len() {
        Some(Protocol::Http2)
    } else {
        None
    }
}

/// Looks at the first bytes without consuming them. `None`: the client
/// closed (or reset) before saying enough. A client that stalls inside the
/// preface is polled every 20 ms until `silent_start` closes it.
async fn sniff(stream: &TcpStream) -> Option<Protocol> {
    let mut first = [0u8; H2_PREFACE.len()];
    loop {
        match stream.peek(&mut first).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => match protocol_of(&first[..n]) {
                Some(known) => return Some(known),
                // Peeked bytes stay readable, so waiting for readiness
                // would return at once: wait a little instead.
                None => tokio::time::sleep(Duration::from_millis(20)).await,
            },
        }
    }
}

/// The protocol TLS negotiated with ALPN (`tls.rs` offers h2 and
/// http/1.1). Without ALPN, HTTP/1.1, as nginx does: HTTP/2 over TLS
/// requires ALPN (RFC 9113 section 3.2).
fn protocol_of_alpn(alpn: Option<&[u8]>) -> Protocol {
    match alpn {
        Some(b"h2") => Protocol::Http2,
        _ => Protocol::Http1,
    }
}

/// One accepted connection, from the TLS handshake (when configured) to its
/// end, on whichever runtime it was handed to.
async fn connection(stream: TcpStream, conn: Arc<ConnInfo>, shared: Arc<Shared>, watch: Watch) {
    let peer = conn.peer;
    let live = Arc::clone(&shared.live);
    let service = service_fn(move |req: Request<Incoming>| {
        // Per request: a reload applies to the next request, even on a
        // kept-alive connection.
        let st = live.current();
        let conn = conn.clone();
        // Boxed: hyper keeps the service future's space in every
        // connection, in flight or idle; the request future is ~3 KiB.
        let fut: Pin<Box<dyn Future<Output = Response<Body>> + Send>> =
            Box::pin(crate::proxy::handle(st, conn, req));
        async move { Ok::<_, std::convert::Infallible>(fut.await) }
    });
    let activity = Arc::new(timer::Activity::default());
    let conn_timer = timer::ConnTimer::new(
        shared.header_read_timeout,
        shared.idle_timeout,
        Arc::clone(&activity),
    );
    let served = async {
        match &shared.tls {
            None => {
                let Some(protocol) = sniff(&stream).await else {
                    return Ok(());
                };
                let io = TokioIo::new(timer::Counted::new(stream, activity));
                shared
                    .protocols
                    .serve(protocol, io, service, conn_timer.clone(), watch)
                    .await
            }
            Some(acceptor) => {
                let stream =
                    match tokio::time::timeout(shared.header_read_timeout, acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return Ok(());
                        }
                        Err(_) => return Ok(()),
                    };
                let protocol = protocol_of_alpn(stream.get_ref().1.alpn_protocol());
                let io = TokioIo::new(timer::Counted::new(stream, activity));
                shared
                    .protocols
                    .serve(protocol, io, service, conn_timer.clone(), watch)
                    .await
            }
        }
    };
    let result = tokio::select! {
        r = served => r,
        () = conn_timer.silent_start() => {
            tracing::debug!(%peer, "closed: no request head within server.header_read_timeout");
            return;
        }
    };
    if let Err(e) = result {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
}

impl Protocols {
    /// Serves one connection in `protocol` until it ends or the drain has
    /// finished it. Boxed: one allocation per connection, and a concrete
    /// `Send` future for the spawned task.
    fn serve<I, S>(
        &self,
        protocol: Protocol,
        io: I,
        service: S,
        conn_timer: timer::ConnTimer,
        watch: Watch,
    ) -> Pin<Box<dyn Future<Output = Result<(), hyper::Error>> + Send>>
    where
        I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
        S: hyper::service::Service<
                Request<Incoming>,
                Response = Response<Body>,
                Error = std::convert::Infallible,
            > + Send
            + 'static,
        S::Future: Send + 'static,
    {
        match protocol {
            Protocol::Http1 => {
                let mut h1 = self.h1.clone();
                h1.timer(conn_timer);
                let c = h1.serve_connection(io, service).with_upgrades();
                Box::pin(watch.run(c))
            }
            Protocol::Http2 => Box::pin(watch.run(self.h2.serve_connection(io, service))),
        }
    }
}

/// Serves `GET /metrics` and the session admin API
/// ([`crate::endpoints::sessions`]) on their own listener.
pub async fn serve_metrics(
    live: Arc<Live>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; } },
            _ = &mut shutdown => return,
        };
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let st = live.current();
                async move {
                    let p = req.uri().path();
                    let admin = p == crate::endpoints::sessions::PATH
                        || p.starts_with(&format!("{}/", crate::endpoints::sessions::PATH));
                    let resp = if admin {
                        // The session admin API: here, never on the public listener.
                        crate::endpoints::sessions::api(st, peer, req).await
                    } else if req.uri().path() == "/metrics" {
                        if let Some(l) = &st.ldap {
                            for s in l.directory.servers() {
                                use crate::ldap::Reach;
                                match s.state {
                                    Reach::Up => st.metrics.set_ldap_server_up(&s.uri, true),
                                    Reach::Down => st.metrics.set_ldap_server_up(&s.uri, false),
                                    Reach::Unknown => {}
                                }
                            }
                        }
                        let mut r = Response::new(crate::http::full(st.metrics.render()));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        let mut r = Response::new(crate::http::full("not found\n"));
                        *r.status_mut() = http::StatusCode::NOT_FOUND;
                        r
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Resolves on the first SIGTERM or SIGINT. The handlers are installed when
/// this is called (inside the runtime, before the listener accepts), not when
/// the future is first polled, so an early signal is never lost to the
/// default action. A second signal while in-flight requests drain ends the
/// process at once (exit 130), as operators expect from a second Ctrl-C.
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate())
            .map_err(|e| tracing::warn!(error = %e, "cannot handle SIGTERM"))
            .ok();
        let mut int = signal(SignalKind::interrupt())
            .map_err(|e| tracing::warn!(error = %e, "cannot handle SIGINT"))
            .ok();
        async move {
            let name = next_signal(&mut term, &mut int).await;
            tracing::info!(signal = name, "shutdown requested");
            tokio::spawn(async move {
                let name = next_signal(&mut term, &mut int).await;
                tracing::warn!(signal = name, "second signal: exiting without draining");
                std::process::exit(130);
            });
        }
    }
    #[cfg(not(unix))]
    {
        async {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(unix)]
async fn next_signal(
    term: &mut Option<tokio::signal::unix::Signal>,
    int: &mut Option<tokio::signal::unix::Signal>,
) -> &'static str {
    async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
        match s {
            Some(s) => {
                if s.recv().await.is_none() {
                    std::future::pending::<()>().await;
                }
            }
            None => std::future::pending::<()>().await,
        }
    }
    tokio::select! {
        _ = recv(term) => "SIGTERM",
        _ = recv(int) => "SIGINT",
    }
}

/// Binds a listener with SO_REUSEADDR so restarts do not wait for TIME_WAIT.
pub fn bind(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(4096)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_from_the_first_bytes() {
        use Protocol::{Http1, Http2};
        let cases: &[(&[u8], Option<Protocol>)] = &[
            (b"GET / HTTP/1.1\r\n", Some(Http1)),
            (b"G", Some(Http1)),
            (b"POST /x HTTP/1.1\r\n", Some(Http1)),
            (b"PUT", Some(Http1)),
            (b"PATCH", Some(Http1)),
            (b"PRI * HTTP/1.1\r\n", Some(Http1)),
            (b"pri * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Http1)),
            (b"\r\nGET / HTTP/1.1", Some(Http1)),
            (b"\x16\x03\x01", Some(Http1)), // TLS on the plain port: hyper answers 400
            (b"P", None),
            (b"PR", None),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r", None),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", Some(Http2)),
            (
                b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04",
                Some(Http2),
            ),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\r", Some(Http1)),
        ];
        for (first, want) in cases {
            assert_eq!(
                protocol_of(first),
                *want,
                "{:?}",
                String::from_utf8_lossy(first)
            );
        }
    }

    #[test]
    fn protocol_from_alpn() {
        assert_eq!(protocol_of_alpn(Some(b"h2")), Protocol::Http2);
        assert_eq!(protocol_of_alpn(Some(b"http/1.1")), Protocol::Http1);
        // No ALPN: HTTP/2 over TLS requires it.
        assert_eq!(protocol_of_alpn(None), Protocol::Http1);
    }
}
