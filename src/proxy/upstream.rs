//! The pooled keep-alive client to the upstream, with connect and response
//! timeouts. It streams bodies both ways and never buffers them.

use std::time::{Duration, Instant};

use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::rt::{TokioExecutor, TokioTimer};

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
    inner: HyperClient<HttpConnector, UpBody>,
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
            .build(connector);
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
