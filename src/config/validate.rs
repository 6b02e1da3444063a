//! Raw configuration → typed `Config`, with every problem collected.
//!
//! Addresses, URLs, durations, header names, key files, the group mapping and
//! the route table are all parsed here, once, so `check-config` and `serve`
//! fail the same way and the request path never parses a setting. Each
//! problem names its key and the source of the value (see `Origins`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::header::HeaderName;
use http::uri::Authority;
use ipnet::IpNet;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::raw::{self, Raw};
use super::{Errors, Origins, Problem, Secret};
use crate::identity::keys::Algorithm;
use crate::identity::{PlainHeaderNames, Settings as Identity};
use crate::ldap::{GroupType, QueryField, RequireCert, Settings as Ldap};
use crate::mapping::Mapping;
use crate::policy::Settings as Policy;
use crate::policy::{RoleTable, RouteTable};
use crate::session::{RedisSettings as RedisStore, Settings as Session, StoreKind as Store};
use crate::telemetry::{LogFormat, Settings as Log};
use crate::upstream::Settings as Upstream;

/// The whole typed configuration.
#[derive(Debug)]
pub struct Config {
    pub server: Server,
    pub upstream: Upstream,
    pub log: Log,
    pub session: Session,
    pub identity: Identity,
    pub policy: Policy,
    pub ldap: Ldap,
    pub mapping: Mapping,
    /// `[saml]`, present when `saml.enabled`.
    pub saml: Option<crate::saml::Settings>,
    /// What was loaded, for `check-config` (secrets print redacted).
    pub raw: Raw,
    /// Things worth a warning at start (e.g. TLS verification disabled).
    pub warnings: Vec<String>,
    /// Where each value came from, for errors found after loading (e.g. by
    /// `App::build`).
    pub origins: Origins,
}

impl Config {
    /// Where the value of `key` came from: `file.toml:12`,
    /// `environment variable AUTHGATE_X`, `variable X at lse.env:3`, `default`.
    pub fn source_of(&self, key: &str) -> String {
        self.origins.of(key)
    }

    /// What some settings mean once combined, one line each, for
    /// `check-config` (printed as TOML comments under the configuration).
    pub fn in_effect(&self) -> Vec<String> {
        let mut out = Vec::new();
        let l = &self.ldap;
        if l.enabled {
            let tls = l
                .server_uris
                .iter()
                .any(|u| u.starts_with("ldaps://") || l.start_tls);
            let mode = l.require_cert.as_str();
            let source = self.origins.of("ldap.require_cert");
            out.push(match (tls, l.require_cert.verifies()) {
                (true, true) => format!(
                    "ldap TLS certificate: verified (ldap.require_cert = {mode}, from {source}); a bad certificate ends the connection before any bind"
                ),
                (true, false) => format!(
                    "ldap TLS certificate: NOT verified (ldap.require_cert = {mode}, from {source})"
                ),
                (false, _) => format!(
                    "ldap TLS: none (ldap:// without ldap.start_tls), so ldap.require_cert = {mode} has nothing to verify"
                ),
            });
        }
        if let Some(addr) = self.server.metrics_listen {
            out.push(match self.server.admin_token {
                None => format!("session admin API (authgate sessions): on {addr}, loopback callers only (no server.admin_token_file)"),
                Some(_) => format!("session admin API (authgate sessions): on {addr}, every caller needs the bearer token of server.admin_token_file"),
            });
        }
        let p = &self.policy;
        out.push(format!(
            "organization roles: {} (policy.enforce_roles = {}, from {}; role table {}, {} routes)",
            if p.enforce_roles {
                "enforced at the proxy"
            } else {
                "not enforced at the proxy"
            },
            p.enforce_roles,
            if self.raw.policy.enforce_roles.is_none() {
                format!(
                    "the default: on when policy.manual_role_management = false, which is {}",
                    p.manual_role_management
                )
            } else {
                self.origins.of("policy.enforce_roles")
            },
            p.role_routes.source_name(),
            p.role_routes.len()
        ));
        out
    }
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    /// Without a trailing slash, e.g. `https://labels.example.com`.
    pub public_url: String,
    pub https: bool,
    pub metrics_listen: Option<SocketAddr>,
    /// The session admin API's bearer token (`server.admin_token_file`);
    /// `None`: loopback callers only.
    pub admin_token: Option<Secret<String>>,
    /// e.g. `/_auth`, without a trailing slash.
    pub prefix: String,
    pub trusted_proxies: Vec<IpNet>,
    pub tls: Option<TlsFiles>,
    pub max_header_bytes: usize,
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub workers: usize,
    /// Where the SSO page keeps its saved settings (`None`: read-only page).
    pub state_dir: Option<PathBuf>,
}

#[derive(Debug, Clone)]
pub struct TlsFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// Collects problems while fields are converted.
struct Check<'a> {
    origins: &'a Origins,
    problems: Vec<Problem>,
}

impl Check<'_> {
    fn fail(&mut self, key: &str, message: impl Into<String>) {
        self.problems.push(Problem {
            key: key.to_string(),
            source: self.origins.of(key),
            message: message.into(),
        });
    }

    fn duration(&mut self, key: &str, text: &str) -> Duration {
        match humantime::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => d,
            Ok(_) => {
                self.fail(key, "must be greater than zero");
                Duration::from_secs(1)
            }
            Err(e) => {
                self.fail(
                    key,
                    format!("invalid duration {text:?} ({e}); use e.g. \"30s\", \"5m\", \"12h\""),
                );
                Duration::from_secs(1)
            }
        }
    }

    fn addr(&mut self, key: &str, text: &str) -> Option<SocketAddr> {
        match text.trim().parse::<SocketAddr>() {
            Ok(a) => Some(a),
            Err(_) => {
                self.fail(
                    key,
                    format!(
                        "invalid address {text:?}; expected IP:PORT such as \"127.0.0.1:8080\""
                    ),
                );
                None
            }
        }
    }

    fn header(&mut self, key: &str, text: &str) -> HeaderName {
        match HeaderName::from_bytes(text.trim().as_bytes()) {
            Ok(h) => h,
            Err(_) => {
                self.fail(key, format!("invalid header name {text:?}"));
                HeaderName::from_static("x-invalid")
            }
        }
    }

    fn read(&mut self, key: &str, path: &str) -> Option<Vec<u8>> {
        match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) => {
                self.fail(key, format!("cannot read {path:?}: {e}"));
                None
            }
        }
    }

    /// Reads a PEM file that must hold at least one certificate.
    fn certificates(&mut self, key: &str, path: &str) {
        let Some(bytes) = self.read(key, path) else {
            return;
        };
        match CertificateDer::pem_slice_iter(&bytes).collect::<Result<Vec<_>, _>>() {
            Ok(certs) if !certs.is_empty() => {}
            Ok(_) => self.fail(
                key,
                format!("no PEM certificate (-----BEGIN CERTIFICATE-----) in {path:?}"),
            ),
            Err(e) => self.fail(key, format!("invalid PEM in {path:?}: {e}")),
        }
    }

    /// Reads a PEM file that must hold a private key.
    fn private_key(&mut self, key: &str, path: &str) {
        let Some(bytes) = self.read(key, path) else {
            return;
        };
        if let Err(e) = PrivateKeyDer::from_pem_slice(&bytes) {
            self.fail(key, format!("no usable PEM private key in {path:?}: {e}"));
        }
    }
}

/// One Redis URL: `redis://` or `rediss://`, parsed; the message never
/// repeats the URL (it may hold a password).
fn redis_url(c: &mut Check<'_>, key: &str, url: &str) -> Option<redis::ConnectionInfo> {
    let url = url.trim();
    if !(url.starts_with("redis://") || url.starts_with("rediss://")) {
        c.fail(key, "must start with redis:// or rediss:// (TLS)");
        return None;
    }
    match url.parse::<redis::ConnectionInfo>() {
        Ok(i) => Some(i),
        Err(e) => {
            c.fail(key, format!("not a valid Redis URL: {e}"));
            None
        }
    }
}

/// `session.store = "redis"`: exactly one of `redis_url`,
/// `redis_sentinel_master` (+ `redis_sentinel_urls`) and
/// `redis_cluster_urls`; the CA file; the passwords.
fn redis_target(c: &mut Check<'_>, ss: &raw::Session) -> Option<crate::session::redis::Target> {
    use crate::session::redis::{Target, Topology};
    let url = ss.redis_url.expose().trim();
    let master = ss.redis_sentinel_master.trim();
    let given = [
        !url.is_empty(),
        !master.is_empty() || !ss.redis_sentinel_urls.is_empty(),
        !ss.redis_cluster_urls.is_empty(),
    ];
    if given.iter().filter(|g| **g).count() > 1 {
        c.fail(
            "session.redis_url",
            "set only one of session.redis_url, session.redis_sentinel_master (with session.redis_sentinel_urls) and session.redis_cluster_urls",
        );
        return None;
    }
    for (key, pw) in [
        ("session.redis_password", ss.redis_password.expose()),
        (
            "session.redis_sentinel_password",
            ss.redis_sentinel_password.expose(),
        ),
    ] {
        if is_placeholder(pw.as_bytes()) {
            // The bundled Redis of the replicas overlay takes the same
            // Secret: applied unchanged, the session store would answer
            // anyone in the cluster who reads the manifest.
            c.fail(
                key,
                "the password is the shipped placeholder text; set a long random one in the Secret (both Redis and authgate read it)",
            );
        }
    }
    let password = Some(ss.redis_password.expose().clone()).filter(|p| !p.is_empty());
    let with_password = |mut i: redis::ConnectionInfo| {
        if let Some(p) = &password {
            i.redis.password = Some(p.clone());
        }
        i
    };
    let topology = if !url.is_empty() {
        Topology::Single(with_password(redis_url(c, "session.redis_url", url)?))
    } else if given[1] {
        if master.is_empty() {
            c.fail(
                "session.redis_sentinel_master",
                "required with session.redis_sentinel_urls (the name in the sentinels' `sentinel monitor NAME ...`)",
            );
        }
        if ss.redis_sentinel_urls.is_empty() {
            c.fail(
                "session.redis_sentinel_urls",
                "required with session.redis_sentinel_master (redis://host:26379 of each sentinel)",
            );
        }
        let sentinel_pw = ss.redis_sentinel_password.expose();
        let mut sentinels = Vec::new();
        for u in &ss.redis_sentinel_urls {
            let mut i = redis_url(c, "session.redis_sentinel_urls", u.expose())?;
            if !sentinel_pw.is_empty() {
                i.redis.password = Some(sentinel_pw.clone());
            }
            sentinels.push(i);
        }
        if master.is_empty() || sentinels.is_empty() {
            return None;
        }
        let tls: Vec<bool> = ss
            .redis_sentinel_urls
            .iter()
            .map(|u| u.expose().trim().starts_with("rediss://"))
            .collect();
        if tls.iter().any(|t| *t != tls[0]) {
            c.fail(
                "session.redis_sentinel_urls",
                "mix redis:// and rediss://; use one scheme for every sentinel (it is also used for the master)",
            );
            return None;
        }
        Topology::Sentinel {
            master: master.to_string(),
            sentinels,
            password,
            tls: tls[0],
        }
    } else if given[2] {
        let mut nodes = Vec::new();
        for u in &ss.redis_cluster_urls {
            nodes.push(with_password(redis_url(
                c,
                "session.redis_cluster_urls",
                u.expose(),
            )?));
        }
        Topology::Cluster(nodes)
    } else {
        c.fail(
            "session.redis_url",
            "required with session.store = \"redis\" (redis://host:6379 or rediss://host:6380 for TLS; or session.redis_sentinel_master + session.redis_sentinel_urls, or session.redis_cluster_urls)",
        );
        return None;
    };
    let ca_path = ss.redis_ca_file.trim();
    let ca = if ca_path.is_empty() {
        None
    } else {
        c.certificates("session.redis_ca_file", ca_path);
        c.read("session.redis_ca_file", ca_path)
    };
    Some(Target { topology, ca })
}

/// The shortest admin API token accepted.
const ADMIN_TOKEN_MIN: usize = 16;

/// Converts the whole configuration, one section at a time (each
/// section's function below), collecting every problem with its key.
/// Reads the files it names (keys, certificates, route tables) and writes
/// nothing.
pub fn validate(raw: Raw, origins: Origins) -> Result<Config, Errors> {
    let mut c = Check {
        origins: &origins,
        problems: Vec::new(),
    };
    let mut warnings = Vec::new();
    let server = server(&mut c, &raw.server);
    let upstream = upstream(&mut c, &raw.upstream);
    let log = log(&mut c, &raw.log);
    let session = session(&mut c, &raw.session);
    let identity = identity(&mut c, &raw.identity);
    let ldap = ldap(&mut c, &raw.ldap, &mut warnings);
    let mapping = mapping(&mut c, &raw, ldap.organization_owner_email.clone());
    let policy = policy(&mut c, &raw, &mut warnings);
    warnings.extend(ignored_while_disabled(&raw, &origins));
    let saml = super::saml::check(
        &raw.saml,
        &server.public_url,
        &server.prefix,
        &mut |k, m| c.fail(k, m),
    );

    if !c.problems.is_empty() {
        return Err(Errors(c.problems));
    }
    Ok(Config {
        server,
        upstream,
        log,
        session,
        identity,
        policy,
        ldap,
        mapping,
        saml,
        raw,
        warnings,
        origins,
    })
}

/// `[server]`.
fn server(c: &mut Check<'_>, s: &raw::Server) -> Server {
    let listen = c.addr("server.listen", &s.listen);
    let metrics_listen = if s.metrics_listen.trim().is_empty() {
        None
    } else {
        c.addr("server.metrics_listen", &s.metrics_listen)
    };
    let admin_token = match s.admin_token_file.trim() {
        "" => None,
        path => c.read("server.admin_token_file", path).and_then(|bytes| {
            match String::from_utf8(bytes) {
                Ok(t) if is_placeholder(t.as_bytes()) => {
                    c.fail(
                        "server.admin_token_file",
                        format!("{path:?} holds the shipped placeholder text, not a token; write a random one, e.g. `openssl rand -hex 32 > {path}`"),
                    );
                    None
                }
                Ok(t) if t.trim().len() >= ADMIN_TOKEN_MIN => Some(Secret::new(t.trim().to_string())),
                Ok(_) => {
                    c.fail(
                        "server.admin_token_file",
                        format!("{path:?} holds fewer than {ADMIN_TOKEN_MIN} characters; write a random token, e.g. `openssl rand -hex 32 > {path}`"),
                    );
                    None
                }
                Err(_) => {
                    c.fail("server.admin_token_file", format!("{path:?} is not UTF-8 text"));
                    None
                }
            }
        }),
    };
    let (public_url, https) = match s.public_url.trim().parse::<http::Uri>() {
        Ok(u) if u.authority().is_some() && matches!(u.scheme_str(), Some("http" | "https")) => {
            if u.path() != "/" && !u.path().is_empty() || u.query().is_some() {
                c.fail(
                    "server.public_url",
                    "must be scheme://host[:port] without a path or query",
                );
            }
            if u.authority().is_some_and(|a| a.as_str().contains('@')) {
                c.fail("server.public_url", "must not contain user:password@");
            }
            let https = u.scheme_str() == Some("https");
            (
                format!(
                    "{}://{}",
                    u.scheme_str().unwrap_or("http"),
                    u.authority().map(|a| a.as_str()).unwrap_or("")
                ),
                https,
            )
        }
        _ => {
            c.fail(
                "server.public_url",
                format!(
                    "invalid URL {:?}; expected e.g. \"https://labels.example.com\"",
                    s.public_url
                ),
            );
            (String::new(), false)
        }
    };
    let prefix = s.prefix.trim().trim_end_matches('/').to_string();
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains("//") || prefix.contains('.')
    {
        c.fail(
            "server.prefix",
            format!("must be a path such as \"/_auth\", found {:?}", s.prefix),
        );
    }
    let mut trusted_proxies = Vec::new();
    for (i, p) in s.trusted_proxies.iter().enumerate() {
        let p = p.trim();
        match p
            .parse::<IpNet>()
            .or_else(|_| p.parse::<std::net::IpAddr>().map(IpNet::from))
        {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => c.fail(
                &format!("server.trusted_proxies.{i}"),
                format!("invalid CIDR or IP {p:?}"),
            ),
        }
    }
    let tls = match (s.tls_cert.trim(), s.tls_key.trim()) {
        ("", "") => None,
        (cert, key) if !cert.is_empty() && !key.is_empty() => {
            c.certificates("server.tls_cert", cert);
            c.private_key("server.tls_key", key);
            Some(TlsFiles {
                cert: cert.into(),
                key: key.into(),
            })
        }
        _ => {
            c.fail(
                "server.tls_cert",
                "server.tls_cert and server.tls_key must be set together",
            );
            None
        }
    };
    if s.max_header_bytes < 8192 || s.max_header_bytes > 1024 * 1024 {
        c.fail(
            "server.max_header_bytes",
            "must be between 8192 and 1048576",
        );
    }
    let server = Server {
        listen: listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0))),
        public_url,
        https,
        metrics_listen,
        admin_token,
        prefix,
        trusted_proxies,
        tls,
        max_header_bytes: s.max_header_bytes,
        header_read_timeout: c.duration("server.header_read_timeout", &s.header_read_timeout),
        idle_timeout: c.duration("server.idle_timeout", &s.idle_timeout),
        shutdown_grace: c.duration("server.shutdown_grace", &s.shutdown_grace),
        workers: s.workers,
        state_dir: match s.state_dir.trim() {
            "" => None,
            // Only looked at: the directory is created (and its
            // writability probed) when serving starts, `App::bind`.
            dir => match std::fs::metadata(dir) {
                Ok(m) if !m.is_dir() => {
                    c.fail("server.state_dir", format!("{dir:?}: not a directory"));
                    None
                }
                Ok(m) if m.permissions().readonly() => {
                    c.fail("server.state_dir", format!("{dir:?}: not writable"));
                    None
                }
                _ => Some(PathBuf::from(dir)),
            },
        },
    };
    server
}

/// `[upstream]`.
fn upstream(c: &mut Check<'_>, u: &raw::Upstream) -> Upstream {
    let authority = match u.url.trim().parse::<http::Uri>() {
        Ok(uri) if uri.scheme_str() == Some("http") && uri.authority().is_some() => {
            if uri.path() != "/" && !uri.path().is_empty() {
                c.fail(
                    "upstream.url",
                    "must not have a path: requests keep their own path",
                );
            }
            // Credentials in the URL would be printed by check-config and
            // are never sent anyway: requests carry their own Authorization.
            if uri.authority().is_some_and(|a| a.as_str().contains('@')) {
                c.fail("upstream.url", "must not contain user:password@");
            }
            uri.authority().cloned()
        }
        Ok(uri) if uri.scheme_str() == Some("https") => {
            c.fail("upstream.url", "https upstreams are not supported yet; run the upstream on plain http on 127.0.0.1 or a private network");
            None
        }
        _ => {
            c.fail(
                "upstream.url",
                format!(
                    "invalid URL {:?}; expected e.g. \"http://127.0.0.1:8081\"",
                    u.url
                ),
            );
            None
        }
    };
    Upstream {
        authority: authority.unwrap_or_else(|| Authority::from_static("127.0.0.1:1")),
        pass_host_header: u.pass_host_header,
        connect_timeout: c.duration("upstream.connect_timeout", &u.connect_timeout),
        response_timeout: c.duration("upstream.response_timeout", &u.response_timeout),
        pool_idle_timeout: c.duration("upstream.pool_idle_timeout", &u.pool_idle_timeout),
        pool_max_idle: u.pool_max_idle,
        max_body: (u.max_body > 0).then_some(u.max_body),
        state_sync_path: match u.state_sync_path.trim() {
            "" => None,
            p => match p.parse::<http::uri::PathAndQuery>() {
                Ok(path) if p.starts_with('/') && !p.starts_with("//") => Some(path),
                _ => {
                    c.fail(
                        "upstream.state_sync_path",
                        format!("expected a path such as \"/_auth/upstream-sync\", found {p:?}"),
                    );
                    None
                }
            },
        },
    }
}

/// `[log]`.
fn log(c: &mut Check<'_>, l: &raw::Log) -> Log {
    let format = match l.format.trim() {
        "pretty" | "text" => LogFormat::Pretty,
        "json" => LogFormat::Json,
        other => {
            c.fail(
                "log.format",
                format!("expected \"pretty\" or \"json\", found {other:?}"),
            );
            LogFormat::Pretty
        }
    };
    if tracing_subscriber::EnvFilter::try_new(&l.level).is_err() {
        c.fail(
            "log.level",
            format!(
                "invalid filter {:?}; use e.g. \"info\" or \"authgate=debug,info\"",
                l.level
            ),
        );
    }
    Log {
        format,
        level: l.level.clone(),
        access_log: l.access_log,
        audit: l.audit,
    }
}

/// `[session]`.
fn session(c: &mut Check<'_>, ss: &raw::Session) -> Session {
    let mut secrets: Vec<Secret<Vec<u8>>> = ss
        .secret
        .iter()
        .map(|s| Secret::new(s.expose().trim().as_bytes().to_vec()))
        .collect();
    if !ss.secret_file.trim().is_empty() {
        if let Some(bytes) = c.read("session.secret_file", ss.secret_file.trim()) {
            secrets.extend(split_secret_file(bytes).into_iter().map(Secret::new));
        }
    }
    if secrets.is_empty() {
        c.fail("session.secret_file", "a session key is required: set session.secret_file (one key of >= 32 random bytes per line; `authgate keygen --session-secret PATH` writes one) or session.secret");
    }
    for (i, s) in secrets.iter().enumerate() {
        let key = if i < ss.secret.len() {
            "session.secret"
        } else {
            "session.secret_file"
        };
        if is_placeholder(s.expose()) {
            // Long enough to pass the length rule, and public.
            c.fail(
                key,
                format!(
                    "session key #{} is the shipped placeholder text, not a key: write one with `authgate keygen --session-secret PATH`",
                    i + 1
                ),
            );
        } else if s.expose().len() < 32 {
            c.fail(
                key,
                format!(
                    "session key #{} is {} bytes; at least 32 random bytes are required",
                    i + 1,
                    s.expose().len()
                ),
            );
        }
    }
    if let Err(e) = crate::session::cookie::CookieConfig::check_name(&ss.cookie_name) {
        c.fail("session.cookie_name", e.to_string());
    }
    let redis_timeout = c.duration("session.redis_timeout", &ss.redis_timeout);
    let store = match ss.store.trim() {
        "memory" => Store::Memory,
        "redis" => redis_target(c, ss)
            .map(|target| {
                Store::Redis(Box::new(RedisStore {
                    target: Secret::new(target),
                    timeout: redis_timeout,
                    prefix: ss.redis_prefix.clone(),
                }))
            })
            .unwrap_or(Store::Memory),
        other => {
            c.fail(
                "session.store",
                format!("unknown store {other:?}; supported: \"memory\", \"redis\""),
            );
            Store::Memory
        }
    };
    Session {
        store,
        secrets,
        cookie_name: ss.cookie_name.clone(),
        ttl: c.duration("session.ttl", &ss.ttl),
        idle_timeout: c.duration("session.idle_timeout", &ss.idle_timeout),
    }
}

/// `[identity]`.
fn identity(c: &mut Check<'_>, id: &raw::Identity) -> Identity {
    let algorithm = match Algorithm::parse(&id.algorithm) {
        Some(a) => a,
        None => {
            c.fail(
                "identity.algorithm",
                format!("expected ES256, EdDSA or RS256, found {:?}", id.algorithm),
            );
            Algorithm::ES256
        }
    };
    let signing_key = if id.signing_key.trim().is_empty() {
        c.fail("identity.signing_key", "required: the PEM private key that signs identity assertions (`authgate keygen PATH` writes one)");
        Vec::new()
    } else {
        c.read("identity.signing_key", id.signing_key.trim())
            .unwrap_or_default()
    };
    let mut previous_keys = Vec::new();
    for (i, p) in id.previous_keys.iter().enumerate() {
        if let Some(b) = c.read(&format!("identity.previous_keys.{i}"), p.trim()) {
            previous_keys.push(b);
        }
    }
    if id.audience.trim().is_empty() {
        c.fail("identity.audience", "must not be empty");
    }
    let identity = Identity {
        signing_key: Secret::new(signing_key),
        signing_key_path: id.signing_key.trim().into(),
        algorithm,
        previous_keys,
        audience: id.audience.trim().to_string(),
        header: c.header("identity.header", &id.header),
        ttl: c.duration("identity.ttl", &id.ttl),
        all_groups: id.all_groups,
        plain_headers: id.plain_headers,
        headers: PlainHeaderNames {
            user: c.header("identity.headers.user", &id.headers.user),
            email: c.header("identity.headers.email", &id.headers.email),
            preferred_username: c.header(
                "identity.headers.preferred_username",
                &id.headers.preferred_username,
            ),
            groups: c.header("identity.headers.groups", &id.headers.groups),
            role: c.header("identity.headers.role", &id.headers.role),
        },
    };
    if identity.ttl < Duration::from_secs(10) {
        c.fail(
            "identity.ttl",
            "must be at least 10s (tokens are re-signed at half their lifetime)",
        );
    }
    identity
}

/// `[ldap]` (most checks only while `ldap.enabled`: an env file may carry
/// the whole LSE block with LDAP off).
fn ldap(c: &mut Check<'_>, l: &raw::Ldap, warnings: &mut Vec<String>) -> Ldap {
    let user_query_field = match l.user_query_field.trim().to_ascii_lowercase().as_str() {
        "email" | "" => QueryField::Email,
        "username" => QueryField::Username,
        other => {
            c.fail(
                "ldap.user_query_field",
                format!("expected \"email\" or \"username\", found {other:?}"),
            );
            QueryField::Email
        }
    };
    let require_cert = RequireCert::parse(&l.require_cert).unwrap_or_else(|| {
        c.fail(
            "ldap.require_cert",
            format!(
                "expected demand, hard, try (certificate verified), allow or never (not verified), or OPT_X_TLS_* / 0-4 as python-ldap writes them; found {:?}",
                l.require_cert.trim()
            ),
        );
        RequireCert::Demand
    });
    // Checked only when LDAP is on, like the other LDAP settings.
    let group_kind = GroupType::parse(&l.group_type).unwrap_or_else(|| {
        if !l.enabled {
            return GroupType::MemberOf;
        }
        c.fail(
            "ldap.group_type",
            format!(
                "unknown group type {:?}; expected member (groupOfNames), uniqueMember (groupOfUniqueNames), memberUid (posixGroup), memberOf, nested, nestedUniqueMember, nestedActiveDirectory, or a group name attribute (ou, cn)",
                l.group_type
            ),
        );
        GroupType::MemberOf
    });
    if l.pool_size == 0 || l.pool_size > 64 {
        c.fail("ldap.pool_size", "must be between 1 and 64");
    }
    if l.max_group_depth == 0 || l.max_group_depth > 100 {
        c.fail("ldap.max_group_depth", "must be between 1 and 100");
    }
    if l.max_failures == 0 {
        c.fail("ldap.max_failures", "must be at least 1");
    }
    if l.max_failures_per_client == 0 {
        c.fail("ldap.max_failures_per_client", "must be at least 1");
    }
    let template = l.user_dn_template.trim();
    if !template.is_empty() && !template.contains("%(user)s") {
        c.fail(
            "ldap.user_dn_template",
            "must contain %(user)s (or be empty for search mode)",
        );
    }
    let server_uris = split_uris(&l.server_uri);
    if l.enabled {
        let uri = server_uris.join(" ");
        if server_uris.is_empty() {
            c.fail(
                "ldap.server_uri",
                "expected ldap://host[:port] or ldaps://host[:port] (several, separated by spaces, are tried in order), found \"\"",
            );
        }
        for u in &server_uris {
            if !valid_ldap_uri(u) {
                c.fail(
                    "ldap.server_uri",
                    format!("expected ldap://host[:port] or ldaps://host[:port] (several, separated by spaces, are tried in order), found {u:?}"),
                );
            }
        }
        let any_tls = server_uris
            .iter()
            .any(|u| u.starts_with("ldaps://") || l.start_tls);
        if template.is_empty() && l.user_search_bases.is_empty() {
            // Name where the (empty) template came from: that is what the
            // operator reads as "search mode".
            c.problems.push(Problem {
                key: "ldap.user_search_bases".into(),
                source: c.origins.of("ldap.user_dn_template"),
                message: "search mode (empty ldap.user_dn_template / AUTH_LDAP_USER_DN_TEMPLATE) needs at least one search base (ldap.user_search_bases / AUTH_LDAP_USER_SEARCH_BASES)".into(),
            });
        }
        if !require_cert.verifies() && any_tls {
            warnings.push(format!(
                "ldap.require_cert = {:?} ({}, from {}): the directory's TLS certificate is NOT verified, so whoever answers on {uri} receives every LDAP password; use \"demand\" (or \"try\") with ldap.ca_file",
                l.require_cert.trim(),
                require_cert.as_str(),
                c.origins.of("ldap.require_cert")
            ));
        }
        if !l.bind_dn.trim().is_empty() && l.bind_password.expose().is_empty() {
            c.fail(
                "ldap.bind_password",
                "ldap.bind_dn is set but the password is empty (an empty-password bind is anonymous); set AUTH_LDAP_BIND_PASSWORD",
            );
        } else if is_placeholder(l.bind_password.expose().as_bytes()) {
            c.fail(
                "ldap.bind_password",
                "the password is the shipped placeholder text; set the service account's password (AUTH_LDAP_BIND_PASSWORD)",
            );
        }
        if l.group_search_base_dn.trim().is_empty() && group_kind != GroupType::MemberOf {
            warnings.push("ldap.group_search_base_dn is empty: no groups are read, so every LDAP user gets mapping.default_role".into());
        }
        if server_uris.iter().any(|u| u.starts_with("ldap://")) && !l.start_tls {
            warnings.push("ldap.server_uri is ldap:// without start_tls: passwords cross the network in clear text".into());
        }
    }
    let ca_file = if l.ca_file.trim().is_empty() {
        None
    } else {
        // Checked only when LDAP is on: an env file may carry the whole LSE
        // block with LDAP switched off.
        if l.enabled {
            c.certificates("ldap.ca_file", l.ca_file.trim());
        }
        Some(PathBuf::from(l.ca_file.trim()))
    };
    let owner =
        Some(l.organization_owner_email.trim().to_ascii_lowercase()).filter(|s| !s.is_empty());
    let ldap = Ldap {
        enabled: l.enabled,
        server_uri: l.server_uri.trim().to_string(),
        server_uris,
        bind_dn: l.bind_dn.trim().to_string(),
        bind_password: l.bind_password.clone(),
        start_tls: l.start_tls,
        user_dn_template: (!template.is_empty()).then(|| template.to_string()),
        user_search_bases: l
            .user_search_bases
            .iter()
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect(),
        use_username_for_login: l.use_username_for_login,
        user_query_field,
        attr_first_name: l.attr_first_name.trim().to_string(),
        attr_last_name: l.attr_last_name.trim().to_string(),
        attr_email: l.attr_email.trim().to_string(),
        attr_username: l.attr_username.trim().to_string(),
        group_search_base_dn: l.group_search_base_dn.trim().to_string(),
        group_search_filter: l.group_search_filter.trim().to_string(),
        group_type: l.group_type.trim().to_string(),
        group_kind,
        organization_owner_email: owner,
        ca_file,
        require_cert,
        timeout: c.duration("ldap.timeout", &l.timeout),
        connect_timeout: c.duration("ldap.connect_timeout", &l.connect_timeout),
        failover_backoff: c.duration("ldap.failover_backoff", &l.failover_backoff),
        refresh_interval: c.duration("ldap.refresh_interval", &l.refresh_interval),
        pool_size: l.pool_size,
        max_group_depth: l.max_group_depth,
        max_failures: l.max_failures,
        max_failures_per_client: l.max_failures_per_client,
        throttle_window: c.duration("ldap.throttle_window", &l.throttle_window),
    };
    ldap
}

/// `[mapping]`; the organization owner defaults to
/// `ldap.organization_owner_email` (`owner`).
fn mapping(c: &mut Check<'_>, raw: &Raw, owner: Option<String>) -> Mapping {
    let mut raw_mapping: raw::Mapping = raw.mapping.clone();
    let owner_from_ldap = raw_mapping.owner_email.trim().is_empty();
    if owner_from_ldap {
        raw_mapping.owner_email = owner.unwrap_or_default();
    }
    match Mapping::compile_all(&raw_mapping, !raw.policy.manual_role_management) {
        Ok(m) => m,
        Err(errors) => {
            for e in errors {
                let key = match &e {
                    crate::mapping::Error::InvalidEmail { .. } if owner_from_ldap => {
                        "ldap.organization_owner_email".to_string()
                    }
                    // Point at the offending role's own line.
                    crate::mapping::Error::UnknownRole { value, key } if key == "mapping.roles" => {
                        format!("mapping.roles.{value}")
                    }
                    e => e.key().to_string(),
                };
                c.fail(&key, e.to_string());
            }
            Mapping::default()
        }
    }
}

/// `[policy]`: public paths, the route and role tables, the switches.
fn policy(c: &mut Check<'_>, raw: &Raw, warnings: &mut Vec<String>) -> Policy {
    let p = &raw.policy;
    let mut public_paths = Vec::new();
    for (i, path) in p.public_paths.iter().enumerate() {
        match crate::request::path::normalize(path.trim()) {
            Ok(n) => public_paths.push(n),
            Err(e) => c.fail(
                &format!("policy.public_paths.{i}"),
                format!("{path:?}: {e}"),
            ),
        }
    }
    let routes = if p.routes_file.trim().is_empty() {
        RouteTable::embedded()
    } else {
        let path = p.routes_file.trim();
        match std::fs::read_to_string(path) {
            Ok(text) => match RouteTable::parse(&text, path) {
                Ok(t) => t,
                Err(e) => {
                    c.fail("policy.routes_file", e.to_string());
                    RouteTable::embedded()
                }
            },
            Err(e) => {
                c.fail("policy.routes_file", format!("cannot read {path:?}: {e}"));
                RouteTable::embedded()
            }
        }
    };
    let role_routes = if p.role_routes_file.trim().is_empty() {
        RoleTable::embedded()
    } else {
        let path = p.role_routes_file.trim();
        match std::fs::read_to_string(path) {
            Ok(text) => match RoleTable::parse(&text, path) {
                Ok(t) => t,
                Err(e) => {
                    c.fail("policy.role_routes_file", e.to_string());
                    RoleTable::embedded()
                }
            },
            Err(e) => {
                c.fail(
                    "policy.role_routes_file",
                    format!("cannot read {path:?}: {e}"),
                );
                RoleTable::embedded()
            }
        }
    };
    if let Err(e) = routes.check_overrides(&p.switches) {
        c.fail("policy.switches", e.to_string());
    }
    let enforce_roles = p.enforce_roles.unwrap_or(!p.manual_role_management);
    if enforce_roles && p.manual_role_management && raw.mapping.default_role.trim().is_empty() {
        warnings.push(
            "policy.enforce_roles = true while policy.manual_role_management = true: a person in no mapped group carries no role claim and is refused every route of the role table (set mapping.default_role, e.g. annotator, to give them one)".into(),
        );
    }
    Policy {
        public_paths,
        allow_upstream_tokens: p.allow_upstream_tokens,
        manual_role_management: p.manual_role_management,
        manual_workspace_management: p.manual_workspace_management,
        manual_project_member_management: p.manual_project_member_management,
        disable_signup_without_link: p.disable_signup_without_link,
        routes,
        switches: p.switches.clone(),
        enforce_roles,
        role_routes,
    }
}

/// Settings of a feature that is off do nothing: one warning per key set.
fn ignored_while_disabled(raw: &Raw, origins: &Origins) -> Vec<String> {
    let mut warnings = Vec::new();
    if !raw.ldap.enabled {
        warnings.extend(ignored_while_off(
            "ldap",
            &raw.ldap,
            &raw::Ldap::default(),
            origins,
            "LDAP",
            "ldap.enabled = true (AUTH_LDAP_ENABLED=1)",
            // Also the owner of SAML sign-ins (see [mapping] above).
            &["organization_owner_email"],
        ));
    }
    if !raw.saml.enabled {
        warnings.extend(ignored_while_off(
            "saml",
            &raw.saml,
            &raw::Saml::default(),
            origins,
            "SAML",
            if raw.server.state_dir.trim().is_empty() {
                "saml.enabled = true (AUTHGATE_SAML__ENABLED=true)"
            } else {
                // settings::overlay turns SAML on with metadata saved on the page.
                "saml.enabled = true (AUTHGATE_SAML__ENABLED=true) or save IdP metadata on the SSO settings page"
            },
            &[],
        ));
    }
    warnings
}

/// The URIs of `ldap.server_uri`: separated by spaces or commas, as
/// OpenLDAP's `ldap_initialize` and python-ldap read a list.
pub fn split_uris(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',')
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// `ldap://host[:port]` or `ldaps://host[:port]`; what follows a `/`
/// (RFC 4516's DN and query) is left to ldap3, which ignores it.
fn valid_ldap_uri(u: &str) -> bool {
    let Some(rest) = u
        .strip_prefix("ldap://")
        .or_else(|| u.strip_prefix("ldaps://"))
    else {
        return false;
    };
    let host = rest.split('/').next().unwrap_or_default();
    !host.is_empty() && !host.contains('@') && host.parse::<Authority>().is_ok()
}

/// One warning per key of the switched-off `section` that the file or the
/// environment sets to something other than its default (a secret counts
/// whenever it is set): it has no effect, which an operator who wrote it
/// does not expect. Keys equal to their default stay quiet, so a file that
/// mirrors the defaults (the shipped example) warns about nothing.
fn ignored_while_off<T: serde::Serialize>(
    section: &str,
    value: &T,
    default: &T,
    origins: &Origins,
    feature: &str,
    turn_on: &str,
    exempt: &[&str],
) -> Vec<String> {
    let (Ok(serde_json::Value::Object(now)), Ok(serde_json::Value::Object(def))) =
        (serde_json::to_value(value), serde_json::to_value(default))
    else {
        return Vec::new();
    };
    let redacted = serde_json::Value::String("[redacted]".into());
    let switch = format!("{section}.enabled");
    let off_from = origins
        .explicit(&switch)
        .map(|src| format!(", from {src}"))
        .unwrap_or_default();
    let mut out = Vec::new();
    for (field, v) in &now {
        if field == "enabled" || exempt.contains(&field.as_str()) {
            continue;
        }
        if def.get(field) == Some(v) && *v != redacted {
            continue;
        }
        let key = format!("{section}.{field}");
        if let Some(src) = origins.explicit(&key) {
            out.push(format!(
                "{key} is set (from {src}) but {feature} is off ({switch} is false{off_from}), so it has no effect; set {turn_on} to use it, or remove it"
            ));
        }
    }
    out
}

/// The placeholder text the shipped manifests put where a secret goes
/// (`deploy/kubernetes/base/secret.yaml`: "REPLACE: ..."). Applied
/// unchanged it would be a public key that passes every length rule.
fn is_placeholder(secret: &[u8]) -> bool {
    secret.trim_ascii_start().starts_with(b"REPLACE")
}

/// A secret file holds one key per line when it is text, or one binary key.
fn split_secret_file(bytes: Vec<u8>) -> Vec<Vec<u8>> {
    match String::from_utf8(bytes) {
        Ok(text) => text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.as_bytes().to_vec())
            .collect(),
        Err(e) => vec![e.into_bytes()],
    }
}

#[cfg(test)]
mod tests {
    use super::RequireCert;

    #[test]
    fn require_cert_follows_openldap_tls_reqcert() {
        use RequireCert::*;
        // (written, parsed, verified): ldap.conf(5) TLS_REQCERT; python-ldap's
        // constants OPT_X_TLS_NEVER=0, HARD=1, DEMAND=2, ALLOW=3, TRY=4.
        let table: &[(&str, RequireCert, bool)] = &[
            ("", Demand, true),
            ("demand", Demand, true),
            ("DEMAND", Demand, true),
            ("OPT_X_TLS_DEMAND", Demand, true),
            ("ldap.OPT_X_TLS_DEMAND", Demand, true),
            ("2", Demand, true),
            ("hard", Hard, true),
            ("OPT_X_TLS_HARD", Hard, true),
            ("1", Hard, true),
            ("try", Try, true),
            (" Try ", Try, true),
            ("OPT_X_TLS_TRY", Try, true),
            ("ldap.OPT_X_TLS_TRY", Try, true),
            ("4", Try, true),
            ("allow", Allow, false),
            ("OPT_X_TLS_ALLOW", Allow, false),
            ("ldap.OPT_X_TLS_ALLOW", Allow, false),
            ("3", Allow, false),
            ("never", Never, false),
            ("OPT_X_TLS_NEVER", Never, false),
            ("ldap.OPT_X_TLS_NEVER", Never, false),
            ("0", Never, false),
        ];
        for (text, mode, verifies) in table {
            let got = RequireCert::parse(text);
            assert_eq!(got, Some(*mode), "{text:?}");
            assert_eq!(mode.verifies(), *verifies, "{text:?}");
        }
        for bad in [
            "5",
            "-1",
            "maybe",
            "OPT_X_TLS_",
            "ldap.",
            "tryhard",
            "OPT_X_TLS_REQUIRE_CERT",
        ] {
            assert_eq!(RequireCert::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn require_cert_names_round_trip() {
        for m in [
            RequireCert::Never,
            RequireCert::Hard,
            RequireCert::Demand,
            RequireCert::Allow,
            RequireCert::Try,
        ] {
            assert_eq!(RequireCert::parse(m.as_str()), Some(m));
        }
    }
}
