//! Logging: tracing-subscriber in pretty or JSON form, and request ids.
//!
//! Access lines go to target `authgate::access`, audit events to
//! `authgate::audit`. Neither ever carries a cookie, an Authorization value,
//! a password, a SAML message or a JWT: callers log only named fields.

pub mod access;
mod settings;

pub use settings::{LogFormat, Settings};

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

use settings::Settings as Log;

/// Installs the global subscriber and, when `log.level` lets access lines
/// through, the access log's writer thread ([`access`]); a second call is a
/// no-op. Colours only when stderr is a terminal.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::stderr().is_terminal();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr);
    let installed = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
    if installed.is_ok()
        && log.access_log
        && tracing::enabled!(target: "authgate::access", tracing::Level::INFO)
    {
        access::init(log.format, ansi, Box::new(std::io::stderr()));
    }
}

/// Request ids: a per-process random prefix and a counter, 16 hex digits.
pub struct RequestIds {
    prefix: u64,
    next: AtomicU64,
}

impl Default for RequestIds {
    fn default() -> Self {
        let mut b = [0u8; 8];
        let _ = aws_lc_rs::rand::fill(&mut b);
        RequestIds {
            prefix: u64::from_le_bytes(b) & 0xffff_ffff_0000_0000,
            next: AtomicU64::new(1),
        }
    }
}

impl RequestIds {
    pub fn next(&self) -> RequestId {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        RequestId::hex(self.prefix ^ n)
    }
}

/// A request id, kept inline (no allocation per request).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct RequestId {
    len: u8,
    buf: [u8; RequestId::MAX],
}

impl RequestId {
    /// Longer ids given to [`From<&str>`] are cut (at a character boundary).
    pub const MAX: usize = 32;

    fn hex(v: u64) -> RequestId {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut buf = [0u8; RequestId::MAX];
        for (i, b) in buf[..16].iter_mut().enumerate() {
            *b = DIGITS[((v >> (60 - 4 * i)) & 0xf) as usize];
        }
        RequestId { len: 16, buf }
    }

    pub fn as_str(&self) -> &str {
        // Built only from whole UTF-8 characters (see `hex` and `From`).
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl From<&str> for RequestId {
    fn from(s: &str) -> RequestId {
        let mut end = s.len().min(RequestId::MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut buf = [0u8; RequestId::MAX];
        buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        RequestId {
            len: end as u8,
            buf,
        }
    }
}

impl std::ops::Deref for RequestId {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for RequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

/// One audit event: a decision that matters (login success or failure, a
/// refusal, a policy denial, a logout), written as one line to target
/// `authgate::audit` (one JSON object with `log.format = "json"`).
///
/// Every event carries the same fields, so one query finds them all:
/// `event`, `subject` and `role` (left out when unknown), `method` and
/// `path` (the normalized path, never the query: an invite token lives
/// there), `client`, `reason`, and `request_id` when there is a request.
/// Never put a password, token, cookie or assertion in any of them.
#[derive(Debug, Clone, Copy)]
pub struct Audit<'a> {
    /// `login_success`, `login_failure`, `login_refused`, `access_refused`,
    /// `policy_denied`, `role_denied`, `logout`.
    pub event: &'static str,
    pub subject: Option<&'a str>,
    pub role: Option<&'a str>,
    pub method: &'a str,
    pub path: &'a str,
    pub client: std::net::IpAddr,
    /// A short machine-readable why: the armed switch, `deactivated`,
    /// `pending_activation`, `session_ended`...
    pub reason: &'a str,
    pub request_id: Option<&'a str>,
}

impl Audit<'_> {
    pub fn emit(&self) {
        tracing::info!(
            target: "authgate::audit",
            event = self.event,
            subject = self.subject,
            role = self.role,
            method = self.method,
            path = self.path,
            client = %self.client,
            reason = self.reason,
            request_id = self.request_id,
        );
    }
}

/// One structured audit event with free-form fields. Prefer [`Audit`],
/// which carries the fields every audit line must have.
#[macro_export]
macro_rules! audit {
    ($event:expr, $($field:tt)*) => {
        tracing::info!(target: "authgate::audit", event = $event, $($field)*)
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_16_hex_digits_and_distinct() {
        let ids = RequestIds::default();
        let (a, b) = (ids.next(), ids.next());
        assert_ne!(a, b);
        for id in [a, b] {
            assert_eq!(id.len(), 16, "{id}");
            assert!(id
                .bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
            assert_eq!(format!("{id}"), id.as_str());
        }
        assert_eq!(
            RequestId::hex(0x0123_4567_89ab_cdef).as_str(),
            "0123456789abcdef"
        );
    }

    #[test]
    fn given_ids_are_kept_or_cut_at_a_character_boundary() {
        assert_eq!(RequestId::from("req-1").as_str(), "req-1");
        let long = "é".repeat(20); // 40 bytes
        let cut = RequestId::from(long.as_str());
        assert_eq!(cut.as_str(), "é".repeat(16));
        assert_eq!(RequestId::from("").as_str(), "");
    }
}
