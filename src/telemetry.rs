//! Logging: tracing-subscriber in pretty or JSON form, and request ids.
//!
//! Access lines go to target `authgate::access`, audit events to
//! `authgate::audit`. Neither ever carries a cookie, an Authorization value,
//! a password, a SAML message or a JWT: callers log only named fields.

use std::sync::atomic::{AtomicU64, Ordering};

use tracing_subscriber::EnvFilter;

use crate::config::validate::{Log, LogFormat};

/// Installs the global subscriber; a second call (tests) is a no-op.
pub fn init(log: &Log) {
    let filter = EnvFilter::try_new(&log.level).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match log.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
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
    pub fn next(&self) -> String {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        format!("{:016x}", self.prefix ^ n)
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
    /// `policy_denied`, `logout`.
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
