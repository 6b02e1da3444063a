//! Builds the shared state from a typed `Config` and runs the listeners.
//!
//! `App::build` does everything that can fail because of configuration
//! (keys, route table, TLS files) so `check-config` and `serve` fail alike,
//! and binds nothing. `App::bind` opens the sockets (port 0 works: tests read
//! the real address back); `Bound::serve` runs until shutdown.

mod refresh;
pub mod sso;

pub use refresh::maybe_refresh;

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};

use crate::config::Config;
use crate::error::Error;
use crate::identity::jwt::Signer;
use crate::identity::{Identity, Principal};
use crate::metrics::Metrics;
use crate::policy::Switches;
use crate::request::headers::Protected;
use crate::role::Role;
use crate::session::cookie::CookieConfig;
use crate::session::{self, HeaderNames, Keys, MemoryStore, Session, Store};
use crate::telemetry::{Audit, RequestIds};
use crate::upstream;

/// Everything a request handler needs, shared by all connections.
pub struct State {
    pub config: Config,
    pub upstream: upstream::Client,
    pub protected: Protected,
    /// Shared by every configuration generation (a reload keeps the counts).
    pub metrics: Arc<Metrics>,
    pub request_ids: RequestIds,
    /// `config.server.prefix`, shared with every request's context.
    pub prefix: Arc<str>,
    pub sessions: Arc<dyn Store>,
    pub keys: Keys,
    pub cookie: CookieConfig,
    pub signer: Signer,
    pub header_names: HeaderNames,
    pub switches: Switches,
    /// SAML SSO (IdP metadata, SP, replay cache); `None` when SAML is off.
    pub saml: Option<Arc<crate::saml::Sso>>,
    /// LDAP sign-in (directory, throttle); `None` when LDAP is off.
    pub ldap: Option<crate::ldap::login::LdapLogin>,
    /// The SSO page's saved settings (laid over `config`) and the
    /// configuration as loaded without them.
    pub sso: sso::Handle,
    /// The Redis connection of `session.store = "redis"`.
    pub redis: Option<Arc<session::Redis>>,
    /// Groups of recent sign-ins by email (the SSO page's explain box);
    /// kept across reloads.
    pub seen: Arc<crate::settings::seen::Seen>,
}

#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("identity.signing_key: {0}")]
    SigningKey(#[source] crate::identity::Error),
    #[error("session: {0}")]
    Session(#[source] crate::session::Error),
    #[error("server.tls_cert/tls_key: {0}")]
    Tls(#[source] crate::tls::Error),
    #[error("header names: {0}")]
    Headers(String),
    #[error("saml: {0}")]
    Saml(#[source] crate::saml::Error),
    #[error("ldap: {0}")]
    Ldap(#[source] crate::ldap::Error),
    #[error("session.redis_url: {0}")]
    Store(#[source] crate::session::StoreError),
}

use crate::clock::now_unix;

impl State {
    /// The state of `config` with the SSO page's saved settings (under
    /// `server.state_dir`) laid over it; when those do not build (say, a
    /// saved metadata URL is unreachable at start) the configuration as
    /// loaded is used and the page says why.
    pub fn new(config: Config) -> Result<State, BuildError> {
        let (overlaid, mut sso) = sso::apply(&config);
        if let Some(c) = overlaid {
            match State::build(c) {
                Ok(mut s) => {
                    s.sso = sso;
                    return Ok(s);
                }
                Err(e) => {
                    tracing::error!(error = %e, "saved SSO settings not applied; the configuration file's stay in force");
                    sso.applied = None;
                    sso.problem = Some(e.to_string());
                }
            }
        }
        let mut s = State::build(config)?;
        s.sso = sso;
        Ok(s)
    }

    fn build(config: Config) -> Result<State, BuildError> {
        let protected = Protected::new(protected_names(&config).iter().map(String::as_str))
            .map_err(|e| BuildError::Headers(e.to_string()))?;
        let id = &config.identity;
        let signer = Signer::new(
            id.signing_key.expose(),
            id.algorithm,
            &id.previous_keys,
            config.server.public_url.clone(),
            id.audience.clone(),
            id.ttl,
        )
        .map_err(BuildError::SigningKey)?;
        let secrets: Vec<Vec<u8>> = config
            .session
            .secrets
            .iter()
            .map(|s| s.expose().clone())
            .collect();
        let keys = Keys::from_secrets(&secrets).map_err(BuildError::Session)?;
        let cookie = CookieConfig::new(&config.session.cookie_name, config.server.https);
        let header_names = HeaderNames {
            user: id.headers.user.clone(),
            email: id.headers.email.clone(),
            preferred_username: id.headers.preferred_username.clone(),
            groups: id.headers.groups.clone(),
            role: id.headers.role.clone(),
        };
        let switches = State::new_switches(&config);
        let redis = match &config.session.store {
            crate::session::StoreKind::Memory => None,
            crate::session::StoreKind::Redis(r) => Some(Arc::new(
                session::Redis::connect(r.target.expose().clone(), r.timeout, &r.prefix)
                    .map_err(BuildError::Store)?,
            )),
        };
        let saml = match &config.saml {
            Some(s) => {
                let mut sso = crate::saml::Sso::new(s.clone()).map_err(BuildError::Saml)?;
                if let Some(r) = &redis {
                    sso.replay = Arc::new(crate::saml::RedisReplayCache::new(Arc::clone(r)));
                }
                Some(Arc::new(sso))
            }
            None => None,
        };
        let sessions: Arc<dyn Store> = match &redis {
            None => Arc::new(MemoryStore::new(config.session.idle_timeout)),
            Some(r) => Arc::new(session::RedisStore::new(
                Arc::clone(r),
                header_names.clone(),
                config.session.idle_timeout,
            )),
        };
        let ldap = crate::ldap::login::LdapLogin::new(
            &config.ldap,
            &config.session.cookie_name,
            config.server.https,
            redis.as_ref(),
        )
        .map_err(BuildError::Ldap)?;
        let metrics = Arc::new(Metrics::new());
        for p in saml.iter().flat_map(|s| s.providers()) {
            metrics.set_saml_metadata_stale(&p.id, p.stale(std::time::SystemTime::now()));
        }
        Ok(State {
            ldap,
            upstream: upstream::Client::new(&config.upstream),
            protected,
            metrics,
            request_ids: RequestIds::default(),
            prefix: Arc::from(config.server.prefix.as_str()),
            sessions,
            keys,
            cookie,
            signer,
            header_names,
            switches,
            saml,
            sso: sso::Handle::unsaved(&config),
            redis,
            seen: Arc::default(),
            config,
        })
    }

    /// The state for a reloaded configuration: built like [`State::new`]
    /// (so a bad configuration fails here, and the caller keeps `prev`),
    /// keeping what must survive a reload: the metrics, and with the
    /// in-memory store unchanged its sessions and SAML replay ids (with
    /// Redis they live there anyway). Blocking (reads files, may fetch IdP
    /// metadata): call it off the async workers.
    pub fn next(config: Config, prev: &State) -> Result<State, BuildError> {
        let mut s = State::new(config)?;
        s.metrics = Arc::clone(&prev.metrics);
        s.seen = Arc::clone(&prev.seen);
        let (a, b) = (&prev.config.session, &s.config.session);
        let same_memory = matches!(a.store, crate::session::StoreKind::Memory)
            && matches!(b.store, crate::session::StoreKind::Memory)
            && a.idle_timeout == b.idle_timeout
            && prev.header_names == s.header_names;
        if same_memory {
            s.sessions = Arc::clone(&prev.sessions);
            if let (Some(old), Some(new)) = (&prev.saml, s.saml.as_mut()) {
                if let Some(new) = Arc::get_mut(new) {
                    new.replay = Arc::clone(&old.replay);
                }
            }
        }
        Ok(s)
    }

    /// The policy switches configuration implies.
    pub fn new_switches(config: &Config) -> Switches {
        let p = &config.policy;
        // authgate owns sign-in whenever one of its login methods is on.
        let sso_on = config.ldap.enabled || config.saml.is_some();
        Switches {
            manual_role_management: p.manual_role_management,
            manual_workspace_management: p.manual_workspace_management,
            manual_project_member_management: p.manual_project_member_management,
            disable_signup_without_link: p.disable_signup_without_link,
            native_login_disabled: sso_on,
            app_sso_disabled: sso_on,
            overrides: p.switches.clone(),
        }
    }

    /// `path` is at or below one of `policy.public_paths`.
    pub fn is_public(&self, path: &str) -> bool {
        self.config.policy.public_paths.iter().any(|p| {
            if p.ends_with('/') {
                path.starts_with(p.as_str())
            } else {
                path == p
                    || path.starts_with(p.as_str()) && path.as_bytes().get(p.len()) == Some(&b'/')
            }
        })
    }

    /// The live session named by the request's cookie, if any.
    pub async fn load_session(&self, headers: &HeaderMap) -> Result<Option<Arc<Session>>, Error> {
        session::load(
            self.sessions.as_ref(),
            &self.keys,
            &self.cookie,
            headers,
            now_unix(),
            self.config.session.ttl,
        )
        .await
        .map_err(Error::SessionStore)
    }

    /// The session's identity JWT, re-signed only past half its lifetime.
    pub fn identity_token(&self, s: &Session) -> Result<HeaderValue, Error> {
        s.tokens
            .get(&self.signer, &s.identity, &s.id, now_unix())
            .map_err(Error::Identity)
    }

    /// The one function login code (LDAP, SAML) calls after a successful
    /// authentication: maps groups, refuses deactivated users (403 page and
    /// an audit event), starts the session. Returns the Set-Cookie value.
    pub async fn sign_in(
        &self,
        principal: Principal,
        client: std::net::IpAddr,
    ) -> Result<(Arc<Session>, HeaderValue), Error> {
        // The one route each login method signs in on (DESIGN.md, "Endpoints"): the form POST
        // of LDAP, the Assertion Consumer Service of SAML.
        let path = match principal.method {
            crate::identity::Method::Ldap => format!("{}/ldap/login", self.config.server.prefix),
            crate::identity::Method::Saml => format!("{}/saml/acs", self.config.server.prefix),
        };
        self.seen
            .record(principal.email.as_deref(), &principal.groups);
        let identity =
            principal.into_identity(&self.config.mapping, self.config.identity.all_groups);
        fn audit<'a>(
            event: &'static str,
            id: &'a Identity,
            path: &'a str,
            client: std::net::IpAddr,
            reason: &'a str,
        ) -> Audit<'a> {
            Audit::new(event)
                .subject(id.subject.as_str())
                .role(id.role.map(Role::as_str))
                .request("POST", path, client)
                .reason(reason)
        }
        if identity.role == Some(Role::Deactivated) {
            self.metrics.logins_failed.inc();
            audit("login_refused", &identity, &path, client, "deactivated").emit();
            self.sync_state(&identity, &session::new_session_id()).await;
            return Err(Error::Deactivated);
        }
        let pending = identity.role == Some(Role::NotActivated);
        let (session, cookie) = self.start_session(identity).await?;
        if pending {
            self.sync_state(&session.identity, &session.id).await;
        }
        self.metrics.logins_ok.inc();
        let id: &Identity = &session.identity;
        // The reason of a success is how the user proved who they are (the `amr` claim).
        audit("login_success", id, &path, client, id.method.as_str()).emit();
        Ok((session, cookie))
    }

    /// Tells the upstream about a person authgate keeps out (deactivated,
    /// not activated) when `upstream.state_sync_path` is set: a bodiless
    /// POST there carrying that person's signed assertion, so the upstream
    /// can mirror the state (the Label Studio integration marks the
    /// membership inactive). Never fails the sign-in: the outcome is logged.
    pub async fn sync_state(&self, identity: &Identity, sid: &str) {
        let Some(path) = self.config.upstream.state_sync_path.as_ref() else {
            return;
        };
        let signed = match self.signer.sign(identity, sid, now_unix()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "state sync: signing failed");
                return;
            }
        };
        let mut headers = HeaderMap::with_capacity(2);
        headers.insert(self.config.identity.header.clone(), signed.token);
        // The host browsers use: the upstream already accepts it (Host goes
        // upstream as the browser sent it).
        let public = &self.config.server.public_url;
        let host = public.split_once("://").map_or(public.as_str(), |(_, h)| h);
        if let Ok(host) = HeaderValue::from_str(host) {
            headers.insert(http::header::HOST, host);
        }
        let limit = self
            .config
            .upstream
            .connect_timeout
            .min(Duration::from_secs(5))
            + Duration::from_secs(5);
        let role = identity.role.map_or("", Role::as_str);
        match self.upstream.notify(path, headers, limit).await {
            Ok(status) if status.is_success() => {
                tracing::info!(subject = %identity.subject, role, %status, "state sync: upstream told")
            }
            Ok(status) => {
                tracing::warn!(subject = %identity.subject, role, %status, path = %path, "state sync: upstream refused")
            }
            Err(e) => {
                tracing::warn!(subject = %identity.subject, role, error = %e, "state sync: upstream unreachable")
            }
        }
    }

    /// Starts a session for a signed-in identity; returns it and the Set-Cookie value.
    /// Login code (LDAP, SAML) and tests call this.
    pub async fn start_session(
        &self,
        identity: Identity,
    ) -> Result<(Arc<Session>, HeaderValue), Error> {
        session::start(
            self.sessions.as_ref(),
            &self.keys,
            &self.cookie,
            identity,
            now_unix(),
            self.config.session.ttl,
            &self.header_names,
        )
        .await
        .map_err(Error::SessionStore)
    }
}

/// The configuration generation in force: each request takes the current
/// [`State`] once, at its start, so it runs wholly under the old or wholly
/// under the new configuration; a reload swaps it atomically.
pub struct Live {
    current: std::sync::RwLock<Arc<State>>,
}

impl Live {
    pub fn new(state: Arc<State>) -> Live {
        Live {
            current: std::sync::RwLock::new(state),
        }
    }

    /// The live handle shared, with the state in force told about it (the
    /// SSO page reloads through it).
    pub fn shared(state: Arc<State>) -> Arc<Live> {
        let live = Arc::new(Live::new(state));
        live.current().sso.attach(&live);
        live
    }

    pub fn current(&self) -> Arc<State> {
        Arc::clone(&self.current.read().unwrap_or_else(|p| p.into_inner()))
    }

    fn replace(&self, state: Arc<State>) {
        *self.current.write().unwrap_or_else(|p| p.into_inner()) = state;
    }

    /// Builds the state of `config` (see [`State::next`]) and puts it in
    /// force; on any error the running configuration stays and the error is
    /// returned. Listener settings (`server.listen`, `server.metrics_listen`,
    /// TLS files, worker count) need a restart.
    pub async fn reload(self: &Arc<Live>, config: Config) -> Result<(), BuildError> {
        let prev = self.current();
        let next = tokio::task::spawn_blocking(move || State::next(config, &prev))
            .await
            .map_err(|e| BuildError::Headers(format!("reload task failed: {e}")))??;
        next.sso.attach(self);
        self.replace(Arc::new(next));
        Ok(())
    }
}

/// The names authgate sets on forwarded requests; every inbound copy of
/// these (any case, `_` spelling) is removed first.
fn protected_names(state_cfg: &crate::config::Config) -> Vec<String> {
    let h = &state_cfg.identity.headers;
    let mut names: Vec<String> = vec![
        state_cfg.identity.header.as_str().to_string(),
        h.user.as_str().to_string(),
        h.email.as_str().to_string(),
        h.preferred_username.as_str().to_string(),
        h.groups.as_str().to_string(),
        h.role.as_str().to_string(),
        // The default names stay protected when others are configured: an
        // upstream still reading one of them must not be spoofable.
        "x-identity-assertion".into(),
        "x-forwarded-user".into(),
        "x-forwarded-email".into(),
        "x-forwarded-preferred-username".into(),
        "x-forwarded-groups".into(),
        "x-forwarded-role".into(),
        "x-forwarded-for".into(),
        "x-forwarded-proto".into(),
        "x-forwarded-host".into(),
        "x-real-ip".into(),
        "forwarded".into(),
        "x-request-id".into(),
        // Spellings other auth proxies use that upstreams are often told to trust.
        "x-auth-request-user".into(),
        "x-auth-request-email".into(),
        "x-auth-request-groups".into(),
        "x-auth-request-preferred-username".into(),
        "x-remote-user".into(),
        "remote-user".into(),
        "x-forwarded-access-token".into(),
        "x-pomerium-jwt-assertion".into(),
    ];
    names.sort();
    names.dedup();
    names
}
