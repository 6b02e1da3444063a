//! Listeners: the accept loop for the proxy (HTTP/1.1 and HTTP/2, optional
//! TLS) and the metrics listener. Knows connections and shutdown, nothing
//! about authentication.

pub mod runtime;
pub mod timer;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::net::{TcpListener, TcpStream};
use tokio::runtime::Handle;
use tokio_rustls::TlsAcceptor;

use crate::app::Live;
use crate::proxy::context::ConnInfo;
use crate::proxy::Body;

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
    let mut builder = Builder::new(TokioExecutor::new());
    // Each connection gets its own HTTP/1 timer (see `connection`).
    builder
        .http1()
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
    let shared = Arc::new(Shared {
        builder,
        tls,
        header_read_timeout: cfg.header_read_timeout,
        idle_timeout: cfg.idle_timeout,
        live,
    });
    let graceful = GracefulShutdown::new();
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
        let watcher = graceful.watcher();
        let shared = Arc::clone(&shared);
        let slot = turn;
        turn = if turn >= workers.len() { 0 } else { turn + 1 };
        match slot.checked_sub(1).and_then(|i| workers.get(i)) {
            None => {
                tokio::spawn(connection(stream, conn, shared, watcher));
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
                        Ok(stream) => connection(stream, conn, shared, watcher).await,
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
        in_flight_connections = graceful.count(),
        grace_s = grace.as_secs(),
        "shutting down: draining"
    );
    tokio::select! {
        _ = graceful.shutdown() => tracing::info!("all connections drained"),
        _ = tokio::time::sleep(grace) => tracing::warn!("shutdown grace elapsed; closing remaining connections"),
    }
}

/// What every connection of one listener shares.
struct Shared {
    builder: Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    /// Also the TLS handshake's deadline.
    header_read_timeout: Duration,
    idle_timeout: Duration,
    live: Arc<Live>,
}

/// One accepted connection, from the TLS handshake (when configured) to its
/// end, on whichever runtime it was handed to.
async fn connection(stream: TcpStream, conn: Arc<ConnInfo>, shared: Arc<Shared>, watcher: Watcher) {
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
    let mut builder = shared.builder.clone();
    builder.http1().timer(conn_timer.clone());
    let served = async {
        match &shared.tls {
            None => {
                let io = TokioIo::new(timer::Counted::new(stream, activity));
                let c = builder.serve_connection_with_upgrades(io, service);
                watcher.watch(c.into_owned()).await
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
                let io = TokioIo::new(timer::Counted::new(stream, activity));
                let c = builder.serve_connection_with_upgrades(io, service);
                watcher.watch(c.into_owned()).await
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
