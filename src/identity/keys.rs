//! Identity signing keys: generation (`authgate keygen`), PEM loading, the
//! public JWK and its RFC 7638 thumbprint (our `kid`).
//!
//! All cryptography is aws-lc-rs; this file only reads PEM armor (RFC 7468)
//! and picks the public values out of the library's outputs. Keys are
//! normalized here to the DER form jsonwebtoken expects, so nothing later
//! has to guess formats.
//!
//! Must not: print, log or put key material in errors or `Debug` output.

use std::fmt;
use std::str::FromStr;

use aws_lc_rs::encoding::{AsDer, PublicKeyX509Der};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ParsedPublicKey, RsaKeyPair, RsaPublicKeyComponents,
    RsaSubjectPublicKey, ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING,
    ECDSA_P384_SHA384_FIXED_SIGNING, ED25519,
};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;

use super::Error;

/// The identity JWT's signature algorithm. ES256 is the default: EdDSA is
/// cheaper to sign but less widely verifiable; RS256 costs ~25x ES256.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    #[default]
    ES256,
    EdDSA,
    RS256,
}

impl Algorithm {
    /// The JOSE `alg` name (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
        }
    }

    /// Case-insensitive `ES256` / `EdDSA` / `RS256`; `None` otherwise.
    pub fn parse(s: &str) -> Option<Algorithm> {
        [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256]
            .into_iter()
            .find(|a| a.as_str().eq_ignore_ascii_case(s.trim()))
    }

    pub(crate) fn to_jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }

    /// What kind of key this algorithm needs, for error messages.
    fn key_kind(self) -> &'static str {
        match self {
            Algorithm::ES256 => "EC P-256 (ES256)",
            Algorithm::EdDSA => "Ed25519 (EdDSA)",
            Algorithm::RS256 => "RSA (RS256)",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Case-insensitive: `es256`, `EdDSA`, `rs256`...
impl FromStr for Algorithm {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Error> {
        Algorithm::parse(s).ok_or_else(|| Error::UnknownAlgorithm(s.to_string()))
    }
}

/// A fresh private key as PKCS#8 v1 PEM (`-----BEGIN PRIVATE KEY-----`):
/// P-256 for ES256, Ed25519 for EdDSA, RSA 3072 for RS256.
pub fn generate(alg: Algorithm) -> Result<String, Error> {
    let fail = |_| Error::Generation(alg);
    let der: Vec<u8> = match alg {
        Algorithm::ES256 => EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .and_then(|k| k.to_pkcs8v1())
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        Algorithm::EdDSA => Ed25519KeyPair::generate()
            .and_then(|k| k.to_pkcs8v1())
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        Algorithm::RS256 => RsaKeyPair::generate(KeySize::Rsa3072)
            .and_then(|k| k.as_der())
            .map_err(fail)?
            .as_ref()
            .to_vec(),
    };
    Ok(pem_encode("PRIVATE KEY", &der))
}

/// The public half of a signing key as a JWK's key members (RFC 7518 §6,
/// RFC 8037 §2), each base64url without padding.
#[derive(Clone, PartialEq, Eq)]
pub enum JwkParams {
    /// `kty: "EC"`, `crv: "P-256"`.
    Ec { x: String, y: String },
    /// `kty: "RSA"`.
    Rsa { n: String, e: String },
    /// `kty: "OKP"`, `crv: "Ed25519"`.
    Okp { x: String },
}

impl JwkParams {
    /// RFC 7638 §3: SHA-256 over the required members, in lexicographic
    /// order, no whitespace; base64url without padding. The member values
    /// here are base64url or fixed names, so no JSON escaping is needed.
    pub fn thumbprint(&self) -> String {
        let canonical = match self {
            JwkParams::Ec { x, y } => {
                format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
            }
            JwkParams::Rsa { n, e } => format!(r#"{{"e":"{e}","kty":"RSA","n":"{n}"}}"#),
            JwkParams::Okp { x } => format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#),
        };
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        URL_SAFE_NO_PAD.encode(digest.as_ref())
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            JwkParams::Ec { .. } => Algorithm::ES256,
            JwkParams::Rsa { .. } => Algorithm::RS256,
            JwkParams::Okp { .. } => Algorithm::EdDSA,
        }
    }
}

/// A published verification key: parameters, `alg`, and `kid` (= the RFC
/// 7638 thumbprint, so the same key always gets the same id).
#[derive(Clone, PartialEq, Eq)]
pub struct PublicJwk {
    params: JwkParams,
    kid: String,
}

impl PublicJwk {
    pub fn new(params: JwkParams) -> Self {
        let kid = params.thumbprint();
        PublicJwk { params, kid }
    }

    /// A verification key from PEM: SPKI `PUBLIC KEY`, PKCS#1 `RSA PUBLIC
    /// KEY`, or any private key form [`PrivateKey::from_pem`] reads (so a
    /// retired private key can be listed as-is). The algorithm is detected.
    pub fn from_pem(pem: &[u8]) -> Result<Self, Error> {
        let block = pem_decode(pem)?;
        match block.label.as_str() {
            "PUBLIC KEY" => public_from_spki(&block.der),
            "RSA PUBLIC KEY" => rsa_public(&block.der).ok_or(Error::InvalidKey("RSA public")),
            _ => private_from_block(&block, None).map(|k| k.public),
        }
    }

    pub fn params(&self) -> &JwkParams {
        &self.params
    }
    pub fn kid(&self) -> &str {
        &self.kid
    }
    pub fn algorithm(&self) -> Algorithm {
        self.params.algorithm()
    }

    /// The JWK as a JSON object: kty, crv/n/e/x/y, kid, alg, use.
    pub fn to_json(&self) -> serde_json::Value {
        let (kid, alg) = (self.kid.as_str(), self.algorithm().as_str());
        match &self.params {
            JwkParams::Ec { x, y } => serde_json::json!({
                "kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": kid, "alg": alg, "use": "sig",
            }),
            JwkParams::Rsa { n, e } => serde_json::json!({
                "kty": "RSA", "n": n, "e": e, "kid": kid, "alg": alg, "use": "sig",
            }),
            JwkParams::Okp { x } => serde_json::json!({
                "kty": "OKP", "crv": "Ed25519", "x": x, "kid": kid, "alg": alg, "use": "sig",
            }),
        }
    }
}

impl fmt::Debug for PublicJwk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicJwk")
            .field("alg", &self.algorithm())
            .field("kid", &self.kid)
            .finish()
    }
}

/// A loaded signing key: what jsonwebtoken needs, and its public JWK.
/// `Debug` shows the algorithm and kid only.
pub struct PrivateKey {
    alg: Algorithm,
    encoding: jsonwebtoken::EncodingKey,
    public: PublicJwk,
}

impl PrivateKey {
    /// Reads an unencrypted private key: PKCS#8 `PRIVATE KEY` (what
    /// `authgate keygen` writes), SEC1 `EC PRIVATE KEY` (an `EC PARAMETERS`
    /// block before it is skipped), or PKCS#1 `RSA PRIVATE KEY`. The key must
    /// suit `alg`; a mismatch is reported as such.
    pub fn from_pem(pem: &[u8], alg: Algorithm) -> Result<Self, Error> {
        let block = pem_decode(pem)?;
        private_from_block(&block, Some(alg))
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }
    pub fn public(&self) -> &PublicJwk {
        &self.public
    }
    pub(crate) fn encoding_key(&self) -> &jsonwebtoken::EncodingKey {
        &self.encoding
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrivateKey")
            .field("alg", &self.alg)
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

/// One PEM block (RFC 7468). `der` is secret for private keys: never print.
struct PemBlock {
    label: String,
    der: Vec<u8>,
}

/// The first key block in `input`, skipping `EC PARAMETERS` (which `openssl
/// ecparam -genkey` writes before the key).
fn pem_decode(input: &[u8]) -> Result<PemBlock, Error> {
    let text = std::str::from_utf8(input).map_err(|_| Error::PemUnreadable("not text"))?;
    let mut rest = text;
    loop {
        let Some(start) = rest.find("-----BEGIN ") else {
            return Err(Error::PemUnreadable("no -----BEGIN ...----- line"));
        };
        let after = &rest[start + "-----BEGIN ".len()..];
        let label_end = after
            .find("-----")
            .ok_or(Error::PemUnreadable("unterminated BEGIN line"))?;
        let label = &after[..label_end];
        let body_and_more = &after[label_end + 5..];
        let end_line = format!("-----END {label}-----");
        let body_end = body_and_more
            .find(&end_line)
            .ok_or(Error::PemUnreadable("no matching -----END ...----- line"))?;
        let body = &body_and_more[..body_end];
        rest = &body_and_more[body_end + end_line.len()..];
        if label == "EC PARAMETERS" {
            continue;
        }
        // PKCS#8 encryption has its own label; legacy OpenSSL encryption
        // puts RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`) in the body, and
        // `:` never occurs in base64.
        if label == "ENCRYPTED PRIVATE KEY" || (body.contains(':') && body.contains("ENCRYPTED")) {
            return Err(Error::PemEncrypted);
        }
        if body.contains(':') {
            return Err(Error::PemUnreadable(
                "unexpected headers inside the PEM block",
            ));
        }
        let b64: String = body.split_ascii_whitespace().collect();
        let der = STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| Error::PemUnreadable("the base64 body is corrupt"))?;
        if der.is_empty() {
            return Err(Error::PemUnreadable("empty PEM block"));
        }
        return Ok(PemBlock {
            label: label.to_string(),
            der,
        });
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    // RFC 7468 §2: lines of exactly 64 characters except the last. The
    // base64 alphabet is ASCII, so byte chunks are char boundaries.
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn b64u(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `alg: None` detects the algorithm (for previous keys).
fn private_from_block(block: &PemBlock, alg: Option<Algorithm>) -> Result<PrivateKey, Error> {
    let der = block.der.as_slice();
    // What the block actually holds, tried in a fixed order; each parser
    // checks the key fully (curve, point on curve, RSA consistency).
    let found = match block.label.as_str() {
        "PRIVATE KEY" => {
            if let Ok(k) = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                Found::Ec(k)
            } else if let Ok(k) = Ed25519KeyPair::from_pkcs8(der) {
                Found::Ed(k)
            } else if let Ok(k) = RsaKeyPair::from_pkcs8(der) {
                Found::Rsa(k)
            } else {
                Found::Other(other_pkcs8_kind(der))
            }
        }
        "EC PRIVATE KEY" => {
            match EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der) {
                Ok(k) => Found::Ec(k),
                Err(_) => Found::Other(other_pkcs8_kind(der)),
            }
        }
        "RSA PRIVATE KEY" => match RsaKeyPair::from_der(der) {
            Ok(k) => Found::Rsa(k),
            Err(_) => return Err(Error::InvalidKey("RSA (PKCS#1)")),
        },
        "PUBLIC KEY" | "RSA PUBLIC KEY" => return Err(Error::PrivateKeyExpected),
        other => return Err(Error::PemUnsupported(other.to_string())),
    };
    let have = match &found {
        Found::Ec(_) => Algorithm::ES256,
        Found::Ed(_) => Algorithm::EdDSA,
        Found::Rsa(_) => Algorithm::RS256,
        Found::Other(Some(kind)) => {
            return Err(match alg {
                Some(expected) => Error::WrongKeyType {
                    expected,
                    found: kind,
                },
                None => Error::InvalidKey(kind),
            })
        }
        Found::Other(None) => {
            return Err(Error::InvalidKey(
                alg.map_or("private", Algorithm::key_kind),
            ))
        }
    };
    if let Some(expected) = alg {
        if expected != have {
            return Err(Error::WrongKeyType {
                expected,
                found: have.key_kind(),
            });
        }
    }
    let invalid = || Error::InvalidKey(have.key_kind());
    let (encoding, params) = match found {
        Found::Ec(k) => {
            let pkcs8 = k.to_pkcs8v1().map_err(|_| invalid())?;
            let params = ec_params(k.public_key().as_ref()).ok_or_else(invalid)?;
            (
                jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref()),
                params,
            )
        }
        Found::Ed(k) => {
            let pkcs8 = k.to_pkcs8v1().map_err(|_| invalid())?;
            let params = JwkParams::Okp {
                x: b64u(k.public_key().as_ref()),
            };
            (
                jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()),
                params,
            )
        }
        Found::Rsa(k) => {
            let params = rsa_params(k.public_key());
            // jsonwebtoken's RSA signer wants PKCS#1; its PEM reader takes
            // either form and unwraps PKCS#8, so hand it this block again.
            let pem = pem_encode(&block.label, der);
            let enc =
                jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).map_err(|_| invalid())?;
            (enc, params)
        }
        Found::Other(_) => return Err(invalid()),
    };
    Ok(PrivateKey {
        alg: have,
        encoding,
        public: PublicJwk::new(params),
    })
}

enum Found {
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
    Rsa(RsaKeyPair),
    /// Not a key we sign with; `Some` names what it is when recognizable.
    Other(Option<&'static str>),
}

/// Names a recognizable key that we do not support, for a precise error.
fn other_pkcs8_kind(der: &[u8]) -> Option<&'static str> {
    if EcdsaKeyPair::from_private_key_der(&ECDSA_P384_SHA384_FIXED_SIGNING, der).is_ok() {
        Some("an EC P-384 key (not supported: use P-256 for ES256)")
    } else {
        None
    }
}

/// An uncompressed SEC1 point `04 || x || y` on P-256.
fn ec_params(point: &[u8]) -> Option<JwkParams> {
    match point {
        [4, xy @ ..] if xy.len() == 64 => {
            let (x, y) = xy.split_at(32);
            Some(JwkParams::Ec {
                x: b64u(x),
                y: b64u(y),
            })
        }
        _ => None,
    }
}

fn rsa_params(public: &RsaSubjectPublicKey) -> JwkParams {
    // Big-endian without leading zeros, as RFC 7518 §6.3.1 requires.
    let c = RsaPublicKeyComponents::<Vec<u8>>::from(public);
    JwkParams::Rsa {
        n: b64u(&c.n),
        e: b64u(&c.e),
    }
}

fn rsa_public(der: &[u8]) -> Option<PublicJwk> {
    RsaSubjectPublicKey::from_der(der)
        .ok()
        .map(|k| PublicJwk::new(rsa_params(&k)))
}

/// The fixed DER prefix of a P-256 SubjectPublicKeyInfo with an uncompressed
/// point (RFC 5480 §2: id-ecPublicKey, secp256r1, BIT STRING of 66 bytes).
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];
/// The fixed DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4).
const ED25519_SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];

fn public_from_spki(der: &[u8]) -> Result<PublicJwk, Error> {
    // aws-lc-rs validates the key (point on curve etc.) and re-encodes it
    // canonically; the public values are then at fixed offsets.
    if let Ok(k) = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, der) {
        let spki: PublicKeyX509Der<'_> = k
            .as_der()
            .map_err(|_| Error::InvalidKey("EC P-256 public"))?;
        return spki
            .as_ref()
            .strip_prefix(&P256_SPKI_PREFIX[..])
            .and_then(ec_params)
            .map(PublicJwk::new)
            .ok_or(Error::InvalidKey("EC P-256 public (uncompressed point)"));
    }
    if let Ok(k) = ParsedPublicKey::new(&ED25519, der) {
        let spki: PublicKeyX509Der<'_> = k
            .as_der()
            .map_err(|_| Error::InvalidKey("Ed25519 public"))?;
        return match spki.as_ref().strip_prefix(&ED25519_SPKI_PREFIX[..]) {
            Some(x) if x.len() == 32 => Ok(PublicJwk::new(JwkParams::Okp { x: b64u(x) })),
            _ => Err(Error::InvalidKey("Ed25519 public")),
        };
    }
    rsa_public(der).ok_or(Error::InvalidKey(
        "EC P-256, Ed25519 or RSA public (SubjectPublicKeyInfo)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example RSA key and its thumbprint.
    const RFC7638_N: &str = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";

    #[test]
    fn rfc7638_rsa_example_thumbprint() {
        let params = JwkParams::Rsa {
            n: RFC7638_N.to_string(),
            e: "AQAB".to_string(),
        };
        assert_eq!(
            params.thumbprint(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
    }

    #[test]
    fn algorithm_parses_case_insensitively() {
        for (s, a) in [
            ("ES256", Algorithm::ES256),
            ("es256", Algorithm::ES256),
            ("EdDSA", Algorithm::EdDSA),
            ("eddsa", Algorithm::EdDSA),
            ("Rs256", Algorithm::RS256),
        ] {
            assert_eq!(s.parse::<Algorithm>().ok(), Some(a), "{s}");
            assert_eq!(Algorithm::parse(s), Some(a), "{s}");
        }
        assert_eq!(Algorithm::parse("ES384"), None);
        assert!(matches!(
            "HS256".parse::<Algorithm>(),
            Err(Error::UnknownAlgorithm(_))
        ));
        assert_eq!(Algorithm::default(), Algorithm::ES256);
    }

    #[test]
    fn generated_keys_load_and_get_stable_kids() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let pem = generate(alg).expect("generate");
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"), "{alg}");
            assert!(pem.lines().all(|l| l.len() <= 64));
            let a = PrivateKey::from_pem(pem.as_bytes(), alg).expect("load");
            let b = PrivateKey::from_pem(pem.as_bytes(), alg).expect("load again");
            assert_eq!(a.algorithm(), alg);
            assert_eq!(a.public().kid(), b.public().kid());
            assert_eq!(a.public().kid().len(), 43, "SHA-256, base64url, no padding");
            // The private key also works where a public key is expected.
            let p = PublicJwk::from_pem(pem.as_bytes()).expect("public from private");
            assert_eq!(&p, a.public());
        }
    }

    #[test]
    fn wrong_key_type_is_named() {
        let ed = generate(Algorithm::EdDSA).expect("generate");
        match PrivateKey::from_pem(ed.as_bytes(), Algorithm::ES256) {
            Err(Error::WrongKeyType { expected, found }) => {
                assert_eq!(expected, Algorithm::ES256);
                assert!(found.contains("Ed25519"));
            }
            other => panic!("unexpected: {other:?}"),
        }
        let ec = generate(Algorithm::ES256).expect("generate");
        let err = PrivateKey::from_pem(ec.as_bytes(), Algorithm::RS256).expect_err("mismatch");
        assert!(
            err.to_string().contains("configured algorithm is RS256"),
            "{err}"
        );
    }

    #[test]
    fn p384_key_is_reported_as_unsupported_curve() {
        let k = EcdsaKeyPair::generate(&ECDSA_P384_SHA384_FIXED_SIGNING).expect("gen");
        let pem = pem_encode("PRIVATE KEY", k.to_pkcs8v1().expect("der").as_ref());
        let err = PrivateKey::from_pem(pem.as_bytes(), Algorithm::ES256).expect_err("p384");
        assert!(err.to_string().contains("P-384"), "{err}");
    }

    #[test]
    fn unreadable_and_odd_pems_are_explained_without_key_material() {
        let cases: [(&[u8], &str); 7] = [
            (b"", "no -----BEGIN"),
            (b"\xff\xfe", "not text"),
            (
                b"-----BEGIN PRIVATE KEY-----\n!!!!\n-----END PRIVATE KEY-----\n",
                "corrupt",
            ),
            (
                b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                "no matching",
            ),
            (
                b"-----BEGIN ENCRYPTED PRIVATE KEY-----\nAAAA\n-----END ENCRYPTED PRIVATE KEY-----\n",
                "encrypted",
            ),
            (
                b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
                "not a supported key type",
            ),
            (
                b"-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n",
                "encrypted",
            ),
        ];
        for (pem, want) in cases {
            let err = PrivateKey::from_pem(pem, Algorithm::ES256).expect_err("must fail");
            assert!(
                err.to_string().contains(want),
                "{err} should mention {want}"
            );
        }
        // Valid base64 that is no key: named as such, bytes not echoed.
        let junk = pem_encode("PRIVATE KEY", b"definitely-not-a-key-0123456789");
        let err = PrivateKey::from_pem(junk.as_bytes(), Algorithm::ES256).expect_err("junk");
        assert!(matches!(err, Error::InvalidKey(_)), "{err:?}");
        assert!(!format!("{err} {err:?}").contains("ZGVm"));
    }

    #[test]
    fn public_pem_is_refused_as_signing_key() {
        let k = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("gen");
        let spki = k.public_key().as_der().expect("spki");
        let pem = pem_encode("PUBLIC KEY", spki.as_ref());
        assert!(matches!(
            PrivateKey::from_pem(pem.as_bytes(), Algorithm::ES256),
            Err(Error::PrivateKeyExpected)
        ));
    }

    #[test]
    fn spki_public_keys_match_their_private_keys() {
        let ec = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("gen");
        let ed = Ed25519KeyPair::generate().expect("gen");
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("gen");
        let cases = [
            (
                ec.public_key().as_der().expect("spki").as_ref().to_vec(),
                ec.to_pkcs8v1().expect("pkcs8").as_ref().to_vec(),
                Algorithm::ES256,
            ),
            (
                ed.public_key().as_der().expect("spki").as_ref().to_vec(),
                ed.to_pkcs8v1().expect("pkcs8").as_ref().to_vec(),
                Algorithm::EdDSA,
            ),
            (
                rsa.public_key().as_der().expect("spki").as_ref().to_vec(),
                rsa.as_der().expect("pkcs8").as_ref().to_vec(),
                Algorithm::RS256,
            ),
        ];
        for (spki, pkcs8, alg) in cases {
            let public =
                PublicJwk::from_pem(pem_encode("PUBLIC KEY", &spki).as_bytes()).expect("public");
            let private = PrivateKey::from_pem(pem_encode("PRIVATE KEY", &pkcs8).as_bytes(), alg)
                .expect("private");
            assert_eq!(&public, private.public(), "{alg}");
            assert_eq!(public.algorithm(), alg);
        }
    }

    #[test]
    fn sec1_ec_key_with_parameters_block_loads() {
        let k = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).expect("gen");
        let sec1 = k.private_key().as_der().expect("sec1");
        // What `openssl ecparam -genkey -name prime256v1` writes.
        let pem = format!(
            "-----BEGIN EC PARAMETERS-----\nBggqhkjOPQMBBw==\n-----END EC PARAMETERS-----\n{}",
            pem_encode("EC PRIVATE KEY", sec1.as_ref())
        );
        let loaded = PrivateKey::from_pem(pem.as_bytes(), Algorithm::ES256).expect("sec1");
        let pkcs8 = pem_encode("PRIVATE KEY", k.to_pkcs8v1().expect("der").as_ref());
        let same = PrivateKey::from_pem(pkcs8.as_bytes(), Algorithm::ES256).expect("pkcs8");
        assert_eq!(loaded.public(), same.public());
    }

    /// The PKCS#1 `RSAPrivateKey` inside an aws-lc-rs PKCS#8 RSA document:
    /// `30 82 ll ll | 02 01 00 | 30 0d <rsaEncryption, NULL> | 04 82 ll ll`.
    fn pkcs1_from_pkcs8(pkcs8: &[u8]) -> Vec<u8> {
        assert_eq!(&pkcs8[22..24], &[0x04, 0x82], "OCTET STRING, 2-byte length");
        let len = usize::from(pkcs8[24]) << 8 | usize::from(pkcs8[25]);
        pkcs8[26..26 + len].to_vec()
    }

    #[test]
    fn pkcs1_rsa_key_loads() {
        let rsa = RsaKeyPair::generate(KeySize::Rsa2048).expect("gen");
        let pkcs8 = rsa.as_der().expect("pkcs8");
        let pem = pem_encode("RSA PRIVATE KEY", &pkcs1_from_pkcs8(pkcs8.as_ref()));
        let k = PrivateKey::from_pem(pem.as_bytes(), Algorithm::RS256).expect("pkcs1");
        assert!(matches!(k.public().params(), JwkParams::Rsa { e, .. } if e == "AQAB"));
        let same = PrivateKey::from_pem(
            pem_encode("PRIVATE KEY", pkcs8.as_ref()).as_bytes(),
            Algorithm::RS256,
        )
        .expect("pkcs8");
        assert_eq!(k.public(), same.public());
        let err = PrivateKey::from_pem(pem.as_bytes(), Algorithm::EdDSA).expect_err("type");
        assert!(matches!(err, Error::WrongKeyType { .. }), "{err:?}");
    }

    #[test]
    fn debug_output_has_no_key_material() {
        let pem = generate(Algorithm::EdDSA).expect("generate");
        let k = PrivateKey::from_pem(pem.as_bytes(), Algorithm::EdDSA).expect("load");
        let dbg = format!("{k:?}");
        assert!(dbg.contains(k.public().kid()));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(!dbg.contains(&body[..16]));
        assert!(!dbg.contains("content"));
    }

    #[test]
    fn jwk_json_has_the_published_members() {
        let pem = generate(Algorithm::ES256).expect("generate");
        let k = PrivateKey::from_pem(pem.as_bytes(), Algorithm::ES256).expect("load");
        let v = k.public().to_json();
        for m in ["kty", "crv", "x", "y", "kid", "alg", "use"] {
            assert!(v.get(m).is_some(), "missing {m}");
        }
        assert_eq!(v["use"], "sig");
        assert_eq!(v["alg"], "ES256");
        assert!(v.get("d").is_none());
    }
}
