//! `config::lse_env::translate`: the Label Studio variables (booleans,
//! `;` lists, the workspaces JSON, connection options) never panic on any
//! value, and a boolean either parses or is reported.
#![no_main]

use authgate::config::dotenv::{Entry, Origin};
use authgate::config::lse_env;
use libfuzzer_sys::fuzz_target;

const VARS: &[&str] = &[
    "AUTH_LDAP_BIND_DN",
    "AUTH_LDAP_BIND_PASSWORD",
    "AUTH_LDAP_CONNECTION_OPTIONS",
    "AUTH_LDAP_ENABLED",
    "AUTH_LDAP_GROUP_SEARCH_BASE_DN",
    "AUTH_LDAP_GROUP_SEARCH_FILTER_STR",
    "AUTH_LDAP_GROUP_TYPE",
    "AUTH_LDAP_ORGANIZATION_OWNER_EMAIL",
    "AUTH_LDAP_ORGANIZATION_ROLE_ADMINISTRATOR",
    "AUTH_LDAP_ORGANIZATION_ROLE_ANNOTATOR",
    "AUTH_LDAP_ORGANIZATION_ROLE_DEACTIVATED",
    "AUTH_LDAP_ORGANIZATION_ROLE_MANAGER",
    "AUTH_LDAP_ORGANIZATION_ROLE_NOT_ACTIVATED",
    "AUTH_LDAP_ORGANIZATION_ROLE_REVIEWER",
    "AUTH_LDAP_ORGANIZATION_WORKSPACES",
    "AUTH_LDAP_SERVER_URI",
    "AUTH_LDAP_START_TLS",
    "AUTH_LDAP_USER_ATTR_MAP_EMAIL",
    "AUTH_LDAP_USER_ATTR_MAP_FIRST_NAME",
    "AUTH_LDAP_USER_ATTR_MAP_LAST_NAME",
    "AUTH_LDAP_USER_ATTR_MAP_USERNAME",
    "AUTH_LDAP_USER_DN_TEMPLATE",
    "AUTH_LDAP_USER_QUERY_FIELD",
    "AUTH_LDAP_USER_SEARCH_BASES",
    "DISABLE_SIGNUP_WITHOUT_LINK",
    "MANUAL_PROJECT_MEMBER_MANAGEMENT",
    "MANUAL_ROLE_MANAGEMENT",
    "MANUAL_WORKSPACE_MANAGEMENT",
    "USE_USERNAME_FOR_LOGIN",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // Records `<selector byte><value>` separated by NUL: each sets one
    // variable (the selector picks which).
    let mut entries = Vec::new();
    for (line, record) in text.split('\0').enumerate() {
        let mut chars = record.chars();
        let Some(sel) = chars.next() else {
            continue;
        };
        let var = VARS[(sel as usize) % VARS.len()];
        assert!(lse_env::is_lse_var(var), "{var} is an LSE variable");
        entries.push(Entry {
            key: var.to_owned(),
            value: chars.as_str().to_owned(),
            origin: Origin::File {
                path: "fuzz.env".into(),
                line: line + 1,
            },
        });
    }
    let _ = lse_env::translate(&entries);
    let _ = lse_env::parse_bool(text);
    for item in lse_env::split_list(text) {
        assert!(!item.is_empty() && !item.contains(';'));
        assert_eq!(item.trim(), item);
    }
});
