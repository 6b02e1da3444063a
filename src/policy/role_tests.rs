//! Table tests of the role table: every row and every role, the spellings and method channels
//! a client could use to slip past a row, and the issue's own expectations.

use http::Method;

use super::{Request, Role, RoleDecision, RoleTable};

fn table() -> RoleTable {
    RoleTable::embedded()
}

/// `/api/projects/{id}/` → `/api/projects/7/`.
fn instantiate(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "7" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods a row names; for `*`, a spread including an extension method.
fn row_methods(desc: &str) -> Vec<String> {
    if let Some(rest) = desc.strip_prefix('*') {
        let except: Vec<&str> = rest
            .trim()
            .strip_prefix("except")
            .unwrap_or("")
            .split_whitespace()
            .collect();
        return ["GET", "POST", "PUT", "PATCH", "DELETE", "PROPFIND"]
            .into_iter()
            .filter(|m| !except.contains(m))
            .map(String::from)
            .collect();
    }
    desc.split_whitespace()
        .map(|m| m.trim_matches(|c| c == '(' || c == ')' || c == '+'))
        .map(String::from)
        .collect()
}

fn m(name: &str) -> Method {
    Method::from_bytes(name.as_bytes()).expect("method token")
}

/// `target` is a path with an optional `?query`, as the proxy splits it; `role` is a claim as
/// spelled (parsed at the edge, as the session's role is).
fn decide(t: &RoleTable, method: &str, target: &str, role: Option<&str>) -> RoleDecision {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let method = m(method);
    t.decide(
        &Request {
            query,
            ..Request::new(&method, path)
        },
        role.and_then(Role::from_claim),
    )
}

const NOT_ROLES: [Option<&str>; 5] = [
    None,
    Some("not_activated"),
    Some("deactivated"),
    Some("Administrator"),
    Some("admin"),
];

#[test]
fn embedded_table_parses_and_every_row_names_its_basis_and_source() {
    let t = table();
    assert!(t.len() >= 40, "{} rows", t.len());
    for (i, r) in t.rules().enumerate() {
        assert!(!r.source().is_empty(), "route[{i}] {r}: no source");
        assert!(!r.family().is_empty(), "route[{i}] {r}: no family");
        if r.basis() == "documented" {
            assert!(
                r.source()
                    .contains("https://docs.humansignal.com/guide/admin_roles"),
                "route[{i}] {r}: documented rows cite the roles guide"
            );
        }
    }
}

#[test]
fn every_row_decides_its_own_path_for_every_role() {
    let t = table();
    for (i, r) in t.rules().enumerate() {
        let path = instantiate(r.path());
        let mut paths = vec![path.clone()];
        if r.match_kind() == "prefix" {
            paths.push(format!("{}/deeper/7", path.trim_end_matches('/')));
        }
        for path in &paths {
            for method in row_methods(&r.methods()) {
                let req_m = m(&method);
                let query = r
                    .query_condition()
                    .map(|(k, v)| format!("{k}={}", v.first().map_or("", String::as_str)));
                let req = Request {
                    query: query.as_deref(),
                    ..Request::new(&req_m, path)
                };
                let (needed, by) = t
                    .required(&req)
                    .unwrap_or_else(|| panic!("route[{i}] {r}: {method} {path} matches no row"));
                let winner = t.rule(by).expect("row");
                // The row itself decides, or a more specific one (an exception carved out).
                if by != i {
                    assert_ne!(
                        winner.path(),
                        r.path(),
                        "route[{i}] {r}: {method} {path} decided by route[{by}] {winner}"
                    );
                } else {
                    assert_eq!(needed, r.role());
                }
                for role in Role::ALL {
                    let want = if role >= needed {
                        RoleDecision::Allow
                    } else {
                        RoleDecision::Refuse { needed, rule: by }
                    };
                    assert_eq!(
                        t.decide(&req, Some(role)),
                        want,
                        "route[{i}] {r}: {method} {path} as {role}"
                    );
                }
                for not in NOT_ROLES {
                    assert_eq!(
                        t.decide(&req, not.and_then(Role::from_claim)),
                        RoleDecision::Refuse { needed, rule: by },
                        "route[{i}] {r}: {method} {path} as {not:?}"
                    );
                }
            }
        }
    }
}

/// The path spelled the ways a client or an attacker might, each naming the same resource.
fn spellings(path: &str) -> Vec<(&'static str, String)> {
    let trimmed = path.trim_end_matches('/');
    let inner = trimmed.trim_start_matches('/');
    let segments: Vec<&str> = inner.split('/').collect();
    let join = |f: &dyn Fn(&str) -> String| -> String {
        format!(
            "/{}",
            segments.iter().map(|s| f(s)).collect::<Vec<_>>().join("/")
        )
    };
    let toggled = if path.ends_with('/') {
        trimmed.to_string()
    } else {
        format!("{path}/")
    };
    let mut out = vec![
        ("trailing slash toggled", toggled),
        ("doubled slashes", format!("/{}", inner.replace('/', "//"))),
        (
            "/./ everywhere",
            format!("/./{}/./", inner.replace('/', "/./")),
        ),
        ("/zz/..", format!("/zz/..{path}")),
        ("%2e%2e", format!("/zz/%2e%2e{path}")),
        (
            "percent-encoded letters",
            join(&|s| match s.chars().next() {
                Some(c) if c.is_ascii_alphabetic() => format!("%{:02X}{}", c as u32, &s[1..]),
                _ => s.to_string(),
            }),
        ),
        ("upper case", path.to_ascii_uppercase()),
        (";param on every segment", join(&|s| format!("{s};x=1"))),
        ("format suffix", format!("{trimmed}.json")),
        ("backslashes", path.replace('/', "\\")),
    ];
    if segments.len() > 1 {
        out.push((
            "x/../ inside",
            format!("/{}/x/../{}", segments[0], segments[1..].join("/")),
        ));
    }
    out
}

/// For every (row, method) a role below the row's is refused, in every spelling and through
/// every method channel: override headers (any method named in them counts), `_method`, form
/// bodies, lower-case method names, HEAD for GET.
#[test]
fn refused_rows_stay_refused_in_every_spelling_and_method_channel() {
    let t = table();
    let mut checked = 0;
    for (i, r) in t.rules().enumerate() {
        let Some(below) = Role::ALL.into_iter().rev().find(|x| *x < r.role()) else {
            continue;
        };
        let path = instantiate(r.path());
        for method in row_methods(&r.methods()) {
            let plain_m = m(&method);
            let Some((needed, _)) = t.required(&Request::new(&plain_m, &path)) else {
                continue;
            };
            if needed <= below {
                continue; // a more specific row opens it (labeling under /api/tasks/).
            }
            let refused = |req: &Request<'_>, what: &str| {
                assert!(
                    matches!(t.decide(req, Some(below)), RoleDecision::Refuse { .. }),
                    "route[{i}] {r}: {what} lets {below} through"
                );
            };
            for (label, p) in spellings(&path) {
                refused(
                    &Request::new(&plain_m, &p),
                    &format!("{method} {p} ({label})"),
                );
                checked += 1;
            }
            let lower = m(&method.to_ascii_lowercase());
            refused(&Request::new(&lower, &path), "lower-case method");
            for base in ["GET", "POST"] {
                let base_m = m(base);
                let over = [plain_m.clone()];
                refused(
                    &Request {
                        override_methods: &over,
                        ..Request::new(&base_m, &path)
                    },
                    &format!("{base} + override {method}"),
                );
            }
            if matches!(method.as_str(), "PUT" | "PATCH" | "DELETE") {
                let post = m("POST");
                refused(
                    &Request {
                        form_body: true,
                        ..Request::new(&post, &path)
                    },
                    "form POST (a _method field)",
                );
            }
            if method == "GET" {
                refused(&Request::new(&Method::HEAD, &path), "HEAD");
            }
            if method == "PATCH" {
                refused(&Request::new(&Method::PUT, &path), "PUT for PATCH");
            }
            checked += 1;
        }
    }
    assert!(checked > 400, "{checked} variants");
}

/// The issue's expectations, spelled out: labeling stays open to annotators, administration
/// does not.
#[test]
fn the_roles_mean_what_label_studio_enterprise_says() {
    let t = table();
    let allowed = |role: &str, method: &str, path: &str| {
        assert_eq!(
            decide(&t, method, path, Some(role)),
            RoleDecision::Allow,
            "{role} {method} {path}"
        );
    };
    let refused = |role: &str, method: &str, path: &str, needed: Role| match decide(
        &t,
        method,
        path,
        Some(role),
    ) {
        RoleDecision::Refuse { needed: n, .. } => {
            assert_eq!(n, needed, "{role} {method} {path}")
        }
        RoleDecision::Allow => panic!("{role} {method} {path} allowed"),
    };
    // The annotator's day: the projects list, the labeling stream, their own account.
    for (method, path) in [
        ("GET", "/projects/"),
        ("GET", "/projects/3/data/"),
        ("GET", "/api/projects/"),
        ("GET", "/api/projects/3/"),
        ("GET", "/api/projects/3/next/"),
        ("GET", "/api/tasks/5/"),
        ("GET", "/api/tasks/"),
        ("POST", "/api/tasks/5/annotations/"),
        ("GET", "/api/tasks/5/annotations/"),
        ("PATCH", "/api/annotations/9/"),
        ("POST", "/api/tasks/5/drafts"),
        ("PATCH", "/api/drafts/4/"),
        ("GET", "/api/dm/views/"),
        ("POST", "/api/dm/views/"),
        ("GET", "/api/dm/actions/"),
        ("GET", "/api/dm/columns/"),
        ("GET", "/api/ml/?project=3"),
        ("GET", "/api/ml"),
        ("GET", "/api/current-user/whoami"),
        ("GET", "/user/account/"),
        ("PATCH", "/api/users/2/"),
        ("POST", "/api/users/2/avatar/"),
        ("GET", "/api/organizations/1/memberships"),
        ("GET", "/api/jwt/settings"),
        ("POST", "/api/token/"),
    ] {
        allowed("annotator", method, path);
    }
    for (method, path) in [
        ("POST", "/api/projects/"),
        ("DELETE", "/api/projects/3/"),
        ("PATCH", "/api/projects/3/"),
        ("PUT", "/api/projects/3/"),
        ("POST", "/api/projects/3/import"),
        ("GET", "/api/projects/3/export"),
        ("POST", "/api/projects/3/exports/"),
        ("GET", "/api/projects/3/exports/1/download"),
        ("POST", "/api/storages/s3/"),
        ("GET", "/api/storages/s3/?project=3"),
        ("POST", "/api/storages/export/localfiles"),
        ("POST", "/api/ml/"),
        ("POST", "/api/ml/4/train"),
        ("DELETE", "/api/ml/4"),
        ("POST", "/api/webhooks/"),
        ("POST", "/api/dm/actions/?id=delete_tasks&project=3"),
        ("DELETE", "/api/tasks/5/"),
        ("POST", "/api/tasks/"),
        ("GET", "/projects/3/settings/"),
        ("GET", "/projects/3/settings/labeling"),
    ] {
        refused("annotator", method, path, Role::Manager);
        refused("reviewer", method, path, Role::Manager);
        allowed("manager", method, path);
    }
    refused("annotator", "DELETE", "/api/annotations/9/", Role::Reviewer);
    allowed("reviewer", "DELETE", "/api/annotations/9/");
    // People and organization: administrators and up; owner-only stays the owner's.
    for (method, path) in [
        ("GET", "/people/"),
        ("GET", "/organization/"),
        ("PATCH", "/api/organizations/1/memberships"),
        ("DELETE", "/api/organizations/1/memberships/2/"),
        ("POST", "/api/users/"),
        ("DELETE", "/api/users/2/"),
        ("GET", "/api/invite"),
        ("POST", "/api/invite/reset-token"),
        ("POST", "/api/jwt/settings"),
    ] {
        refused("manager", method, path, Role::Administrator);
        allowed("administrator", method, path);
    }
    for (method, path) in [
        ("GET", "/admin/"),
        ("POST", "/admin/users/user/1/change/"),
        ("GET", "/django-rq/"),
        ("PATCH", "/api/organizations/1"),
    ] {
        refused("administrator", method, path, Role::Owner);
        allowed("owner", method, path);
    }
    // The labeling stream's next task is a data manager action: only that one is open.
    allowed(
        "annotator",
        "POST",
        "/api/dm/actions/?id=next_task&project=3",
    );
    allowed(
        "annotator",
        "POST",
        "/api/dm/actions?project=3&id=next_task",
    );
    for q in [
        "id=delete_tasks&project=3",
        "id=next_task&id=delete_tasks",
        "id=next_task&%69d=delete_tasks",
        "id=next_task;id=delete_tasks",
        "project=3",
    ] {
        refused(
            "annotator",
            "POST",
            &format!("/api/dm/actions/?{q}"),
            Role::Manager,
        );
    }
    refused(
        "annotator",
        "POST",
        "/api/dm/actions/next_task/form/?id=next_task",
        Role::Manager,
    );
    // No row: every role.
    allowed("annotator", "GET", "/");
    allowed("annotator", "GET", "/static/js/main.js");
}

#[test]
fn the_highest_role_over_the_methods_checked_is_required() {
    let t = table();
    let get = Method::GET;
    let over = [Method::DELETE];
    let req = Request {
        override_methods: &over,
        ..Request::new(&get, "/api/projects/3/")
    };
    assert!(matches!(
        t.decide(&req, Some(Role::Annotator)),
        RoleDecision::Refuse {
            needed: Role::Manager,
            ..
        }
    ));
    assert_eq!(t.decide(&req, Some(Role::Manager)), RoleDecision::Allow);
}

#[test]
fn a_replacement_table_is_checked_row_by_row() {
    let bad = r#"
[[route]]
methods = ["POST"]
path = "/api/x"
match = "exact"
role = "superuser"
family = "x"
basis = "guess"

[[route]]
methods = ["POST"]
path = "api/y"
match = "sideways"
role = "manager"
family = ""
basis = "inferred"
colour = "red"
"#;
    let e = RoleTable::parse(bad, "roles.toml").expect_err("refused");
    let text = e.to_string();
    for want in [
        "roles.toml",
        "route[0] (/api/x): field `role`: `superuser`",
        "field `basis`: `guess`",
        "route[1] (api/y): field `colour`: unknown field",
        "field `path`: `api/y` must start with `/`",
        "field `match`: `sideways`",
        "field `family`: must not be empty",
    ] {
        assert!(text.contains(want), "{want:?} not in {text}");
    }
    let ok = RoleTable::parse(
        "[[route]]\nmethods = [\"*\"]\npath = \"/x\"\nmatch = \"prefix\"\nrole = \"owner\"\nfamily = \"x\"\nbasis = \"inferred\"\n",
        "one.toml",
    )
    .expect("parses");
    assert_eq!(ok.len(), 1);
    assert!(matches!(
        decide(&ok, "GET", "/X/y", Some("administrator")),
        RoleDecision::Refuse {
            needed: Role::Owner,
            rule: 0
        }
    ));
    assert!(ok
        .explain(&Request::new(&Method::GET, "/x"), Some("administrator"))
        .contains("route[0]"));
}
