//! What we send: AuthnRequests (HTTP-Redirect binding) with our own
//! 128-bit request IDs, and the SP metadata document.

use base64::Engine as _;

use super::response::Loaded;
use super::Error;
use crate::config::saml::Saml as Settings;

/// An AuthnRequest ready to send: its ID (to remember for InResponseTo)
/// and the IdP URL carrying `SAMLRequest` (deflated, base64) and
/// `RelayState`.
#[derive(Debug, Clone)]
pub struct AuthnRedirect {
    pub id: String,
    pub url: String,
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
    _settings: &Settings,
    relay_state: &str,
) -> Result<AuthnRedirect, Error> {
    let mut req = loaded
        .sp
        .make_authentication_request(&loaded.idp.sso_redirect)
        .map_err(|e| Error::Build(e.to_string()))?;
    req.id = new_request_id();
    req.force_authn = None;
    let url = req
        .redirect(relay_state)
        .map_err(|e| Error::Build(e.to_string()))?
        .ok_or(Error::MetadataNoRedirectSso)?;
    Ok(AuthnRedirect {
        id: req.id,
        url: url.to_string(),
    })
}

/// Our SP metadata: entityID, the ACS (HTTP-POST), the NameID formats we
/// take, and the SP signing certificate when configured. No encryption
/// key is advertised (samael cannot decrypt what it would advertise); the
/// SingleLogoutService only with an SP key (our logout messages are
/// signed).
pub fn sp_metadata(s: &Settings) -> String {
    let mut xml = String::with_capacity(2048);
    xml.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    xml.push_str(&format!(
        "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\" entityID=\"{}\">\n",
        xml_escape(&s.entity_id)
    ));
    xml.push_str("  <md:SPSSODescriptor AuthnRequestsSigned=\"false\" WantAssertionsSigned=\"true\" protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\">\n");
    if let Some(der) = &s.sp_cert_der {
        xml.push_str(&format!(
            "    <md:KeyDescriptor use=\"signing\"><ds:KeyInfo><ds:X509Data><ds:X509Certificate>{}</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>\n",
            base64::engine::general_purpose::STANDARD.encode(der)
        ));
    }
    // SLO works only when we can sign our LogoutRequests/Responses.
    if s.sp_key_pem.is_some() {
        for binding in ["HTTP-Redirect", "HTTP-POST"] {
            xml.push_str(&format!(
                "    <md:SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:{binding}\" Location=\"{}\"/>\n",
                xml_escape(&s.slo_url)
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
        xml_escape(&s.acs_url)
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
