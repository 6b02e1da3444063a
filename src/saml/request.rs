//! What we send: AuthnRequests (HTTP-Redirect binding) with our own
//! 128-bit request IDs, and the SP metadata document.

use base64::Engine as _;

use super::response::Loaded;
use super::Error;
use crate::saml::settings::Settings;

/// An AuthnRequest ready to send: its ID (to remember for InResponseTo)
/// and the IdP URL: with the HTTP-Redirect binding it carries
/// `SAMLRequest` (deflated, base64), `RelayState` and, when signed,
/// `SigAlg`/`Signature`; with HTTP-POST (`post` is Some) the browser
/// posts `post` (the base64 XML, signed inside when signing is on) and
/// `RelayState` to it.
#[derive(Debug, Clone)]
pub struct AuthnRedirect {
    pub id: String,
    pub url: String,
    pub post: Option<String>,
}

/// A request ID: 128 random bits (samael's own are 32-bit), as an
/// xs:ID (an NCName, so it starts with `_`).
pub fn new_request_id() -> String {
    let bytes = crate::identity::random_bytes::<16>();
    let mut id = String::with_capacity(33);
    id.push('_');
    for b in bytes {
        id.push_str(&format!("{b:02x}"));
    }
    id
}

pub fn authn_redirect(
    loaded: &Loaded,
    settings: &Settings,
    relay_state: &str,
) -> Result<AuthnRedirect, Error> {
    use samael::schema::{AuthnContextClassRef, AuthnContextComparison, RequestedAuthnContext};
    use samael::traits::ToXml as _;
    let fail = |e: Box<dyn std::error::Error>| Error::Build(e.to_string());
    let destination = match (settings.post_requests, &loaded.idp.sso_post) {
        (true, Some(post)) => post.clone(),
        (true, None) => {
            return Err(Error::Build(
                "saml.authn_request_binding = \"post\" but the IdP metadata has no HTTP-POST SingleSignOnService".into(),
            ))
        }
        (false, _) => loaded.idp.sso_redirect.clone(),
    };
    let mut req = loaded
        .sp
        .make_authentication_request(&destination)
        .map_err(|e| Error::Build(e.to_string()))?;
    req.id = new_request_id();
    req.force_authn = settings.force_authn.then_some(true);
    if !settings.requested_authn_context.is_empty() {
        req.requested_authn_context = Some(RequestedAuthnContext {
            authn_context_class_refs: Some(
                settings
                    .requested_authn_context
                    .iter()
                    .map(|c| AuthnContextClassRef {
                        value: Some(c.clone()),
                    })
                    .collect(),
            ),
            authn_context_decl_refs: None,
            comparison: Some(match settings.authn_context_comparison.as_str() {
                "minimum" => AuthnContextComparison::Minimum,
                "maximum" => AuthnContextComparison::Maximum,
                "better" => AuthnContextComparison::Better,
                _ => AuthnContextComparison::Exact,
            }),
        });
    }
    let key = match (settings.sign_requests, &loaded.sp_key) {
        (false, _) => None,
        (true, Some(k)) => Some(k),
        (true, None) => return Err(Error::Build("saml.sign_requests needs saml.sp_key".into())),
    };
    if settings.post_requests {
        // HTTP-POST (bindings §3.5): the XML carries an enveloped signature.
        let xml = match (key, &loaded.sp_cert_der) {
            (Some(key), Some(cert)) => {
                let cert = samael::crypto::CertificateDer::from(cert.clone());
                let mut sig = samael::signature::Signature::template(&req.id, &cert);
                for r in &mut sig.signed_info.reference {
                    r.digest_method.algorithm = samael::signature::DigestAlgorithm::Sha256;
                }
                req.signature = Some(sig);
                let der = key
                    .private_key_to_der()
                    .map_err(|e| Error::Build(e.to_string()))?;
                let signed = req.to_signed_xml(&der).map_err(fail);
                super::xmlsec_errors_to_tracing();
                signed?
            }
            _ => req.to_string().map_err(fail)?,
        };
        return Ok(AuthnRedirect {
            id: req.id,
            url: destination,
            post: Some(base64::engine::general_purpose::STANDARD.encode(xml)),
        });
    }
    let url = match key {
        Some(key) => super::logout::signed_redirect(
            &destination,
            super::logout::Kind::Request,
            &req.to_string().map_err(fail)?,
            Some(relay_state),
            key,
        )?,
        None => req
            .redirect(relay_state)
            .map_err(|e| Error::Build(e.to_string()))?
            .ok_or(Error::MetadataNoRedirectSso)?
            .to_string(),
    };
    Ok(AuthnRedirect {
        id: req.id,
        url,
        post: None,
    })
}

/// Our SP metadata: entityID, the ACS (HTTP-POST), the NameID formats we
/// take, the SP signing certificates when configured and the encryption
/// certificate (the current one, with the algorithms we decrypt); the
/// SingleLogoutService only with an SP key (our logout messages are
/// signed).
pub fn sp_metadata(s: &Settings, loaded: &Loaded) -> String {
    let mut xml = String::with_capacity(2048);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\n",
        xml_escape(&s.urls.entity_id)
    ));
    xml.push_str(&format!("  <md:SPSSODescriptor AuthnRequestsSigned=\"{}\" WantAssertionsSigned=\"true\" protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n", s.sign_requests));
    // The current certificate first, then those of a rollover window.
    for der in loaded.sp_cert_der.iter().chain(&loaded.sp_previous_certs) {
        xml.push_str(&format!(
            "    <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        ));
    }
    // The current certificate encrypts (IdPs encrypt to one certificate;
    // earlier keys still decrypt what IdPs with an old copy of this
    // metadata send, see `saml.sp_previous_keys`).
    if let (Some(der), Some(_)) = (&loaded.sp_cert_der, &loaded.sp_key) {
        xml.push_str(&format!(
            "    <md:KeyDescriptor use=\"encryption\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo>",
            base64::engine::general_purpose::STANDARD.encode(der)
        ));
        for alg in super::decrypt::ADVERTISED_ALGORITHMS {
            xml.push_str(&format!("<md:EncryptionMethod Algorithm=\"{alg}\"/>"));
        }
        xml.push_str("</md:KeyDescriptor>\n");
    }
    // SLO works only when we can sign our LogoutRequests/Responses.
    if loaded.sp_key.is_some() {
        for binding in ["HTTP-Redirect", "HTTP-POST"] {
            xml.push_str(&format!(
                "    <md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:{binding}\" Location=\"{}\"/>\n",
                xml_escape(&s.urls.slo_url)
            ));
        }
    }
    let mut formats = vec![
        "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress",
        "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent",
        "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified",
    ];
    if let Some(f) = s.name_id_format.as_deref() {
        formats.retain(|x| *x != f);
        formats.insert(0, f);
    }
    for f in formats {
        xml.push_str(&format!(
            "    <md:NameIDFormat>{}</md:NameIDFormat>\n",
            xml_escape(f)
        ));
    }
    xml.push_str(&format!(
        "    <md:AssertionConsumerService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST\" Location=\"{}\" index=\"0\" isDefault=\"true\"/>\n",
        xml_escape(&s.urls.acs_url)
    ));
    xml.push_str("  </md:SPSSODescriptor>\n</md:EntityDescriptor>\n");
    xml
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_128_bit_ncnames() {
        let a = new_request_id();
        let b = new_request_id();
        assert_ne!(a, b);
        assert_eq!(a.len(), 33);
        assert!(a.starts_with('_'));
        assert!(a[1..].bytes().all(|c| c.is_ascii_hexdigit()));
    }
}
