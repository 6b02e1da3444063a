//! The serde shape of the configuration file, exactly as operators write it.
//!
//! Every default lives here (and is mirrored, commented, in
//! `config/authgate.example.toml`). Nothing here is validated: `validate.rs`
//! turns this into typed values and reports every problem with its key and
//! source. Unknown keys are refused (`deny_unknown_fields`) so a typo is a
//! start-up error, not a silently ignored setting.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::secret::Secret;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Raw {
    pub server: Server,
    pub upstream: Upstream,
    pub log: Log,
    pub session: Session,
    pub identity: Identity,
    pub policy: Policy,
    pub ldap: Ldap,
    pub mapping: Mapping,
    pub saml: Saml,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Server {
    /// Address the proxy listens on.
    pub listen: String,
    /// The URL browsers (and the IdP) use to reach authgate.
    pub public_url: String,
    /// Prometheus listener; empty disables it. It also serves the session
    /// admin API (`authgate sessions`).
    pub metrics_listen: String,
    /// A file holding the bearer token of the session admin API on the
    /// metrics listener (>= 16 characters; surrounding whitespace ignored).
    /// Empty: the API answers loopback callers only; set: every caller,
    /// loopback included, must send `Authorization: Bearer TOKEN`.
    pub admin_token_file: String,
    /// Reserved prefix for authgate's own endpoints.
    pub prefix: String,
    /// CIDRs whose X-Forwarded-* values are trusted.
    pub trusted_proxies: Vec<String>,
    /// PEM certificate chain and key: both set turns TLS termination on.
    pub tls_cert: String,
    pub tls_key: String,
    /// Largest request head (request line + headers) accepted; larger gets 431.
    pub max_header_bytes: usize,
    /// Time allowed to send a complete request head (slowloris guard).
    pub header_read_timeout: String,
    /// Idle keep-alive connections are closed after this long.
    pub idle_timeout: String,
    /// In-flight requests get this long to finish on SIGTERM/SIGINT.
    pub shutdown_grace: String,
    /// Runtime worker threads; 0 = number of cores.
    pub workers: usize,
    /// Directory for settings saved from the SSO page (`sso.json`, the
    /// uploaded IdP metadata); empty = the page is read-only.
    pub state_dir: String,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            listen: "127.0.0.1:8080".into(),
            public_url: "http://127.0.0.1:8080".into(),
            metrics_listen: String::new(),
            admin_token_file: String::new(),
            prefix: "/_auth".into(),
            trusted_proxies: Vec::new(),
            tls_cert: String::new(),
            tls_key: String::new(),
            max_header_bytes: 64 * 1024,
            header_read_timeout: "10s".into(),
            idle_timeout: "75s".into(),
            shutdown_grace: "30s".into(),
            workers: 0,
            state_dir: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Upstream {
    pub url: String,
    /// Forward the browser's Host header unchanged (as oauth2-proxy does).
    pub pass_host_header: bool,
    pub connect_timeout: String,
    /// Time allowed for the upstream to send its response head.
    pub response_timeout: String,
    /// Idle pooled upstream connections are closed after this long.
    pub pool_idle_timeout: String,
    pub pool_max_idle: usize,
    /// Largest request body forwarded, in bytes; 0 = unlimited.
    pub max_body: u64,
    /// Where authgate tells the upstream about a person it keeps out
    /// (deactivated at sign-in or refresh, not activated): a bodiless POST
    /// with a signed assertion of that person. Empty = never. The Label
    /// Studio integration listens on "/_auth/upstream-sync".
    pub state_sync_path: String,
}

impl Default for Upstream {
    fn default() -> Self {
        Upstream {
            url: "http://127.0.0.1:8081".into(),
            pass_host_header: true,
            connect_timeout: "5s".into(),
            response_timeout: "60s".into(),
            pool_idle_timeout: "60s".into(),
            pool_max_idle: 256,
            max_body: 0,
            state_sync_path: String::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Log {
    /// "pretty" or "json".
    pub format: String,
    /// A tracing filter such as "info" or "authgate=debug,info".
    pub level: String,
    pub access_log: bool,
    /// Audit events (logins, refusals, policy denials) as JSON lines.
    pub audit: bool,
}

impl Default for Log {
    fn default() -> Self {
        Log {
            format: "pretty".into(),
            level: "info".into(),
            access_log: true,
            audit: true,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Session {
    /// Session keys given inline (each >= 32 bytes); the first encrypts.
    pub secret: Vec<Secret<String>>,
    /// A file with one key per line (>= 32 bytes each); the first encrypts.
    pub secret_file: String,
    pub cookie_name: String,
    /// Absolute lifetime of a session.
    pub ttl: String,
    /// A session unused for this long ends.
    pub idle_timeout: String,
    /// "memory" (embedded default) or "redis" (shared by replicas).
    pub store: String,
    /// `redis://[user:password@]host:port/db` or `rediss://` (TLS); with
    /// `session.store = "redis"`. Redacted in check-config (it may hold a
    /// password).
    pub redis_url: Secret<String>,
    /// Overrides the password in `redis_url`.
    pub redis_password: Secret<String>,
    /// Timeout of every Redis call (and of connecting).
    pub redis_timeout: String,
    /// Prefix of every key authgate writes (several deployments can share
    /// one Redis).
    pub redis_prefix: String,
    /// PEM CA certificate(s) that verify `rediss://` servers instead of the
    /// system roots.
    pub redis_ca_file: String,
    /// Redis Sentinel: the master's name (as in `sentinel monitor NAME`);
    /// with `redis_sentinel_urls`, instead of `redis_url`.
    pub redis_sentinel_master: String,
    /// `redis://[:password@]host:26379` (or `rediss://`) of each sentinel.
    pub redis_sentinel_urls: Vec<Secret<String>>,
    /// Overrides the sentinels' password given in their URLs.
    pub redis_sentinel_password: Secret<String>,
    /// Redis Cluster: `redis://[user:password@]host:port` (or `rediss://`)
    /// of some of its nodes, instead of `redis_url`.
    pub redis_cluster_urls: Vec<Secret<String>>,
}

impl Default for Session {
    fn default() -> Self {
        Session {
            secret: Vec::new(),
            secret_file: String::new(),
            cookie_name: "authgate".into(),
            ttl: "12h".into(),
            idle_timeout: "1h".into(),
            store: "memory".into(),
            redis_url: Secret::default(),
            redis_password: Secret::default(),
            redis_timeout: "1s".into(),
            redis_prefix: "authgate:".into(),
            redis_ca_file: String::new(),
            redis_sentinel_master: String::new(),
            redis_sentinel_urls: Vec::new(),
            redis_sentinel_password: Secret::default(),
            redis_cluster_urls: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Identity {
    /// PEM private key written by `authgate keygen`.
    pub signing_key: String,
    /// ES256 (default), EdDSA or RS256; must match the key.
    pub algorithm: String,
    /// PEM public or private keys still published in the JWKS.
    pub previous_keys: Vec<String>,
    pub audience: String,
    /// Header carrying the signed identity assertion.
    pub header: String,
    /// Lifetime of each identity JWT.
    pub ttl: String,
    /// Put every group in the claims, not only the ones a mapping mentions.
    pub all_groups: bool,
    /// Send the plain X-Forwarded-* identity headers too.
    pub plain_headers: bool,
    pub headers: PlainHeaders,
}

impl Default for Identity {
    fn default() -> Self {
        Identity {
            signing_key: String::new(),
            algorithm: "ES256".into(),
            previous_keys: Vec::new(),
            audience: "authgate".into(),
            header: "X-Identity-Assertion".into(),
            ttl: "60s".into(),
            all_groups: false,
            plain_headers: true,
            headers: PlainHeaders::default(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PlainHeaders {
    pub user: String,
    pub email: String,
    pub preferred_username: String,
    pub groups: String,
    pub role: String,
}

impl Default for PlainHeaders {
    fn default() -> Self {
        PlainHeaders {
            user: "X-Forwarded-User".into(),
            email: "X-Forwarded-Email".into(),
            preferred_username: "X-Forwarded-Preferred-Username".into(),
            groups: "X-Forwarded-Groups".into(),
            role: "X-Forwarded-Role".into(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// Path prefixes forwarded without a session (and without identity).
    pub public_paths: Vec<String>,
    /// Let requests with the upstream's own API token through without a session.
    pub allow_upstream_tokens: bool,
    pub manual_role_management: bool,
    pub manual_workspace_management: bool,
    pub manual_project_member_management: bool,
    pub disable_signup_without_link: bool,
    /// Route table file; empty = the embedded Label Studio table.
    pub routes_file: String,
    /// Refuse a signed-in person whose organization role is below what the role table says a
    /// route needs. Unset: on when `manual_role_management = false` (the directory owns roles).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enforce_roles: Option<bool>,
    /// Role table file; empty = the embedded Label Studio role table.
    pub role_routes_file: String,
    /// Decisions for the route rows whose action is "policy" or "intercept",
    /// keyed by the row's governed_by/family switch name (see the routes file).
    pub switches: BTreeMap<String, bool>,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            public_paths: Vec::new(),
            allow_upstream_tokens: false,
            manual_role_management: true,
            manual_workspace_management: true,
            manual_project_member_management: true,
            disable_signup_without_link: false,
            routes_file: String::new(),
            enforce_roles: None,
            role_routes_file: String::new(),
            switches: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ldap {
    pub enabled: bool,
    /// One URI, or several separated by spaces (or commas) as OpenLDAP and
    /// python-ldap accept them: tried in order, for failover.
    pub server_uri: String,
    pub bind_dn: String,
    pub bind_password: Secret<String>,
    pub start_tls: bool,
    /// e.g. `uid=%(user)s,ou=Users,dc=example,dc=com`; empty = search mode.
    pub user_dn_template: String,
    pub user_search_bases: Vec<String>,
    pub use_username_for_login: bool,
    /// "email" or "username".
    pub user_query_field: String,
    pub attr_first_name: String,
    pub attr_last_name: String,
    pub attr_email: String,
    pub attr_username: String,
    pub group_search_base_dn: String,
    pub group_search_filter: String,
    pub group_type: String,
    pub organization_owner_email: String,
    /// CA bundle for ldaps/StartTLS (OPT_X_TLS_CACERTFILE).
    pub ca_file: String,
    /// OPT_X_TLS_REQUIRE_CERT: "demand" (default), "hard" and "try" verify;
    /// "allow" and "never" do not (see `validate::RequireCert`).
    pub require_cert: String,
    /// Timeout of every LDAP operation.
    pub timeout: String,
    /// Time allowed to connect to one server (TCP and TLS) before the next
    /// of `server_uri` is tried; never more than `timeout` in all.
    pub connect_timeout: String,
    /// How long a server that failed to connect is tried only after the others.
    pub failover_backoff: String,
    /// Signed-in LDAP users have their groups re-read this often.
    pub refresh_interval: String,
    /// Service-account connections kept open for reuse.
    pub pool_size: usize,
    /// Nested group types: how many levels of groups-in-groups are followed.
    pub max_group_depth: usize,
    /// Failed logins allowed per username within `throttle_window`.
    pub max_failures: u32,
    /// Failed logins allowed per client address within `throttle_window`.
    pub max_failures_per_client: u32,
    /// Sliding window of the login throttle.
    pub throttle_window: String,
}

impl Default for Ldap {
    fn default() -> Self {
        Ldap {
            enabled: false,
            server_uri: String::new(),
            bind_dn: String::new(),
            bind_password: Secret::default(),
            start_tls: false,
            user_dn_template: String::new(),
            user_search_bases: Vec::new(),
            use_username_for_login: false,
            user_query_field: "email".into(),
            attr_first_name: "firstName".into(),
            attr_last_name: "lastName".into(),
            attr_email: "mail".into(),
            attr_username: "sAMAccountName".into(),
            group_search_base_dn: String::new(),
            group_search_filter: "(objectClass=groupOfNames)".into(),
            group_type: "member".into(),
            organization_owner_email: String::new(),
            ca_file: String::new(),
            require_cert: "demand".into(),
            timeout: "5s".into(),
            connect_timeout: "3s".into(),
            failover_backoff: "30s".into(),
            refresh_interval: "5m".into(),
            pool_size: 4,
            max_group_depth: 10,
            max_failures: 5,
            max_failures_per_client: 20,
            throttle_window: "5m".into(),
        }
    }
}

pub use crate::mapping::raw::{Mapping, ProjectRule};

/// `[saml]`: authgate as a SAML 2.0 Service Provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Saml {
    pub enabled: bool,
    /// The IdP's metadata XML, as a file...
    pub idp_metadata_file: String,
    /// ...or a URL fetched at start and every `metadata_refresh`
    /// (https; plain http only for loopback).
    pub idp_metadata_url: String,
    pub metadata_refresh: String,
    /// Time allowed for one metadata download.
    pub metadata_timeout: String,
    /// PEM certificate(s) that must have signed the IdP metadata (XML
    /// signature); empty = trust the metadata as fetched (TLS only).
    /// `[[saml.idps]]` without their own use this one.
    pub metadata_signing_cert: String,
    /// Our entityID (the Audience); empty = `{public_url}/_auth/saml/metadata`.
    pub entity_id: String,
    /// PEM key and self-signed certificate of the SP (`authgate keygen --saml`);
    /// the certificate is published in our metadata.
    pub sp_key: String,
    pub sp_cert: String,
    /// Certificates of earlier SP keys, still listed in our metadata during
    /// a rollover window (IdPs that cache our metadata keep trusting them).
    pub sp_previous_certs: Vec<String>,
    /// Private keys of earlier SP certificates: encrypted assertions made
    /// for them still decrypt during the rollover window.
    pub sp_previous_keys: Vec<String>,
    /// Refuse assertions that are not encrypted (needs `sp_key`).
    pub require_encrypted_assertions: bool,
    /// Accepted XML signature algorithms (rsa-sha1 is off unless listed).
    pub allowed_signature_algorithms: Vec<String>,
    /// Tolerated clock difference with the IdP.
    pub clock_skew: String,
    /// Accept responses the IdP sends without a request from us.
    pub allow_idp_initiated: bool,
    /// Attribute names (built-in aliases for Okta, OneLogin, Ping and
    /// Entra ID / AD FS claim URIs are tried after these).
    pub attr_email: String,
    pub attr_first_name: String,
    pub attr_last_name: String,
    pub attr_name: String,
    pub attr_username: String,
    pub attr_groups: String,
    pub builtin_attribute_aliases: bool,
    /// Only these email domains may sign in; empty = any.
    pub allowed_email_domains: Vec<String>,
    /// NameID format to ask for: "", "email", "persistent", "unspecified" or a URN.
    pub name_id_format: String,
    /// Sign AuthnRequests with `sp_key` (IdPs that require signed requests).
    pub sign_requests: bool,
    /// How AuthnRequests travel: "redirect" (query-signed) or "post"
    /// (an auto-submitted form, XML-signed).
    pub authn_request_binding: String,
    /// Ask the IdP to authenticate again even with a session there.
    pub force_authn: bool,
    /// AuthnContextClassRefs to ask for (short names such as
    /// "PasswordProtectedTransport", or full URIs); empty = none.
    pub requested_authn_context: Vec<String>,
    /// "exact", "minimum", "maximum" or "better".
    pub requested_authn_context_comparison: String,
    /// Button text of the IdP above (`idp_metadata_*`) when several are set.
    pub idp_name: String,
    /// More IdPs (`[[saml.idps]]`), each chosen by a button on the login
    /// page or `/_auth/saml/login?idp=ID`.
    pub idps: Vec<SamlIdp>,
}

/// One more IdP: its metadata, and optionally its own attribute names
/// (empty = those of `[saml]`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SamlIdp {
    /// Short id: letters, digits, `-` and `_` (`?idp=ID`).
    pub id: String,
    /// Button text; empty = the id.
    pub name: String,
    pub idp_metadata_file: String,
    pub idp_metadata_url: String,
    /// PEM certificate(s) that must have signed this IdP's metadata; empty
    /// = `saml.metadata_signing_cert`.
    pub metadata_signing_cert: String,
    pub attr_email: String,
    pub attr_first_name: String,
    pub attr_last_name: String,
    pub attr_name: String,
    pub attr_username: String,
    pub attr_groups: String,
}

impl Default for Saml {
    fn default() -> Self {
        Saml {
            enabled: false,
            idp_metadata_file: String::new(),
            idp_metadata_url: String::new(),
            metadata_refresh: "1h".into(),
            metadata_timeout: "10s".into(),
            metadata_signing_cert: String::new(),
            entity_id: String::new(),
            sp_key: String::new(),
            sp_cert: String::new(),
            sp_previous_certs: Vec::new(),
            sp_previous_keys: Vec::new(),
            require_encrypted_assertions: false,
            allowed_signature_algorithms: vec![
                "rsa-sha256".into(),
                "rsa-sha384".into(),
                "rsa-sha512".into(),
                "ecdsa-sha256".into(),
                "ecdsa-sha384".into(),
                "ecdsa-sha512".into(),
            ],
            clock_skew: "90s".into(),
            allow_idp_initiated: false,
            attr_email: "Email".into(),
            attr_first_name: "FirstName".into(),
            attr_last_name: "LastName".into(),
            attr_name: String::new(),
            attr_username: String::new(),
            attr_groups: "Groups".into(),
            builtin_attribute_aliases: true,
            sign_requests: false,
            authn_request_binding: "redirect".into(),
            force_authn: false,
            requested_authn_context: Vec::new(),
            requested_authn_context_comparison: "exact".into(),
            idp_name: String::new(),
            idps: Vec::new(),
            allowed_email_domains: Vec::new(),
            name_id_format: String::new(),
        }
    }
}
