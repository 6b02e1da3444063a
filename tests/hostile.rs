//! Slow and hostile clients against the real binary (issue #10, item 4):
//! slowloris heads and bodies, 10,000 idle connections, pipelining,
//! oversized heads and cookies, HTTP/2 rapid reset and a CONTINUATION
//! flood. Each test checks that the attacker's connection is closed (an
//! event, waited for with a generous bound), that a neighbour is served
//! meanwhile, and that the process's memory (VmHWM, the peak resident set,
//! from /proc) and CPU time stay bounded. No assertion depends on timing
//! beyond "eventually, within a bound far above the configured timeouts".

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::gate::{Binary, Keys};
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The header read timeout configured for these tests.
const HEADER_TIMEOUT_S: u64 = 2;
/// "Eventually": far above every configured timeout.
const EVENTUALLY: Duration = Duration::from_secs(60);
/// Peak resident memory allowed to the proxy in any of these tests.
const PEAK_RSS_LIMIT_KIB: u64 = 256 * 1024;

/// The binary, with what these tests measure of it.
struct Proc(Binary);

impl std::ops::Deref for Proc {
    type Target = Binary;
    fn deref(&self) -> &Binary {
        &self.0
    }
}

impl Proc {
    /// The binary on 127.0.0.1:0 in front of `upstream`, `/open` public.
    fn start(upstream: &str, extra: &str) -> Proc {
        raise_fd_limit();
        let keys = Keys::new();
        let config = keys.dir.path().join("authgate.toml");
        std::fs::write(
            &config,
            format!(
                "[server]\nlisten = \"127.0.0.1:0\"\nworkers = 2\nheader_read_timeout = \"{HEADER_TIMEOUT_S}s\"\nidle_timeout = \"3s\"\n\
                 [upstream]\nurl = \"{upstream}\"\nresponse_timeout = \"5s\"\n\
                 [session]\nsecret_file = \"{}\"\n\
                 [identity]\nsigning_key = \"{}\"\n\
                 [policy]\npublic_paths = [\"/open\"]\n\
                 [log]\nformat = \"json\"\nlevel = \"info\"\naccess_log = false\n{extra}",
                keys.session_key.display(),
                keys.signing_key.display()
            ),
        )
        .expect("write config");
        Proc(Binary::serve(&config, keys))
    }

    /// User + system CPU time of the process, in clock ticks.
    fn cpu_ticks(&self) -> u64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).expect("/proc stat");
        // Fields after the parenthesised command name; utime and stime are
        // the 14th and 15th fields of the whole line.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = rest.split_whitespace().collect();
        let n = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        n(11) + n(12)
    }

    fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.pid()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// The process is still running and its log has no panic.
    fn assert_alive(&mut self) {
        assert!(
            self.0.exited().is_none(),
            "authgate exited:\n{}",
            self.log()
        );
        let log = self.log();
        assert!(!log.contains("panicked"), "panic in the log:\n{log}");
    }

    /// A neighbour's request is answered.
    async fn assert_serves_neighbour(&self) {
        let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .build_http::<Full<Bytes>>();
        let req = Request::get(format!("http://{}/open/neighbour", self.addr))
            .body(Full::new(Bytes::new()))
            .expect("request");
        let resp = tokio::time::timeout(EVENTUALLY, client.request(req))
            .await
            .expect("the neighbour is answered")
            .expect("the neighbour's request");
        assert_eq!(resp.status(), StatusCode::OK);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        assert!(String::from_utf8_lossy(&body).contains("/open/neighbour"));
    }

    fn assert_peak_rss_bounded(&self) {
        let peak = self.status_kib("VmHWM");
        assert!(
            peak < PEAK_RSS_LIMIT_KIB,
            "peak RSS {peak} KiB >= {PEAK_RSS_LIMIT_KIB} KiB"
        );
    }
}

/// Raises this process's soft open-file limit to its hard limit (at most
/// 65,536); the authgate child inherits it. 10,000 connections need
/// 10,000 descriptors on each side.
fn raise_fd_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let lim = getrlimit(Resource::Nofile);
    let want = lim.maximum.unwrap_or(u64::MAX).min(65_536);
    if lim.current.is_some_and(|c| c < want) {
        let _ = setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(want),
                maximum: lim.maximum,
            },
        );
    }
}

fn fd_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .current
        .unwrap_or(u64::MAX)
}

/// Reads until the peer closes (EOF or reset), up to `EVENTUALLY`; returns
/// what was read. Panics if the connection is still open by then.
async fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 16384];
    let done = tokio::time::timeout(EVENTUALLY, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(done.is_ok(), "the server did not close the connection");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_heads_are_cut_at_the_header_timeout_while_others_are_served() {
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");
    let mut tasks = Vec::new();
    for i in 0..50 {
        let addr = p.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(b"GET /open/slow HTTP/1.1\r\nHost: x\r\n")
                .await
                .expect("write");
            let started = Instant::now();
            // One header line every 200 ms, never the blank line, until the
            // server closes the connection (a write or read fails).
            let mut buf = [0u8; 1024];
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(_) => {}
                    },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if s.write_all(format!("X-Slow-{i}: a\r\n").as_bytes()).await.is_err() {
                            break;
                        }
                    }
                }
                assert!(started.elapsed() < EVENTUALLY, "slow head {i} never cut");
            }
            started.elapsed()
        }));
    }
    // Served while the slow heads trickle.
    p.assert_serves_neighbour().await;
    for t in tasks {
        let took = t.await.expect("slow client");
        // Cut by the header timeout, not by the client giving up.
        assert!(took >= Duration::from_secs(HEADER_TIMEOUT_S) - Duration::from_millis(500));
    }
    assert!(!up.requests().iter().any(|s| s.target == "/open/slow"));
    p.assert_alive();
    p.assert_serves_neighbour().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_bodies_are_cut_while_others_are_served() {
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let addr = p.addr;
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.expect("connect");
            s.write_all(
                format!(
                    "POST /open/slowbody{i} HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n"
                )
                .as_bytes(),
            )
            .await
            .expect("write");
            let started = Instant::now();
            let mut got = Vec::new();
            let mut buf = [0u8; 4096];
            loop {
                tokio::select! {
                    r = s.read(&mut buf) => match r {
                        Ok(0) | Err(_) => break,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    },
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {
                        if s.write_all(b"x").await.is_err() {
                            break;
                        }
                    }
                }
                assert!(started.elapsed() < EVENTUALLY, "slow body {i} never cut");
            }
            String::from_utf8_lossy(&got).into_owned()
        }));
    }
    p.assert_serves_neighbour().await;
    for t in tasks {
        let answer = t.await.expect("slow client");
        // A clean answer (authgate's 504: the upstream waits for the whole
        // body and does not answer within upstream.response_timeout), then
        // the connection closed.
        assert!(
            answer.starts_with("HTTP/1.1 504") || answer.starts_with("HTTP/1.1 408"),
            "{answer}"
        );
    }
    p.assert_alive();
    p.assert_serves_neighbour().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_body_on_a_login_form_is_cut() {
    let up = Upstream::start().await;
    let mut p = Proc::start(
        &up.url(),
        "[ldap]\nenabled = true\nserver_uri = \"ldap://127.0.0.1:1\"\nuser_dn_template = \"uid=%(user)s,dc=x\"\n",
    );
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    s.write_all(
        b"POST /_auth/ldap/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 4000\r\n\r\nusername=a",
    )
    .await
    .expect("write");
    let started = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        tokio::select! {
            r = s.read(&mut buf) => match r {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {
                if s.write_all(b"x").await.is_err() {
                    break;
                }
            }
        }
        assert!(
            started.elapsed() < EVENTUALLY,
            "a login body trickling one byte every 200 ms is never cut"
        );
    }
    let answer = String::from_utf8_lossy(&got);
    assert!(
        answer.is_empty()
            || answer.starts_with("HTTP/1.1 408")
            || answer.starts_with("HTTP/1.1 400"),
        "{answer}"
    );
    p.assert_alive();
    p.assert_serves_neighbour().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_are_bounded_and_others_served() {
    const N: usize = 10_000;
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");
    assert!(
        fd_limit() >= (N + 500) as u64,
        "the open-file limit ({}) cannot hold {N} connections; raise the hard limit",
        fd_limit()
    );
    let base_rss = p.status_kib("VmRSS");
    let base_fds = p.open_fds();
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = Vec::with_capacity(N);
    for _ in 0..N {
        let addr = p.addr;
        let permit = sem.clone().acquire_owned().await.expect("semaphore");
        tasks.push(tokio::spawn(async move {
            let s = TcpStream::connect(addr).await.expect("connect");
            drop(permit);
            s
        }));
    }
    let mut conns = Vec::with_capacity(N);
    for t in tasks {
        conns.push(t.await.expect("connect task"));
    }
    // While they are open (or being closed): a new client is served.
    p.assert_serves_neighbour().await;
    // Every idle connection is closed by the server (header_read_timeout).
    let closers: Vec<_> = conns
        .into_iter()
        .map(|mut s| tokio::spawn(async move { read_until_closed(&mut s).await.len() }))
        .collect();
    for c in closers {
        assert_eq!(c.await.expect("closer"), 0, "an idle connection got bytes");
    }
    p.assert_alive();
    p.assert_peak_rss_bounded();
    p.assert_serves_neighbour().await;
    // Back near the baseline: descriptors released, memory returned.
    let deadline = Instant::now() + EVENTUALLY;
    while p.open_fds() > base_fds + 20 {
        assert!(
            Instant::now() < deadline,
            "fds {} vs baseline {base_fds}",
            p.open_fds()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rss = p.status_kib("VmRSS");
    eprintln!(
        "10,000 idle: baseline RSS {base_rss} KiB, peak {} KiB, after {rss} KiB; fds {base_fds} -> {}",
        p.status_kib("VmHWM"),
        p.open_fds()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_requests_are_answered_in_order() {
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let mut batch = String::new();
    for i in 0..20 {
        batch.push_str(&format!("GET /open/pipe{i:02} HTTP/1.1\r\nHost: x\r\n\r\n"));
    }
    batch.push_str("GET /open/pipe-last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    s.write_all(batch.as_bytes()).await.expect("write");
    let out = String::from_utf8_lossy(&read_until_closed(&mut s).await).into_owned();
    assert_eq!(out.matches("HTTP/1.1 200").count(), 21, "{out}");
    let mut last = 0;
    for i in 0..20 {
        let at = out
            .find(&format!("\"target\":\"/open/pipe{i:02}\""))
            .unwrap_or_else(|| panic!("no answer for pipe{i:02}"));
        assert!(at >= last, "pipe{i:02} answered out of order");
        last = at;
    }
    assert!(out.find("/open/pipe-last").unwrap_or(0) > last);
    p.assert_alive();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_heads_and_cookies_get_431() {
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");
    let big = "a".repeat(100 * 1024);
    let many: String = (0..5000).map(|i| format!("X-H{i}: v\r\n")).collect();
    for (what, head) in [
        ("one big header", format!("X-Big: {big}\r\n")),
        ("a big cookie", format!("Cookie: authgate={big}\r\n")),
        ("5,000 headers", many),
        (
            "a long request line",
            String::new(), // the target itself is long, below
        ),
    ] {
        let target = if what == "a long request line" {
            format!("/open/{big}")
        } else {
            "/open/x".into()
        };
        let mut s = TcpStream::connect(p.addr).await.expect("connect");
        // The server may answer and close before everything is written.
        let _ = s
            .write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n{head}\r\n").as_bytes())
            .await;
        let out = String::from_utf8_lossy(&read_until_closed(&mut s).await).into_owned();
        assert!(
            out.starts_with("HTTP/1.1 431")
                || (what == "a long request line" && out.starts_with("HTTP/1.1 414")),
            "{what}: {}",
            out.lines().next().unwrap_or("")
        );
    }
    assert_eq!(up.count(), 0);
    p.assert_alive();
    p.assert_peak_rss_bounded();
    p.assert_serves_neighbour().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_rapid_reset_is_bounded() {
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");
    let cpu0 = p.cpu_ticks();
    let mut resets = 0usize;
    let mut connections = 0usize;
    // Up to 10,000 HEADERS + RST_STREAM pairs, over as many connections as
    // the server allows (it may send GOAWAY and close).
    while resets < 10_000 && connections < 500 {
        connections += 1;
        let tcp = TcpStream::connect(p.addr).await.expect("connect");
        let Ok((mut client, conn)) = h2::client::handshake(tcp).await else {
            continue;
        };
        let driver = tokio::spawn(async move {
            let _ = conn.await;
        });
        loop {
            if resets >= 10_000 {
                break;
            }
            let Ok(ready) = tokio::time::timeout(EVENTUALLY, client.clone().ready()).await else {
                panic!("the h2 connection neither accepted a stream nor closed");
            };
            let Ok(mut c) = ready else { break };
            let req = Request::get(format!("http://{}/open/reset", p.addr))
                .body(())
                .expect("request");
            let Ok((_resp, mut stream)) = c.send_request(req, false) else {
                break;
            };
            stream.send_reset(h2::Reason::CANCEL);
            resets += 1;
            client = c;
        }
        drop(client);
        let _ = tokio::time::timeout(EVENTUALLY, driver).await;
    }
    assert_eq!(resets, 10_000, "{connections} connections");
    let cpu = p.cpu_ticks() - cpu0;
    // 10,000 resets; generous: 60 s of CPU at 100 ticks per second.
    assert!(cpu < 6000, "{cpu} ticks of CPU for 10,000 resets");
    p.assert_alive();
    p.assert_peak_rss_bounded();
    p.assert_serves_neighbour().await;
    eprintln!(
        "rapid reset: {resets} resets over {connections} connections, {cpu} CPU ticks, peak RSS {} KiB",
        p.status_kib("VmHWM")
    );
}

/// An HTTP/2 frame header: length, type, flags, stream id.
fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_continuation_flood_is_cut() {
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");
    // HPACK: literal header field without indexing, new name (RFC 7541
    // §6.2.2): 0x00, name length, name, value length, value.
    let mut entry = vec![0x00, 5];
    entry.extend_from_slice(b"x-pad");
    entry.push(100);
    entry.extend_from_slice(&[b'v'; 100]);
    let block: Vec<u8> = entry.iter().copied().cycle().take(512 * 1024).collect();
    // :method GET, :scheme http, :path /, from the static table.
    let first: Vec<u8> = vec![0x82, 0x86, 0x84];
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    out.extend(frame(0x1, 0x1, 1, &first)); // HEADERS, END_STREAM, no END_HEADERS
    s.write_all(&out).await.expect("preface");
    let mut written = 0usize;
    for chunk in block.chunks(16 * 1024) {
        // CONTINUATION without END_HEADERS, 512 KiB in all.
        if s.write_all(&frame(0x9, 0, 1, chunk)).await.is_err() {
            break;
        }
        written += chunk.len();
    }
    // The server ends the connection (GOAWAY then close, or a reset).
    let _ = read_until_closed(&mut s).await;
    assert!(written > 0);
    assert_eq!(
        up.count(),
        0,
        "a request from the flood reached the upstream"
    );
    p.assert_alive();
    p.assert_peak_rss_bounded();
    p.assert_serves_neighbour().await;
}

/// The protocol is told from the first bytes without consuming them; a
/// client that sends them one at a time — inside the HTTP/2 preface, where
/// one byte cannot tell — is still served, in either protocol.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_bytes_sent_one_at_a_time_are_served_in_either_protocol() {
    let up = Upstream::start().await;
    let mut p = Proc::start(&up.url(), "");

    // HTTP/1: "P" could begin the HTTP/2 preface, "PU" cannot.
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    for b in b"PU" {
        s.write_all(&[*b]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    s.write_all(b"T /open/trickled-h1 HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let out = String::from_utf8_lossy(&read_until_closed(&mut s).await).into_owned();
    assert!(out.starts_with("HTTP/1.1 200"), "HTTP/1: {out}");

    // HTTP/2 with prior knowledge, the preface a byte at a time.
    let mut s = TcpStream::connect(p.addr).await.expect("connect");
    for b in b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" {
        s.write_all(&[*b]).await.expect("write");
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // HPACK: :method GET, :scheme http (static table), :path and
    // :authority as literals with an indexed name (RFC 7541 §6.2.2).
    let mut block = vec![0x82, 0x86, 0x04, 17];
    block.extend_from_slice(b"/open/trickled-h2");
    block.extend_from_slice(&[0x01, 1, b'x']);
    let mut out = frame(0x4, 0, 0, &[]); // SETTINGS
    out.extend(frame(0x1, 0x5, 1, &block)); // HEADERS, END_STREAM | END_HEADERS
    s.write_all(&out).await.expect("frames");
    let answered = tokio::time::timeout(EVENTUALLY, async {
        let mut buf = vec![0u8; 65536];
        let mut got = Vec::new();
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
            // A HEADERS frame on stream 1 whose block starts with
            // ":status 200" (static index 8).
            let mut at = 0;
            while at + 9 <= got.len() {
                let len = (usize::from(got[at]) << 16)
                    | (usize::from(got[at + 1]) << 8)
                    | usize::from(got[at + 2]);
                if at + 9 + len > got.len() {
                    break;
                }
                if got[at + 3] == 0x1
                    && got[at + 5..at + 9] == [0, 0, 0, 1]
                    && got.get(at + 9) == Some(&0x88)
                {
                    return true;
                }
                at += 9 + len;
            }
        }
    })
    .await;
    assert_eq!(answered, Ok(true), "no HTTP/2 200 for the trickled preface");
    let targets: Vec<String> = up.requests().iter().map(|r| r.target.clone()).collect();
    assert!(
        targets.iter().any(|t| t == "/open/trickled-h1"),
        "{targets:?}"
    );
    assert!(
        targets.iter().any(|t| t == "/open/trickled-h2"),
        "{targets:?}"
    );
    p.assert_alive();
}
