//! The identity assertion: a compact JWS carried upstream in
//! `X-Identity-Assertion`, its JWKS, and the per-session token cache.
//!
//! The [`Signer`] is built once at start (key parsed, `kid` and header
//! precomputed, JWKS bytes rendered). Tokens are signed once per session and
//! re-signed only when less than half of their lifetime remains
//! ([`TokenCache`]), so signing (30–55 µs for ES256, ~0.7 ms for RS256) is
//! off the per-request path.
//!
//! Must not: log tokens, or take the clock itself (callers pass `now`, which
//! keeps this module testable without sleeping).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use http::HeaderValue;
use serde::Serialize;

use super::keys::{Algorithm, PrivateKey, PublicJwk};
use super::{random_bytes, Error, Identity};
use crate::role::Role;

/// Signs identity tokens with one key; publishes it and the previous keys.
pub struct Signer {
    key: PrivateKey,
    header: jsonwebtoken::Header,
    issuer: String,
    audience: String,
    ttl_secs: u64,
    jwks: Vec<u8>,
}

/// A freshly signed token, ready to be set as a header.
#[derive(Clone)]
pub struct Signed {
    pub token: HeaderValue,
    pub expires_at: u64,
}

impl fmt::Debug for Signed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signed")
            .field("token", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The claims of DESIGN.md "Identity propagated upstream". Absent optional
/// claims are omitted; the arrays and the `projects` object are always
/// present (possibly empty) so the upstream can rely on their shape.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    aud: &'a str,
    sub: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    email: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    given_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    family_name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_username: Option<&'a str>,
    groups: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    workspaces: &'a [String],
    projects: &'a BTreeMap<String, String>,
    amr: [&'static str; 1],
    sid: &'a str,
    iat: u64,
    nbf: u64,
    exp: u64,
    jti: String,
}

impl Signer {
    /// Parses the signing key once and renders the JWKS (current key first,
    /// then `previous_public_pems`, duplicates of the current key dropped).
    /// Previous keys may be SPKI public keys or retired private keys, of any
    /// supported algorithm. A test signature is made here so a key that
    /// cannot sign fails at start, not at the first login.
    pub fn new(
        private_pem: &[u8],
        alg: Algorithm,
        previous_public_pems: &[Vec<u8>],
        issuer: String,
        audience: String,
        ttl: Duration,
    ) -> Result<Signer, Error> {
        let ttl_secs = ttl.as_secs();
        if ttl_secs == 0 {
            return Err(Error::InvalidTtl);
        }
        let key = PrivateKey::from_pem(private_pem, alg)?;
        let mut published: Vec<PublicJwk> = vec![key.public().clone()];
        for pem in previous_public_pems {
            let jwk = PublicJwk::from_pem(pem)?;
            if !published.iter().any(|p| p.kid() == jwk.kid()) {
                published.push(jwk);
            }
        }
        let jwks = serde_json::to_vec(&serde_json::json!({
            "keys": published.iter().map(PublicJwk::to_json).collect::<Vec<_>>(),
        }))
        .unwrap_or_default();

        let mut header = jsonwebtoken::Header::new(alg.to_jwt());
        header.kid = Some(key.public().kid().to_string());
        header.typ = Some("JWT".to_string());

        let signer = Signer {
            key,
            header,
            issuer,
            audience,
            ttl_secs,
            jwks,
        };
        let probe = Identity {
            subject: "start-up self test".to_string(),
            email: None,
            name: None,
            given_name: None,
            family_name: None,
            preferred_username: None,
            groups: Vec::new(),
            role: None,
            workspaces: Vec::new(),
            projects: BTreeMap::new(),
            method: super::Method::Ldap,
            session_index: None,
            saml_idp: None,
        };
        signer.sign(&probe, "self-test", 0)?;
        Ok(signer)
    }

    /// Signs a token for `id` in session `sid`: `iat = nbf = now_unix`,
    /// `exp = iat + ttl`, `jti` = 128 random bits, base64url.
    pub fn sign(&self, id: &Identity, sid: &str, now_unix: u64) -> Result<Signed, Error> {
        let exp = now_unix.saturating_add(self.ttl_secs);
        let claims = Claims {
            iss: &self.issuer,
            aud: &self.audience,
            sub: &id.subject,
            email: id.email.as_deref(),
            name: id.name.as_deref(),
            given_name: id.given_name.as_deref(),
            family_name: id.family_name.as_deref(),
            preferred_username: id.preferred_username.as_deref(),
            groups: &id.groups,
            role: id.role.map(Role::as_str),
            workspaces: &id.workspaces,
            projects: &id.projects,
            amr: [id.method.as_str()],
            sid,
            iat: now_unix,
            nbf: now_unix,
            exp,
            jti: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, self.key.encoding_key())
            .map_err(Error::Sign)?;
        // A compact JWS is base64url and dots: always a valid header value.
        let mut token = HeaderValue::try_from(token).map_err(Error::HeaderValue)?;
        // Never HPACK-indexed on HTTP/2, shown as `Sensitive` by `Debug`.
        token.set_sensitive(true);
        Ok(Signed {
            token,
            expires_at: exp,
        })
    }

    /// `{"keys":[current, previous...]}`, rendered once; serve as
    /// `application/json` (`/_auth/jwks.json`).
    pub fn jwks(&self) -> &[u8] {
        &self.jwks
    }

    pub fn kid(&self) -> &str {
        self.key.public().kid()
    }

    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.ttl_secs)
    }

    pub fn algorithm(&self) -> Algorithm {
        self.key.algorithm()
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("alg", &self.key.algorithm())
            .field("kid", &self.kid())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

struct Cached {
    token: HeaderValue,
    issued_at: u64,
    expires_at: u64,
    /// The signer that made it: a key change (restart with a new key)
    /// invalidates the token even if the cache outlived the signer.
    kid: String,
}

/// Per-session token cache. A tiny `std` mutex, never held across an
/// `.await` (`get` is synchronous); held while signing so that concurrent
/// requests of one session re-sign once, not once each.
///
/// A cache belongs to one (session, identity): when the identity changes
/// (LDAP refresh), build a new session value with a new cache.
#[derive(Default)]
pub struct TokenCache {
    slot: Mutex<Option<Cached>>,
}

impl TokenCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The cached token while more than half of its lifetime remains, else
    /// a newly signed one (which is cached). Cloning a `HeaderValue` is a
    /// reference-count increment.
    pub fn get(
        &self,
        signer: &Signer,
        id: &Identity,
        sid: &str,
        now_unix: u64,
    ) -> Result<HeaderValue, Error> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(c) = slot.as_ref() {
            let lifetime = c.expires_at.saturating_sub(c.issued_at);
            let remaining = c.expires_at.saturating_sub(now_unix);
            // `now < issued_at` means the clock went back: re-sign rather
            // than hand out a token whose `nbf` is in the future.
            if now_unix >= c.issued_at && remaining * 2 > lifetime && c.kid == signer.kid() {
                return Ok(c.token.clone());
            }
        }
        let signed = signer.sign(id, sid, now_unix)?;
        *slot = Some(Cached {
            token: signed.token.clone(),
            issued_at: now_unix,
            expires_at: signed.expires_at,
            kid: signer.kid().to_string(),
        });
        Ok(signed.token)
    }
}

impl fmt::Debug for TokenCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        f.debug_struct("TokenCache")
            .field("expires_at", &slot.as_ref().map(|c| c.expires_at))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::keys::generate;
    use crate::identity::Method;
    use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
    use std::time::{SystemTime, UNIX_EPOCH};

    fn now() -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0)
    }

    fn identity() -> Identity {
        Identity {
            subject: "cn=Jane Doe,ou=users,dc=example,dc=com".to_string(),
            email: Some("jane@example.com".to_string()),
            name: Some("Jane Doe".to_string()),
            given_name: Some("Jane".to_string()),
            family_name: None,
            preferred_username: Some("jane".to_string()),
            groups: vec!["cn=admins,ou=groups,dc=example,dc=com".to_string()],
            role: Some(Role::Administrator),
            workspaces: vec!["Workspace 1".to_string()],
            projects: BTreeMap::from([("42".to_string(), "reviewer".to_string())]),
            method: Method::Ldap,
            session_index: None,
            saml_idp: None,
        }
    }

    fn signer(alg: Algorithm, previous: &[Vec<u8>]) -> Signer {
        let pem = generate(alg).expect("generate");
        Signer::new(
            pem.as_bytes(),
            alg,
            previous,
            "https://labels.example.com".to_string(),
            "labeling-app".to_string(),
            Duration::from_secs(60),
        )
        .expect("signer")
    }

    /// A verifier built only from the published JWKS, as the upstream would.
    fn decoding_key(jwks: &[u8], kid: &str) -> DecodingKey {
        let v: serde_json::Value = serde_json::from_slice(jwks).expect("jwks json");
        let keys = v["keys"].as_array().expect("keys array");
        let k = keys.iter().find(|k| k["kid"] == kid).expect("kid in jwks");
        let s = |m: &str| k[m].as_str().expect(m).to_string();
        match k["kty"].as_str() {
            Some("EC") => DecodingKey::from_ec_components(&s("x"), &s("y")).expect("ec"),
            Some("RSA") => DecodingKey::from_rsa_components(&s("n"), &s("e")).expect("rsa"),
            Some("OKP") => DecodingKey::from_ed_components(&s("x")).expect("okp"),
            other => panic!("unexpected kty {other:?}"),
        }
    }

    fn validation(alg: Algorithm) -> Validation {
        let mut v = Validation::new(alg.to_jwt());
        v.set_audience(&["labeling-app"]);
        v.set_issuer(&["https://labels.example.com"]);
        v.set_required_spec_claims(&["exp", "nbf", "iat", "aud", "iss", "sub"]);
        v.validate_nbf = true;
        v.leeway = 0;
        v
    }

    #[test]
    fn signed_token_verifies_against_jwks_for_every_algorithm() {
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256] {
            let s = signer(alg, &[]);
            let t = now();
            let signed = s.sign(&identity(), "sid-1", t).expect("sign");
            assert_eq!(signed.expires_at, t + 60);
            let token = signed.token.to_str().expect("ascii");
            let header = decode_header(token).expect("header");
            assert_eq!(header.kid.as_deref(), Some(s.kid()));
            assert_eq!(header.alg, alg.to_jwt());
            let data = decode::<serde_json::Value>(
                token,
                &decoding_key(s.jwks(), s.kid()),
                &validation(alg),
            )
            .expect("verifies");
            let c = data.claims;
            assert_eq!(c["iss"], "https://labels.example.com");
            assert_eq!(c["aud"], "labeling-app");
            assert_eq!(c["sub"], "cn=Jane Doe,ou=users,dc=example,dc=com");
            assert_eq!(c["sid"], "sid-1");
            assert_eq!(c["amr"], serde_json::json!(["ldap"]));
            assert_eq!(
                c["groups"],
                serde_json::json!(["cn=admins,ou=groups,dc=example,dc=com"])
            );
            assert_eq!(c["projects"], serde_json::json!({"42": "reviewer"}));
            assert_eq!(c["workspaces"], serde_json::json!(["Workspace 1"]));
            assert_eq!(c["role"], "administrator");
            assert_eq!(c["iat"], t);
            assert_eq!(c["nbf"], t);
            assert_eq!(c["exp"], t + 60);
            assert!(c.get("family_name").is_none(), "absent claims are omitted");
            assert_eq!(c["jti"].as_str().map(str::len), Some(22));
        }
    }

    #[test]
    fn absent_role_means_no_role_claim_and_jti_is_unique() {
        let s = signer(Algorithm::EdDSA, &[]);
        let mut id = identity();
        id.role = None;
        id.method = Method::Saml;
        let t = now();
        let a = s.sign(&id, "sid", t).expect("sign");
        let b = s.sign(&id, "sid", t).expect("sign");
        let key = decoding_key(s.jwks(), s.kid());
        let ca = decode::<serde_json::Value>(
            a.token.to_str().expect("ascii"),
            &key,
            &validation(Algorithm::EdDSA),
        )
        .expect("verifies")
        .claims;
        let cb = decode::<serde_json::Value>(
            b.token.to_str().expect("ascii"),
            &key,
            &validation(Algorithm::EdDSA),
        )
        .expect("verifies")
        .claims;
        assert!(ca.get("role").is_none());
        assert_eq!(ca["amr"], serde_json::json!(["saml"]));
        assert_ne!(ca["jti"], cb["jti"]);
    }

    #[test]
    fn expired_wrong_audience_and_wrong_key_are_rejected() {
        let s = signer(Algorithm::ES256, &[]);
        let other = signer(Algorithm::ES256, &[]);
        let key = decoding_key(s.jwks(), s.kid());

        let old = s.sign(&identity(), "sid", now() - 600).expect("sign");
        let err = decode::<serde_json::Value>(
            old.token.to_str().expect("ascii"),
            &key,
            &validation(Algorithm::ES256),
        )
        .expect_err("expired");
        assert_eq!(
            err.kind(),
            &jsonwebtoken::errors::ErrorKind::ExpiredSignature
        );

        let fresh = s.sign(&identity(), "sid", now()).expect("sign");
        let mut wrong_aud = validation(Algorithm::ES256);
        wrong_aud.set_audience(&["another-app"]);
        assert!(decode::<serde_json::Value>(
            fresh.token.to_str().expect("ascii"),
            &key,
            &wrong_aud
        )
        .is_err());

        let forged = other.sign(&identity(), "sid", now()).expect("sign");
        let err = decode::<serde_json::Value>(
            forged.token.to_str().expect("ascii"),
            &key,
            &validation(Algorithm::ES256),
        )
        .expect_err("other key");
        assert_eq!(
            err.kind(),
            &jsonwebtoken::errors::ErrorKind::InvalidSignature
        );
    }

    #[test]
    fn jwks_lists_current_then_previous_keys() {
        let old_ec = generate(Algorithm::ES256).expect("generate");
        let old_ed = generate(Algorithm::EdDSA).expect("generate");
        let old_ec_kid = signer_kid(&old_ec, Algorithm::ES256);
        let old_ed_kid = signer_kid(&old_ed, Algorithm::EdDSA);
        let s = signer(
            Algorithm::ES256,
            &[
                old_ec.clone().into_bytes(),
                old_ed.into_bytes(),
                old_ec.into_bytes(),
            ],
        );
        let v: serde_json::Value = serde_json::from_slice(s.jwks()).expect("json");
        let keys = v["keys"].as_array().expect("array");
        let kids: Vec<&str> = keys.iter().filter_map(|k| k["kid"].as_str()).collect();
        assert_eq!(
            kids,
            [s.kid(), old_ec_kid.as_str(), old_ed_kid.as_str()],
            "current first, duplicates dropped"
        );
        for k in keys {
            assert_eq!(k["use"], "sig");
            assert!(k.get("d").is_none(), "no private members");
        }
        assert_eq!(keys[2]["alg"], "EdDSA");
        assert_eq!(keys[2]["kty"], "OKP");
    }

    fn signer_kid(pem: &str, alg: Algorithm) -> String {
        crate::identity::keys::PrivateKey::from_pem(pem.as_bytes(), alg)
            .expect("load")
            .public()
            .kid()
            .to_string()
    }

    #[test]
    fn token_from_previous_key_still_verifies_via_jwks() {
        let old_pem = generate(Algorithm::ES256).expect("generate");
        let old = Signer::new(
            old_pem.as_bytes(),
            Algorithm::ES256,
            &[],
            "https://labels.example.com".to_string(),
            "labeling-app".to_string(),
            Duration::from_secs(60),
        )
        .expect("old signer");
        let token = old.sign(&identity(), "sid", now()).expect("sign");
        let new = signer(Algorithm::ES256, &[old_pem.into_bytes()]);
        let key = decoding_key(new.jwks(), old.kid());
        assert!(decode::<serde_json::Value>(
            token.token.to_str().expect("ascii"),
            &key,
            &validation(Algorithm::ES256)
        )
        .is_ok());
    }

    #[test]
    fn token_cache_reuses_until_half_life_then_resigns() {
        let s = signer(Algorithm::ES256, &[]);
        let cache = TokenCache::new();
        let id = identity();
        let t0 = 1_700_000_000;
        let first = cache.get(&s, &id, "sid", t0).expect("sign");
        // 60 s lifetime: reused while more than 30 s remain.
        for t in [t0, t0 + 1, t0 + 29] {
            assert_eq!(
                cache.get(&s, &id, "sid", t).expect("get"),
                first,
                "t0+{}",
                t - t0
            );
        }
        let second = cache.get(&s, &id, "sid", t0 + 30).expect("resign");
        assert_ne!(second, first, "exactly half left: re-signed");
        assert_eq!(cache.get(&s, &id, "sid", t0 + 59).expect("get"), second);
        let third = cache.get(&s, &id, "sid", t0 + 61).expect("resign");
        assert_ne!(third, second);
        // Clock went backwards: never hand out a not-yet-valid token.
        let fourth = cache.get(&s, &id, "sid", t0).expect("resign");
        assert_ne!(fourth, third);
    }

    #[test]
    fn token_cache_resigns_when_the_key_changes() {
        let a = signer(Algorithm::ES256, &[]);
        let b = signer(Algorithm::ES256, &[]);
        let cache = TokenCache::new();
        let t = 1_700_000_000;
        let from_a = cache.get(&a, &identity(), "sid", t).expect("sign");
        let from_b = cache.get(&b, &identity(), "sid", t).expect("sign");
        assert_ne!(from_a, from_b);
        let header = decode_header(from_b.to_str().expect("ascii")).expect("header");
        assert_eq!(header.kid.as_deref(), Some(b.kid()));
    }

    #[test]
    fn zero_ttl_and_bad_previous_key_fail_at_start() {
        let pem = generate(Algorithm::ES256).expect("generate");
        let mk = |prev: &[Vec<u8>], ttl| {
            Signer::new(
                pem.as_bytes(),
                Algorithm::ES256,
                prev,
                "iss".to_string(),
                "aud".to_string(),
                ttl,
            )
        };
        assert!(matches!(
            mk(&[], Duration::from_millis(500)),
            Err(Error::InvalidTtl)
        ));
        assert!(matches!(
            mk(&[b"garbage".to_vec()], Duration::from_secs(60)),
            Err(Error::PemUnreadable(_))
        ));
    }

    #[test]
    fn debug_output_hides_tokens() {
        let s = signer(Algorithm::EdDSA, &[]);
        let cache = TokenCache::new();
        let token = cache.get(&s, &identity(), "sid", now()).expect("sign");
        let text = token.to_str().expect("ascii");
        for dbg in [format!("{s:?}"), format!("{cache:?}")] {
            assert!(!dbg.contains(&text[..20]), "{dbg}");
        }
        let signed = s.sign(&identity(), "sid", now()).expect("sign");
        assert!(format!("{signed:?}").contains("redacted"));
    }
}
