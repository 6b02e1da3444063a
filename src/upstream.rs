//! The pooled keep-alive client to the upstream, with connect and response
//! timeouts. It streams bodies both ways and never buffers them.
//!
//! hyper's own HTTP/1 client connections, pooled here: one idle list per
//! worker thread (each worker runs its own current-thread runtime, and a
//! connection's task lives on the runtime that opened it), last in first
//! out. A connection is lent for one request and comes back when its
//! response body has been read to the end ([`UpstreamBody`]'s drop); one
//! whose body was abandoned, or that the upstream closed, is dropped.
//! hyper-util's general-purpose pool did the same with a task spawned per
//! request to wait for the connection to become idle, a shared map keyed
//! by scheme and authority, and a lock per checkout and return; this one
//! is what a single upstream needs (bench/README.md).
//!
//! A request that could not be written because the pooled connection had
//! just been closed (the upstream's keep-alive timeout) is sent again on a
//! new connection, as hyper-util's client does; one that was written is
//! never re-sent.

use std::cell::Cell;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Response};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;

#[derive(Debug, Clone)]
/// `[upstream]`: where requests go and how long they may take.
pub struct Settings {
    pub authority: http::uri::Authority,
    pub pass_host_header: bool,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle: usize,
    pub max_body: Option<u64>,
    /// `upstream.state_sync_path`; `None` = off.
    pub state_sync_path: Option<http::uri::PathAndQuery>,
}

/// Request bodies sent upstream: the client's body, length-limited or not.
pub type UpBody = http_body_util::Either<Incoming, http_body_util::Limited<Incoming>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot connect to the upstream")]
    Connect(#[source] std::io::Error),
    #[error("the upstream did not answer within upstream.response_timeout")]
    Timeout,
    #[error("the upstream request failed")]
    Other(#[source] hyper::Error),
}

pub struct Client {
    /// `host:port` to connect to.
    target: String,
    connect_timeout: Duration,
    response_timeout: Duration,
    pool: Arc<Pool>,
}

/// Idle connections, one list per worker thread.
struct Pool {
    slots: Box<[Mutex<Vec<Idle>>]>,
    idle_timeout: Duration,
    max_idle: usize,
    /// The task that closes connections idle past `idle_timeout`.
    reaper: AtomicBool,
}

struct Idle {
    tx: SendRequest<UpBody>,
    since: Instant,
}

impl Idle {
    /// Still open, and not idle past the pool's `idle_timeout`.
    fn usable(&self, idle_timeout: Duration) -> bool {
        self.tx.is_ready() && self.since.elapsed() < idle_timeout
    }
}

/// Slots in the pool; worker threads beyond this share them.
const SLOTS: usize = 16;

/// This thread's slot: assigned on first use, in thread start order.
fn slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static SLOT: Cell<Option<usize>> = const { Cell::new(None) };
    }
    SLOT.with(|s| match s.get() {
        Some(i) => i,
        None => {
            let i = NEXT.fetch_add(1, Ordering::Relaxed) % SLOTS;
            s.set(Some(i));
            i
        }
    })
}

impl Client {
    pub fn new(cfg: &Settings) -> Client {
        let target = match cfg.authority.port_u16() {
            Some(_) => cfg.authority.as_str().to_string(),
            None => format!("{}:80", cfg.authority.host()),
        };
        Client {
            target,
            connect_timeout: cfg.connect_timeout,
            response_timeout: cfg.response_timeout,
            pool: Arc::new(Pool {
                slots: (0..SLOTS).map(|_| Mutex::new(Vec::new())).collect(),
                idle_timeout: cfg.pool_idle_timeout,
                max_idle: cfg.pool_max_idle,
                reaper: AtomicBool::new(false),
            }),
        }
    }

    /// Sends `req` and waits for the response head; returns it and the time
    /// taken. The response timeout covers connecting too.
    pub async fn send(
        &self,
        req: Request<UpBody>,
    ) -> Result<(Response<UpstreamBody>, Duration), Error> {
        let start = Instant::now();
        match tokio::time::timeout(self.response_timeout, self.exchange(req)).await {
            Err(_) => Err(Error::Timeout),
            Ok(Err(e)) => Err(e),
            Ok(Ok(resp)) => Ok((resp, start.elapsed())),
        }
    }

    async fn exchange(&self, mut req: Request<UpBody>) -> Result<Response<UpstreamBody>, Error> {
        // Pooled connections first; one the upstream has closed gives the
        // request back unsent.
        while let Some(mut tx) = self.pool.checkout() {
            match tx.try_send_request(req).await {
                Ok(resp) => return Ok(self.lend(tx, resp)),
                Err(mut e) => match e.take_message() {
                    Some(unsent) => req = unsent,
                    None => return Err(Error::Other(e.into_error())),
                },
            }
        }
        let mut tx = self.connect().await?;
        match tx.send_request(req).await {
            Ok(resp) => Ok(self.lend(tx, resp)),
            Err(e) => Err(Error::Other(e)),
        }
    }

    fn lend(&self, tx: SendRequest<UpBody>, resp: Response<Incoming>) -> Response<UpstreamBody> {
        // A switched protocol keeps the connection (hyper::upgrade).
        let lease = (resp.status() != http::StatusCode::SWITCHING_PROTOCOLS).then(|| Lease {
            tx,
            pool: Arc::downgrade(&self.pool),
        });
        resp.map(|inner| UpstreamBody {
            inner,
            finished: false,
            lease,
        })
    }

    /// Sends one bodiless `POST path` with `headers` on a connection of its
    /// own (not the pool's: this is off the request path, once per refused
    /// or pending sign-in) and returns the status. Bounded by the connect
    /// timeout and `limit` for the answer; the body is not read.
    pub async fn notify(
        &self,
        path: &http::uri::PathAndQuery,
        headers: http::HeaderMap,
        limit: Duration,
    ) -> Result<http::StatusCode, Error> {
        let exchange = async {
            let stream = tokio::time::timeout(
                self.connect_timeout,
                tokio::net::TcpStream::connect(self.target.as_str()),
            )
            .await
            .map_err(|_| {
                Error::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "upstream.connect_timeout elapsed",
                ))
            })?
            .map_err(Error::Connect)?;
            let (mut tx, conn) = http1::Builder::new()
                .handshake::<_, http_body_util::Empty<Bytes>>(TokioIo::new(stream))
                .await
                .map_err(Error::Other)?;
            let driver = tokio::spawn(conn);
            let mut req = Request::new(http_body_util::Empty::<Bytes>::new());
            *req.method_mut() = http::Method::POST;
            *req.uri_mut() = http::Uri::from(path.clone());
            *req.headers_mut() = headers;
            req.headers_mut().insert(
                http::header::CONTENT_LENGTH,
                http::HeaderValue::from_static("0"),
            );
            let status = tx.send_request(req).await.map_err(Error::Other)?.status();
            driver.abort();
            Ok(status)
        };
        tokio::time::timeout(limit, exchange)
            .await
            .unwrap_or(Err(Error::Timeout))
    }

    async fn connect(&self) -> Result<SendRequest<UpBody>, Error> {
        let stream = match tokio::time::timeout(
            self.connect_timeout,
            tokio::net::TcpStream::connect(self.target.as_str()),
        )
        .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => return Err(Error::Connect(e)),
            Err(_) => {
                return Err(Error::Connect(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "upstream.connect_timeout elapsed",
                )))
            }
        };
        let _ = stream.set_nodelay(true);
        let _ = socket2::SockRef::from(&stream)
            .set_tcp_keepalive(&socket2::TcpKeepalive::new().with_time(Duration::from_secs(60)));
        let (tx, conn) = http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(Error::Other)?;
        tokio::spawn(async move {
            if let Err(e) = conn.with_upgrades().await {
                tracing::debug!(error = %e, "upstream connection ended with an error");
            }
        });
        self.pool.start_reaper();
        Ok(tx)
    }
}

impl Pool {
    fn checkout(&self) -> Option<SendRequest<UpBody>> {
        let mut idle = lock(&self.slots[slot()]);
        while let Some(c) = idle.pop() {
            if c.usable(self.idle_timeout) {
                return Some(c.tx);
            }
            // Closed by the upstream, or idle too long: dropping it closes it.
        }
        None
    }

    fn put(&self, tx: SendRequest<UpBody>) {
        if self.max_idle == 0 {
            return;
        }
        let mut idle = lock(&self.slots[slot()]);
        if idle.len() >= self.max_idle {
            // The oldest goes.
            idle.remove(0);
        }
        idle.push(Idle {
            tx,
            since: Instant::now(),
        });
    }

    /// Drops connections idle past `idle_timeout` (oldest first in each
    /// list) and closed ones.
    fn reap(&self) {
        for slot in self.slots.iter() {
            let mut idle = lock(slot);
            idle.retain(|c| c.usable(self.idle_timeout));
        }
    }

    /// One task per pool, started with its first connection, ending with
    /// the pool (a configuration reload builds a new one).
    fn start_reaper(self: &Arc<Pool>) {
        if self.reaper.swap(true, Ordering::Relaxed) {
            return;
        }
        let every =
            (self.idle_timeout / 2).clamp(Duration::from_millis(100), Duration::from_secs(30));
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                match pool.upgrade() {
                    Some(p) => p.reap(),
                    None => return,
                }
            }
        });
    }
}

fn lock(m: &Mutex<Vec<Idle>>) -> std::sync::MutexGuard<'_, Vec<Idle>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A connection lent for one exchange.
struct Lease {
    tx: SendRequest<UpBody>,
    pool: Weak<Pool>,
}

/// The upstream's response body. Returns its connection to the pool when
/// dropped after the last byte; dropped earlier (the client went away), the
/// connection is closed.
pub struct UpstreamBody {
    inner: Incoming,
    finished: bool,
    lease: Option<Lease>,
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.finished = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for UpstreamBody {
    fn drop(&mut self) {
        let Some(lease) = self.lease.take() else {
            return;
        };
        if !(self.finished || self.inner.is_end_stream()) {
            return;
        }
        let Some(pool) = lease.pool.upgrade() else {
            return;
        };
        let mut tx = lease.tx;
        if tx.is_ready() {
            pool.put(tx);
        } else if let (false, Ok(rt)) = (tx.is_closed(), tokio::runtime::Handle::try_current()) {
            // hyper has not yet seen the end of the exchange on its side:
            // back in the pool once it has.
            rt.spawn(async move {
                if tx.ready().await.is_ok() {
                    pool.put(tx);
                }
            });
        }
    }
}
