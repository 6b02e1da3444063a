//! authgate: an authentication sidecar reverse proxy.
//!
//! It signs people in (SAML 2.0 SSO, LDAP), maps their directory groups to
//! roles, workspaces and project roles, refuses the upstream's own
//! role-management routes when the directory owns them, and forwards every
//! allowed request with a signed identity assertion.
//!
//! The request flow is written out, phase by phase, at the top of
//! [`proxy`]. The access decision (route policy, public paths, session,
//! role gates, the upstream API token rule) is [`gate::decide`], made the
//! same way for the proxy and for forward-auth (`/_auth/check`).
//! Dependencies point one way, down the layers of ARCHITECTURE.md (leaves,
//! then `identity` → `session` → `ldap`/`saml` → `config` → `app` → `gate`
//! → `endpoints` → `proxy` → `server`); `tests/architecture.rs` checks it.

pub mod admin_cli;
pub mod app;
pub mod cli;
pub mod clock;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod gate;
pub mod http;
pub mod identity;
pub mod ldap;
pub mod mapping;
pub mod metrics;
pub mod pages;
pub mod policy;
pub mod proxy;
pub mod request;
pub mod role;
pub mod saml;
pub mod secret;
pub mod selftest;
pub mod server;
pub mod session;
pub mod settings;
pub mod telemetry;
pub mod tls;
pub mod upstream;

/// Entry points for the fuzz targets in `fuzz/` into parsers that are
/// private to their module. Not an API: nothing else may use it.
#[doc(hidden)]
pub mod fuzzing {
    /// The SAML Response pre-scan that runs before samael sees the
    /// document: DOCTYPE/ENTITY refusal, one Response root, a Status.
    pub fn saml_prescan(xml: &str) -> Result<(), crate::saml::Error> {
        crate::saml::response::prescan(xml).map(|_| ())
    }

    /// The group-membership search filter (RFC 4515 escaping of each DN).
    pub fn ldap_member_filter(group_filter: &str, attr: &str, dns: &[&str]) -> String {
        crate::ldap::member_filter(group_filter, attr, dns)
    }

    /// Active Directory's in-chain membership filter.
    pub fn ldap_in_chain_filter(group_filter: &str, user_dn: &str) -> String {
        crate::ldap::in_chain_filter(group_filter, user_dn)
    }
}

pub use config::Config;
pub use server::App;

use std::path::Path;

/// `authgate keygen`: writes a signing key (and optionally a session secret).
pub fn keygen(
    path: &Path,
    algorithm: &str,
    session_secret: Option<&Path>,
    force: bool,
) -> Result<String, String> {
    let alg = identity::keys::Algorithm::parse(algorithm)
        .ok_or_else(|| format!("unknown algorithm {algorithm:?}; use ES256, EdDSA or RS256"))?;
    let pem = identity::keys::generate(alg).map_err(|e| e.to_string())?;
    write_private(path, pem.as_bytes(), force)?;
    let mut msg = format!("wrote {alg:?} signing key to {}", path.display());
    if let Some(sp) = session_secret {
        let mut raw = [0u8; 48];
        aws_lc_rs::rand::fill(&mut raw).map_err(|_| "no randomness available".to_string())?;
        use base64::Engine;
        let line = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw) + "\n";
        write_private(sp, line.as_bytes(), force)?;
        msg.push_str(&format!("\nwrote session secret to {}", sp.display()));
    }
    Ok(msg)
}

fn write_private(path: &Path, bytes: &[u8], force: bool) -> Result<(), String> {
    if path.exists() && !force {
        return Err(format!(
            "{} exists; pass --force to overwrite",
            path.display()
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// `authgate explain-policy [--role ROLE] METHOD PATH[?QUERY]`.
pub fn explain_policy(
    cfg: &Config,
    method: &str,
    target: &str,
    role: Option<&str>,
) -> Result<String, String> {
    let method = ::http::Method::from_bytes(method.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("invalid method {method:?}"))?;
    let (p, q) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let normalized = request::path::normalize(p)
        .map_err(|e| format!("{target:?} is refused with 400 before any rule: {e}"))?;
    let state_switches = app::State::new_switches(cfg);
    let req = policy::Request {
        method: &method,
        path: &normalized,
        query: q,
        override_methods: &[],
        form_body: false,
    };
    let mut out = format!(
        "{method} {target}\nnormalized path: {normalized}\n{}",
        cfg.policy.routes.explain(&req, &state_switches)
    );
    if let Some(role) = role {
        out.push_str(&format!(
            "\norganization roles: policy.enforce_roles = {}{}\n{}",
            cfg.policy.enforce_roles,
            if cfg.policy.enforce_roles {
                ""
            } else {
                " (the role decision below is NOT applied: every signed-in role passes)"
            },
            cfg.policy.role_routes.explain(&req, Some(role))
        ));
    }
    Ok(out)
}
