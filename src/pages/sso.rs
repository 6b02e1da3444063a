//! The SSO & SAML settings page (`{prefix}/admin/sso`): plain semantic HTML,
//! a label on every field, every form usable without JavaScript (the one
//! script, `sso.js`, served by authgate, only adds the copy buttons). The
//! style sheet is allowed by its hash, so the CSP allows no inline script
//! and no other style.

use super::escape;
use crate::config::raw::ProjectRule;
use crate::mapping::ProjectRole;
use crate::role::Role;
use crate::settings::{Problem, RoleRow, WorkspaceRow};

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

/// A value to paste into the IdP, with a copy button (shown by the script).
pub fn copy_row(id: &str, label: &str, value: &str) -> String {
    format!(
        "<tr><th scope=\"row\">{l}</th><td><code id=\"{id}\">{v}</code> <button type=\"button\" class=\"secondary copy\" data-copy=\"{id}\" aria-label=\"Copy {l}\" hidden>Copy</button></td></tr>",
        l = escape(label),
        v = escape(value),
    )
}

pub fn row(label: &str, value: &str) -> String {
    format!(
        "<tr><th scope=\"row\">{}</th><td>{}</td></tr>",
        escape(label),
        escape(value)
    )
}

/// The messages of a refused form, announced to screen readers.
pub fn problems(list: &[Problem]) -> String {
    if list.is_empty() {
        return String::new();
    }
    let mut s =
        String::from("<div class=\"error\" role=\"alert\" id=\"problems\"><p>Not saved:</p><ul>");
    for p in list {
        s.push_str(&format!(
            "<li><code>{}</code>: {}</li>",
            escape(&p.field),
            escape(&p.message)
        ));
    }
    s.push_str("</ul></div>");
    s
}

pub fn csrf_field(token: &str) -> String {
    format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        escape(token)
    )
}

/// The roles a group can grant (the role select's options, highest first).
pub const ROLES: [Role; 6] = [
    Role::Administrator,
    Role::Manager,
    Role::Reviewer,
    Role::Annotator,
    Role::NotActivated,
    Role::Deactivated,
];
/// The project select's options.
pub const PROJECT_ROLES: [ProjectRole; 3] = [
    ProjectRole::Annotator,
    ProjectRole::Reviewer,
    ProjectRole::Inherit,
];

fn select(name: &str, id: &str, label: &str, options: &[&str], chosen: &str) -> String {
    let mut s = format!(
        "<label for=\"{id}\">{}</label><select id=\"{id}\" name=\"{name}\"><option value=\"\">(choose)</option>",
        escape(label)
    );
    for o in options {
        let sel = if *o == chosen { " selected" } else { "" };
        s.push_str(&format!("<option value=\"{o}\"{sel}>{o}</option>"));
    }
    s.push_str("</select>");
    s
}

fn text(name: &str, id: &str, label: &str, value: &str) -> String {
    format!(
        "<label for=\"{id}\">{}</label><input type=\"text\" id=\"{id}\" name=\"{name}\" value=\"{}\">",
        escape(label),
        escape(value)
    )
}

fn groups_area(name: &str, id: &str, label: &str, groups: &[String]) -> String {
    format!(
        "<label for=\"{id}\">{}</label><textarea id=\"{id}\" name=\"{name}\" aria-describedby=\"groups-help\">{}</textarea>",
        escape(label),
        escape(&groups.join("\n"))
    )
}

fn remove(name: &str, id: &str) -> String {
    format!("<input type=\"checkbox\" id=\"{id}\" name=\"{name}\" value=\"1\"> <label for=\"{id}\">Remove</label>")
}

/// The editable role table.
pub fn role_rows(rows: &[RoleRow]) -> String {
    let mut s = String::from("<table id=\"roles\"><thead><tr><th scope=\"col\">Organization role</th><th scope=\"col\">Groups</th><th scope=\"col\"></th></tr></thead><tbody>");
    for (i, r) in rows.iter().enumerate() {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            select(
                &format!("role-{i}-name"),
                &format!("role-{i}-name"),
                &format!("Role of row {}", i + 1),
                &ROLES.map(Role::as_str),
                &r.role
            ),
            groups_area(
                &format!("role-{i}-groups"),
                &format!("role-{i}-groups"),
                &format!("Groups of row {}", i + 1),
                &r.groups
            ),
            remove(&format!("role-{i}-remove"), &format!("role-{i}-remove")),
        ));
    }
    s.push_str("</tbody></table>");
    s
}

pub fn workspace_rows(rows: &[WorkspaceRow]) -> String {
    let mut s = String::from("<table id=\"workspaces\"><thead><tr><th scope=\"col\">Workspace</th><th scope=\"col\">Groups</th><th scope=\"col\"></th></tr></thead><tbody>");
    for (i, r) in rows.iter().enumerate() {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(
                &format!("ws-{i}-title"),
                &format!("ws-{i}-title"),
                &format!("Workspace title of row {}", i + 1),
                &r.title
            ),
            groups_area(
                &format!("ws-{i}-groups"),
                &format!("ws-{i}-groups"),
                &format!("Groups of workspace row {}", i + 1),
                &r.groups
            ),
            remove(&format!("ws-{i}-remove"), &format!("ws-{i}-remove")),
        ));
    }
    s.push_str("</tbody></table>");
    s
}

pub fn project_rows(rows: &[ProjectRule]) -> String {
    let mut s = String::from("<table id=\"projects\"><thead><tr><th scope=\"col\">Project (id or title)</th><th scope=\"col\">Group</th><th scope=\"col\">Project role</th><th scope=\"col\"></th></tr></thead><tbody>");
    for (i, r) in rows.iter().enumerate() {
        s.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            text(
                &format!("prj-{i}-project"),
                &format!("prj-{i}-project"),
                &format!("Project of row {}", i + 1),
                &r.project
            ),
            text(
                &format!("prj-{i}-group"),
                &format!("prj-{i}-group"),
                &format!("Group of project row {}", i + 1),
                &r.group
            ),
            select(
                &format!("prj-{i}-role"),
                &format!("prj-{i}-role"),
                &format!("Project role of row {}", i + 1),
                &PROJECT_ROLES.map(|p| p.as_str()),
                &r.role
            ),
            remove(&format!("prj-{i}-remove"), &format!("prj-{i}-remove")),
        ));
    }
    s.push_str("</tbody></table>");
    s
}

/// A table the configuration decides, shown read-only with its source.
pub fn locked(what: &str, source: &str, content: &str) -> String {
    format!(
        "<div class=\"locked\"><p>The {} come from the configuration (<code>{}</code>) and cannot be changed here.</p>{content}</div>",
        escape(what),
        escape(source)
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
