//! The proxy spine against a real upstream on 127.0.0.1: forwarding,
//! streaming, hop-by-hop headers, upgrades, errors, limits, shutdown.

mod common;

use std::time::Duration;

use bytes::Bytes;
use common::client::{get, raw, raw_status, send};
use common::gate::{config_text, Gate, Keys};
use common::ports::free_addr;
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const PUBLIC: &str = "[policy]\npublic_paths = [\"/\"]\n";

#[tokio::test]
async fn forwards_with_host_content_length_and_forwarding_headers() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let req = Request::post(gate.url("/api/tasks?x=1"))
        .header("host", "labels.example.com")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from_static(b"{\"a\":1}")))
        .expect("req");
    let got = send(req).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    let seen = up.last();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.target, "/api/tasks?x=1");
    assert_eq!(seen.headers["host"], "labels.example.com");
    assert_eq!(seen.headers["content-length"], "7");
    assert!(seen.headers.get("transfer-encoding").is_none());
    assert_eq!(seen.body_len, 7);
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert_eq!(seen.headers["x-forwarded-host"], "labels.example.com");
    assert!(seen.headers.get("x-request-id").is_some());
    // The upstream's hop-by-hop headers do not reach the client.
    assert!(got.headers.get("x-upstream-private").is_none());
}

#[tokio::test]
async fn untrusted_forwarding_headers_are_replaced_and_trusted_ones_appended() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    get(
        &gate.url("/"),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x_forwarded_for", "7.7.7.7"),
        ],
    )
    .await;
    let seen = up.last();
    assert_eq!(seen.headers.get_all("x-forwarded-for").iter().count(), 1);
    assert_eq!(seen.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "http");
    assert!(seen.headers.get("x_forwarded_for").is_none());
}

#[tokio::test]
async fn trusted_proxy_values_are_kept() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), PUBLIC).replace(
        "[server]\n",
        "[server]\ntrusted_proxies = [\"127.0.0.0/8\"]\n",
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    get(
        &gate.url("/"),
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "front.example"),
        ],
    )
    .await;
    let seen = up.last();
    assert_eq!(seen.headers["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(seen.headers["x-forwarded-proto"], "https");
    assert_eq!(seen.headers["x-forwarded-host"], "front.example");
}

#[tokio::test]
async fn hop_by_hop_headers_are_removed() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let resp = raw(
        gate.addr,
        b"GET /hop HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret-Hop\r\nX-Secret-Hop: 1\r\nKeep-Alive: timeout=5\r\nProxy-Authorization: Basic eA==\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    let seen = up.last();
    for h in ["x-secret-hop", "keep-alive", "proxy-authorization", "te"] {
        assert!(seen.headers.get(h).is_none(), "{h} reached the upstream");
    }
}

#[tokio::test]
async fn paths_are_normalized_once_and_ambiguous_ones_refused() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let resp = raw(
        gate.addr,
        b"GET /a/%2e%2e//b/./c%41?q=%2F HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    assert_eq!(up.last().target, "/b/cA?q=%2F");
    let n = up.count();
    for bad in ["/a%2Fb", "/a%2fb", "/a%5Cb", "/a\\b", "/a%00b"] {
        let resp = raw(
            gate.addr,
            format!("GET {bad} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        assert_eq!(raw_status(&resp), 400, "{bad}: {resp}");
    }
    assert_eq!(up.count(), n, "no ambiguous path reached the upstream");
    // Absolute-form targets are normalized the same way.
    let resp = raw(
        gate.addr,
        b"GET http://a/x/../y HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(raw_status(&resp), 200, "{resp}");
    assert_eq!(up.last().target, "/y");
}

#[tokio::test]
async fn ambiguous_framing_is_refused() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let cases: [&[u8]; 4] = [
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\nabcd",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: gzip\r\n\r\nabcd",
    ];
    let before = up.count();
    for case in cases {
        let resp = raw(gate.addr, case).await;
        let status = raw_status(&resp);
        assert!(
            status == 400 || status == 0,
            "{}: {resp}",
            String::from_utf8_lossy(case)
        );
    }
    // CL + TE chunked: hyper lets chunked win and drops Content-Length (RFC 9112 §6.3), so
    // the upstream never sees both.
    let resp = raw(gate.addr, b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n").await;
    let status = raw_status(&resp);
    if status == 200 {
        let seen = up.last();
        assert!(
            !(seen.headers.contains_key("content-length")
                && seen.headers.contains_key("transfer-encoding"))
        );
        assert_eq!(seen.body_len, 3);
    } else {
        assert_eq!(status, 400, "{resp}");
    }
    assert!(up.count() <= before + 1);
}

#[tokio::test]
async fn oversized_headers_get_431() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let big = "a".repeat(100 * 1024);
    let resp = raw(
        gate.addr,
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(raw_status(&resp), 431, "{}", &resp[..resp.len().min(200)]);
}

#[tokio::test]
async fn slow_request_heads_are_cut_off() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let mut s = tokio::net::TcpStream::connect(gate.addr)
        .await
        .expect("connect");
    s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write");
    // header_read_timeout is 2 s in the test config; the server must close
    // (with or without a 408) long before this bound.
    let mut buf = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(15), s.read_to_end(&mut buf)).await;
    assert!(r.is_ok(), "the connection stayed open");
    // A neighbour connection is unaffected.
    assert_eq!(get(&gate.url("/"), &[]).await.status, StatusCode::OK);
}

/// Reads one response (head + Content-Length body) from a kept-alive
/// connection; `None` when the server closed it first.
async fn read_response(s: &mut tokio::net::TcpStream) -> Option<String> {
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
        }
        match tokio::time::timeout(Duration::from_secs(30), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return None,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!("no response and no close within 30 s"),
        }
    }
}

#[tokio::test]
async fn idle_keep_alive_outlives_the_header_timeout_but_a_slow_head_does_not() {
    // header_read_timeout = 2 s (test config), idle_timeout = 75 s (default).
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let req = b"GET /a HTTP/1.1\r\nHost: a\r\n\r\n";
    let mut s = tokio::net::TcpStream::connect(gate.addr)
        .await
        .expect("connect");
    s.write_all(req).await.expect("write");
    let first = read_response(&mut s).await.expect("first response");
    assert_eq!(raw_status(&first), 200, "{first}");
    // Idle for well over the header timeout: still served (nginx's
    // keepalive_timeout, not client_header_timeout).
    tokio::time::sleep(Duration::from_secs(5)).await;
    s.write_all(req).await.expect("write after idling");
    let second = read_response(&mut s)
        .await
        .expect("the idle connection was closed before idle_timeout");
    assert_eq!(raw_status(&second), 200, "{second}");
    // A head that starts but never ends is cut at the header timeout, far
    // sooner than the idle timeout; no response is produced for it.
    s.write_all(b"GET /b HTTP/1.1\r\nHost: a\r\n")
        .await
        .expect("write partial head");
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "the slow head was not cut off");
    assert!(
        !String::from_utf8_lossy(&rest).contains(" 200 "),
        "{}",
        String::from_utf8_lossy(&rest)
    );
}

#[tokio::test]
async fn a_connection_that_never_sends_is_cut_at_the_header_timeout() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let mut s = tokio::net::TcpStream::connect(gate.addr)
        .await
        .expect("connect");
    let mut rest = Vec::new();
    let r = tokio::time::timeout(Duration::from_secs(30), s.read_to_end(&mut rest)).await;
    assert!(r.is_ok(), "a silent new connection stayed open");
}

#[tokio::test]
async fn upstream_down_gives_502_and_slow_upstream_504() {
    // A port with nothing listening.
    let dead = format!("http://{}", free_addr());
    let gate = Gate::start(&dead, PUBLIC).await;
    let got = get(&gate.url("/x"), &[]).await;
    assert_eq!(got.status, StatusCode::BAD_GATEWAY);
    assert_eq!(got.json()["error"], "upstream_unavailable");
    let page = get(&gate.url("/x"), &[("accept", "text/html")]).await;
    assert_eq!(page.status, StatusCode::BAD_GATEWAY);
    assert!(page.text().contains("<html"), "{}", page.text());
    assert!(page.headers["content-type"]
        .to_str()
        .unwrap_or("")
        .starts_with("text/html"));

    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let (slow_url, fast_url) = (gate.url("/slow"), gate.url("/fast"));
    let (slow, fast) = tokio::join!(get(&slow_url, &[]), async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        get(&fast_url, &[]).await
    });
    assert_eq!(slow.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(slow.json()["error"], "upstream_timeout");
    assert_eq!(
        fast.status,
        StatusCode::OK,
        "a neighbour request is unaffected"
    );
}

#[tokio::test]
async fn websocket_upgrade_is_passed_through() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let mut s = tokio::net::TcpStream::connect(gate.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
        .await
        .expect("write");
    let mut head = Vec::new();
    let mut b = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut b))
            .await
            .expect("head in time")
            .expect("read");
        assert!(n == 1, "closed early: {}", String::from_utf8_lossy(&head));
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    assert!(head.contains("upgrade: websocket"));
    let seen = up.last();
    assert_eq!(seen.headers["upgrade"], "websocket");
    s.write_all(b"ping-through-proxy").await.expect("write");
    let mut echo = [0u8; 18];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut echo))
        .await
        .expect("echo in time")
        .expect("read");
    assert_eq!(&echo, b"ping-through-proxy");
}

#[tokio::test]
async fn http2_clients_are_served() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http::<Full<Bytes>>();
    let req = Request::get(format!(
        "http://labels.example.com:{}/h2?x=1",
        gate.addr.port()
    ))
    .body(Full::new(Bytes::new()))
    .expect("req");
    // Connect to the gate while naming another authority: use the addr directly.
    let req = {
        let (mut parts, body) = req.into_parts();
        parts.uri = format!("http://{}/h2?x=1", gate.addr).parse().expect("uri");
        Request::from_parts(parts, body)
    };
    let resp = client.request(req).await.expect("h2 request");
    assert_eq!(resp.status(), StatusCode::OK);
    let seen = up.last();
    assert_eq!(seen.target, "/h2?x=1");
    assert_eq!(seen.version, http::Version::HTTP_11);
    assert_eq!(
        seen.headers["host"],
        gate.addr.to_string().as_str(),
        "HTTP/2 :authority becomes Host"
    );
}

#[tokio::test]
async fn graceful_shutdown_drains_in_flight_requests() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), PUBLIC)
        .replace("response_timeout = \"1s\"", "response_timeout = \"10s\"");
    let gate = Gate::start_with(keys, text, vec![]).await;
    let url = gate.url("/slow");
    let addr = gate.addr;
    let inflight = tokio::spawn(async move { get(&url, &[]).await });
    // Wait until the upstream has the request, then shut down.
    for _ in 0..200 {
        if up.count() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(up.count(), 1);
    let shutdown = tokio::spawn(gate.shutdown());
    let got = inflight.await.expect("join");
    assert_eq!(got.status, StatusCode::OK, "the in-flight request finished");
    shutdown.await.expect("shutdown");
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "listener closed"
    );
}

#[tokio::test]
async fn health_and_metrics() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    assert_eq!(
        get(&gate.url("/_auth/healthz"), &[]).await.status,
        StatusCode::OK
    );
    let ready = get(&gate.url("/_auth/readyz"), &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json()["ready"], true);
    get(&gate.url("/counted"), &[]).await;
    let m = get(
        &format!("http://{}/metrics", gate.metrics_addr.expect("metrics")),
        &[],
    )
    .await;
    let text = m.text();
    assert!(
        text.contains("authgate_requests_total{class=\"2xx\"}"),
        "{text}"
    );
    assert!(text.contains("authgate_upstream_response_seconds_count"));
    assert!(text.contains("authgate_in_flight_requests"));
    assert!(text.contains("authgate_upstream_errors_total{kind=\"connect\"}"));
}

#[tokio::test]
async fn max_body_is_enforced_when_set() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), "[policy]\npublic_paths = [\"/\"]\n").await;
    // Unlimited by default: 8 MiB passes with its Content-Length.
    let body = Bytes::from(vec![b'z'; 8 << 20]);
    let got = send(
        Request::post(gate.url("/upload"))
            .body(Full::new(body))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(up.last().body_len, 8 << 20);
    assert_eq!(
        up.last().headers["content-length"],
        (8u64 << 20).to_string().as_str()
    );

    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), PUBLIC)
        .replace("[upstream]\n", "[upstream]\nmax_body = 1000\n");
    let gate = Gate::start_with(keys, text, vec![]).await;
    let got = send(
        Request::post(gate.url("/upload"))
            .body(Full::new(Bytes::from(vec![b'z'; 5000])))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::PAYLOAD_TOO_LARGE);
}

#[tokio::test]
async fn streaming_download_is_not_buffered() {
    let up = Upstream::start().await;
    let gate = Gate::start(&up.url(), PUBLIC).await;
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .build_http::<Full<Bytes>>();
    let resp = client
        .request(
            Request::get(gate.url("/stream?mib=64"))
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("resp");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(
        resp.headers()["content-length"],
        (64u64 << 20).to_string().as_str()
    );
    let mut body = resp.into_body();
    let mut n = 0u64;
    while let Some(f) = body.frame().await {
        if let Some(d) = f.expect("frame").data_ref() {
            n += d.len() as u64;
        }
    }
    assert_eq!(n, 64 << 20);
}
