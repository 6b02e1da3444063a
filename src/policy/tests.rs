//! Table tests of the policy: every row of the shipped table in every switch state, with the
//! bypass variants of the issue; hand-written scenarios; parse errors; explanations.

use std::collections::BTreeMap;

use http::Method;

use super::routes::{Action, Governor, MatchKind, Segment};
use super::*;

fn table() -> RouteTable {
    RouteTable::embedded()
}

fn method(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("test methods are tokens")
}

/// Every governor active: the directory manages everything and authgate owns login and SSO.
fn all_armed() -> Switches {
    Switches {
        manual_role_management: false,
        manual_workspace_management: false,
        manual_project_member_management: false,
        disable_signup_without_link: true,
        native_login_disabled: true,
        app_sso_disabled: true,
        overrides: BTreeMap::new(),
    }
}

/// Only `g` active (None: nothing active).
fn only(g: Governor) -> Switches {
    let mut sw = Switches::default();
    match g {
        Governor::ManualRoleManagement => sw.manual_role_management = false,
        Governor::ManualWorkspaceManagement => sw.manual_workspace_management = false,
        Governor::ManualProjectMemberManagement => sw.manual_project_member_management = false,
        Governor::DisableSignupWithoutLink => sw.disable_signup_without_link = true,
        Governor::NativeLogin => sw.native_login_disabled = true,
        Governor::AppSsoSettings | Governor::AppSsoRuntime => sw.app_sso_disabled = true,
        Governor::None => {}
    }
    sw
}

/// A decision without the deciding row (variants may be decided by an equivalent row).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    Allow,
    Deny(String),
    Login,
    Logout,
}

fn kind(d: &Decision) -> Kind {
    match d {
        Decision::Allow => Kind::Allow,
        Decision::Deny { reason, .. } => Kind::Deny(reason.clone()),
        Decision::Login { .. } => Kind::Login,
        Decision::Logout { .. } => Kind::Logout,
    }
}

fn severity(k: &Kind) -> u8 {
    match k {
        Kind::Allow => 0,
        Kind::Logout => 1,
        Kind::Login => 2,
        Kind::Deny(_) => 3,
    }
}

fn stricter(a: Kind, b: Kind) -> Kind {
    if severity(&b) > severity(&a) {
        b
    } else {
        a
    }
}

struct Req<'a> {
    method: Method,
    path: &'a str,
    query: Option<&'a str>,
    overrides: Vec<Method>,
    form: bool,
}

impl<'a> Req<'a> {
    fn new(m: &str, path: &'a str) -> Self {
        Req {
            method: method(m),
            path,
            query: None,
            overrides: Vec::new(),
            form: false,
        }
    }

    fn decide(&self, t: &RouteTable, sw: &Switches) -> Decision {
        t.decide(
            &Request {
                method: &self.method,
                path: self.path,
                query: self.query,
                override_methods: &self.overrides,
                form_body: self.form,
            },
            sw,
        )
    }
}

fn decide(t: &RouteTable, sw: &Switches, m: &str, path: &str) -> Kind {
    kind(&Req::new(m, path).decide(t, sw))
}

/// What a row says for a request it covers, read from the row's own fields.
fn row_outcome(t: &RouteTable, rule: &Rule, sw: &Switches) -> Option<Kind> {
    let first = rule.governors().find(|g| g.active(sw))?;
    let switch = rule.switch.and_then(|s| t.compiled.switches.get(s));
    let on = switch.is_none_or(|s| sw.overrides.get(&s.name).copied().unwrap_or(s.default));
    Some(match rule.action {
        Action::Allow => Kind::Allow,
        Action::Intercept if on => Kind::Logout,
        Action::Deny | Action::Policy if on => {
            if rule.login_page && sw.native_login_disabled {
                Kind::Login
            } else if first == Governor::None {
                Kind::Deny(switch.map_or("policy".into(), |s| s.name.clone()))
            } else {
                Kind::Deny(first.name().to_string())
            }
        }
        _ => Kind::Allow,
    })
}

/// The row's template with each `{x}` replaced by `param`.
fn instantiate(rule: &Rule, param: &str) -> String {
    rule.path
        .split('/')
        .map(|s| if s.starts_with('{') { param } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Methods to try on a row: the ones it names, or a spread for "*".
fn sample_methods(rule: &Rule) -> Vec<String> {
    let all = [
        "GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PROPFIND",
    ];
    all.iter()
        .filter(|m| rule.methods.matches(matcher::verb(m)) == Some(routes::Via::Direct))
        .map(|m| m.to_string())
        .collect()
}

/// Same path spelled the ways the issue lists; all must be decided alike.
fn variants(rule: &Rule, path: &str) -> Vec<String> {
    let trimmed = path.trim_end_matches('/');
    let mut out = vec![
        path.to_string(),
        if path.ends_with('/') {
            trimmed.to_string()
        } else {
            format!("{path}/")
        },
        path.to_ascii_uppercase(),
        format!("{trimmed};jsessionid=1/"),
        format!("{trimmed}.json"),
        format!("{trimmed}.json/"),
        format!("{trimmed}.api"),
        format!(
            "/{}",
            trimmed.trim_start_matches('/').replacen('/', ";x=1/", 1)
        ),
        format!("/{}", trimmed.trim_start_matches('/').replace('/', "//")),
        format!("/./{}/", trimmed.trim_start_matches('/')),
        format!("/zz/..{trimmed}"),
    ];
    // Percent-encode the first letter of the first segment (an unreserved character).
    if let Some(c) = trimmed.chars().nth(1).filter(char::is_ascii_alphabetic) {
        out.push(format!("/%{:02X}{}", c as u32, &trimmed[2..]));
    }
    if rule.kind == MatchKind::Prefix {
        out.push(format!("{trimmed}/zz/yy"));
        out.push(format!("{trimmed}/zz/yy/"));
    }
    out
}

#[test]
fn embedded_table_parses_with_every_shared_row() {
    let t = table();
    let shared = t
        .compiled
        .rules
        .iter()
        .filter(|r| r.basis != "defence-in-depth")
        .count();
    let added = t.len() - shared;
    assert_eq!((shared, added), (81, 7));
    assert_eq!(t.switches().count(), 12);
    assert!(!t.is_empty());
    assert!(t.source_name().contains("label-studio-routes.toml"));
    for rule in &t.compiled.rules {
        assert!(!rule.source.is_empty(), "route {} has a source", rule.path);
    }
}

#[test]
fn switch_defaults_are_the_documented_ones() {
    let t = table();
    let defaults: BTreeMap<&str, bool> = t.switches().map(|(n, d, _)| (n, d)).collect();
    let expected = BTreeMap::from([
        ("deny_app_saml_acs", true),
        ("deny_app_saml_login", true),
        ("deny_app_saml_logout", false),
        ("deny_app_scim", true),
        ("deny_current_user_update", false),
        ("deny_invite_link", true),
        ("deny_jwt_settings", false),
        ("deny_organization_update", true),
        ("deny_permission_overrides", false),
        ("deny_session_policy", false),
        ("deny_user_update", false),
        ("intercept_logout", true),
    ]);
    assert_eq!(defaults, expected);
    for (name, _, description) in t.switches() {
        assert!(!description.is_empty(), "{name} is described");
    }
}

/// Every row, every method it names, every spelling of its path, in every switch state: the
/// decision is the row's own outcome while it is armed; no unarmed row decides anything.
#[test]
fn every_row_decides_its_own_paths_in_every_switch_state() {
    let t = table();
    let mut states = vec![
        ("all armed", all_armed()),
        ("none armed", Switches::default()),
    ];
    for g in [
        Governor::ManualRoleManagement,
        Governor::ManualWorkspaceManagement,
        Governor::ManualProjectMemberManagement,
        Governor::DisableSignupWithoutLink,
        Governor::NativeLogin,
        Governor::AppSsoRuntime,
    ] {
        states.push((g.name(), only(g)));
    }
    let mut checked = 0usize;
    for (state, sw) in &states {
        for (index, rule) in t.compiled.rules.iter().enumerate() {
            let expected = row_outcome(&t, rule, sw);
            for param in ["1", "007", "abc"] {
                let base = instantiate(rule, param);
                for m in sample_methods(rule) {
                    for path in variants(rule, &base) {
                        let got = Req::new(&m, &path).decide(&t, sw);
                        let ctx = format!("[{state}] route[{index}] {rule}: {m} {path}");
                        match &expected {
                            Some(k) => assert_eq!(&kind(&got), k, "{ctx}"),
                            None => assert!(
                                !matches!(got,
                                    Decision::Deny { rule, .. }
                                    | Decision::Login { rule }
                                    | Decision::Logout { rule } if rule == index),
                                "{ctx}: an unarmed row decided {got:?}"
                            ),
                        }
                        checked += 1;
                    }
                    let Some(k) = expected.clone() else { continue };
                    let m_kind = k;
                    // Lower-case method names reach the same Django handler.
                    let lower = Req::new(&m.to_ascii_lowercase(), &base).decide(&t, sw);
                    assert_eq!(kind(&lower), m_kind, "[{state}] {m} lower-case on {base}");
                    // HEAD is GET.
                    if m == "GET" {
                        let head = Req::new("HEAD", &base).decide(&t, sw);
                        assert_eq!(kind(&head), m_kind, "[{state}] HEAD {base}");
                    }
                    // An override header naming the method counts as the method.
                    for carrier in ["GET", "POST"] {
                        let plain = kind(&Req::new(carrier, &base).decide(&t, sw));
                        let mut r = Req::new(carrier, &base);
                        r.overrides = vec![method(&m)];
                        assert_eq!(
                            kind(&r.decide(&t, sw)),
                            stricter(plain, m_kind.clone()),
                            "[{state}] {carrier} {base} overridden to {m}"
                        );
                    }
                    // A form POST may carry `_method=PUT|PATCH|DELETE`.
                    if ["PUT", "PATCH", "DELETE"].contains(&m.as_str()) {
                        let mut r = Req::new("POST", &base);
                        r.form = true;
                        let got = kind(&r.decide(&t, sw));
                        assert!(
                            severity(&got) >= severity(&m_kind),
                            "[{state}] form POST {base} (as {m}): {got:?} < {m_kind:?}"
                        );
                    }
                    checked += 4;
                }
            }
        }
    }
    assert!(checked > 20_000, "{checked} decisions checked");
}

#[test]
fn nothing_is_refused_while_no_switch_is_armed() {
    let t = table();
    let sw = Switches::default();
    for rule in &t.compiled.rules {
        let path = instantiate(rule, "1");
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
            assert_eq!(decide(&t, &sw, m, &path), Kind::Allow, "{m} {path}");
        }
    }
}

#[test]
fn read_only_rows_stay_allowed_when_everything_is_armed() {
    let t = table();
    let sw = all_armed();
    let mut n = 0;
    for rule in t
        .compiled
        .rules
        .iter()
        .filter(|r| r.family.starts_with("r_"))
    {
        for param in ["1", "007", "abc"] {
            let path = instantiate(rule, param);
            for v in variants(rule, &path) {
                for m in ["GET", "HEAD", "OPTIONS"] {
                    assert_eq!(decide(&t, &sw, m, &v), Kind::Allow, "{m} {v}");
                    n += 1;
                }
            }
        }
    }
    assert!(n > 500);
}

fn deny(reason: &str) -> Kind {
    Kind::Deny(reason.to_string())
}

#[test]
fn project_member_pauses_win_over_the_members_prefix() {
    let t = table();
    let sw = only(Governor::ManualProjectMemberManagement);
    let r = "manual_project_member_management";
    for (m, path, want) in [
        ("POST", "/api/projects/1/members/", deny(r)),
        ("DELETE", "/api/projects/1/members", deny(r)),
        ("POST", "/api/projects/1/members/bulk/", deny(r)),
        ("PATCH", "/api/projects/1/members/bulk", deny(r)),
        ("PUT", "/api/projects/1/members/", deny(r)),
        ("POST", "/api/projects/1/members/2/", deny(r)),
        ("PROPFIND", "/api/projects/1/members/", deny(r)),
        ("POST", "/api/projects/1/members/2/pauses/", Kind::Allow),
        ("POST", "/api/projects/1/members/2/pauses", Kind::Allow),
        ("POST", "/API/Projects/1/Members/2/Pauses.json", Kind::Allow),
        ("PATCH", "/api/projects/1/members/2/pauses/3/", Kind::Allow),
        ("DELETE", "/api/projects/1/members/2/pauses/3", Kind::Allow),
        // Allow rows are never widened: PUT on a pause is not named, the prefix refuses it.
        ("PUT", "/api/projects/1/members/2/pauses/3/", deny(r)),
        ("POST", "/api/projects/1/members/2/pauses/3/", deny(r)),
        ("POST", "/api/projects/1/members/2/pauses/3/x/", deny(r)),
        ("GET", "/api/projects/1/members/", Kind::Allow),
        ("HEAD", "/api/projects/1/members/2/", Kind::Allow),
        ("OPTIONS", "/api/projects/1/members/", Kind::Allow),
        ("GET", "/api/projects/1/members/paginated/", Kind::Allow),
        ("POST", "/api/projects/roles/", deny(r)),
        ("DELETE", "/api/projects/roles/9/", deny(r)),
        ("PATCH", "/api/projects/roles/9/", deny(r)),
        ("GET", "/api/projects/roles/", Kind::Allow),
        ("POST", "/api/projects/1/tasks/assignees", Kind::Allow),
        ("POST", "/api/projects/1/members/2/pauses/?x=1", Kind::Allow),
    ] {
        assert_eq!(decide(&t, &sw, m, path), want, "{m} {path}");
    }
}

#[test]
fn role_management_off_refuses_every_way_to_change_a_role() {
    let t = table();
    let sw = only(Governor::ManualRoleManagement);
    let r = "manual_role_management";
    for (m, path, want) in [
        ("PATCH", "/api/organizations/1/memberships", deny(r)),
        ("PUT", "/api/organizations/1/memberships", deny(r)),
        ("POST", "/api/organizations/1/memberships/", deny(r)),
        ("DELETE", "/api/organizations/1/memberships/5/", deny(r)),
        ("GET", "/api/organizations/1/memberships", Kind::Allow),
        ("GET", "/api/organizations/1/memberships/5", Kind::Allow),
        ("PATCH", "/api/organizations/1/set-default-role", deny(r)),
        ("PUT", "/api/organizations/1/set-default-role", deny(r)),
        ("PATCH", "/api/organizations/1", deny(r)),
        ("GET", "/api/organizations/1", Kind::Allow),
        ("DELETE", "/api/users/1/", deny(r)),
        ("PATCH", "/api/users/1/", Kind::Allow),
        ("PUT", "/api/users/1/", Kind::Allow),
        ("POST", "/api/users/", deny(r)),
        ("POST", "/api/users.json", deny(r)),
        ("GET", "/api/users/", Kind::Allow),
        ("POST", "/api/projects/roles/", deny(r)),
        ("POST", "/api/saml/settings", deny(r)),
        ("PATCH", "/api/saml/settings/", deny(r)),
        ("DELETE", "/api/saml/settings", deny(r)),
        ("GET", "/api/saml/settings", Kind::Allow),
        ("POST", "/api/scim/settings", deny(r)),
        ("PUT", "/api/scim/settings", deny(r)),
        ("POST", "/api/invite/send-email", deny(r)),
        ("POST", "/api/invite/revoke", deny(r)),
        ("POST", "/api/invite/reset-token", deny(r)),
        ("GET", "/api/invite", Kind::Allow),
        ("GET", "/scim/v2/Users", deny(r)),
        ("POST", "/saml/tok/acs", deny(r)),
        ("GET", "/saml/tok/login", Kind::Allow),
        ("POST", "/api/organizations/1/member-tags", Kind::Allow),
        ("POST", "/api/organizations/1/permissions", Kind::Allow),
        ("POST", "/api/workspaces/1/memberships/", Kind::Allow),
    ] {
        assert_eq!(decide(&t, &sw, m, path), want, "{m} {path}");
    }
}

#[test]
fn workspace_management_off_refuses_membership_writes_only() {
    let t = table();
    let sw = only(Governor::ManualWorkspaceManagement);
    let r = "manual_workspace_management";
    for (m, path, want) in [
        ("POST", "/api/workspaces/1/memberships/", deny(r)),
        ("DELETE", "/api/workspaces/1/memberships", deny(r)),
        ("PUT", "/api/workspaces/1/memberships/", deny(r)),
        ("POST", "/api/workspaces/1/memberships/bulk/", deny(r)),
        ("PATCH", "/api/workspaces/1/memberships/7/", deny(r)),
        ("GET", "/api/workspaces/1/memberships/", Kind::Allow),
        (
            "GET",
            "/api/workspaces/1/memberships/paginated/",
            Kind::Allow,
        ),
        ("POST", "/api/workspaces/", Kind::Allow),
        ("DELETE", "/api/workspaces/1/", Kind::Allow),
        ("POST", "/api/workspaces/1/projects/", Kind::Allow),
        ("POST", "/api/invite/send-email", deny(r)),
        ("POST", "/api/projects/1/members/", Kind::Allow),
    ] {
        assert_eq!(decide(&t, &sw, m, path), want, "{m} {path}");
    }
}

#[test]
fn signup_without_link_passes_only_with_an_invite_token() {
    let t = table();
    let sw = only(Governor::DisableSignupWithoutLink);
    let r = "disable_signup_without_link";
    for (m, query, want) in [
        ("GET", None, deny(r)),
        ("POST", None, deny(r)),
        ("GET", Some("token=abc"), Kind::Allow),
        ("POST", Some("next=/&token=abc"), Kind::Allow),
        ("HEAD", Some("token=abc"), Kind::Allow),
        ("GET", Some("token="), deny(r)),
        ("GET", Some("token"), deny(r)),
        ("GET", Some("Token=abc"), deny(r)),
        ("GET", Some("token=abc&token="), deny(r)),
        ("GET", Some("tokens=abc"), deny(r)),
    ] {
        let mut req = Req::new(m, "/user/signup/");
        req.query = query;
        assert_eq!(kind(&req.decide(&t, &sw)), want, "{m} ?{query:?}");
    }
    // Invite links are signup links: refused by default, operator switch to hand them out.
    assert_eq!(decide(&t, &sw, "GET", "/api/invite"), deny(r));
    assert_eq!(decide(&t, &sw, "POST", "/api/invite/reset-token"), deny(r));
    assert_eq!(decide(&t, &sw, "POST", "/api/invite/revoke"), deny(r));
    assert_eq!(decide(&t, &sw, "POST", "/api/users/"), deny(r));
    assert_eq!(decide(&t, &sw, "PATCH", "/api/organizations/1"), deny(r));
    assert_eq!(decide(&t, &sw, "GET", "/user/login/"), Kind::Allow);
    let mut open = sw.clone();
    open.overrides.insert("deny_invite_link".into(), false);
    open.overrides
        .insert("deny_organization_update".into(), false);
    assert_eq!(decide(&t, &open, "GET", "/api/invite"), Kind::Allow);
    assert_eq!(
        decide(&t, &open, "PATCH", "/api/organizations/1"),
        Kind::Allow
    );
    assert_eq!(decide(&t, &open, "POST", "/api/invite"), deny(r));
}

#[test]
fn native_login_pages_send_browsers_to_authgate() {
    let t = table();
    let sw = only(Governor::NativeLogin);
    for (m, path, want) in [
        ("GET", "/user/login/", Kind::Login),
        ("POST", "/user/login", Kind::Login),
        ("HEAD", "/user/login/", Kind::Login),
        ("GET", "/user/signup/", Kind::Login),
        ("GET", "/api-auth/login/", Kind::Login),
        ("GET", "/password-reset/", Kind::Login),
        ("POST", "/password-reset/abc/def/", Kind::Login),
        ("GET", "/admin/", deny("native_login")),
        ("POST", "/admin/login/", deny("native_login")),
        ("GET", "/Admin/auth/user/1/change/", deny("native_login")),
        ("GET", "/logout", Kind::Logout),
        ("POST", "/logout/", Kind::Logout),
        ("GET", "/api-auth/logout/", Kind::Logout),
        ("GET", "/user/account/", Kind::Allow),
        ("PUT", "/user/login/", Kind::Allow),
        ("GET", "/saml/tok/login", Kind::Allow),
    ] {
        assert_eq!(decide(&t, &sw, m, path), want, "{m} {path}");
    }
    // Accounts come from the directory: an invite token does not reopen signup.
    let mut both = sw.clone();
    both.disable_signup_without_link = true;
    let mut req = Req::new("POST", "/user/signup/");
    req.query = Some("token=abc");
    assert_eq!(kind(&req.decide(&t, &both)), Kind::Login);
    assert_eq!(kind(&req.decide(&t, &sw)), Kind::Login);
    // The logout intercept can be switched off.
    let mut pass = sw.clone();
    pass.overrides.insert("intercept_logout".into(), false);
    assert_eq!(decide(&t, &pass, "GET", "/logout"), Kind::Allow);
}

#[test]
fn app_sso_routes_are_refused_while_authgate_owns_sso() {
    let t = table();
    let mut sw = only(Governor::AppSsoRuntime);
    let rt = "app_sso_runtime";
    let st = "app_sso_settings";
    for (m, path, want) in [
        ("GET", "/saml/tok/login", deny(rt)),
        ("POST", "/saml/tok/acs/", deny(rt)),
        ("GET", "/saml/tok/logout", Kind::Allow),
        ("GET", "/saml/sso-domain", deny(rt)),
        ("GET", "/scim/v2/Users", deny(rt)),
        ("DELETE", "/scim/v2/Users/1", deny(rt)),
        ("GET", "/scim", deny(rt)),
        ("POST", "/api/saml/settings", deny(st)),
        ("PATCH", "/api/saml/settings", deny(st)),
        ("POST", "/api/saml/settings/validate-metadata-url", deny(st)),
        ("POST", "/api/scim/settings", deny(st)),
        ("GET", "/api/saml/settings", Kind::Allow),
        ("GET", "/api/scim/settings", Kind::Allow),
    ] {
        assert_eq!(decide(&t, &sw, m, path), want, "{m} {path}");
    }
    sw.native_login_disabled = true;
    assert_eq!(decide(&t, &sw, "GET", "/saml/tok/login"), Kind::Login);
    assert_eq!(decide(&t, &sw, "GET", "/saml/sso-domain/"), Kind::Login);
    sw.overrides.insert("deny_app_scim".into(), false);
    assert_eq!(decide(&t, &sw, "GET", "/scim/v2/Users"), Kind::Allow);
}

#[test]
fn bypass_spellings_never_reach_the_upstream() {
    let t = table();
    let sw = only(Governor::ManualRoleManagement);
    let r = deny("manual_role_management");
    for path in [
        "/api/users/1/",
        "/api/users/1",
        "/api/users/007/",
        "/api/users/abc/",
        "/API/USERS/1/",
        "/api/Users/1/",
        "/api;jsessionid=1/users/1/",
        "/api/users;x/1/",
        "/api/users/1;x/",
        "/api/users/1;x",
        "/api/users/1.json",
        "/api/users/1.json/",
        "/api/users/%31/",
        "/api/%75sers/1/",
        "/api/users%3Bjsessionid=1/1/",
        "//api//users//1//",
        "/api/./users/1/",
        "/api/x/../users/1/",
        "/api/x/%2e%2e/users/1/",
        "\\api\\users\\1",
        "/api/users%2F1/",
        "/api%5cusers%2f1",
        "/api/users/1/?format=json",
        "/api/users/1/#x",
    ] {
        assert_eq!(decide(&t, &sw, "DELETE", path), r, "DELETE {path}");
        assert_eq!(decide(&t, &sw, "delete", path), r, "delete {path}");
        let mut over = Req::new("GET", path);
        over.overrides = vec![Method::DELETE];
        assert_eq!(kind(&over.decide(&t, &sw)), r, "GET+override {path}");
        let mut over = Req::new("POST", path);
        over.overrides = vec![method("delete")];
        assert_eq!(
            kind(&over.decide(&t, &sw)),
            r,
            "POST+override delete {path}"
        );
        let mut form = Req::new("POST", path);
        form.form = true;
        assert_eq!(kind(&form.decide(&t, &sw)), r, "form POST {path}");
    }
    // Not a form, no override: a POST to a user is not a row.
    assert_eq!(decide(&t, &sw, "POST", "/api/users/1/"), Kind::Allow);
    // Two segments are not one parameter.
    assert_eq!(decide(&t, &sw, "DELETE", "/api/users/1/2/"), Kind::Allow);
    assert_eq!(decide(&t, &sw, "DELETE", "/api/users/"), Kind::Allow);
    // A GET override on a write leaves it refused; a write override on a read refuses it.
    let mut get = Req::new("PATCH", "/api/organizations/1/memberships");
    get.overrides = vec![Method::GET];
    assert_eq!(kind(&get.decide(&t, &sw)), r);
}

#[test]
fn unknown_paths_are_forwarded() {
    let t = table();
    let sw = all_armed();
    for path in [
        "/",
        "",
        "/api/tasks/1/annotations/",
        "/api/projects/1/",
        "/api/projects/",
        "/static/js/main.js",
        "/data/upload/1/x.png",
        "/projects/1/data",
        "/api/usersx/1/",
        "/api/organization/1/memberships",
        "/user/loginx/",
        "/adminx/",
        "/_auth/login",
    ] {
        for m in ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"] {
            assert_eq!(decide(&t, &sw, m, path), Kind::Allow, "{m} {path}");
        }
    }
    let long = format!("/api/users{}", "/1".repeat(40));
    assert_eq!(decide(&t, &sw, "DELETE", &long), Kind::Allow);
}

#[test]
fn policy_rows_governed_by_nothing_follow_their_switch() {
    let t = table();
    let mut sw = Switches::default();
    assert_eq!(decide(&t, &sw, "PATCH", "/api/users/1/"), Kind::Allow);
    assert_eq!(decide(&t, &sw, "GET", "/api/jwt/settings"), Kind::Allow);
    sw.overrides.insert("deny_user_update".into(), true);
    sw.overrides.insert("deny_jwt_settings".into(), true);
    assert_eq!(
        decide(&t, &sw, "PATCH", "/api/users/1/"),
        deny("deny_user_update")
    );
    assert_eq!(
        decide(&t, &sw, "PUT", "/api/users/1/"),
        deny("deny_user_update")
    );
    assert_eq!(
        decide(&t, &sw, "GET", "/api/jwt/settings"),
        deny("deny_jwt_settings")
    );
    assert_eq!(decide(&t, &sw, "GET", "/api/users/1/"), Kind::Allow);
}

#[test]
fn decisions_name_the_deciding_row() {
    let t = table();
    let sw = only(Governor::NativeLogin);
    let d = Req::new("GET", "/user/login/").decide(&t, &sw);
    let Decision::Login { rule } = d else {
        panic!("expected a login decision, got {d:?}");
    };
    let row = t.rule(rule).expect("the deciding row exists");
    assert_eq!(row.path(), "/user/login/");
    assert_eq!(row.action(), "deny");
    assert_eq!(row.governed_by(), vec!["native_login"]);
    assert_eq!(row.match_kind(), "exact");
    assert_eq!(row.methods(), "GET POST");
    assert!(row.source().contains("users/urls.py"));
    assert!(d.to_string().contains("/_auth/login"));
    assert!(t.rule(t.len()).is_none());
}

#[test]
fn override_methods_are_collected_from_headers_and_query() {
    let mut h = http::HeaderMap::new();
    h.append(
        "X-HTTP-Method-Override",
        http::HeaderValue::from_static("delete"),
    );
    h.append(
        "x-method-override",
        http::HeaderValue::from_static("PUT, PATCH"),
    );
    h.append(
        "x-method-override",
        http::HeaderValue::from_static("bad value"),
    );
    h.append(
        "X_HTTP_Method_Override",
        http::HeaderValue::from_static("TRACE"),
    );
    h.append("x-http-method", http::HeaderValue::from_static("OPTIONS"));
    let got = override_methods(&h, Some("a=1&_method=DELETE&%5FMETHOD=patch&_method="));
    let names: Vec<&str> = got.iter().map(Method::as_str).collect();
    assert_eq!(
        names,
        ["delete", "PUT", "PATCH", "TRACE", "DELETE", "patch"]
    );
    assert!(override_methods(&http::HeaderMap::new(), None).is_empty());
    assert!(is_form_content_type(
        "application/x-www-form-urlencoded; charset=utf-8"
    ));
    assert!(is_form_content_type("Multipart/Form-Data; boundary=x"));
    assert!(!is_form_content_type("application/json"));
}

#[test]
fn explain_names_the_rows_and_the_reason() {
    let t = table();
    let sw = only(Governor::ManualProjectMemberManagement);
    let text = t.explain(
        &Request::new(&Method::POST, "/api/projects/1/members/2/pauses/"),
        &sw,
    );
    assert!(
        text.contains("/api/projects/{project_pk}/members/{user_pk}/pauses/"),
        "{text}"
    );
    assert!(text.contains("prefix /api/projects/{id}/members"), "{text}");
    assert!(text.contains("decides"), "{text}");
    assert!(text.contains("decision: allow"), "{text}");

    let sw = only(Governor::NativeLogin);
    let m = Method::GET;
    let req = Request {
        query: Some("token=abc"),
        ..Request::new(&m, "/user/signup/")
    };
    let text = t.explain(&req, &sw);
    assert!(
        text.contains("native_login_disabled = true: armed"),
        "{text}"
    );
    assert!(text.contains("decision: login"), "{text}");
    assert!(text.contains("source: HumanSignal/label-studio"), "{text}");

    let text = t.explain(&Request::new(&m, "/static/x.js"), &sw);
    assert!(text.contains("no route matches"), "{text}");

    let overrides = [Method::DELETE];
    let req = Request {
        override_methods: &overrides,
        ..Request::new(&m, "/api/users/1/")
    };
    let text = t.explain(&req, &only(Governor::ManualRoleManagement));
    assert!(text.contains("methods checked: GET, DELETE"), "{text}");
    assert!(
        text.contains("\"reason\":\"manual_role_management\""),
        "{text}"
    );
}

#[test]
fn overrides_must_name_known_switches() {
    let t = table();
    let ok = BTreeMap::from([("deny_invite_link".to_string(), false)]);
    assert_eq!(t.check_overrides(&ok), Ok(()));
    let bad = BTreeMap::from([
        ("deny_invite_links".to_string(), false),
        ("intercept_logout".to_string(), true),
    ]);
    let err = t.check_overrides(&bad).expect_err("unknown switch");
    let msg = err.to_string();
    assert!(msg.contains("deny_invite_links"), "{msg}");
    assert!(msg.contains("deny_invite_link,"), "{msg}");
}

const MINIMAL: &str = r#"
[[route]]
methods = ["POST"]
path = "/api/things/{id}/"
match = "exact"
governed_by = "manual_role_management"
action = "deny"
family = "a"
"#;

fn parse_err(text: &str) -> String {
    RouteTable::parse(text, "test.toml")
        .expect_err("the table is invalid")
        .to_string()
}

#[test]
fn a_minimal_table_for_another_upstream_works() {
    let t = RouteTable::parse(MINIMAL, "other.toml").expect("valid");
    assert_eq!(t.len(), 1);
    let sw = only(Governor::ManualRoleManagement);
    assert_eq!(
        decide(&t, &sw, "POST", "/API/things/x"),
        deny("manual_role_management")
    );
    assert_eq!(decide(&t, &sw, "POST", "/api/other/x"), Kind::Allow);
    let wild = r#"
[[route]]
methods = ["*"]
except_methods = ["GET", "HEAD", "OPTIONS"]
path = "/{tenant}/admin"
match = "prefix"
governed_by = "none"
action = "deny"
family = "x"
"#;
    let t = RouteTable::parse(wild, "other.toml").expect("valid");
    assert_eq!(
        decide(&t, &Switches::default(), "POST", "/acme/admin/x"),
        deny("policy")
    );
    assert_eq!(
        decide(&t, &Switches::default(), "GET", "/acme/admin/x"),
        Kind::Allow
    );
    assert!(matches!(t.compiled.rules[0].segments[0], Segment::Param));
}

#[test]
fn parse_errors_name_the_source_route_and_field() {
    let missing_path = format!("{MINIMAL}\n[[route]]\nmethods = [\"GET\"]\nmatch = \"exact\"\ngoverned_by = \"none\"\naction = \"allow\"\nfamily = \"r_x\"\n");
    let msg = parse_err(&missing_path);
    assert!(msg.starts_with("test.toml: "), "{msg}");
    assert!(msg.contains("route[1]: field `path`: missing"), "{msg}");

    let cases = [
        (
            "governed_by = \"manual_role_management\"",
            "governed_by = \"manual_roles\"",
            "field `governed_by`: `manual_roles`",
        ),
        (
            "path = \"/api/things/{id}/\"",
            "path = \"/api/things/{id}x/\"",
            "field `path`",
        ),
        (
            "path = \"/api/things/{id}/\"",
            "path = \"api/things\"",
            "must start with `/`",
        ),
        (
            "path = \"/api/things/{id}/\"",
            "path = \"/api//things\"",
            "empty segment",
        ),
        (
            "path = \"/api/things/{id}/\"",
            "path = \"/api/things;x\"",
            "field `path`",
        ),
        ("match = \"exact\"", "match = \"regex\"", "field `match`"),
        ("action = \"deny\"", "action = \"block\"", "field `action`"),
        (
            "action = \"deny\"",
            "action = \"policy\"",
            "field `switch`: missing",
        ),
        (
            "methods = [\"POST\"]",
            "methods = []",
            "field `methods`: must not be empty",
        ),
        (
            "methods = [\"POST\"]",
            "methods = [\"PO ST\"]",
            "field `methods`",
        ),
        (
            "methods = [\"POST\"]",
            "methods = \"POST\"",
            "field `methods`: must be an array",
        ),
        (
            "methods = [\"POST\"]",
            "methods = [\"*\", \"GET\"]",
            "stands alone",
        ),
        (
            "family = \"a\"",
            "family = \"r_read\"",
            "field `action`: a read-only row",
        ),
        (
            "family = \"a\"",
            "goverend_by = \"none\"\nfamily = \"a\"",
            "field `goverend_by`: unknown field",
        ),
        (
            "family = \"a\"",
            "family = \"a\"\nswitch = \"x\"",
            "field `switch`: only policy and intercept",
        ),
        (
            "family = \"a\"",
            "family = \"a\"\ninvite_param = \"token\"",
            "field `invite_param`",
        ),
        (
            "family = \"a\"",
            "family = \"a\"\nexcept_methods = [\"GET\"]",
            "field `except_methods`",
        ),
        (
            "family = \"a\"",
            "family = \"a\"\nlogin_page = \"yes\"",
            "field `login_page`",
        ),
        (
            "family = \"a\"",
            "family = \"a\"\nalso_governed_by = [\"none\"]",
            "field `also_governed_by`",
        ),
    ];
    for (from, to, want) in cases {
        let text = MINIMAL.replace(from, to);
        assert_ne!(text, MINIMAL, "{from}");
        let msg = parse_err(&text);
        assert!(msg.contains("test.toml: route[0]"), "{to}: {msg}");
        assert!(msg.contains(want), "{to}: {msg}");
    }

    let undeclared = MINIMAL.replace(
        "action = \"deny\"",
        "action = \"policy\"\nswitch = \"deny_things\"",
    );
    assert!(parse_err(&undeclared).contains("`deny_things` is not declared"));
    let declared = format!("{undeclared}\n[switches.deny_things]\ndefault = true\n");
    assert!(RouteTable::parse(&declared, "t").is_ok());
    let unused = format!("{MINIMAL}\n[switches.deny_things]\ndefault = true\n");
    assert!(parse_err(&unused).contains("switches.deny_things: declared but no route uses it"));
    let no_default = format!("{undeclared}\n[switches.deny_things]\ndescription = \"x\"\n");
    assert!(parse_err(&no_default).contains("switches.deny_things: field `default`: missing"));
    let bad_name = declared.replace("deny_things", "Deny-Things");
    assert!(parse_err(&bad_name).contains("lower-case"));

    let syntax = parse_err("[[route]\nmethods = 1");
    assert!(
        syntax.starts_with("test.toml: not a valid TOML route table"),
        "{syntax}"
    );
    assert!(parse_err("").contains("no [[route]] rows"));
    assert!(parse_err("route = 1").contains("field `route`"));
    assert!(parse_err(&format!("extra = 1\n{MINIMAL}")).contains("top level: field `extra`"));
}

#[test]
fn every_problem_is_reported_at_once() {
    let text = format!(
        "{}{}",
        MINIMAL.replace("match = \"exact\"", "match = \"exakt\""),
        MINIMAL.replace("action = \"deny\"", "action = \"nope\"")
    );
    let err = RouteTable::parse(&text, "test.toml").expect_err("invalid");
    let Error::Invalid { problems, .. } = &err else {
        panic!("expected Invalid, got {err:?}");
    };
    assert_eq!(problems.len(), 2, "{err}");
    assert_eq!(problems[0].location, "route[0] (/api/things/{id}/)");
    assert_eq!(problems[0].field, "match");
    assert_eq!(problems[1].location, "route[1] (/api/things/{id}/)");
    assert_eq!(problems[1].field, "action");
}

#[test]
fn the_table_is_shared_across_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RouteTable>();
    assert_send_sync::<Decision>();
}

#[test]
fn templates_compile_to_lower_case_segments() {
    let t = table();
    for rule in &t.compiled.rules {
        for seg in &rule.segments {
            if let Segment::Literal(lit) = seg {
                assert!(!lit.is_empty());
                assert!(lit.iter().all(|b| !b.is_ascii_uppercase()), "{}", rule.path);
            }
        }
    }
}
