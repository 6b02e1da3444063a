//! The answer of "Explain a user's grant" (and of a test sign-in): the
//! role, workspaces and projects the mapping gives, and the rows that
//! decided.

use super::widgets::row;
use crate::mapping::explain::{Explanation, Grant, RoleFrom};
use crate::pages::escape;

/// The explanation as a section of the page.
pub fn explanation(e: &Explanation) -> String {
    let r = &e.resolved;
    let from = match e.role_from {
        RoleFrom::OwnerEmail => "the email is mapping.owner_email",
        RoleFrom::Groups => "the highest role of the mapped groups",
        RoleFrom::Default => "no role group matched: mapping.default_role",
    };
    let mut b =
        String::from("<section id=\"explanation\" aria-live=\"polite\"><h3>Result</h3><table>");
    b.push_str(&row(
        "Organization role",
        &format!(
            "{} ({from})",
            r.role.map(|r| r.as_str()).unwrap_or("no role claim")
        ),
    ));
    b.push_str(&row(
        "Workspaces",
        &if r.workspaces.is_empty() {
            "none".into()
        } else {
            r.workspaces.join(", ")
        },
    ));
    let projects: Vec<String> = r
        .projects
        .iter()
        .map(|(p, v)| format!("{p}: {v}"))
        .collect();
    b.push_str(&row(
        "Project roles",
        &if projects.is_empty() {
            "none".into()
        } else {
            projects.join(", ")
        },
    ));
    b.push_str("</table><h3>Mapping rows that name these groups</h3>");
    if e.rows.is_empty() {
        b.push_str("<p>None.</p>");
    } else {
        b.push_str("<table id=\"explain-rows\"><thead><tr><th scope=\"col\">Group</th><th scope=\"col\">Row</th><th scope=\"col\">Grants</th><th scope=\"col\">Decided</th></tr></thead><tbody>");
        for row in &e.rows {
            let grant = match &row.grant {
                Grant::Role(r) => format!("role {}", r.as_str()),
                Grant::Workspace(t) => format!("workspace {t}"),
                Grant::Project(p, pr) => format!("project {p} as {}", pr.as_str()),
            };
            b.push_str(&format!(
                "<tr><td>{}</td><td><code>{}</code></td><td>{}</td><td>{}</td></tr>",
                escape(&row.group),
                escape(&row.key),
                escape(&grant),
                if row.decided {
                    "yes"
                } else {
                    "no (a higher grant won)"
                }
            ));
        }
        b.push_str("</tbody></table>");
    }
    if !e.unmatched.is_empty() {
        b.push_str(&format!(
            "<p>Groups no row names: {}</p>",
            escape(&e.unmatched.join(", "))
        ));
    }
    b.push_str("</section>");
    b
}
