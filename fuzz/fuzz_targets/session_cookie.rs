//! `session::Sealed::<SessionCookie>::open_within`: never panics and never
//! accepts input it did not seal; a sealed value opens to what was sealed
//! (at the time it was sealed), and any one flipped bit (of the encoded
//! text or of the decoded bytes) makes it refuse. The cookie lookup in
//! request headers never panics either.
#![no_main]

use std::sync::OnceLock;

use std::time::Duration;

use authgate::session::sealed::MAX_VALUE_LEN;
use authgate::session::{CookieConfig, Keys, Sealed, SessionCookie};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use libfuzzer_sys::fuzz_target;

fn keys() -> &'static Keys {
    static KEYS: OnceLock<Keys> = OnceLock::new();
    KEYS.get_or_init(|| {
        Keys::from_secrets(&[
            b"fuzz secret number one, 32 bytes or more".to_vec(),
            b"fuzz secret number two, 32 bytes or more".to_vec(),
        ])
        .expect("two long secrets")
    })
}

/// The session id sealed in `text`, whatever its age.
fn open(keys: &Keys, text: &str) -> Option<String> {
    Sealed::<SessionCookie>::open_within(keys, text, u64::MAX - 1, Duration::MAX).map(|c| c.sid)
}

fuzz_target!(|data: &[u8]| {
    let keys = keys();
    if let Ok(text) = std::str::from_utf8(data) {
        assert!(open(keys, text).is_none(), "random input opened: {text:?}");
        let mut headers = http::HeaderMap::new();
        if let Ok(v) = http::HeaderValue::from_str(text) {
            headers.append(http::header::COOKIE, v);
            for https in [false, true] {
                let cfg = CookieConfig::new("authgate", https);
                if let Some(found) = cfg.find(&headers) {
                    assert!(text.contains(found));
                }
                for found in cfg.find_all(&headers) {
                    assert!(text.contains(found));
                }
            }
        }
    }
    // Round trip and tamper: the input names a session id and the bit to flip.
    let (head, sid) = data.split_at(data.len().min(10));
    let Ok(sid) = std::str::from_utf8(sid) else {
        return;
    };
    let mut h = [0u8; 10];
    h[..head.len()].copy_from_slice(head);
    let issued = u64::from_le_bytes(h[..8].try_into().expect("8 bytes"));
    let bit = usize::from(u16::from_le_bytes([h[8], h[9]]));
    let cookie = SessionCookie {
        sid: sid.to_owned(),
    };
    let sealed = Sealed::seal(keys, &cookie, issued).into_string();
    // Session ids are never empty (an empty one is refused as truncated),
    // and a value over the size cap is refused unopened.
    if sid.is_empty() || sealed.len() > MAX_VALUE_LEN {
        assert!(open(keys, &sealed).is_none());
        return;
    }
    assert_eq!(open(keys, &sealed), Some(sid.to_owned()));
    let fresh = |now| Sealed::<SessionCookie>::open_within(keys, &sealed, now, Duration::from_secs(1));
    assert_eq!(fresh(issued), Some(cookie.clone()), "opens when sealed");
    if let Some(later) = issued.checked_add(1) {
        assert_eq!(fresh(later), None, "the time it was sealed travels with it");
    }
    let mut raw = URL_SAFE_NO_PAD.decode(&sealed).expect("we encoded it");
    let i = bit % (raw.len() * 8);
    raw[i / 8] ^= 1 << (i % 8);
    let tampered = URL_SAFE_NO_PAD.encode(&raw);
    assert!(
        open(keys, &tampered).is_none(),
        "bit {i} flipped and still opened"
    );
    let mut text = sealed.into_bytes();
    let j = bit % text.len();
    text[j] ^= 1 << (bit % 7);
    if let Ok(t) = String::from_utf8(text) {
        // Flipping a low bit of the last base64 character can land on the
        // same decoded bytes (the unused bits of the final sextet), which
        // a strict decoder refuses anyway; either way nothing else opens.
        if let Some(opened) = open(keys, &t) {
            assert_eq!(opened, sid);
        }
    }
});
