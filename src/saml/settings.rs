//! `[saml]` as the rest of authgate reads it (built by `config::saml`).

use std::path::PathBuf;
use std::time::Duration;

use super::SignatureAlgorithm;
use crate::secret::Secret;

/// Where the IdP metadata comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataSource {
    File(PathBuf),
    /// `http(s)://...`; plain http only for loopback hosts.
    Url(http::Uri),
}

impl std::fmt::Display for MetadataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataSource::File(p) => write!(f, "file {}", p.display()),
            MetadataSource::Url(u) => write!(f, "URL {u}"),
        }
    }
}

/// Attribute names looked up for each user property, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AttributeNames {
    pub email: Vec<String>,
    pub first_name: Vec<String>,
    pub last_name: Vec<String>,
    pub name: Vec<String>,
    pub username: Vec<String>,
    pub groups: Vec<String>,
}

/// The certificates that must have signed an IdP's metadata (its XML
/// signature), and the configuration key that names them (for errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetadataTrust {
    pub key: String,
    /// DER, one per certificate of the PEM file (several: a rollover).
    pub certs: Vec<Vec<u8>>,
}

/// The id of the IdP configured in `[saml]` itself.
pub const DEFAULT_IDP: &str = "default";

/// One more IdP (`[[saml.idps]]`).
#[derive(Debug, Clone)]
pub struct IdpEntry {
    pub id: String,
    /// Button text on the login page.
    pub name: String,
    pub metadata: MetadataSource,
    pub metadata_text: Option<String>,
    /// `None`: the metadata is trusted as fetched (TLS only).
    pub metadata_trust: Option<MetadataTrust>,
    pub attributes: AttributeNames,
}

/// Typed `[saml]` (present only when `saml.enabled`). The IdP fields
/// (`idp_id`, `idp_name`, `metadata*`, `attributes`) are those of the
/// first IdP; `more_idps` are the others, sharing everything else.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `default` for the IdP of `saml.idp_metadata_*`, else the first
    /// `[[saml.idps]]` id.
    pub idp_id: String,
    /// Its button text.
    pub idp_name: String,
    pub more_idps: Vec<IdpEntry>,
    pub metadata: MetadataSource,
    /// The metadata file's text, read at validation (None for a URL).
    pub metadata_text: Option<String>,
    /// `saml.metadata_signing_cert`: who must have signed the first IdP's
    /// metadata; `None` = trusted as fetched (TLS only).
    pub metadata_trust: Option<MetadataTrust>,
    pub metadata_refresh: Duration,
    pub metadata_timeout: Duration,
    /// Our entityID (the Audience the IdP must put in assertions) and our
    /// endpoints under `{public_url}{prefix}`.
    pub urls: SpUrls,
    /// DER of the SP certificate advertised in our metadata, if configured.
    pub sp_cert_der: Option<Vec<u8>>,
    /// DER of `saml.sp_previous_certs` (rollover window).
    pub sp_previous_certs_der: Vec<Vec<u8>>,
    /// PEM of the SP private key (signs requests, decrypts assertions; never logged).
    pub sp_key_pem: Option<Secret<Vec<u8>>>,
    /// PEM of `saml.sp_previous_keys` (still decrypt during a rollover).
    pub sp_previous_keys_pem: Vec<Secret<Vec<u8>>>,
    /// Refuse assertions that are not encrypted.
    pub require_encrypted_assertions: bool,
    pub allowed_signature_algorithms: Vec<SignatureAlgorithm>,
    pub clock_skew: Duration,
    pub allow_idp_initiated: bool,
    pub attributes: AttributeNames,
    /// Lowercased, without a leading `@`; empty = any domain.
    pub allowed_email_domains: Vec<String>,
    /// NameIDPolicy Format to request; None = let the IdP choose.
    pub name_id_format: Option<String>,
    /// Sign AuthnRequests (needs `sp_key_pem`).
    pub sign_requests: bool,
    /// Send AuthnRequests by HTTP-POST (else HTTP-Redirect).
    pub post_requests: bool,
    pub force_authn: bool,
    /// AuthnContextClassRef URIs to request; empty = none.
    pub requested_authn_context: Vec<String>,
    /// `exact`, `minimum`, `maximum` or `better`.
    pub authn_context_comparison: String,
}

/// Built-in attribute names (after the configured one) per property: Okta,
/// OneLogin, Ping, Entra ID / AD FS claim URIs, and the LDAP/eduPerson OIDs
/// (SAML V2.0 X.500/LDAP Attribute Profile).
pub mod aliases {
    pub const EMAIL: &[&str] = &[
        "Email",
        "email",
        "mail",
        "emailAddress",
        "EmailAddress",
        "User.email",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
        "urn:oid:0.9.2342.19200300.100.1.3",
        "urn:oid:1.2.840.113549.1.9.1",
    ];
    pub const FIRST_NAME: &[&str] = &[
        "FirstName",
        "firstName",
        "givenName",
        "given_name",
        "User.FirstName",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/givenname",
        "urn:oid:2.5.4.42",
    ];
    pub const LAST_NAME: &[&str] = &[
        "LastName",
        "lastName",
        "sn",
        "surname",
        "family_name",
        "User.LastName",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/surname",
        "urn:oid:2.5.4.4",
    ];
    pub const NAME: &[&str] = &[
        "displayName",
        "DisplayName",
        "http://schemas.microsoft.com/identity/claims/displayname",
        "urn:oid:2.16.840.1.113730.3.1.241",
    ];
    pub const USERNAME: &[&str] = &[
        "username",
        "Username",
        "uid",
        "User.Username",
        "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
        "urn:oid:0.9.2342.19200300.100.1.1",
    ];
    pub const GROUPS: &[&str] = &[
        "Groups",
        "groups",
        "memberOf",
        "isMemberOf",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/groups",
        "http://schemas.microsoft.com/ws/2008/06/identity/claims/role",
        "http://schemas.xmlsoap.org/claims/Group",
        "urn:oid:1.3.6.1.4.1.5923.1.5.1.1",
        "urn:oid:1.2.840.113556.1.2.102",
    ];
}

/// The SP's own URLs, under `{public_url}{prefix}`: what the IdP is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpUrls {
    /// `saml.entity_id`, else the metadata URL.
    pub entity_id: String,
    /// `{public_url}{prefix}/saml/acs`
    pub acs_url: String,
    /// `{public_url}{prefix}/saml/login`
    pub login_url: String,
    /// `{public_url}{prefix}/saml/metadata`
    pub metadata_url: String,
    /// `{public_url}{prefix}/logout`
    pub logout_url: String,
    /// Our SingleLogoutService (`{public_url}{prefix}/saml/slo`).
    pub slo_url: String,
}

/// The SP's URLs for `public_url` and `prefix`; `entity_id` is
/// `saml.entity_id` as configured (blank: the metadata URL).
pub fn sp_urls(public_url: &str, prefix: &str, entity_id: &str) -> SpUrls {
    let base = format!("{public_url}{prefix}");
    SpUrls {
        entity_id: match entity_id.trim() {
            "" => format!("{base}/saml/metadata"),
            e => e.to_string(),
        },
        acs_url: format!("{base}/saml/acs"),
        login_url: format!("{base}/saml/login"),
        metadata_url: format!("{base}/saml/metadata"),
        logout_url: format!("{base}/logout"),
        slo_url: format!("{base}/saml/slo"),
    }
}
