//! XML signature verification of a posted Response by libxmlsec1, with each
//! IdP certificate's public key loaded once per metadata load.
//!
//! samael 0.0.22 re-reads the metadata certificates and loads each one into
//! libxmlsec1 (X.509 DER decoding through OpenSSL 3's decoders) for every
//! signature of every response: a third of the ACS's CPU time. Here the
//! same libxmlsec1 call (`xmlSecDSigCtxVerify`) verifies with keys built
//! once, and the reduction is samael's `PreDigest` one, done the same way:
//! every `ds:Signature` in the document must verify with an IdP key, and
//! only the bytes libxmlsec1 digested for a verified Reference (its
//! pre-digest buffer: the signed element, canonicalized, the enveloped
//! signature removed) are handed on; with two signatures, the one over the
//! Response (which contains the assertion). Nothing outside those bytes is
//! ever read as signed, so a wrapped or duplicated assertion cannot get in.
//!
//! On top of samael's checks: every Reference must point into this
//! document (`""` or `#id`) and use only the enveloped and canonicalization
//! transforms, so libxmlsec1 never fetches a URI nor runs XSLT/XPath for an
//! unauthenticated sender.
//!
//! libxmlsec1 1.2 has no accessors for the fields used here (the context's
//! flags, key and status, the references' pre-digest buffers), so they are
//! read as struct fields, with the layout bindgen generates from the
//! headers of the library linked (build.rs). [`available`] checks the
//! library is 1.2.x, that a fresh context has the known values in those
//! fields, and that a signature made by samael verifies (and a tampered one
//! does not) before the first use; otherwise the caller keeps samael's own
//! path.

use std::collections::HashSet;
use std::ffi::CStr;
use std::marker::PhantomData;
use std::os::raw::{c_char, c_int};
use std::ptr::NonNull;
use std::sync::OnceLock;

use libxml::bindings as xml;

use super::{sys, Key};
use crate::saml::{Error, SignatureAlgorithm};

const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
const PROTOCOL_NS: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
const ASSERTION_NS: &str = "urn:oasis:names:tc:SAML:2.0:assertion";

/// Canonicalization methods, and the transforms a Reference may list.
const C14N: &[&str] = &[
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/2001/10/xml-exc-c14n#WithComments",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315",
    "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments",
    "http://www.w3.org/2006/12/xml-c14n11",
    "http://www.w3.org/2006/12/xml-c14n11#WithComments",
];
const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";

/// `XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES`.
const STORE_SIGNEDINFO_REFERENCES: u32 = sys::XMLSEC_DSIG_FLAGS_STORE_SIGNEDINFO_REFERENCES;
/// `xmlSecDSigStatusSucceeded`.
const STATUS_SUCCEEDED: sys::xmlSecDSigStatus = sys::xmlSecDSigStatus_xmlSecDSigStatusSucceeded;
/// `xmlSecTransformUriTypeAny`, the default of `enabledReferenceUris`.
const URI_TYPE_ANY: u32 = sys::xmlSecTransformUriTypeAny;

/// The public keys of an IdP's signing certificates, in metadata order.
pub struct IdpKeys {
    keys: Vec<Key>,
}

impl IdpKeys {
    /// From the certificates (DER) of the metadata: their public keys only
    /// (no certificate data attached, so a per-verification copy is a
    /// reference count). `None` when one cannot be loaded.
    pub fn new(certs_der: &[Vec<u8>]) -> Option<IdpKeys> {
        super::decrypt::ensure_xmlsec();
        let mut keys = Vec::with_capacity(certs_der.len());
        for der in certs_der {
            let pem = openssl::x509::X509::from_der(der)
                .and_then(|c| c.public_key())
                .and_then(|k| k.public_key_to_pem())
                .ok()?;
            keys.push(Key::from_pem(&pem)?);
        }
        (!keys.is_empty()).then_some(IdpKeys { keys })
    }
}

/// What the verified signature(s) cover: the pre-digest bytes of the
/// signed element, and what that element is.
#[derive(Debug)]
pub struct Signed {
    pub xml: String,
    pub root: Root,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Root {
    Response,
    Assertion,
}

/// Whether this libxmlsec1 is the one the offsets above describe and the
/// path works end to end (checked once).
pub fn available() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        let ok = self_test();
        if !ok {
            tracing::warn!("libxmlsec1 is not the 1.2 ABI this build knows; SAML responses are verified through samael's slower path");
        }
        ok
    })
}

fn self_test() -> bool {
    super::decrypt::ensure_xmlsec();
    // SAFETY: version queries.
    let version_ok = unsafe {
        sys::xmlSecCheckVersionExt(
            1,
            2,
            0,
            sys::xmlSecCheckVersionMode_xmlSecCheckVersionABICompatible,
        ) == 1
            && sys::xmlSecCheckVersionExt(
                1,
                3,
                0,
                sys::xmlSecCheckVersionMode_xmlSecCheckVersionABICompatible,
            ) != 1
    };
    if !version_ok {
        return false;
    }
    // The fields used below, as a fresh context has them: the struct
    // layout is bindgen's, from the headers of the library linked (build.rs).
    // SAFETY: a context created here, read, and destroyed (drop).
    let ctx = Ctx(unsafe { sys::xmlSecDSigCtxCreate(std::ptr::null_mut()) });
    if ctx.0.is_null() {
        return false;
    }
    // SAFETY: a live context; plain field reads and a class query.
    let layout_ok = unsafe {
        let c = &*ctx.0;
        let klass = sys::xmlSecDSigReferenceCtxListGetKlass();
        c.flags == 0
            && c.enabledReferenceUris == URI_TYPE_ANY
            && c.signKey.is_null()
            && c.status == 0
            && c.signedInfoReferences.id == klass
            && c.manifestReferences.id == klass
    };
    drop(ctx);
    layout_ok && functional_test().unwrap_or(false)
}

/// A document signed by samael (libxmlsec1's signing) verifies here and
/// yields exactly the signed element; the same with one byte changed does
/// not verify.
/// An RSA-2048 key (PKCS#1 DER, as samael signs with) and a self-signed
/// certificate (DER) for it.
fn throwaway_key_and_cert() -> Option<(Vec<u8>, Vec<u8>)> {
    use openssl::{asn1::Asn1Time, hash::MessageDigest, pkey::PKey, rsa::Rsa, x509};
    let key = PKey::from_rsa(Rsa::generate(2048).ok()?).ok()?;
    let mut name = x509::X509NameBuilder::new().ok()?;
    name.append_entry_by_text("CN", "authgate dsig self-test")
        .ok()?;
    let name = name.build();
    let mut b = x509::X509Builder::new().ok()?;
    b.set_subject_name(&name).ok()?;
    b.set_issuer_name(&name).ok()?;
    b.set_pubkey(&key).ok()?;
    b.set_not_before(Asn1Time::days_from_now(0).ok()?.as_ref())
        .ok()?;
    b.set_not_after(Asn1Time::days_from_now(1).ok()?.as_ref())
        .ok()?;
    b.sign(&key, MessageDigest::sha256()).ok()?;
    Some((key.private_key_to_der().ok()?, b.build().to_der().ok()?))
}

/// A `ds:Signature` template over `#id` (RSA-SHA256, enveloped + exclusive
/// c14n), as IdPs write them.
fn signature_template(id: &str) -> String {
    format!(
        "<ds:Signature xmlns:ds=\"{DSIG_NS}\"><ds:SignedInfo><ds:CanonicalizationMethod Algorithm=\"{c14n}\"/><ds:SignatureMethod Algorithm=\"{}\"/><ds:Reference URI=\"#{id}\"><ds:Transforms><ds:Transform Algorithm=\"{ENVELOPED}\"/><ds:Transform Algorithm=\"{c14n}\"/></ds:Transforms><ds:DigestMethod Algorithm=\"http://www.w3.org/2001/04/xmlenc#sha256\"/><ds:DigestValue/></ds:Reference></ds:SignedInfo><ds:SignatureValue/></ds:Signature>",
        SignatureAlgorithm::RsaSha256.uri(),
        c14n = C14N[0],
    )
}

/// Signs the first `ds:Signature` template of `xml` (samael, libxmlsec1).
fn sign_first(xml: &str, key_der: &[u8]) -> Option<String> {
    use samael::crypto::CryptoProvider as _;
    let signed = samael::crypto::XmlSec::sign_xml(xml, key_der).ok();
    super::errors_to_tracing();
    signed
}

fn functional_test() -> Option<bool> {
    let (key, cert) = throwaway_key_and_cert()?;
    let template = format!(
        "<saml:Assertion xmlns:saml=\"{ASSERTION_NS}\" ID=\"_selftest\" Version=\"2.0\"><saml:Issuer>self-test</saml:Issuer>{}<saml:Subject>ok</saml:Subject></saml:Assertion>",
        signature_template("_selftest")
    );
    let signed = sign_first(&template, &key)?;
    let keys = IdpKeys::new(&[cert])?;
    let algs = [SignatureAlgorithm::RsaSha256];
    let good = verify(&signed, &keys, &algs).ok()?;
    let expected = "<saml:Subject>ok</saml:Subject></saml:Assertion>";
    let tampered = signed.replace(">ok<", ">ko<");
    Some(
        good.root == Root::Assertion
            && good.xml.ends_with(expected)
            && !good.xml.contains("Signature")
            && tampered != signed
            && verify(&tampered, &keys, &algs).is_err(),
    )
}

/// A parsed document, freed on drop.
struct Doc(xml::xmlDocPtr);

impl Drop for Doc {
    fn drop(&mut self) {
        // SAFETY: from xmlReadMemory, freed once.
        unsafe { xml::xmlFreeDoc(self.0) }
    }
}

impl Doc {
    /// The root element.
    fn root(&self) -> Option<Elem<'_>> {
        // SAFETY: a live document.
        let p = unsafe { xml::xmlDocGetRootElement(self.0) };
        // SAFETY: the root element of this document, which `Elem` borrows.
        NonNull::new(p).map(|p| unsafe { Elem::of(p) })
    }
}

/// An element node of a parsed [`Doc`], valid while the document is
/// borrowed and its tree unchanged (only its ID table is written, by
/// [`register_ids_and_find_signatures`]). Made in one place ([`Elem::of`],
/// the only `unsafe` promise); the readers below are safe to call.
#[derive(Clone, Copy)]
struct Elem<'d> {
    ptr: NonNull<xml::xmlNode>,
    _doc: PhantomData<&'d Doc>,
}

impl<'d> Elem<'d> {
    /// # Safety
    /// `ptr` is an element node of a document that outlives `'d` and whose
    /// tree is not changed during `'d`.
    unsafe fn of(ptr: NonNull<xml::xmlNode>) -> Elem<'d> {
        Elem {
            ptr,
            _doc: PhantomData,
        }
    }

    fn node(self) -> &'d xml::xmlNode {
        // SAFETY: see `Elem::of`.
        unsafe { self.ptr.as_ref() }
    }

    /// Whether this element is `{ns}local`.
    fn is(self, ns: &str, local: &str) -> bool {
        let node = self.node();
        if node.name.is_null() || node.ns.is_null() {
            return false;
        }
        // SAFETY: a node's name and its namespace (with its href) belong to
        // the document and live as long as it; libxml2 strings end in NUL.
        let (name, ns_node) = unsafe { (CStr::from_ptr(node.name.cast()), &*node.ns) };
        if ns_node.href.is_null() {
            return false;
        }
        // SAFETY: as above.
        let href = unsafe { CStr::from_ptr(ns_node.href.cast()) };
        name.to_bytes() == local.as_bytes() && href.to_bytes() == ns.as_bytes()
    }

    /// The value of the attribute `name` (no namespace), copied.
    fn attr(self, name: &CStr) -> Option<String> {
        // SAFETY: an element node; the value is a new string the caller owns.
        let v = unsafe { xml::xmlGetNoNsProp(self.ptr.as_ptr(), name.as_ptr().cast()) };
        XmlString::take(v).map(|v| String::from_utf8_lossy(v.bytes()).into_owned())
    }

    /// The element children, in document order.
    fn children(self) -> impl Iterator<Item = Elem<'d>> {
        let mut next = self.node().children;
        std::iter::from_fn(move || loop {
            let n = NonNull::new(next)?;
            // SAFETY: a child (or its sibling) of an element of the document.
            let node = unsafe { n.as_ref() };
            next = node.next;
            if node.type_ == xml::xmlElementType_XML_ELEMENT_NODE {
                // SAFETY: an element node of the same document.
                return Some(unsafe { Elem::of(n) });
            }
        })
    }

    /// The children that are `ds:{local}`.
    fn dsig_children(self, local: &str) -> Vec<Elem<'d>> {
        self.children().filter(|c| c.is(DSIG_NS, local)).collect()
    }
}

/// A string libxml2 allocated for us, freed on drop.
struct XmlString(NonNull<xml::xmlChar>);

impl XmlString {
    fn take(p: *mut xml::xmlChar) -> Option<XmlString> {
        NonNull::new(p).map(XmlString)
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: a NUL-terminated string we own until drop.
        unsafe { CStr::from_ptr(self.0.as_ptr().cast()) }.to_bytes()
    }
}

impl Drop for XmlString {
    fn drop(&mut self) {
        // SAFETY: `xmlFree` is libxml2's deallocator, set at initialisation;
        // the string came from libxml2 and is freed once.
        if let Some(free) = unsafe { xml::xmlFree } {
            unsafe { free(self.0.as_ptr().cast()) }
        }
    }
}

/// A signature context, destroyed (with its key copy) on drop.
struct Ctx(sys::xmlSecDSigCtxPtr);

impl Drop for Ctx {
    fn drop(&mut self) {
        // SAFETY: from xmlSecDSigCtxCreate, destroyed once; it owns signKey.
        unsafe { sys::xmlSecDSigCtxDestroy(self.0) }
    }
}

/// Verifies every signature of the document `xml` (a Response whose
/// structure, DOCTYPE absence and algorithms `response::prescan` already
/// checked) with the IdP keys, and returns the signed element's bytes.
pub fn verify(
    xml_text: &str,
    keys: &IdpKeys,
    allowed: &[SignatureAlgorithm],
) -> Result<Signed, Error> {
    let len = c_int::try_from(xml_text.len()).map_err(|_| Error::Malformed("too large".into()))?;
    // SAFETY: a buffer and its length; no network, no entity substitution,
    // no DTD loading (a DOCTYPE was refused before), not in recovery mode
    // (a document that is not well-formed is refused), and libxml2's own
    // reports kept off stderr (our error says why).
    let options = xml::xmlParserOption_XML_PARSE_NONET
        | xml::xmlParserOption_XML_PARSE_NOERROR
        | xml::xmlParserOption_XML_PARSE_NOWARNING;
    let ptr = unsafe {
        xml::xmlReadMemory(
            xml_text.as_ptr() as *const c_char,
            len,
            std::ptr::null(),
            std::ptr::null(),
            options as c_int,
        )
    };
    if ptr.is_null() {
        return Err(Error::Malformed("the XML does not parse".into()));
    }
    let doc = Doc(ptr);
    let root = doc
        .root()
        .ok_or_else(|| Error::Malformed("no root element".into()))?;
    let signatures = register_ids_and_find_signatures(&doc, root)?;
    if signatures.is_empty() {
        return Err(Error::Unsigned);
    }
    let mut predigests = Vec::with_capacity(signatures.len());
    for sig in signatures {
        check_signature_shape(sig, allowed)?;
        let mut verified = None;
        for key in &keys.keys {
            if let Some(p) = verify_with(sig, key)? {
                verified = Some(p);
                break;
            }
        }
        predigests.extend(verified.ok_or(Error::SignatureInvalid)?);
    }
    select(predigests)
}

/// samael's PreDigest choice: the one verified element, or among several
/// the one Response (which holds the rest).
fn select(predigests: Vec<String>) -> Result<Signed, Error> {
    let mut found: Option<Signed> = None;
    let single = predigests.len() == 1;
    for xml in predigests {
        let root = root_of(&xml).ok_or(Error::SignatureInvalid)?;
        if single {
            return Ok(Signed { xml, root });
        }
        if root == Root::Response {
            if found.is_some() {
                return Err(Error::SignatureInvalid);
            }
            found = Some(Signed { xml, root });
        }
    }
    found.ok_or(Error::SignatureInvalid)
}

/// The root element of a pre-digest buffer: a protocol Response or an
/// Assertion, by namespace and local name; anything else is refused.
fn root_of(xml: &str) -> Option<Root> {
    use quick_xml::events::Event;
    use quick_xml::name::ResolveResult;
    let mut r = quick_xml::NsReader::from_str(xml);
    loop {
        match r.read_resolved_event().ok()? {
            (ResolveResult::Bound(ns), Event::Start(e) | Event::Empty(e)) => {
                return match (ns.as_ref(), e.local_name().as_ref()) {
                    (n, b"Response") if n == PROTOCOL_NS.as_bytes() => Some(Root::Response),
                    (n, b"Assertion") if n == ASSERTION_NS.as_bytes() => Some(Root::Assertion),
                    _ => None,
                };
            }
            (_, Event::Start(_) | Event::Empty(_) | Event::Eof) => return None,
            _ => {}
        }
    }
}

/// Walks the tree: registers each `ID` attribute (an NCName, unique in the
/// document, as samael requires) so references resolve, and collects every
/// `ds:Signature` element, in document order.
fn register_ids_and_find_signatures<'d>(
    doc: &'d Doc,
    root: Elem<'d>,
) -> Result<Vec<Elem<'d>>, Error> {
    let mut seen: HashSet<Vec<u8>> = HashSet::new();
    let mut signatures = Vec::new();
    let mut stack = vec![root];
    while let Some(n) = stack.pop() {
        // SAFETY: an element node; the attribute node (or NULL) is its own.
        let attr = unsafe { xml::xmlHasProp(n.ptr.as_ptr(), c"ID".as_ptr().cast()) };
        if !attr.is_null() {
            // SAFETY: a live attribute node of `doc`; a new string or NULL.
            let value =
                XmlString::take(unsafe { xml::xmlNodeListGetString(doc.0, (*attr).children, 1) })
                    .ok_or(Error::SignatureInvalid)?;
            // SAFETY: a NUL-terminated string.
            let valid = unsafe { xml::xmlValidateNCName(value.0.as_ptr(), 0) } == 0;
            // SAFETY: registers `attr` under its (copied) value in the
            // document's ID table; the tree is unchanged.
            let registered = valid
                && seen.insert(value.bytes().to_vec())
                && !unsafe { xml::xmlAddID(std::ptr::null_mut(), doc.0, value.0.as_ptr(), attr) }
                    .is_null();
            if !registered {
                return Err(Error::SignatureInvalid);
            }
        }
        if n.is(DSIG_NS, "Signature") {
            signatures.push(n);
        }
        // Children pushed in reverse so they pop in document order.
        let children: Vec<Elem<'d>> = n.children().collect();
        stack.extend(children.into_iter().rev());
    }
    Ok(signatures)
}

/// The signature's algorithms are allowed (SignatureMethod, and each
/// Reference's DigestMethod of the same family, as samael checks), each
/// Reference points into this document, and only the enveloped-signature
/// and canonicalization transforms are used.
fn check_signature_shape<'d>(sig: Elem<'d>, allowed: &[SignatureAlgorithm]) -> Result<(), Error> {
    let one = |v: Vec<Elem<'d>>, what: &str| -> Result<Elem<'d>, Error> {
        match v.as_slice() {
            [n] => Ok(*n),
            _ => Err(Error::Malformed(format!(
                "a signature without exactly one {what}"
            ))),
        }
    };
    let signed_info = one(sig.dsig_children("SignedInfo"), "SignedInfo")?;
    let method = one(
        signed_info.dsig_children("SignatureMethod"),
        "SignatureMethod",
    )?;
    let alg = method.attr(c"Algorithm").unwrap_or_default();
    if !SignatureAlgorithm::parse(&alg).is_some_and(|a| allowed.contains(&a)) {
        return Err(Error::SignatureAlgorithm(alg));
    }
    let c14n = one(
        signed_info.dsig_children("CanonicalizationMethod"),
        "CanonicalizationMethod",
    )?;
    let c14n = c14n.attr(c"Algorithm").unwrap_or_default();
    if !C14N.contains(&c14n.as_str()) {
        return Err(Error::Malformed(format!(
            "the canonicalization method {c14n:?} is not accepted"
        )));
    }
    let references = signed_info.dsig_children("Reference");
    if references.is_empty() {
        return Err(Error::SignatureInvalid);
    }
    for r in references {
        let uri = r.attr(c"URI").unwrap_or_default();
        if !(uri.is_empty() || uri.starts_with('#')) {
            return Err(Error::Malformed(format!(
                "a signature reference to {uri:?} (outside the document) is not accepted"
            )));
        }
        let digest = one(r.dsig_children("DigestMethod"), "DigestMethod")?;
        let digest = digest.attr(c"Algorithm").unwrap_or_default();
        if !allowed.iter().any(|a| digest_uri(*a) == digest) {
            return Err(Error::SignatureAlgorithm(digest));
        }
        for transforms in r.dsig_children("Transforms") {
            for t in transforms.dsig_children("Transform") {
                let a = t.attr(c"Algorithm").unwrap_or_default();
                if a != ENVELOPED && !C14N.contains(&a.as_str()) {
                    return Err(Error::Malformed(format!(
                        "the signature transform {a:?} is not accepted"
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The DigestMethod that goes with a signature algorithm.
fn digest_uri(a: SignatureAlgorithm) -> &'static str {
    match a {
        SignatureAlgorithm::RsaSha1 => "http://www.w3.org/2000/09/xmldsig#sha1",
        SignatureAlgorithm::RsaSha256 | SignatureAlgorithm::EcdsaSha256 => {
            "http://www.w3.org/2001/04/xmlenc#sha256"
        }
        SignatureAlgorithm::RsaSha384 | SignatureAlgorithm::EcdsaSha384 => {
            "http://www.w3.org/2001/04/xmldsig-more#sha384"
        }
        SignatureAlgorithm::RsaSha512 | SignatureAlgorithm::EcdsaSha512 => {
            "http://www.w3.org/2001/04/xmlenc#sha512"
        }
    }
}

/// One signature with one key: `Some(pre-digest buffers)` when it
/// verifies (every reference verified), `None` when it does not.
fn verify_with(sig: Elem<'_>, key: &Key) -> Result<Option<Vec<String>>, Error> {
    // SAFETY: no keys manager; a new context or NULL, destroyed once (drop).
    let ctx = Ctx(unsafe { sys::xmlSecDSigCtxCreate(std::ptr::null_mut()) });
    if ctx.0.is_null() {
        return Err(Error::SignatureInvalid);
    }
    // SAFETY: a live key of ours; the copy is owned by the context below.
    let copy = unsafe { sys::xmlSecKeyDuplicate(key.0) };
    if copy.is_null() {
        return Err(Error::SignatureInvalid);
    }
    // SAFETY: a live context, not yet used; the key copy becomes the
    // context's (destroyed with it), as xmlSecDSigCtxFinalize expects.
    unsafe {
        (*ctx.0).flags |= STORE_SIGNEDINFO_REFERENCES;
        (*ctx.0).signKey = copy;
    }
    // SAFETY: a live context and a ds:Signature element of a live document
    // (`Elem`); libxml2's and bindgen's `xmlNode` are the same C struct.
    if unsafe { sys::xmlSecDSigCtxVerify(ctx.0, sig.ptr.as_ptr().cast()) } < 0 {
        return Ok(None);
    }
    // SAFETY: a live context after verification.
    let (status, list) = unsafe { ((*ctx.0).status, &raw mut (*ctx.0).signedInfoReferences) };
    if status != STATUS_SUCCEEDED {
        return Ok(None);
    }
    // SAFETY: the context's own reference list, alive with the context.
    let n = unsafe { sys::xmlSecPtrListGetSize(list) } as usize;
    if n == 0 {
        return Ok(None);
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        // SAFETY: an index below the list's size; the items are the
        // context's reference contexts.
        let r =
            unsafe { sys::xmlSecPtrListGetItem(list, i as _) } as sys::xmlSecDSigReferenceCtxPtr;
        if r.is_null() {
            return Ok(None);
        }
        // SAFETY: a live reference context of the list.
        let (status, membuf) = unsafe { ((*r).status, (*r).preDigestMemBufMethod) };
        if status != STATUS_SUCCEEDED {
            return Ok(None);
        }
        if membuf.is_null() {
            return Err(Error::SignatureInvalid);
        }
        // SAFETY: the memory-buffer transform of a verified reference.
        let buf = unsafe { sys::xmlSecTransformMemBufGetBuffer(membuf) };
        if buf.is_null() {
            return Err(Error::SignatureInvalid);
        }
        // SAFETY: the transform's buffer, alive with the context.
        let (data, size) =
            unsafe { (sys::xmlSecBufferGetData(buf), sys::xmlSecBufferGetSize(buf)) };
        let size = size as usize;
        if data.is_null() || size == 0 {
            return Err(Error::SignatureInvalid);
        }
        // SAFETY: libxmlsec1's buffer holds `size` initialised bytes at `data`.
        let bytes = unsafe { std::slice::from_raw_parts(data, size) };
        let text = std::str::from_utf8(bytes).map_err(|_| Error::SignatureInvalid)?;
        out.push(text.to_owned());
    }
    Ok(Some(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALGS: &[SignatureAlgorithm] = &[SignatureAlgorithm::RsaSha256];

    #[test]
    fn this_libxmlsec1_passes_the_self_test() {
        assert!(available());
    }

    fn assertion(id: &str, who: &str, signed: bool) -> String {
        format!(
            "<saml:Assertion xmlns:saml=\"{ASSERTION_NS}\" ID=\"{id}\" Version=\"2.0\"><saml:Issuer>idp</saml:Issuer>{}<saml:Subject><saml:NameID>{who}</saml:NameID></saml:Subject></saml:Assertion>",
            if signed { signature_template(id) } else { String::new() }
        )
    }

    fn response(inner: &str, signed: bool) -> String {
        format!(
            "<samlp:Response xmlns:samlp=\"{PROTOCOL_NS}\" ID=\"_r\" Version=\"2.0\"><saml:Issuer xmlns:saml=\"{ASSERTION_NS}\">idp</saml:Issuer>{}<samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/></samlp:Status>{inner}</samlp:Response>",
            if signed { signature_template("_r") } else { String::new() }
        )
    }

    /// The signed assertion alone (without its XML declaration).
    fn signed_assertion(key: &[u8], who: &str) -> String {
        let a = sign_first(&assertion("_a", who, true), key).expect("sign the assertion");
        match a.find("?>") {
            Some(i) if a.starts_with("<?xml") => a[i + 2..].trim().to_string(),
            _ => a,
        }
    }

    /// Changes the first SignatureValue after `from` (its first base64
    /// characters), so that signature no longer verifies.
    fn break_signature_value(xml: &str, from: usize) -> String {
        let i = from
            + xml[from..]
                .find("SignatureValue>")
                .expect("a SignatureValue")
            + 15;
        let mut out = xml.to_string();
        let c = if &xml[i..i + 1] == "A" { "B" } else { "A" };
        out.replace_range(i..i + 1, c);
        out
    }

    #[test]
    fn both_signatures_must_verify() {
        let (key, cert) = throwaway_key_and_cert().expect("key");
        let keys = IdpKeys::new(&[cert]).expect("keys");
        let good =
            sign_first(&response(&signed_assertion(&key, "alice"), true), &key).expect("sign");
        let v = verify(&good, &keys, ALGS).expect("both verify");
        assert_eq!(v.root, Root::Response);
        assert!(v.xml.contains("alice"));

        // The assertion's signature broken before the Response was signed:
        // the Response signature is good, the assertion's is not.
        let a = signed_assertion(&key, "alice");
        let bad_a = break_signature_value(&a, 0);
        let doc = sign_first(&response(&bad_a, true), &key).expect("sign");
        assert!(matches!(
            verify(&doc, &keys, ALGS),
            Err(Error::SignatureInvalid)
        ));

        // The Response's signature broken, the assertion's intact.
        let doc = break_signature_value(&good, 0);
        assert!(doc.contains(
            &a[a.find("<ds:SignatureValue>").expect("sv")
                ..a.find("</ds:SignatureValue>").expect("sv")]
        ));
        assert!(matches!(
            verify(&doc, &keys, ALGS),
            Err(Error::SignatureInvalid)
        ));
    }

    #[test]
    fn only_the_signed_assertion_comes_out_of_a_wrapped_response() {
        let (key, cert) = throwaway_key_and_cert().expect("key");
        let keys = IdpKeys::new(&[cert]).expect("keys");
        let signed = signed_assertion(&key, "alice");
        // A forged unsigned assertion before and after the signed one, and
        // the signed one wrapped inside a forged one.
        for doc in [
            response(
                &format!("{}{signed}", assertion("_f", "victim", false)),
                false,
            ),
            response(
                &format!("{signed}{}", assertion("_f", "victim", false)),
                false,
            ),
            response(
                &assertion("_f", "victim", false).replace(
                    "</saml:Assertion>",
                    &format!("<saml:Advice>{signed}</saml:Advice></saml:Assertion>"),
                ),
                false,
            ),
        ] {
            let v = verify(&doc, &keys, ALGS).expect("the signed assertion verifies");
            assert_eq!(v.root, Root::Assertion);
            assert!(
                v.xml.contains("alice") && !v.xml.contains("victim"),
                "{}",
                v.xml
            );
        }
        // A forged copy under the signed assertion's own ID.
        let doc = response(
            &format!("{}{signed}", assertion("_a", "victim", false)),
            false,
        );
        assert!(matches!(
            verify(&doc, &keys, ALGS),
            Err(Error::SignatureInvalid)
        ));
    }

    #[test]
    fn other_keys_algorithms_transforms_and_references_are_refused() {
        let (key, _) = throwaway_key_and_cert().expect("key");
        let (_, other_cert) = throwaway_key_and_cert().expect("key");
        let doc = response(&signed_assertion(&key, "alice"), false);
        let other = IdpKeys::new(std::slice::from_ref(&other_cert)).expect("keys");
        assert!(matches!(
            verify(&doc, &other, ALGS),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            verify(
                &doc,
                &IdpKeys::new(&[other_cert]).expect("k"),
                &[SignatureAlgorithm::RsaSha512]
            ),
            Err(Error::SignatureAlgorithm(_))
        ));
        let table = [
            (ENVELOPED, "http://www.w3.org/TR/1999/REC-xpath-19991116"),
            (ENVELOPED, "http://www.w3.org/TR/1999/REC-xslt-19991116"),
            ("URI=\"#_a\"", "URI=\"http://attacker.example/x\""),
            ("URI=\"#_a\"", "URI=\"file:///etc/passwd\""),
            (C14N[0], "urn:unknown-c14n"),
        ];
        for (from, to) in table {
            let bad = doc.replacen(from, to, 1);
            assert_ne!(bad, doc);
            assert!(
                matches!(verify(&bad, &other, ALGS), Err(Error::Malformed(_))),
                "{to}"
            );
        }
        // Duplicate or non-NCName IDs.
        let dup = doc.replace("ID=\"_r\"", "ID=\"_a\"");
        assert!(matches!(
            verify(&dup, &other, ALGS),
            Err(Error::SignatureInvalid)
        ));
        let bad_id = doc.replace("ID=\"_r\"", "ID=\"a b\"");
        assert!(matches!(
            verify(&bad_id, &other, ALGS),
            Err(Error::SignatureInvalid)
        ));
        assert!(matches!(
            verify(
                &response(&assertion("_a", "alice", false), false),
                &other,
                ALGS
            ),
            Err(Error::Unsigned)
        ));
    }

    #[test]
    fn a_second_metadata_certificate_verifies_during_rollover() {
        let (key, cert) = throwaway_key_and_cert().expect("key");
        let (_, old) = throwaway_key_and_cert().expect("key");
        let keys = IdpKeys::new(&[old, cert]).expect("keys");
        let doc = response(&signed_assertion(&key, "alice"), false);
        assert!(verify(&doc, &keys, ALGS).is_ok());
    }

    #[test]
    fn several_verified_elements_reduce_to_the_one_response() {
        let a = format!("<saml:Assertion xmlns:saml=\"{ASSERTION_NS}\" ID=\"a\"/>");
        let r = format!("<samlp:Response xmlns:samlp=\"{PROTOCOL_NS}\" ID=\"r\"/>");
        let evil = "<evil:Response xmlns:evil=\"urn:evil\"/>".to_string();
        assert_eq!(select(vec![a.clone()]).expect("one").root, Root::Assertion);
        let s = select(vec![a.clone(), r.clone()]).expect("both");
        assert_eq!((s.root, s.xml), (Root::Response, r.clone()));
        assert!(select(vec![a.clone(), a.clone()]).is_err());
        assert!(select(vec![r.clone(), r.clone()]).is_err());
        assert!(select(vec![a.clone(), evil.clone()]).is_err());
        assert!(select(vec![evil]).is_err());
        assert!(select(vec![]).is_err());
    }
}
