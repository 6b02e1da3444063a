//! IdP metadata: parsing (one IdP entity, its signing certificates, its
//! SSO/SLO endpoints) and downloading (`saml.idp_metadata_url`).
//!
//! A metadata document without a signing certificate is refused here:
//! samael silently skips signature verification when it has none.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use samael::metadata::{EntityDescriptor, IdpSsoDescriptor, KeyDescriptor};

use super::Error;

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
}

/// Parses IdP metadata: an `EntityDescriptor`, or an `EntitiesDescriptor`
/// holding exactly one IdP.
pub fn parse(text: &str) -> Result<IdpMetadata, Error> {
    if contains_ci(text, "<!DOCTYPE") || contains_ci(text, "<!ENTITY") {
        return Err(Error::MetadataInvalid(
            "DOCTYPE/ENTITY declarations are refused".into(),
        ));
    }
    let descriptor = match text.parse::<EntityDescriptor>() {
        Ok(d) if d.idp_sso_descriptors.is_some() => d,
        first => {
            let many = text
                .parse::<samael::metadata::EntitiesDescriptor>()
                .ok()
                .map(|e| {
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
    Ok(IdpMetadata {
        entity_id,
        descriptor,
        certs,
        sso_redirect,
        sso_post,
        slo_redirect,
        slo_response_redirect,
    })
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
