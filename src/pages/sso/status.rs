//! The SSO page's IdP metadata status: for every configured IdP where its
//! metadata comes from, whether the copy in force is current, and its
//! signing certificates with their expiry.

use super::widgets::row;
use crate::config::Config;
use crate::pages::escape;
use crate::saml::metadata::Expiry;
use crate::saml::{Provider, Sso};

/// Certificates expiring within this many days get a warning.
const EXPIRY_WARNING_DAYS: u32 = 30;

/// Every configured IdP (`[saml]` and each `[[saml.idps]]`): where its
/// metadata comes from, whether the copy in force is current, and its
/// signing certificates with their expiry.
pub(super) fn metadata_status(config: &Config, saml: Option<&Sso>) -> String {
    let Some(sso) = saml else {
        return "<p id=\"metadata-status\">SAML is off: no IdP metadata is in force. Upload it or give its URL below.</p>".into();
    };
    let providers = sso.providers();
    let mut b = String::from("<div id=\"metadata-status\">");
    for p in providers {
        if providers.len() > 1 {
            b.push_str(&format!(
                "<h3 id=\"idp-{id}\">{} (<code>{id}</code>)</h3>",
                escape(&p.name),
                id = escape(&p.id)
            ));
        }
        b.push_str(&provider_status(config, p));
    }
    b.push_str("</div>");
    b
}

/// The configuration key that sets `p`'s metadata, for "Set by".
fn metadata_key(config: &Config, p: &Provider) -> String {
    let leaf = match p.settings.metadata {
        crate::saml::settings::MetadataSource::Url(_) => "idp_metadata_url",
        crate::saml::settings::MetadataSource::File(_) => "idp_metadata_file",
    };
    let raw = &config.raw.saml;
    match raw.idps.iter().position(|e| e.id.trim() == p.id) {
        Some(i) => format!("saml.idps.{i}.{leaf}"),
        None if raw.idp_metadata_url.trim().is_empty() => "saml.idp_metadata_file".into(),
        None => "saml.idp_metadata_url".into(),
    }
}

fn provider_status(config: &Config, p: &Provider) -> String {
    let status = p.status();
    let loaded = p.loaded();
    let idp = &loaded.idp;
    let mut b = format!("<table id=\"metadata-status-{}\">", escape(&p.id));
    b.push_str(&row("Source", &status.source));
    b.push_str(&row("Set by", &config.source_of(&metadata_key(config, p))));
    b.push_str(&row("IdP entity ID", &idp.entity_id));
    b.push_str(&row("IdP single sign-on URL", &idp.sso_redirect));
    b.push_str(&row(
        "IdP single logout URL",
        idp.slo_redirect.as_deref().unwrap_or("none"),
    ));
    let state_text = match &status.last_error {
        None => "loaded, current".to_string(),
        Some(_) => format!(
            "the last refresh failed: the copy loaded {} stays in force",
            crate::saml::metadata::describe_time(status.loaded_at)
        ),
    };
    b.push_str(&format!(
        "<tr><th scope=\"row\">Status</th><td class=\"{}\">{}</td></tr>",
        if status.last_error.is_some() {
            "warn"
        } else {
            "ok"
        },
        escape(&state_text)
    ));
    b.push_str(&row(
        "Metadata signature",
        &match &idp.signed_by {
            Some(key) => format!("verified with the certificate of {key}"),
            None => "not checked: trusted as fetched (set saml.metadata_signing_cert to require the IdP's signature)".into(),
        },
    ));
    b.push_str(&row(
        "Valid until",
        &match idp.valid_until {
            Some(t) if t <= chrono::Utc::now() => {
                format!(
                    "{} — EXPIRED: the IdP must publish a current copy",
                    t.to_rfc3339()
                )
            }
            Some(t) => t.to_rfc3339(),
            None => "not stated".into(),
        },
    ));
    b.push_str(&row(
        "Last refresh",
        &crate::saml::metadata::describe_time(status.loaded_at),
    ));
    b.push_str(&row(
        "Last error",
        status.last_error.as_deref().unwrap_or("none"),
    ));
    for c in &idp.certs {
        let warn = match c.expiry(EXPIRY_WARNING_DAYS) {
            Expiry::Expired => " <span class=\"warn\">EXPIRED</span>".to_string(),
            Expiry::Soon => format!(" <span class=\"warn\">expires in less than {EXPIRY_WARNING_DAYS} days: ask the IdP for the new certificate</span>"),
            Expiry::Later => String::new(),
        };
        b.push_str(&format!(
            "<tr><th scope=\"row\">Signing certificate</th><td>{} — expires {}{warn}</td></tr>",
            escape(&c.subject),
            escape(&c.not_after)
        ));
    }
    b.push_str("</table>");
    b
}
