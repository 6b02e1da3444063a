//! Graceful drain: every connection watches one signal; on shutdown each
//! finishes its in-flight requests (HTTP/1: the current one, then closes;
//! HTTP/2: GOAWAY) and the server waits until all of them have ended.
//!
//! hyper-util's `GracefulShutdown` does the same, but not for hyper's
//! HTTP/1 connection with upgrades, which `serve` uses.

use std::future::Future;
use std::pin::Pin;

use tokio::sync::watch;

/// The server's side: starts the drain and waits for it.
pub struct Drain {
    tx: watch::Sender<bool>,
}

/// A connection's side.
pub struct Watch {
    rx: watch::Receiver<bool>,
}

impl Default for Drain {
    fn default() -> Drain {
        Drain {
            tx: watch::Sender::new(false),
        }
    }
}

impl Drain {
    pub fn watch(&self) -> Watch {
        Watch {
            rx: self.tx.subscribe(),
        }
    }

    /// Connections not yet ended.
    pub fn count(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Signals every connection and resolves when the last has ended.
    pub async fn shutdown(self) {
        self.tx.send_replace(true);
        self.tx.closed().await;
    }
}

/// A connection that can be asked to finish gracefully.
pub trait Graceful: Future {
    fn begin_shutdown(self: Pin<&mut Self>);
}

impl Watch {
    /// Drives `conn` to its end; when the drain starts, asks it to finish.
    pub async fn run<C: Graceful>(mut self, conn: C) -> C::Output {
        let mut conn = std::pin::pin!(conn);
        tokio::select! {
            biased;
            out = conn.as_mut() => return out,
            signalled = self.rx.wait_for(|draining| *draining) => {
                if signalled.is_ok() {
                    conn.as_mut().begin_shutdown();
                }
            }
        }
        let out = conn.await;
        drop(self);
        out
    }
}

impl<I, S> Graceful for hyper::server::conn::http1::UpgradeableConnection<I, S>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::UpgradeableConnection::graceful_shutdown(self);
    }
}

impl<I, S, E> Graceful for hyper::server::conn::http2::Connection<I, S, E>
where
    S: hyper::service::HttpService<hyper::body::Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as hyper::body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    E: hyper::rt::bounds::Http2ServerConnExec<S::Future, S::ResBody>,
{
    fn begin_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http2::Connection::graceful_shutdown(self);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Arc;
    use std::task::{Context, Poll};

    /// Ends one poll after it was asked to shut down.
    struct Conn {
        asked: Arc<AtomicBool>,
    }

    impl Future for Conn {
        type Output = &'static str;
        fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<&'static str> {
            if self.asked.load(Ordering::SeqCst) {
                Poll::Ready("drained")
            } else {
                Poll::Pending
            }
        }
    }

    impl Graceful for Conn {
        fn begin_shutdown(self: Pin<&mut Self>) {
            self.asked.store(true, Ordering::SeqCst);
        }
    }

    impl Graceful for std::future::Ready<()> {
        fn begin_shutdown(self: Pin<&mut Self>) {}
    }

    #[tokio::test]
    async fn shutdown_asks_every_connection_and_waits_for_them() {
        let drain = Drain::default();
        let asked = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(drain.watch().run(Conn {
            asked: Arc::clone(&asked),
        }));
        tokio::task::yield_now().await;
        assert_eq!(drain.count(), 1);
        assert!(!asked.load(Ordering::SeqCst));
        drain.shutdown().await;
        assert!(asked.load(Ordering::SeqCst));
        assert_eq!(task.await.ok(), Some("drained"));
    }

    #[tokio::test]
    async fn a_connection_that_ends_by_itself_leaves_the_count() {
        let drain = Drain::default();
        let done = tokio::spawn(drain.watch().run(std::future::ready(())));
        assert!(done.await.is_ok());
        assert_eq!(drain.count(), 0);
        // Nothing left to wait for.
        drain.shutdown().await;
    }
}
