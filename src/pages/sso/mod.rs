//! The SSO & SAML settings page (`{prefix}/admin/sso`): plain semantic HTML,
//! a label on every field, every form usable without JavaScript (the one
//! script, `sso.js`, served by authgate, only adds the copy buttons). The
//! style sheet is allowed by its hash, so the CSP ([`csp`]) allows no
//! inline script and no other style.
//!
//! The endpoint (`endpoints::admin`) gathers a [`Page`] and a [`View`] and
//! sets status and headers; everything shown is made here, every value
//! escaped.

mod explain;
mod sessions;
mod status;
pub mod widgets;

use std::collections::BTreeMap;

use super::escape;
use crate::config::raw::ProjectRule;
use crate::config::Config;
use crate::mapping::explain::Explanation;
use crate::saml::Sso;
use crate::session::Summary;
use crate::settings::{self, Locks, Problem, RoleRow, WorkspaceRow};

pub use explain::explanation;

pub const STYLE: &str = "body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;background:#f5f6f8;color:#1d2330;margin:0}\
main{max-width:60rem;margin:2rem auto;background:#fff;border-radius:8px;box-shadow:0 1px 4px rgba(0,0,0,.12);padding:1.5rem 2rem}\
h1{font-size:1.5rem}h2{font-size:1.2rem;margin-top:2rem;border-top:1px solid #e3e6eb;padding-top:1rem}h3{font-size:1rem}\
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #eef0f3}\
code{word-break:break-all}label{font-weight:600}input[type=text],input[type=url],input[type=email],select,textarea{width:100%;box-sizing:border-box;padding:.4rem;border:1px solid #b8bfcc;border-radius:4px;font:inherit}\
textarea{min-height:3.5rem}button{padding:.45rem .9rem;border:0;border-radius:4px;background:#2457d6;color:#fff;font:inherit;cursor:pointer}\
button.secondary{background:#e8ecf5;color:#1d2330}fieldset{border:1px solid #e3e6eb;border-radius:6px;margin:1rem 0}\
.error{background:#fdecec;border:1px solid #f3b4b4;color:#8a1c1c;padding:.6rem;border-radius:4px}\
.ok{background:#e9f7ee;border:1px solid #a8dcb9;color:#145c2c;padding:.6rem;border-radius:4px}\
.warn{color:#8a4b00;font-weight:600}.muted{color:#5b6372;font-size:.9rem}.locked{background:#f5f6f8;padding:.6rem;border-radius:4px}";

/// The page frame: the style sheet inline (allowed by hash), `sso.js` by URL.
pub fn frame(title: &str, script: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{t}</title><style>{STYLE}</style><script src=\"{s}\" defer></script></head><body><main>{body}</main></body></html>",
        t = escape(title),
        s = escape(script),
    )
}

/// The copy buttons: the only script of the page, served as a file.
pub const SCRIPT: &str = r#"// authgate SSO page: copy buttons (the page works without this file).
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("button.copy").forEach(function (b) {
    b.hidden = false;
    b.addEventListener("click", function () {
      var el = document.getElementById(b.getAttribute("data-copy"));
      if (!el) { return; }
      var text = el.textContent;
      var done = function () { b.textContent = "Copied"; setTimeout(function () { b.textContent = "Copy"; }, 1500); };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () { select(el); });
      } else {
        select(el);
        try { if (document.execCommand("copy")) { done(); } } catch (e) { }
      }
    });
  });
  function select(el) {
    var r = document.createRange();
    r.selectNodeContents(el);
    var s = window.getSelection();
    s.removeAllRanges();
    s.addRange(r);
  }
});
"#;

/// The page's Content-Security-Policy: its own script file, its style
/// sheet by hash, forms to itself only.
pub fn csp() -> String {
    use base64::Engine as _;
    let hash =
        base64::engine::general_purpose::STANDARD.encode(openssl::sha::sha256(STYLE.as_bytes()));
    format!(
        "default-src 'none'; script-src 'self'; style-src 'sha256-{hash}'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
}

/// What the page is about: the configuration and IdPs in force, the saved
/// settings, and who is looking.
pub struct Page<'a> {
    pub config: &'a Config,
    /// The SAML IdPs in force (`None`: SAML is off).
    pub saml: Option<&'a Sso>,
    pub settings: Settings<'a>,
    /// The form token of this session.
    pub csrf: &'a str,
    /// Who is signed in (email, else subject).
    pub who: &'a str,
}

/// The page's saved settings.
pub struct Settings<'a> {
    /// The version read from the state directory.
    pub version: u64,
    /// Why the saved settings are not in force.
    pub problem: Option<&'a str>,
    /// A state directory is set: saving works.
    pub can_save: bool,
    /// Settings the file or the environment decide.
    pub locks: &'a Locks,
    /// The metadata URL saved, if the metadata was saved as a URL.
    pub metadata_url: Option<&'a str>,
}

/// What one answer shows besides the settings: a notice, the problems of a
/// refused form and what was submitted, the sessions, an explanation.
#[derive(Default)]
pub struct View {
    /// The Sessions table (`None`: not loaded for this view).
    pub sessions: Option<Result<Vec<Summary>, String>>,
    pub notice: Option<String>,
    pub problems: Vec<Problem>,
    pub metadata_url: Option<String>,
    pub roles: Option<Vec<RoleRow>>,
    pub workspaces: Option<Vec<WorkspaceRow>>,
    pub projects: Option<Vec<ProjectRule>>,
    /// Extra empty rows (roles, workspaces, projects).
    pub extra: (usize, usize, usize),
    pub explain_groups: String,
    pub explain_email: String,
    pub explain_note: Option<String>,
    pub explanation: Option<Explanation>,
}

/// The IdP URLs: from the SAML settings in force, else as they will be.
fn sp_urls(p: &Page<'_>) -> Vec<(&'static str, &'static str, String)> {
    let cfg = p.config;
    let urls = match p.saml {
        Some(sso) => sso.settings.urls.clone(),
        None => crate::saml::settings::sp_urls(
            &cfg.server.public_url,
            &cfg.server.prefix,
            &cfg.raw.saml.entity_id,
        ),
    };
    vec![
        (
            "acs",
            "ACS URL (Reply URL, Single sign-on URL)",
            urls.acs_url.clone(),
        ),
        (
            "entity",
            "Audience URI (SP Entity ID, Identifier)",
            urls.entity_id,
        ),
        ("recipient", "Recipient / Destination", urls.acs_url),
        ("login", "Login URL (Sign-on URL)", urls.login_url),
        ("logout", "Logout URL", urls.logout_url),
        ("spmeta", "SP metadata", urls.metadata_url),
    ]
}

/// The whole page.
pub fn render(p: &Page<'_>, v: &View) -> String {
    let cfg = p.config;
    let prefix = &cfg.server.prefix;
    let csrf = widgets::csrf_field(p.csrf);
    let mut b = String::from("<h1>SSO &amp; SAML</h1>");
    b.push_str(&format!(
        "<p class=\"muted\">Signed in as {}. <a href=\"{}/logout\">Sign out</a></p>",
        escape(p.who),
        escape(prefix)
    ));
    if let Some(n) = &v.notice {
        b.push_str(&format!(
            "<p class=\"ok\" role=\"status\" id=\"notice\">{}</p>",
            escape(n)
        ));
    }
    b.push_str(&widgets::problems(&v.problems));
    if let Some(problem) = p.settings.problem {
        b.push_str(&format!(
            "<p class=\"error\" role=\"alert\">The saved settings (version {}) are not in force: {}</p>",
            p.settings.version,
            escape(problem)
        ));
    }
    if !p.settings.can_save {
        b.push_str("<p class=\"locked\">Saving is off: set <code>server.state_dir</code> (a writable directory) to change these settings here.</p>");
    }

    // 1. Organization domain.
    let host = cfg
        .server
        .public_url
        .split("://")
        .nth(1)
        .unwrap_or(&cfg.server.public_url)
        .to_string();
    b.push_str("<h2 id=\"domain\">Organization</h2><table>");
    b.push_str(&widgets::row("Organization domain", &host));
    let domains = &cfg.raw.saml.allowed_email_domains;
    b.push_str(&widgets::row(
        "Email domains allowed to sign in",
        &if domains.is_empty() {
            "any".to_string()
        } else {
            domains.join(", ")
        },
    ));
    b.push_str("</table>");

    // 2. What to paste into the IdP.
    b.push_str("<h2 id=\"urls\">Paste into your identity provider</h2><table>");
    for (id, label, value) in sp_urls(p) {
        b.push_str(&widgets::copy_row(id, label, &value));
    }
    let a = &cfg.raw.saml;
    b.push_str(&widgets::row(
        "Attributes to send",
        &format!(
            "{}, {}, {}, {} (email required)",
            a.attr_email, a.attr_first_name, a.attr_last_name, a.attr_groups
        ),
    ));
    b.push_str("</table>");

    // 3. IdP metadata.
    b.push_str("<h2 id=\"metadata\">Identity provider metadata</h2>");
    b.push_str(&status::metadata_status(cfg, p.saml));
    match p.settings.locks.get(settings::KEY_METADATA) {
        Some(src) => b.push_str(&format!(
            "<p class=\"locked\">The IdP metadata is set by the configuration (<code>{}</code>) and cannot be changed here.</p>",
            escape(src)
        )),
        None => {
            let url = v
                .metadata_url
                .as_deref()
                .or(p.settings.metadata_url)
                .unwrap_or("");
            b.push_str(&format!(
                "<form method=\"post\" action=\"{pre}/admin/sso/metadata\" enctype=\"multipart/form-data\" id=\"upload-form\">{csrf}<input type=\"hidden\" name=\"source\" value=\"upload\">\
<fieldset><legend>Upload the IdP metadata XML</legend>\
<p><label for=\"metadata_file\">Metadata file</label> <input type=\"file\" id=\"metadata_file\" name=\"metadata_file\" accept=\".xml,application/xml,text/xml,application/samlmetadata+xml\"></p>\
<p><label for=\"metadata_xml\">or paste the XML</label><textarea id=\"metadata_xml\" name=\"metadata_xml\" rows=\"4\"></textarea></p>\
<button type=\"submit\" id=\"upload\">Upload and check</button></fieldset></form>\
<form method=\"post\" action=\"{pre}/admin/sso/metadata\" id=\"url-form\">{csrf}<input type=\"hidden\" name=\"source\" value=\"url\">\
<fieldset><legend>Or fetch it from a URL</legend><p><label for=\"metadata_url\">Metadata URL</label><input type=\"url\" id=\"metadata_url\" name=\"metadata_url\" value=\"{u}\" placeholder=\"https://idp.example.com/metadata\"></p>\
<button type=\"submit\" id=\"fetch\">Fetch and check</button> <span class=\"muted\">Refreshed every {r}.</span></fieldset></form>",
                pre = escape(prefix),
                u = escape(url),
                r = escape(&cfg.raw.saml.metadata_refresh),
            ));
        }
    }

    // 4. Group mappings.
    b.push_str("<h2 id=\"mappings\">Group mappings</h2>");
    b.push_str("<p class=\"muted\" id=\"groups-help\">Groups: one per line, as the IdP sends them (SAML group names, compared exactly) or LDAP DNs such as <code>cn=team,ou=groups,dc=example,dc=com</code> (compared normalized). A user in several groups gets the highest role.</p>");
    let raw_m = &cfg.raw.mapping;
    let (e_roles, e_ws, e_prj) = v.extra;
    b.push_str(&format!(
        "<form method=\"post\" action=\"{}/admin/sso/mapping\" id=\"mapping-form\">{csrf}",
        escape(prefix)
    ));
    // Organization roles.
    b.push_str("<h3>Organization roles</h3>");
    let mut roles = v.roles.clone().unwrap_or_else(|| {
        raw_m
            .roles
            .iter()
            .map(|(r, g)| RoleRow {
                role: r.clone(),
                groups: g.clone(),
            })
            .collect()
    });
    match p.settings.locks.get(settings::KEY_ROLES) {
        Some(src) => b.push_str(&widgets::locked(
            "organization roles",
            src,
            &readonly_map(&raw_m.roles),
        )),
        None => {
            roles.extend((0..e_roles + 1).map(|_| RoleRow::default()));
            b.push_str(&widgets::role_rows(&roles));
            b.push_str("<button type=\"submit\" class=\"secondary\" name=\"action\" value=\"add-role\" id=\"add-role\">Add a role row</button>");
        }
    }
    let default = match cfg.mapping.default_role() {
        Some(r) => r.as_str().to_string(),
        None => "(no role claim: the application decides)".into(),
    };
    b.push_str(&format!("<p class=\"muted\">Users in no mapped group: <strong>{}</strong> (<code>mapping.default_role</code>).</p>", escape(&default)));
    // Workspaces.
    b.push_str("<h3>Workspaces</h3>");
    let mut ws = v.workspaces.clone().unwrap_or_else(|| {
        raw_m
            .workspaces
            .iter()
            .map(|(t, g)| WorkspaceRow {
                title: t.clone(),
                groups: g.clone(),
            })
            .collect()
    });
    match p.settings.locks.get(settings::KEY_WORKSPACES) {
        Some(src) => b.push_str(&widgets::locked(
            "workspaces",
            src,
            &readonly_map(&raw_m.workspaces),
        )),
        None => {
            ws.extend((0..e_ws + 1).map(|_| WorkspaceRow::default()));
            b.push_str(&widgets::workspace_rows(&ws));
            b.push_str("<button type=\"submit\" class=\"secondary\" name=\"action\" value=\"add-workspace\" id=\"add-workspace\">Add a workspace row</button>");
        }
    }
    // Projects.
    b.push_str("<h3>Projects</h3><p class=\"muted\">Inherit: the user's organization role (annotator, reviewer, manager, administrator or owner).</p>");
    let mut prj = v.projects.clone().unwrap_or_else(|| raw_m.projects.clone());
    match p.settings.locks.get(settings::KEY_PROJECTS) {
        Some(src) => {
            let list: BTreeMap<String, Vec<String>> = raw_m
                .projects
                .iter()
                .map(|r| (format!("{} ({})", r.project, r.role), vec![r.group.clone()]))
                .collect();
            b.push_str(&widgets::locked("project rules", src, &readonly_map(&list)))
        }
        None => {
            prj.extend((0..e_prj + 1).map(|_| ProjectRule::default()));
            b.push_str(&widgets::project_rows(&prj));
            b.push_str("<button type=\"submit\" class=\"secondary\" name=\"action\" value=\"add-project\" id=\"add-project\">Add a project row</button>");
        }
    }
    b.push_str("<p><button type=\"submit\" name=\"action\" value=\"save\" id=\"save\">Save</button></p></form>");

    // 5. Test sign-in.
    b.push_str("<h2 id=\"test\">Test sign-in</h2>");
    if p.saml.is_some() {
        b.push_str(&format!(
            "<p>Signs in at the identity provider in a new tab and shows what the assertion carries and the role, workspaces and projects it would get. Your own session does not change.</p><p><a href=\"{}/admin/sso/test\" target=\"_blank\" rel=\"noopener\" id=\"test-link\">Test sign-in (opens a new tab)</a></p>",
            escape(prefix)
        ));
    } else {
        b.push_str("<p class=\"muted\">Available once IdP metadata is in force.</p>");
    }

    // 6. Sessions.
    b.push_str(&sessions::table(prefix, &csrf, &v.sessions));

    // 7. Explain.
    b.push_str(&format!(
        "<h2 id=\"explain\">Explain a user's grant</h2><form method=\"post\" action=\"{}/admin/sso/explain\" id=\"explain-form\">{csrf}\
<p><label for=\"explain-groups\">Groups (one per line)</label><textarea id=\"explain-groups\" name=\"groups\">{}</textarea></p>\
<p><label for=\"explain-email\">Email (the owner check; alone: the groups this user last signed in with)</label><input type=\"email\" id=\"explain-email\" name=\"email\" value=\"{}\"></p>\
<button type=\"submit\" id=\"explain-button\">Explain</button></form>",
        escape(prefix),
        escape(&v.explain_groups),
        escape(&v.explain_email)
    ));
    if let Some(e) = &v.explanation {
        if let Some(n) = &v.explain_note {
            b.push_str(&format!("<p class=\"muted\">{}</p>", escape(n)));
        }
        b.push_str(&explain::explanation(e));
    }

    frame("SSO & SAML", &format!("{prefix}/admin/sso.js"), &b)
}

fn readonly_map(m: &BTreeMap<String, Vec<String>>) -> String {
    let mut s = String::from("<table>");
    for (k, v) in m {
        s.push_str(&widgets::row(k, &v.join("; ")));
    }
    s.push_str("</table>");
    s
}
