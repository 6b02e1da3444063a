//! `[saml]` → the typed SAML Service Provider settings.
//!
//! Everything an operator can get wrong is found here, at start, each
//! problem with its key: metadata source (file read and parsed, so a
//! missing signing certificate is a start-up error), URLs, durations,
//! signature algorithms, attribute names, the SP key and certificate. The
//! IdP metadata *URL* is fetched later, by `saml::Sso::new` (network I/O
//! belongs to building the app, not to parsing configuration).

use std::path::PathBuf;
use std::time::Duration;

use super::raw;
use super::Secret;
use crate::saml::settings::{
    aliases, AttributeNames, IdpEntry, MetadataSource, MetadataTrust, Settings as Saml, DEFAULT_IDP,
};
use crate::saml::SignatureAlgorithm;

/// Converts `[saml]`; `fail(key, message)` records a problem.
pub fn check(
    raw: &raw::Saml,
    public_url: &str,
    prefix: &str,
    fail: &mut dyn FnMut(&str, String),
) -> Option<Saml> {
    if !raw.enabled {
        return None;
    }
    let top_set =
        !raw.idp_metadata_file.trim().is_empty() || !raw.idp_metadata_url.trim().is_empty();
    let (mut metadata, mut metadata_text) = if top_set || raw.idps.is_empty() {
        metadata_source("saml", &raw.idp_metadata_file, &raw.idp_metadata_url, fail)
    } else {
        (MetadataSource::File(PathBuf::new()), None)
    };
    let top_trust = metadata_trust(
        "saml.metadata_signing_cert",
        &raw.metadata_signing_cert,
        fail,
    );
    let mut metadata_trust_first = top_trust.clone();
    let urls = crate::saml::settings::sp_urls(public_url, prefix, &raw.entity_id);

    let mut allowed = Vec::new();
    if raw.allowed_signature_algorithms.is_empty() {
        fail(
            "saml.allowed_signature_algorithms",
            "must name at least one algorithm, e.g. [\"rsa-sha256\"]".into(),
        );
    }
    for (i, a) in raw.allowed_signature_algorithms.iter().enumerate() {
        match SignatureAlgorithm::parse(a) {
            Some(alg) => allowed.push(alg),
            None => fail(
                &format!("saml.allowed_signature_algorithms.{i}"),
                format!(
                    "unknown algorithm {a:?}; use one of: {}",
                    SignatureAlgorithm::ALL
                        .iter()
                        .map(|a| a.name())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }

    let sp_cert_der = match raw.sp_cert.trim() {
        "" => None,
        path => match std::fs::read(path) {
            Ok(pem) => match openssl::x509::X509::from_pem(&pem).and_then(|c| c.to_der()) {
                Ok(der) => Some(der),
                Err(_) => {
                    fail(
                        "saml.sp_cert",
                        format!("{path:?} holds no PEM certificate (`authgate keygen --saml` writes one)"),
                    );
                    None
                }
            },
            Err(e) => {
                fail("saml.sp_cert", format!("cannot read {path:?}: {e}"));
                None
            }
        },
    };
    let sp_key_pem = match raw.sp_key.trim() {
        "" => None,
        path => match std::fs::read(path) {
            Ok(pem) => match openssl::pkey::PKey::private_key_from_pem(&pem) {
                Ok(key) => {
                    if let Some(der) = &sp_cert_der {
                        let matches = openssl::x509::X509::from_der(der)
                            .and_then(|c| c.public_key())
                            .map(|pk| pk.public_eq(&key))
                            .unwrap_or(false);
                        if !matches {
                            fail(
                                "saml.sp_key",
                                "the key does not belong to the certificate in saml.sp_cert".into(),
                            );
                        }
                    }
                    Some(Secret::new(pem))
                }
                Err(_) => {
                    fail(
                        "saml.sp_key",
                        format!("{path:?} holds no unencrypted PEM private key"),
                    );
                    None
                }
            },
            Err(e) => {
                fail("saml.sp_key", format!("cannot read {path:?}: {e}"));
                None
            }
        },
    };
    if raw.sp_key.trim().is_empty() != raw.sp_cert.trim().is_empty() {
        fail(
            "saml.sp_key",
            "saml.sp_key and saml.sp_cert must be set together".into(),
        );
    }

    let names =
        |key: &str, configured: &str, builtin: &[&str], fail: &mut dyn FnMut(&str, String)| {
            let mut out = Vec::new();
            let c = configured.trim();
            if !c.is_empty() {
                out.push(c.to_string());
            } else if key.ends_with("email") || key.ends_with("groups") {
                fail(key, "must not be empty".into());
            }
            if raw.builtin_attribute_aliases {
                for b in builtin {
                    if !out.iter().any(|o| o == b) {
                        out.push((*b).to_string());
                    }
                }
            }
            out
        };
    let mut attributes = AttributeNames {
        email: names("saml.attr_email", &raw.attr_email, aliases::EMAIL, fail),
        first_name: names(
            "saml.attr_first_name",
            &raw.attr_first_name,
            aliases::FIRST_NAME,
            fail,
        ),
        last_name: names(
            "saml.attr_last_name",
            &raw.attr_last_name,
            aliases::LAST_NAME,
            fail,
        ),
        name: names("saml.attr_name", &raw.attr_name, aliases::NAME, fail),
        username: names(
            "saml.attr_username",
            &raw.attr_username,
            aliases::USERNAME,
            fail,
        ),
        groups: names("saml.attr_groups", &raw.attr_groups, aliases::GROUPS, fail),
    };

    // [[saml.idps]]: more IdPs, each with its metadata and optionally its
    // own attribute names.
    let pick = |own: &str, top: &str| {
        if own.trim().is_empty() {
            top.to_string()
        } else {
            own.to_string()
        }
    };
    let mut entries = Vec::new();
    let mut seen_ids: Vec<String> = Vec::new();
    let top_is_an_idp = top_set || raw.idps.is_empty();
    if top_is_an_idp {
        seen_ids.push(DEFAULT_IDP.to_string());
    }
    for (i, e) in raw.idps.iter().enumerate() {
        let k = format!("saml.idps.{i}");
        let id = e.id.trim().to_string();
        let id_ok = !id.is_empty()
            && id.len() <= 64
            && id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !id_ok {
            fail(
                &format!("{k}.id"),
                format!("{id:?}: use 1-64 letters, digits, - and _ (it is the ID in /_auth/saml/login?idp=ID)"),
            );
        } else if seen_ids.contains(&id) {
            fail(
                &format!("{k}.id"),
                format!(
                    "{id:?} is used twice (\"{DEFAULT_IDP}\" is the IdP of saml.idp_metadata_*)"
                ),
            );
        }
        seen_ids.push(id.clone());
        let (metadata, metadata_text) =
            metadata_source(&k, &e.idp_metadata_file, &e.idp_metadata_url, fail);
        let attributes = AttributeNames {
            email: names(
                &format!("{k}.attr_email"),
                &pick(&e.attr_email, &raw.attr_email),
                aliases::EMAIL,
                fail,
            ),
            first_name: names(
                &format!("{k}.attr_first_name"),
                &pick(&e.attr_first_name, &raw.attr_first_name),
                aliases::FIRST_NAME,
                fail,
            ),
            last_name: names(
                &format!("{k}.attr_last_name"),
                &pick(&e.attr_last_name, &raw.attr_last_name),
                aliases::LAST_NAME,
                fail,
            ),
            name: names(
                &format!("{k}.attr_name"),
                &pick(&e.attr_name, &raw.attr_name),
                aliases::NAME,
                fail,
            ),
            username: names(
                &format!("{k}.attr_username"),
                &pick(&e.attr_username, &raw.attr_username),
                aliases::USERNAME,
                fail,
            ),
            groups: names(
                &format!("{k}.attr_groups"),
                &pick(&e.attr_groups, &raw.attr_groups),
                aliases::GROUPS,
                fail,
            ),
        };
        let name = match e.name.trim() {
            "" => id.clone(),
            n => n.to_string(),
        };
        let trust = match e.metadata_signing_cert.trim() {
            "" => top_trust.clone(),
            own => metadata_trust(&format!("{k}.metadata_signing_cert"), own, fail),
        };
        entries.push(IdpEntry {
            id,
            name,
            metadata,
            metadata_text,
            metadata_trust: trust,
            attributes,
        });
    }
    let (idp_id, idp_name) = match (top_is_an_idp, entries.is_empty()) {
        (false, false) => {
            // No IdP in [saml] itself: the first listed one is the first.
            let first = entries.remove(0);
            metadata = first.metadata;
            metadata_text = first.metadata_text;
            metadata_trust_first = first.metadata_trust;
            attributes = first.attributes;
            (first.id, first.name)
        }
        _ => (
            DEFAULT_IDP.to_string(),
            match raw.idp_name.trim() {
                "" => "SSO".to_string(),
                n => n.to_string(),
            },
        ),
    };

    let mut domains = Vec::new();
    for (i, d) in raw.allowed_email_domains.iter().enumerate() {
        let d = d.trim().trim_start_matches('@').to_ascii_lowercase();
        if d.is_empty() || d.contains('@') || d.contains(char::is_whitespace) {
            fail(
                &format!("saml.allowed_email_domains.{i}"),
                format!("{d:?} is not a domain such as \"example.com\""),
            );
        } else {
            domains.push(d);
        }
    }

    let duration = |key: &str, text: &str, fail: &mut dyn FnMut(&str, String)| {
        match humantime::parse_duration(text.trim()) {
            Ok(d) if !d.is_zero() => d,
            _ => {
                fail(
                    key,
                    format!("invalid duration {text:?}; use e.g. \"90s\", \"5m\", \"1h\""),
                );
                Duration::from_secs(1)
            }
        }
    };
    let clock_skew = duration("saml.clock_skew", &raw.clock_skew, fail);
    if clock_skew > Duration::from_secs(600) {
        fail(
            "saml.clock_skew",
            "at most 10m: a larger skew lets stale responses through; fix the clocks (NTP) instead"
                .into(),
        );
    }
    let metadata_refresh = duration("saml.metadata_refresh", &raw.metadata_refresh, fail);
    let metadata_timeout = duration("saml.metadata_timeout", &raw.metadata_timeout, fail);

    let name_id_format = match raw.name_id_format.trim() {
        "" => None,
        "email" | "emailAddress" => {
            Some("urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress".into())
        }
        "persistent" => Some("urn:oasis:names:tc:SAML:2.0:nameid-format:persistent".into()),
        "unspecified" => Some("urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified".into()),
        f if f.starts_with("urn:") => Some(f.to_string()),
        f => {
            fail(
                "saml.name_id_format",
                format!("{f:?}: use \"email\", \"persistent\", \"unspecified\" or a full urn:oasis:... format"),
            );
            None
        }
    };

    let mut sp_previous_certs_der = Vec::new();
    for (i, path) in raw.sp_previous_certs.iter().enumerate() {
        match read_cert_der(path.trim()) {
            Ok(der) => sp_previous_certs_der.push(der),
            Err(m) => fail(&format!("saml.sp_previous_certs.{i}"), m),
        }
    }

    let mut sp_previous_keys_pem = Vec::new();
    for (i, path) in raw.sp_previous_keys.iter().enumerate() {
        let key = format!("saml.sp_previous_keys.{i}");
        match std::fs::read(path.trim()) {
            Ok(pem) if openssl::pkey::PKey::private_key_from_pem(&pem).is_ok() => {
                sp_previous_keys_pem.push(Secret::new(pem))
            }
            Ok(_) => fail(
                &key,
                format!("{path:?} holds no unencrypted PEM private key"),
            ),
            Err(e) => fail(&key, format!("cannot read {path:?}: {e}")),
        }
    }
    if !raw.sp_previous_keys.is_empty() && raw.sp_key.trim().is_empty() {
        fail(
            "saml.sp_previous_keys",
            "earlier keys need the current one: set saml.sp_key and saml.sp_cert".into(),
        );
    }
    if raw.require_encrypted_assertions && raw.sp_key.trim().is_empty() {
        fail(
            "saml.require_encrypted_assertions",
            "encrypted assertions need saml.sp_key and saml.sp_cert (the IdP encrypts to the certificate in our metadata; `authgate keygen --saml` writes a pair)".into(),
        );
    }

    if raw.sign_requests && raw.sp_key.trim().is_empty() {
        fail(
            "saml.sign_requests",
            "signing requests needs saml.sp_key and saml.sp_cert (`authgate keygen --saml` writes a pair)".into(),
        );
    }
    let post_requests = match raw.authn_request_binding.trim() {
        "redirect" | "" => false,
        "post" => true,
        other => {
            fail(
                "saml.authn_request_binding",
                format!("{other:?}: use \"redirect\" or \"post\""),
            );
            false
        }
    };
    let mut requested_authn_context = Vec::new();
    for (i, c) in raw.requested_authn_context.iter().enumerate() {
        let c = c.trim();
        if c.contains(':') {
            requested_authn_context.push(c.to_string());
        } else if !c.is_empty() && c.chars().all(|ch| ch.is_ascii_alphanumeric()) {
            // SAML authn context §3.4: the classes are URNs under this prefix.
            requested_authn_context.push(format!("urn:oasis:names:tc:SAML:2.0:ac:classes:{c}"));
        } else {
            fail(
                &format!("saml.requested_authn_context.{i}"),
                format!(
                    "{c:?}: use a class name such as \"PasswordProtectedTransport\" or a full URI"
                ),
            );
        }
    }
    let authn_context_comparison = match raw.requested_authn_context_comparison.trim() {
        c @ ("exact" | "minimum" | "maximum" | "better") => c.to_string(),
        other => {
            fail(
                "saml.requested_authn_context_comparison",
                format!("{other:?}: use \"exact\", \"minimum\", \"maximum\" or \"better\""),
            );
            "exact".into()
        }
    };

    // A metadata file is checked against its signing certificate now, so
    // `check-config` reports a bad signature with the key that asks for it.
    let files = std::iter::once((&metadata_text, &metadata_trust_first)).chain(
        entries
            .iter()
            .map(|e| (&e.metadata_text, &e.metadata_trust)),
    );
    for (text, trust) in files {
        if let (Some(text), Some(trust)) = (text, trust) {
            if let Err(e) = crate::saml::metadata::load(text, Some(trust), &allowed) {
                fail(&trust.key, e.to_string());
            }
        }
    }

    Some(Saml {
        idp_id,
        idp_name,
        more_idps: entries,
        metadata,
        metadata_text,
        metadata_trust: metadata_trust_first,
        metadata_refresh,
        metadata_timeout,
        urls,
        sp_cert_der,
        sp_previous_certs_der,
        sp_key_pem,
        sp_previous_keys_pem,
        require_encrypted_assertions: raw.require_encrypted_assertions,
        allowed_signature_algorithms: allowed,
        clock_skew,
        allow_idp_initiated: raw.allow_idp_initiated,
        attributes,
        allowed_email_domains: domains,
        name_id_format,
        sign_requests: raw.sign_requests,
        post_requests,
        force_authn: raw.force_authn,
        requested_authn_context,
        authn_context_comparison,
    })
}

/// Why an IdP metadata URL is refused ([`metadata_url`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataUrlError {
    /// Not a URL at all.
    Unparsable,
    /// `http://` to a host that is not loopback.
    PlainHttp(http::Uri),
    /// Another scheme, or no host.
    NotHttps,
}

/// The rule for an IdP metadata URL (`saml.idp_metadata_url`, the SSO
/// page's "fetch from a URL"): https, or plain http to a loopback host
/// only, since metadata decides whose signatures are trusted.
pub fn metadata_url(url: &str) -> Result<http::Uri, MetadataUrlError> {
    let u: http::Uri = url.parse().map_err(|_| MetadataUrlError::Unparsable)?;
    match u.scheme_str() {
        Some("https") if u.host().is_some() => Ok(u),
        Some("http") if is_loopback(u.host().unwrap_or("")) => Ok(u),
        Some("http") => Err(MetadataUrlError::PlainHttp(u)),
        _ => Err(MetadataUrlError::NotHttps),
    }
}

/// `{prefix}.idp_metadata_file` / `_url` → where the metadata comes from
/// (a file is read and parsed now).
fn metadata_source(
    prefix: &str,
    file: &str,
    url: &str,
    fail: &mut dyn FnMut(&str, String),
) -> (MetadataSource, Option<String>) {
    let (file, url) = (file.trim(), url.trim());
    let key_file = format!("{prefix}.idp_metadata_file");
    let key_url = format!("{prefix}.idp_metadata_url");
    let mut metadata_text = None;
    let metadata = match (file.is_empty(), url.is_empty()) {
        (false, false) => {
            fail(&key_file, format!("set {key_file} or {key_url}, not both"));
            MetadataSource::File(file.into())
        }
        (true, true) => {
            fail(&key_file, format!("SAML is enabled but no IdP metadata is configured: set {key_file} (the XML your IdP exports) or {key_url}"));
            MetadataSource::File(PathBuf::new())
        }
        (false, true) => {
            match std::fs::read_to_string(file) {
                Ok(text) => {
                    if let Err(e) = crate::saml::metadata::parse(&text) {
                        fail(&key_file, format!("{file:?}: {e}"));
                    }
                    metadata_text = Some(text);
                }
                Err(e) => fail(&key_file, format!("cannot read {file:?}: {e}")),
            }
            MetadataSource::File(file.into())
        }
        (true, false) => {
            match metadata_url(url) {
                Ok(u) => MetadataSource::Url(u),
                Err(MetadataUrlError::PlainHttp(u)) => {
                    fail(&key_url, format!("{url:?}: metadata decides whose signatures are trusted, so it must come over https (plain http only for 127.0.0.1/localhost); or download it and use {key_file}"));
                    MetadataSource::Url(u)
                }
                Err(MetadataUrlError::Unparsable | MetadataUrlError::NotHttps) => {
                    fail(
                    &key_url,
                    format!("invalid URL {url:?}; expected e.g. \"https://idp.example.com/metadata\""),
                );
                    MetadataSource::File(PathBuf::new())
                }
            }
        }
    };
    (metadata, metadata_text)
}

/// `saml.metadata_signing_cert` (or an IdP's own): every PEM certificate
/// in the file at `path`; `None` when unset.
fn metadata_trust(
    key: &str,
    path: &str,
    fail: &mut dyn FnMut(&str, String),
) -> Option<MetadataTrust> {
    let path = path.trim();
    if path.is_empty() {
        return None;
    }
    let certs = std::fs::read(path)
        .map_err(|e| format!("cannot read {path:?}: {e}"))
        .and_then(|pem| {
            openssl::x509::X509::stack_from_pem(&pem)
                .ok()
                .filter(|c| !c.is_empty())
                .ok_or_else(|| format!("{path:?} holds no PEM certificate (the certificate that signs the IdP metadata, e.g. the federation's)"))
        })
        .and_then(|stack| {
            stack
                .iter()
                .map(|c| c.to_der().map_err(|e| format!("{path:?}: {e}")))
                .collect::<Result<Vec<_>, _>>()
        });
    match certs {
        Ok(certs) => Some(MetadataTrust {
            key: key.to_string(),
            certs,
        }),
        Err(m) => {
            fail(key, m);
            // Still required: a broken file must not mean "unchecked".
            Some(MetadataTrust {
                key: key.to_string(),
                certs: Vec::new(),
            })
        }
    }
}

/// The DER of the PEM certificate in `path`.
pub fn read_cert_der(path: &str) -> Result<Vec<u8>, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {path:?}: {e}"))?;
    openssl::x509::X509::from_pem(&pem)
        .and_then(|c| c.to_der())
        .map_err(|_| format!("{path:?} holds no PEM certificate"))
}

fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::saml::settings::sp_urls;

    fn problems(edit: impl FnOnce(&mut raw::Saml)) -> Vec<String> {
        let mut r = raw::Saml {
            enabled: true,
            idp_metadata_url: "https://idp.example.com/metadata".into(),
            ..Default::default()
        };
        edit(&mut r);
        let mut out = Vec::new();
        check(&r, "https://sp.example.com", "/_auth", &mut |k, m| {
            out.push(format!("{k}: {m}"))
        });
        out
    }

    #[test]
    fn metadata_urls_are_https_or_plain_http_on_loopback() {
        for ok in [
            "https://idp.example.com/metadata",
            "http://127.0.0.1:8080/md",
            "http://localhost/md",
            "http://LOCALHOST/md",
            "http://[::1]/md",
        ] {
            assert!(metadata_url(ok).is_ok(), "{ok}");
        }
        assert!(matches!(
            metadata_url("http://idp.example.com/md"),
            Err(MetadataUrlError::PlainHttp(_))
        ));
        for not_https in ["ftp://idp.example.com/md", "/relative/md"] {
            assert_eq!(
                metadata_url(not_https),
                Err(MetadataUrlError::NotHttps),
                "{not_https}"
            );
        }
        assert_eq!(metadata_url("not a url"), Err(MetadataUrlError::Unparsable));
    }

    #[test]
    fn sp_urls_sit_under_the_public_url_and_prefix() {
        let u = sp_urls("https://sp.example.com", "/_auth", "  ");
        assert_eq!(u.entity_id, "https://sp.example.com/_auth/saml/metadata");
        assert_eq!(u.acs_url, "https://sp.example.com/_auth/saml/acs");
        assert_eq!(u.login_url, "https://sp.example.com/_auth/saml/login");
        assert_eq!(u.logout_url, "https://sp.example.com/_auth/logout");
        assert_eq!(u.slo_url, "https://sp.example.com/_auth/saml/slo");
        assert_eq!(sp_urls("https://a", "", " urn:x ").entity_id, "urn:x");
    }

    #[test]
    fn defaults_derive_the_urls() {
        let r = raw::Saml {
            enabled: true,
            idp_metadata_url: "http://127.0.0.1:9/md".into(),
            ..Default::default()
        };
        let s = check(&r, "https://sp.example.com", "/_auth", &mut |k, m| {
            panic!("{k}: {m}")
        })
        .expect("on");
        assert_eq!(
            s.urls.entity_id,
            "https://sp.example.com/_auth/saml/metadata"
        );
        assert_eq!(s.urls.acs_url, "https://sp.example.com/_auth/saml/acs");
        assert_eq!(s.clock_skew, Duration::from_secs(90));
        assert!(!s
            .allowed_signature_algorithms
            .contains(&SignatureAlgorithm::RsaSha1));
        assert_eq!(s.attributes.email[0], "Email");
        assert!(check(&raw::Saml::default(), "x", "/_auth", &mut |_, _| {}).is_none());
    }

    type Edit = Box<dyn FnOnce(&mut raw::Saml)>;

    #[test]
    fn every_mistake_names_its_key() {
        let table: Vec<(Edit, &str)> = vec![
            (
                Box::new(|r| r.idp_metadata_url.clear()),
                "saml.idp_metadata_file",
            ),
            (
                Box::new(|r| r.idp_metadata_file = "/x.xml".into()),
                "saml.idp_metadata_file",
            ),
            (
                Box::new(|r| r.idp_metadata_url = "http://idp.example.com/md".into()),
                "saml.idp_metadata_url",
            ),
            (
                Box::new(|r| r.idp_metadata_url = "not a url".into()),
                "saml.idp_metadata_url",
            ),
            (
                Box::new(|r| r.allowed_signature_algorithms = vec!["md5".into()]),
                "saml.allowed_signature_algorithms.0",
            ),
            (
                Box::new(|r| r.allowed_signature_algorithms.clear()),
                "saml.allowed_signature_algorithms",
            ),
            (
                Box::new(|r| r.sp_key = "/nonexistent.key".into()),
                "saml.sp_key",
            ),
            (Box::new(|r| r.clock_skew = "1h".into()), "saml.clock_skew"),
            (
                Box::new(|r| r.clock_skew = "soon".into()),
                "saml.clock_skew",
            ),
            (Box::new(|r| r.attr_email.clear()), "saml.attr_email"),
            (
                Box::new(|r| r.allowed_email_domains = vec!["a@b".into()]),
                "saml.allowed_email_domains.0",
            ),
            (
                Box::new(|r| r.name_id_format = "weird".into()),
                "saml.name_id_format",
            ),
            (Box::new(|r| r.sign_requests = true), "saml.sign_requests"),
            (
                Box::new(|r| r.sp_previous_certs = vec!["/nonexistent.crt".into()]),
                "saml.sp_previous_certs.0",
            ),
            (
                Box::new(|r| r.sp_previous_keys = vec!["/nonexistent.key".into()]),
                "saml.sp_previous_keys.0",
            ),
            (
                Box::new(|r| r.sp_previous_keys = vec!["/nonexistent.key".into()]),
                "saml.sp_previous_keys",
            ),
            (
                Box::new(|r| r.require_encrypted_assertions = true),
                "saml.require_encrypted_assertions",
            ),
            (
                Box::new(|r| {
                    r.idps = vec![raw::SamlIdp {
                        id: "a b".into(),
                        idp_metadata_url: "https://b.example.com/md".into(),
                        ..Default::default()
                    }]
                }),
                "saml.idps.0.id",
            ),
            (
                Box::new(|r| {
                    r.idps = vec![raw::SamlIdp {
                        id: "default".into(),
                        idp_metadata_url: "https://b.example.com/md".into(),
                        ..Default::default()
                    }]
                }),
                "saml.idps.0.id",
            ),
            (
                Box::new(|r| {
                    r.idps = vec![raw::SamlIdp {
                        id: "b".into(),
                        ..Default::default()
                    }]
                }),
                "saml.idps.0.idp_metadata_file",
            ),
            (
                Box::new(|r| {
                    r.idps = vec![raw::SamlIdp {
                        id: "b".into(),
                        idp_metadata_url: "http://b.example.com/md".into(),
                        ..Default::default()
                    }]
                }),
                "saml.idps.0.idp_metadata_url",
            ),
            (
                Box::new(|r| r.authn_request_binding = "soap".into()),
                "saml.authn_request_binding",
            ),
            (
                Box::new(|r| r.requested_authn_context = vec!["two words".into()]),
                "saml.requested_authn_context.0",
            ),
            (
                Box::new(|r| r.requested_authn_context_comparison = "least".into()),
                "saml.requested_authn_context_comparison",
            ),
        ];
        for (edit, key) in table {
            let p = problems(edit);
            assert!(
                p.iter().any(|m| m.starts_with(&format!("{key}:"))),
                "{key}: {p:?}"
            );
        }
        assert!(problems(|_| {}).is_empty());
        assert!(problems(|r| r.allowed_signature_algorithms.push("rsa-sha1".into())).is_empty());
        // Only [[saml.idps]]: the first one is the first IdP.
        let r = raw::Saml {
            enabled: true,
            idps: vec![
                raw::SamlIdp {
                    id: "okta".into(),
                    name: "Okta".into(),
                    idp_metadata_url: "https://okta.example.com/md".into(),
                    attr_email: "mail".into(),
                    ..Default::default()
                },
                raw::SamlIdp {
                    id: "entra".into(),
                    idp_metadata_url: "https://entra.example.com/md".into(),
                    ..Default::default()
                },
            ],
            ..Default::default()
        };
        let s = check(&r, "https://sp.example.com", "/_auth", &mut |k, m| {
            panic!("{k}: {m}")
        })
        .expect("on");
        assert_eq!((s.idp_id.as_str(), s.idp_name.as_str()), ("okta", "Okta"));
        assert_eq!(s.attributes.email[0], "mail");
        assert_eq!(s.more_idps.len(), 1);
        assert_eq!(s.more_idps[0].name, "entra");
        assert_eq!(s.more_idps[0].attributes.email[0], "Email");
    }
}

#[cfg(test)]
#[path = "saml_attribute_tests.rs"]
mod attribute_tests;
