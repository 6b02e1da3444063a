//! The session cookie: what it seals ([`SessionCookie`], the session id
//! and, as every [`Sealed`] value, its issue time), its name and
//! attributes, and its lookup in request headers.
//!
//! The cookie holds only the session id and its issue time, never the
//! identity or groups (DESIGN.md: "the session cookie holds only an id").
//! Format: [`super::sealed`], with AD [`ad::SESSION`] (`0x01
//! "authgate-session"`), unchanged since the first release: cookies issued
//! before purposes were typed still open.
//!
//! Must not: log cookie values or keys; panic on any input; allocate when
//! merely searching request headers.

use std::time::Duration;

use http::header::COOKIE;
use http::{HeaderMap, HeaderValue};
use percent_encoding::{utf8_percent_encode, AsciiSet, CONTROLS};

#[cfg(doc)]
use super::sealed::Sealed;
use super::sealed::{ad, text_payload, Sealable};
use super::Error;

/// What the session cookie seals: the session id. Its lifetime is the
/// configured `session.ttl` ([`Sealed::open_within`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionCookie {
    pub sid: String,
}

impl Sealable for SessionCookie {
    const AD: &'static [u8] = ad::SESSION;
    fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.sid.as_bytes());
    }
    fn decode(payload: &[u8]) -> Option<Self> {
        text_payload(payload).map(|sid| SessionCookie { sid })
    }
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

    /// `Set-Cookie` for `value` (a [`Sealed`] text; anything outside RFC
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
    use super::super::sealed::tests::keys;
    use super::super::sealed::{Sealed, MAX_VALUE_LEN};
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    const A: &[u8] = b"secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
    const B: &[u8] = b"secret-B-0123456789abcdefghijklmnopqrstuvwxyz";
    const SID: &str = "bU0ZPaaHnZdUvLw7mtF1yxvRr9hGkpKJuS2oX6XKUjQ";
    const DAY: Duration = Duration::from_secs(86_400);

    fn seal(k: &Keys, sid: &str, issued: u64) -> String {
        let c = SessionCookie {
            sid: sid.to_string(),
        };
        Sealed::seal(k, &c, issued).into_string()
    }

    /// The session id in `v`, if it opens at `now` (lifetime a day).
    fn open(k: &Keys, v: &str, now: u64) -> Option<String> {
        Sealed::<SessionCookie>::open_within(k, v, now, DAY).map(|c| c.sid)
    }

    use super::super::Keys;

    /// A cookie sealed by an independent implementation (Python
    /// `cryptography`: HKDF-SHA256 of secret A, AES-256-GCM, nonce 0..11,
    /// AD `0x01 "authgate-session"`, plaintext `1_700_000_000` big-endian
    /// then SID): the format of every session cookie issued so far.
    const ISSUED_BEFORE: &str = "AAECAwQFBgcICQoL7gjauYBWAirlvwtsSLuduJEiwr7n2kKjC5TrSqgtm1DczQA6Ax--GV9TrNj9jr_9UdcEgqUB0dZ97Z0IYVP8fACtew";

    #[test]
    fn the_wire_format_is_unchanged() {
        let k = keys(&[A]);
        let t = 1_700_000_000;
        assert_eq!(open(&k, ISSUED_BEFORE, t), Some(SID.to_string()));
        assert_eq!(open(&k, ISSUED_BEFORE, t + 86_399), Some(SID.to_string()));
        assert_eq!(open(&k, ISSUED_BEFORE, t + 86_400), None, "issued at t");
        assert_eq!(open(&keys(&[B]), ISSUED_BEFORE, t), None);
        // And what we seal now has the same shape: nonce, issued, id, tag.
        let v = seal(&k, SID, t);
        let raw = URL_SAFE_NO_PAD.decode(&v).expect("b64");
        assert_eq!(raw.len(), 12 + 8 + SID.len() + 16);
        assert_eq!(v.len(), ISSUED_BEFORE.len());
    }

    #[test]
    fn round_trip() {
        let k = keys(&[A]);
        let v = seal(&k, SID, 1_700_000_000);
        assert_eq!(open(&k, &v, 1_700_000_000), Some(SID.to_string()));
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
                assert_eq!(open(&k, &URL_SAFE_NO_PAD.encode(&t), 42), None, "byte {i}");
            }
        }
    }

    #[test]
    fn truncated_extended_and_garbage_values_are_rejected() {
        let k = keys(&[A]);
        let v = seal(&k, SID, 42);
        for n in 0..v.len() {
            assert_eq!(open(&k, &v[..n], 42), None, "prefix {n}");
        }
        assert_eq!(open(&k, &format!("{v}A"), 42), None);
        assert_eq!(open(&k, &format!("{v}="), 42), None, "padding is not ours");
        for bad in ["", "!!!!", "not base64 at all", "é", "....", "AAAA"] {
            assert_eq!(open(&k, bad, 42), None, "{bad:?}");
        }
        let big = "A".repeat(10 * 1024);
        assert_eq!(open(&k, &big, 42), None);
        let big_valid_b64 = URL_SAFE_NO_PAD.encode(vec![7u8; 3000]);
        assert!(big_valid_b64.len() <= MAX_VALUE_LEN);
        assert_eq!(open(&k, &big_valid_b64, 42), None);
        let garbage: String = (0..10 * 1024)
            .map(|i| char::from(b'!' + (i % 90) as u8))
            .collect();
        assert_eq!(open(&k, &garbage, 42), None);
    }

    #[test]
    fn other_key_is_rejected_and_rotation_keeps_old_cookies() {
        let old = keys(&[A]);
        let rotated = keys(&[B, A]);
        let only_new = keys(&[B]);
        let v = seal(&old, SID, 7);
        assert_eq!(open(&rotated, &v, 7), Some(SID.to_string()));
        assert_eq!(open(&only_new, &v, 7), None);
        // New cookies are sealed with the first key.
        let w = seal(&rotated, SID, 8);
        assert_eq!(open(&only_new, &w, 8), Some(SID.to_string()));
        assert_eq!(open(&old, &w, 8), None);
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
        assert_eq!(open(&k, found, 9), Some(SID.to_string()));
    }
}
