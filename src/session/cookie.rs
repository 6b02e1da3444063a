//! The session cookie: AES-256-GCM sealing of (session id, issue time), the
//! key ring that makes key rotation painless, and the cookie's name,
//! attributes and lookup in request headers.
//!
//! The cookie holds only the session id and its issue time, never the
//! identity or groups (DESIGN.md: "the session cookie holds only an id").
//! Format: `base64url_nopad(nonce(12) || ciphertext || tag(16))`, with
//! `0x01 "authgate-session"` (format version, purpose) as AAD, so a value
//! sealed for another purpose or format never opens as a session.
//!
//! Must not: log cookie values or keys; panic on any input; allocate when
//! merely searching request headers.

use std::fmt;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

use super::Error;

/// Minimum secret length: the secret is the only entropy behind the key.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest cookie value we try to open (browsers cap a cookie near 4 KB).
pub const MAX_VALUE_LEN: usize = 4096;

/// Format version and purpose, authenticated with every cookie.
const AAD: &[u8] = b"\x01authgate-session";
/// HKDF-SHA256 `info` (RFC 5869 §3.2): binds the derived key to this use,
/// so the same configured secret could safely key something else too.
const HKDF_INFO: &[u8] = b"authgate session cookie v1 aes-256-gcm";
const TAG_LEN: usize = 16;
const ISSUED_LEN: usize = 8;

/// AES-256-GCM keys derived from the configured secrets: the first seals,
/// all open, so a new secret can be put first while the old one still
/// opens existing cookies. `Debug` shows only the count.
pub struct Keys {
    keys: Vec<RandomizedNonceKey>,
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl Keys {
    /// Each secret must be at least [`MIN_SECRET_LEN`] bytes
    /// (`Error::KeyTooShort { index }`, 0-based); each 256-bit key is
    /// derived with HKDF-SHA256 (empty salt, fixed info).
    pub fn from_secrets(secrets: &[Vec<u8>]) -> Result<Keys, Error> {
        if secrets.is_empty() {
            return Err(Error::NoKeys);
        }
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &[]);
        let mut keys = Vec::with_capacity(secrets.len());
        for (index, secret) in secrets.iter().enumerate() {
            if secret.len() < MIN_SECRET_LEN {
                return Err(Error::KeyTooShort { index });
            }
            let mut bytes = [0u8; 32];
            salt.extract(secret)
                .expand(&[HKDF_INFO], Len32)
                .and_then(|okm| okm.fill(&mut bytes))
                .map_err(|_| Error::Crypto)?;
            let key = RandomizedNonceKey::new(&AES_256_GCM, &bytes).map_err(|_| Error::Crypto);
            bytes.fill(0);
            keys.push(key?);
        }
        Ok(Keys { keys })
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("count", &self.keys.len())
            .finish_non_exhaustive()
    }
}

/// Encrypts `(session_id, issued_unix)` with the first key.
///
/// AES-GCM sealing with a random nonce fails only if AWS-LC fails
/// internally (its RNG aborts the process instead of failing; inputs here
/// are far below GCM's size limit). Should it ever happen, the result is an
/// empty string: a cookie that opens to nothing, i.e. the user is asked to
/// sign in again; never a panic, never a weak cookie.
pub fn seal(keys: &Keys, session_id: &str, issued_unix: u64) -> String {
    let Some(key) = keys.keys.first() else {
        return String::new();
    };
    let mut buf = Vec::with_capacity(ISSUED_LEN + session_id.len() + TAG_LEN);
    buf.extend_from_slice(&issued_unix.to_be_bytes());
    buf.extend_from_slice(session_id.as_bytes());
    let Ok(nonce) = key.seal_in_place_append_tag(Aad::from(AAD), &mut buf) else {
        return String::new();
    };
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&buf);
    URL_SAFE_NO_PAD.encode(out)
}

/// Decrypts a cookie value with each key in turn: `Some((session_id,
/// issued_unix))`, or `None` for anything that is not a value we sealed
/// (tampered, truncated, wrong key, not base64url, longer than
/// [`MAX_VALUE_LEN`], not UTF-8 inside). Never panics.
pub fn open(keys: &Keys, value: &str) -> Option<(String, u64)> {
    if value.is_empty() || value.len() > MAX_VALUE_LEN {
        return None;
    }
    let data = URL_SAFE_NO_PAD.decode(value).ok()?;
    if data.len() < NONCE_LEN + ISSUED_LEN + 1 + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let mut buf = Vec::with_capacity(sealed.len());
    for key in &keys.keys {
        buf.clear();
        buf.extend_from_slice(sealed);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        if let Ok(plain) = key.open_in_place(nonce, Aad::from(AAD), &mut buf) {
            let (issued, sid) = plain.split_at(ISSUED_LEN);
            let issued = u64::from_be_bytes(issued.try_into().ok()?);
            let sid = std::str::from_utf8(sid).ok()?;
            return Some((sid.to_string(), issued));
        }
    }
    None
}

/// RFC 6265 §4.1.1 cookie-octet complement: what must be escaped in a value.
const NOT_COOKIE_OCTET: &AsciiSet = &CONTROLS.add(b' ').add(b'"').add(b',').add(b';').add(b'\\');

/// The session cookie's name and attributes, fixed at start.
#[derive(Debug, Clone)]
pub struct CookieConfig {
    /// The full name, `__Host-` prefix included when `secure`.
    pub name: String,
    /// `Secure` attribute (and `__Host-` prefix): the public URL is https.
    pub secure: bool,
}

impl CookieConfig {
    /// `base_name` is the configured name without prefix (e.g. `authgate`).
    /// With `https`: name `__Host-<base>` and `Secure` (RFC 6265bis §4.1.3.2:
    /// the prefix makes browsers refuse the cookie unless it is Secure,
    /// host-only and `Path=/`, which stops subdomains from planting one).
    /// Always `Path=/; HttpOnly; SameSite=Lax`, never `Domain`.
    ///
    /// Validate the name at start with [`CookieConfig::check_name`]. Here a
    /// `__Host-`/`__Secure-` prefix the operator wrote is dropped (the
    /// right one is added), and any byte that is not an RFC 9110 token
    /// character becomes `_`, so the header is always valid.
    pub fn new(base_name: &str, https: bool) -> Self {
        let base = strip_prefix_ci(base_name, "__Host-")
            .or_else(|| strip_prefix_ci(base_name, "__Secure-"))
            .unwrap_or(base_name);
        let base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii() && is_tchar(c as u8) {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let base = if base.is_empty() {
            "authgate".to_string()
        } else {
            base
        };
        let name = if https {
            format!("__Host-{base}")
        } else {
            base
        };
        CookieConfig {
            name,
            secure: https,
        }
    }

    /// For configuration validation: the name must be a non-empty RFC 9110
    /// token without a `__Host-`/`__Secure-` prefix (added automatically).
    pub fn check_name(base_name: &str) -> Result<(), Error> {
        let prefixed = strip_prefix_ci(base_name, "__Host-").is_some()
            || strip_prefix_ci(base_name, "__Secure-").is_some();
        if base_name.is_empty() || prefixed || !base_name.bytes().all(is_tchar) {
            return Err(Error::InvalidCookieName(base_name.to_string()));
        }
        Ok(())
    }

    fn attributes(&self) -> &'static str {
        if self.secure {
            "; Path=/; HttpOnly; Secure; SameSite=Lax"
        } else {
            "; Path=/; HttpOnly; SameSite=Lax"
        }
    }

    /// `Set-Cookie` for `value` (a [`seal`] output; anything outside RFC
    /// 6265 cookie-octets is percent-encoded, so the header is always valid).
    pub fn set_header(&self, value: &str, max_age: Duration) -> HeaderValue {
        let value = utf8_percent_encode(value, NOT_COOKIE_OCTET);
        let header = format!(
            "{}={value}; Max-Age={}{}",
            self.name,
            max_age.as_secs(),
            self.attributes()
        );
        let mut value = to_header_value(header);
        value.set_sensitive(true);
        value
    }

    /// `Set-Cookie` that deletes the cookie (same name, path and prefix
    /// rules, so the browser matches it).
    pub fn clear_header(&self) -> HeaderValue {
        let header = format!(
            "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{}",
            self.name,
            self.attributes()
        );
        to_header_value(header)
    }

    /// The first non-empty value of our cookie in the request's `Cookie`
    /// header(s). See [`CookieConfig::find_all`].
    pub fn find<'a>(&self, headers: &'a HeaderMap) -> Option<&'a str> {
        self.find_all(headers).next()
    }

    /// Every non-empty value of our cookie, in header order, without
    /// allocating: several `Cookie` headers (HTTP/2 splits them), optional
    /// spaces, other cookies whose names merely contain ours
    /// (`xauthgate`, `authgate2`), and DQUOTE-wrapped values. Names compare
    /// exactly (RFC 6265 names are case-sensitive). A browser may send
    /// several cookies of one name (different paths, or one planted by a
    /// sibling domain when not using `__Host-`): try each until one opens.
    pub fn find_all<'a, 'b>(&'b self, headers: &'a HeaderMap) -> impl Iterator<Item = &'a str> + 'b
    where
        'a: 'b,
    {
        let name = self.name.as_bytes();
        headers
            .get_all(COOKIE)
            .iter()
            .flat_map(|h| h.as_bytes().split(|&b| b == b';'))
            .filter_map(move |pair| {
                let pair = trim_ows(pair);
                let eq = pair.iter().position(|&b| b == b'=')?;
                if trim_ows(&pair[..eq]) != name {
                    return None;
                }
                let mut value = trim_ows(&pair[eq + 1..]);
                if let [b'"', inner @ .., b'"'] = value {
                    value = inner;
                }
                if value.is_empty() {
                    return None;
                }
                std::str::from_utf8(value).ok()
            })
    }
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Browsers match cookie prefixes case-insensitively (RFC 6265bis §4.1.3).
fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Everything passed here is visible ASCII plus spaces (the name is a
/// token, values are percent-encoded), so the conversion cannot fail; the
/// fallback only keeps this free of panics.
fn to_header_value(s: String) -> HeaderValue {
    HeaderValue::try_from(s).unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(secrets: &[&[u8]]) -> Keys {
        let v: Vec<Vec<u8>> = secrets.iter().map(|s| s.to_vec()).collect();
        Keys::from_secrets(&v).expect("keys")
    }

    const A: &[u8] = b"secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
    const B: &[u8] = b"secret-B-0123456789abcdefghijklmnopqrstuvwxyz";
    const SID: &str = "bU0ZPaaHnZdUvLw7mtF1yxvRr9hGkpKJuS2oX6XKUjQ";

    #[test]
    fn round_trip() {
        let k = keys(&[A]);
        let v = seal(&k, SID, 1_700_000_000);
        assert_eq!(open(&k, &v), Some((SID.to_string(), 1_700_000_000)));
        let other = seal(&k, SID, 1_700_000_000);
        assert_ne!(v, other, "random nonce: two seals differ");
        assert!(!v.contains(SID));
        assert!(v
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn any_flipped_byte_is_rejected() {
        let k = keys(&[A]);
        let raw = URL_SAFE_NO_PAD.decode(seal(&k, SID, 42)).expect("b64");
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut t = raw.clone();
                t[i] ^= bit;
                assert_eq!(open(&k, &URL_SAFE_NO_PAD.encode(&t)), None, "byte {i}");
            }
        }
    }

    #[test]
    fn truncated_extended_and_garbage_values_are_rejected() {
        let k = keys(&[A]);
        let v = seal(&k, SID, 42);
        for n in 0..v.len() {
            assert_eq!(open(&k, &v[..n]), None, "prefix {n}");
        }
        assert_eq!(open(&k, &format!("{v}A")), None);
        assert_eq!(open(&k, &format!("{v}=")), None, "padding is not ours");
        for bad in ["", "!!!!", "not base64 at all", "é", "....", "AAAA"] {
            assert_eq!(open(&k, bad), None, "{bad:?}");
        }
        let big = "A".repeat(10 * 1024);
        assert_eq!(open(&k, &big), None);
        let big_valid_b64 = URL_SAFE_NO_PAD.encode(vec![7u8; 3000]);
        assert!(big_valid_b64.len() <= MAX_VALUE_LEN);
        assert_eq!(open(&k, &big_valid_b64), None);
        let garbage: String = (0..10 * 1024)
            .map(|i| char::from(b'!' + (i % 90) as u8))
            .collect();
        assert_eq!(open(&k, &garbage), None);
    }

    #[test]
    fn other_key_is_rejected_and_rotation_keeps_old_cookies() {
        let old = keys(&[A]);
        let rotated = keys(&[B, A]);
        let only_new = keys(&[B]);
        let v = seal(&old, SID, 7);
        assert_eq!(open(&rotated, &v), Some((SID.to_string(), 7)));
        assert_eq!(open(&only_new, &v), None);
        // New cookies are sealed with the first key.
        let w = seal(&rotated, SID, 8);
        assert_eq!(open(&only_new, &w), Some((SID.to_string(), 8)));
        assert_eq!(open(&old, &w), None);
    }

    #[test]
    fn short_or_missing_secrets_are_refused() {
        assert!(matches!(Keys::from_secrets(&[]), Err(Error::NoKeys)));
        let short = vec![A.to_vec(), vec![b'x'; 31]];
        match Keys::from_secrets(&short) {
            Err(Error::KeyTooShort { index }) => assert_eq!(index, 1),
            other => panic!("unexpected {other:?}"),
        }
        assert!(Keys::from_secrets(&[vec![0u8; 32]]).is_ok());
    }

    #[test]
    fn keys_debug_shows_no_secret() {
        let k = keys(&[A, B]);
        let dbg = format!("{k:?}");
        assert!(dbg.contains("count: 2"));
        assert!(!dbg.contains("secret-A"));
    }

    #[test]
    fn https_cookie_gets_host_prefix_and_secure() {
        let c = CookieConfig::new("authgate", true);
        assert_eq!(c.name, "__Host-authgate");
        assert!(c.secure);
        let h = c.set_header("abc", Duration::from_secs(3600));
        assert_eq!(
            h.to_str().expect("ascii"),
            "__Host-authgate=abc; Max-Age=3600; Path=/; HttpOnly; Secure; SameSite=Lax"
        );
        let clear = c.clear_header();
        let clear = clear.to_str().expect("ascii");
        assert!(clear.starts_with("__Host-authgate=; Max-Age=0;"));
        assert!(clear.contains("Path=/") && clear.contains("Secure"));
        assert!(!clear.contains("Domain"));
    }

    #[test]
    fn http_cookie_has_no_prefix_and_no_secure() {
        let c = CookieConfig::new("authgate", false);
        assert_eq!(c.name, "authgate");
        let h = c.set_header("abc", Duration::from_secs(60));
        assert_eq!(
            h.to_str().expect("ascii"),
            "authgate=abc; Max-Age=60; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    #[test]
    fn cookie_names_are_validated_and_normalized() {
        for bad in ["", "a b", "a;b", "a=b", "__Host-x", "__secure-x", "é"] {
            assert!(CookieConfig::check_name(bad).is_err(), "{bad:?}");
        }
        assert!(CookieConfig::check_name("_oauth2_proxy").is_ok());
        // `new` never produces an invalid or doubly prefixed name.
        assert_eq!(CookieConfig::new("__host-ag", true).name, "__Host-ag");
        assert_eq!(CookieConfig::new("__Secure-ag", false).name, "ag");
        assert_eq!(CookieConfig::new("a b;é", false).name, "a_b__");
        assert_eq!(CookieConfig::new("", true).name, "__Host-authgate");
        let c = CookieConfig::new("a=b", true);
        assert!(c.set_header("v", Duration::from_secs(1)).to_str().is_ok());
    }

    #[test]
    fn set_header_escapes_what_a_cookie_value_cannot_hold() {
        let c = CookieConfig::new("s", false);
        let h = c.set_header("a;b c\r\n\"", Duration::from_secs(1));
        assert_eq!(
            h.to_str().expect("ascii"),
            "s=a%3Bb%20c%0D%0A%22; Max-Age=1; Path=/; HttpOnly; SameSite=Lax"
        );
    }

    fn headers(values: &[&[u8]]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(COOKIE, HeaderValue::from_bytes(v).expect("valid header"));
        }
        h
    }

    #[test]
    fn find_skips_lookalike_names_across_several_headers() {
        let c = CookieConfig::new("authgate", false);
        let h = headers(&[
            b"xauthgate=no1; authgate2=no2",
            b"Authgate=no3;  authgate_x=no4 ; authgate =  yes ; other=1",
        ]);
        assert_eq!(c.find(&h), Some("yes"));
        assert_eq!(c.find(&headers(&[b"xauthgate=1; authgate2=2"])), None);
        assert_eq!(c.find(&HeaderMap::new()), None);
    }

    #[test]
    fn find_handles_quotes_empty_values_and_duplicates() {
        let c = CookieConfig::new("authgate", true);
        let h = headers(&[
            b"__Host-authgate=; a=b",
            b"__Host-authgate=\"quoted\";__Host-authgate=second",
        ]);
        assert_eq!(c.find(&h), Some("quoted"));
        assert_eq!(c.find_all(&h).collect::<Vec<_>>(), ["quoted", "second"]);
        // The unprefixed name is a different cookie.
        assert_eq!(c.find(&headers(&[b"authgate=plain"])), None);
    }

    #[test]
    fn find_survives_odd_bytes_in_other_cookies() {
        let c = CookieConfig::new("authgate", false);
        let h = headers(&[b"x=\xff\xfe; =; ;;; noequals; authgate=v\t", b"\t"]);
        assert_eq!(c.find(&h), Some("v"));
        // Our own value with non-UTF-8 bytes is not a value we issued.
        assert_eq!(c.find(&headers(&[b"authgate=\xff"])), None);
    }

    #[test]
    fn found_value_opens() {
        let k = keys(&[A]);
        let c = CookieConfig::new("authgate", true);
        let v = seal(&k, SID, 9);
        let set = c.set_header(&v, Duration::from_secs(60));
        // What a browser sends back: name=value from Set-Cookie.
        let pair = set
            .to_str()
            .expect("ascii")
            .split(';')
            .next()
            .expect("pair");
        let h = headers(&[format!("theme=dark; {pair}").as_bytes()]);
        let found = c.find(&h).expect("found");
        assert_eq!(open(&k, found), Some((SID.to_string(), 9)));
    }
}
