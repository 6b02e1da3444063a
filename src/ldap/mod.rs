//! LDAP: finding a user, checking their password, reading their attributes
//! and groups, and re-reading them later (refresh). Knows ldap3, never hyper.
//!
//! A [`Directory`] is built once at start from `ldap::Settings`
//! (TLS trust loaded, filters prepared) and shared. Two ways to find the
//! user, as django-auth-ldap (the library behind the Label Studio
//! Enterprise variables) does:
//!
//! - **DN template** (`AUTH_LDAP_USER_DN_TEMPLATE`): `%(user)s` replaced by
//!   the typed name escaped per RFC 4514 §2.4, then a direct bind as that
//!   DN. The user's entry and groups are read on the user's own connection
//!   (django-auth-ldap's `BIND_AS_AUTHENTICATING_USER`).
//! - **Search** (template empty): the service account (`AUTH_LDAP_BIND_DN`)
//!   searches every base of `AUTH_LDAP_USER_SEARCH_BASES` with a filter on
//!   the query attribute, the value escaped per RFC 4515 §3; exactly one
//!   entry across all bases must match, then a bind as that DN with the
//!   typed password checks it. Groups are read with the service account.
//!
//! Groups: see [`GroupType`] (each `AUTH_LDAP_GROUP_TYPE` value documented
//! there). Service-account connections come from a small pool; every
//! connect, bind and search has `ldap.timeout`.
//!
//! Failover: `ldap.server_uri` may list several servers. Every new
//! connection tries them in order, those whose last connect failed (in
//! back-off for `ldap.failover_backoff`) after the others, each within
//! `ldap.connect_timeout` and all within `ldap.timeout`. An empty password is
//! refused before any bind (RFC 4513 §5.1.2: an empty-password simple bind
//! is an unauthenticated bind that *succeeds*).
//!
//! Must not: log or return passwords or the bind secret (every function
//! that sees one is `#[instrument(skip_all)]`); build filters or DNs from
//! unescaped input; know about HTTP.

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ldap3::{LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry};
use rustls::ClientConfig;
use tracing::instrument;

pub mod login;
pub mod settings;
pub mod throttle;

pub use settings::{GroupType, QueryField, RequireCert, Settings};

use crate::identity::{Method, Principal};
use crate::mapping::dn;
use crate::secret::Secret;

/// Longest username accepted (longer input fails like a wrong password,
/// before any directory round trip).
pub const MAX_USERNAME: usize = 256;
/// Longest password accepted (Active Directory's limit is 256 characters).
pub const MAX_PASSWORD: usize = 1024;
/// OR-terms per query when walking nested groups.
const NESTED_CHUNK: usize = 32;
/// AD's LDAP_MATCHING_RULE_IN_CHAIN (MS-ADTS §3.1.1.3.4.4.1).
pub const IN_CHAIN: &str = "1.2.840.113556.1.4.1941";
/// How long a health result is trusted.
const HEALTH_TTL_UP: Duration = Duration::from_secs(15);
const HEALTH_TTL_DOWN: Duration = Duration::from_secs(2);

/// Why an LDAP operation failed. Messages are lowercase, name no password
/// or bind secret, and only the credential variants reach the user (as one
/// generic message).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("empty password refused before binding")]
    EmptyPassword,
    #[error("username or password empty, too long or malformed")]
    BadInput,
    #[error("no entry matches the username")]
    UnknownUser,
    #[error("{0} entries match the username; exactly one is required")]
    Ambiguous(usize),
    #[error("the directory refused the password")]
    WrongPassword,
    #[error("the directory refused the service account bind (check ldap.bind_dn and ldap.bind_password)")]
    ServiceBind(#[source] Box<LdapError>),
    #[error("the directory at {uri} is unreachable")]
    Unavailable {
        uri: String,
        #[source]
        source: Box<LdapError>,
    },
    #[error("the directory did not answer its last health check")]
    Unhealthy,
    #[error("directory {op} failed")]
    Operation {
        op: &'static str,
        #[source]
        source: Box<LdapError>,
    },
    #[error("ldap.ca_file {path:?}: {reason}")]
    CaFile { path: String, reason: String },
    #[error("ldap TLS configuration")]
    Tls(#[source] rustls::Error),
}

impl Error {
    /// The user typed something wrong: one generic message, counted by the throttle.
    pub fn is_credentials(&self) -> bool {
        matches!(
            self,
            Error::EmptyPassword
                | Error::BadInput
                | Error::UnknownUser
                | Error::Ambiguous(_)
                | Error::WrongPassword
        )
    }

    /// The connection is gone or never came up (worth one retry on a fresh one).
    fn is_connection(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }
}

/// Transport failures (as opposed to the directory answering "no").
fn is_transport(e: &LdapError) -> bool {
    !matches!(
        e,
        LdapError::LdapResult { .. } | LdapError::FilterParsing | LdapError::AddNoValues
    )
}

/// One user entry as read.
#[derive(Debug, Clone)]
struct Entry {
    dn: String,
    attrs: std::collections::HashMap<String, Vec<String>>,
}

impl Entry {
    fn from_search(e: SearchEntry) -> Entry {
        Entry {
            dn: e.dn,
            attrs: e.attrs,
        }
    }

    /// The first value of `name` (attribute types compare case-insensitively).
    fn first(&self, name: &str) -> Option<String> {
        self.all(name).first().map(|v| v.trim().to_string())
    }

    fn all(&self, name: &str) -> &[String] {
        if name.is_empty() {
            return &[];
        }
        self.attrs
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
            .unwrap_or(&[])
    }
}

/// One server of `ldap.server_uri` and what its last connect said.
struct Server {
    uri: String,
    /// StartTLS on this server (`ldap.start_tls` and an `ldap://` URI).
    start_tls: bool,
    state: Mutex<ServerState>,
}

#[derive(Debug, Clone, Copy, Default)]
struct ServerState {
    /// `None`: never connected to yet.
    up: Option<bool>,
    /// Tried after the others until then (its last connect failed).
    backoff_until: Option<Instant>,
}

/// A server's last connect, as readiness and the metric show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reach {
    Up,
    Down,
    /// Not connected to yet.
    Unknown,
}

/// What readiness reports for one server.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ServerStatus {
    pub uri: String,
    pub state: Reach,
    /// Seconds until it is tried first again (when down).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_in_seconds: Option<u64>,
}

/// A connection to the directory, built once at start and shared.
pub struct Directory {
    /// In the order of `ldap.server_uri`: each connect tries them in this
    /// order, those in back-off last.
    servers: Vec<Server>,
    connect_timeout: Duration,
    failover_backoff: Duration,
    /// `None` with `no_verify` = verification off (warned at start).
    tls: Option<Arc<ClientConfig>>,
    no_verify: bool,
    timeout: Duration,
    bind_dn: String,
    bind_password: Secret<String>,
    template: Option<String>,
    search_bases: Vec<String>,
    query_attrs: Vec<String>,
    attr_first_name: String,
    attr_last_name: String,
    attr_email: String,
    attr_username: String,
    /// Every attribute read from a user entry.
    user_attrs: Vec<String>,
    group_base: String,
    group_filter: String,
    group_type: GroupType,
    max_depth: usize,
    pool: Mutex<Vec<ldap3::Ldap>>,
    pool_size: usize,
    health: Mutex<Option<(Instant, bool)>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field(
                "servers",
                &self.servers.iter().map(|s| &s.uri).collect::<Vec<_>>(),
            )
            .field(
                "mode",
                &self.template.as_ref().map_or("search", |_| "template"),
            )
            .field("group_type", &self.group_type)
            .finish_non_exhaustive()
    }
}

/// Runs `$body` (an expression using `$conn: &mut Ldap`) on a pooled
/// service-account connection; a reused connection that turns out dead
/// (the directory restarted) is dropped and the body retried once on a
/// fresh one. The connection goes back to the pool unless it failed.
macro_rules! with_service {
    ($dir:expr, $conn:ident => $body:expr) => {{
        let mut retried = false;
        loop {
            let (mut $conn, reused) = $dir.checkout().await?;
            let r = $body.await;
            match r {
                Err(e) if e.is_connection() => {
                    if reused && !retried {
                        retried = true;
                        continue;
                    }
                    break Err(e);
                }
                r => {
                    $dir.checkin($conn);
                    break r;
                }
            }
        }
    }};
}

impl Directory {
    /// Loads the TLS trust (`ldap.ca_file`, else the system roots) and
    /// prepares filters. Fails only on unreadable TLS material.
    pub fn new(s: &Settings) -> Result<Directory, Error> {
        let tls_needed = s
            .server_uris
            .iter()
            .any(|u| u.starts_with("ldaps://") || s.start_tls);
        let (tls, no_verify) = match (s.require_cert.verifies(), tls_needed) {
            (false, _) => (None, true),
            (true, true) => (Some(client_config(s.ca_file.as_deref())?), false),
            (true, false) => (None, false),
        };
        let query_attrs = match (s.user_query_field, s.use_username_for_login) {
            (QueryField::Username, _) => vec![s.attr_username.clone()],
            (QueryField::Email, false) => vec![s.attr_email.clone()],
            (QueryField::Email, true) => vec![s.attr_email.clone(), s.attr_username.clone()],
        };
        let mut user_attrs: Vec<String> = Vec::new();
        for a in [
            s.attr_first_name.as_str(),
            &s.attr_last_name,
            &s.attr_email,
            &s.attr_username,
            "uid",
            "givenName",
            "sn",
            "cn",
            "displayName",
            "memberOf",
            "gidNumber",
        ] {
            if !a.is_empty() && !user_attrs.iter().any(|x| x.eq_ignore_ascii_case(a)) {
                user_attrs.push(a.to_string());
            }
        }
        let f = s.group_search_filter.trim();
        let group_filter = if f.is_empty() {
            "(objectClass=*)".to_string()
        } else if f.starts_with('(') {
            f.to_string()
        } else {
            format!("({f})")
        };
        Ok(Directory {
            servers: s
                .server_uris
                .iter()
                .map(|uri| Server {
                    uri: uri.clone(),
                    start_tls: s.start_tls && uri.starts_with("ldap://"),
                    state: Mutex::new(ServerState::default()),
                })
                .collect(),
            connect_timeout: s.connect_timeout.min(s.timeout),
            failover_backoff: s.failover_backoff,
            tls,
            no_verify,
            timeout: s.timeout,
            bind_dn: s.bind_dn.clone(),
            bind_password: s.bind_password.clone(),
            template: s.user_dn_template.clone(),
            search_bases: s.user_search_bases.clone(),
            query_attrs,
            attr_first_name: s.attr_first_name.clone(),
            attr_last_name: s.attr_last_name.clone(),
            attr_email: s.attr_email.clone(),
            attr_username: s.attr_username.clone(),
            user_attrs,
            group_base: s.group_search_base_dn.clone(),
            group_filter,
            group_type: s.group_kind.clone(),
            max_depth: s.max_group_depth,
            pool: Mutex::new(Vec::new()),
            pool_size: s.pool_size,
            health: Mutex::new(None),
        })
    }

    /// What the login form asks for: "email", "username" or "username or email".
    pub fn login_label(&self) -> &'static str {
        if self.template.is_some() {
            return "Username";
        }
        let email = self.query_attrs.contains(&self.attr_email);
        let user = self.query_attrs.contains(&self.attr_username);
        match (email, user) {
            (true, true) => "Username or email",
            (true, false) => "Email",
            _ => "Username",
        }
    }

    /// Checks `password` for `username` and reads the user's attributes and
    /// groups. Every credential failure (unknown user, wrong password, empty
    /// password, oversized input) is an error for which
    /// [`Error::is_credentials`] holds.
    #[instrument(skip_all, fields(mode = if self.template.is_some() { "template" } else { "search" }))]
    pub async fn authenticate(&self, username: &str, password: &str) -> Result<Principal, Error> {
        let username = username.trim();
        // RFC 4513 §5.1.2: refuse before any bind, or it is anonymous.
        if password.is_empty() {
            return Err(Error::EmptyPassword);
        }
        if username.is_empty()
            || username.len() > MAX_USERNAME
            || password.len() > MAX_PASSWORD
            || username.chars().any(char::is_control)
        {
            return Err(Error::BadInput);
        }
        let r = match &self.template {
            Some(t) => self.authenticate_template(t, username, password).await,
            None => self.authenticate_search(username, password).await,
        };
        self.note_health(&r);
        r
    }

    #[instrument(skip_all)]
    async fn authenticate_template(
        &self,
        template: &str,
        username: &str,
        password: &str,
    ) -> Result<Principal, Error> {
        let user_dn = template.replace("%(user)s", &dn::escape_value(username));
        let mut conn = self.connect().await?;
        let r = async {
            self.user_bind(&mut conn, &user_dn, password).await?;
            // The entry as the server names it; a user who may not read
            // their own entry still signs in, with the DN only.
            let entry = self
                .search(
                    &mut conn,
                    &user_dn,
                    Scope::Base,
                    "(objectClass=*)",
                    &self.user_attrs,
                )
                .await?
                .into_iter()
                .next()
                .unwrap_or(Entry {
                    dn: user_dn.clone(),
                    attrs: Default::default(),
                });
            let groups = self.groups(&mut conn, &entry).await?;
            Ok(self.principal(&entry, groups))
        }
        .await;
        let _ = tokio::time::timeout(self.timeout, conn.unbind()).await;
        r
    }

    #[instrument(skip_all)]
    async fn authenticate_search(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Principal, Error> {
        let filter = self.user_filter(username);
        let mut found: Vec<Entry> =
            with_service!(self, conn => self.find_user(&mut conn, &filter))?;
        let entry = match found.len() {
            0 => return Err(Error::UnknownUser),
            1 => found.remove(0),
            n => return Err(Error::Ambiguous(n)),
        };
        let mut conn = self.connect().await?;
        let bound = self.user_bind(&mut conn, &entry.dn, password).await;
        let _ = tokio::time::timeout(self.timeout, conn.unbind()).await;
        bound?;
        let groups = with_service!(self, conn => self.groups(&mut conn, &entry))?;
        Ok(self.principal(&entry, groups))
    }

    /// Re-reads a signed-in user's entry and groups with the service
    /// account. `Ok(None)`: the entry no longer exists.
    #[instrument(skip_all)]
    pub async fn refresh(&self, user_dn: &str) -> Result<Option<Principal>, Error> {
        let r = with_service!(self, conn => async {
            let entry = self
                .search(&mut conn, user_dn, Scope::Base, "(objectClass=*)", &self.user_attrs)
                .await?
                .into_iter()
                .next();
            match entry {
                None => Ok::<_, Error>(None),
                Some(e) => {
                    let groups = self.groups(&mut conn, &e).await?;
                    Ok(Some(self.principal(&e, groups)))
                }
            }
        });
        self.note_health(&r);
        r
    }

    /// Whether the directory answers, cached (15 s when up, 2 s when down)
    /// so readiness probes do not bind each time. A probe reads the root
    /// DSE on a pooled service connection.
    pub async fn reachable(&self) -> bool {
        if let Some(ok) = self.cached_health() {
            return ok;
        }
        let r = self.probe().await;
        let ok = r.is_ok();
        if let Err(e) = &r {
            tracing::warn!(error = %chain(e), "ldap directory unreachable");
        }
        self.set_health(ok);
        ok
    }

    async fn probe(&self) -> Result<(), Error> {
        with_service!(self, conn => async {
            self.search(&mut conn, "", Scope::Base, "(objectClass=*)", &["1.1".to_string()])
                .await
                .map(|_| ())
        })
    }

    /// The last known health, without probing (None = never checked).
    pub fn last_health(&self) -> Option<bool> {
        self.health
            .lock()
            .ok()
            .and_then(|h| h.as_ref().map(|(_, ok)| *ok))
    }

    fn cached_health(&self) -> Option<bool> {
        let h = self.health.lock().ok()?;
        let (at, ok) = (*h)?;
        let ttl = if ok { HEALTH_TTL_UP } else { HEALTH_TTL_DOWN };
        (at.elapsed() < ttl).then_some(ok)
    }

    fn set_health(&self, ok: bool) {
        if let Ok(mut h) = self.health.lock() {
            *h = Some((Instant::now(), ok));
        }
    }

    fn note_health<T>(&self, r: &Result<T, Error>) {
        match r {
            Ok(_) => self.set_health(true),
            Err(Error::Unavailable { .. }) => self.set_health(false),
            Err(_) => {}
        }
    }

    // ---- connections ----

    /// A new connection: the servers of `ldap.server_uri` in order, those
    /// whose last connect failed (in back-off) after the others. Each gets
    /// `ldap.connect_timeout`, the last one tried whatever is left of
    /// `ldap.timeout`, so a connect never takes longer than `ldap.timeout`.
    #[instrument(skip_all)]
    async fn connect(&self) -> Result<ldap3::Ldap, Error> {
        let deadline = Instant::now() + self.timeout;
        let order = self.connect_order();
        let mut last = None;
        for (n, &i) in order.iter().enumerate() {
            let server = &self.servers[i];
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            let limit = if n + 1 == order.len() {
                left
            } else {
                self.connect_timeout.min(left)
            };
            match self.connect_to(server, limit).await {
                Ok(ldap) => {
                    self.mark(server, true);
                    return Ok(ldap);
                }
                Err(e) => {
                    self.mark_failed(server, &e);
                    last = Some(e);
                }
            }
        }
        Err(self.unavailable(last.unwrap_or_else(|| LdapError::Io {
            source: std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "no server of ldap.server_uri could be tried within ldap.timeout",
            ),
        })))
    }

    async fn connect_to(&self, server: &Server, limit: Duration) -> Result<ldap3::Ldap, LdapError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(limit)
            .set_starttls(server.start_tls);
        if let Some(cfg) = &self.tls {
            settings = settings.set_config(cfg.clone());
        } else if self.no_verify {
            settings = settings.set_no_tls_verify(true);
        }
        let connecting = LdapConnAsync::with_settings(settings, &server.uri);
        let (conn, ldap) = tokio::time::timeout(limit, connecting).await??;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// Indexes into `servers`: those not in back-off first, then the rest,
    /// each group in configured order.
    fn connect_order(&self) -> Vec<usize> {
        let now = Instant::now();
        let backing_off = |s: &Server| {
            s.state
                .lock()
                .ok()
                .and_then(|st| st.backoff_until)
                .is_some_and(|until| until > now)
        };
        let (mut first, later): (Vec<usize>, Vec<usize>) =
            (0..self.servers.len()).partition(|&i| !backing_off(&self.servers[i]));
        first.extend(later);
        first
    }

    fn mark(&self, server: &Server, up: bool) {
        let Ok(mut st) = server.state.lock() else {
            return;
        };
        if up && st.up == Some(false) {
            tracing::info!(uri = %server.uri, "ldap server reachable again");
        }
        st.up = Some(up);
        st.backoff_until = (!up).then(|| Instant::now() + self.failover_backoff);
    }

    fn mark_failed(&self, server: &Server, e: &LdapError) {
        let was_up = server
            .state
            .lock()
            .map(|st| st.up != Some(false))
            .unwrap_or(true);
        if was_up {
            tracing::warn!(
                uri = %server.uri,
                error = %e,
                backoff = ?self.failover_backoff,
                others = self.servers.len() - 1,
                "ldap server failed to connect; tried after the others during the back-off"
            );
        }
        self.mark(server, false);
    }

    /// Each server of `ldap.server_uri` as the last connect found it.
    pub fn servers(&self) -> Vec<ServerStatus> {
        let now = Instant::now();
        self.servers
            .iter()
            .map(|s| {
                let st = s.state.lock().map(|st| *st).unwrap_or_default();
                ServerStatus {
                    uri: s.uri.clone(),
                    state: match st.up {
                        None => Reach::Unknown,
                        Some(true) => Reach::Up,
                        Some(false) => Reach::Down,
                    },
                    retry_in_seconds: st
                        .backoff_until
                        .filter(|_| st.up == Some(false))
                        .map(|until| until.saturating_duration_since(now).as_secs()),
                }
            })
            .collect()
    }

    fn unavailable(&self, source: LdapError) -> Error {
        Error::Unavailable {
            uri: self
                .servers
                .iter()
                .map(|s| s.uri.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            source: Box::new(source),
        }
    }

    fn op_error(&self, op: &'static str, source: LdapError) -> Error {
        if is_transport(&source) {
            self.unavailable(source)
        } else {
            Error::Operation {
                op,
                source: Box::new(source),
            }
        }
    }

    /// A pooled service connection (`true`: reused) or a fresh, bound one.
    async fn checkout(&self) -> Result<(ldap3::Ldap, bool), Error> {
        loop {
            let idle = self.pool.lock().ok().and_then(|mut p| p.pop());
            match idle {
                Some(mut c) => {
                    if !c.is_closed() {
                        return Ok((c, true));
                    }
                }
                None => break,
            }
        }
        let mut c = self.connect().await?;
        self.service_bind(&mut c).await?;
        Ok((c, false))
    }

    fn checkin(&self, c: ldap3::Ldap) {
        if let Ok(mut p) = self.pool.lock() {
            if p.len() < self.pool_size {
                p.push(c);
            }
        }
    }

    /// Binds as the service account; no bind DN = anonymous (no bind at all).
    #[instrument(skip_all)]
    async fn service_bind(&self, c: &mut ldap3::Ldap) -> Result<(), Error> {
        if self.bind_dn.is_empty() {
            return Ok(());
        }
        let res = c
            .with_timeout(self.timeout)
            .simple_bind(&self.bind_dn, self.bind_password.expose())
            .await
            .map_err(|e| self.op_error("service bind", e))?;
        res.success()
            .map(|_| ())
            .map_err(|e| Error::ServiceBind(Box::new(e)))
    }

    #[instrument(skip_all)]
    async fn user_bind(
        &self,
        c: &mut ldap3::Ldap,
        user_dn: &str,
        password: &str,
    ) -> Result<(), Error> {
        if password.is_empty() {
            return Err(Error::EmptyPassword);
        }
        let res = c
            .with_timeout(self.timeout)
            .simple_bind(user_dn, password)
            .await
            .map_err(|e| self.op_error("bind", e))?;
        match res.rc {
            0 => Ok(()),
            // invalidCredentials, noSuchObject, invalidDNSyntax,
            // inappropriateAuthentication, unwillingToPerform (disabled
            // accounts, empty passwords on some servers).
            49 | 32 | 34 | 48 | 53 => Err(Error::WrongPassword),
            _ => Err(Error::Operation {
                op: "bind",
                source: Box::new(LdapError::from(res)),
            }),
        }
    }

    async fn search(
        &self,
        c: &mut ldap3::Ldap,
        base: &str,
        scope: Scope,
        filter: &str,
        attrs: &[String],
    ) -> Result<Vec<Entry>, Error> {
        let ldap3::SearchResult(entries, res) = c
            .with_timeout(self.timeout)
            .search(base, scope, filter, attrs.to_vec())
            .await
            .map_err(|e| self.op_error("search", e))?;
        match res.rc {
            // success, sizeLimitExceeded (partial), referral (ignored)
            0 | 4 | 10 => {}
            // noSuchObject: the base (or the entry read by a base search) is absent.
            32 => return Ok(Vec::new()),
            _ => {
                return Err(Error::Operation {
                    op: "search",
                    source: Box::new(LdapError::from(res)),
                })
            }
        }
        Ok(entries
            .into_iter()
            .filter(|e| !e.is_ref())
            .map(|e| Entry::from_search(SearchEntry::construct(e)))
            .collect())
    }

    /// RFC 4515 §3: every byte of the typed value is escaped where needed.
    fn user_filter(&self, username: &str) -> String {
        let v = ldap3::ldap_escape(username);
        let terms: Vec<String> = self
            .query_attrs
            .iter()
            .filter(|a| !a.is_empty())
            .map(|a| format!("({a}={v})"))
            .collect();
        if terms.len() == 1 {
            terms.into_iter().next().unwrap_or_default()
        } else {
            format!("(|{})", terms.concat())
        }
    }

    async fn find_user(&self, c: &mut ldap3::Ldap, filter: &str) -> Result<Vec<Entry>, Error> {
        let mut found: Vec<Entry> = Vec::new();
        for base in &self.search_bases {
            for e in self
                .search(c, base, Scope::Subtree, filter, &self.user_attrs)
                .await?
            {
                // Overlapping bases may return one entry twice.
                if !found.iter().any(|f| same_dn(&f.dn, &e.dn)) {
                    found.push(e);
                }
            }
        }
        Ok(found)
    }

    // ---- groups ----

    async fn groups(&self, c: &mut ldap3::Ldap, user: &Entry) -> Result<Vec<String>, Error> {
        let base = self.group_base.as_str();
        match &self.group_type {
            GroupType::MemberOf => {
                let base_norm = (!base.is_empty()).then(|| norm(base));
                Ok(user
                    .all("memberOf")
                    .iter()
                    .filter(|g| match &base_norm {
                        Some(b) => is_under(&norm(g), b),
                        None => true,
                    })
                    .cloned()
                    .collect())
            }
            _ if base.is_empty() => Ok(Vec::new()),
            GroupType::MemberDn { attr, .. } => {
                let filter = member_filter(&self.group_filter, attr, &[user.dn.as_str()]);
                self.group_dns(c, &filter).await
            }
            GroupType::Posix => {
                let uid = user
                    .first("uid")
                    .or_else(|| user.first(&self.attr_username))
                    .or_else(|| first_rdn_value(&user.dn));
                let mut terms = String::new();
                if let Some(uid) = uid {
                    terms.push_str(&format!("(memberUid={})", ldap3::ldap_escape(uid.as_str())));
                }
                if let Some(gid) = user.first("gidNumber") {
                    terms.push_str(&format!("(gidNumber={})", ldap3::ldap_escape(gid.as_str())));
                }
                if terms.is_empty() {
                    return Ok(Vec::new());
                }
                let filter = format!("(&{}(|{terms}))", self.group_filter);
                self.group_dns(c, &filter).await
            }
            GroupType::ActiveDirectoryNested => {
                let filter = in_chain_filter(&self.group_filter, &user.dn);
                self.group_dns(c, &filter).await
            }
            GroupType::Nested { attr } => {
                // Breadth-first over "groups containing these DNs"; `seen`
                // is the cycle guard, `max_depth` bounds the walk.
                let mut seen: HashSet<String> = HashSet::new();
                seen.insert(norm(&user.dn));
                let mut out = Vec::new();
                let mut frontier = vec![user.dn.clone()];
                for _ in 0..self.max_depth {
                    if frontier.is_empty() {
                        break;
                    }
                    let mut next = Vec::new();
                    for chunk in frontier.chunks(NESTED_CHUNK) {
                        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
                        let filter = member_filter(&self.group_filter, attr, &refs);
                        for g in self.group_dns(c, &filter).await? {
                            if seen.insert(norm(&g)) {
                                out.push(g.clone());
                                next.push(g);
                            }
                        }
                    }
                    frontier = next;
                }
                Ok(out)
            }
        }
    }

    async fn group_dns(&self, c: &mut ldap3::Ldap, filter: &str) -> Result<Vec<String>, Error> {
        let base = self.group_base.clone();
        Ok(self
            .search(c, &base, Scope::Subtree, filter, &["1.1".to_string()])
            .await?
            .into_iter()
            .map(|e| e.dn)
            .collect())
    }

    fn principal(&self, e: &Entry, groups: Vec<String>) -> Principal {
        let given_name = e
            .first(&self.attr_first_name)
            .or_else(|| e.first("givenName"));
        let family_name = e.first(&self.attr_last_name).or_else(|| e.first("sn"));
        let name = e.first("displayName").or_else(|| {
            (given_name.is_none() && family_name.is_none())
                .then(|| e.first("cn"))
                .flatten()
        });
        Principal {
            subject: e.dn.clone(),
            email: e.first(&self.attr_email).filter(|s| !s.is_empty()),
            name,
            given_name,
            family_name,
            preferred_username: e
                .first(&self.attr_username)
                .or_else(|| e.first("uid"))
                .or_else(|| first_rdn_value(&e.dn)),
            groups,
            method: Method::Ldap,
            session_index: None,
            saml_idp: None,
        }
    }
}

/// `(&<filter>(attr=dn1))`, or `(&<filter>(|(attr=dn1)(attr=dn2)...))`.
pub(crate) fn member_filter(group_filter: &str, attr: &str, dns: &[&str]) -> String {
    let terms: Vec<String> = dns
        .iter()
        .map(|d| format!("({attr}={})", ldap3::ldap_escape(*d)))
        .collect();
    if terms.len() == 1 {
        format!("(&{group_filter}{})", terms[0])
    } else {
        format!("(&{group_filter}(|{}))", terms.concat())
    }
}

/// AD's transitive membership: `(&<filter>(member:1.2.840.113556.1.4.1941:=dn))`.
pub(crate) fn in_chain_filter(group_filter: &str, user_dn: &str) -> String {
    format!(
        "(&{group_filter}(member:{IN_CHAIN}:={}))",
        ldap3::ldap_escape(user_dn)
    )
}

/// Normalized DN for comparisons (falls back to lowercase for unparseable ones).
fn norm(s: &str) -> String {
    dn::normalize(s).unwrap_or_else(|_| s.trim().to_lowercase())
}

fn same_dn(a: &str, b: &str) -> bool {
    norm(a) == norm(b)
}

/// `dn` equals `base` or is below it (both normalized).
fn is_under(dn: &str, base: &str) -> bool {
    dn == base || dn.ends_with(&format!(",{base}"))
}

/// `uid=o'brien,ou=users,...` → `o'brien`.
fn first_rdn_value(s: &str) -> Option<String> {
    let parsed = dn::parse(s).ok()?;
    let rdn = parsed.rdns().first()?;
    let ava = rdn.avas().first()?;
    ava.value().as_text().map(str::to_string)
}

/// TLS client configuration: the CA file's certificates, else the system
/// roots; host names and certificates always verified (rustls).
fn client_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, Error> {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let display = path.display().to_string();
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
                .map_err(|e| Error::CaFile {
                    path: display.clone(),
                    reason: e.to_string(),
                })?
                .collect::<Result<_, _>>()
                .map_err(|e| Error::CaFile {
                    path: display.clone(),
                    reason: e.to_string(),
                })?;
            if certs.is_empty() {
                return Err(Error::CaFile {
                    path: display,
                    reason: "no PEM certificate found".into(),
                });
            }
            for c in certs {
                roots.add(c).map_err(|e| Error::CaFile {
                    path: display.clone(),
                    reason: e.to_string(),
                })?;
            }
        }
        None => {
            let native = rustls_native_certs::load_native_certs();
            for c in native.certs {
                let _ = roots.add(c);
            }
            if roots.is_empty() {
                tracing::warn!("no system CA certificates found; set ldap.ca_file (OPT_X_TLS_CACERTFILE) to verify the directory");
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let cfg = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::Tls)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

/// The error and its causes on one line, for logs.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn member_filters_escape_dns() {
        assert_eq!(
            member_filter("(objectClass=groupOfNames)", "member", &["uid=a*b,dc=x"]),
            "(&(objectClass=groupOfNames)(member=uid=a\\2ab,dc=x))"
        );
        assert_eq!(
            member_filter("(objectClass=*)", "member", &["cn=a", "cn=x(y)"]),
            "(&(objectClass=*)(|(member=cn=a)(member=cn=x\\28y\\29)))"
        );
    }

    #[test]
    fn active_directory_nesting_uses_the_in_chain_rule() {
        assert_eq!(
            in_chain_filter("(objectClass=group)", "CN=Jo,DC=ad"),
            "(&(objectClass=group)(member:1.2.840.113556.1.4.1941:=CN=Jo,DC=ad))"
        );
    }

    #[test]
    fn group_base_containment_is_by_normalized_dn() {
        let base = norm("OU=Groups, DC=Example,DC=com");
        assert!(is_under(&norm("cn=a,ou=groups,dc=example,dc=com"), &base));
        assert!(is_under(&base, &base));
        assert!(!is_under(&norm("cn=a,ou=xgroups,dc=example,dc=com"), &base));
    }

    #[test]
    fn first_rdn_value_is_unescaped() {
        assert_eq!(
            first_rdn_value("uid=a\\2Cb,ou=u,dc=x").as_deref(),
            Some("a,b")
        );
        assert_eq!(
            first_rdn_value("uid=o'brien,dc=x").as_deref(),
            Some("o'brien")
        );
    }

    #[test]
    fn every_documented_group_type_parses() {
        for v in [
            "member",
            "groupOfNames",
            "uniqueMember",
            "groupOfUniqueNames",
            "memberUid",
            "posixGroup",
            "memberOf",
            "nested",
            "nestedUniqueMember",
            "nestedActiveDirectory",
            "activeDirectory",
            "ou",
            "cn",
        ] {
            assert!(GroupType::parse(v).is_some(), "{v}");
        }
        assert!(GroupType::parse("groupOfFoo").is_none());
    }
}
