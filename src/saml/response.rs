//! Validation of a SAML Response posted to the ACS.
//!
//! Order: cheap refusals on the raw document first (size is capped by the
//! endpoint; base64; DOCTYPE/ENTITY; a Response root; Status; exactly one
//! assertion, plain or encrypted; an encrypted one is decrypted
//! (`decrypt.rs`) after the Response signature, if any, was verified over
//! the ciphertext, and the checks below run on the result; at least one
//! signature with an allowed algorithm;
//! Destination and Issuer of the Response), then the signature by an IdP
//! metadata certificate and the reduction to the signed element
//! (`dsig.rs`: libxmlsec1 with the keys loaded once, samael's PreDigest
//! reduction; samael itself when this libxmlsec1 cannot take that path,
//! and for decrypted assertions), then samael's checks of the signed
//! element (`check_signed`, or samael's own: Issuer, bearer
//! SubjectConfirmation with Recipient and times, Conditions times), then
//! what samael skips (required AudienceRestriction, future IssueInstant,
//! InResponseTo bound to this browser's requests even with IdP-initiated
//! SSO on). Only the signed assertion is read for the user.
//! The posted value is base64-decoded and pre-scanned once ([`decode`]):
//! the scan also names the Issuer that picks the IdP.
//!
//! The Response-level checks read the Response element even when only the
//! assertion is signed: they can only refuse, never grant (SAML bindings
//! §3.5.5.2 and profiles §4.1.4.3 still require Destination and Status to
//! be right).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use chrono::{DateTime, SecondsFormat, Utc};
use quick_xml::events::Event;
use samael::schema::Assertion;
use samael::service_provider::{Error as SpError, ServiceProvider, ServiceProviderBuilder};

use super::attributes;
use super::metadata::IdpMetadata;
use super::{chrono_duration, Error, SignatureAlgorithm};
use crate::identity::Principal;
use crate::saml::settings::Settings;

const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const BEARER: &str = "urn:oasis:names:tc:SAML:2.0:cm:bearer";
/// How old (by its IssueInstant) a response may be, on top of the clock
/// skew: time for the browser to carry it from the IdP to us.
pub const MAX_RESPONSE_AGE: Duration = Duration::from_secs(180);

/// A sign-in this browser started (from the request-state cookie).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    pub id: String,
    /// The local path to return to.
    pub rd: String,
    /// The IdP the request went to.
    pub idp: String,
}

/// A response that passed every check.
#[derive(Debug, Clone)]
pub struct Verified {
    pub principal: Principal,
    pub assertion_id: String,
    /// The request it answers (None: IdP-initiated).
    pub request_id: Option<String>,
    /// Unix time until which the assertion ID must be remembered.
    pub replay_until: u64,
    /// The IdP that sent it (set by `Sso::consume`).
    pub idp: String,
}

/// The IdP metadata in force and the samael SP built from it once.
pub struct Loaded {
    pub idp: IdpMetadata,
    pub sp: ServiceProvider,
    /// The same SP without IdP certificates, so samael checks everything
    /// but the signature. Used only for a decrypted assertion whose
    /// Response signature (over the ciphertext) was verified before
    /// decryption by `sp`'s certificates; never for anything else.
    sp_outer_verified: ServiceProvider,
    /// samael's form of `saml.allowed_signature_algorithms`.
    samael_algs: Option<Vec<samael::crypto::AllowedSignatureAlgorithm>>,
    /// The IdP signing certificates' keys, loaded into libxmlsec1 once
    /// (`dsig.rs`); None when this libxmlsec1 cannot take that path, and
    /// samael verifies instead.
    dsig_keys: Option<super::dsig::IdpKeys>,
    /// The SP key (`saml.sp_key`), for signing requests and logout messages.
    pub sp_key: Option<openssl::pkey::PKey<openssl::pkey::Private>>,
    /// The SP certificate (DER) published in our metadata.
    pub sp_cert_der: Option<Vec<u8>>,
    /// Earlier SP certificates still published (rollover window).
    pub sp_previous_certs: Vec<Vec<u8>>,
    /// Earlier SP keys that still decrypt (rollover window).
    pub sp_previous_keys: Vec<openssl::pkey::PKey<openssl::pkey::Private>>,
}

/// The SP's own key material (a configuration reload builds a new `Sso`).
#[derive(Clone, Default)]
pub struct SpKeys {
    pub key: Option<openssl::pkey::PKey<openssl::pkey::Private>>,
    pub cert_der: Option<Vec<u8>>,
    pub previous: Vec<Vec<u8>>,
    pub previous_keys: Vec<openssl::pkey::PKey<openssl::pkey::Private>>,
}

impl SpKeys {
    /// From the validated configuration (start-up).
    pub fn from_settings(settings: &Settings) -> Result<SpKeys, Error> {
        let key = match &settings.sp_key_pem {
            Some(pem) => Some(
                openssl::pkey::PKey::private_key_from_pem(pem.expose())
                    .map_err(|e| Error::Build(format!("saml.sp_key: {e}")))?,
            ),
            None => None,
        };
        let mut previous_keys = Vec::new();
        for (i, pem) in settings.sp_previous_keys_pem.iter().enumerate() {
            previous_keys.push(
                openssl::pkey::PKey::private_key_from_pem(pem.expose())
                    .map_err(|e| Error::Build(format!("saml.sp_previous_keys.{i}: {e}")))?,
            );
        }
        Ok(SpKeys {
            key,
            cert_der: settings.sp_cert_der.clone(),
            previous: settings.sp_previous_certs_der.clone(),
            previous_keys,
        })
    }
}

impl Loaded {
    pub fn new(settings: &Settings, idp: IdpMetadata, keys: SpKeys) -> Result<Loaded, Error> {
        // samael has no rsa-sha1 entry: when an operator allows it, samael
        // gets no list and the allow-list is enforced by `prescan` alone.
        let samael_algs: Option<Vec<_>> = settings
            .allowed_signature_algorithms
            .iter()
            .map(|a| a.samael())
            .collect();
        let build = |descriptor: samael::metadata::EntityDescriptor| {
            ServiceProviderBuilder::default()
                .entity_id(settings.urls.entity_id.clone())
                .acs_url(settings.urls.acs_url.clone())
                .metadata_url(settings.urls.metadata_url.clone())
                .idp_metadata(descriptor)
                .allowed_signature_algorithms(samael_algs.clone())
                .max_clock_skew(chrono_duration(settings.clock_skew))
                .max_issue_delay(chrono_duration(MAX_RESPONSE_AGE + settings.clock_skew))
                .allow_idp_initiated(settings.allow_idp_initiated)
                .authn_name_id_format(settings.name_id_format.clone())
                .build()
                .map_err(|e| Error::Build(e.to_string()))
        };
        let sp = build(idp.descriptor.clone())?;
        let mut bare = idp.descriptor.clone();
        for d in bare.idp_sso_descriptors.iter_mut().flatten() {
            d.key_descriptors.clear();
        }
        let sp_outer_verified = build(bare)?;
        if !matches!(sp_outer_verified.idp_signing_certs(), Ok(None)) {
            return Err(Error::Build(
                "the certificate-less SP still has certificates".into(),
            ));
        }
        // Never run with a certificate-less SP (samael would skip
        // verification); `metadata::parse` already refuses such metadata.
        let certs = match sp.idp_signing_certs() {
            Ok(Some(c)) if !c.is_empty() => c,
            _ => return Err(Error::MetadataNoSigningCertificate),
        };
        // The same certificates samael would use, each loaded once.
        let dsig_keys = if super::dsig::available() {
            let der: Vec<Vec<u8>> = certs.iter().map(|c| c.der_data().to_vec()).collect();
            Some(
                super::dsig::IdpKeys::new(&der).ok_or(Error::MetadataBadCertificate(
                    "libxmlsec1 cannot load its key".into(),
                ))?,
            )
        } else {
            None
        };
        Ok(Loaded {
            idp,
            sp,
            sp_outer_verified,
            samael_algs,
            dsig_keys,
            sp_key: keys.key,
            sp_cert_der: keys.cert_der,
            sp_previous_certs: keys.previous,
            sp_previous_keys: keys.previous_keys,
        })
    }

    /// The keys that decrypt: the current one first, then the rollover
    /// window's.
    pub fn decryption_keys(&self) -> Vec<openssl::pkey::PKey<openssl::pkey::Private>> {
        self.sp_key
            .iter()
            .chain(&self.sp_previous_keys)
            .cloned()
            .collect()
    }

    /// The SP's key material, to build the next `Loaded` from.
    pub fn keys(&self) -> SpKeys {
        SpKeys {
            key: self.sp_key.clone(),
            cert_der: self.sp_cert_der.clone(),
            previous: self.sp_previous_certs.clone(),
            previous_keys: self.sp_previous_keys.clone(),
        }
    }
}

/// What the raw document says outside the signed part.
#[derive(Debug, Default)]
pub(crate) struct Outer {
    destination: Option<String>,
    in_response_to: Option<String>,
    issue_instant: Option<String>,
    issuer: Option<String>,
    status: Option<String>,
    sub_status: Option<String>,
    status_message: Option<String>,
    assertions: usize,
    encrypted: usize,
    signatures: usize,
    algorithms: Vec<String>,
    /// `EncryptionMethod` algorithms inside EncryptedAssertions.
    enc_algorithms: Vec<String>,
    /// The first thing inside an EncryptedAssertion that is refused.
    enc_refused: Option<String>,
}

/// A posted `SAMLResponse`, base64-decoded and pre-scanned once (the scan
/// also names the Issuer that picks the IdP).
pub struct Decoded {
    xml: String,
    first: Outer,
}

impl Decoded {
    /// The Response's own Issuer, unverified: it only chooses which IdP's
    /// metadata the response is then verified against.
    pub fn issuer(&self) -> Option<&str> {
        self.first.issuer.as_deref()
    }
}

/// Base64 (whitespace ignored), UTF-8, and the pre-scan (DOCTYPE/ENTITY
/// refusal, structure, envelope values).
pub fn decode(saml_response: &str) -> Result<Decoded, Error> {
    let compact: Vec<u8> = saml_response
        .bytes()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(Error::MissingResponse);
    }
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .map_err(|_| Error::Base64)?;
    let xml = String::from_utf8(bytes).map_err(|_| Error::NotUtf8)?;
    let first = prescan(&xml)?;
    Ok(Decoded { xml, first })
}

/// Validates a base64 `SAMLResponse`. `pending` are the requests this
/// browser started; the replay check is the caller's (`Sso::consume`).
pub fn verify(
    loaded: &Loaded,
    settings: &Settings,
    saml_response: &str,
    pending: &[Pending],
    now: SystemTime,
) -> Result<Verified, Error> {
    verify_decoded(loaded, settings, decode(saml_response)?, pending, now)
}

/// [`verify`] of a response already [`decode`]d.
pub fn verify_decoded(
    loaded: &Loaded,
    settings: &Settings,
    decoded: Decoded,
    pending: &[Pending],
    now: SystemTime,
) -> Result<Verified, Error> {
    let Decoded { xml, first } = decoded;
    let now_c: DateTime<Utc> = DateTime::<Utc>::from(now);
    let skew = chrono_duration(settings.clock_skew);
    // Metadata past its validUntil (a refresh kept the last good copy
    // beyond it) no longer says which keys the IdP signs with.
    super::metadata::check_valid(&loaded.idp, now_c)?;

    check_status(&first)?;
    let one = (first.assertions, first.encrypted);
    if one != (1, 0) && one != (0, 1) {
        return Err(Error::AssertionCount {
            assertions: first.assertions,
            encrypted: first.encrypted,
        });
    }
    if first.encrypted == 0 && settings.require_encrypted_assertions {
        return Err(Error::EncryptionRequired);
    }
    check_algorithms(&first, settings)?;
    // An encrypted assertion is decrypted first; everything after works on
    // the document with the plain assertion in its place. A Response
    // signature covers the ciphertext: it is verified before decrypting,
    // and only the verified content is decrypted.
    let (xml, outer, outer_verified) = if first.encrypted == 1 {
        if let Some(what) = &first.enc_refused {
            return Err(Error::EncryptionStructure(what.clone()));
        }
        if let Some(alg) = first
            .enc_algorithms
            .iter()
            .find(|a| !super::decrypt::ALLOWED_ALGORITHMS.contains(&a.as_str()))
        {
            return Err(Error::EncryptionAlgorithm(alg.clone()));
        }
        let keys = loaded.decryption_keys();
        if keys.is_empty() {
            return Err(Error::NoDecryptionKey);
        }
        let signed = first.signatures > 0;
        let base = if signed {
            verified_response(loaded, &xml)?
        } else {
            xml
        };
        let plain = super::decrypt::decrypt_response(&base, &keys)?;
        let outer = prescan(&plain)?;
        check_status(&outer)?;
        if (outer.assertions, outer.encrypted) != (1, 0) {
            return Err(Error::AssertionCount {
                assertions: outer.assertions,
                encrypted: outer.encrypted,
            });
        }
        check_algorithms(&outer, settings)?;
        (plain, outer, signed)
    } else {
        (xml, first, false)
    };
    if outer.signatures == 0 && !outer_verified {
        return Err(Error::Unsigned);
    }
    if let Some(d) = &outer.destination {
        if *d != settings.urls.acs_url {
            return Err(Error::Destination {
                expected: settings.urls.acs_url.clone(),
                found: d.clone(),
            });
        }
    }
    if let Some(i) = &outer.issuer {
        if i.trim() != loaded.idp.entity_id {
            return Err(Error::Issuer {
                expected: loaded.idp.entity_id.clone(),
                found: i.clone(),
            });
        }
    }
    if let Some(t) = &outer.issue_instant {
        let t = parse_time(t)?;
        if t > now_c + skew {
            return Err(Error::IssuedInFuture(t.to_rfc3339()));
        }
    }

    let ids: Vec<&str> = pending.iter().map(|p| p.id.as_str()).collect();
    // PreDigest (the bytes xmlsec digested, nothing else) is the strictest
    // reduction and about twice as fast, but needs exactly one signature;
    // a doubly signed response takes the default reduction, which keeps
    // only verified content too.
    let mode = if outer.signatures == 1 {
        samael::crypto::ReduceMode::PreDigest
    } else {
        samael::crypto::ReduceMode::default()
    };
    let result = if let (Some(keys), false) = (&loaded.dsig_keys, outer_verified) {
        // Verified by libxmlsec1 with the keys loaded once; only the signed
        // element's bytes are read (samael's PreDigest reduction), then
        // checked as samael checks them.
        let signed = super::dsig::verify(&xml, keys, &settings.allowed_signature_algorithms)?;
        super::xmlsec_errors_to_tracing();
        check_signed(&signed, loaded, settings, &ids, now_c)
    } else if outer.signatures > 0 {
        loaded
            .sp
            .parse_xml_response_with_mode(&xml, Some(&ids), mode)
    } else {
        // Only reachable with `outer_verified`: the Response signature was
        // verified over the ciphertext this assertion came from.
        loaded
            .sp_outer_verified
            .parse_xml_response_with_mode(&xml, Some(&ids), mode)
    };
    // samael initialises libxmlsec1 on first use, which resets its error
    // callback: install ours after that.
    super::xmlsec_errors_to_tracing();
    let assertion = result.map_err(|e| from_samael(e, loaded, settings, &outer))?;

    // AudienceRestriction is required (samael accepts its absence), and
    // every restriction must name us (SAML core §2.5.1.4).
    let restrictions = assertion
        .conditions
        .as_ref()
        .and_then(|c| c.audience_restrictions.as_deref())
        .unwrap_or(&[]);
    if restrictions.is_empty() {
        return Err(Error::AudienceMissing {
            expected: settings.urls.entity_id.clone(),
        });
    }
    for r in restrictions {
        if !r
            .audience
            .iter()
            .any(|a| a.trim() == settings.urls.entity_id)
        {
            return Err(Error::Audience {
                expected: settings.urls.entity_id.clone(),
                found: r.audience.join(" "),
            });
        }
    }
    if assertion.issue_instant > now_c + skew {
        return Err(Error::IssuedInFuture(assertion.issue_instant.to_rfc3339()));
    }

    let request_id = in_response_to(&assertion, &outer, pending, settings.allow_idp_initiated)?;

    let subject = assertion
        .subject
        .as_ref()
        .and_then(|s| s.name_id.as_ref())
        .map(|n| n.value.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or(Error::MissingNameId)?;
    let principal = attributes::principal(&assertion, subject, settings)?;

    Ok(Verified {
        principal,
        assertion_id: assertion.id.clone(),
        request_id,
        replay_until: replay_until(&assertion, settings),
        idp: settings.idp_id.clone(),
    })
}

/// What samael's `validate_parsed_response` and `validate_assertion` check
/// (samael 0.0.22, `service_provider/mod.rs`), on the element the
/// signature(s) covered, with samael's error values so the verdicts read
/// as before: for a signed Response, its Destination (when present),
/// InResponseTo (unless IdP-initiated SSO is on), IssueInstant age, Issuer
/// and Status, then its one plain Assertion; for the assertion, its
/// IssueInstant age, Issuer, Conditions times and audience, and a bearer
/// SubjectConfirmation with times, Recipient and InResponseTo.
fn check_signed(
    signed: &super::dsig::Signed,
    loaded: &Loaded,
    settings: &Settings,
    ids: &[&str],
    now: DateTime<Utc>,
) -> Result<Assertion, SpError> {
    use super::dsig::Root;
    use samael::schema::Response;
    let delay = chrono_duration(MAX_RESPONSE_AGE + settings.clock_skew);
    let entity_id = Some(loaded.idp.entity_id.clone());
    let assertion = match signed.root {
        Root::Assertion => signed
            .xml
            .parse::<Assertion>()
            .map_err(SpError::FailedToParseSamlAssertion)?,
        Root::Response => {
            let r: Response = signed
                .xml
                .parse()
                .map_err(SpError::FailedToParseSamlResponse)?;
            if r.destination.is_some()
                && r.destination.as_deref() != Some(settings.urls.acs_url.as_str())
            {
                return Err(SpError::DestinationValidationError {
                    response_destination: r.destination.clone(),
                    sp_acs_url: Some(settings.urls.acs_url.clone()),
                });
            }
            let irt_ok = settings.allow_idp_initiated
                || r.in_response_to
                    .as_deref()
                    .is_some_and(|v| ids.contains(&v));
            if !irt_ok {
                return Err(SpError::ResponseInResponseToInvalid {
                    possible_ids: ids.iter().map(|s| s.to_string()).collect(),
                });
            }
            if r.issue_instant + delay < now {
                return Err(SpError::ResponseExpired {
                    time: (r.issue_instant + delay).to_rfc3339_opts(SecondsFormat::Secs, true),
                });
            }
            if let Some(issuer) = &r.issuer {
                if issuer.value != entity_id {
                    return Err(SpError::ResponseIssuerMismatch {
                        issuer: issuer.value.clone(),
                        entity_id,
                    });
                }
            }
            if let Some(code) = r.status.as_ref().and_then(|s| s.status_code.value.as_ref()) {
                if code != STATUS_SUCCESS {
                    return Err(SpError::ResponseBadStatusCode { code: code.clone() });
                }
            }
            match (r.assertion, r.encrypted_assertion) {
                (Some(a), None) => a,
                _ => return Err(SpError::UnexpectedError),
            }
        }
    };
    let a = &assertion;
    if a.issue_instant + delay < now {
        return Err(SpError::AssertionExpired {
            time: (a.issue_instant + delay).to_rfc3339_opts(SecondsFormat::Secs, true),
        });
    }
    if a.issuer.value != entity_id {
        return Err(SpError::AssertionIssuerMismatch {
            issuer: a.issuer.value.clone(),
            entity_id,
        });
    }
    let skew = chrono_duration(settings.clock_skew);
    if let Some(c) = &a.conditions {
        if let Some(t) = c.not_before {
            if now < t - skew {
                return Err(SpError::AssertionConditionExpiredBefore {
                    time: (t - skew).to_rfc3339_opts(SecondsFormat::Secs, true),
                });
            }
        }
        if let Some(t) = c.not_on_or_after {
            if t + skew < now {
                return Err(SpError::AssertionConditionExpired {
                    time: (t + skew).to_rfc3339_opts(SecondsFormat::Secs, true),
                });
            }
        }
        if let Some(restrictions) = &c.audience_restrictions {
            if !restrictions
                .iter()
                .any(|r| r.audience.contains(&settings.urls.entity_id))
            {
                return Err(SpError::AssertionConditionAudienceRestrictionFailed {
                    requirement: settings.urls.entity_id.clone(),
                });
            }
        }
    }
    check_bearer(a, settings, ids, now, skew)?;
    Ok(assertion)
}

/// samael's `validate_assertion_subject_confirmation`: one bearer
/// confirmation must be in time, name our ACS as Recipient and (unless
/// IdP-initiated SSO is on) answer one of our requests.
fn check_bearer(
    a: &Assertion,
    settings: &Settings,
    ids: &[&str],
    now: DateTime<Utc>,
    skew: chrono::Duration,
) -> Result<(), SpError> {
    let bearers: Vec<_> = a
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_ref())
        .into_iter()
        .flatten()
        .filter(|c| c.method.as_deref() == Some(BEARER))
        .collect();
    if bearers.is_empty() {
        return Err(SpError::AssertionBearerSubjectConfirmationMissing);
    }
    let mut first_error = None;
    for c in bearers {
        let Some(data) = c.subject_confirmation_data.as_ref() else {
            first_error.get_or_insert(SpError::AssertionSubjectConfirmationMissing);
            continue;
        };
        if let Some(t) = data.not_before {
            if now < t - skew {
                first_error.get_or_insert(SpError::AssertionSubjectConfirmationExpiredBefore {
                    time: (t - skew).to_rfc3339_opts(SecondsFormat::Secs, true),
                });
                continue;
            }
        }
        match data.not_on_or_after {
            Some(t) if t + skew < now => {
                first_error.get_or_insert(SpError::AssertionSubjectConfirmationExpired {
                    time: (t + skew).to_rfc3339_opts(SecondsFormat::Secs, true),
                });
                continue;
            }
            Some(_) => {}
            None => {
                first_error.get_or_insert(SpError::AssertionSubjectConfirmationMissing);
                continue;
            }
        }
        if data.recipient.as_deref() != Some(settings.urls.acs_url.as_str()) {
            first_error.get_or_insert(SpError::AssertionRecipientMismatch {
                assertion_recipient: data.recipient.clone(),
                sp_acs_url: Some(settings.urls.acs_url.clone()),
            });
            continue;
        }
        if settings.allow_idp_initiated {
            return Ok(());
        }
        if data
            .in_response_to
            .as_deref()
            .is_some_and(|v| ids.contains(&v))
        {
            return Ok(());
        }
        first_error.get_or_insert(SpError::AssertionInResponseToInvalid {
            possible_ids: ids.iter().map(|s| s.to_string()).collect(),
        });
    }
    Err(first_error.unwrap_or(SpError::AssertionSubjectConfirmationMissing))
}

/// The Response's own Issuer, read without verifying anything: it only
/// chooses which IdP's metadata the response is then verified against.
pub fn peek_issuer(saml_response: &str) -> Option<String> {
    let compact: String = saml_response
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .ok()?;
    prescan(std::str::from_utf8(&bytes).ok()?).ok()?.issuer
}

/// The Response's Status must be Success.
fn check_status(outer: &Outer) -> Result<(), Error> {
    if outer.status.as_deref() == Some(STATUS_SUCCESS) {
        return Ok(());
    }
    Err(Error::Status {
        code: match (&outer.status, &outer.sub_status) {
            (Some(s), Some(sub)) => format!("{} / {}", short_status(s), short_status(sub)),
            (Some(s), None) => short_status(s).to_string(),
            (None, _) => "(none)".into(),
        },
        message: outer.status_message.clone(),
    })
}

/// Every signature present uses an allowed algorithm.
fn check_algorithms(outer: &Outer, settings: &Settings) -> Result<(), Error> {
    for alg in &outer.algorithms {
        let allowed = SignatureAlgorithm::parse(alg)
            .is_some_and(|a| settings.allowed_signature_algorithms.contains(&a));
        if !allowed {
            return Err(Error::SignatureAlgorithm(alg.clone()));
        }
    }
    Ok(())
}

/// Verifies the signature(s) of a Response carrying an EncryptedAssertion
/// by the IdP metadata certificates and returns only the verified content
/// (samael's reduction: a signature-wrapped extra element is gone).
fn verified_response(loaded: &Loaded, xml: &str) -> Result<String, Error> {
    use samael::crypto::CryptoProvider as _;
    let certs = match loaded.sp.idp_signing_certs() {
        Ok(Some(c)) if !c.is_empty() => c,
        _ => return Err(Error::MetadataNoSigningCertificate),
    };
    let reduced = samael::crypto::XmlSec::reduce_xml_to_signed_with_allowed_algorithms(
        xml,
        &certs,
        samael::crypto::ReduceMode::ValidateAndMarkNoAncestors,
        loaded.samael_algs.as_deref(),
    );
    super::xmlsec_errors_to_tracing();
    reduced.map_err(|_| Error::SignatureInvalid)
}

/// InResponseTo of the Response and of the bearer confirmations: every
/// value given must name a request this browser started; none given is an
/// IdP-initiated response, accepted only when configured.
fn in_response_to(
    assertion: &Assertion,
    outer: &Outer,
    pending: &[Pending],
    allow_idp_initiated: bool,
) -> Result<Option<String>, Error> {
    let mut values: Vec<&str> = Vec::new();
    if let Some(v) = outer.in_response_to.as_deref() {
        values.push(v);
    }
    for c in assertion
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_deref())
        .unwrap_or(&[])
    {
        if c.method.as_deref() == Some(BEARER) {
            if let Some(v) = c
                .subject_confirmation_data
                .as_ref()
                .and_then(|d| d.in_response_to.as_deref())
            {
                values.push(v);
            }
        }
    }
    let Some(first) = values.first() else {
        return if allow_idp_initiated {
            Ok(None)
        } else {
            Err(Error::Unsolicited)
        };
    };
    for v in &values {
        if *v != *first || !pending.iter().any(|p| p.id == *v) {
            return Err(Error::UnknownRequest(v.to_string()));
        }
    }
    Ok(Some(first.to_string()))
}

/// Until when the assertion could still be accepted: the earliest
/// NotOnOrAfter (plus skew), and never later than the IssueInstant age
/// limit samael enforces.
fn replay_until(a: &Assertion, settings: &Settings) -> u64 {
    let skew = chrono_duration(settings.clock_skew);
    let mut until = a.issue_instant + chrono_duration(MAX_RESPONSE_AGE) + skew;
    if let Some(t) = a.conditions.as_ref().and_then(|c| c.not_on_or_after) {
        until = until.min(t + skew);
    }
    for c in a
        .subject
        .as_ref()
        .and_then(|s| s.subject_confirmations.as_deref())
        .unwrap_or(&[])
    {
        if let Some(t) = c
            .subject_confirmation_data
            .as_ref()
            .and_then(|d| d.not_on_or_after)
        {
            until = until.min(t + skew);
        }
    }
    until.timestamp().max(0) as u64 + 1
}

fn parse_time(t: &str) -> Result<DateTime<Utc>, Error> {
    DateTime::parse_from_rfc3339(t.trim())
        .map(|d| d.with_timezone(&Utc))
        .map_err(|_| Error::Malformed(format!("IssueInstant {t:?} is not an xs:dateTime")))
}

fn short_status(s: &str) -> &str {
    s.rsplit(':').next().unwrap_or(s)
}

/// Reads the raw document once: refuses DTDs, finds the Response's own
/// attributes, Issuer and Status, and counts assertions and signatures
/// wherever they are (wrapping attacks hide them in Extensions, Objects,
/// or inside other assertions).
pub(crate) fn prescan(xml: &str) -> Result<Outer, Error> {
    refuse_declarations(xml)?;
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut out = Outer::default();
    // Whether each open element is a `Status`.
    let mut stack: Vec<bool> = Vec::with_capacity(16);
    let mut text_target: Option<&'static str> = None;
    let mut text = String::new();
    // Depth of the EncryptedAssertion being read, if inside one.
    let mut enc_at: Option<usize> = None;
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| Error::Malformed(format!("XML error: {e}")))?;
        match ev {
            Event::DocType(_) => return Err(Error::Doctype),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local_name = e.local_name();
                let local = local_name.as_ref();
                let depth = stack.len();
                if depth == 0 {
                    if local != b"Response" {
                        return Err(Error::Malformed(
                            "the document is not a SAML Response".into(),
                        ));
                    }
                    for a in e.attributes() {
                        let a = a.map_err(|e| Error::Malformed(e.to_string()))?;
                        let v = a
                            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                            .map_err(|e| Error::Malformed(e.to_string()))?
                            .into_owned();
                        match a.key.as_ref() {
                            b"Destination" => out.destination = Some(v),
                            b"InResponseTo" => out.in_response_to = Some(v),
                            b"IssueInstant" => out.issue_instant = Some(v),
                            _ => {}
                        }
                    }
                }
                if enc_at.is_some_and(|d| depth > d) {
                    let name = String::from_utf8_lossy(local).into_owned();
                    if !super::decrypt::ALLOWED_ELEMENTS.contains(&name.as_str()) {
                        out.enc_refused.get_or_insert(format!("element {name}"));
                    }
                    if local == b"EncryptionMethod" {
                        for a in e.attributes().flatten() {
                            if a.key.as_ref() == b"Algorithm" {
                                out.enc_algorithms
                                    .push(String::from_utf8_lossy(&a.value).into_owned());
                            }
                        }
                    }
                }
                match local {
                    b"Assertion" => out.assertions += 1,
                    b"EncryptedAssertion" => {
                        out.encrypted += 1;
                        if depth != 1 {
                            out.enc_refused.get_or_insert(
                                "an EncryptedAssertion that is not a child of the Response".into(),
                            );
                        }
                        if !empty && enc_at.is_none() {
                            enc_at = Some(depth);
                        }
                    }
                    b"Signature" => out.signatures += 1,
                    b"SignatureMethod" => {
                        for a in e.attributes().flatten() {
                            if a.key.as_ref() == b"Algorithm" {
                                out.algorithms
                                    .push(String::from_utf8_lossy(&a.value).into_owned());
                            }
                        }
                    }
                    b"StatusCode" if depth >= 2 && stack[1] => {
                        for a in e.attributes().flatten() {
                            if a.key.as_ref() == b"Value" {
                                let v = String::from_utf8_lossy(&a.value).into_owned();
                                if depth == 2 {
                                    out.status = Some(v);
                                } else if out.sub_status.is_none() {
                                    out.sub_status = Some(v);
                                }
                            }
                        }
                    }
                    _ => {}
                }
                if !empty {
                    text_target = match (depth, local) {
                        (1, b"Issuer") => Some("issuer"),
                        (2, b"StatusMessage") if stack[1] => Some("message"),
                        _ => None,
                    };
                    text.clear();
                    stack.push(local == b"Status");
                }
            }
            Event::Text(t) if text_target.is_some() => {
                text.push_str(&t.decode().map_err(|e| Error::Malformed(e.to_string()))?);
            }
            Event::GeneralRef(r) if text_target.is_some() => match r.resolve_char_ref() {
                Ok(Some(c)) => text.push(c),
                _ => match &*r {
                    b"amp" => text.push('&'),
                    b"lt" => text.push('<'),
                    b"gt" => text.push('>'),
                    b"quot" => text.push('"'),
                    b"apos" => text.push('\''),
                    _ => return Err(Error::Entity),
                },
            },
            Event::End(_) => {
                match text_target.take() {
                    Some("issuer") => out.issuer = Some(std::mem::take(&mut text)),
                    Some("message") => out.status_message = Some(std::mem::take(&mut text)),
                    _ => {}
                }
                stack.pop();
                if enc_at == Some(stack.len()) {
                    enc_at = None;
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if out.status.is_none() {
        return Err(Error::Malformed("the Response has no Status".into()));
    }
    Ok(out)
}

/// A DOCTYPE (checked first) or ENTITY declaration anywhere, in any case:
/// what `contains_ci(xml, "<!DOCTYPE")` and `contains_ci(xml, "<!ENTITY")`
/// found, in one pass over the `<!` occurrences.
fn refuse_declarations(xml: &str) -> Result<(), Error> {
    let b = xml.as_bytes();
    let (mut doctype, mut entity) = (false, false);
    let mut from = 0;
    while let Some(i) = xml[from..].find("<!") {
        let at = from + i + 2;
        let starts = |word: &[u8]| {
            b.get(at..at + word.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(word))
        };
        doctype |= starts(b"DOCTYPE");
        entity |= starts(b"ENTITY");
        from = at;
    }
    if doctype {
        return Err(Error::Doctype);
    }
    if entity {
        return Err(Error::Entity);
    }
    Ok(())
}

/// samael's verdicts, in our words.
fn from_samael(e: SpError, loaded: &Loaded, settings: &Settings, outer: &Outer) -> Error {
    match e {
        SpError::FailedToValidateSignature => {
            if outer.signatures == 0 {
                Error::Unsigned
            } else {
                Error::SignatureInvalid
            }
        }
        SpError::AssertionExpired { time } | SpError::ResponseExpired { time } => {
            Error::TooOld(time)
        }
        SpError::AssertionIssuerMismatch { issuer, .. }
        | SpError::ResponseIssuerMismatch { issuer, .. } => Error::Issuer {
            expected: loaded.idp.entity_id.clone(),
            found: issuer.unwrap_or_default(),
        },
        SpError::AssertionConditionExpired { time }
        | SpError::AssertionSubjectConfirmationExpired { time } => Error::Expired(time),
        SpError::AssertionConditionExpiredBefore { time }
        | SpError::AssertionSubjectConfirmationExpiredBefore { time } => Error::NotYetValid(time),
        SpError::AssertionConditionAudienceRestrictionFailed { .. } => Error::Audience {
            expected: settings.urls.entity_id.clone(),
            found: "(another audience)".into(),
        },
        SpError::AssertionRecipientMismatch {
            assertion_recipient,
            ..
        } => Error::Recipient {
            expected: settings.urls.acs_url.clone(),
            found: assertion_recipient.unwrap_or_default(),
        },
        SpError::DestinationValidationError {
            response_destination,
            ..
        } => Error::Destination {
            expected: settings.urls.acs_url.clone(),
            found: response_destination.unwrap_or_default(),
        },
        SpError::AssertionInResponseToInvalid { .. }
        | SpError::ResponseInResponseToInvalid { .. } => match &outer.in_response_to {
            Some(v) => Error::UnknownRequest(v.clone()),
            None if settings.allow_idp_initiated => Error::UnknownRequest("(assertion)".into()),
            None => Error::Unsolicited,
        },
        SpError::ResponseBadStatusCode { code } => Error::Status {
            code: short_status(&code).to_string(),
            message: None,
        },
        SpError::AssertionBearerSubjectConfirmationMissing => {
            Error::SubjectConfirmation("no bearer confirmation".into())
        }
        SpError::AssertionSubjectConfirmationMissing => {
            Error::SubjectConfirmation("no SubjectConfirmationData with NotOnOrAfter".into())
        }
        e @ (SpError::EncryptedAssertionsNotYetSupported
        | SpError::MissingPrivateKeySP
        | SpError::MissingEncryptedKeyInfo
        | SpError::MissingEncryptedValueInfo
        | SpError::EncryptedAssertionKeyMethodUnsupported { .. }
        | SpError::EncryptedAssertionValueMethodUnsupported { .. }
        | SpError::EncryptedAssertionInvalid
        | SpError::FailedToDecryptAssertion) => Error::Decrypt(e.to_string()),
        other => Error::Malformed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wrap(inner: &str) -> String {
        format!(
            r#"<samlp:Response xmlns:samlp="urn:oasis:names:tc:SAML:2.0:protocol" xmlns:saml="urn:oasis:names:tc:SAML:2.0:assertion" ID="_r" Destination="https://sp/acs" InResponseTo="_req" IssueInstant="2024-01-01T00:00:00Z" Version="2.0"><saml:Issuer>https://idp</saml:Issuer><samlp:Status><samlp:StatusCode Value="urn:oasis:names:tc:SAML:2.0:status:Success"/></samlp:Status>{inner}</samlp:Response>"#
        )
    }

    #[test]
    fn prescan_reads_the_response_envelope() {
        let o = prescan(&wrap("<saml:Assertion ID=\"_a\"><ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo><ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/></ds:SignedInfo></ds:Signature></saml:Assertion>")).expect("prescan");
        assert_eq!(o.destination.as_deref(), Some("https://sp/acs"));
        assert_eq!(o.in_response_to.as_deref(), Some("_req"));
        assert_eq!(o.issuer.as_deref(), Some("https://idp"));
        assert_eq!(o.status.as_deref(), Some(STATUS_SUCCESS));
        assert_eq!(o.assertions, 1);
        assert_eq!(o.signatures, 1);
        assert_eq!(
            o.algorithms,
            vec!["http://www.w3.org/2001/04/xmldsig-more#rsa-sha256".to_string()]
        );
    }

    #[test]
    fn declarations_are_found_as_the_case_insensitive_search_found_them() {
        use super::super::metadata::contains_ci;
        let table = [
            "<a/>",
            "<!DOCTYPE a><a/>",
            "<!doctype a><a/>",
            "<a><!--x--><![CDATA[<!ENTITY]]></a>",
            "<!ENTITY",
            "<!EnTiTy x",
            "<!DOCTYP",
            "<!<!DOCTYPE",
            "<a>&lt;!DOCTYPE</a>",
            "<!ENTITY e 'x'><!DOCTYPE d>",
            "x<!",
            "<!é<!doctype",
        ];
        for doc in table {
            let want = if contains_ci(doc, "<!DOCTYPE") {
                Some("doctype")
            } else if contains_ci(doc, "<!ENTITY") {
                Some("entity")
            } else {
                None
            };
            let got = match refuse_declarations(doc) {
                Err(Error::Doctype) => Some("doctype"),
                Err(Error::Entity) => Some("entity"),
                _ => None,
            };
            assert_eq!(got, want, "{doc}");
        }
    }

    #[test]
    fn prescan_refuses_dtds_and_entities() {
        let doc = format!("<!DOCTYPE x [<!ENTITY e \"v\">]>{}", wrap(""));
        assert!(matches!(prescan(&doc), Err(Error::Doctype)));
        let doc = wrap("").replace("https://idp", "&e;");
        assert!(matches!(prescan(&doc), Err(Error::Entity)));
        let doc = format!("<!doctype x>{}", wrap(""));
        assert!(matches!(prescan(&doc), Err(Error::Doctype)));
    }

    #[test]
    fn prescan_counts_hidden_assertions() {
        let o = prescan(&wrap(
            "<samlp:Extensions><saml:Assertion/></samlp:Extensions><saml:Assertion/><saml:EncryptedAssertion/>",
        ))
        .expect("prescan");
        assert_eq!(o.assertions, 2);
        assert_eq!(o.encrypted, 1);
    }

    fn encrypted(inner: &str) -> String {
        format!(
            r#"<saml:EncryptedAssertion><xenc:EncryptedData xmlns:xenc="http://www.w3.org/2001/04/xmlenc#" xmlns:ds="http://www.w3.org/2000/09/xmldsig#"><xenc:EncryptionMethod Algorithm="http://www.w3.org/2009/xmlenc11#aes128-gcm"/><ds:KeyInfo><xenc:EncryptedKey><xenc:EncryptionMethod Algorithm="http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p"><ds:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha1"/></xenc:EncryptionMethod>{inner}<xenc:CipherData><xenc:CipherValue>AA==</xenc:CipherValue></xenc:CipherData></xenc:EncryptedKey></ds:KeyInfo><xenc:CipherData><xenc:CipherValue>AA==</xenc:CipherValue></xenc:CipherData></xenc:EncryptedData></saml:EncryptedAssertion>"#
        )
    }

    #[test]
    fn prescan_reads_encryption_algorithms_and_refuses_what_would_fetch_or_carry_keys() {
        let o = prescan(&wrap(&encrypted(
            "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>AA==</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
        )))
        .expect("prescan");
        assert_eq!(o.encrypted, 1);
        assert_eq!(o.assertions, 0);
        assert_eq!(o.enc_refused, None);
        assert_eq!(
            o.enc_algorithms,
            vec![
                "http://www.w3.org/2009/xmlenc11#aes128-gcm".to_string(),
                "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p".to_string()
            ]
        );
        let table = [
            (
                "<ds:RetrievalMethod URI=\"http://evil/\"/>",
                "element RetrievalMethod",
            ),
            (
                "<xenc:CipherReference URI=\"file:///etc/passwd\"/>",
                "element CipherReference",
            ),
            (
                "<ds:KeyInfo><ds:KeyValue/></ds:KeyInfo>",
                "element KeyValue",
            ),
            ("<ds:Signature/>", "element Signature"),
            ("<ds:Transforms/>", "element Transforms"),
        ];
        for (inner, want) in table {
            let o = prescan(&wrap(&encrypted(inner))).expect("prescan");
            assert_eq!(o.enc_refused.as_deref(), Some(want), "{inner}");
        }
        // Outside the Response's own children: refused too.
        let o = prescan(&wrap(&format!(
            "<samlp:Extensions>{}</samlp:Extensions>",
            encrypted("")
        )))
        .expect("prescan");
        assert!(o.enc_refused.is_some());
        // After the EncryptedAssertion ends, elements are not checked.
        let o = prescan(&wrap(&format!("{}<saml:Assertion/>", encrypted("")))).expect("prescan");
        assert_eq!(o.enc_refused, None);
        assert_eq!((o.assertions, o.encrypted), (1, 1));
    }

    #[test]
    fn peek_issuer_reads_the_response_issuer_or_nothing() {
        use base64::Engine as _;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        let table: [(String, Option<&str>); 4] = [
            (b64(&wrap("")), Some("https://idp")),
            (b64(&wrap("")).replace('A', "A\n"), Some("https://idp")),
            (b64("<samlp:Response xmlns:samlp=\"x\"><samlp:Status><samlp:StatusCode Value=\"v\"/></samlp:Status></samlp:Response>"), None),
            ("not base64!".to_string(), None),
        ];
        for (input, want) in table {
            assert_eq!(peek_issuer(&input).as_deref(), want, "{input}");
        }
    }

    #[test]
    fn prescan_refuses_other_roots_and_missing_status() {
        assert!(matches!(
            prescan("<saml:Assertion xmlns:saml=\"x\"/>"),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(
            prescan("<samlp:Response xmlns:samlp=\"x\"></samlp:Response>"),
            Err(Error::Malformed(_))
        ));
        assert!(matches!(prescan("<a><b></a>"), Err(Error::Malformed(_))));
    }

    #[test]
    fn sub_status_and_message_are_read() {
        let doc = wrap("").replace(
            "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/>",
            "<samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Responder\"><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:AuthnFailed\"/></samlp:StatusCode><samlp:StatusMessage>no &amp; way</samlp:StatusMessage>",
        );
        let o = prescan(&doc).expect("prescan");
        assert_eq!(
            o.status.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:status:Responder")
        );
        assert_eq!(
            o.sub_status.as_deref(),
            Some("urn:oasis:names:tc:SAML:2.0:status:AuthnFailed")
        );
        assert_eq!(o.status_message.as_deref(), Some("no & way"));
    }
}
