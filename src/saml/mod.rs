//! SAML 2.0 Service Provider: IdP metadata, AuthnRequests, and the full
//! validation of a Response posted to the ACS.
//!
//! Owns everything that knows samael (0.0.22, xmlsec feature) and SAML XML.
//! libxmlsec1 verifies the XML signature with the IdP keys loaded once per
//! metadata load (`dsig.rs`), and only the signed element's bytes are read
//! (samael's PreDigest reduction, so signature-wrapping cannot smuggle
//! unsigned content in); samael does both where that path is unavailable
//! and for encrypted assertions; the
//! checks samael leaves out are done here, as measured in
//! `shared/notes-samael.md`: body size, DOCTYPE/ENTITY refusal, one
//! assertion only, signature-algorithm allow-list, required
//! AudienceRestriction, Status/Destination/Issuer of the Response even
//! when only the Assertion is signed, InResponseTo bound to requests this
//! browser started, a future IssueInstant bounded by the clock skew, and a
//! replay cache of assertion IDs.
//!
//! Must not: touch HTTP requests or responses (the endpoints do), log SAML
//! XML or attribute values, or accept anything when the IdP metadata has no
//! signing certificate (samael would then skip verification).

pub mod attributes;
pub mod logout;
pub mod metadata;
pub mod replay;
pub mod request;
pub mod response;
pub mod settings;
mod xmlsec;

use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use crate::saml::settings::MetadataSource;

pub use metadata::IdpMetadata;
pub use replay::{MemoryReplayCache, RedisReplayCache, ReplayCache};
pub use request::AuthnRedirect;
pub use response::{Pending, Verified};
pub use settings::Settings;
pub(crate) use xmlsec::errors_to_tracing as xmlsec_errors_to_tracing;
pub use xmlsec::{decrypt, dsig};

/// Largest SAMLResponse form body accepted (before base64 decoding).
/// Real responses are a few KB; samael needs ~0.5 s and 65 MB per MB of XML.
pub const MAX_BODY: usize = 256 * 1024;

/// XML signature algorithms (`SignatureMethod/@Algorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignatureAlgorithm {
    RsaSha1,
    RsaSha256,
    RsaSha384,
    RsaSha512,
    EcdsaSha256,
    EcdsaSha384,
    EcdsaSha512,
}

impl SignatureAlgorithm {
    pub const ALL: [SignatureAlgorithm; 7] = [
        SignatureAlgorithm::RsaSha1,
        SignatureAlgorithm::RsaSha256,
        SignatureAlgorithm::RsaSha384,
        SignatureAlgorithm::RsaSha512,
        SignatureAlgorithm::EcdsaSha256,
        SignatureAlgorithm::EcdsaSha384,
        SignatureAlgorithm::EcdsaSha512,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha1 => "rsa-sha1",
            SignatureAlgorithm::RsaSha256 => "rsa-sha256",
            SignatureAlgorithm::RsaSha384 => "rsa-sha384",
            SignatureAlgorithm::RsaSha512 => "rsa-sha512",
            SignatureAlgorithm::EcdsaSha256 => "ecdsa-sha256",
            SignatureAlgorithm::EcdsaSha384 => "ecdsa-sha384",
            SignatureAlgorithm::EcdsaSha512 => "ecdsa-sha512",
        }
    }

    /// The XML-DSig URI (RFC 6931 §2.3).
    pub fn uri(self) -> &'static str {
        match self {
            SignatureAlgorithm::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
            SignatureAlgorithm::RsaSha256 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
            SignatureAlgorithm::RsaSha384 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
            SignatureAlgorithm::RsaSha512 => "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512",
            SignatureAlgorithm::EcdsaSha256 => {
                "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256"
            }
            SignatureAlgorithm::EcdsaSha384 => {
                "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384"
            }
            SignatureAlgorithm::EcdsaSha512 => {
                "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha512"
            }
        }
    }

    /// A short name (`rsa-sha256`) or the URI.
    pub fn parse(s: &str) -> Option<SignatureAlgorithm> {
        let s = s.trim();
        Self::ALL
            .into_iter()
            .find(|a| a.name().eq_ignore_ascii_case(s) || a.uri() == s)
    }

    fn samael(self) -> Option<samael::crypto::AllowedSignatureAlgorithm> {
        use samael::crypto::AllowedSignatureAlgorithm as A;
        match self {
            SignatureAlgorithm::RsaSha1 => None,
            SignatureAlgorithm::RsaSha256 => Some(A::RsaSha256),
            SignatureAlgorithm::RsaSha384 => Some(A::RsaSha384),
            SignatureAlgorithm::RsaSha512 => Some(A::RsaSha512),
            SignatureAlgorithm::EcdsaSha256 => Some(A::EcdsaSha256),
            SignatureAlgorithm::EcdsaSha384 => Some(A::EcdsaSha384),
            SignatureAlgorithm::EcdsaSha512 => Some(A::EcdsaSha512),
        }
    }
}

/// Every way SAML can fail, each with its precise reason (for the log).
/// Messages are lowercase and never contain XML or attribute values other
/// than identifiers the operator needs (entity IDs, URLs, status codes).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    // --- IdP metadata (start-up and refresh) ---
    #[error("IdP metadata is not valid SAML metadata: {0}")]
    MetadataInvalid(String),
    #[error("IdP metadata has no signing certificate; without one no response could be verified, so authgate refuses to start")]
    MetadataNoSigningCertificate,
    #[error("IdP metadata has a certificate that cannot be read: {0}")]
    MetadataBadCertificate(String),
    #[error("IdP metadata has no SingleSignOnService with the HTTP-Redirect binding")]
    MetadataNoRedirectSso,
    #[error("{key}: the IdP metadata is not signed, and {key} requires its XML signature")]
    MetadataUnsigned { key: String },
    #[error("{key}: the IdP metadata's signature does not verify with the certificate(s) of {key}: {reason}")]
    MetadataSignature { key: String, reason: String },
    #[error(
        "the IdP metadata expired at {0} (its validUntil); the IdP must publish a current copy"
    )]
    MetadataExpired(String),
    #[error("downloading IdP metadata from {url} failed: {reason}")]
    MetadataFetch { url: String, reason: String },
    #[error("the service provider could not be built: {0}")]
    Build(String),

    // --- the posted form ---
    #[error("the form has no SAMLResponse field")]
    MissingResponse,
    #[error("SAMLResponse is not valid base64")]
    Base64,
    #[error("SAMLResponse is not UTF-8 XML")]
    NotUtf8,
    #[error("the response contains a DOCTYPE declaration (refused: DTDs enable entity attacks)")]
    Doctype,
    #[error("the response contains an ENTITY declaration")]
    Entity,
    #[error("the response is not well-formed SAML: {0}")]
    Malformed(String),
    #[error("the response carries {assertions} assertions and {encrypted} encrypted assertions; exactly one assertion (plain or encrypted) is accepted")]
    AssertionCount { assertions: usize, encrypted: usize },
    #[error("the assertion is not encrypted, and saml.require_encrypted_assertions is true")]
    EncryptionRequired,
    #[error("the response carries an encrypted assertion, but saml.sp_key (the key to decrypt it) is not set")]
    NoDecryptionKey,
    #[error("the encrypted assertion uses {0}, which is not accepted (AES-CBC or AES-GCM content encryption, RSA-OAEP key transport)")]
    EncryptionAlgorithm(String),
    #[error("the encrypted assertion has a structure that is refused: {0}")]
    EncryptionStructure(String),
    #[error("the encrypted assertion could not be decrypted: {0}")]
    Decrypt(String),

    // --- signature ---
    #[error("the response is not signed (neither the Response nor the Assertion)")]
    Unsigned,
    #[error("the signature uses {0}, which saml.allowed_signature_algorithms does not allow")]
    SignatureAlgorithm(String),
    #[error("the signature does not verify with any IdP metadata certificate (signed by an unknown key, or altered after signing)")]
    SignatureInvalid,

    // --- protocol checks ---
    #[error("the IdP answered with status {code}{}", message.as_deref().map(|m| format!(" ({m})")).unwrap_or_default())]
    Status {
        code: String,
        message: Option<String>,
    },
    #[error("the response Destination {found:?} is not our ACS URL {expected:?}")]
    Destination { expected: String, found: String },
    #[error("the SubjectConfirmationData Recipient {found:?} is not our ACS URL {expected:?}")]
    Recipient { expected: String, found: String },
    #[error("the Issuer {found:?} is not the IdP entity ID {expected:?}")]
    Issuer { expected: String, found: String },
    #[error(
        "the assertion has no AudienceRestriction; our entityID {expected:?} must be its Audience"
    )]
    AudienceMissing { expected: String },
    #[error("the assertion's Audience {found:?} is not our entityID {expected:?}")]
    Audience { expected: String, found: String },
    #[error("the assertion expired at {0} (beyond the allowed clock skew)")]
    Expired(String),
    #[error("the assertion is not valid before {0} (beyond the allowed clock skew)")]
    NotYetValid(String),
    #[error("the assertion was issued in the future ({0}), beyond the allowed clock skew")]
    IssuedInFuture(String),
    #[error("the response was issued too long ago ({0})")]
    TooOld(String),
    #[error("the assertion has no usable bearer SubjectConfirmation: {0}")]
    SubjectConfirmation(String),
    #[error("InResponseTo {0:?} names no sign-in this browser started (or it expired)")]
    UnknownRequest(String),
    #[error("unsolicited (IdP-initiated) response, but saml.allow_idp_initiated is false")]
    Unsolicited,
    #[error("assertion {0:?} was already used (replay)")]
    Replay(String),
    #[error("the replay cache is full; refusing new sign-ins until entries expire")]
    ReplayCacheFull,
    #[error("the shared replay cache is unavailable; refusing sign-ins until it answers")]
    ReplayStore(#[source] crate::session::StoreError),

    // --- the user ---
    #[error("the assertion has no NameID")]
    MissingNameId,
    #[error("the assertion has no email attribute (looked for {0})")]
    MissingEmail(String),
    #[error("the email domain {0:?} is not in saml.allowed_email_domains")]
    EmailDomain(String),
    #[error("groups overage: the IdP sent {claim:?} (a link to the user's groups in Microsoft Graph) instead of the groups, as Entra ID does above 150 groups; refused rather than signing in without them")]
    GroupsOverage {
        claim: String,
        /// The NameID, for the audit line (not in the message).
        subject: String,
    },

    // --- single logout ---
    #[error("single logout refused: {0}")]
    Logout(String),
    #[error("single logout needs saml.sp_key (to sign our messages) and an IdP SingleLogoutService with the HTTP-Redirect binding")]
    SloUnavailable,
}

impl Error {
    /// The metadata was refused by its own trust checks (signature,
    /// validUntil), not for want of reaching it.
    pub fn is_metadata_trust(&self) -> bool {
        matches!(
            self,
            Error::MetadataUnsigned { .. }
                | Error::MetadataSignature { .. }
                | Error::MetadataExpired(_)
        )
    }
}

/// How the metadata was last loaded, for the operator page and readiness.
#[derive(Debug, Clone)]
pub struct MetadataStatus {
    pub source: String,
    pub loaded_at: Option<SystemTime>,
    pub last_attempt: Option<SystemTime>,
    pub last_error: Option<String>,
}

/// One IdP as the SP sees it: its id and button text, the settings with
/// its metadata source and attribute names, the metadata in force (with
/// the samael SP built from it, swapped on refresh) and how it was loaded.
pub struct Provider {
    /// `default`, or the `[[saml.idps]]` id.
    pub id: String,
    /// Button text on the login page.
    pub name: String,
    pub settings: Settings,
    current: RwLock<Arc<response::Loaded>>,
    status: Mutex<MetadataStatus>,
}

/// The SAML Service Provider at run time: one or more IdPs (the first is
/// the one of the single-IdP API: `settings`, `loaded`, `status`), and
/// the replay cache they share (keys carry the IdP entity ID).
pub struct Sso {
    pub settings: Settings,
    providers: Vec<Provider>,
    pub replay: Arc<dyn ReplayCache>,
}

impl std::fmt::Debug for Sso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sso")
            .field("entity_id", &self.settings.urls.entity_id)
            .field("idps", &self.providers.len())
            .finish_non_exhaustive()
    }
}

impl Provider {
    fn new(settings: Settings, keys: &response::SpKeys) -> Result<Provider, Error> {
        let text = match (&settings.metadata, &settings.metadata_text) {
            (MetadataSource::File(_), Some(text)) => text.clone(),
            (MetadataSource::File(p), None) => std::fs::read_to_string(p)
                .map_err(|e| Error::MetadataInvalid(format!("cannot read {}: {e}", p.display())))?,
            (MetadataSource::Url(u), _) => metadata::fetch_blocking(u, settings.metadata_timeout)?,
        };
        let md = metadata::load(
            &text,
            settings.metadata_trust.as_ref(),
            &settings.allowed_signature_algorithms,
        )?;
        let loaded = response::Loaded::new(&settings, md, keys.clone())?;
        let now = SystemTime::now();
        Ok(Provider {
            id: settings.idp_id.clone(),
            name: settings.idp_name.clone(),
            status: Mutex::new(MetadataStatus {
                source: settings.metadata.to_string(),
                loaded_at: Some(now),
                last_attempt: Some(now),
                last_error: None,
            }),
            current: RwLock::new(Arc::new(loaded)),
            settings,
        })
    }

    /// The metadata and SP in force.
    pub fn loaded(&self) -> Arc<response::Loaded> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn status(&self) -> MetadataStatus {
        match self.status.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// Whether the copy in force is not current: the last refresh failed
    /// or was refused, or it is past its `validUntil`.
    pub fn stale(&self, now: SystemTime) -> bool {
        self.status().last_error.is_some()
            || metadata::check_valid(
                &self.loaded().idp,
                chrono::DateTime::<chrono::Utc>::from(now),
            )
            .is_err()
    }

    /// Re-reads the metadata; on failure the last good copy stays in force
    /// and the error is kept for the operator page.
    pub async fn refresh(&self) -> Result<(), Error> {
        let keys = self.loaded().keys();
        let result = async {
            let text = match &self.settings.metadata {
                MetadataSource::File(p) => tokio::fs::read_to_string(p).await.map_err(|e| {
                    Error::MetadataInvalid(format!("cannot read {}: {e}", p.display()))
                })?,
                MetadataSource::Url(u) => {
                    metadata::fetch(u, self.settings.metadata_timeout).await?
                }
            };
            let md = metadata::load(
                &text,
                self.settings.metadata_trust.as_ref(),
                &self.settings.allowed_signature_algorithms,
            )?;
            response::Loaded::new(&self.settings, md, keys)
        }
        .await;
        let now = SystemTime::now();
        let mut status = match self.status.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        status.last_attempt = Some(now);
        match result {
            Ok(loaded) => {
                let mut cur = match self.current.write() {
                    Ok(g) => g,
                    Err(p) => p.into_inner(),
                };
                *cur = Arc::new(loaded);
                status.loaded_at = Some(now);
                status.last_error = None;
                Ok(())
            }
            Err(e) => {
                // A document that fails its own trust checks is somebody
                // else's or a stale one: an operator must look now.
                if e.is_metadata_trust() {
                    tracing::error!(idp = %self.id, error = %e, "IdP metadata refused; the last good copy stays in force");
                } else {
                    tracing::warn!(idp = %self.id, error = %e, "IdP metadata refresh failed; the last good copy stays in force");
                }
                status.last_error = Some(e.to_string());
                Err(e)
            }
        }
    }

    /// A fresh AuthnRequest to this IdP (none while its metadata is past
    /// its `validUntil`: the answer could not be trusted).
    pub fn authn_request(&self, relay_state: &str) -> Result<AuthnRedirect, Error> {
        self.check_current(SystemTime::now())?;
        request::authn_redirect(&self.loaded(), &self.settings, relay_state)
    }

    /// Whether the metadata in force may still be used at `now`: not past
    /// its `validUntil` (SAML metadata §2.2.1). A refresh that fails keeps
    /// the last good copy only until then; after it, sign-ins at this IdP
    /// get 503 until a current copy loads.
    pub fn check_current(&self, now: SystemTime) -> Result<(), Error> {
        metadata::check_valid(
            &self.loaded().idp,
            chrono::DateTime::<chrono::Utc>::from(now),
        )
    }

    /// Whether `/_auth/logout` continues to this IdP: an SP key to sign
    /// with and an IdP SingleLogoutService (HTTP-Redirect).
    pub fn slo_available(&self) -> bool {
        let l = self.loaded();
        l.sp_key.is_some() && l.idp.slo_redirect.is_some()
    }

    /// A signed LogoutRequest for a session ended here: its ID (to match
    /// the IdP's LogoutResponse) and the IdP URL to send the browser to.
    pub fn logout_request(
        &self,
        name_id: &str,
        session_index: Option<&str>,
        relay_state: &str,
    ) -> Result<(String, String), Error> {
        let l = self.loaded();
        let (Some(key), Some(slo)) = (&l.sp_key, &l.idp.slo_redirect) else {
            return Err(Error::SloUnavailable);
        };
        let id = request::new_request_id();
        let xml = logout::logout_request_xml(
            &id,
            &self.settings.urls.entity_id,
            slo,
            name_id,
            self.settings.name_id_format.as_deref(),
            session_index,
            chrono::Utc::now(),
        );
        let url =
            logout::signed_redirect(slo, logout::Kind::Request, &xml, Some(relay_state), key)?;
        Ok((id, url))
    }

    /// Verifies this IdP's LogoutResponse (HTTP-Redirect, query signed)
    /// to one of our `pending` LogoutRequests.
    pub fn logout_response(
        &self,
        raw_query: &str,
        pending: &[String],
        now: SystemTime,
    ) -> Result<logout::LogoutResponse, Error> {
        let l = self.loaded();
        let (xml, _relay) = logout::verify_redirect(
            raw_query,
            logout::Kind::Response,
            &l.idp.certs,
            &self.settings.allowed_signature_algorithms,
        )?;
        let r = logout::parse_response(&xml)?;
        self.check_envelope(
            &l,
            r.issuer.as_deref(),
            r.destination.as_deref(),
            r.issue_instant.as_deref(),
            now,
        )?;
        match r.in_response_to.as_deref() {
            Some(id) if pending.iter().any(|p| p == id) => {}
            other => return Err(Error::UnknownRequest(other.unwrap_or("(none)").to_string())),
        }
        Ok(r)
    }

    /// Verifies a LogoutRequest from this IdP (signature, envelope,
    /// expiry); the replay check is the caller's.
    fn verify_logout_request(
        &self,
        message: IdpMessage<'_>,
        now: SystemTime,
    ) -> Result<(logout::LogoutRequest, Option<String>, Arc<response::Loaded>), Error> {
        let l = self.loaded();
        let algs = &self.settings.allowed_signature_algorithms;
        let (xml, relay) = match message {
            IdpMessage::Redirect(q) => {
                logout::verify_redirect(q, logout::Kind::Request, &l.idp.certs, algs)?
            }
            IdpMessage::Post {
                saml_request,
                relay,
            } => (
                logout::verify_post(saml_request, &l.idp.certs, algs)?,
                relay.map(str::to_string),
            ),
        };
        let r = logout::parse_request(&xml)?;
        self.check_envelope(
            &l,
            r.issuer.as_deref(),
            r.destination.as_deref(),
            r.issue_instant.as_deref(),
            now,
        )?;
        let now_c = chrono::DateTime::<chrono::Utc>::from(now);
        if let Some(t) = r.not_on_or_after.as_deref() {
            let t = parse_instant(t)?;
            if now_c >= t + chrono_duration(self.settings.clock_skew) {
                return Err(Error::Expired(t.to_rfc3339()));
            }
        }
        Ok((r, relay, l))
    }

    /// Our signed LogoutResponse to this IdP's LogoutRequest, as the URL
    /// (HTTP-Redirect) to send the browser to.
    pub fn logout_response_redirect(
        &self,
        req: &logout::LogoutRequest,
        relay_state: Option<&str>,
        status: &str,
    ) -> Result<String, Error> {
        let l = self.loaded();
        let (Some(key), Some(to)) = (&l.sp_key, &l.idp.slo_response_redirect) else {
            return Err(Error::SloUnavailable);
        };
        let xml = logout::logout_response_xml(
            &request::new_request_id(),
            &req.id,
            &self.settings.urls.entity_id,
            to,
            status,
            chrono::Utc::now(),
        );
        logout::signed_redirect(to, logout::Kind::Response, &xml, relay_state, key)
    }

    /// Issuer (required, the IdP), Destination (when given, our SLO URL)
    /// and IssueInstant (not in the future, not too old) of a logout
    /// message.
    fn check_envelope(
        &self,
        l: &response::Loaded,
        issuer: Option<&str>,
        destination: Option<&str>,
        issue_instant: Option<&str>,
        now: SystemTime,
    ) -> Result<(), Error> {
        if issuer != Some(l.idp.entity_id.as_str()) {
            return Err(Error::Issuer {
                expected: l.idp.entity_id.clone(),
                found: issuer.unwrap_or("(none)").to_string(),
            });
        }
        if let Some(d) = destination {
            if d != self.settings.urls.slo_url {
                return Err(Error::Logout(format!(
                    "Destination {d:?} is not our SingleLogoutService {:?}",
                    self.settings.urls.slo_url
                )));
            }
        }
        let t = parse_instant(
            issue_instant.ok_or_else(|| Error::Malformed("no IssueInstant".into()))?,
        )?;
        let now_c = chrono::DateTime::<chrono::Utc>::from(now);
        let skew = chrono_duration(self.settings.clock_skew);
        if t > now_c + skew {
            return Err(Error::IssuedInFuture(t.to_rfc3339()));
        }
        if t + chrono_duration(response::MAX_RESPONSE_AGE) + skew < now_c {
            return Err(Error::TooOld(t.to_rfc3339()));
        }
        Ok(())
    }
}

impl Sso {
    /// Loads every IdP's metadata (reads the file, or downloads the URL)
    /// and builds the SP for each. Any failure is a start-up error; two
    /// IdPs with the same entity ID are one too (responses are routed by
    /// their Issuer).
    pub fn new(settings: Settings) -> Result<Sso, Error> {
        // libxmlsec1 initialised now, with its error reports routed to
        // tracing before the first verification can fail.
        decrypt::ensure_xmlsec();
        let keys = response::SpKeys::from_settings(&settings)?;
        let mut providers = vec![Provider::new(settings.clone(), &keys)?];
        for e in &settings.more_idps {
            let mut s = settings.clone();
            s.idp_id = e.id.clone();
            s.idp_name = e.name.clone();
            s.metadata = e.metadata.clone();
            s.metadata_text = e.metadata_text.clone();
            s.metadata_trust = e.metadata_trust.clone();
            s.attributes = e.attributes.clone();
            s.more_idps = Vec::new();
            providers.push(Provider::new(s, &keys)?);
        }
        let mut seen = std::collections::HashSet::new();
        for p in &providers {
            let entity = p.loaded().idp.entity_id.clone();
            if !seen.insert(entity.clone()) {
                return Err(Error::MetadataInvalid(format!(
                    "IdP {:?} has the entity ID {entity:?} of another configured IdP",
                    p.id
                )));
            }
        }
        Ok(Sso {
            providers,
            replay: Arc::new(MemoryReplayCache::new(replay::DEFAULT_CAPACITY)),
            settings,
        })
    }

    /// Every IdP, the first one first.
    pub fn providers(&self) -> &[Provider] {
        &self.providers
    }

    /// The IdP with this id (`default`, or a `[[saml.idps]]` id).
    pub fn provider(&self, id: &str) -> Option<&Provider> {
        self.providers.iter().find(|p| p.id == id)
    }

    fn first(&self) -> &Provider {
        // `new` always builds at least one.
        &self.providers[0]
    }

    /// The metadata and SP in force (first IdP).
    pub fn loaded(&self) -> Arc<response::Loaded> {
        self.first().loaded()
    }

    /// How the first IdP's metadata was last loaded; `last_error` is the
    /// first failed refresh of any IdP (named when not the first), so
    /// readiness reports every IdP.
    pub fn status(&self) -> MetadataStatus {
        let mut st = self.first().status();
        if st.last_error.is_none() {
            st.last_error = self.providers[1..].iter().find_map(|p| {
                p.status()
                    .last_error
                    .map(|e| format!("IdP {:?}: {e}", p.id))
            });
        }
        st
    }

    /// How long until the next metadata refresh: `saml.metadata_refresh`,
    /// or an IdP's `cacheDuration` when shorter (SAML metadata §2.3.3),
    /// never below 1 s.
    pub fn refresh_interval(&self) -> Duration {
        self.providers
            .iter()
            .filter_map(|p| p.loaded().idp.cache_duration)
            .fold(self.settings.metadata_refresh, Duration::min)
            .max(Duration::from_secs(1))
    }

    /// Re-reads every IdP's metadata; on failure the last good copy of
    /// that IdP stays in force. Returns the first error.
    pub async fn refresh(&self) -> Result<(), Error> {
        let mut first_error = None;
        for p in &self.providers {
            if let Err(e) = p.refresh().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// A fresh AuthnRequest to the first IdP.
    pub fn authn_request(&self, relay_state: &str) -> Result<AuthnRedirect, Error> {
        self.first().authn_request(relay_state)
    }

    /// Validates a posted `SAMLResponse` (base64 as received) against the
    /// IdP it names as Issuer (its metadata and certificates only) and
    /// the requests this browser started at that IdP, then records the
    /// assertion ID so the same assertion is never accepted twice.
    pub async fn consume(
        &self,
        saml_response: &str,
        pending: &[Pending],
        now: SystemTime,
    ) -> Result<Verified, Error> {
        // Decoded and pre-scanned once: the scan names the Issuer.
        let decoded = response::decode(saml_response)?;
        let by_issuer = decoded.issuer().and_then(|i| {
            self.providers
                .iter()
                .find(|p| p.loaded().idp.entity_id == i.trim())
        });
        // No Issuer on the Response (optional in SAML): the IdP this
        // browser was sent to, when that is unambiguous.
        let by_request = || {
            let first = pending.first()?;
            pending
                .iter()
                .all(|x| x.idp == first.idp)
                .then(|| self.provider(&first.idp))
                .flatten()
        };
        let p = by_issuer.or_else(by_request).unwrap_or(self.first());
        let mine: Vec<Pending> = pending.iter().filter(|x| x.idp == p.id).cloned().collect();
        let loaded = p.loaded();
        let mut verified = response::verify_decoded(&loaded, &p.settings, decoded, &mine, now)?;
        verified.idp = p.id.clone();
        verified.principal.saml_idp = Some(p.id.clone());
        let key = format!("{}\u{1f}{}", loaded.idp.entity_id, verified.assertion_id);
        let now_unix = unix(now);
        if !self
            .replay
            .first_use(&key, verified.replay_until, now_unix)
            .await?
        {
            return Err(Error::Replay(verified.assertion_id.clone()));
        }
        Ok(verified)
    }

    /// The SP metadata XML.
    pub fn sp_metadata(&self) -> String {
        request::sp_metadata(&self.settings, &self.loaded())
    }

    /// The IdP a session signed in with (`None`: the first, as sessions
    /// from before several IdPs were configured).
    pub fn provider_of(&self, idp: Option<&str>) -> Option<&Provider> {
        match idp {
            Some(id) => self.provider(id),
            None => Some(self.first()),
        }
    }

    /// Whether `/_auth/logout` continues to the first IdP.
    pub fn slo_available(&self) -> bool {
        self.first().slo_available()
    }

    /// A signed LogoutRequest to the first IdP (see [`Provider::logout_request`]).
    pub fn logout_request(
        &self,
        name_id: &str,
        session_index: Option<&str>,
        relay_state: &str,
    ) -> Result<(String, String), Error> {
        self.first()
            .logout_request(name_id, session_index, relay_state)
    }

    /// Verifies an IdP's LogoutResponse to one of our `pending`
    /// LogoutRequests: each IdP is tried with its own certificates.
    pub fn logout_response(
        &self,
        raw_query: &str,
        pending: &[String],
        now: SystemTime,
    ) -> Result<logout::LogoutResponse, Error> {
        let mut first_error = None;
        for p in &self.providers {
            match p.logout_response(raw_query, pending, now) {
                Ok(r) => return Ok(r),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        Err(first_error.unwrap_or(Error::SloUnavailable))
    }

    /// Verifies a LogoutRequest from an IdP (each tried with its own
    /// certificates and entity ID): `Redirect` carries the raw query
    /// string, `Post` the form's SAMLRequest. Each request is accepted once
    /// (replay cache). Returns it with its RelayState and the IdP.
    pub async fn idp_logout_request(
        &self,
        message: IdpMessage<'_>,
        now: SystemTime,
    ) -> Result<(logout::LogoutRequest, Option<String>, &Provider), Error> {
        let mut first_error = None;
        for p in &self.providers {
            let (r, relay, l) = match p.verify_logout_request(message, now) {
                Ok(x) => x,
                Err(e) => {
                    first_error.get_or_insert(e);
                    continue;
                }
            };
            let until =
                unix(now) + (response::MAX_RESPONSE_AGE + p.settings.clock_skew * 2).as_secs();
            let key = format!("slo\u{1f}{}\u{1f}{}", l.idp.entity_id, r.id);
            if !self.replay.first_use(&key, until, unix(now)).await? {
                return Err(Error::Replay(r.id.clone()));
            }
            return Ok((r, relay, p));
        }
        Err(first_error.unwrap_or(Error::SloUnavailable))
    }
}

/// How an IdP's LogoutRequest arrived.
#[derive(Debug, Clone, Copy)]
pub enum IdpMessage<'a> {
    /// The raw (still URL-encoded) query string.
    Redirect(&'a str),
    /// The form fields.
    Post {
        saml_request: &'a str,
        relay: Option<&'a str>,
    },
}

fn parse_instant(t: &str) -> Result<chrono::DateTime<chrono::Utc>, Error> {
    chrono::DateTime::parse_from_rfc3339(t.trim())
        .map(|d| d.with_timezone(&chrono::Utc))
        .map_err(|_| Error::Malformed(format!("{t:?} is not an xs:dateTime")))
}

pub(crate) fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The allowed skew as a chrono duration.
pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or_else(|_| chrono::Duration::seconds(90))
}

/// A new SP key pair for `authgate keygen --saml`: an RSA-3072 key
/// (PKCS#8 PEM) and a self-signed SHA-256 certificate valid ten years
/// (PEM), as IdPs expect for SP metadata.
pub fn generate_sp_pair(common_name: &str) -> Result<(Vec<u8>, Vec<u8>), String> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let fail = |e: openssl::error::ErrorStack| format!("key generation failed: {e}");
    let pkey = PKey::from_rsa(Rsa::generate(3072).map_err(fail)?).map_err(fail)?;
    let mut name = X509NameBuilder::new().map_err(fail)?;
    name.append_entry_by_text("CN", common_name).map_err(fail)?;
    let name = name.build();
    let mut serial = BigNum::new().map_err(fail)?;
    serial
        .rand(127, MsbOption::MAYBE_ZERO, false)
        .map_err(fail)?;
    let mut b = X509Builder::new().map_err(fail)?;
    b.set_version(2).map_err(fail)?;
    let serial = serial.to_asn1_integer().map_err(fail)?;
    b.set_serial_number(&serial).map_err(fail)?;
    b.set_subject_name(&name).map_err(fail)?;
    b.set_issuer_name(&name).map_err(fail)?;
    b.set_pubkey(&pkey).map_err(fail)?;
    let (not_before, not_after) = (
        Asn1Time::days_from_now(0).map_err(fail)?,
        Asn1Time::days_from_now(3650).map_err(fail)?,
    );
    b.set_not_before(&not_before).map_err(fail)?;
    b.set_not_after(&not_after).map_err(fail)?;
    b.sign(&pkey, MessageDigest::sha256()).map_err(fail)?;
    let key = pkey.private_key_to_pem_pkcs8().map_err(fail)?;
    let cert = b.build().to_pem().map_err(fail)?;
    Ok((key, cert))
}

/// Writes [`generate_sp_pair`] to `key_path` (mode 0600) and `cert_path`.
pub fn write_sp_pair(
    key_path: &std::path::Path,
    cert_path: &std::path::Path,
    common_name: &str,
    force: bool,
) -> Result<String, String> {
    for p in [key_path, cert_path] {
        if p.exists() && !force {
            return Err(format!("{} exists; pass --force to overwrite", p.display()));
        }
    }
    let (key, cert) = generate_sp_pair(common_name)?;
    for p in [key_path, cert_path] {
        if let Some(dir) = p.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        }
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
    use std::io::Write as _;
    opts.open(key_path)
        .and_then(|mut f| f.write_all(&key))
        .map_err(|e| format!("cannot write {}: {e}", key_path.display()))?;
    std::fs::write(cert_path, &cert)
        .map_err(|e| format!("cannot write {}: {e}", cert_path.display()))?;
    Ok(format!(
        "wrote SAML SP key to {} and self-signed certificate to {}\nset saml.sp_key and saml.sp_cert to them; the certificate appears in /_auth/saml/metadata",
        key_path.display(),
        cert_path.display()
    ))
}
