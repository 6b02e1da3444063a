//! The access log, off the request's path.
//!
//! One line per request with the same fields and in the same two formats
//! the `tracing` subscriber writes (`log.format = "json"`: one object with
//! `target: "authgate::access"`; `"pretty"`: tracing-subscriber's compact
//! line) — a unit test formats the same event both ways and compares. The
//! difference is where the cost goes: `tracing`'s fmt layer formats each
//! field through `dyn` visitors into a fresh `String` and writes it to
//! stderr under a lock, one `write(2)` per line, on the request's thread.
//! Here a line is formatted straight into a shared buffer (no allocation,
//! the lock held for the formatting only), and a writer thread takes the
//! whole buffer every [`FLUSH_EVERY`] (or as soon as it holds
//! [`FLUSH_AT`] bytes) and writes it with one `write(2)`.
//!
//! Bounded: while the buffer holds [`MAX_BUFFERED`] bytes (the writer is
//! stuck: a full pipe, a stopped terminal) new lines are dropped and
//! counted (`authgate_access_log_dropped_total`), never waited for.
//! [`flush`] writes what is buffered now; `serve` calls it at shutdown and
//! on SIGHUP.
//!
//! Without [`init`] (tests that run the app in-process, `check-config`)
//! lines go through `tracing` as before.

use std::io::Write;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::telemetry::LogFormat;

/// The writer thread wakes at least this often.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A buffer this full wakes the writer at once.
pub const FLUSH_AT: usize = 32 * 1024;
/// Past this, lines are dropped (and counted) until the writer catches up.
pub const MAX_BUFFERED: usize = 4 * 1024 * 1024;

/// The fields of one access line.
pub struct Line<'a> {
    pub request_id: &'a str,
    pub method: &'a str,
    pub path: &'a str,
    pub status: u16,
    pub latency_us: u64,
    pub user: &'a str,
    pub client: IpAddr,
}

struct Shared {
    buf: Mutex<Vec<u8>>,
    wake: Condvar,
    dropped: AtomicU64,
    /// Serializes writes to the sink (the writer thread and [`flush`]).
    sink: Mutex<Box<dyn Write + Send>>,
}

struct AccessLog {
    format: LogFormat,
    ansi: bool,
    shared: Arc<Shared>,
}

static LOG: OnceLock<AccessLog> = OnceLock::new();

/// Starts the writer thread on `sink`; later calls do nothing.
pub fn init(format: LogFormat, ansi: bool, sink: Box<dyn Write + Send>) {
    LOG.get_or_init(|| {
        let shared = Arc::new(Shared {
            buf: Mutex::new(Vec::with_capacity(FLUSH_AT * 2)),
            wake: Condvar::new(),
            dropped: AtomicU64::new(0),
            sink: Mutex::new(sink),
        });
        let writer = Arc::clone(&shared);
        let spawned = std::thread::Builder::new()
            .name("access-log".into())
            .spawn(move || run_writer(&writer));
        if let Err(e) = spawned {
            // No thread: lines are still written, by `flush` at exit. Say so.
            tracing::error!(error = %e, "access log writer thread not started");
        }
        AccessLog {
            format,
            ansi,
            shared,
        }
    });
}

fn run_writer(shared: &Shared) {
    let mut spare: Vec<u8> = Vec::with_capacity(FLUSH_AT * 2);
    loop {
        {
            let guard = lock(&shared.buf);
            let (mut guard, _) = shared
                .wake
                .wait_timeout_while(guard, FLUSH_EVERY, |b| b.len() < FLUSH_AT)
                .unwrap_or_else(|p| p.into_inner());
            if guard.is_empty() {
                continue;
            }
            std::mem::swap(&mut *guard, &mut spare);
        }
        write_out(shared, &spare);
        spare.clear();
        if spare.capacity() > MAX_BUFFERED {
            spare.shrink_to(FLUSH_AT * 2);
        }
    }
}

fn write_out(shared: &Shared, bytes: &[u8]) {
    let mut sink = lock(&shared.sink);
    // A log that cannot be written has nowhere to report it; the lines are lost.
    let _ = sink.write_all(bytes);
    let _ = sink.flush();
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// True when [`init`] ran: lines go to the writer thread.
pub fn active() -> bool {
    LOG.get().is_some()
}

/// Queues one line; false when the access log is not initialised (the
/// caller logs through `tracing` instead).
pub fn log(line: &Line<'_>) -> bool {
    let Some(log) = LOG.get() else {
        return false;
    };
    let now = SystemTime::now();
    let mut buf = lock(&log.shared.buf);
    let start = buf.len();
    if start >= MAX_BUFFERED {
        drop(buf);
        log.shared.dropped.fetch_add(1, Ordering::Relaxed);
        return true;
    }
    match log.format {
        LogFormat::Json => json(&mut buf, now, line),
        LogFormat::Pretty => pretty(&mut buf, now, line, log.ansi),
    }
    if buf.len() >= FLUSH_AT && start < FLUSH_AT {
        log.shared.wake.notify_one();
    }
    true
}

/// Writes what is buffered now (shutdown, SIGHUP).
pub fn flush() {
    if let Some(log) = LOG.get() {
        let pending = std::mem::take(&mut *lock(&log.shared.buf));
        if !pending.is_empty() {
            write_out(&log.shared, &pending);
        }
    }
}

/// Lines dropped because the writer fell [`MAX_BUFFERED`] bytes behind.
pub fn dropped() -> u64 {
    LOG.get()
        .map_or(0, |l| l.shared.dropped.load(Ordering::Relaxed))
}

/// tracing-subscriber's JSON line with `flatten_event(true)`, fields in
/// the order they are recorded, `target` last.
fn json(buf: &mut Vec<u8>, now: SystemTime, l: &Line<'_>) {
    buf.extend_from_slice(b"{\"timestamp\":\"");
    timestamp(buf, now);
    buf.extend_from_slice(b"\",\"level\":\"INFO\",\"request_id\":\"");
    json_str(buf, l.request_id);
    buf.extend_from_slice(b"\",\"method\":\"");
    json_str(buf, l.method);
    buf.extend_from_slice(b"\",\"path\":\"");
    json_str(buf, l.path);
    let _ = write!(
        buf,
        "\",\"status\":{},\"latency_us\":{},\"user\":\"",
        l.status, l.latency_us
    );
    json_str(buf, l.user);
    let _ = writeln!(
        buf,
        "\",\"client\":\"{}\",\"target\":\"authgate::access\"}}",
        l.client
    );
}

/// tracing-subscriber's compact line: Display fields bare, `user` (a
/// `&str` value) in Debug quotes; with `ansi`, its dim/italic/green codes.
fn pretty(buf: &mut Vec<u8>, now: SystemTime, l: &Line<'_>, ansi: bool) {
    const DIM: &str = "\x1b[2m";
    const RESET: &str = "\x1b[0m";
    const ITALIC: &str = "\x1b[3m";
    const GREEN: &str = "\x1b[32m";
    if ansi {
        buf.extend_from_slice(DIM.as_bytes());
        timestamp(buf, now);
        let _ = write!(
            buf,
            "{RESET} {GREEN} INFO{RESET} {DIM}authgate::access{RESET}{DIM}:{RESET} "
        );
    } else {
        timestamp(buf, now);
        buf.extend_from_slice(b"  INFO authgate::access: ");
    }
    let (k, eq) = if ansi {
        ((ITALIC, RESET), (DIM, RESET))
    } else {
        (("", ""), ("", ""))
    };
    let field = |buf: &mut Vec<u8>, name: &str| {
        let _ = write!(buf, "{}{name}{}{}={}", k.0, k.1, eq.0, eq.1);
    };
    field(buf, "request_id");
    buf.extend_from_slice(l.request_id.as_bytes());
    buf.push(b' ');
    field(buf, "method");
    buf.extend_from_slice(l.method.as_bytes());
    buf.push(b' ');
    field(buf, "path");
    buf.extend_from_slice(l.path.as_bytes());
    buf.push(b' ');
    field(buf, "status");
    let _ = write!(buf, "{} ", l.status);
    field(buf, "latency_us");
    let _ = write!(buf, "{} ", l.latency_us);
    field(buf, "user");
    let _ = write!(buf, "{:?} ", l.user);
    field(buf, "client");
    let _ = writeln!(buf, "{}", l.client);
}

/// JSON string contents (RFC 8259 §7), as serde_json escapes them.
fn json_str(buf: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0..=0x1f => {
                buf.extend_from_slice(&bytes[from..i]);
                let _ = write!(buf, "\\u{:04x}", b);
                from = i + 1;
                continue;
            }
            _ => continue,
        };
        buf.extend_from_slice(&bytes[from..i]);
        buf.extend_from_slice(esc);
        from = i + 1;
    }
    buf.extend_from_slice(&bytes[from..]);
}

/// RFC 3339 UTC with microseconds, as tracing-subscriber's default timer
/// prints it: `2026-12-07T15:14:27.189841Z`.
fn timestamp(buf: &mut Vec<u8>, now: SystemTime) {
    let d = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, day) = civil_from_days(days as i64);
    let _ = write!(
        buf,
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:06}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_micros()
    );
}

/// Days since 1970-01-01 → (year, month, day) in the proleptic Gregorian
/// calendar (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::sync::Mutex as StdMutex;

    fn line<'a>(path: &'a str, user: &'a str) -> Line<'a> {
        Line {
            request_id: "31368c8600000001",
            method: "GET",
            path,
            status: 502,
            latency_us: 504,
            user,
            client: IpAddr::V4(Ipv4Addr::LOCALHOST),
        }
    }

    /// What tracing-subscriber writes for the same event (the format the
    /// access log had before), timestamp cut off.
    fn by_tracing(format: LogFormat, ansi: bool, l: &Line<'_>) -> String {
        #[derive(Clone, Default)]
        struct Sink(Arc<StdMutex<Vec<u8>>>);
        impl Write for Sink {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("sink").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let sink = Sink::default();
        let out = sink.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || sink.clone())
            .with_ansi(ansi);
        let emit = || {
            tracing::info!(
                target: "authgate::access",
                request_id = %l.request_id,
                method = %l.method,
                path = %l.path,
                status = l.status,
                latency_us = l.latency_us,
                user = l.user,
                client = %l.client,
            )
        };
        match format {
            LogFormat::Json => tracing::subscriber::with_default(
                builder
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .finish(),
                emit,
            ),
            LogFormat::Pretty => {
                tracing::subscriber::with_default(builder.compact().finish(), emit)
            }
        }
        let text = String::from_utf8(out.0.lock().expect("out").clone()).expect("utf8");
        strip_timestamp(&text)
    }

    fn ours(format: LogFormat, ansi: bool, l: &Line<'_>) -> String {
        let mut buf = Vec::new();
        match format {
            LogFormat::Json => json(&mut buf, SystemTime::now(), l),
            LogFormat::Pretty => pretty(&mut buf, SystemTime::now(), l, ansi),
        }
        strip_timestamp(&String::from_utf8(buf).expect("utf8"))
    }

    /// Replaces the 27-character RFC 3339 timestamp by `TS`.
    fn strip_timestamp(s: &str) -> String {
        let i = s.find("20").expect("a timestamp");
        format!("{}TS{}", &s[..i], &s[i + 27..])
    }

    #[test]
    fn lines_are_byte_for_byte_what_tracing_writes() {
        let cases = [
            ("/pub/x%22y", "-"),
            ("/api/projects/", "uid=alice,ou=people,dc=example,dc=com"),
            ("/a\"b\\c", "quote\" back\\slash\ttab\u{1}ctl é"),
        ];
        for (path, user) in cases {
            let l = line(path, user);
            for format in [LogFormat::Json, LogFormat::Pretty] {
                for ansi in [false, true] {
                    if format == LogFormat::Json && ansi {
                        continue;
                    }
                    assert_eq!(
                        ours(format, ansi, &l),
                        by_tracing(format, ansi, &l),
                        "{format:?} ansi={ansi} path={path:?} user={user:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn timestamps_match_the_calendar() {
        let cases = [
            (0, "1970-01-01T00:00:00.000000Z"),
            (951_782_400, "2000-02-29T00:00:00.000000Z"),
            (1_796_657_667, "2026-12-07T15:34:27.000000Z"),
            (4_107_542_399, "2100-02-28T23:59:59.000000Z"),
        ];
        for (secs, want) in cases {
            let mut buf = Vec::new();
            timestamp(&mut buf, UNIX_EPOCH + Duration::from_secs(secs));
            assert_eq!(String::from_utf8(buf).expect("utf8"), want);
        }
        let mut buf = Vec::new();
        timestamp(
            &mut buf,
            UNIX_EPOCH + Duration::from_micros(1_500_000_000_123_456),
        );
        assert_eq!(
            String::from_utf8(buf).expect("utf8"),
            "2017-07-14T02:40:00.123456Z"
        );
    }
}
