//! The pooled keep-alive client to the upstream, with connect and response
//! timeouts. It streams bodies both ways and never buffers them.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use http::{Request, Response, Uri};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::{Connected, Connection, HttpConnector};
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tower_service::Service;

use crate::config::validate::Upstream as UpstreamConfig;

/// Request bodies sent upstream: the client's body, length-limited or not.
pub type UpBody = http_body_util::Either<Incoming, http_body_util::Limited<Incoming>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the upstream")]
    Connect(#[source] hyper_util::client::legacy::Error),
    #[error("the upstream did not answer within upstream.response_timeout")]
    Timeout,
    #[error("the upstream request failed")]
    Other(#[source] hyper_util::client::legacy::Error),
}

pub struct Client {
    inner: HyperClient<Connector, UpBody>,
    response_timeout: Duration,
}

impl Client {
    pub fn new(cfg: &UpstreamConfig) -> Client {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(cfg.connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(Duration::from_secs(60)));
        let inner = HyperClient::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(cfg.pool_idle_timeout)
            .pool_max_idle_per_host(cfg.pool_max_idle)
            .http1_preserve_header_case(false)
            .set_host(false)
            .build(Connector(connector));
        Client {
            inner,
            response_timeout: cfg.response_timeout,
        }
    }

    /// Sends `req` and waits for the response head; returns it and the time taken.
    pub async fn send(
        &self,
        req: Request<UpBody>,
    ) -> Result<(Response<Incoming>, Duration), Error> {
        let start = Instant::now();
        match tokio::time::timeout(self.response_timeout, self.inner.request(req)).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(e)) if e.is_connect() => Err(Error::Connect(e)),
            Ok(Err(e)) => Err(Error::Other(e)),
            Ok(Ok(resp)) => Ok((resp, start.elapsed())),
        }
    }
}

/// hyper-util's `HttpConnector`, minus the `HttpInfo` (peer and local
/// address) it has the client insert into every response's extensions:
/// nothing here reads it, and it cost a map and two boxes per response.
#[derive(Clone)]
pub struct Connector(HttpConnector);

type ConnectError = <HttpConnector as Service<Uri>>::Error;

impl Service<Uri> for Connector {
    type Response = Conn;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Conn, ConnectError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), ConnectError>> {
        self.0.poll_ready(cx)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connecting = self.0.call(uri);
        Box::pin(async move { connecting.await.map(Conn) })
    }
}

/// One upstream connection (see [`Connector`]).
pub struct Conn(TokioIo<tokio::net::TcpStream>);

impl Connection for Conn {
    fn connected(&self) -> Connected {
        Connected::new()
    }
}

impl hyper::rt::Read for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.get_mut().0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
