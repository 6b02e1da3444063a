//! Logging: tracing-subscriber in pretty or JSON form, and request ids.
//!
//! Access lines go to target `authgate::access`, audit events to
//! `authgate::audit`. Neither ever carries a cookie, an Authorization value,
//! a password, a SAML message or a JWT: callers log only named fields.

pub mod access;
mod settings;

pub use settings::{LogFormat, Settings};

use std::io::IsTerminal;
use std::net::IpAddr;
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
/// refusal, a policy denial, a logout, a revoked session, saved settings),
/// written as one line to target `authgate::audit` (one JSON object with
/// `log.format = "json"`). Built with [`Audit::new`] and the setters below,
/// written with [`Audit::emit`]: the only way audit lines are made.
///
/// The common fields, so one query finds every event: `event`, `subject`
/// and `role` (left out when unknown), `method` and `path` (the normalized
/// path, never the query: an invite token lives there), `client`, `reason`,
/// and `request_id` when there is a request. Some events add their own
/// (`user`, `by`, `scope`, `sid`, `email`, `version`, `changed`); a field
/// never set is left out of the line. Never put a password, token, cookie
/// or assertion in any of them.
#[derive(Debug, Clone, Copy, Default)]
#[must_use = "an audit event is written only by emit()"]
pub struct Audit<'a> {
    event: &'static str,
    subject: Option<&'a str>,
    role: Option<&'a str>,
    method: Option<&'a str>,
    path: Option<&'a str>,
    client: Option<IpAddr>,
    reason: Option<&'a str>,
    request_id: Option<&'a str>,
    user: Option<&'a str>,
    by: Option<&'a str>,
    scope: Option<&'a str>,
    sid: Option<&'a str>,
    email: Option<&'a str>,
    version: Option<u64>,
    changed: Option<&'a str>,
}

impl<'a> Audit<'a> {
    /// `event`: `login_success`, `login_failure`, `login_refused`,
    /// `access_refused`, `policy_denied`, `role_denied`, `logout`,
    /// `session_revoked`, `sso_settings_saved`.
    pub fn new(event: &'static str) -> Self {
        Audit {
            event,
            ..Audit::default()
        }
    }

    /// Who the event is about: SAML NameID or LDAP DN.
    pub fn subject(mut self, subject: impl Into<Option<&'a str>>) -> Self {
        self.subject = subject.into();
        self
    }

    /// Their organization role, in the claim's spelling.
    pub fn role(mut self, role: impl Into<Option<&'a str>>) -> Self {
        self.role = role.into();
        self
    }

    /// The request: its method, normalized path and client address.
    pub fn request(self, method: &'a str, path: &'a str, client: IpAddr) -> Self {
        self.method(method).path(path).client(client)
    }

    /// The HTTP method (or, for directory events, `ldap`).
    pub fn method(mut self, method: &'a str) -> Self {
        self.method = Some(method);
        self
    }

    pub fn path(mut self, path: &'a str) -> Self {
        self.path = Some(path);
        self
    }

    pub fn client(mut self, client: IpAddr) -> Self {
        self.client = Some(client);
        self
    }

    /// A short machine-readable why: the armed switch, `deactivated`,
    /// `pending_activation`, `session_ended`...
    pub fn reason(mut self, reason: &'a str) -> Self {
        self.reason = Some(reason);
        self
    }

    pub fn request_id(mut self, id: impl Into<Option<&'a str>>) -> Self {
        self.request_id = id.into();
        self
    }

    /// The username typed into the login form (bounded by the caller).
    pub fn user(mut self, user: &'a str) -> Self {
        self.user = Some(user);
        self
    }

    /// Who acted (an administrator ending sessions).
    pub fn by(mut self, by: &'a str) -> Self {
        self.by = Some(by);
        self
    }

    /// What a revocation selected: `sid`, `user` or `all`.
    pub fn scope(mut self, scope: &'a str) -> Self {
        self.scope = Some(scope);
        self
    }

    /// A session id's short prefix (never the id).
    pub fn sid(mut self, sid: &'a str) -> Self {
        self.sid = Some(sid);
        self
    }

    pub fn email(mut self, email: impl Into<Option<&'a str>>) -> Self {
        self.email = email.into();
        self
    }

    /// The version of saved settings (a number in JSON).
    pub fn version(mut self, version: u64) -> Self {
        self.version = Some(version);
        self
    }

    /// What saved settings changed, human-readable.
    pub fn changed(mut self, changed: &'a str) -> Self {
        self.changed = Some(changed);
        self
    }

    pub fn emit(self) {
        tracing::info!(
            target: "authgate::audit",
            event = self.event,
            subject = self.subject,
            role = self.role,
            method = self.method,
            path = self.path,
            client = self.client.as_ref().map(tracing::field::display),
            reason = self.reason,
            request_id = self.request_id,
            user = self.user,
            by = self.by,
            scope = self.scope,
            sid = self.sid,
            email = self.email,
            version = self.version,
            changed = self.changed,
        );
    }
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

    /// The audit lines `f` writes, as JSON objects (`log.format = "json"`).
    fn audit_json(f: impl FnOnce()) -> Vec<serde_json::Value> {
        use std::sync::{Arc, Mutex};
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().expect("buffer").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(move || out.clone())
            .finish();
        tracing::subscriber::with_default(subscriber, f);
        let text = String::from_utf8(buf.0.lock().expect("buffer").clone()).expect("utf-8");
        text.lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect()
    }

    #[test]
    fn an_audit_line_has_the_fields_set_and_no_others() {
        let client: IpAddr = "192.0.2.7".parse().expect("ip");
        let lines = audit_json(|| {
            Audit::new("role_denied")
                .subject("uid=jane")
                .role(Some("annotator"))
                .request("DELETE", "/api/projects/3/", client)
                .reason("role_required:manager")
                .request_id("0123456789abcdef")
                .emit();
            Audit::new("login_failure")
                .user("jane")
                .client(client)
                .method("ldap")
                .reason("csrf")
                .emit();
            Audit::new("sso_settings_saved")
                .subject("s")
                .role(None)
                .request_id(None)
                .version(2)
                .changed("a | b")
                .emit();
        });
        assert_eq!(lines.len(), 3, "{lines:?}");
        let keys = |v: &serde_json::Value| {
            let mut k: Vec<String> = v
                .as_object()
                .expect("object")
                .keys()
                .filter(|k| !matches!(k.as_str(), "timestamp" | "level" | "target"))
                .cloned()
                .collect();
            k.sort();
            k
        };
        for v in &lines {
            assert_eq!(v["target"], "authgate::audit");
            assert_eq!(v["level"], "INFO");
        }
        let denied = &lines[0];
        assert_eq!(
            keys(denied),
            [
                "client",
                "event",
                "method",
                "path",
                "reason",
                "request_id",
                "role",
                "subject"
            ]
        );
        assert_eq!(denied["event"], "role_denied");
        assert_eq!(denied["client"], "192.0.2.7");
        assert_eq!(denied["path"], "/api/projects/3/");
        let failure = &lines[1];
        assert_eq!(
            keys(failure),
            ["client", "event", "method", "reason", "user"]
        );
        assert_eq!(failure["method"], "ldap");
        let saved = &lines[2];
        assert_eq!(keys(saved), ["changed", "event", "subject", "version"]);
        assert_eq!(saved["version"], 2, "a number, not a string");
    }
}
