//! `EncryptedAssertion` (SAML core §2.3.4) decrypted with the SP key(s), by
//! libxmlsec1's XML-Encryption implementation (the same library samael
//! links for signatures; samael's own decrypt path cannot serve, see
//! `shared/notes-samael.md`).
//!
//! What happens here, and nothing more: the one `EncryptedAssertion` of a
//! Response is decrypted (`xmlSecEncCtxDecryptToBuffer`: the session key
//! from its `EncryptedKey` by RSA-OAEP with an SP private key, then the
//! content), the plaintext is parsed by libxml2 in the element's own
//! namespace context, and the `Assertion` it holds takes the place of the
//! `EncryptedAssertion`. The result is handed back to the normal
//! validation (signature of the assertion, or of the Response verified
//! before decryption, and every protocol check): decrypting proves
//! nothing about who wrote the assertion.
//!
//! Which algorithms and elements may appear is decided before libxmlsec1
//! sees the document (`ALLOWED_ALGORITHMS`, `ALLOWED_ELEMENTS`, checked by
//! `response::prescan`): no RSA 1.5 key transport (Bleichenbacher), no
//! 3DES, no key material in the message, no `CipherReference` or
//! `RetrievalMethod` (they make libxmlsec1 fetch URIs). Every failure is
//! one error kind with one page for the user (no decryption oracle); the
//! log line says why.

use std::os::raw::{c_char, c_int};

use libxml::bindings as xml;
use openssl::pkey::{PKey, Private};

use super::sys;
use crate::saml::Error;

pub const XMLENC_NS: &str = "http://www.w3.org/2001/04/xmlenc#";
const SAML_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Content encryption (AES-CBC, AES-GCM) and key transport (RSA-OAEP with
/// MGF1; libxmlsec1 1.2 has no xmlenc11#rsa-oaep), plus the OAEP digests.
pub const ALLOWED_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes192-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2009/xmlenc11#aes192-gcm",
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

/// What the SP metadata advertises (`md:EncryptionMethod`), preferred first.
pub const ADVERTISED_ALGORITHMS: &[&str] = &[
    "http://www.w3.org/2009/xmlenc11#aes256-gcm",
    "http://www.w3.org/2009/xmlenc11#aes128-gcm",
    "http://www.w3.org/2001/04/xmlenc#aes256-cbc",
    "http://www.w3.org/2001/04/xmlenc#aes128-cbc",
    "http://www.w3.org/2001/04/xmlenc#rsa-oaep-mgf1p",
];

/// Local names allowed inside `EncryptedAssertion` (XML-Enc §3, XML-DSig
/// §4.4 KeyInfo without key values, retrieval methods or signatures).
pub const ALLOWED_ELEMENTS: &[&str] = &[
    "EncryptedData",
    "EncryptedKey",
    "EncryptionMethod",
    "KeySize",
    "OAEPparams",
    "DigestMethod",
    "MGF",
    "KeyInfo",
    "KeyName",
    "X509Data",
    "X509Certificate",
    "X509IssuerSerial",
    "X509IssuerName",
    "X509SerialNumber",
    "X509SubjectName",
    "X509SKI",
    "CipherData",
    "CipherValue",
    "ReferenceList",
    "DataReference",
    "KeyReference",
    "CarriedKeyName",
];

/// libxmlsec1 must be initialised once, by samael (its guard also shuts it
/// down): loading a key through samael does that. A throwaway certificate
/// is loaded (a bad one would make libxmlsec1 print errors to stderr
/// before our callback is in place); the document has no signature, so
/// nothing is verified.
pub(crate) fn ensure_xmlsec() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        use samael::crypto::CryptoProvider as _;
        let cert = throwaway_cert_der().unwrap_or_default();
        let _ = samael::crypto::XmlSec::verify_signed_xml(
            b"<x/>",
            &samael::crypto::CertificateDer::from(cert),
            None,
        );
        super::errors_to_tracing();
    });
}

/// A self-signed P-256 certificate nobody trusts for anything.
fn throwaway_cert_der() -> Result<Vec<u8>, openssl::error::ErrorStack> {
    use openssl::{asn1::Asn1Time, ec, hash::MessageDigest, nid::Nid, x509};
    let group = ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1)?;
    let key = PKey::from_ec_key(ec::EcKey::generate(&group)?)?;
    let mut name = x509::X509NameBuilder::new()?;
    name.append_entry_by_text("CN", "authgate xmlsec init")?;
    let name = name.build();
    let mut b = x509::X509Builder::new()?;
    b.set_subject_name(&name)?;
    b.set_issuer_name(&name)?;
    b.set_pubkey(&key)?;
    b.set_not_before(Asn1Time::days_from_now(0)?.as_ref())?;
    b.set_not_after(Asn1Time::days_from_now(1)?.as_ref())?;
    b.sign(&key, MessageDigest::sha256())?;
    b.build().to_der()
}

/// A libxml2 document, freed on drop (serialised through the libxml crate,
/// which takes it over).
struct Doc(Option<libxml::tree::Document>);

impl Doc {
    fn parse(text: &str) -> Result<Doc, Error> {
        let len = c_int::try_from(text.len())
            .map_err(|_| Error::Malformed("the response is too large".into()))?;
        // No network, no recovery from malformed input, no entities
        // substituted (DTDs were refused before), no blank stripping (the
        // signature digests depend on every node).
        let opts = xml::xmlParserOption_XML_PARSE_NONET as c_int;
        // SAFETY: the buffer is valid for `len` bytes for the call; the
        // result is a new document or NULL.
        let ptr = unsafe {
            xml::xmlReadMemory(
                text.as_ptr() as *const c_char,
                len,
                std::ptr::null(),
                c"UTF-8".as_ptr(),
                opts,
            )
        };
        if ptr.is_null() {
            return Err(Error::Malformed(
                "the response is not well-formed XML".into(),
            ));
        }
        Ok(Doc(Some(libxml::tree::Document::new_ptr(ptr))))
    }

    fn ptr(&self) -> xml::xmlDocPtr {
        self.0
            .as_ref()
            .map(|d| d.doc_ptr())
            .unwrap_or(std::ptr::null_mut())
    }

    fn into_string(mut self) -> String {
        self.0.take().map(|d| d.to_string()).unwrap_or_default()
    }
}

/// The element's local name and namespace URI.
///
/// SAFETY (callers): `n` is a live node of a live document.
unsafe fn name_of(n: xml::xmlNodePtr) -> (String, String) {
    let c = |p: *const u8| {
        if p.is_null() {
            String::new()
        } else {
            unsafe { std::ffi::CStr::from_ptr(p as *const c_char) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let node = unsafe { &*n };
    let ns = if node.ns.is_null() {
        String::new()
    } else {
        c(unsafe { (*node.ns).href })
    };
    (c(node.name), ns)
}

/// The element children of `n`.
///
/// SAFETY (callers): `n` is a live node of a live document.
unsafe fn element_children(n: xml::xmlNodePtr) -> Vec<xml::xmlNodePtr> {
    let mut out = Vec::new();
    let mut c = unsafe { (*n).children };
    while !c.is_null() {
        if unsafe { (*c).type_ } == xml::xmlElementType_XML_ELEMENT_NODE {
            out.push(c);
        }
        c = unsafe { (*c).next };
    }
    out
}

/// Decrypts `EncryptedData` with one private key; None when it does not
/// open with this key.
///
/// SAFETY (callers): `enc_data` is a live node of a live document.
unsafe fn decrypt_with(enc_data: xml::xmlNodePtr, key: &PKey<Private>) -> Option<Vec<u8>> {
    // The PEM copy of the private key is wiped when dropped.
    let pem = zeroize::Zeroizing::new(key.private_key_to_pem_pkcs8().ok()?);
    // SAFETY: no arguments; a new manager or NULL, destroyed once (drop).
    let mngr = KeysMngr(unsafe { sys::xmlSecKeysMngrCreate() });
    if mngr.0.is_null() {
        return None;
    }
    // SAFETY: a live manager, initialised once.
    if unsafe { sys::xmlSecOpenSSLAppDefaultKeysMngrInit(mngr.0) } < 0 {
        return None;
    }
    let k = super::Key::from_pem(&pem)?;
    // SAFETY: a live manager and key; on success the manager owns the key.
    if unsafe { sys::xmlSecOpenSSLAppDefaultKeysMngrAdoptKey(mngr.0, k.0) } < 0 {
        // Not adopted, so still ours: `k` destroys it.
        return None;
    }
    // Adopted: the manager destroys it.
    k.into_raw();
    // SAFETY: a live, initialised manager. The context is declared after
    // the manager, so it is dropped (destroyed) first.
    let ctx = EncCtx(unsafe { sys::xmlSecEncCtxCreate(mngr.0) });
    if ctx.0.is_null() {
        return None;
    }
    // SAFETY: a live context; `enc_data` is a live node of a live document
    // (the caller's promise). libxml2's and bindgen's `xmlNode` are the
    // same C struct.
    let buf = unsafe { sys::xmlSecEncCtxDecryptToBuffer(ctx.0, enc_data.cast()) };
    if buf.is_null() {
        return None;
    }
    // SAFETY: the result buffer belongs to the context, alive until `ctx`
    // drops at the end of this function.
    let (data, size) = unsafe { (sys::xmlSecBufferGetData(buf), sys::xmlSecBufferGetSize(buf)) };
    if data.is_null() {
        return None;
    }
    let size = usize::try_from(size).ok()?;
    // SAFETY: libxmlsec1's buffer holds `size` initialised bytes at `data`.
    Some(unsafe { std::slice::from_raw_parts(data, size) }.to_vec())
}

/// A libxmlsec1 keys manager, destroyed when dropped.
struct KeysMngr(sys::xmlSecKeysMngrPtr);

impl Drop for KeysMngr {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: made by xmlSecKeysMngrCreate, destroyed once.
            unsafe { sys::xmlSecKeysMngrDestroy(self.0) }
        }
    }
}

/// A libxmlsec1 encryption context, destroyed when dropped.
struct EncCtx(sys::xmlSecEncCtxPtr);

impl Drop for EncCtx {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: made by xmlSecEncCtxCreate, destroyed once, before its
            // keys manager.
            unsafe { sys::xmlSecEncCtxDestroy(self.0) }
        }
    }
}

/// `xml` is a Response with exactly one `EncryptedAssertion`, a child of
/// the root (the caller's prescan established that, and verified the
/// Response signature if there is one). Returns the document with the
/// decrypted `Assertion` in the `EncryptedAssertion`'s place and without
/// the Response's own `ds:Signature` (it covered the ciphertext and was
/// verified before; it cannot verify over the plaintext).
pub fn decrypt_response(xml_text: &str, keys: &[PKey<Private>]) -> Result<String, Error> {
    if keys.is_empty() {
        return Err(Error::NoDecryptionKey);
    }
    ensure_xmlsec();
    let doc = Doc::parse(xml_text)?;
    let fail = |why: &str| Error::Decrypt(why.to_string());
    // Every node pointer below comes from `doc`, which lives until the end
    // of this function; nodes are freed only after being unlinked.
    // SAFETY: a live document.
    let root = unsafe { xml::xmlDocGetRootElement(doc.ptr()) };
    if root.is_null() {
        return Err(Error::Malformed("the document has no root element".into()));
    }
    // SAFETY (each `name_of` / `element_children` below): live nodes of `doc`.
    let children = unsafe { element_children(root) };
    let encrypted: Vec<_> = children
        .iter()
        .copied()
        .filter(|&c| unsafe { name_of(c) } == ("EncryptedAssertion".into(), SAML_NS.into()))
        .collect();
    let [enc_assertion] = encrypted[..] else {
        return Err(Error::AssertionCount {
            assertions: 0,
            encrypted: encrypted.len(),
        });
    };
    let data: Vec<_> = unsafe { element_children(enc_assertion) }
        .into_iter()
        .filter(|&c| unsafe { name_of(c) } == ("EncryptedData".into(), XMLENC_NS.into()))
        .collect();
    let [enc_data] = data[..] else {
        return Err(fail(
            "the EncryptedAssertion does not hold exactly one EncryptedData",
        ));
    };
    let plain = keys
        .iter()
        // SAFETY: a live node of `doc`.
        .find_map(|k| unsafe { decrypt_with(enc_data, k) })
        .ok_or_else(|| {
            fail(if keys.len() == 1 {
                "it does not open with the SP key (encrypted to another certificate, or altered)"
            } else {
                "it opens with none of the SP keys (encrypted to another certificate, or altered)"
            })
        });
    super::errors_to_tracing();
    let plain = plain?;
    let mut bytes: &[u8] = &plain;
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        bytes = rest;
    }
    let text = std::str::from_utf8(bytes).map_err(|_| fail("the plaintext is not UTF-8"))?;
    let mut text = text.trim_start();
    if text.starts_with("<?xml") {
        let end = text.find("?>").ok_or_else(|| fail("bad XML declaration"))?;
        text = &text[end + 2..];
    }
    if crate::saml::metadata::contains_ci(text, "<!DOCTYPE")
        || crate::saml::metadata::contains_ci(text, "<!ENTITY")
    {
        return Err(Error::Doctype);
    }
    let len = c_int::try_from(text.len()).map_err(|_| fail("the plaintext is too large"))?;
    let mut list: xml::xmlNodePtr = std::ptr::null_mut();
    // Parsed where the assertion was encrypted from: prefixes declared
    // on the Response resolve as the IdP meant them.
    // SAFETY: a live node; the buffer is valid for `len` bytes; `list`
    // receives a new node list (ours to free) or stays NULL.
    let rc = unsafe {
        xml::xmlParseInNodeContext(
            enc_assertion,
            text.as_ptr() as *const c_char,
            len,
            xml::xmlParserOption_XML_PARSE_NONET as c_int,
            &mut list,
        )
    };
    if rc != xml::xmlParserErrors_XML_ERR_OK || list.is_null() {
        if !list.is_null() {
            // SAFETY: the list is ours and linked nowhere.
            unsafe { xml::xmlFreeNodeList(list) };
        }
        return Err(fail("the plaintext is not well-formed XML"));
    }
    // Exactly one element, a saml:Assertion; nothing but blanks around.
    let mut assertion: xml::xmlNodePtr = std::ptr::null_mut();
    let mut bad = false;
    let mut n = list;
    while !n.is_null() {
        // SAFETY: `n` walks the live list libxml2 returned.
        let (kind, next) = unsafe { ((*n).type_, (*n).next) };
        if kind == xml::xmlElementType_XML_ELEMENT_NODE {
            // SAFETY: a live node of the list.
            if assertion.is_null() && unsafe { name_of(n) } == ("Assertion".into(), SAML_NS.into())
            {
                assertion = n;
            } else {
                bad = true;
            }
        } else if unsafe { xml::xmlIsBlankNode(n) } == 0 {
            // SAFETY (above): a live node of the list.
            bad = true;
        }
        n = next;
    }
    if bad || assertion.is_null() {
        // SAFETY: the list is ours and linked nowhere.
        unsafe { xml::xmlFreeNodeList(list) };
        return Err(fail("the plaintext is not exactly one saml:Assertion"));
    }
    let rest = if list == assertion {
        // SAFETY: a live node of the list.
        unsafe { (*assertion).next }
    } else {
        list
    };
    // SAFETY: `assertion` is a live node; unlinked, it is ours alone, and
    // what remains of the list (`rest`) is freed once.
    unsafe {
        xml::xmlUnlinkNode(assertion);
        if !rest.is_null() {
            xml::xmlFreeNodeList(rest);
        }
    }
    // SAFETY: both live; on success the document owns the assertion.
    if unsafe { xml::xmlAddPrevSibling(enc_assertion, assertion) }.is_null() {
        // SAFETY: not added, so still ours: freed once.
        unsafe { xml::xmlFreeNode(assertion) };
        return Err(fail("the assertion could not be put in place"));
    }
    // Declarations the assertion used from the EncryptedAssertion are
    // copied onto it before that element goes.
    // SAFETY: a live document and a node in it.
    if unsafe { xml::xmlReconciliateNs(doc.ptr(), assertion) } < 0 {
        return Err(fail("the assertion's namespaces could not be kept"));
    }
    // SAFETY: a live node, unlinked first, then freed once.
    unsafe {
        xml::xmlUnlinkNode(enc_assertion);
        xml::xmlFreeNode(enc_assertion);
    }
    // SAFETY: live nodes of `doc`; each signature unlinked, then freed once.
    for c in unsafe { element_children(root) } {
        if unsafe { name_of(c) } == ("Signature".into(), DSIG_NS.into()) {
            unsafe {
                xml::xmlUnlinkNode(c);
                xml::xmlFreeNode(c);
            }
        }
    }
    Ok(doc.into_string())
}
