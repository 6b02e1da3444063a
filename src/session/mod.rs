//! Sessions: what a signed-in browser holds (an encrypted cookie with only
//! the session id) and what the server keeps (a [`Session`] in a [`Store`]),
//! so logout and revocation are real.
//!
//! Login code calls [`start`] with an [`Identity`]; the proxy calls
//! [`load`] on each request and finds in the session the identity, the
//! cached identity JWT ([`Session::tokens`], [`Session::assertion`]) and the
//! precomputed plain identity headers ([`Session::plain`]). Logout revokes
//! in the store and sends [`CookieConfig::clear_header`].
//!
//! Timestamps are Unix seconds passed in by the caller (`now`), so expiry
//! is testable without sleeping.
//!
//! Must not: touch requests or responses beyond `http` header types, read
//! configuration types, log cookie values or session ids, or put the
//! identity in the cookie.

pub mod control;
pub mod cookie;
pub mod memory;
pub mod redis;
pub mod sealed;
pub mod settings;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::{HeaderName, HeaderValue};
use http::HeaderMap;
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use crate::identity::jwt::{Signer, TokenCache};
use crate::identity::{self, random_bytes, Identity};

pub use control::Summary;
pub use cookie::{CookieConfig, SessionCookie};
pub use memory::MemoryStore;
pub use redis::{Redis, RedisStore};
pub use sealed::{Expiring, Keys, Sealable, Sealed};
pub use settings::{RedisSettings, Settings, StoreKind};

/// Errors of session handling. Messages never contain cookie values,
/// session ids or secrets.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no session secret is configured (set session.secret or session.secret_file)")]
    NoKeys,
    #[error(
        "session secret #{} is shorter than 32 bytes; use at least 32 random bytes (e.g. `openssl rand -base64 48`)",
        .index + 1
    )]
    KeyTooShort { index: usize },
    #[error("invalid session cookie name {0:?}: use an HTTP token (letters, digits, `-`, `_`, `.`), without a __Host- or __Secure- prefix (added automatically for https)")]
    InvalidCookieName(String),
    #[error("deriving the session cookie keys failed")]
    Crypto,
}

/// Failures of a session store backend (the in-memory store never fails;
/// Redis can).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The session was revoked; re-inserting it (an identity refresh racing
    /// a logout) must not bring it back.
    #[error("the session was revoked")]
    Revoked,
    #[error("session store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// A boxed `Send` future: what `#[async_trait]` expands to, written out so
/// that `Store` is usable as `Arc<dyn Store>` without another dependency.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Server-side session registry. Implementations: [`MemoryStore`] (the
/// default) and [`RedisStore`] (shared by replicas). An implementation writes
/// `fn get<'a>(&'a self, id: &'a str, now: u64) -> BoxFuture<'a, ...> {
/// Box::pin(async move { ... }) }`.
pub trait Store: Send + Sync + 'static {
    /// Adds `s`, or replaces the session with the same id (identity
    /// refresh). Replacing a revoked session fails with
    /// [`StoreError::Revoked`].
    fn insert(&self, s: Arc<Session>) -> BoxFuture<'_, Result<(), StoreError>>;
    /// The live session, and records `now` as its last use. `None` when
    /// absent, revoked, at or past its absolute expiry, or idle too long.
    fn get<'a>(
        &'a self,
        id: &'a str,
        now: u64,
    ) -> BoxFuture<'a, Result<Option<Arc<Session>>, StoreError>>;
    /// Ends one session; `true` if it was live.
    fn revoke<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<bool, StoreError>>;
    /// Ends every session an IdP's LogoutRequest names (see
    /// [`LogoutTarget::matches`]); returns how many.
    fn revoke_subject<'a>(
        &'a self,
        target: LogoutTarget<'a>,
    ) -> BoxFuture<'a, Result<usize, StoreError>>;
    /// The live sessions, each with its last use, for the administrator's
    /// list and revocation ([`control`]); with `user`, only that user's
    /// ([`control::is_user`]: the email case-insensitively, or the subject).
    /// Unordered.
    fn list<'a>(
        &'a self,
        user: Option<&'a str>,
        now: u64,
    ) -> BoxFuture<'a, Result<Vec<Summary>, StoreError>>;
    /// Number of stored sessions, for metrics (may include expired ones not
    /// yet purged).
    fn len(&self) -> BoxFuture<'_, usize>;
    /// Drops expired sessions; the app calls this from a periodic task.
    /// Returns how many entries went. Stores that expire entries themselves
    /// (Redis TTLs) keep this default no-op.
    fn purge(&self, now: u64) -> BoxFuture<'_, usize> {
        let _ = now;
        Box::pin(std::future::ready(0))
    }
    /// Whether the backend answers (readiness); the in-memory store always
    /// does.
    fn health(&self) -> BoxFuture<'_, Result<(), StoreError>> {
        Box::pin(std::future::ready(Ok(())))
    }
    /// `len() == 0`.
    fn is_empty(&self) -> BoxFuture<'_, bool> {
        Box::pin(async move { self.len().await == 0 })
    }
}

/// The sessions a SAML LogoutRequest ends (SAML core §3.7.3.2): those
/// of its NameID, signed in with SAML at the IdP that sent it, and, when it
/// names SessionIndexes, only the one with this index. Another IdP may
/// issue the same NameID to somebody else, and an LDAP DN may look like a
/// NameID, so neither is ever touched.
#[derive(Debug, Clone, Copy)]
pub struct LogoutTarget<'a> {
    pub subject: &'a str,
    pub session_index: Option<&'a str>,
    /// The `saml.idps` id of the IdP that sent the request.
    pub idp: &'a str,
    /// Whether that IdP is the first configured one, which also owns the
    /// SAML sessions that recorded no IdP (signed in before several IdPs
    /// were configured).
    pub first_idp: bool,
}

impl LogoutTarget<'_> {
    pub fn matches(&self, id: &Identity) -> bool {
        let same_idp = match id.saml_idp.as_deref() {
            Some(idp) => idp == self.idp,
            None => self.first_idp,
        };
        id.method == identity::Method::Saml
            && id.subject == self.subject
            && same_idp
            && self
                .session_index
                .is_none_or(|want| id.session_index.as_deref() == Some(want))
    }
}

/// A fresh session id: 256 random bits, base64url without padding (43
/// characters).
pub fn new_session_id() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// A signed-in user's server-side session. Immutable once stored: to change
/// the identity, store [`Session::with_identity`].
pub struct Session {
    /// Secret-ish (it is what the cookie protects): never log it.
    pub id: String,
    pub identity: Arc<Identity>,
    /// When the user signed in (Unix seconds).
    pub created: u64,
    /// Absolute expiry (Unix seconds): `created + session ttl`.
    pub expires: u64,
    /// When `identity` was evaluated (login, or the last LDAP refresh).
    pub identity_at: u64,
    /// The identity JWT, re-signed at half-life.
    pub tokens: TokenCache,
    /// Plain identity headers, built once.
    pub plain: PlainHeaders,
}

impl Session {
    pub fn new(
        id: String,
        identity: Arc<Identity>,
        names: &HeaderNames,
        now: u64,
        ttl: Duration,
    ) -> Session {
        let plain = PlainHeaders::new(&identity, names);
        Session {
            id,
            identity,
            created: now,
            expires: now.saturating_add(ttl.as_secs()),
            identity_at: now,
            tokens: TokenCache::new(),
            plain,
        }
    }

    /// The same session (id, creation, absolute expiry) with a re-evaluated
    /// identity, a fresh token cache and fresh plain headers.
    pub fn with_identity(&self, identity: Arc<Identity>, names: &HeaderNames, now: u64) -> Session {
        Session {
            id: self.id.clone(),
            plain: PlainHeaders::new(&identity, names),
            identity,
            created: self.created,
            expires: self.expires,
            identity_at: now,
            tokens: TokenCache::new(),
        }
    }

    /// The identity JWT for this session (cached; see [`TokenCache`]).
    pub fn assertion(&self, signer: &Signer, now: u64) -> Result<HeaderValue, identity::Error> {
        self.tokens.get(signer, &self.identity, &self.id, now)
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &"[redacted]")
            .field("subject", &self.identity.subject)
            .field("method", &self.identity.method)
            .field("created", &self.created)
            .field("expires", &self.expires)
            .finish_non_exhaustive()
    }
}

/// Names of the plain identity headers, fixed at start. The proxy must
/// strip every one of these (and the assertion header) from inbound
/// requests, whatever their case or `_` spelling; whether plain headers are
/// sent at all is the caller's switch (apply [`Session::plain`] or not).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderNames {
    /// preferred_username, else email, else subject.
    pub user: HeaderName,
    pub email: HeaderName,
    pub preferred_username: HeaderName,
    /// Comma-separated, each group percent-encoded.
    pub groups: HeaderName,
    pub role: HeaderName,
}

impl Default for HeaderNames {
    /// DESIGN.md defaults: `X-Forwarded-User`, `-Email`,
    /// `-Preferred-Username`, `-Groups`, `-Role`.
    fn default() -> Self {
        HeaderNames {
            user: HeaderName::from_static("x-forwarded-user"),
            email: HeaderName::from_static("x-forwarded-email"),
            preferred_username: HeaderName::from_static("x-forwarded-preferred-username"),
            groups: HeaderName::from_static("x-forwarded-groups"),
            role: HeaderName::from_static("x-forwarded-role"),
        }
    }
}

impl HeaderNames {
    /// The configured names, for stripping inbound copies.
    pub fn iter(&self) -> impl Iterator<Item = &HeaderName> {
        [
            &self.user,
            &self.email,
            &self.preferred_username,
            &self.groups,
            &self.role,
        ]
        .into_iter()
    }
}

/// Precomputed plain identity headers of one session; absent or empty
/// values produce no header.
///
/// Values: printable ASCII passes verbatim; any other value (non-ASCII,
/// control characters, leading or trailing space) is sent percent-encoded
/// as UTF-8 with `%` and space encoded too, never dropped. Groups are
/// always percent-encoded element by element (at least `,` `%` space `"`,
/// controls and non-ASCII), then joined with `,`: the upstream splits on
/// `,` and percent-decodes each element. The user header is
/// `preferred_username`, else `email`, else `subject`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlainHeaders {
    headers: Vec<(HeaderName, HeaderValue)>,
}

/// Escaped in a group before joining.
const GROUP_ESCAPE: &AsciiSet = &CONTROLS.add(b',').add(b'%').add(b' ').add(b'"');
/// Escaped in a single value that cannot go verbatim.
const VALUE_ESCAPE: &AsciiSet = &CONTROLS.add(b'%').add(b' ');

impl PlainHeaders {
    pub fn new(id: &Identity, names: &HeaderNames) -> Self {
        fn non_empty(v: &Option<String>) -> Option<&str> {
            v.as_deref().filter(|s| !s.is_empty())
        }
        let user = non_empty(&id.preferred_username)
            .or_else(|| non_empty(&id.email))
            .unwrap_or(&id.subject);
        let groups = id
            .groups
            .iter()
            .map(|g| utf8_percent_encode(g, GROUP_ESCAPE).to_string())
            .collect::<Vec<_>>()
            .join(",");
        let mut headers = Vec::with_capacity(5);
        let mut push = |name: &HeaderName, value: Option<HeaderValue>| {
            if let Some(value) = value {
                headers.push((name.clone(), value));
            }
        };
        push(&names.user, Some(user).filter(|s| !s.is_empty()).map(value));
        push(&names.email, non_empty(&id.email).map(value));
        push(
            &names.preferred_username,
            non_empty(&id.preferred_username).map(value),
        );
        push(
            &names.groups,
            Some(groups).filter(|g| !g.is_empty()).map(encoded),
        );
        push(
            &names.role,
            id.role.map(|r| HeaderValue::from_static(r.as_str())),
        );
        PlainHeaders { headers }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&HeaderName, &HeaderValue)> {
        self.headers.iter().map(|(n, v)| (n, v))
    }

    /// Sets every header on an outgoing request's headers (after the proxy
    /// has stripped inbound copies).
    pub fn apply(&self, headers: &mut HeaderMap) {
        for (n, v) in &self.headers {
            headers.insert(n.clone(), v.clone());
        }
    }

    pub fn len(&self) -> usize {
        self.headers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.headers.is_empty()
    }
}

/// Verbatim when printable ASCII without edge spaces, else percent-encoded.
fn value(s: &str) -> HeaderValue {
    let verbatim =
        s.bytes().all(|b| (0x20..0x7f).contains(&b)) && !s.starts_with(' ') && !s.ends_with(' ');
    if verbatim {
        if let Ok(v) = HeaderValue::from_str(s) {
            return v;
        }
    }
    encoded(utf8_percent_encode(s, VALUE_ESCAPE).to_string())
}

/// `s` is already percent-encoded (visible ASCII only), so this cannot
/// fail; the fallback keeps the path panic-free and visible.
fn encoded(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("%3F"))
}

/// Starts a session for `identity`: stores it and returns it with the
/// `Set-Cookie` value (Max-Age = `ttl`). The one call login code makes.
pub async fn start(
    store: &dyn Store,
    keys: &Keys,
    cookie: &CookieConfig,
    identity: Identity,
    now: u64,
    ttl: Duration,
    names: &HeaderNames,
) -> Result<(Arc<Session>, HeaderValue), StoreError> {
    let session = Arc::new(Session::new(
        new_session_id(),
        Arc::new(identity),
        names,
        now,
        ttl,
    ));
    let sealed = Sealed::seal(
        keys,
        &SessionCookie {
            sid: session.id.clone(),
        },
        now,
    );
    store.insert(Arc::clone(&session)).await?;
    Ok((session, cookie.set_header(sealed.as_str(), ttl)))
}

/// The live session named by the request's cookie, if any. Every copy of
/// our cookie is tried (see [`CookieConfig::find_all`]: a planted duplicate
/// cannot hide the real one), and a cookie issued `ttl` or longer ago (or
/// more than [`sealed::MAX_SKEW`] ahead) is refused even if a store forgot
/// to expire its session.
pub async fn load(
    store: &dyn Store,
    keys: &Keys,
    cookie: &CookieConfig,
    headers: &HeaderMap,
    now: u64,
    ttl: Duration,
) -> Result<Option<Arc<Session>>, StoreError> {
    for value in cookie.find_all(headers) {
        let Some(SessionCookie { sid }) = Sealed::open_within(keys, value, now, ttl) else {
            continue;
        };
        if let Some(s) = store.get(&sid, now).await? {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::identity::Method;
    use crate::role::Role;
    use std::collections::BTreeMap;

    pub(crate) fn identity(subject: &str) -> Identity {
        Identity {
            subject: subject.to_string(),
            email: Some("jane@example.com".to_string()),
            name: Some("Jane Doe".to_string()),
            given_name: None,
            family_name: None,
            preferred_username: Some("jane".to_string()),
            groups: vec![
                "cn=Team A,ou=groups,dc=example,dc=com".to_string(),
                "ls-annotators".to_string(),
            ],
            role: Some(Role::Annotator),
            workspaces: Vec::new(),
            projects: BTreeMap::new(),
            method: Method::Saml,
            session_index: Some("idx-1".to_string()),
            saml_idp: None,
        }
    }

    fn get<'a>(p: &'a PlainHeaders, name: &str) -> Option<&'a str> {
        p.iter()
            .find(|(n, _)| n.as_str() == name)
            .and_then(|(_, v)| v.to_str().ok())
    }

    #[test]
    fn session_ids_are_long_random_and_url_safe() {
        let a = new_session_id();
        let b = new_session_id();
        assert_eq!(a.len(), 43);
        assert_ne!(a, b);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'));
    }

    #[test]
    fn group_header_percent_encodes_dn_groups() {
        let mut id = identity("cn=jane,dc=example,dc=com");
        id.groups = vec![
            "cn=admins,ou=groups,dc=example,dc=com".to_string(),
            "cn=Team A,ou=groups,dc=example,dc=com".to_string(),
            "100%".to_string(),
            "Müller\"s".to_string(),
            "tab\there".to_string(),
            "plain".to_string(),
        ];
        let p = PlainHeaders::new(&id, &HeaderNames::default());
        let groups = get(&p, "x-forwarded-groups").expect("groups header");
        assert_eq!(
            groups,
            "cn=admins%2Cou=groups%2Cdc=example%2Cdc=com,\
             cn=Team%20A%2Cou=groups%2Cdc=example%2Cdc=com,\
             100%25,M%C3%BCller%22s,tab%09here,plain"
        );
        let decoded: Vec<String> = groups
            .split(',')
            .map(|g| {
                percent_encoding::percent_decode_str(g)
                    .decode_utf8()
                    .expect("utf8")
                    .into_owned()
            })
            .collect();
        assert_eq!(decoded, id.groups);
    }

    #[test]
    fn plain_headers_use_configured_names_and_fallbacks() {
        let names = HeaderNames {
            user: HeaderName::from_static("x-webauth-user"),
            role: HeaderName::from_static("x-webauth-role"),
            ..HeaderNames::default()
        };
        let mut id = identity("cn=jane,dc=example,dc=com");
        let p = PlainHeaders::new(&id, &names);
        assert_eq!(p.len(), 5);
        assert_eq!(get(&p, "x-webauth-user"), Some("jane"));
        assert_eq!(get(&p, "x-webauth-role"), Some("annotator"));
        assert_eq!(get(&p, "x-forwarded-user"), None);

        id.preferred_username = Some(String::new());
        let p = PlainHeaders::new(&id, &names);
        assert_eq!(get(&p, "x-webauth-user"), Some("jane@example.com"));
        assert_eq!(get(&p, "x-forwarded-preferred-username"), None);

        id.email = None;
        id.role = None;
        id.groups.clear();
        let p = PlainHeaders::new(&id, &names);
        assert_eq!(get(&p, "x-webauth-user"), Some("cn=jane,dc=example,dc=com"));
        assert_eq!(get(&p, "x-webauth-role"), None, "no role, no header");
        assert_eq!(get(&p, "x-forwarded-groups"), None, "no groups, no header");
        assert_eq!(p.len(), 1);
    }

    #[test]
    fn values_that_cannot_go_verbatim_are_percent_encoded_not_dropped() {
        let mut id = identity("s");
        id.preferred_username = Some("jürgen".to_string());
        id.email = Some("evil@example.com\r\nX-Forwarded-Role: owner".to_string());
        let p = PlainHeaders::new(&id, &HeaderNames::default());
        assert_eq!(get(&p, "x-forwarded-user"), Some("j%C3%BCrgen"));
        assert_eq!(
            get(&p, "x-forwarded-preferred-username"),
            Some("j%C3%BCrgen")
        );
        assert_eq!(
            get(&p, "x-forwarded-email"),
            Some("evil@example.com%0D%0AX-Forwarded-Role:%20owner")
        );
        id.email = Some(" spaced ".to_string());
        let p = PlainHeaders::new(&id, &HeaderNames::default());
        assert_eq!(get(&p, "x-forwarded-email"), Some("%20spaced%20"));
        // Printable ASCII with inner spaces passes as is.
        id.email = Some("a b%c".to_string());
        let p = PlainHeaders::new(&id, &HeaderNames::default());
        assert_eq!(get(&p, "x-forwarded-email"), Some("a b%c"));
        // The role (a `Role`, whatever its source) is its claim spelling.
        for role in [Role::NotActivated, Role::Owner, Role::Deactivated] {
            id.role = Some(role);
            let p = PlainHeaders::new(&id, &HeaderNames::default());
            assert_eq!(get(&p, "x-forwarded-role"), Some(role.as_str()));
        }
    }

    #[test]
    fn apply_sets_each_header_once() {
        let p = PlainHeaders::new(&identity("s"), &HeaderNames::default());
        let mut h = HeaderMap::new();
        h.append("x-forwarded-user", HeaderValue::from_static("spoofed"));
        p.apply(&mut h);
        assert_eq!(h.get_all("x-forwarded-user").iter().count(), 1);
        assert_eq!(h["x-forwarded-user"], "jane");
        assert_eq!(h.len(), 5);
        assert_eq!(HeaderNames::default().iter().count(), 5);
    }

    struct Env {
        store: MemoryStore,
        keys: Keys,
        cookie: CookieConfig,
        names: HeaderNames,
    }

    const TTL: Duration = Duration::from_secs(3600);

    fn env(idle: Duration, secret: u8) -> Env {
        Env {
            store: MemoryStore::new(idle),
            keys: Keys::from_secrets(&[vec![secret; 32]]).expect("keys"),
            cookie: CookieConfig::new("authgate", true),
            names: HeaderNames::default(),
        }
    }

    impl Env {
        async fn start(&self, who: &str, now: u64) -> (Arc<Session>, HeaderValue) {
            start(
                &self.store,
                &self.keys,
                &self.cookie,
                identity(who),
                now,
                TTL,
                &self.names,
            )
            .await
            .expect("start")
        }

        async fn load(&self, h: &HeaderMap, now: u64) -> Option<Arc<Session>> {
            load(&self.store, &self.keys, &self.cookie, h, now, TTL)
                .await
                .expect("load")
        }
    }

    fn request_with(set_cookies: &[&HeaderValue]) -> HeaderMap {
        let pairs: Vec<&str> = set_cookies
            .iter()
            .filter_map(|v| v.to_str().ok()?.split(';').next())
            .collect();
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_str(&format!("other=1; {}", pairs.join("; "))).expect("valid"),
        );
        h
    }

    #[tokio::test]
    async fn start_load_revoke_round_trip() {
        let e = env(Duration::from_secs(600), 7);
        let t = 1_700_000_000;
        let (s, set) = e.start("jane", t).await;
        assert!(set.is_sensitive());
        let set_str = set.to_str().expect("ascii");
        assert!(set_str.starts_with("__Host-authgate="));
        assert!(set_str.contains("Max-Age=3600"));
        assert!(!set_str.contains(&s.id), "the cookie does not show the id");
        assert!(!set_str.contains("jane"), "nor the identity");

        let req = request_with(&[&set]);
        let loaded = e.load(&req, t + 10).await.expect("live");
        assert_eq!(loaded.id, s.id);
        assert_eq!(e.store.len().await, 1);

        assert!(e.store.revoke(&s.id).await.expect("revoke"));
        assert!(e.load(&req, t + 21).await.is_none());
        assert!(e.load(&HeaderMap::new(), t).await.is_none());
    }

    #[tokio::test]
    async fn absolute_ttl_is_enforced_at_load() {
        let e = env(Duration::ZERO, 7);
        let t = 1_700_000_000;
        let (_, set) = e.start("jane", t).await;
        let req = request_with(&[&set]);
        assert!(e.load(&req, t + 3599).await.is_some());
        assert!(e.load(&req, t + 3600).await.is_none());
    }

    #[tokio::test]
    async fn a_cookie_sealed_more_than_a_minute_ahead_is_refused() {
        let e = env(Duration::ZERO, 7);
        let t = 1_700_000_000;
        let (_, ahead) = e.start("jane", t + 60).await;
        assert!(e.load(&request_with(&[&ahead]), t).await.is_some());
        let (_, too_far) = e.start("joe", t + 61).await;
        assert!(e.load(&request_with(&[&too_far]), t).await.is_none());
    }

    #[tokio::test]
    async fn a_planted_duplicate_cookie_does_not_hide_the_real_one() {
        let e = env(Duration::ZERO, 7);
        let attacker = env(Duration::ZERO, 9);
        let t = 1_700_000_000;
        let (_, planted) = attacker.start("mallory", t).await;
        let (real, set) = e.start("jane", t).await;
        let req = request_with(&[&planted, &set]);
        assert_eq!(
            e.load(&req, t).await.map(|s| s.id.clone()),
            Some(real.id.clone())
        );
    }

    #[tokio::test]
    async fn identity_refresh_replaces_the_session_but_not_after_revocation() {
        let e = env(Duration::from_secs(600), 7);
        let t = 1_700_000_000;
        let (s, set) = e.start("jane", t).await;
        let req = request_with(&[&set]);
        let mut changed = identity("jane");
        changed.role = Some(Role::Reviewer);
        let next = Arc::new(s.with_identity(Arc::new(changed), &e.names, t + 300));
        e.store.insert(Arc::clone(&next)).await.expect("refresh");
        assert_eq!((next.id.as_str(), next.created), (s.id.as_str(), s.created));
        let loaded = e.load(&req, t + 301).await.expect("live");
        assert_eq!(loaded.identity.role, Some(Role::Reviewer));
        assert_eq!(loaded.identity_at, t + 300);
        assert_eq!(get(&loaded.plain, "x-forwarded-role"), Some("reviewer"));

        e.store.revoke(&s.id).await.expect("revoke");
        let again = Arc::new(s.with_identity(Arc::new(identity("jane")), &e.names, t + 303));
        assert!(matches!(
            e.store.insert(again).await,
            Err(StoreError::Revoked)
        ));
        assert!(e.load(&req, t + 304).await.is_none());
    }

    #[tokio::test]
    async fn a_tampered_or_foreign_cookie_loads_nothing() {
        let e = env(Duration::ZERO, 7);
        let other = env(Duration::ZERO, 8);
        let t = 1_700_000_000;
        let (_, set) = other.start("x", t).await;
        assert!(e.load(&request_with(&[&set]), t).await.is_none());
        let mut h = HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            HeaderValue::from_static("__Host-authgate=AAAA"),
        );
        assert!(e.load(&h, t).await.is_none());
    }

    #[test]
    fn assertion_comes_from_the_session_cache() {
        let pem = crate::identity::keys::generate(crate::identity::keys::Algorithm::EdDSA)
            .expect("generate");
        let signer = Signer::new(
            pem.as_bytes(),
            crate::identity::keys::Algorithm::EdDSA,
            &[],
            "https://labels.example.com".to_string(),
            "app".to_string(),
            Duration::from_secs(60),
        )
        .expect("signer");
        let s = Session::new(
            new_session_id(),
            Arc::new(identity("jane")),
            &HeaderNames::default(),
            1_700_000_000,
            TTL,
        );
        let a = s.assertion(&signer, 1_700_000_000).expect("sign");
        assert_eq!(s.assertion(&signer, 1_700_000_010).expect("cached"), a);
        assert!(a.is_sensitive());
    }

    #[test]
    fn session_debug_hides_the_id() {
        let s = Session::new(
            new_session_id(),
            Arc::new(identity("jane")),
            &HeaderNames::default(),
            1,
            Duration::from_secs(10),
        );
        let dbg = format!("{s:?}");
        assert!(!dbg.contains(&s.id));
        assert!(dbg.contains("redacted"));
    }

    #[test]
    fn error_messages_count_secrets_from_one() {
        let e = Error::KeyTooShort { index: 0 };
        assert!(e.to_string().starts_with("session secret #1 "));
    }
}
