//! The upstream connection pool against a plain TCP upstream on 127.0.0.1
//! that counts its connections: reuse, a connection the upstream closed
//! while idle, an abandoned body, the idle timeout.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::client::{send, Got};
use common::gate::{config_text, Gate, Keys};
use common::process::eventually;
use http::{Request, StatusCode};
use http_body_util::Full;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PUBLIC: &str = "[policy]\npublic_paths = [\"/\"]\n";

/// How the counting upstream treats each connection.
#[derive(Clone, Copy)]
enum Mode {
    /// Keep-alive, every request answered.
    KeepAlive,
    /// Answers one request (keep-alive announced), then closes 100 ms
    /// later: a keep-alive timeout shorter than the pool's.
    CloseAfterOne,
}

struct RawUpstream {
    addr: std::net::SocketAddr,
    opened: Arc<AtomicUsize>,
    open_now: Arc<AtomicUsize>,
    /// Every request line received.
    lines: Arc<std::sync::Mutex<Vec<String>>>,
}

impl RawUpstream {
    async fn start(mode: Mode, body_len: usize) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let opened = Arc::new(AtomicUsize::new(0));
        let open_now = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (o, n, l) = (opened.clone(), open_now.clone(), lines.clone());
        tokio::spawn(async move {
            while let Ok((s, _)) = listener.accept().await {
                o.fetch_add(1, Ordering::SeqCst);
                n.fetch_add(1, Ordering::SeqCst);
                let n = n.clone();
                let l = l.clone();
                tokio::spawn(async move {
                    serve(s, mode, body_len, l).await;
                    n.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        RawUpstream {
            addr,
            opened,
            open_now,
            lines,
        }
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn opened(&self) -> usize {
        self.opened.load(Ordering::SeqCst)
    }

    fn open_now(&self) -> usize {
        self.open_now.load(Ordering::SeqCst)
    }
}

/// Reads request heads (GET, no body) and answers each with `body_len`
/// bytes.
async fn serve(
    mut s: TcpStream,
    mode: Mode,
    body_len: usize,
    lines: Arc<std::sync::Mutex<Vec<String>>>,
) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(k) => buf.extend_from_slice(&chunk[..k]),
            }
        }
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap_or(0) + 4;
        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
        lines
            .lock()
            .expect("lock")
            .push(head.lines().next().unwrap_or("").to_string());
        buf.drain(..end);
        let head = format!("HTTP/1.1 200 OK\r\ncontent-length: {body_len}\r\n\r\n");
        if s.write_all(head.as_bytes()).await.is_err()
            || s.write_all(&vec![b'x'; body_len]).await.is_err()
        {
            return;
        }
        if let Mode::CloseAfterOne = mode {
            tokio::time::sleep(Duration::from_millis(100)).await;
            return;
        }
    }
}

async fn get(gate: &Gate, path: &str) -> Got {
    let req = Request::get(gate.url(path))
        .body(Full::new(Bytes::new()))
        .expect("req");
    send(req).await
}

#[tokio::test]
async fn sequential_requests_reuse_one_upstream_connection() {
    let up = RawUpstream::start(Mode::KeepAlive, 200).await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    for i in 0..20 {
        let got = get(&gate, &format!("/r{i}")).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.body.len(), 200);
    }
    assert_eq!(up.opened(), 1, "one kept-alive connection for 20 requests");
    // Origin-form request targets (RFC 9112 section 3.2.1), not the
    // absolute-form meant for proxies.
    let lines = up.lines.lock().expect("lock").clone();
    assert_eq!(lines.len(), 20);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line, &format!("GET /r{i} HTTP/1.1"));
    }
}

#[tokio::test]
async fn a_connection_the_upstream_closed_while_idle_is_replaced_without_an_error() {
    let up = RawUpstream::start(Mode::CloseAfterOne, 10).await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    for i in 0..5 {
        let got = get(&gate, &format!("/r{i}")).await;
        assert_eq!(got.status, StatusCode::OK, "request {i}: {}", got.text());
        // The upstream closes its side after 100 ms; the pooled connection
        // is then stale.
        eventually(
            "the upstream closed the connection",
            Duration::from_secs(10),
            || up.open_now() == 0,
        )
        .await;
    }
    assert_eq!(up.opened(), 5);
}

#[tokio::test]
async fn a_body_the_client_abandoned_closes_its_upstream_connection() {
    // Large enough that the proxy cannot have read it all when the client
    // goes away.
    let up = RawUpstream::start(Mode::KeepAlive, 8 * 1024 * 1024).await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let mut s = TcpStream::connect(gate.addr).await.expect("connect");
    s.write_all(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .expect("write");
    let mut first = [0u8; 1024];
    let n = s.read(&mut first).await.expect("read");
    assert!(first[..n].starts_with(b"HTTP/1.1 200"));
    drop(s);
    // Not returned to the pool with half a body in it: closed.
    eventually(
        "the abandoned upstream connection is closed",
        Duration::from_secs(10),
        || up.open_now() == 0,
    )
    .await;
    let got = get(&gate, "/after").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.body.len(), 8 * 1024 * 1024);
    assert_eq!(up.opened(), 2);
}

#[tokio::test]
async fn idle_upstream_connections_close_after_the_pool_idle_timeout() {
    let up = RawUpstream::start(Mode::KeepAlive, 10).await;
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), PUBLIC);
    let env = vec![(
        "AUTHGATE_UPSTREAM__POOL_IDLE_TIMEOUT".to_string(),
        "1s".to_string(),
    )];
    let gate = Gate::start_with(keys, text, env).await;
    let got = get(&gate, "/once").await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(up.open_now(), 1);
    eventually(
        "the idle upstream connection is closed",
        Duration::from_secs(10),
        || up.open_now() == 0,
    )
    .await;
    // And a new one serves the next request.
    assert_eq!(get(&gate, "/again").await.status, StatusCode::OK);
    assert_eq!(up.opened(), 2);
}

#[tokio::test]
async fn concurrent_requests_each_get_a_connection_and_leave_them_pooled() {
    let up = RawUpstream::start(Mode::KeepAlive, 100).await;
    let gate = Arc::new(Gate::start(&up.url(), PUBLIC).await);
    let mut tasks = Vec::new();
    for i in 0..8 {
        let gate = gate.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..10 {
                assert_eq!(
                    get(&gate, &format!("/c{i}/{j}")).await.status,
                    StatusCode::OK
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let opened = up.opened();
    assert!(
        (1..=8).contains(&opened),
        "{opened} connections for 8 concurrent clients"
    );
    // All idle in the pool now: another round opens none.
    for j in 0..10 {
        assert_eq!(get(&gate, &format!("/d{j}")).await.status, StatusCode::OK);
    }
    assert_eq!(up.opened(), opened);
}
