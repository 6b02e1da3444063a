//! Every purpose sealed with the session keys, side by side (the endpoints
//! are the lowest layer that sees them all): a value sealed for one opens
//! as no other, each purpose expires on its own clock, and no tampered
//! value opens as anything.

use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use super::admin::csrf::AdminCsrf;
use super::saml::{SamlLogouts, SamlRequests};
use crate::ldap::login::LoginCsrf;
use crate::session::{Expiring, Keys, Sealable, Sealed, SessionCookie};

const T: u64 = 1_700_000_000;
const DAY: Duration = Duration::from_secs(86_400);

fn keys() -> Keys {
    Keys::from_secrets(&[b"secret-A-0123456789abcdefghijklmnopqrstuvwxyz".to_vec()]).expect("keys")
}

/// One value of each purpose, all with the payload `[]`, which every
/// purpose's decoder accepts: only the purpose (the AD) tells them apart.
fn sealed_all(k: &Keys) -> [(&'static str, String); 5] {
    let text = |s: &str| s.to_string();
    [
        (
            "session",
            Sealed::seal(k, &SessionCookie { sid: text("[]") }, T).into_string(),
        ),
        (
            "login-csrf",
            Sealed::seal(k, &LoginCsrf { token: text("[]") }, T).into_string(),
        ),
        (
            "admin-csrf",
            Sealed::seal(
                k,
                &AdminCsrf {
                    session_tag: text("[]"),
                },
                T,
            )
            .into_string(),
        ),
        (
            "saml-requests",
            Sealed::seal(k, &SamlRequests(Vec::new()), T).into_string(),
        ),
        (
            "saml-logouts",
            Sealed::seal(k, &SamlLogouts(Vec::new()), T).into_string(),
        ),
    ]
}

/// Which purposes `text` opens as, at `T` with a day's lifetime.
fn opens_as(k: &Keys, text: &str) -> [bool; 5] {
    fn one<V: Sealable>(k: &Keys, text: &str) -> bool {
        Sealed::<V>::open_within(k, text, T, DAY).is_some()
    }
    [
        one::<SessionCookie>(k, text),
        one::<LoginCsrf>(k, text),
        one::<AdminCsrf>(k, text),
        one::<SamlRequests>(k, text),
        one::<SamlLogouts>(k, text),
    ]
}

#[test]
fn the_payload_decodes_as_every_purpose() {
    // Without this the cross-purpose test below would prove nothing.
    assert!(SessionCookie::decode(b"[]").is_some());
    assert!(LoginCsrf::decode(b"[]").is_some());
    assert!(AdminCsrf::decode(b"[]").is_some());
    assert!(SamlRequests::decode(b"[]").is_some());
    assert!(SamlLogouts::decode(b"[]").is_some());
}

#[test]
fn no_value_opens_as_another_purpose() {
    let k = keys();
    for (i, (name, text)) in sealed_all(&k).iter().enumerate() {
        let mut want = [false; 5];
        want[i] = true;
        assert_eq!(opens_as(&k, text), want, "sealed as {name}");
    }
}

#[test]
fn no_tampered_value_opens_as_anything() {
    let k = keys();
    for (name, text) in sealed_all(&k) {
        let raw = URL_SAFE_NO_PAD.decode(&text).expect("b64");
        for i in 0..raw.len() {
            for bit in 0..8 {
                let mut t = raw.clone();
                t[i] ^= 1 << bit;
                let t = URL_SAFE_NO_PAD.encode(&t);
                assert_eq!(opens_as(&k, &t), [false; 5], "{name}: byte {i} bit {bit}");
            }
        }
        // Nor one cut short, or with the nonce of another value.
        assert_eq!(opens_as(&k, &text[..text.len() - 1]), [false; 5], "{name}");
    }
    let [(_, a), (_, b), ..] = sealed_all(&k);
    let (a, b) = (
        URL_SAFE_NO_PAD.decode(a).expect("b64"),
        URL_SAFE_NO_PAD.decode(b).expect("b64"),
    );
    let mut spliced = b[..12].to_vec();
    spliced.extend_from_slice(&a[12..]);
    assert_eq!(
        opens_as(&k, &URL_SAFE_NO_PAD.encode(spliced)),
        [false; 5],
        "another value's nonce"
    );
}

/// A purpose with a fixed lifetime opens until just before it and never
/// when sealed more than a minute in the future.
fn expires<V: Expiring>(value: V, ttl: Duration) {
    assert_eq!(V::TTL, ttl);
    let k = keys();
    let text = Sealed::seal(&k, &value, T).into_string();
    let open = |now| Sealed::<V>::open(&k, &text, now).is_some();
    assert!(open(T));
    assert!(open(T + ttl.as_secs() - 1));
    assert!(!open(T + ttl.as_secs()));
    assert!(open(T - 60));
    assert!(!open(T - 61));
}

#[test]
fn each_purpose_expires_on_its_own_clock() {
    expires(LoginCsrf { token: "t".into() }, Duration::from_secs(3600));
    expires(
        AdminCsrf {
            session_tag: "tag".into(),
        },
        Duration::from_secs(12 * 3600),
    );
    expires(SamlRequests(Vec::new()), Duration::from_secs(600));
    expires(
        SamlLogouts(vec![("id".into(), T)]),
        Duration::from_secs(600),
    );
    // The session cookie: the configured session.ttl.
    let k = keys();
    let text = Sealed::seal(&k, &SessionCookie { sid: "s".into() }, T).into_string();
    let open = |now, ttl| Sealed::<SessionCookie>::open_within(&k, &text, now, ttl).is_some();
    assert!(open(T + 7199, Duration::from_secs(7200)));
    assert!(!open(T + 7200, Duration::from_secs(7200)));
    assert!(!open(T - 61, Duration::from_secs(7200)));
}

#[test]
fn what_the_saml_cookies_carry_comes_back() {
    let k = keys();
    let requests = SamlRequests::decode(br#"[["id-1","/a?b",1700000000,"idp"]]"#).expect("decodes");
    let text = Sealed::seal(&k, &requests, T).into_string();
    assert_eq!(Sealed::<SamlRequests>::open(&k, &text, T), Some(requests));
    let logouts = SamlLogouts(vec![("id-2".into(), T)]);
    let text = Sealed::seal(&k, &logouts, T).into_string();
    assert_eq!(Sealed::<SamlLogouts>::open(&k, &text, T), Some(logouts));
}
