//! The Label Studio Enterprise variables, read verbatim.
//!
//! Operators hand us the env file they already give Label Studio Enterprise
//! (`AUTH_LDAP_*`, `MANUAL_*_MANAGEMENT`, ...). This module translates those
//! variables into the same keys a TOML file would set, so everything after
//! it sees one configuration shape. It remembers which variable set which
//! key so validation errors can name the variable and its line. It does no
//! I/O and knows nothing about LDAP or policy beyond the key names.

use std::collections::BTreeMap;

use serde_json::{json, Map, Value};

use super::dotenv::{Entry, Origin};

/// A problem with one variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var} ({origin}): {message}")]
pub struct Error {
    pub var: String,
    pub origin: Origin,
    pub message: String,
}

/// What the Label Studio variables contributed.
#[derive(Debug, Default)]
pub struct Layer {
    /// Nested keys, e.g. `{"ldap": {"enabled": true}}`.
    pub values: Map<String, Value>,
    /// Dotted key path (`ldap.enabled`, `mapping.roles.reviewer`) → where it
    /// was set (`variable AUTH_LDAP_ENABLED at lse.env:1`).
    pub origins: BTreeMap<String, String>,
}

/// How a variable's text becomes a value.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Bool,
    /// `;`-separated list, items trimmed, empty items dropped.
    List,
    /// Workspace JSON: title → `;`-separated groups (or an array).
    Workspaces,
    /// `OPT_X_TLS_CACERTFILE=...;OPT_X_TLS_REQUIRE_CERT=...`
    ConnectionOptions,
}

/// Every variable of the seed documentation, and where it lands.
const VARS: &[(&str, &str, Kind)] = &[
    ("AUTH_LDAP_ENABLED", "ldap.enabled", Kind::Bool),
    ("AUTH_LDAP_SERVER_URI", "ldap.server_uri", Kind::Str),
    ("AUTH_LDAP_BIND_DN", "ldap.bind_dn", Kind::Str),
    ("AUTH_LDAP_BIND_PASSWORD", "ldap.bind_password", Kind::Str),
    ("AUTH_LDAP_START_TLS", "ldap.start_tls", Kind::Bool),
    (
        "USE_USERNAME_FOR_LOGIN",
        "ldap.use_username_for_login",
        Kind::Bool,
    ),
    (
        "AUTH_LDAP_USER_DN_TEMPLATE",
        "ldap.user_dn_template",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_USER_SEARCH_BASES",
        "ldap.user_search_bases",
        Kind::List,
    ),
    (
        "AUTH_LDAP_ORGANIZATION_OWNER_EMAIL",
        "ldap.organization_owner_email",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_USER_ATTR_MAP_FIRST_NAME",
        "ldap.attr_first_name",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_USER_ATTR_MAP_LAST_NAME",
        "ldap.attr_last_name",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_USER_ATTR_MAP_EMAIL",
        "ldap.attr_email",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_USER_ATTR_MAP_USERNAME",
        "ldap.attr_username",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_USER_QUERY_FIELD",
        "ldap.user_query_field",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_GROUP_SEARCH_BASE_DN",
        "ldap.group_search_base_dn",
        Kind::Str,
    ),
    (
        "AUTH_LDAP_GROUP_SEARCH_FILTER_STR",
        "ldap.group_search_filter",
        Kind::Str,
    ),
    ("AUTH_LDAP_GROUP_TYPE", "ldap.group_type", Kind::Str),
    (
        "AUTH_LDAP_ORGANIZATION_ROLE_ADMINISTRATOR",
        "mapping.roles.administrator",
        Kind::List,
    ),
    (
        "AUTH_LDAP_ORGANIZATION_ROLE_MANAGER",
        "mapping.roles.manager",
        Kind::List,
    ),
    (
        "AUTH_LDAP_ORGANIZATION_ROLE_REVIEWER",
        "mapping.roles.reviewer",
        Kind::List,
    ),
    (
        "AUTH_LDAP_ORGANIZATION_ROLE_ANNOTATOR",
        "mapping.roles.annotator",
        Kind::List,
    ),
    (
        "AUTH_LDAP_ORGANIZATION_ROLE_NOT_ACTIVATED",
        "mapping.roles.not_activated",
        Kind::List,
    ),
    (
        "AUTH_LDAP_ORGANIZATION_ROLE_DEACTIVATED",
        "mapping.roles.deactivated",
        Kind::List,
    ),
    (
        "AUTH_LDAP_ORGANIZATION_WORKSPACES",
        "mapping.workspaces",
        Kind::Workspaces,
    ),
    (
        "AUTH_LDAP_CONNECTION_OPTIONS",
        "ldap",
        Kind::ConnectionOptions,
    ),
    (
        "MANUAL_PROJECT_MEMBER_MANAGEMENT",
        "policy.manual_project_member_management",
        Kind::Bool,
    ),
    (
        "MANUAL_WORKSPACE_MANAGEMENT",
        "policy.manual_workspace_management",
        Kind::Bool,
    ),
    (
        "MANUAL_ROLE_MANAGEMENT",
        "policy.manual_role_management",
        Kind::Bool,
    ),
    (
        "DISABLE_SIGNUP_WITHOUT_LINK",
        "policy.disable_signup_without_link",
        Kind::Bool,
    ),
];

/// True when `name` is one of the Label Studio variables we read.
pub fn is_lse_var(name: &str) -> bool {
    VARS.iter().any(|(v, _, _)| *v == name)
}

/// Translates the variables present in `env` (later entries win). Every
/// problem is reported, not only the first.
pub fn translate(env: &[Entry]) -> Result<Layer, Vec<Error>> {
    let mut latest: BTreeMap<&str, &Entry> = BTreeMap::new();
    for e in env {
        if is_lse_var(&e.key) {
            latest.insert(e.key.as_str(), e);
        }
    }
    let mut layer = Layer::default();
    let mut errors = Vec::new();
    for (var, key, kind) in VARS {
        let Some(entry) = latest.get(var) else {
            continue;
        };
        let err = |message: String| Error {
            var: var.to_string(),
            origin: entry.origin.clone(),
            message,
        };
        let label = entry.origin.describe(var);
        let raw = entry.value.as_str();
        let result: Result<Vec<(String, Value)>, String> = match kind {
            Kind::Str => Ok(vec![(
                key.to_string(),
                Value::String(raw.trim().to_string()),
            )]),
            Kind::Bool => parse_bool(raw).map(|b| vec![(key.to_string(), Value::Bool(b))]),
            Kind::List => Ok(vec![(key.to_string(), json!(split_list(raw)))]),
            Kind::Workspaces => parse_workspaces(raw).map(|ws| {
                ws.into_iter()
                    .map(|(title, groups)| (format!("{key}.{title}"), json!(groups)))
                    .collect()
            }),
            Kind::ConnectionOptions => parse_connection_options(raw),
        };
        match result {
            Ok(pairs) => {
                if matches!(kind, Kind::Workspaces) {
                    layer.origins.insert(key.to_string(), label.clone());
                }
                for (path, value) in pairs {
                    layer.origins.insert(path.clone(), label.clone());
                    insert_path(&mut layer.values, &path, value);
                }
            }
            Err(message) => errors.push(err(message)),
        }
    }
    if errors.is_empty() {
        Ok(layer)
    } else {
        Err(errors)
    }
}

/// Label Studio's `get_bool_env`: 1/true/yes/on and 0/false/no/off, any case.
pub fn parse_bool(raw: &str) -> Result<bool, String> {
    match raw.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" | "y" | "t" => Ok(true),
        "0" | "false" | "no" | "off" | "n" | "f" | "" => Ok(false),
        other => Err(format!(
            "expected a boolean (1/0, true/false), found {other:?}"
        )),
    }
}

/// `;`-separated values; each trimmed (the seed's DNs carry trailing spaces).
pub fn split_list(raw: &str) -> Vec<String> {
    raw.split(';')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

fn parse_workspaces(raw: &str) -> Result<Vec<(String, Vec<String>)>, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Ok(Vec::new());
    }
    let value: Value = serde_json::from_str(raw).map_err(|e| format!("invalid JSON: {e}"))?;
    let Value::Object(obj) = value else {
        return Err("expected a JSON object of workspace title to groups".into());
    };
    let mut out = Vec::new();
    for (title, groups) in obj {
        if title.trim().is_empty() {
            return Err(format!("invalid workspace title {title:?}"));
        }
        let groups = match groups {
            Value::String(s) => split_list(&s),
            Value::Array(items) => {
                let mut v = Vec::new();
                for item in items {
                    match item {
                        Value::String(s) => v.extend(split_list(&s)),
                        other => {
                            return Err(format!(
                                "workspace {title:?}: expected group strings, found {other}"
                            ))
                        }
                    }
                }
                v
            }
            other => {
                return Err(format!(
                    "workspace {title:?}: expected a `;`-separated string of groups, found {other}"
                ))
            }
        };
        out.push((title, groups));
    }
    Ok(out)
}

/// python-ldap option names as django-auth-ldap's `AUTH_LDAP_CONNECTION_OPTIONS`
/// carries them. Options that rustls makes meaningless are accepted and ignored.
fn parse_connection_options(raw: &str) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    for item in split_list(raw) {
        let Some((name, value)) = item.split_once('=') else {
            return Err(format!("expected OPTION=value, found {item:?}"));
        };
        let (name, value) = (name.trim(), value.trim());
        match name {
            "OPT_X_TLS_CACERTFILE" => out.push(("ldap.ca_file".into(), json!(value))),
            // As written (`try`, `OPT_X_TLS_TRY`, `ldap.OPT_X_TLS_TRY`, `4`):
            // `validate::RequireCert::parse` reads every spelling, the same
            // for this variable and for the TOML key.
            "OPT_X_TLS_REQUIRE_CERT" => out.push(("ldap.require_cert".into(), json!(value))),
            // A fresh TLS context per connection is what rustls always does.
            "OPT_X_TLS_NEWCTX" | "OPT_REFERRALS" | "OPT_PROTOCOL_VERSION" => {}
            "OPT_NETWORK_TIMEOUT" | "OPT_TIMEOUT" => {
                let secs: f64 = value
                    .parse()
                    .map_err(|_| format!("{name}: expected seconds, found {value:?}"))?;
                if !(secs > 0.0 && secs < 3600.0) {
                    return Err(format!("{name}: expected 0 < seconds < 3600, found {value}"));
                }
                out.push(("ldap.timeout".into(), json!(format!("{}ms", (secs * 1000.0) as u64))));
            }
            other => {
                return Err(format!(
                    "unsupported option {other:?} (supported: OPT_X_TLS_CACERTFILE, OPT_X_TLS_REQUIRE_CERT, OPT_X_TLS_NEWCTX, OPT_NETWORK_TIMEOUT, OPT_TIMEOUT, OPT_REFERRALS)"
                ))
            }
        }
    }
    Ok(out)
}

/// Inserts `value` at a dotted path; only the first two dots split (workspace
/// titles may contain dots).
fn insert_path(root: &mut Map<String, Value>, path: &str, value: Value) {
    let mut cur = root;
    let segments: Vec<&str> = path.splitn(3, '.').collect();
    let (last, init) = match segments.split_last() {
        Some(x) => x,
        None => return,
    };
    for seg in init {
        let entry = cur
            .entry(seg.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        if !entry.is_object() {
            *entry = Value::Object(Map::new());
        }
        match entry {
            Value::Object(m) => cur = m,
            _ => return,
        }
    }
    cur.insert(last.to_string(), value);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<Entry> {
        pairs
            .iter()
            .map(|(k, v)| Entry {
                key: k.to_string(),
                value: v.to_string(),
                origin: Origin::Environment,
            })
            .collect()
    }

    #[test]
    fn booleans_follow_label_studio() {
        for t in ["1", "true", "True", "yes", "on"] {
            assert_eq!(parse_bool(t), Ok(true), "{t}");
        }
        for f in ["0", "false", "FALSE", "no", "off", ""] {
            assert_eq!(parse_bool(f), Ok(false), "{f}");
        }
        assert!(parse_bool("maybe").is_err());
    }

    #[test]
    fn lists_trim_and_drop_empty_items() {
        assert_eq!(split_list(" a ;b; ;c "), vec!["a", "b", "c"]);
        assert!(split_list("").is_empty());
    }

    #[test]
    fn errors_name_the_variable() {
        let errs = translate(&env(&[
            ("AUTH_LDAP_ENABLED", "perhaps"),
            ("AUTH_LDAP_ORGANIZATION_WORKSPACES", "{not json"),
        ]))
        .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert!(errs.iter().any(|e| e.var == "AUTH_LDAP_ENABLED"));
        assert!(errs
            .iter()
            .any(|e| e.var == "AUTH_LDAP_ORGANIZATION_WORKSPACES" && e.message.contains("JSON")));
    }

    #[test]
    fn workspace_titles_with_dots_stay_whole() {
        let layer = translate(&env(&[(
            "AUTH_LDAP_ORGANIZATION_WORKSPACES",
            r#"{"Team v1.2": ["cn=a,dc=x", "b;c"]}"#,
        )]))
        .expect("valid");
        assert_eq!(
            layer.values["mapping"]["workspaces"]["Team v1.2"],
            json!(["cn=a,dc=x", "b", "c"])
        );
    }

    #[test]
    fn connection_options() {
        let layer = translate(&env(&[(
            "AUTH_LDAP_CONNECTION_OPTIONS",
            "OPT_X_TLS_CACERTFILE=/ca.crt;OPT_X_TLS_NEWCTX=0;OPT_X_TLS_REQUIRE_CERT=OPT_X_TLS_NEVER",
        )]))
        .expect("valid");
        assert_eq!(layer.values["ldap"]["ca_file"], json!("/ca.crt"));
        assert_eq!(
            layer.values["ldap"]["require_cert"],
            json!("OPT_X_TLS_NEVER")
        );
        assert!(translate(&env(&[("AUTH_LDAP_CONNECTION_OPTIONS", "OPT_BOGUS=1")])).is_err());
    }
}
