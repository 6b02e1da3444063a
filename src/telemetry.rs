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

/// One structured audit event (login success/failure, refusal, policy
/// denial, logout). Fields are plain values chosen by the caller.
#[macro_export]
macro_rules! audit {
    ($event:expr, $($field:tt)*) => {
        tracing::info!(target: "authgate::audit", event = $event, $($field)*)
    };
}
