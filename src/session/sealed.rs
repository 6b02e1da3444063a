//! Values sealed with the session keys, typed by purpose: the session
//! cookie, the pre-login CSRF cookie, the SSO page's form tokens, the SAML
//! sign-in and logout tracking cookies. [`Sealed<T>`] is the one way to
//! seal and open any of them.
//!
//! - **Purpose as associated data.** Each purpose is a type implementing
//!   [`Sealable`]; its [`Sealable::AD`] is the AES-256-GCM associated data,
//!   so a value sealed for one purpose never opens as another (the tag
//!   does not verify), whatever its bytes say. The ADs are the constants
//!   of [`ad`], one per purpose, all different.
//! - **Freshness in one place.** Every sealed value carries the time it was
//!   sealed; [`Sealed::open_within`] refuses one sealed `ttl` or longer ago
//!   or more than [`MAX_SKEW`] in the future (another replica's clock).
//!   Purposes with a fixed lifetime implement [`Expiring`] and open with
//!   [`Sealed::open`]; the session cookie's lifetime is `session.ttl`.
//! - **Format**: `base64url_nopad(nonce(12) || ciphertext || tag(16))`,
//!   where the plaintext is `issued_unix (u64, big-endian) || payload`.
//!   For the session cookie (payload: the session id, AD
//!   `0x01 "authgate-session"`) this is byte for byte the format of the
//!   cookies issued before purposes were typed, so they stay valid.
//! - **Key ring**: [`Keys`], derived from the configured secrets; the first
//!   seals, all open (rotation).
//!
//! Must not: log values or keys; panic on any input; hand-roll crypto
//! (AWS-LC's AEAD and HKDF do the work).

use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use aws_lc_rs::aead::{Aad, Nonce, RandomizedNonceKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::hkdf;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::Error;

/// Minimum secret length: the secret is the only entropy behind the key.
pub const MIN_SECRET_LEN: usize = 32;
/// Longest sealed text we try to open (browsers cap a cookie near 4 KB).
pub const MAX_VALUE_LEN: usize = 4096;
/// How far in the future a sealed value's time may be (clocks of replicas
/// differ a little); further is refused.
pub const MAX_SKEW: Duration = Duration::from_secs(60);

/// HKDF-SHA256 `info` (RFC 5869 §3.2): binds the derived key to this use,
/// so the same configured secret could safely key something else too.
const HKDF_INFO: &[u8] = b"authgate session cookie v1 aes-256-gcm";
const TAG_LEN: usize = 16;
const ISSUED_LEN: usize = 8;

/// The associated data of each purpose: format version `0x01`, then the
/// purpose's name. One constant per [`Sealable`] implementation; all
/// different (a test checks), so no sealed value opens as another purpose.
pub mod ad {
    /// The session cookie (unchanged since cookies were first issued).
    pub const SESSION: &[u8] = b"\x01authgate-session";
    /// The LDAP login form's pre-login CSRF cookie.
    pub const LOGIN_CSRF: &[u8] = b"\x01authgate-login-csrf";
    /// The CSRF token of the SSO settings page's forms.
    pub const ADMIN_CSRF: &[u8] = b"\x01authgate-admin-csrf";
    /// The SAML sign-ins a browser started (`<session cookie>-saml`).
    pub const SAML_REQUESTS: &[u8] = b"\x01authgate-saml-requests";
    /// The SAML LogoutRequests a browser sent (`<session cookie>-slo`).
    pub const SAML_LOGOUTS: &[u8] = b"\x01authgate-saml-logouts";

    /// Every purpose's AD.
    pub const ALL: [&[u8]; 5] = [SESSION, LOGIN_CSRF, ADMIN_CSRF, SAML_REQUESTS, SAML_LOGOUTS];
}

/// A kind of value sealed with the session keys: its purpose (the AD) and
/// its payload encoding.
pub trait Sealable: Sized {
    /// Authenticated with the value: one of [`ad`], never shared.
    const AD: &'static [u8];
    /// Appends the payload to `out`.
    fn encode(&self, out: &mut Vec<u8>);
    /// The value back from the payload (already authenticated), `None`
    /// when it does not decode.
    fn decode(payload: &[u8]) -> Option<Self>;
}

/// A [`Sealable`] with a fixed lifetime, opened with [`Sealed::open`].
pub trait Expiring: Sealable {
    /// A value sealed this long ago or longer no longer opens.
    const TTL: Duration;
}

/// A value of type `T`, sealed: the text that goes into a cookie or a form.
pub struct Sealed<T> {
    text: String,
    of: PhantomData<fn() -> T>,
}

impl<T: Sealable> Sealed<T> {
    /// Encrypts `value`, sealed at `now` (Unix seconds), with the first key.
    ///
    /// AES-GCM sealing with a random nonce fails only if AWS-LC fails
    /// internally (its RNG aborts the process instead of failing; inputs
    /// here are far below GCM's size limit). Should it ever happen, the
    /// text is empty: a value that opens to nothing, i.e. the user is asked
    /// to sign in or submit again; never a panic, never a weak value.
    pub fn seal(keys: &Keys, value: &T, now: u64) -> Sealed<T> {
        Sealed {
            text: seal_raw(keys, value, now).unwrap_or_default(),
            of: PhantomData,
        }
    }

    /// The value sealed in `text` for this purpose, if it was sealed less
    /// than `ttl` before `now` and no more than [`MAX_SKEW`] after it.
    /// `None` for anything else: another purpose, tampered, truncated,
    /// another key, not base64url, longer than [`MAX_VALUE_LEN`], a
    /// payload that does not decode. Never panics.
    pub fn open_within(keys: &Keys, text: &str, now: u64, ttl: Duration) -> Option<T> {
        let (issued, value) = open_raw::<T>(keys, text)?;
        fresh(issued, now, ttl).then_some(value)
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    pub fn into_string(self) -> String {
        self.text
    }
}

impl<T: Expiring> Sealed<T> {
    /// [`Sealed::open_within`] the purpose's own [`Expiring::TTL`].
    pub fn open(keys: &Keys, text: &str, now: u64) -> Option<T> {
        Self::open_within(keys, text, now, T::TTL)
    }
}

impl<T> fmt::Debug for Sealed<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sealed")
            .field("len", &self.text.len())
            .finish_non_exhaustive()
    }
}

/// The one freshness rule: sealed less than `ttl` ago, and not more than
/// [`MAX_SKEW`] ahead of this clock.
fn fresh(issued: u64, now: u64, ttl: Duration) -> bool {
    issued <= now.saturating_add(MAX_SKEW.as_secs()) && now.saturating_sub(issued) < ttl.as_secs()
}

fn seal_raw<T: Sealable>(keys: &Keys, value: &T, issued: u64) -> Option<String> {
    let key = keys.keys.first()?;
    let mut buf = Vec::with_capacity(ISSUED_LEN + 64 + TAG_LEN);
    buf.extend_from_slice(&issued.to_be_bytes());
    value.encode(&mut buf);
    let nonce = key
        .seal_in_place_append_tag(Aad::from(T::AD), &mut buf)
        .ok()?;
    let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
    out.extend_from_slice(nonce.as_ref());
    out.extend_from_slice(&buf);
    Some(URL_SAFE_NO_PAD.encode(out))
}

/// Decrypts with each key in turn: `(issued, value)`. No freshness check.
fn open_raw<T: Sealable>(keys: &Keys, text: &str) -> Option<(u64, T)> {
    if text.is_empty() || text.len() > MAX_VALUE_LEN {
        return None;
    }
    let data = URL_SAFE_NO_PAD.decode(text).ok()?;
    if data.len() < NONCE_LEN + ISSUED_LEN + 1 + TAG_LEN {
        return None;
    }
    let (nonce, sealed) = data.split_at(NONCE_LEN);
    let mut buf = Vec::with_capacity(sealed.len());
    for key in &keys.keys {
        buf.clear();
        buf.extend_from_slice(sealed);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        if let Ok(plain) = key.open_in_place(nonce, Aad::from(T::AD), &mut buf) {
            let (issued, payload) = plain.split_at(ISSUED_LEN);
            let issued = u64::from_be_bytes(issued.try_into().ok()?);
            return Some((issued, T::decode(payload)?));
        }
    }
    None
}

/// AES-256-GCM keys derived from the configured secrets: the first seals,
/// all open, so a new secret can be put first while the old one still
/// opens existing values. `Debug` shows only the count.
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

/// UTF-8 text as a payload (what most purposes carry).
pub(crate) fn text_payload(payload: &[u8]) -> Option<String> {
    std::str::from_utf8(payload).ok().map(str::to_string)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn keys(secrets: &[&[u8]]) -> Keys {
        let v: Vec<Vec<u8>> = secrets.iter().map(|s| s.to_vec()).collect();
        Keys::from_secrets(&v).expect("keys")
    }

    const A: &[u8] = b"secret-A-0123456789abcdefghijklmnopqrstuvwxyz";
    const B: &[u8] = b"secret-B-0123456789abcdefghijklmnopqrstuvwxyz";
    const T: u64 = 1_700_000_000;
    const DAY: Duration = Duration::from_secs(86_400);

    /// A purpose for each AD of [`ad`], with the same (raw bytes) payload,
    /// so only the AD tells them apart.
    #[derive(Debug, PartialEq)]
    struct Raw<const I: usize>(Vec<u8>);

    impl<const I: usize> Sealable for Raw<I> {
        const AD: &'static [u8] = ad::ALL[I];
        fn encode(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(&self.0);
        }
        fn decode(payload: &[u8]) -> Option<Self> {
            Some(Raw(payload.to_vec()))
        }
    }

    impl<const I: usize> Expiring for Raw<I> {
        const TTL: Duration = Duration::from_secs(600);
    }

    fn open_as<const I: usize>(k: &Keys, text: &str) -> bool {
        Sealed::<Raw<I>>::open_within(k, text, T, DAY).is_some()
    }

    /// Which purposes `text` opens as.
    fn opens_as(k: &Keys, text: &str) -> [bool; 5] {
        [
            open_as::<0>(k, text),
            open_as::<1>(k, text),
            open_as::<2>(k, text),
            open_as::<3>(k, text),
            open_as::<4>(k, text),
        ]
    }

    fn seal_as(k: &Keys, i: usize, payload: &[u8]) -> String {
        let p = payload.to_vec();
        match i {
            0 => Sealed::seal(k, &Raw::<0>(p), T).into_string(),
            1 => Sealed::seal(k, &Raw::<1>(p), T).into_string(),
            2 => Sealed::seal(k, &Raw::<2>(p), T).into_string(),
            3 => Sealed::seal(k, &Raw::<3>(p), T).into_string(),
            _ => Sealed::seal(k, &Raw::<4>(p), T).into_string(),
        }
    }

    #[test]
    fn purposes_have_distinct_associated_data() {
        for (i, a) in ad::ALL.iter().enumerate() {
            assert!(a.starts_with(b"\x01authgate-"), "{i}");
            for b in &ad::ALL[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert_eq!(
            ad::SESSION,
            b"\x01authgate-session",
            "the session cookie's wire format"
        );
    }

    #[test]
    fn a_value_opens_only_as_the_purpose_it_was_sealed_for() {
        let k = keys(&[A]);
        for i in 0..5 {
            let text = seal_as(&k, i, b"the same payload");
            let mut want = [false; 5];
            want[i] = true;
            assert_eq!(opens_as(&k, &text), want, "sealed as purpose {i}");
        }
    }

    #[test]
    fn round_trip_with_random_nonce() {
        let k = keys(&[A]);
        let v = Sealed::seal(&k, &Raw::<1>(b"token".to_vec()), T);
        let w = Sealed::seal(&k, &Raw::<1>(b"token".to_vec()), T);
        assert_ne!(v.as_str(), w.as_str(), "random nonce: two seals differ");
        assert_eq!(
            Sealed::<Raw<1>>::open(&k, v.as_str(), T),
            Some(Raw(b"token".to_vec()))
        );
        assert!(!v.as_str().contains("token"));
        assert!(v
            .as_str()
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        assert_eq!(open_raw::<Raw<1>>(&k, v.as_str()).map(|(t, _)| t), Some(T));
        assert!(
            !format!("{v:?}").contains(v.as_str()),
            "Debug hides the text"
        );
    }

    #[test]
    fn freshness_is_the_ttl_and_a_minute_of_skew() {
        let k = keys(&[A]);
        let v = Sealed::seal(&k, &Raw::<2>(b"x".to_vec()), T).into_string();
        let open = |now| Sealed::<Raw<2>>::open(&k, &v, now).is_some();
        // Expiring::TTL of the test purposes: 600 s.
        assert!(open(T));
        assert!(open(T + 599));
        assert!(!open(T + 600), "expired");
        assert!(!open(T + 100_000));
        assert!(open(T - 60), "sealed by a replica up to a minute ahead");
        assert!(!open(T - 61), "sealed too far in the future");
        assert!(!open(0));
        // A configured lifetime.
        let within = |now, ttl| Sealed::<Raw<2>>::open_within(&k, &v, now, ttl).is_some();
        assert!(within(T + 3599, Duration::from_secs(3600)));
        assert!(!within(T + 3600, Duration::from_secs(3600)));
        assert!(!within(T, Duration::ZERO));
        // Far ends of the clock do not overflow.
        let end = Sealed::seal(&k, &Raw::<2>(b"x".to_vec()), u64::MAX).into_string();
        assert!(Sealed::<Raw<2>>::open(&k, &end, u64::MAX).is_some());
        assert!(Sealed::<Raw<2>>::open(&k, &end, 0).is_none());
    }

    #[test]
    fn any_flipped_bit_is_rejected() {
        let k = keys(&[A]);
        let text = seal_as(&k, 0, b"bU0ZPaaHnZdUvLw7mtF1yxvRr9hGkpKJuS2oX6XKUjQ");
        let raw = URL_SAFE_NO_PAD.decode(&text).expect("b64");
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut t = raw.clone();
                t[i] ^= 1 << bit;
                let t = URL_SAFE_NO_PAD.encode(&t);
                assert_eq!(opens_as(&k, &t), [false; 5], "byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn truncated_extended_and_garbage_values_are_rejected() {
        let k = keys(&[A]);
        let v = seal_as(&k, 3, b"[]");
        for n in 0..v.len() {
            assert_eq!(opens_as(&k, &v[..n]), [false; 5], "prefix {n}");
        }
        assert_eq!(opens_as(&k, &format!("{v}A")), [false; 5]);
        assert_eq!(opens_as(&k, &format!("{v}=")), [false; 5], "padding");
        for bad in ["", "!!!!", "not base64 at all", "é", "....", "AAAA"] {
            assert_eq!(opens_as(&k, bad), [false; 5], "{bad:?}");
        }
        assert_eq!(opens_as(&k, &"A".repeat(10 * 1024)), [false; 5]);
        let big_valid_b64 = URL_SAFE_NO_PAD.encode(vec![7u8; 3000]);
        assert!(big_valid_b64.len() <= MAX_VALUE_LEN);
        assert_eq!(opens_as(&k, &big_valid_b64), [false; 5]);
        // An empty payload is refused as truncated.
        assert_eq!(opens_as(&k, &seal_as(&k, 1, b"")), [false; 5]);
    }

    #[test]
    fn other_key_is_rejected_and_rotation_keeps_old_values() {
        let old = keys(&[A]);
        let rotated = keys(&[B, A]);
        let only_new = keys(&[B]);
        let v = seal_as(&old, 0, b"sid");
        assert!(open_as::<0>(&rotated, &v));
        assert!(!open_as::<0>(&only_new, &v));
        let w = seal_as(&rotated, 0, b"sid");
        assert!(open_as::<0>(&only_new, &w), "new values: the first key");
        assert!(!open_as::<0>(&old, &w));
    }

    #[test]
    fn a_payload_that_does_not_decode_opens_nothing() {
        struct Utf8(String);
        impl Sealable for Utf8 {
            const AD: &'static [u8] = ad::LOGIN_CSRF;
            fn encode(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.0.as_bytes());
            }
            fn decode(payload: &[u8]) -> Option<Self> {
                text_payload(payload).map(Utf8)
            }
        }
        let k = keys(&[A]);
        let bad = seal_as(&k, 1, b"\xff\xfe");
        assert!(Sealed::<Utf8>::open_within(&k, &bad, T, DAY).is_none());
        let good = seal_as(&k, 1, "é".as_bytes());
        assert_eq!(
            Sealed::<Utf8>::open_within(&k, &good, T, DAY).map(|u| u.0),
            Some("é".to_string())
        );
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
}
