//! Single Logout (SAML profiles §4.4): the LogoutRequest we send when a
//! user signs out here, the LogoutResponse we accept for it, the
//! LogoutRequest an IdP sends us, and the LogoutResponse we answer.
//!
//! Messages travel by the HTTP-Redirect binding (bindings §3.4) signed in
//! the query string (§3.4.4.1: `SAMLRequest=…&RelayState=…&SigAlg=…`,
//! each value URL-encoded as sent; the signature is over those bytes),
//! with the SP key (`saml.sp_key`), RSA-SHA256. An IdP's LogoutRequest may
//! also come by HTTP-POST with an enveloped XML signature, verified by
//! xmlsec through samael and reduced to the signed element.
//!
//! Must not: accept any message that is not signed by an IdP metadata
//! certificate with an allowed algorithm, or touch HTTP types (the
//! endpoint hands in the raw query string or form field).

use std::io::{Read, Write};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private};
use quick_xml::events::Event;

use super::metadata::{contains_ci, CertInfo};
use super::{Error, SignatureAlgorithm};

pub const STATUS_SUCCESS: &str = "urn:oasis:names:tc:SAML:2.0:status:Success";
const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
/// Largest inflated message accepted (real ones are well under 4 KB).
const MAX_INFLATED: u64 = 64 * 1024;

/// What we sign query strings with (bindings §3.4.4.1).
pub const SIG_ALG: SignatureAlgorithm = SignatureAlgorithm::RsaSha256;

/// Which SAML message a query or form carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Request,
    Response,
}

impl Kind {
    pub fn param(self) -> &'static str {
        match self {
            Kind::Request => "SAMLRequest",
            Kind::Response => "SAMLResponse",
        }
    }
}

/// A LogoutRequest as read from a verified message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutRequest {
    pub id: String,
    pub issuer: Option<String>,
    pub destination: Option<String>,
    pub issue_instant: Option<String>,
    pub not_on_or_after: Option<String>,
    pub name_id: String,
    pub name_id_format: Option<String>,
    pub session_indexes: Vec<String>,
}

/// A LogoutResponse as read from a verified message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogoutResponse {
    pub id: String,
    pub in_response_to: Option<String>,
    pub issuer: Option<String>,
    pub destination: Option<String>,
    pub issue_instant: Option<String>,
    pub status: Option<String>,
    pub sub_status: Option<String>,
}

/// URL-encodes as `application/x-www-form-urlencoded` does (what
/// pysaml2, Shibboleth and most IdPs produce): only `A-Za-z0-9-_.~` stay.
pub fn url_encode(s: &str) -> String {
    const SET: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(s, SET).to_string()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The LogoutRequest XML for a session we end (SAML core §3.7.1).
pub fn logout_request_xml(
    id: &str,
    issuer: &str,
    destination: &str,
    name_id: &str,
    name_id_format: Option<&str>,
    session_index: Option<&str>,
    now: DateTime<Utc>,
) -> String {
    let format = name_id_format
        .map(|f| format!(" Format=\"{}\"", xml_escape(f)))
        .unwrap_or_default();
    let index = session_index
        .map(|i| format!("<samlp:SessionIndex>{}</samlp:SessionIndex>", xml_escape(i)))
        .unwrap_or_default();
    format!(
        "<samlp:LogoutRequest xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" NotOnOrAfter=\"{}\"><saml:Issuer>{}</saml:Issuer><saml:NameID{format}>{}</saml:NameID>{index}</samlp:LogoutRequest>",
        xml_escape(id),
        instant(now),
        xml_escape(destination),
        instant(now + chrono::Duration::minutes(10)),
        xml_escape(issuer),
        xml_escape(name_id),
    )
}

/// The LogoutResponse XML answering an IdP's LogoutRequest (SAML core
/// §3.7.2).
pub fn logout_response_xml(
    id: &str,
    in_response_to: &str,
    issuer: &str,
    destination: &str,
    status: &str,
    now: DateTime<Utc>,
) -> String {
    format!(
        "<samlp:LogoutResponse xmlns:samlp=\"{NS_PROTOCOL}\" xmlns:saml=\"{NS_ASSERTION}\" ID=\"{}\" Version=\"2.0\" IssueInstant=\"{}\" Destination=\"{}\" InResponseTo=\"{}\"><saml:Issuer>{}</saml:Issuer><samlp:Status><samlp:StatusCode Value=\"{}\"/></samlp:Status></samlp:LogoutResponse>",
        xml_escape(id),
        instant(now),
        xml_escape(destination),
        xml_escape(in_response_to),
        xml_escape(issuer),
        xml_escape(status),
    )
}

/// `location?SAMLRequest=…&RelayState=…&SigAlg=…&Signature=…`: the
/// message deflated (RFC 1951) and base64-encoded, the query signed with
/// `key` (bindings §3.4.4.1).
pub fn signed_redirect(
    location: &str,
    kind: Kind,
    xml: &str,
    relay_state: Option<&str>,
    key: &PKey<Private>,
) -> Result<String, Error> {
    let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(xml.as_bytes())
        .map_err(|e| Error::Build(e.to_string()))?;
    let deflated = enc.finish().map_err(|e| Error::Build(e.to_string()))?;
    let mut query = format!(
        "{}={}",
        kind.param(),
        url_encode(&base64::engine::general_purpose::STANDARD.encode(deflated))
    );
    if let Some(r) = relay_state.filter(|r| !r.is_empty()) {
        query.push_str("&RelayState=");
        query.push_str(&url_encode(r));
    }
    query.push_str("&SigAlg=");
    query.push_str(&url_encode(SIG_ALG.uri()));
    let sig = sign(key, query.as_bytes())?;
    query.push_str("&Signature=");
    query.push_str(&url_encode(
        &base64::engine::general_purpose::STANDARD.encode(sig),
    ));
    let glue = if location.contains('?') { '&' } else { '?' };
    Ok(format!("{location}{glue}{query}"))
}

/// RSA-SHA256 (PKCS#1 v1.5) with openssl.
pub fn sign(key: &PKey<Private>, data: &[u8]) -> Result<Vec<u8>, Error> {
    let fail = |e: openssl::error::ErrorStack| Error::Build(format!("signing failed: {e}"));
    let mut signer = openssl::sign::Signer::new(MessageDigest::sha256(), key).map_err(fail)?;
    signer.update(data).map_err(fail)?;
    signer.sign_to_vec().map_err(fail)
}

fn digest(alg: SignatureAlgorithm) -> MessageDigest {
    match alg {
        SignatureAlgorithm::RsaSha1 => MessageDigest::sha1(),
        SignatureAlgorithm::RsaSha256 | SignatureAlgorithm::EcdsaSha256 => MessageDigest::sha256(),
        SignatureAlgorithm::RsaSha384 | SignatureAlgorithm::EcdsaSha384 => MessageDigest::sha384(),
        SignatureAlgorithm::RsaSha512 | SignatureAlgorithm::EcdsaSha512 => MessageDigest::sha512(),
    }
}

fn is_ecdsa(alg: SignatureAlgorithm) -> bool {
    matches!(
        alg,
        SignatureAlgorithm::EcdsaSha256
            | SignatureAlgorithm::EcdsaSha384
            | SignatureAlgorithm::EcdsaSha512
    )
}

/// Verifies an HTTP-Redirect message's query signature against the IdP
/// certificates and returns the inflated XML and the RelayState.
///
/// The signed string is rebuilt from the parameters *as received* (their
/// URL encoding untouched), in the order §3.4.4.1 fixes.
pub fn verify_redirect(
    raw_query: &str,
    kind: Kind,
    certs: &[CertInfo],
    allowed: &[SignatureAlgorithm],
) -> Result<(String, Option<String>), Error> {
    let mut message = None;
    let mut relay = None;
    let mut sig_alg = None;
    let mut signature = None;
    for pair in raw_query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let slot = match k {
            _ if k == kind.param() => &mut message,
            "RelayState" => &mut relay,
            "SigAlg" => &mut sig_alg,
            "Signature" => &mut signature,
            _ => continue,
        };
        if slot.is_some() {
            return Err(Error::Logout(format!("the query repeats {k}")));
        }
        *slot = Some(v);
    }
    let message = message.ok_or(Error::MissingResponse)?;
    let (Some(raw_alg), Some(raw_sig)) = (sig_alg, signature) else {
        return Err(Error::Unsigned);
    };
    let alg_uri = form_decode(raw_alg);
    let alg = SignatureAlgorithm::parse(&alg_uri)
        .filter(|a| allowed.contains(a) && a.uri() == alg_uri)
        .ok_or_else(|| Error::SignatureAlgorithm(alg_uri.clone()))?;
    let sig = base64::engine::general_purpose::STANDARD
        .decode(percent_decode(raw_sig).trim())
        .map_err(|_| Error::Base64)?;
    let mut signed = format!("{}={message}", kind.param());
    if let Some(r) = relay {
        signed.push_str("&RelayState=");
        signed.push_str(r);
    }
    signed.push_str("&SigAlg=");
    signed.push_str(raw_alg);
    let verified = certs.iter().any(|c| {
        let Ok(key) = openssl::x509::X509::from_der(&c.der).and_then(|x| x.public_key()) else {
            return false;
        };
        let key_is_ec = key.ec_key().is_ok();
        if key_is_ec != is_ecdsa(alg) {
            return false;
        }
        let Ok(mut v) = openssl::sign::Verifier::new(digest(alg), &key) else {
            return false;
        };
        // XML-DSig ECDSA signatures are r||s, not DER.
        let sig = if key_is_ec {
            match ecdsa_raw_to_der(&sig) {
                Some(d) => d,
                None => return false,
            }
        } else {
            sig.clone()
        };
        v.update(signed.as_bytes()).is_ok() && v.verify(&sig).unwrap_or(false)
    });
    if !verified {
        return Err(Error::SignatureInvalid);
    }
    let xml = inflate(&percent_decode(message))?;
    Ok((xml, relay.map(form_decode)))
}

fn ecdsa_raw_to_der(raw: &[u8]) -> Option<Vec<u8>> {
    if raw.is_empty() || raw.len() % 2 != 0 {
        return None;
    }
    let (r, s) = raw.split_at(raw.len() / 2);
    let r = openssl::bn::BigNum::from_slice(r).ok()?;
    let s = openssl::bn::BigNum::from_slice(s).ok()?;
    openssl::ecdsa::EcdsaSig::from_private_components(r, s)
        .ok()?
        .to_der()
        .ok()
}

/// `%XX` decoding only (base64 values never contain spaces, so a literal
/// `+` stays a `+`).
fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Form decoding (`+` is a space), for RelayState and SigAlg.
fn form_decode(s: &str) -> String {
    percent_decode(&s.replace('+', " "))
}

fn inflate(b64: &str) -> Result<String, Error> {
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| Error::Base64)?;
    let mut out = Vec::new();
    flate2::read::DeflateDecoder::new(bytes.as_slice())
        .take(MAX_INFLATED + 1)
        .read_to_end(&mut out)
        .map_err(|_| Error::Malformed("the message is not DEFLATE-compressed".into()))?;
    if out.len() as u64 > MAX_INFLATED {
        return Err(Error::Malformed("the message is too large".into()));
    }
    String::from_utf8(out).map_err(|_| Error::NotUtf8)
}

/// Verifies an HTTP-POST message (base64 XML with an enveloped signature
/// of the root element) and returns the signed element only.
pub fn verify_post(
    b64: &str,
    certs: &[CertInfo],
    allowed: &[SignatureAlgorithm],
) -> Result<String, Error> {
    let compact: String = b64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(compact.as_bytes())
        .map_err(|_| Error::Base64)?;
    let xml = String::from_utf8(bytes).map_err(|_| Error::NotUtf8)?;
    if contains_ci(&xml, "<!DOCTYPE") {
        return Err(Error::Doctype);
    }
    if contains_ci(&xml, "<!ENTITY") {
        return Err(Error::Entity);
    }
    let (signatures, algorithms) = count_signatures(&xml)?;
    if signatures == 0 {
        return Err(Error::Unsigned);
    }
    if signatures > 1 {
        return Err(Error::Logout(format!(
            "the message carries {signatures} signatures; exactly one is accepted"
        )));
    }
    for alg in &algorithms {
        if !SignatureAlgorithm::parse(alg).is_some_and(|a| allowed.contains(&a)) {
            return Err(Error::SignatureAlgorithm(alg.clone()));
        }
    }
    let ders: Vec<samael::crypto::CertificateDer> = certs
        .iter()
        .map(|c| samael::crypto::CertificateDer::from(c.der.clone()))
        .collect();
    let samael_algs: Option<Vec<_>> = allowed.iter().map(|a| a.samael()).collect();
    use samael::crypto::CryptoProvider as _;
    let result = samael::crypto::Crypto::reduce_xml_to_signed_with_allowed_algorithms(
        &xml,
        &ders,
        samael::crypto::ReduceMode::PreDigest,
        samael_algs.as_deref(),
    );
    super::xmlsec_errors_to_tracing();
    result.map_err(|_| Error::SignatureInvalid)
}

pub(crate) fn count_signatures(xml: &str) -> Result<(usize, Vec<String>), Error> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut n = 0;
    let mut algs = Vec::new();
    loop {
        match reader
            .read_event()
            .map_err(|e| Error::Malformed(format!("XML error: {e}")))?
        {
            Event::DocType(_) => return Err(Error::Doctype),
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                b"Signature" => n += 1,
                b"SignatureMethod" => {
                    for a in e.attributes().flatten() {
                        if a.key.as_ref() == b"Algorithm" {
                            algs.push(String::from_utf8_lossy(&a.value).into_owned());
                        }
                    }
                }
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok((n, algs))
}

/// One pass over a verified message: the root's attributes, and the text
/// and attributes of its direct children (Issuer, NameID, SessionIndex,
/// Status/StatusCode).
struct Flat {
    root: String,
    attrs: Vec<(String, String)>,
    /// (local name, attributes, text) of the root's children and of the
    /// StatusCodes below Status.
    children: Vec<Child>,
}

/// (local name, attributes, text).
type Child = (String, Vec<(String, String)>, String);

fn flatten(xml: &str) -> Result<Flat, Error> {
    if contains_ci(xml, "<!DOCTYPE") {
        return Err(Error::Doctype);
    }
    if contains_ci(xml, "<!ENTITY") {
        return Err(Error::Entity);
    }
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut flat = Flat {
        root: String::new(),
        attrs: Vec::new(),
        children: Vec::new(),
    };
    let mut stack: Vec<String> = Vec::new();
    let mut text_for: Option<usize> = None;
    let attrs_of = |e: &quick_xml::events::BytesStart| -> Result<Vec<(String, String)>, Error> {
        let mut out = Vec::new();
        for a in e.attributes() {
            let a = a.map_err(|e| Error::Malformed(e.to_string()))?;
            let v = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| Error::Malformed(e.to_string()))?
                .into_owned();
            out.push((
                String::from_utf8_lossy(a.key.local_name().as_ref()).into_owned(),
                v,
            ));
        }
        Ok(out)
    };
    loop {
        let ev = reader
            .read_event()
            .map_err(|e| Error::Malformed(format!("XML error: {e}")))?;
        match ev {
            Event::DocType(_) => return Err(Error::Doctype),
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(ev, Event::Empty(_));
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                let depth = stack.len();
                if depth == 0 {
                    flat.root = local.clone();
                    flat.attrs = attrs_of(e)?;
                } else if depth == 1
                    || (local == "StatusCode" && stack.get(1).is_some_and(|s| s == "Status"))
                {
                    flat.children
                        .push((local.clone(), attrs_of(e)?, String::new()));
                    if depth == 1 && !empty {
                        text_for = Some(flat.children.len() - 1);
                    }
                }
                if !empty {
                    stack.push(local);
                }
            }
            Event::Text(t) => {
                if let (Some(i), 2) = (text_for, stack.len()) {
                    let t = t.decode().map_err(|e| Error::Malformed(e.to_string()))?;
                    flat.children[i].2.push_str(&t);
                }
            }
            Event::GeneralRef(r) => {
                if let (Some(i), 2) = (text_for, stack.len()) {
                    let c = match r.resolve_char_ref() {
                        Ok(Some(c)) => c,
                        _ => match &*r {
                            b"amp" => '&',
                            b"lt" => '<',
                            b"gt" => '>',
                            b"quot" => '"',
                            b"apos" => '\'',
                            _ => return Err(Error::Entity),
                        },
                    };
                    flat.children[i].2.push(c);
                }
            }
            Event::CData(t) => {
                if let (Some(i), 2) = (text_for, stack.len()) {
                    flat.children[i].2.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::End(_) => {
                if stack.len() == 2 {
                    text_for = None;
                }
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(flat)
}

fn attr(attrs: &[(String, String)], name: &str) -> Option<String> {
    attrs
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Reads a verified LogoutRequest.
pub fn parse_request(xml: &str) -> Result<LogoutRequest, Error> {
    let f = flatten(xml)?;
    if f.root != "LogoutRequest" {
        return Err(Error::Malformed(format!(
            "expected a LogoutRequest, got {}",
            f.root
        )));
    }
    let mut r = LogoutRequest {
        id: attr(&f.attrs, "ID").ok_or_else(|| Error::Malformed("no ID".into()))?,
        destination: attr(&f.attrs, "Destination"),
        issue_instant: attr(&f.attrs, "IssueInstant"),
        not_on_or_after: attr(&f.attrs, "NotOnOrAfter"),
        ..Default::default()
    };
    for (name, attrs, text) in f.children {
        match name.as_str() {
            "Issuer" => r.issuer = Some(text.trim().to_string()),
            "NameID" => {
                r.name_id = text.trim().to_string();
                r.name_id_format = attr(&attrs, "Format");
            }
            "EncryptedID" | "BaseID" => {
                return Err(Error::Logout(format!(
                    "the LogoutRequest identifies the user by {name}, which is not supported; send a plain NameID"
                )))
            }
            "SessionIndex" => r.session_indexes.push(text.trim().to_string()),
            _ => {}
        }
    }
    if r.name_id.is_empty() {
        return Err(Error::MissingNameId);
    }
    Ok(r)
}

/// Reads a verified LogoutResponse.
pub fn parse_response(xml: &str) -> Result<LogoutResponse, Error> {
    let f = flatten(xml)?;
    if f.root != "LogoutResponse" {
        return Err(Error::Malformed(format!(
            "expected a LogoutResponse, got {}",
            f.root
        )));
    }
    let mut r = LogoutResponse {
        id: attr(&f.attrs, "ID").ok_or_else(|| Error::Malformed("no ID".into()))?,
        in_response_to: attr(&f.attrs, "InResponseTo"),
        destination: attr(&f.attrs, "Destination"),
        issue_instant: attr(&f.attrs, "IssueInstant"),
        ..Default::default()
    };
    for (name, attrs, text) in f.children {
        match name.as_str() {
            "Issuer" => r.issuer = Some(text.trim().to_string()),
            "StatusCode" => {
                let v = attr(&attrs, "Value");
                if r.status.is_none() {
                    r.status = v;
                } else if r.sub_status.is_none() {
                    r.sub_status = v;
                }
            }
            _ => {}
        }
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair() -> (PKey<Private>, CertInfo) {
        let (key, cert) = crate::saml::generate_sp_pair("t").expect("pair");
        let key = PKey::private_key_from_pem(&key).expect("key");
        let der = openssl::x509::X509::from_pem(&cert)
            .and_then(|c| c.to_der())
            .expect("der");
        (
            key,
            CertInfo {
                der,
                subject: "t".into(),
                not_after: String::new(),
                expired: false,
            },
        )
    }

    #[test]
    fn a_signed_redirect_verifies_and_any_change_breaks_it() {
        let (key, cert) = pair();
        let (_, other) = pair();
        let xml = logout_request_xml(
            "_1",
            "https://sp",
            "https://idp/slo",
            "a@b&c",
            None,
            Some("s1"),
            Utc::now(),
        );
        let url = signed_redirect(
            "https://idp/slo?x=1",
            Kind::Request,
            &xml,
            Some("/p q"),
            &key,
        )
        .expect("sign");
        let query = url.split_once("?x=1&").expect("query").1;
        let all = [SignatureAlgorithm::RsaSha256];
        let (got, relay) = verify_redirect(query, Kind::Request, std::slice::from_ref(&cert), &all)
            .expect("verifies");
        assert_eq!(got, xml);
        assert_eq!(relay.as_deref(), Some("/p q"));
        let r = parse_request(&got).expect("parse");
        assert_eq!(r.name_id, "a@b&c");
        assert_eq!(r.session_indexes, vec!["s1".to_string()]);
        assert_eq!(r.issuer.as_deref(), Some("https://sp"));

        let tampered = query.replace("RelayState=%2Fp", "RelayState=%2Fq");
        assert!(matches!(
            verify_redirect(&tampered, Kind::Request, std::slice::from_ref(&cert), &all),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            verify_redirect(query, Kind::Request, &[other], &all),
            Err(Error::SignatureInvalid)
        ));
        let unsigned = query.split("&SigAlg=").next().expect("head");
        assert!(matches!(
            verify_redirect(unsigned, Kind::Request, std::slice::from_ref(&cert), &all),
            Err(Error::Unsigned)
        ));
        assert!(matches!(
            verify_redirect(
                query,
                Kind::Request,
                std::slice::from_ref(&cert),
                &[SignatureAlgorithm::RsaSha512]
            ),
            Err(Error::SignatureAlgorithm(_))
        ));
        assert!(matches!(
            verify_redirect(query, Kind::Response, &[cert], &all),
            Err(Error::MissingResponse)
        ));
    }

    #[test]
    fn responses_are_read_with_status_and_in_response_to() {
        let xml = logout_response_xml(
            "_r",
            "_1",
            "https://sp",
            "https://idp/slo",
            STATUS_SUCCESS,
            Utc::now(),
        );
        let r = parse_response(&xml).expect("parse");
        assert_eq!(r.in_response_to.as_deref(), Some("_1"));
        assert_eq!(r.status.as_deref(), Some(STATUS_SUCCESS));
        assert_eq!(r.issuer.as_deref(), Some("https://sp"));
        assert!(parse_request(&xml).is_err());
        assert!(matches!(
            parse_response("<!DOCTYPE x><a/>"),
            Err(Error::Doctype)
        ));
    }
}
