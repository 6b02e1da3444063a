//! The SSO page's building blocks: table rows, copyable values, the
//! editable mapping tables, form fields. Every value escaped.

use crate::config::raw::ProjectRule;
use crate::mapping::ProjectRole;
use crate::pages::escape;
use crate::role::Role;
use crate::settings::{Problem, RoleRow, WorkspaceRow};

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
