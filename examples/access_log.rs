//! CPU per access line, all threads counted: authgate's access log
//! (`telemetry::access`: formatted into a shared buffer, written by a
//! writer thread in batches) against the same line through `tracing`'s fmt
//! layer writing each line to its sink (how the access log was written
//! before). Both write to /dev/null, in JSON and in the compact format.
//!
//! `cargo run --release --example access_log [LINES]` (default 1,000,000).
//! CPU time is the process's (`/proc/self/stat` utime + stime, every
//! thread), so the writer thread's share is in the figure.

use std::io::Write;
use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use authgate::telemetry::access::{self, Line};
use authgate::telemetry::LogFormat;

/// Process CPU time so far (user + system, all threads), in µs.
fn process_cpu_us() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime is field 14, stime 15 (1-based over the whole line); here the
    // list starts at field 3 (state).
    let hz = 100.0;
    (ticks(11) + ticks(12)) / hz * 1e6
}

fn line(i: u64) -> (String, String) {
    (
        format!("/api/projects/{}/tasks/", i % 1000),
        "uid=alice,ou=people,dc=example,dc=com".to_string(),
    )
}

fn main() {
    let n: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let format = match std::env::var("FORMAT").as_deref() {
        Ok("pretty") => LogFormat::Pretty,
        _ => LogFormat::Json,
    };
    let paths: Vec<(String, String)> = (0..1000).map(line).collect();
    let client = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));
    let devnull = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/null")
            .expect("/dev/null")
    };

    // tracing's fmt layer, one write per line, as the access log was.
    let sink = devnull();
    let builder = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(sink));
    let run_tracing = || {
        let (cpu0, t0) = (process_cpu_us(), Instant::now());
        for i in 0..n {
            let (path, user) = &paths[(i % 1000) as usize];
            tracing::info!(
                target: "authgate::access",
                request_id = %"31368c8600000001",
                method = %"GET",
                path = %path,
                status = 200u16,
                latency_us = 123u64,
                user = user.as_str(),
                client = %client,
            );
        }
        (process_cpu_us() - cpu0, t0.elapsed())
    };
    let (tracing_cpu, tracing_wall) = match format {
        LogFormat::Json => tracing::subscriber::with_default(
            builder
                .json()
                .flatten_event(true)
                .with_current_span(false)
                .finish(),
            run_tracing,
        ),
        LogFormat::Pretty => {
            tracing::subscriber::with_default(builder.compact().finish(), run_tracing)
        }
    };

    // authgate's access log: caller formats into the buffer, the writer
    // thread writes batches.
    access::init(format, false, Box::new(devnull()));
    let (cpu0, t0) = (process_cpu_us(), Instant::now());
    let mut caller_ns: u64 = 0;
    for i in 0..n {
        let (path, user) = &paths[(i % 1000) as usize];
        let s = Instant::now();
        access::log(&Line {
            request_id: "31368c8600000001",
            method: "GET",
            path,
            status: 200,
            latency_us: 123,
            user,
            client,
        });
        caller_ns += s.elapsed().as_nanos() as u64;
    }
    access::flush();
    let (ours_cpu, ours_wall) = (process_cpu_us() - cpu0, t0.elapsed());
    let mut out = std::io::stdout().lock();
    let _ = writeln!(
        out,
        "access lines: {n} ({format:?}); CPU µs per line, all threads (process utime+stime)"
    );
    let _ = writeln!(
        out,
        "tracing fmt layer (before): {:.3} µs/line CPU, {:.3} µs/line wall",
        tracing_cpu / n as f64,
        tracing_wall.as_secs_f64() * 1e6 / n as f64
    );
    let _ = writeln!(
        out,
        "telemetry::access (now):    {:.3} µs/line CPU, {:.3} µs/line wall, {:.3} µs/line on the caller's thread; dropped {}",
        ours_cpu / n as f64,
        ours_wall.as_secs_f64() * 1e6 / n as f64,
        caller_ns as f64 / 1e3 / n as f64,
        access::dropped()
    );
}
