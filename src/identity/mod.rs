//! What authgate asserts about a signed-in user, and how it is signed.
//!
//! Owns the [`Identity`] (the result of group mapping, built by the login
//! code), the signing keys ([`keys`]: generation for `authgate keygen`,
//! PEM loading, public JWKs and RFC 7638 thumbprints) and the identity JWT
//! ([`jwt`]: the `Signer` built once at start, the JWKS document and the
//! per-session token cache).
//!
//! Must not: know about HTTP requests or responses, configuration types,
//! SAML or LDAP, or print key material (errors name the problem, never the
//! bytes).

pub mod jwt;
pub mod keys;
pub mod settings;

pub use settings::{PlainHeaderNames, Settings};

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::role::Role;

/// How the user signed in; becomes the `amr` claim (`["saml"]` / `["ldap"]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Method {
    Saml,
    Ldap,
}

impl Method {
    /// The `amr` value (RFC 8176 style: a short lowercase method name).
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Saml => "saml",
            Method::Ldap => "ldap",
        }
    }
}

/// What we assert about a signed-in user (after group mapping). The role
/// is a [`Role`] (serialized in its claim spelling); workspaces and project
/// roles are plain strings, as the mapping resolved them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Identity {
    /// Stable id: SAML NameID or LDAP DN.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    /// Already filtered by the caller (only groups a mapping or policy
    /// mentions, unless `identity.all_groups`).
    pub groups: Vec<String>,
    /// `None` = no `role` claim at all. Stored (Redis) and asserted (JWT,
    /// role header) as [`Role::as_str`].
    pub role: Option<Role>,
    /// Workspace titles.
    pub workspaces: Vec<String>,
    /// Project -> `annotator|reviewer` (inherit already resolved).
    pub projects: BTreeMap<String, String>,
    pub method: Method,
    /// SAML SessionIndex, kept for Single Logout.
    pub session_index: Option<String>,
    /// The SAML IdP (`saml.idps` id) the session signed in with, for
    /// Single Logout; absent for LDAP and single-IdP sessions of old.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub saml_idp: Option<String>,
}

/// What the IdP or the directory said about a user, before mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// SAML NameID or LDAP DN.
    pub subject: String,
    pub email: Option<String>,
    pub name: Option<String>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    pub preferred_username: Option<String>,
    /// Every group, as the source spelled it (DNs or plain names).
    pub groups: Vec<String>,
    pub method: Method,
    pub session_index: Option<String>,
    pub saml_idp: Option<String>,
}

impl Principal {
    /// Applies the group mapping: role, workspaces, projects, and the
    /// `groups` claim kept to what some mapping mentions (unless
    /// `all_groups`), so headers stay far below common 8 KB limits.
    pub fn into_identity(self, mapping: &crate::mapping::Mapping, all_groups: bool) -> Identity {
        let resolved = mapping.resolve(self.email.as_deref(), &self.groups);
        let groups = if all_groups {
            self.groups
        } else {
            self.groups
                .into_iter()
                .filter(|g| mapping.mentions(g))
                .collect()
        };
        let name = self
            .name
            .or_else(|| match (&self.given_name, &self.family_name) {
                (Some(g), Some(f)) => Some(format!("{g} {f}")),
                (Some(n), None) | (None, Some(n)) => Some(n.clone()),
                (None, None) => None,
            });
        Identity {
            subject: self.subject,
            email: self.email,
            name,
            given_name: self.given_name,
            family_name: self.family_name,
            preferred_username: self.preferred_username,
            groups,
            role: resolved.role,
            workspaces: resolved.workspaces,
            projects: resolved.projects,
            method: self.method,
            session_index: self.session_index,
            saml_idp: self.saml_idp,
        }
    }
}

/// Errors of key handling and token signing. Messages say what is wrong and
/// what to do, and never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("unknown signing algorithm {0:?}: use ES256, EdDSA or RS256")]
    UnknownAlgorithm(String),
    #[error("the key file is not readable PEM: {0}")]
    PemUnreadable(&'static str),
    #[error("the key is encrypted; authgate needs an unencrypted PKCS#8 key (`authgate keygen` writes one)")]
    PemEncrypted,
    #[error("the PEM block {0:?} is not a supported key type (expected PRIVATE KEY, EC PRIVATE KEY, RSA PRIVATE KEY or PUBLIC KEY)")]
    PemUnsupported(String),
    #[error("the PEM holds a public key, but a private key is needed to sign")]
    PrivateKeyExpected,
    #[error("the key is {found}, but the configured algorithm is {expected} (change identity.algorithm or the key)")]
    WrongKeyType {
        expected: keys::Algorithm,
        found: &'static str,
    },
    #[error("the PEM holds no valid {0} key (unsupported curve, size or corrupt data)")]
    InvalidKey(&'static str),
    #[error("{0} key generation failed")]
    Generation(keys::Algorithm),
    #[error("the identity token lifetime must be at least one second")]
    InvalidTtl,
    #[error("signing the identity token failed")]
    Sign(#[source] jsonwebtoken::errors::Error),
    #[error("the signed identity token is not a valid header value")]
    HeaderValue(#[source] http::header::InvalidHeaderValue),
}

/// `N` bytes from the system CSPRNG.
///
/// AWS-LC's `RAND_bytes` aborts the process rather than return failure
/// (BoringSSL `rand.h`: "returns one"), so the error branch is unreachable.
pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    aws_lc_rs::rand::fill(&mut out).expect("AWS-LC RAND_bytes aborts instead of failing");
    out
}
