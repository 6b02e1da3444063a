//! ACS verifications per second, one thread, on responses pre-signed by
//! the independent test IdP (`tests/idp/idp.py`: pysaml2 + xmlsec1).
//!
//! Measures `saml::response::verify`: base64, the DOCTYPE/structure
//! pre-checks, samael's signature verification and reduction, and the
//! post-checks (everything the ACS does except the replay-cache insert,
//! the cookie and HTTP). Responses are IdP-initiated so one response can be
//! verified repeatedly.
//!
//! ```sh
//! cargo run --release --example saml_acs            # needs .venv (scripts/test)
//! SECONDS_PER_MODE=5 cargo run --release --example saml_acs
//! ```

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

fn http(port: u16, method: &str, path: &str, body: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the IdP");
    let head = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body).expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out.split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default()
}

/// This thread's CPU time so far, in ns (`/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The allocator `authgate serve` uses (src/main.rs).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = std::env::var("AUTHGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join(".venv/bin/python"));
    let secs: u64 = std::env::var("SECONDS_PER_MODE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(3)
        .clamp(1, 60);
    let dir = tempfile::tempdir().expect("tempdir");
    let mut idp = Command::new(&python)
        .arg(root.join("tests/idp/idp.py"))
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the test IdP (run scripts/test once for .venv)");
    let mut line = String::new();
    BufReader::new(idp.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("IdP port");
    let port: u16 = line
        .trim()
        .trim_start_matches("PORT ")
        .parse()
        .expect("port");

    let identity = dir.path().join("identity.pem");
    let session = dir.path().join("session.key");
    authgate::keygen(&identity, "ES256", Some(&session), false).expect("keygen");
    let text = format!(
        "[server]\npublic_url = \"http://gate.test\"\n[session]\nsecret_file = \"{}\"\n[identity]\nsigning_key = \"{}\"\n[saml]\nenabled = true\nallow_idp_initiated = true\nidp_metadata_url = \"http://127.0.0.1:{port}/metadata\"\n",
        session.display(),
        identity.display()
    );
    let cfg = authgate::config::load(&authgate::config::Sources {
        config_file: None,
        config_text: Some(("bench.toml".into(), text)),
        env: vec![],
        env_file: None,
    })
    .expect("config");
    let sso = authgate::saml::Sso::new(cfg.saml.expect("saml on")).expect("sso");
    http(port, "POST", "/sp-metadata", sso.sp_metadata().as_bytes());
    let sp = "http%3A%2F%2Fgate.test%2F_auth%2Fsaml%2Fmetadata";

    println!("ACS verifications per second (one thread, {secs} s per mode; wall clock and per CPU-second):");
    for mode in ["assertion", "response", "both"] {
        let page = http(
            port,
            "GET",
            &format!("/idp-initiated?sp={sp}&user=alice&sign={mode}"),
            b"",
        );
        let i = page.find("name=\"SAMLResponse\" value=\"").expect("form") + 27;
        let b64 = page[i..i + page[i..].find('"').expect("end")].to_string();
        let loaded = sso.loaded();
        // Warm-up, and proof the response verifies.
        authgate::saml::response::verify(&loaded, &sso.settings, &b64, &[], SystemTime::now())
            .expect("the pre-signed response verifies");
        let start = Instant::now();
        let cpu_start = thread_cpu_ns();
        let mut n = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            for _ in 0..50 {
                let v = authgate::saml::response::verify(
                    &loaded,
                    &sso.settings,
                    &b64,
                    &[],
                    SystemTime::now(),
                );
                assert!(v.is_ok());
            }
            n += 50;
        }
        let rate = n as f64 / start.elapsed().as_secs_f64();
        // Per second of this thread's own CPU time: what one core does when
        // nothing else wants it, steady even on a shared machine.
        let per_cpu_s = match (cpu_start, thread_cpu_ns()) {
            (Some(a), Some(b)) if b > a => format!("{:>8.0}", n as f64 * 1e9 / (b - a) as f64),
            _ => "       ?".into(),
        };
        println!(
            "  signed {mode:<9} {rate:>8.0} /s wall, {per_cpu_s} /s of CPU  ({} bytes of XML)",
            b64.len() * 3 / 4
        );
    }
    let _ = idp.kill();
    let _ = idp.wait();
}
