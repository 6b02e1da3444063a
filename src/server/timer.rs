//! The HTTP/1 connection timer: `server.header_read_timeout` for a request
//! head that has started, `server.idle_timeout` for a kept-alive connection
//! waiting for its next request — as nginx separates
//! `client_header_timeout` and `keepalive_timeout`.
//!
//! hyper has one deadline for both (its header-read timer starts when it
//! begins waiting for a head, idle or not) and asks its [`Timer`] for a new
//! sleep for every request. This timer is per connection: it sees the
//! connection's read activity through [`Counted`], and it keeps one tokio
//! sleep for the connection's whole life. hyper's per-request sleeps are
//! views of it whose deadline only moves forward on the normal path, which
//! tokio does in place (no timer-wheel work, no driver wake-up per request;
//! bench/README.md measured that wake-up at one extra `write` +
//! `epoll_wait` per request).
//!
//! The rule, for each wait for a head (T0 = when the wait started):
//! - the first request of a connection: T0 + `header_read_timeout`;
//! - later requests: T0 + `idle_timeout` while no byte has arrived; once
//!   bytes have arrived, first seen at T1, T1 + `header_read_timeout`.
//!
//! Bytes of the next head that arrived together with the previous request
//! (pipelining) count as "no byte yet": such a connection is held at most
//! `idle_timeout`, like any idle connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use hyper::rt::{Sleep, Timer};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How many bytes a connection has read so far; shared by [`Counted`] and
/// the connection's [`ConnTimer`].
#[derive(Debug, Default)]
pub struct Activity {
    bytes_read: AtomicU64,
}

impl Activity {
    fn bytes_read(&self) -> u64 {
        // The connection's I/O and its timer are polled by the same task.
        self.bytes_read.load(Ordering::Relaxed)
    }
}

/// An I/O stream that counts the bytes read into [`Activity`].
pub struct Counted<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Counted<S> {
    pub fn new(inner: S, activity: Arc<Activity>) -> Counted<S> {
        Counted { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        let n = buf.filled().len().saturating_sub(before) as u64;
        if n > 0 {
            self.activity.bytes_read.fetch_add(n, Ordering::Relaxed);
        }
        r
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The deadline of one wait for a request head; pure, so the rule is
/// table-tested without a clock.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wait {
    /// When the wait started.
    pub start: Instant,
    /// The connection's first request.
    pub first: bool,
    /// When the first byte of this head was seen, if one was.
    pub head_started: Option<Instant>,
}

impl Wait {
    pub fn deadline(&self, header: Duration, idle: Duration) -> Instant {
        match (self.first, self.head_started) {
            (true, _) => self.start + header,
            (false, Some(t1)) => t1 + header,
            (false, None) => self.start + idle,
        }
    }
}

/// hyper's HTTP/1 [`Timer`] for one connection (see the module docs).
#[derive(Clone)]
pub struct ConnTimer {
    shared: Arc<Shared>,
}

struct Shared {
    header: Duration,
    idle: Duration,
    activity: Arc<Activity>,
    state: Mutex<State>,
}

struct State {
    /// Created on the first wait, then only reset.
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
    /// Waits started on this connection.
    waits: u64,
}

impl ConnTimer {
    pub fn new(header: Duration, idle: Duration, activity: Arc<Activity>) -> ConnTimer {
        ConnTimer {
            shared: Arc::new(Shared {
                header,
                idle,
                activity,
                state: Mutex::new(State {
                    sleep: None,
                    waits: 0,
                }),
            }),
        }
    }
}

impl ConnTimer {
    /// Resolves if, `header_read_timeout` after the start, the connection
    /// has not got as far as hyper's first HTTP/1 head wait nor sent a
    /// whole HTTP/2 preface (24 bytes): a client that connects and stays
    /// silent, or stalls inside the first bytes `server::serve` looks at
    /// to tell HTTP/1 from HTTP/2 — a phase no hyper timer covers.
    /// Otherwise never.
    pub async fn silent_start(&self) {
        tokio::time::sleep(self.shared.header).await;
        let waits = lock(&self.shared.state).waits;
        if waits == 0 && self.shared.activity.bytes_read() < super::H2_PREFACE.len() as u64 {
            return;
        }
        std::future::pending::<()>().await
    }
}

impl Timer for ConnTimer {
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Sleep>> {
        self.sleep_until(now() + duration)
    }

    fn now(&self) -> Instant {
        now()
    }

    /// hyper asks for `now + header_read_timeout` when it starts waiting for
    /// a head; the wait's start is read back from that.
    fn sleep_until(&self, deadline: Instant) -> Pin<Box<dyn Sleep>> {
        let mut state = lock(&self.shared.state);
        let first = state.waits == 0;
        state.waits += 1;
        drop(state);
        Box::pin(HeadSleep {
            shared: Arc::clone(&self.shared),
            wait: Wait {
                start: deadline.checked_sub(self.shared.header).unwrap_or(deadline),
                first,
                head_started: None,
            },
            bytes_at_start: self.shared.activity.bytes_read(),
        })
    }

    fn reset(&self, sleep: &mut Pin<Box<dyn Sleep>>, new_deadline: Instant) {
        *sleep = self.sleep_until(new_deadline);
    }
}

/// tokio's clock (the same as std's, except in tests with paused time).
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

fn lock(m: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One wait for a request head, backed by the connection's tokio sleep.
struct HeadSleep {
    shared: Arc<Shared>,
    wait: Wait,
    bytes_at_start: u64,
}

impl Sleep for HeadSleep {}

impl Future for HeadSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.wait.head_started.is_none()
            && self.shared.activity.bytes_read() != self.bytes_at_start
        {
            // hyper polls this right after a read that left the head
            // incomplete, so "now" is when the head started.
            self.wait.head_started = Some(now());
        }
        let deadline = self.wait.deadline(self.shared.header, self.shared.idle);
        let deadline = tokio::time::Instant::from_std(deadline);
        let mut state = lock(&self.shared.state);
        let sleep = state
            .sleep
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if sleep.deadline() != deadline {
            // Later than before (the normal case): tokio extends it in place.
            sleep.as_mut().reset(deadline);
        }
        sleep.as_mut().poll(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_of_a_wait() {
        let t0 = Instant::now();
        let header = Duration::from_secs(10);
        let idle = Duration::from_secs(75);
        let s = Duration::from_secs;
        let cases = [
            // first request: the header deadline, bytes or not
            (true, None, t0 + s(10)),
            (true, Some(t0 + s(3)), t0 + s(10)),
            // kept alive, nothing yet: the idle deadline
            (false, None, t0 + s(75)),
            // kept alive, a head began at T1: T1 + header
            (false, Some(t0 + s(70)), t0 + s(80)),
            (false, Some(t0), t0 + s(10)),
        ];
        for (first, head_started, want) in cases {
            let w = Wait {
                start: t0,
                first,
                head_started,
            };
            assert_eq!(w.deadline(header, idle), want, "{w:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn idle_then_a_slow_head() {
        let activity = Arc::new(Activity::default());
        let timer = ConnTimer::new(
            Duration::from_secs(10),
            Duration::from_secs(75),
            Arc::clone(&activity),
        );
        // First request: ends at the header deadline.
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::from_secs(10)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(10));

        // Second wait, nothing arrives: the idle deadline.
        let start = tokio::time::Instant::now();
        timer.sleep(Duration::from_secs(10)).await;
        assert_eq!(start.elapsed(), Duration::from_secs(75));

        // Third wait: idle 30 s, then one byte; 10 s more.
        let start = tokio::time::Instant::now();
        let mut sleep = timer.sleep(Duration::from_secs(10));
        assert!(futures_poll_once(sleep.as_mut()).is_pending());
        tokio::time::sleep(Duration::from_secs(30)).await;
        activity.bytes_read.fetch_add(1, Ordering::Relaxed);
        sleep.await;
        assert_eq!(start.elapsed(), Duration::from_secs(40));
    }

    fn futures_poll_once(f: Pin<&mut (dyn Sleep + 'static)>) -> Poll<()> {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        f.poll(&mut cx)
    }
}
