//! Listeners: the accept loop for the proxy (HTTP/1.1 and HTTP/2, optional
//! TLS) and the metrics listener. Knows connections and shutdown, nothing
//! about authentication.

pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::app::Live;
use crate::proxy::context::ConnInfo;

/// Serves the proxy on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish for up to `server.shutdown_grace`.
pub async fn serve(
    live: Arc<Live>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    shutdown: impl Future<Output = ()>,
) {
    // Listener settings come from the configuration at start (a reload
    // does not rebind).
    let state = live.current();
    let cfg = &state.config.server;
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(cfg.header_read_timeout)
        .max_buf_size(cfg.max_header_bytes.max(8192))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(cfg.max_header_bytes as u32)
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .max_concurrent_streams(256)
        // Rapid reset (CVE-2023-44487) and its server-side variant: the
        // connection is closed (GOAWAY) past these; explicit so a change of
        // library defaults cannot lift them (tests/hostile.rs).
        .max_pending_accept_reset_streams(Some(20))
        .max_local_error_reset_streams(Some(1024));
    let builder = Arc::new(builder);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);

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
        let conn = Arc::new(ConnInfo::new(peer, tls.is_some(), trusted));
        let live = live.clone();
        let activity = Activity::new();
        let busy = activity.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            // Per request: a reload applies to the next request, even on a
            // kept-alive connection.
            let st = live.current();
            let conn = conn.clone();
            let guard = busy.start();
            async move {
                let resp = crate::proxy::handle(st, conn, req).await;
                // Busy until the response body is sent (or dropped).
                Ok::<_, std::convert::Infallible>(resp.map(|body| Guarded {
                    body,
                    _guard: guard,
                }))
            }
        });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let idle_timeout = cfg.idle_timeout;
        match &tls {
            None => {
                tokio::spawn(async move {
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    tokio::select! {
                        r = watcher.watch(conn.into_owned()) => if let Err(e) = r {
                            tracing::debug!(error = %e, %peer, "connection ended with an error");
                        },
                        _ = activity.idle(idle_timeout) => {
                            tracing::debug!(%peer, "idle connection closed (server.idle_timeout)");
                        }
                    }
                });
            }
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let handshake_timeout = cfg.header_read_timeout;
                tokio::spawn(async move {
                    let stream = match tokio::time::timeout(
                        handshake_timeout,
                        acceptor.accept(stream),
                    )
                    .await
                    {
                        Ok(Ok(s)) => s,
                        Ok(Err(e)) => {
                            tracing::debug!(error = %e, %peer, "TLS handshake failed");
                            return;
                        }
                        Err(_) => return,
                    };
                    let conn =
                        builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
                    tokio::select! {
                        r = watcher.watch(conn.into_owned()) => if let Err(e) = r {
                            tracing::debug!(error = %e, %peer, "connection ended with an error");
                        },
                        _ = activity.idle(idle_timeout) => {
                            tracing::debug!(%peer, "idle connection closed (server.idle_timeout)");
                        }
                    }
                });
            }
        }
    }

    drop(listener);
    let grace = cfg.shutdown_grace;
    tracing::info!(
        in_flight_connections = graceful.count(),
        grace_s = grace.as_secs(),
        "shutting down: draining"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed; closing remaining connections"),
    }
}

/// When a connection last started or finished a request, and how many it
/// has in flight (a response counts until its body is sent or dropped).
/// hyper closes neither an HTTP/1.1 keep-alive connection nor a connection
/// that never sends a byte on its own; [`Activity::idle`] resolves once the
/// connection has had nothing in flight for `server.idle_timeout`, and the
/// connection is then dropped (closed).
struct Activity {
    epoch: tokio::time::Instant,
    /// Milliseconds since `epoch` at the last start or end of a request.
    last_ms: std::sync::atomic::AtomicU64,
    in_flight: std::sync::atomic::AtomicUsize,
}

impl Activity {
    fn new() -> Arc<Activity> {
        Arc::new(Activity {
            epoch: tokio::time::Instant::now(),
            last_ms: std::sync::atomic::AtomicU64::new(0),
            in_flight: std::sync::atomic::AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let ms = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_ms.store(ms, std::sync::atomic::Ordering::Release);
    }

    fn start(self: &Arc<Self>) -> InFlight {
        self.in_flight
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
        self.touch();
        InFlight(self.clone())
    }

    /// Resolves when nothing has been in flight for `timeout`.
    async fn idle(&self, timeout: Duration) {
        use std::sync::atomic::Ordering;
        loop {
            let last = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            let deadline = self.epoch + last + timeout;
            tokio::time::sleep_until(deadline).await;
            let last_now = Duration::from_millis(self.last_ms.load(Ordering::Acquire));
            if self.in_flight.load(Ordering::Acquire) == 0 && last_now == last {
                return;
            }
            if self.in_flight.load(Ordering::Acquire) > 0 {
                // Busy: look again one timeout later.
                self.touch();
            }
        }
    }
}

/// One request in flight on a connection; dropping it ends the request.
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        self.0.touch();
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its request counted as in flight.
    struct Guarded<B> {
        #[pin]
        body: B,
        _guard: InFlight,
    }
}

impl<B: http_body::Body> http_body::Body for Guarded<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// Serves `GET /metrics` on its own listener.
pub async fn serve_metrics(
    live: Arc<Live>,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r { Ok(x) => x, Err(_) => { tokio::time::sleep(Duration::from_millis(50)).await; continue; } },
            _ = &mut shutdown => return,
        };
        let live = live.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let st = live.current();
                async move {
                    let resp = if req.uri().path() == "/metrics" {
                        let mut r = Response::new(crate::proxy::full(st.metrics.render()));
                        r.headers_mut().insert(
                            http::header::CONTENT_TYPE,
                            http::HeaderValue::from_static(
                                "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            ),
                        );
                        r
                    } else {
                        let mut r = Response::new(crate::proxy::full("not found\n"));
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
