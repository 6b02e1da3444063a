//! The SSO page's Sessions section: one Revoke form per session, and a
//! form to end every session of one email. Shows the sid prefix, never the
//! id.

use crate::pages::{escape, utc};
use crate::role::Role;
use crate::session::Summary;

/// Sessions shown in the table at most (newest first).
const MAX_LISTED: usize = 500;

/// The Sessions table: one Revoke form per row, and a form to end every
/// session of one email. Shows the sid prefix, never the id.
pub(super) fn table(
    prefix: &str,
    csrf: &str,
    list: &Option<Result<Vec<Summary>, String>>,
) -> String {
    let action = format!("{}/admin/sso/sessions", escape(prefix));
    let mut b = String::from("<h2 id=\"sessions\">Sessions</h2>");
    let list = match list {
        None => {
            b.push_str(&format!("<p class=\"muted\"><a href=\"{}/admin/sso#sessions\">Reload the page</a> to see the sessions.</p>", escape(prefix)));
            return b;
        }
        Some(Err(e)) => {
            b.push_str(&format!(
                "<p class=\"error\" role=\"alert\">{}</p>",
                escape(e)
            ));
            return b;
        }
        Some(Ok(l)) => l,
    };
    b.push_str(&format!(
        "<p class=\"muted\">{} live session{}. A revoked session is signed out at its next request, on every replica.</p>",
        list.len(),
        if list.len() == 1 { "" } else { "s" }
    ));
    if !list.is_empty() {
        b.push_str("<table id=\"sessions-table\"><thead><tr><th scope=\"col\">Session</th><th scope=\"col\">User</th><th scope=\"col\">Method</th><th scope=\"col\">Role</th><th scope=\"col\">IdP</th><th scope=\"col\">Signed in (UTC)</th><th scope=\"col\">Last seen</th><th scope=\"col\">Expires</th><th scope=\"col\"></th></tr></thead><tbody>");
        for s in list.iter().take(MAX_LISTED) {
            let user = match &s.email {
                Some(e) if *e != s.user => format!("{} ({})", s.user, e),
                _ => s.user.clone(),
            };
            b.push_str(&format!(
                "<tr><td><code>{sid}</code></td><td>{user}</td><td>{m}</td><td>{role}</td><td>{idp}</td><td>{c}</td><td>{l}</td><td>{e}</td>\
<td><form method=\"post\" action=\"{action}\">{csrf}<input type=\"hidden\" name=\"sid\" value=\"{sid}\">\
<button type=\"submit\" class=\"secondary\" aria-label=\"Revoke session {sid} of {user}\">Revoke</button></form></td></tr>",
                sid = escape(&s.sid),
                user = escape(&user),
                m = escape(s.method),
                role = escape(s.role.map_or("-", Role::as_str)),
                idp = escape(s.idp.as_deref().unwrap_or(if s.method == "ldap" { "directory" } else { "-" })),
                c = escape(&utc(s.created)),
                l = escape(&utc(s.last_seen)),
                e = escape(&utc(s.expires)),
            ));
        }
        b.push_str("</tbody></table>");
        if list.len() > MAX_LISTED {
            b.push_str(&format!(
                "<p class=\"muted\" id=\"sessions-more\">The newest {MAX_LISTED} are shown; <code>authgate sessions list</code> shows all {}.</p>",
                list.len()
            ));
        }
    }
    b.push_str(&format!(
        "<form method=\"post\" action=\"{action}\" id=\"revoke-user-form\">{csrf}\
<p><label for=\"revoke-user\">Sign a user out everywhere (email)</label><input type=\"email\" id=\"revoke-user\" name=\"user\"></p>\
<button type=\"submit\" id=\"revoke-user-button\">Revoke all their sessions</button></form>"
    ));
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::{Identity, Method};

    #[test]
    fn every_value_in_the_table_is_escaped() {
        let id = Identity {
            subject: "uid=<b>".into(),
            email: Some("x\"@example.com".into()),
            name: None,
            given_name: None,
            family_name: None,
            preferred_username: Some("<script>alert(1)</script>".into()),
            groups: Vec::new(),
            role: Some(Role::Owner),
            workspaces: Vec::new(),
            projects: Default::default(),
            method: Method::Saml,
            session_index: None,
            saml_idp: Some("i'dp".into()),
        };
        let s = Summary::of("0123456789abcdef", &id, 0, 3600, 10, None);
        let html = table(
            "/_a\"uth",
            "<input type=\"hidden\" name=\"csrf\" value=\"t\">",
            &Some(Ok(vec![s])),
        );
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; (x&quot;@example.com)"));
        assert!(html.contains("<td>i&#39;dp</td>"));
        assert!(html.contains("<td>owner</td>"));
        assert!(html.contains("action=\"/_a&quot;uth/admin/sso/sessions\""));
        assert!(!html.contains("0123456789abcdef"), "only the sid prefix");
        let failed = table("/p", "", &Some(Err("store <down>".into())));
        assert!(failed.contains("store &lt;down&gt;"));
    }
}
