//! The LDAP sign-in service shared by every request (`State::ldap`): the
//! [`Directory`], the failed-login throttles (per username and per client
//! address, each a sliding window: `ldap.max_failures`,
//! `ldap.max_failures_per_client`, `ldap.throttle_window`), the pre-login
//! CSRF cookie, the bookkeeping of background refreshes, and the messages
//! people see.
//!
//! - **CSRF**: the form carries a random token; the same token travels in a
//!   short-lived pre-login cookie sealed with the session keys as a
//!   [`LoginCsrf`] (its own purpose: it never opens as a session cookie or
//!   any other sealed value, nor they as it).
//! - **One message** for unknown user, wrong password and empty password:
//!   [`INVALID`].
//!
//! The HTTP side (form, POST, status codes) is `endpoints::ldap_login`.
//! Must not: log passwords or tokens.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::HeaderValue;
use http::HeaderMap;

use super::throttle::{Limiter, RedisLimiter, Throttle};
use super::{Directory, Error, Settings};
use crate::clock::now_unix;
use crate::identity::random_bytes;
use crate::session::sealed::{ad, text_payload};
use crate::session::{CookieConfig, Expiring, Keys, Redis, Sealable, Sealed};

/// What the pre-login CSRF cookie seals: the token the form also carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCsrf {
    pub token: String,
}

impl Sealable for LoginCsrf {
    const AD: &'static [u8] = ad::LOGIN_CSRF;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.token.as_bytes());
    }
    fn decode(payload: &[u8]) -> Option<Self> {
        text_payload(payload).map(|token| LoginCsrf { token })
    }
}

impl Expiring for LoginCsrf {
    /// Lifetime of the pre-login CSRF cookie.
    const TTL: Duration = Duration::from_secs(3600);
}
/// Keys each throttle tracks at most.
const THROTTLE_CAPACITY: usize = 100_000;

pub const INVALID: &str = "Invalid username or password.";
pub const UNAVAILABLE: &str =
    "The directory is unavailable right now, so sign-in cannot be checked. Try again in a moment.";
pub const EXPIRED: &str = "Your sign-in form expired. Please sign in again.";
pub const THROTTLED: &str = "Too many failed sign-in attempts. Wait a few minutes and try again.";

/// LDAP sign-in state shared by all requests (in `State::ldap`).
pub struct LdapLogin {
    pub directory: Arc<Directory>,
    pub per_user: Box<dyn Limiter>,
    pub per_client: Box<dyn Limiter>,
    pub csrf_cookie: CookieConfig,
    /// Sessions whose refresh is in flight (one at a time per session).
    refreshing: Mutex<HashSet<String>>,
}

impl LdapLogin {
    /// `None` when LDAP is off. Fails on unreadable TLS trust material.
    /// With `redis`, the throttle counts are shared by every replica.
    /// `session_cookie` and `https`: the session cookie's name and whether
    /// cookies are `Secure` (the CSRF cookie is named after the session's).
    pub fn new(
        l: &Settings,
        session_cookie: &str,
        https: bool,
        redis: Option<&Arc<Redis>>,
    ) -> Result<Option<LdapLogin>, Error> {
        if !l.enabled {
            return Ok(None);
        }
        let directory = Arc::new(Directory::new(l)?);
        let base = CookieConfig::new(session_cookie, https);
        let base = base.name.trim_start_matches("__Host-");
        Ok(Some(LdapLogin {
            directory,
            per_user: limiter(redis, l.max_failures, l.throttle_window),
            per_client: limiter(redis, l.max_failures_per_client, l.throttle_window),
            csrf_cookie: CookieConfig::new(&format!("{base}_login"), https),
            refreshing: Mutex::new(HashSet::new()),
        }))
    }

    /// The CSRF token bound to the request's pre-login cookie, if valid.
    pub fn csrf_from(&self, keys: &Keys, headers: &HeaderMap) -> Option<String> {
        let now = now_unix();
        self.csrf_cookie
            .find_all(headers)
            .find_map(|v| Sealed::<LoginCsrf>::open(keys, v, now))
            .map(|c| c.token)
    }

    /// A new token and the Set-Cookie that binds it to this browser.
    pub fn new_csrf(&self, keys: &Keys) -> (String, HeaderValue) {
        let csrf = LoginCsrf {
            token: URL_SAFE_NO_PAD.encode(random_bytes::<32>()),
        };
        let sealed = Sealed::seal(keys, &csrf, now_unix());
        let set_cookie = self.csrf_cookie.set_header(sealed.as_str(), LoginCsrf::TTL);
        (csrf.token, set_cookie)
    }

    /// Whether session `sid`, whose identity was read at `identity_at`, is
    /// due a re-read (`refresh_interval` later) and none is in flight for
    /// it; when so, marks it in flight until [`LdapLogin::refreshed`].
    pub fn begin_refresh(&self, sid: &str, identity_at: u64, interval: Duration, now: u64) -> bool {
        if now < identity_at.saturating_add(interval.as_secs()) {
            return false;
        }
        self.refreshing
            .lock()
            .map(|mut r| r.insert(sid.to_string()))
            .unwrap_or(false)
    }

    /// The re-read of `sid` has ended (whatever its outcome).
    pub fn refreshed(&self, sid: &str) {
        if let Ok(mut r) = self.refreshing.lock() {
            r.remove(sid);
        }
    }
}

fn limiter(redis: Option<&Arc<Redis>>, max: u32, window: Duration) -> Box<dyn Limiter> {
    match redis {
        Some(r) => Box::new(RedisLimiter::new(Arc::clone(r), max, window)),
        None => Box::new(Throttle::new(max, window, THROTTLE_CAPACITY)),
    }
}
