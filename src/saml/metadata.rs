//! IdP metadata: parsing (one IdP entity, its signing certificates, its
//! SSO/SLO endpoints) and downloading (`saml.idp_metadata_url`).
//!
//! A metadata document without a signing certificate is refused here:
//! samael silently skips signature verification when it has none. So is
//! one past its `validUntil`, and, when `saml.metadata_signing_cert` is
//! set, one whose XML signature (checked by libxmlsec1 through samael, as
//! responses are) does not verify with it; only the signed part is used.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use samael::metadata::{EntityDescriptor, IdpSsoDescriptor, KeyDescriptor};

use super::{Error, SignatureAlgorithm};
use crate::saml::settings::MetadataTrust;

/// Largest metadata document downloaded.
const MAX_METADATA: usize = 4 * 1024 * 1024;
const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const POST_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST";

/// One IdP signing certificate, as the operator page shows it.
#[derive(Debug, Clone)]
pub struct CertInfo {
    pub der: Vec<u8>,
    pub subject: String,
    pub not_after: String,
    /// Expired at load time.
    pub expired: bool,
}

impl CertInfo {
    /// How close the certificate is to its notAfter, now, with a warning
    /// `warn_days` ahead. See [`expiry`].
    pub fn expiry(&self, warn_days: u32) -> Expiry {
        expiry(&self.der, self.expired, warn_days)
    }
}

/// Where a certificate stands against its notAfter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expiry {
    Expired,
    /// Within the warning period.
    Soon,
    Later,
}

/// How close a certificate (DER) is to its notAfter, now: expired,
/// within `warn_days`, or later. `expired_at_load` is used when the
/// certificate cannot be read again.
pub fn expiry(der: &[u8], expired_at_load: bool, warn_days: u32) -> Expiry {
    let (Ok(x), Ok(now), Ok(soon)) = (
        openssl::x509::X509::from_der(der),
        openssl::asn1::Asn1Time::days_from_now(0),
        openssl::asn1::Asn1Time::days_from_now(warn_days),
    ) else {
        return if expired_at_load {
            Expiry::Expired
        } else {
            Expiry::Later
        };
    };
    if x.not_after() < now {
        Expiry::Expired
    } else if x.not_after() < soon {
        Expiry::Soon
    } else {
        Expiry::Later
    }
}

/// What authgate uses from the IdP metadata.
#[derive(Debug, Clone)]
pub struct IdpMetadata {
    pub entity_id: String,
    pub descriptor: EntityDescriptor,
    pub certs: Vec<CertInfo>,
    /// SingleSignOnService location for the HTTP-Redirect binding.
    pub sso_redirect: String,
    /// SingleSignOnService location for the HTTP-POST binding, if any.
    pub sso_post: Option<String>,
    /// SingleLogoutService (HTTP-Redirect), if the IdP has one.
    pub slo_redirect: Option<String>,
    /// Where LogoutResponses go (its ResponseLocation, else Location).
    pub slo_response_redirect: Option<String>,
    /// `validUntil` (the earliest of the document's and the entity's).
    pub valid_until: Option<chrono::DateTime<chrono::Utc>>,
    /// `cacheDuration` (the shortest), when it is a duration we read.
    pub cache_duration: Option<Duration>,
    /// The configuration key whose certificate verified the document's
    /// signature; `None` = trusted as fetched.
    pub signed_by: Option<String>,
}

/// The metadata as authgate uses it: when `trust` is given, its XML
/// signature must verify with one of those certificates and only the signed
/// part is read; then [`parse`].
pub fn load(
    text: &str,
    trust: Option<&MetadataTrust>,
    allowed: &[SignatureAlgorithm],
) -> Result<IdpMetadata, Error> {
    let Some(trust) = trust else {
        return parse(text);
    };
    let signed = verify_signature(text, trust, allowed)?;
    // A signature over only part of the document leaves no IdP entity.
    let mut md = parse(&signed).map_err(|e| match e {
        Error::MetadataInvalid(why) => Error::MetadataSignature {
            key: trust.key.clone(),
            reason: format!("the signature does not cover the IdP's entity ({why})"),
        },
        e => e,
    })?;
    md.signed_by = Some(trust.key.clone());
    Ok(md)
}

/// Verifies the document's XML signature(s) with libxmlsec1 (through
/// samael, as for responses) against `trust`; returns the document reduced
/// to what the signature covers.
fn verify_signature(
    text: &str,
    trust: &MetadataTrust,
    allowed: &[SignatureAlgorithm],
) -> Result<String, Error> {
    let bad = |reason: String| Error::MetadataSignature {
        key: trust.key.clone(),
        reason,
    };
    // libxml2 must never see a DTD.
    if contains_ci(text, "<!DOCTYPE") || contains_ci(text, "<!ENTITY") {
        return Err(Error::MetadataInvalid(
            "DOCTYPE/ENTITY declarations are refused".into(),
        ));
    }
    let (signatures, algorithms) =
        super::logout::count_signatures(text).map_err(|e| Error::MetadataInvalid(e.to_string()))?;
    if signatures == 0 {
        return Err(Error::MetadataUnsigned {
            key: trust.key.clone(),
        });
    }
    for alg in &algorithms {
        if !SignatureAlgorithm::parse(alg).is_some_and(|a| allowed.contains(&a)) {
            return Err(bad(format!(
                "it is signed with {alg}, which saml.allowed_signature_algorithms does not allow"
            )));
        }
    }
    if trust.certs.is_empty() {
        return Err(bad("no certificate could be read".into()));
    }
    super::decrypt::ensure_xmlsec();
    let ders: Vec<samael::crypto::CertificateDer> = trust
        .certs
        .iter()
        .map(|c| samael::crypto::CertificateDer::from(c.clone()))
        .collect();
    let samael_algs: Option<Vec<_>> = allowed.iter().map(|a| a.samael()).collect();
    use samael::crypto::CryptoProvider as _;
    let result = samael::crypto::Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        text,
        &ders,
        samael::crypto::ReduceMode::ValidateAndMarkNoAncestors,
        samael_algs.as_deref(),
    );
    super::xmlsec_errors_to_tracing();
    result.map_err(|_| bad("signed by another key, or altered after signing".into()))
}

/// Refuses metadata past its `validUntil` (SAML metadata §2.2.1: it must
/// not be used after that instant).
pub fn check_valid(md: &IdpMetadata, now: chrono::DateTime<chrono::Utc>) -> Result<(), Error> {
    match md.valid_until {
        Some(t) if t <= now => Err(Error::MetadataExpired(t.to_rfc3339())),
        _ => Ok(()),
    }
}

/// An `xs:duration` as SAML metadata's `cacheDuration` uses it
/// (`PT6H`, `P1D`, `PT30M`, `PT1.5S`); `None` for anything else (years
/// and months have no fixed length, negative durations no meaning).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let rest = text.trim().strip_prefix('P')?;
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    if date.is_empty() && time.is_none() {
        return None;
    }
    let mut secs = 0f64;
    let mut take = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut last = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let i = units.iter().position(|(u, _)| *u == c)?;
            if i < last || num.is_empty() {
                return None;
            }
            last = i + 1;
            let n: f64 = num.parse().ok()?;
            secs += n * units[i].1;
            num.clear();
        }
        num.is_empty().then_some(())
    };
    take(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(t) = time {
        take(t, &[('H', 3_600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    (secs.is_finite() && secs < 1e12).then(|| Duration::from_secs_f64(secs))
}

/// Parses IdP metadata: an `EntityDescriptor`, or an `EntitiesDescriptor`
/// holding exactly one IdP.
pub fn parse(text: &str) -> Result<IdpMetadata, Error> {
    if contains_ci(text, "<!DOCTYPE") || contains_ci(text, "<!ENTITY") {
        return Err(Error::MetadataInvalid(
            "DOCTYPE/ENTITY declarations are refused".into(),
        ));
    }
    // validUntil / cacheDuration of an enclosing EntitiesDescriptor.
    let mut outer: (Option<chrono::DateTime<chrono::Utc>>, Option<String>) = (None, None);
    let descriptor = match text.parse::<EntityDescriptor>() {
        Ok(d) if d.idp_sso_descriptors.is_some() => d,
        first => {
            let many = text
                .parse::<samael::metadata::EntitiesDescriptor>()
                .ok()
                .map(|e| {
                    outer = (e.valid_until, e.cache_duration.clone());
                    e.descriptors
                        .into_iter()
                        .flat_map(|d| d.iter().cloned().collect::<Vec<_>>())
                        .filter(|d| d.idp_sso_descriptors.is_some())
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default();
            match (first, many.len()) {
                (_, 1) => many
                    .into_iter()
                    .next()
                    .ok_or_else(|| Error::MetadataInvalid("no IDPSSODescriptor".into()))?,
                (_, n) if n > 1 => {
                    return Err(Error::MetadataInvalid(format!(
                        "the document describes {n} IdPs; use the metadata of exactly one"
                    )))
                }
                (Ok(_), _) => {
                    return Err(Error::MetadataInvalid(
                        "no IDPSSODescriptor (is this the SP's metadata?)".into(),
                    ))
                }
                (Err(e), _) => return Err(Error::MetadataInvalid(e.to_string())),
            }
        }
    };
    let entity_id = descriptor
        .entity_id
        .clone()
        .filter(|e| !e.trim().is_empty())
        .ok_or_else(|| Error::MetadataInvalid("EntityDescriptor has no entityID".into()))?;
    let idps: &[IdpSsoDescriptor] = descriptor.idp_sso_descriptors.as_deref().unwrap_or(&[]);

    // Same selection as samael's `idp_signing_certs`: use="signing", else
    // keys without a use.
    let mut keys: Vec<&KeyDescriptor> = idps
        .iter()
        .flat_map(|d| &d.key_descriptors)
        .filter(|k| k.key_use.as_deref() == Some("signing"))
        .collect();
    if keys.is_empty() {
        keys = idps
            .iter()
            .flat_map(|d| &d.key_descriptors)
            .filter(|k| k.key_use.as_deref().is_none_or(|u| u.is_empty()))
            .collect();
    }
    let now = openssl::asn1::Asn1Time::days_from_now(0)
        .map_err(|e| Error::MetadataBadCertificate(e.to_string()))?;
    let mut certs = Vec::new();
    for k in keys {
        for c in k
            .key_info
            .x509_data
            .as_ref()
            .map(|x| x.certificates.as_slice())
            .unwrap_or(&[])
        {
            let der = samael::crypto::decode_x509_cert(c)
                .map_err(|e| Error::MetadataBadCertificate(e.to_string()))?
                .der_data()
                .to_vec();
            let x509 = openssl::x509::X509::from_der(&der)
                .map_err(|e| Error::MetadataBadCertificate(e.to_string()))?;
            let subject = x509
                .subject_name()
                .entries()
                .filter_map(|e| e.data().to_string().ok())
                .collect::<Vec<_>>()
                .join(", ");
            certs.push(CertInfo {
                subject,
                not_after: x509.not_after().to_string(),
                expired: x509.not_after() < now,
                der,
            });
        }
    }
    if certs.is_empty() {
        return Err(Error::MetadataNoSigningCertificate);
    }
    let sso_redirect = idps
        .iter()
        .flat_map(|d| &d.single_sign_on_services)
        .find(|s| s.binding == REDIRECT_BINDING)
        .map(|s| s.location.clone())
        .ok_or(Error::MetadataNoRedirectSso)?;
    let sso_post = idps
        .iter()
        .flat_map(|d| &d.single_sign_on_services)
        .find(|s| s.binding == POST_BINDING)
        .map(|s| s.location.clone());
    let slo = idps
        .iter()
        .flat_map(|d| &d.single_logout_services)
        .find(|s| s.binding == REDIRECT_BINDING);
    let slo_redirect = slo.map(|s| s.location.clone());
    let slo_response_redirect = slo.map(|s| {
        s.response_location
            .clone()
            .filter(|l| !l.trim().is_empty())
            .unwrap_or_else(|| s.location.clone())
    });
    let valid_until = [outer.0, descriptor.valid_until]
        .into_iter()
        .flatten()
        .min();
    let cache_duration = [outer.1.as_deref(), descriptor.cache_duration.as_deref()]
        .into_iter()
        .flatten()
        .filter_map(parse_duration)
        .min();
    let md = IdpMetadata {
        entity_id,
        descriptor,
        certs,
        sso_redirect,
        sso_post,
        slo_redirect,
        slo_response_redirect,
        valid_until,
        cache_duration,
        signed_by: None,
    };
    check_valid(&md, chrono::Utc::now())?;
    Ok(md)
}

pub(crate) fn contains_ci(haystack: &str, needle: &str) -> bool {
    let n = needle.as_bytes();
    haystack
        .as_bytes()
        .windows(n.len())
        .any(|w| w.eq_ignore_ascii_case(n))
}

/// Downloads the metadata (https, or http on loopback), within `timeout`.
pub async fn fetch(url: &http::Uri, timeout: Duration) -> Result<String, Error> {
    let fail = |reason: String| Error::MetadataFetch {
        url: url.to_string(),
        reason,
    };
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| fail(e.to_string()))?
    .with_root_certificates(native_roots())
    .with_no_client_auth();
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .build();
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build::<_, Empty<Bytes>>(connector);
    let req = http::Request::get(url.clone())
        .header(
            http::header::ACCEPT,
            "application/samlmetadata+xml, application/xml, text/xml",
        )
        .header(http::header::USER_AGENT, "authgate")
        .body(Empty::new())
        .map_err(|e| fail(e.to_string()))?;
    let work = async {
        let resp = client.request(req).await.map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(fail(format!("HTTP status {}", resp.status())));
        }
        let body = Limited::new(resp.into_body(), MAX_METADATA)
            .collect()
            .await
            .map_err(|e| fail(e.to_string()))?
            .to_bytes();
        String::from_utf8(body.to_vec()).map_err(|_| fail("the document is not UTF-8".into()))
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| fail(format!("no answer within {timeout:?}")))?
}

/// [`fetch`] from synchronous start-up code, on a private thread and
/// runtime (it works whether or not the caller is inside a runtime).
pub fn fetch_blocking(url: &http::Uri, timeout: Duration) -> Result<String, Error> {
    let url2 = url.clone();
    std::thread::scope(|s| {
        s.spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| Error::MetadataFetch {
                    url: url2.to_string(),
                    reason: e.to_string(),
                })?;
            rt.block_on(fetch(&url2, timeout))
        })
        .join()
        .unwrap_or_else(|_| {
            Err(Error::MetadataFetch {
                url: url.to_string(),
                reason: "the download thread failed".into(),
            })
        })
    })
}

fn native_roots() -> rustls::RootCertStore {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    roots
}

/// When the metadata was loaded, for display.
pub fn describe_time(t: Option<SystemTime>) -> String {
    match t {
        Some(t) => humantime::format_rfc3339_seconds(t).to_string(),
        None => "never".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate valid from `from` to `to` days from now.
    fn cert(from: i64, to: i64) -> Vec<u8> {
        use openssl::asn1::Asn1Time;
        let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).expect("rsa"))
            .expect("key");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "idp").expect("cn");
        let name = name.build();
        let mut b = openssl::x509::X509Builder::new().expect("builder");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock")
            .as_secs() as i64;
        b.set_not_before(&Asn1Time::from_unix(now + from * 86400).expect("t"))
            .expect("nb");
        b.set_not_after(&Asn1Time::from_unix(now + to * 86400).expect("t"))
            .expect("na");
        b.sign(&key, openssl::hash::MessageDigest::sha256())
            .expect("sign");
        b.build().to_der().expect("der")
    }

    #[test]
    fn certificates_expiring_within_30_days_are_flagged() {
        let table = [
            (-400, -1, Expiry::Expired),
            (-10, 1, Expiry::Soon),
            (-10, 29, Expiry::Soon),
            (-10, 31, Expiry::Later),
            (-10, 365, Expiry::Later),
        ];
        for (from, to, want) in table {
            assert_eq!(expiry(&cert(from, to), false, 30), want, "{from}..{to}");
        }
        assert_eq!(expiry(b"not DER", true, 30), Expiry::Expired);
        assert_eq!(expiry(b"not DER", false, 30), Expiry::Later);
    }

    #[test]
    fn cache_durations_read_as_metadata_uses_them() {
        let table: &[(&str, Option<u64>)] = &[
            ("PT6H", Some(6 * 3600)),
            ("P1D", Some(86_400)),
            ("P1DT2H", Some(86_400 + 7200)),
            ("PT30M", Some(1800)),
            ("PT1M30S", Some(90)),
            ("P2W", Some(2 * 604_800)),
            (" PT5S ", Some(5)),
            ("PT0S", Some(0)),
            ("P1Y", None),
            ("P1M", None),
            ("-PT5S", None),
            ("PT", None),
            ("P", None),
            ("5S", None),
            ("PT5", None),
            ("PTS", None),
            ("PT5S3M", None),
            ("", None),
        ];
        for (text, want) in table {
            assert_eq!(parse_duration(text).map(|d| d.as_secs()), *want, "{text:?}");
        }
        assert_eq!(parse_duration("PT1.5S"), Some(Duration::from_millis(1500)));
    }

    fn doc(attrs: &str, signed: bool) -> String {
        // A throw-away self-signed certificate, so `parse` finds one.
        let (_, pem) = crate::saml::generate_sp_pair("idp").expect("cert");
        let der = openssl::x509::X509::from_pem(&pem)
            .and_then(|c| c.to_der())
            .expect("der");
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let sig = if signed {
            "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo><ds:SignatureMethod Algorithm=\"http://www.w3.org/2001/04/xmldsig-more#rsa-sha256\"/></ds:SignedInfo></ds:Signature>"
        } else {
            ""
        };
        format!(
            r#"<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" xmlns:ds="http://www.w3.org/2000/09/xmldsig#" entityID="https://idp.example.com" ID="_m" {attrs}>{sig}<md:IDPSSODescriptor protocolSupportEnumeration="urn:oasis:names:tc:SAML:2.0:protocol"><md:KeyDescriptor use="signing"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{b64}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor><md:SingleSignOnService Binding="urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect" Location="https://idp.example.com/sso"/></md:IDPSSODescriptor></md:EntityDescriptor>"#
        )
    }

    #[test]
    fn valid_until_in_the_past_is_refused_and_cache_duration_is_kept() {
        let md = parse(&doc(
            r#"validUntil="2999-01-01T00:00:00Z" cacheDuration="PT1H""#,
            false,
        ))
        .expect("current");
        assert_eq!(md.cache_duration, Some(Duration::from_secs(3600)));
        assert!(md.valid_until.is_some());
        assert!(matches!(
            parse(&doc(r#"validUntil="2001-01-01T00:00:00Z""#, false)),
            Err(Error::MetadataExpired(_))
        ));
        let later = chrono::DateTime::parse_from_rfc3339("3000-01-01T00:00:00Z")
            .expect("time")
            .with_timezone(&chrono::Utc);
        assert!(matches!(
            check_valid(&md, later),
            Err(Error::MetadataExpired(_))
        ));
        let plain = parse(&doc("", false)).expect("no validUntil");
        assert!(check_valid(&plain, later).is_ok());
        assert_eq!(plain.cache_duration, None);
    }

    #[test]
    fn with_a_trusted_certificate_unsigned_and_badly_signed_metadata_is_refused() {
        let trust = MetadataTrust {
            key: "saml.metadata_signing_cert".into(),
            certs: vec![b"not used".to_vec()],
        };
        let allowed = [SignatureAlgorithm::RsaSha256];
        assert!(
            load(&doc("", false), None, &allowed).is_ok(),
            "no trust: as fetched"
        );
        match load(&doc("", false), Some(&trust), &allowed) {
            Err(e @ Error::MetadataUnsigned { .. }) => {
                assert!(
                    e.to_string().starts_with("saml.metadata_signing_cert:"),
                    "{e}"
                )
            }
            other => panic!("{other:?}"),
        }
        // Signed with an algorithm that is not allowed.
        let sha1 = doc("", true).replace("xmldsig-more#rsa-sha256", "xmldsig#rsa-sha1");
        assert!(matches!(
            load(&sha1, Some(&trust), &allowed),
            Err(Error::MetadataSignature { .. })
        ));
        // A DTD never reaches libxml2.
        let dtd = format!("<!DOCTYPE x>{}", doc("", true));
        assert!(matches!(
            load(&dtd, Some(&trust), &allowed),
            Err(Error::MetadataInvalid(_))
        ));
    }
}
