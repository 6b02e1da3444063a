//! Configuration: the Label Studio Enterprise example env file read
//! verbatim into typed values, precedence of the sources, and errors that
//! are one line naming the key and where its value came from — through
//! `config::load` and through the real binary (exit code 2, at start).
//!
//! About the fixture's CA file: `tests/fixtures/lse-example.env` is the LSE
//! documentation's example, byte for byte, and its
//! `AUTH_LDAP_CONNECTION_OPTIONS` names `/path/to/cert.crt`, which does not
//! exist. With LDAP enabled that is a configuration error, reported at start
//! by `serve` and `check-config` alike, naming the variable, its file and
//! line, and the missing path: that is what an operator who pastes the
//! documentation's example needs to see. So the unchanged file is asserted
//! to fail with exactly that one error, and the typed values of every
//! variable are checked by loading the same unchanged file with one
//! process-environment override, `AUTH_LDAP_CONNECTION_OPTIONS` pointing at
//! an existing CA file (the process environment wins over `--env-file`);
//! what the file's own connection options parse to is checked from that
//! error and from the file loaded with LDAP switched off.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use authgate::config::{self, Config, Errors, Sources};
use authgate::ldap::{QueryField, RequireCert};
use authgate::mapping::Role;
use common::gate::{load_config, Keys, BIN};
use common::pki::CA_PEM;
use common::process::Proc;

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/fixtures/lse-example.env"
);
const EXAMPLE_TOML: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/authgate.example.toml");

/// The smallest complete configuration: fresh keys, everything else default.
fn base_toml(keys: &Keys) -> String {
    format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[session]\nsecret_file = \"{}\"\n\n[identity]\nsigning_key = \"{}\"\n",
        keys.session_key.display(),
        keys.signing_key.display()
    )
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn load_text(text: &str, env: &[(&str, &str)], env_file: Option<&Path>) -> Result<Config, Errors> {
    load_config(text, vars(env), env_file.map(Path::to_path_buf))
}

/// The shipped example TOML plus the unchanged LSE fixture, keys from the
/// environment, as `scripts/test` runs check-config.
fn load_fixture(keys: &Keys, extra_env: &[(&str, &str)]) -> Result<Config, Errors> {
    let mut env = vec![
        (
            "AUTHGATE_IDENTITY__SIGNING_KEY".to_string(),
            keys.signing_key.display().to_string(),
        ),
        (
            "AUTHGATE_SESSION__SECRET_FILE".to_string(),
            keys.session_key.display().to_string(),
        ),
    ];
    env.extend(vars(extra_env));
    config::load(&Sources {
        config_file: Some(PathBuf::from(EXAMPLE_TOML)),
        config_text: None,
        env,
        env_file: Some(PathBuf::from(FIXTURE)),
    })
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// Every problem, each asserted to be exactly one line.
fn problems(e: &Errors) -> Vec<String> {
    let text = e.to_string();
    assert_eq!(
        text.lines().count(),
        e.0.len(),
        "one line per problem:\n{text}"
    );
    for line in text.lines() {
        assert!(line.starts_with("configuration error: "), "{line}");
    }
    text.lines().map(str::to_string).collect()
}

/// The only problem.
fn only(e: &Errors) -> String {
    let lines = problems(e);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    lines[0].clone()
}

fn role(cfg: &Config, group: &str) -> Option<Role> {
    cfg.mapping.resolve(None, &[group.to_string()]).role
}

#[test]
fn lse_example_env_file_is_read_into_every_typed_value() {
    let keys = Keys::new();
    let ca = write(keys.dir.path(), "ldap-ca.crt", CA_PEM);
    // The one override (see the module comment): the CA file must exist.
    let options = format!("OPT_X_TLS_CACERTFILE={};OPT_X_TLS_NEWCTX=0", ca.display());
    let cfg = load_fixture(&keys, &[("AUTH_LDAP_CONNECTION_OPTIONS", &options)])
        .unwrap_or_else(|e| panic!("{e}"));
    let l = &cfg.ldap;

    // AUTH_LDAP_ENABLED=1
    assert!(l.enabled);
    // AUTH_LDAP_SERVER_URI, after a comment line.
    assert_eq!(l.server_uri, "ldaps://ldap.example.com");
    // AUTH_LDAP_BIND_DN, after a comment line with trailing spaces.
    assert_eq!(
        l.bind_dn,
        "uid=user,ou=sysadmins,o=123abc,dc=zexample,dc=com"
    );
    assert_eq!(l.bind_password.expose(), "password123");
    assert!(!format!("{:?}", cfg.ldap).contains("password123"));
    // USE_USERNAME_FOR_LOGIN=1
    assert!(l.use_username_for_login);
    // A template, so not search mode.
    assert_eq!(
        l.user_dn_template.as_deref(),
        Some("uid=%(user)s,ou=Users,o=123abc,dc=example,dc=com")
    );
    assert!(l.user_search_bases.is_empty());
    assert_eq!(
        l.organization_owner_email.as_deref(),
        Some("heartex@heartex.net")
    );
    assert_eq!(cfg.mapping.owner_email(), Some("heartex@heartex.net"));
    assert_eq!(
        cfg.mapping
            .resolve(Some("HeartEx@Heartex.NET"), &["cn=nobody,dc=x".into()])
            .role,
        Some(Role::Owner),
        "the owner is matched case-insensitively"
    );
    assert_eq!(l.attr_first_name, "firstName");
    assert_eq!(l.attr_last_name, "lastName");
    assert_eq!(l.attr_email, "mail");
    assert_eq!(l.attr_username, "sAMAccountName");
    assert_eq!(l.user_query_field, QueryField::Email);
    assert_eq!(
        l.group_search_base_dn,
        "ou=Users,o=group-id,dc=example,dc=com"
    );
    assert_eq!(l.group_search_filter, "(objectClass=groupOfNames)");
    assert_eq!(l.group_type, "ou");
    assert!(!l.start_tls);

    // The role lists: values with trailing spaces are trimmed, the
    // annotator list is split at `;`, and DNs match normalized.
    let roles = &cfg.raw.mapping.roles;
    assert_eq!(
        roles["administrator"],
        ["cn=admins,ou=users,o=123abc,dc=example,dc=com"]
    );
    assert_eq!(
        roles["manager"],
        ["cn=managers,ou=users,o=123abc,dc=example,dc=com"]
    );
    assert_eq!(
        roles["not_activated"],
        ["cn=not,ou=users,o=123abc,dc=example,dc=com"]
    );
    assert_eq!(
        roles["annotator"],
        [
            "cn=annotators,ou=users,o=123abc,dc=example,dc=com",
            "cn=guests,ou=users,o=123abc,dc=example,dc=com"
        ]
    );
    let cases = [
        (
            "cn=admins,ou=users,o=123abc,dc=example,dc=com",
            Role::Administrator,
        ),
        (
            "CN=Admins, OU=Users, O=123abc, DC=Example, DC=com",
            Role::Administrator,
        ),
        (
            "cn=managers,ou=users,o=123abc,dc=example,dc=com",
            Role::Manager,
        ),
        (
            "cn=reviewers,ou=users,o=123abc,dc=example,dc=com",
            Role::Reviewer,
        ),
        (
            "cn=annotators,ou=users,o=123abc,dc=example,dc=com",
            Role::Annotator,
        ),
        (
            "cn=guests,ou=users,o=123abc,dc=example,dc=com",
            Role::Annotator,
        ),
        (
            "cn=not,ou=users,o=123abc,dc=example,dc=com",
            Role::NotActivated,
        ),
        (
            "cn=deactivated,ou=users,o=123abc,dc=example,dc=com",
            Role::Deactivated,
        ),
        // MANUAL_ROLE_MANAGEMENT=0: no mapped group means deactivated.
        (
            "cn=strangers,ou=users,o=123abc,dc=example,dc=com",
            Role::Deactivated,
        ),
    ];
    for (group, want) in cases {
        assert_eq!(role(&cfg, group), Some(want), "{group}");
    }
    let both = cfg.mapping.resolve(
        None,
        &[
            "cn=admins,ou=users,o=123abc,dc=example,dc=com".into(),
            "cn=deactivated,ou=users,o=123abc,dc=example,dc=com".into(),
        ],
    );
    assert_eq!(both.role, Some(Role::Deactivated), "deactivated wins");

    // The workspace JSON: title → `;`-separated groups.
    let ws = &cfg.raw.mapping.workspaces;
    assert_eq!(ws.len(), 2);
    assert_eq!(
        ws["Workspace 1"],
        ["cn=team1,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com"]
    );
    assert_eq!(
        ws["Workspace 2"],
        ["cn=team2,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com"]
    );
    let r = cfg.mapping.resolve(
        None,
        &[
            "cn=annotators,ou=users,o=123abc,dc=example,dc=com".into(),
            "cn=team2,ou=users,o=60cbc901ec2e8e387a3b2d3e,dc=jumpcloud,dc=com".into(),
        ],
    );
    assert_eq!(r.role, Some(Role::Annotator));
    assert_eq!(r.workspaces, ["Workspace 2"]);

    // MANUAL_*_MANAGEMENT=0
    assert!(!cfg.policy.manual_project_member_management);
    assert!(!cfg.policy.manual_workspace_management);
    assert!(!cfg.policy.manual_role_management);
    assert!(!cfg.policy.disable_signup_without_link);

    // AUTH_LDAP_CONNECTION_OPTIONS: the CA file, and no REQUIRE_CERT option
    // means the safe default (verify).
    assert_eq!(l.ca_file.as_deref(), Some(ca.as_path()));
    assert_eq!(l.require_cert, RequireCert::Demand);

    // Each value remembers its variable and line.
    for (key, var, line) in [
        ("ldap.enabled", "AUTH_LDAP_ENABLED", 1),
        ("ldap.server_uri", "AUTH_LDAP_SERVER_URI", 4),
        ("ldap.bind_dn", "AUTH_LDAP_BIND_DN", 6),
        ("ldap.user_dn_template", "AUTH_LDAP_USER_DN_TEMPLATE", 13),
        (
            "mapping.roles.manager",
            "AUTH_LDAP_ORGANIZATION_ROLE_MANAGER",
            37,
        ),
        (
            "mapping.workspaces",
            "AUTH_LDAP_ORGANIZATION_WORKSPACES",
            43,
        ),
        (
            "policy.manual_role_management",
            "MANUAL_ROLE_MANAGEMENT",
            47,
        ),
    ] {
        assert_eq!(
            cfg.source_of(key),
            format!("variable {var} at {FIXTURE}:{line}"),
            "{key}"
        );
    }
    assert_eq!(
        cfg.source_of("ldap.ca_file"),
        "environment variable AUTH_LDAP_CONNECTION_OPTIONS"
    );
    // Not in the env file: from the TOML file.
    assert!(cfg
        .source_of("server.listen")
        .ends_with("authgate.example.toml:8"));
}

#[test]
fn lse_example_env_file_unchanged_names_the_missing_ca_file() {
    let keys = Keys::new();
    let err = load_fixture(&keys, &[]).expect_err("/path/to/cert.crt does not exist");
    let line = only(&err);
    assert_eq!(err.0[0].key, "ldap.ca_file");
    assert!(
        line.contains(&format!(
            "variable AUTH_LDAP_CONNECTION_OPTIONS at {FIXTURE}:49"
        )),
        "{line}"
    );
    assert!(line.contains("\"/path/to/cert.crt\""), "{line}");
    assert!(line.contains("No such file"), "{line}");

    // With LDAP off the CA file is not needed, and the file's own
    // connection options are what they say.
    let cfg = load_fixture(&keys, &[("AUTH_LDAP_ENABLED", "0")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.ldap.enabled);
    assert_eq!(
        cfg.ldap.ca_file.as_deref(),
        Some(Path::new("/path/to/cert.crt"))
    );
    assert_eq!(cfg.ldap.require_cert, RequireCert::Demand);
    assert!(cfg
        .source_of("ldap.ca_file")
        .ends_with("lse-example.env:49"));
}

#[test]
fn empty_user_dn_template_means_search_mode() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = write(
        dir.path(),
        "lse.env",
        "AUTH_LDAP_ENABLED=1\n\
         AUTH_LDAP_SERVER_URI=ldaps://ldap.example.com\n\
         # empty: search the bases below\n\
         AUTH_LDAP_USER_DN_TEMPLATE=\n\
         AUTH_LDAP_USER_SEARCH_BASES=ou=Users,dc=example,dc=com ;ou=Staff,dc=example,dc=com; \n\
         AUTH_LDAP_ORGANIZATION_OWNER_EMAIL=Owner@Example.COM \n\
         AUTH_LDAP_USER_QUERY_FIELD=username\n\
         AUTH_LDAP_CONNECTION_OPTIONS=OPT_X_TLS_REQUIRE_CERT=OPT_X_TLS_NEVER;OPT_NETWORK_TIMEOUT=2.5\n",
    );
    // The TOML file sets a template; the (empty) variable wins over it.
    let text =
        base_toml(&keys) + "[ldap]\nuser_dn_template = \"uid=%(user)s,ou=Old,dc=example,dc=com\"\n";
    let cfg = load_text(&text, &[], Some(&env_file)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.ldap.user_dn_template, None, "search mode");
    assert_eq!(
        cfg.ldap.user_search_bases,
        ["ou=Users,dc=example,dc=com", "ou=Staff,dc=example,dc=com"]
    );
    assert_eq!(
        cfg.ldap.organization_owner_email.as_deref(),
        Some("owner@example.com")
    );
    assert_eq!(cfg.ldap.user_query_field, QueryField::Username);
    assert_eq!(cfg.ldap.require_cert, RequireCert::Never);
    assert_eq!(cfg.ldap.timeout, std::time::Duration::from_millis(2500));
    assert!(
        cfg.warnings.iter().any(|w| w.contains("NOT verified")),
        "{:?}",
        cfg.warnings
    );

    // Search mode without a search base is an error that names the template's source.
    let err = load_text(
        &base_toml(&keys),
        &[
            ("AUTH_LDAP_ENABLED", "1"),
            ("AUTH_LDAP_SERVER_URI", "ldaps://ldap.example.com"),
            ("AUTH_LDAP_USER_DN_TEMPLATE", ""),
        ],
        None,
    )
    .expect_err("no search base");
    let line = only(&err);
    assert!(line.contains("ldap.user_search_bases"), "{line}");
    assert!(
        line.contains("environment variable AUTH_LDAP_USER_DN_TEMPLATE"),
        "{line}"
    );
}

/// OpenLDAP's TLS_REQCERT (ldap.conf(5)): `try`, `demand` and `hard` end the
/// session on a bad certificate, so they verify; only `allow` and `never`
/// carry on, and they are warned about, naming the variable and the risk.
#[test]
fn require_cert_try_demand_hard_verify_allow_never_warn() {
    let keys = Keys::new();
    let ca = write(keys.dir.path(), "ldap-ca.crt", CA_PEM);
    for (written, mode, verified) in [
        ("try", RequireCert::Try, true),
        ("OPT_X_TLS_TRY", RequireCert::Try, true),
        ("ldap.OPT_X_TLS_TRY", RequireCert::Try, true),
        ("4", RequireCert::Try, true),
        ("demand", RequireCert::Demand, true),
        ("ldap.OPT_X_TLS_DEMAND", RequireCert::Demand, true),
        ("2", RequireCert::Demand, true),
        ("hard", RequireCert::Hard, true),
        ("1", RequireCert::Hard, true),
        ("allow", RequireCert::Allow, false),
        ("ldap.OPT_X_TLS_ALLOW", RequireCert::Allow, false),
        ("3", RequireCert::Allow, false),
        ("never", RequireCert::Never, false),
        ("OPT_X_TLS_NEVER", RequireCert::Never, false),
        ("0", RequireCert::Never, false),
    ] {
        let options = format!(
            "OPT_X_TLS_CACERTFILE={};OPT_X_TLS_REQUIRE_CERT={written}",
            ca.display()
        );
        let cfg = load_text(
            &base_toml(&keys),
            &[
                ("AUTH_LDAP_ENABLED", "1"),
                ("AUTH_LDAP_SERVER_URI", "ldaps://ldap.example.com"),
                (
                    "AUTH_LDAP_USER_DN_TEMPLATE",
                    "uid=%(user)s,ou=users,dc=example,dc=com",
                ),
                ("AUTH_LDAP_CONNECTION_OPTIONS", &options),
            ],
            None,
        )
        .unwrap_or_else(|e| panic!("{written}: {e}"));
        assert_eq!(cfg.ldap.require_cert, mode, "{written}");
        assert_eq!(cfg.ldap.require_cert.verifies(), verified, "{written}");
        let warning = cfg.warnings.iter().find(|w| w.contains("NOT verified"));
        let effect = cfg.in_effect().join("\n");
        if verified {
            assert!(warning.is_none(), "{written}: {:?}", cfg.warnings);
            assert!(
                effect.contains(&format!(
                    "ldap TLS certificate: verified (ldap.require_cert = {}",
                    mode.as_str()
                )),
                "{written}: {effect}"
            );
        } else {
            let w = warning.unwrap_or_else(|| panic!("{written}: no warning {:?}", cfg.warnings));
            assert!(w.contains(written), "{w}");
            assert!(
                w.contains("environment variable AUTH_LDAP_CONNECTION_OPTIONS"),
                "{w}"
            );
            assert!(
                w.contains(
                    "whoever answers on ldaps://ldap.example.com receives every LDAP password"
                ),
                "{w}"
            );
            assert!(
                effect.contains("ldap TLS certificate: NOT verified"),
                "{written}: {effect}"
            );
        }
    }

    // The TOML key reads the same spellings; a wrong one names key and line.
    let ldap = |value: &str| {
        format!(
            "{}[ldap]\nenabled = true\nserver_uri = \"ldaps://ldap.example.com\"\nuser_dn_template = \"uid=%(user)s,dc=example,dc=com\"\nca_file = \"{}\"\nrequire_cert = \"{value}\"\n",
            base_toml(&keys),
            ca.display()
        )
    };
    let cfg = load_text(&ldap("ldap.OPT_X_TLS_TRY"), &[], None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.ldap.require_cert, RequireCert::Try);
    let err = load_text(&ldap("sometimes"), &[], None).expect_err("not a mode");
    let line = only(&err);
    assert!(
        line.starts_with("configuration error: ldap.require_cert (from test.toml:"),
        "{line}"
    );
    assert!(line.contains("\"sometimes\""), "{line}");
}

/// `check-config` prints the TLS mode in effect (as TOML comments) and the
/// warning for a mode that does not verify.
#[test]
fn check_config_shows_the_ldap_certificate_mode_in_effect() {
    let keys = Keys::new();
    let ca = write(keys.dir.path(), "ldap-ca.crt", CA_PEM);
    let cfg = write(keys.dir.path(), "authgate.toml", &base_toml(&keys));
    for (mode, shown) in [
        (
            "try",
            "# ldap TLS certificate: verified (ldap.require_cert = try",
        ),
        (
            "ldap.OPT_X_TLS_ALLOW",
            "# ldap TLS certificate: NOT verified (ldap.require_cert = allow",
        ),
    ] {
        let out = authgate_cmd()
            .args(["check-config", "--config", &cfg.display().to_string()])
            .env("AUTH_LDAP_ENABLED", "1")
            .env("AUTH_LDAP_SERVER_URI", "ldaps://ldap.example.com")
            .env(
                "AUTH_LDAP_USER_DN_TEMPLATE",
                "uid=%(user)s,dc=example,dc=com",
            )
            .env(
                "AUTH_LDAP_CONNECTION_OPTIONS",
                format!(
                    "OPT_X_TLS_CACERTFILE={};OPT_X_TLS_REQUIRE_CERT={mode}",
                    ca.display()
                ),
            )
            .output()
            .expect("run");
        let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        assert!(stdout.contains(shown), "{mode}: {stdout}");
        toml::from_str::<toml::Value>(&stdout).expect("stdout is still TOML");
        let warned = stderr
            .lines()
            .any(|l| l.starts_with("warning: ldap.require_cert") && l.contains("NOT verified"));
        assert_eq!(warned, mode != "try", "{mode}: {stderr}");
    }
}

/// `AUTH_LDAP_SERVER_URI` may list several URIs (spaces or commas, as
/// OpenLDAP reads it): each is checked, in order; a wrong one is named.
#[test]
fn several_ldap_server_uris_are_read_in_order_and_each_checked() {
    let keys = Keys::new();
    let ca = write(keys.dir.path(), "ldap-ca.crt", CA_PEM);
    let options = format!("OPT_X_TLS_CACERTFILE={}", ca.display());
    let env = |uris: &'static str| {
        vec![
            ("AUTH_LDAP_ENABLED", "1"),
            ("AUTH_LDAP_SERVER_URI", uris),
            (
                "AUTH_LDAP_USER_DN_TEMPLATE",
                "uid=%(user)s,ou=users,dc=example,dc=com",
            ),
        ]
    };
    let mut e = env(" ldaps://ldap1.example.com  ldaps://ldap2.example.com:636/,ldap://[::1]:389 ");
    e.push(("AUTH_LDAP_START_TLS", "1"));
    e.push(("AUTH_LDAP_CONNECTION_OPTIONS", &options));
    let cfg = load_text(&base_toml(&keys), &e, None).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        cfg.ldap.server_uris,
        [
            "ldaps://ldap1.example.com",
            "ldaps://ldap2.example.com:636/",
            "ldap://[::1]:389"
        ]
    );
    assert_eq!(cfg.ldap.connect_timeout, std::time::Duration::from_secs(3));
    assert_eq!(
        cfg.ldap.failover_backoff,
        std::time::Duration::from_secs(30)
    );

    let mut e = env("ldaps://ldap1.example.com https://ldap2.example.com");
    e.push(("AUTH_LDAP_CONNECTION_OPTIONS", &options));
    let err = load_text(&base_toml(&keys), &e, None).expect_err("https is not LDAP");
    let line = only(&err);
    assert!(
        line.starts_with(
            "configuration error: ldap.server_uri (from environment variable AUTH_LDAP_SERVER_URI): "
        ),
        "{line}"
    );
    assert!(line.contains("\"https://ldap2.example.com\""), "{line}");
}

/// Settings of a feature that is off do not turn it on; each one that
/// differs from its default is named in a warning with its source.
#[test]
fn settings_of_a_feature_that_is_off_are_warned_about_key_by_key() {
    let keys = Keys::new();
    let off = |w: &String| w.contains("but SAML is off") || w.contains("but LDAP is off");

    // [saml] with metadata but no `enabled = true`: no SAML, one warning
    // naming the key and its line.
    let text = base_toml(&keys)
        + "\n[saml]\nidp_metadata_url = \"https://idp.example.com/metadata\"\nattr_email = \"Email\"\n";
    let cfg = load_text(&text, &[], None).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.saml.is_none());
    let warned: Vec<&String> = cfg.warnings.iter().filter(|w| off(w)).collect();
    assert_eq!(warned.len(), 1, "attr_email is its default: {warned:#?}");
    assert!(
        warned[0].starts_with(
            "saml.idp_metadata_url is set (from test.toml:11) but SAML is off (saml.enabled is false)"
        ),
        "{}",
        warned[0]
    );
    assert!(
        warned[0].contains("set saml.enabled = true"),
        "{}",
        warned[0]
    );

    // The same from a variable, with `enabled = false` written out.
    let text = base_toml(&keys) + "\n[saml]\nenabled = false\n";
    let cfg = load_text(
        &text,
        &[
            ("AUTHGATE_SAML__IDP_METADATA_FILE", "/etc/authgate/idp.xml"),
            ("AUTHGATE_SAML__SP_KEY", "/etc/authgate/sp.key"),
        ],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let warned: Vec<&String> = cfg.warnings.iter().filter(|w| off(w)).collect();
    assert_eq!(warned.len(), 2, "{warned:#?}");
    for (key, var) in [
        ("saml.idp_metadata_file", "AUTHGATE_SAML__IDP_METADATA_FILE"),
        ("saml.sp_key", "AUTHGATE_SAML__SP_KEY"),
    ] {
        let line = format!(
            "{key} is set (from environment variable {var}) but SAML is off (saml.enabled is false, from test.toml:"
        );
        assert!(
            warned.iter().any(|w| w.starts_with(&line)),
            "{line}\n{warned:#?}"
        );
    }

    // An LSE env file with AUTH_LDAP_ENABLED=0: LDAP stays off, each LDAP
    // variable that says something is named with its file and line; the
    // owner email, which SAML sign-ins use too, and the mapping are not.
    let cfg = load_fixture(&keys, &[("AUTH_LDAP_ENABLED", "0")]).unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.ldap.enabled);
    let warned: Vec<&String> = cfg.warnings.iter().filter(|w| off(w)).collect();
    for (key, var, line) in [
        ("ldap.server_uri", "AUTH_LDAP_SERVER_URI", 4),
        ("ldap.bind_dn", "AUTH_LDAP_BIND_DN", 6),
        ("ldap.bind_password", "AUTH_LDAP_BIND_PASSWORD", 7),
        ("ldap.user_dn_template", "AUTH_LDAP_USER_DN_TEMPLATE", 13),
        ("ldap.ca_file", "AUTH_LDAP_CONNECTION_OPTIONS", 49),
    ] {
        let expect = format!(
            "{key} is set (from variable {var} at {FIXTURE}:{line}) but LDAP is off (ldap.enabled is false, from environment variable AUTH_LDAP_ENABLED)"
        );
        assert!(
            warned.iter().any(|w| w.starts_with(&expect)),
            "{expect}\n{warned:#?}"
        );
    }
    assert!(warned
        .iter()
        .all(|w| !w.contains("organization_owner_email")
            && !w.starts_with("mapping.")
            && w.contains("set ldap.enabled = true (AUTH_LDAP_ENABLED=1)")));
    assert!(
        warned.iter().all(|w| !w.contains("password123")),
        "a secret is named, never shown"
    );

    // The shipped example (defaults written out, both features off) is quiet.
    let cfg = load_text(
        &std::fs::read_to_string(EXAMPLE_TOML)
            .expect("example")
            .replace("certs/session.key", &keys.session_key.display().to_string())
            .replace(
                "certs/identity.pem",
                &keys.signing_key.display().to_string(),
            ),
        &[],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(!cfg.ldap.enabled && cfg.saml.is_none());
    let warned: Vec<&String> = cfg.warnings.iter().filter(|w| off(w)).collect();
    assert!(warned.is_empty(), "{warned:#?}");

    // With the feature on, nothing of the kind.
    let text = base_toml(&keys)
        + "\n[ldap]\nenabled = true\nserver_uri = \"ldap://127.0.0.1:1\"\nstart_tls = true\nuser_dn_template = \"uid=%(user)s,dc=example,dc=com\"\n";
    let cfg = load_text(&text, &[], None).unwrap_or_else(|e| panic!("{e}"));
    assert!(cfg.warnings.iter().all(|w| !off(w)), "{:#?}", cfg.warnings);
}

/// The same warnings from the binary: `check-config` (stderr, exit 0) and
/// `serve` (a WARN line in the log at start).
#[test]
fn binary_warns_about_settings_of_a_feature_that_is_off() {
    use std::io::{BufRead, BufReader};
    let keys = Keys::new();
    let cfg = write(
        keys.dir.path(),
        "authgate.toml",
        &(base_toml(&keys) + "\n[saml]\nidp_metadata_url = \"https://idp.example.com/metadata\"\n"),
    );
    let cfg_arg = cfg.display().to_string();
    let expect = format!("saml.idp_metadata_url is set (from {cfg_arg}:11) but SAML is off");

    let out = authgate(&["check-config", "--config", &cfg_arg]);
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("warning: {expect}"))),
        "{stderr}"
    );

    let mut child = authgate_cmd()
        .args(["serve", "--config", &cfg_arg])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start authgate");
    let stderr = child.stderr.take().expect("stderr");
    let mut child = Proc::new(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut seen = Vec::new();
    while let Ok(line) =
        rx.recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
    {
        let started = line.contains("authgate started");
        seen.push(line);
        if started {
            break;
        }
    }
    child.kill();
    assert!(
        seen.iter()
            .any(|l| l.contains("WARN") && l.contains(&expect)),
        "{seen:#?}"
    );
}

#[test]
fn toml_below_lse_variables_below_authgate_variables() {
    let keys = Keys::new();
    let text = base_toml(&keys) + "[ldap]\nserver_uri = \"ldaps://toml.example\"\n";
    let uri = |env: &[(&str, &str)]| {
        let cfg = load_text(&text, env, None).unwrap_or_else(|e| panic!("{e}"));
        (
            cfg.ldap.server_uri.clone(),
            cfg.source_of("ldap.server_uri"),
        )
    };
    assert_eq!(
        uri(&[]),
        ("ldaps://toml.example".into(), "test.toml:10".into())
    );
    assert_eq!(
        uri(&[("AUTH_LDAP_SERVER_URI", "ldaps://lse.example")]),
        (
            "ldaps://lse.example".into(),
            "environment variable AUTH_LDAP_SERVER_URI".into()
        )
    );
    assert_eq!(
        uri(&[
            ("AUTHGATE_LDAP__SERVER_URI", "ldaps://authgate.example"),
            ("AUTH_LDAP_SERVER_URI", "ldaps://lse.example"),
        ]),
        (
            "ldaps://authgate.example".into(),
            "environment variable AUTHGATE_LDAP__SERVER_URI".into()
        )
    );
    // Typed by the key's default: a numeric password stays a string, a
    // comma list becomes a list.
    let cfg = load_text(
        &text,
        &[
            ("AUTHGATE_LDAP__BIND_PASSWORD", "1234"),
            ("AUTHGATE_SERVER__TRUSTED_PROXIES", "10.0.0.0/8, 127.0.0.1"),
            ("AUTHGATE_UPSTREAM__MAX_BODY", "1000"),
        ],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.ldap.bind_password.expose(), "1234");
    assert_eq!(cfg.server.trusted_proxies.len(), 2);
    assert_eq!(cfg.upstream.max_body, Some(1000));
}

#[test]
fn process_environment_beats_the_env_file() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = write(
        dir.path(),
        "app.env",
        "AUTH_LDAP_BIND_DN=cn=from-file\n\
         AUTH_LDAP_GROUP_TYPE=from-file\n\
         AUTHGATE_SERVER__PREFIX=/_file\n\
         AUTHGATE_LOG__LEVEL=debug\n\
         AUTHGATE_IDENTITY__AUDIENCE=file-audience\n",
    );
    let cfg = load_text(
        &base_toml(&keys),
        &[
            ("AUTH_LDAP_BIND_DN", "cn=from-process"),
            ("AUTHGATE_SERVER__PREFIX", "/_proc"),
            // An LSE variable in the process does not beat an AUTHGATE_
            // variable in the file: the AUTHGATE_ layer is above the LSE one
            // wherever each was set.
            ("AUTH_LDAP_GROUP_TYPE", "from-process"),
            ("AUTHGATE_LDAP__GROUP_TYPE", "authgate-from-process"),
        ],
        Some(&env_file),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.ldap.bind_dn, "cn=from-process");
    assert_eq!(
        cfg.source_of("ldap.bind_dn"),
        "environment variable AUTH_LDAP_BIND_DN"
    );
    assert_eq!(cfg.server.prefix, "/_proc");
    assert_eq!(cfg.ldap.group_type, "authgate-from-process");
    // Only in the file: the file's value, with its line.
    assert_eq!(cfg.log.level, "debug");
    assert_eq!(cfg.identity.audience, "file-audience");
    assert_eq!(
        cfg.source_of("identity.audience"),
        format!(
            "variable AUTHGATE_IDENTITY__AUDIENCE at {}:5",
            env_file.display()
        )
    );

    let file_only = write(
        dir.path(),
        "b.env",
        "AUTHGATE_LDAP__GROUP_TYPE=authgate-from-file\n",
    );
    let cfg = load_text(
        &base_toml(&keys),
        &[("AUTH_LDAP_GROUP_TYPE", "lse-from-process")],
        Some(&file_only),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(cfg.ldap.group_type, "authgate-from-file");
}

#[test]
fn unknown_key_in_toml_names_file_and_line() {
    let keys = Keys::new();
    let text =
        base_toml(&keys) + "\n[upstream]\nurl = \"http://127.0.0.1:9\"\nresponse_timout = \"5s\"\n";
    let err = load_text(&text, &[], None).expect_err("typo");
    let line = only(&err);
    assert_eq!(err.0[0].key, "upstream.response_timout");
    assert_eq!(err.0[0].source, "test.toml:12");
    assert!(line.contains("unknown key `response_timout`"), "{line}");
    assert!(
        line.contains("response_timeout"),
        "lists the known keys: {line}"
    );
}

#[test]
fn wrong_type_in_toml_names_file_and_line() {
    let keys = Keys::new();
    let text = base_toml(&keys) + "\n[upstream]\npool_max_idle = \"many\"\n";
    let err = load_text(&text, &[], None).expect_err("wrong type");
    let line = only(&err);
    assert_eq!(err.0[0].key, "upstream.pool_max_idle");
    assert_eq!(err.0[0].source, "test.toml:11");
    assert!(line.contains("invalid type"), "{line}");

    // A secret's value is not repeated, even when it is the wrong type.
    let text = base_toml(&keys) + "\n[ldap]\nbind_password = 918273645\n";
    let err = load_text(&text, &[], None).expect_err("wrong type");
    let line = only(&err);
    assert!(
        line.contains("ldap.bind_password (from test.toml:11)"),
        "{line}"
    );
    assert!(!line.contains("918273645"), "{line}");

    // Broken TOML syntax: the file and line.
    let err = load_text("[server\nlisten = 1\n", &[], None).expect_err("syntax");
    let line = only(&err);
    assert!(
        line.starts_with("configuration error: test.toml:1: invalid TOML"),
        "{line}"
    );
}

#[test]
fn bad_url_in_environment_names_the_variable() {
    let keys = Keys::new();
    let err = load_text(
        &base_toml(&keys),
        &[("AUTHGATE_UPSTREAM__URL", "not a url")],
        None,
    )
    .expect_err("bad url");
    let line = only(&err);
    assert_eq!(
        line,
        "configuration error: upstream.url (from environment variable AUTHGATE_UPSTREAM__URL): invalid URL \"not a url\"; expected e.g. \"http://127.0.0.1:8081\""
    );
    let err = load_text(
        &base_toml(&keys),
        &[(
            "AUTHGATE_UPSTREAM__URL",
            "http://user:hunter2@127.0.0.1:8081",
        )],
        None,
    )
    .expect_err("credentials in the URL");
    assert!(only(&err).contains("user:password@"));
}

#[test]
fn missing_config_file_is_one_error() {
    let err = config::load(&Sources {
        config_file: Some("/nonexistent/authgate.toml".into()),
        ..Sources::default()
    })
    .expect_err("missing");
    let line = only(&err);
    assert!(line.starts_with("configuration error: --config (from command line): cannot read /nonexistent/authgate.toml"), "{line}");
    let err = config::load(&Sources {
        env_file: Some("/nonexistent/lse.env".into()),
        ..Sources::default()
    })
    .expect_err("missing");
    assert!(only(&err).contains("--env-file"));
}

#[test]
fn invalid_workspace_json_in_env_file_names_variable_file_and_line() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = write(
        dir.path(),
        "lse.env",
        "# workspaces\nAUTH_LDAP_ENABLED=0\nAUTH_LDAP_ORGANIZATION_WORKSPACES='{\"Workspace 1\": \"cn=a,dc=x\",}'\n",
    );
    let err = load_text(&base_toml(&keys), &[], Some(&env_file)).expect_err("bad JSON");
    let line = only(&err);
    assert!(
        line.starts_with(&format!(
            "configuration error: AUTH_LDAP_ORGANIZATION_WORKSPACES (from {}:3): invalid JSON",
            env_file.display()
        )),
        "{line}"
    );
}

#[test]
fn unknown_authgate_variable_names_the_variable() {
    let keys = Keys::new();
    let err = load_text(
        &base_toml(&keys),
        &[("AUTHGATE_SERVER__LISTN", "0.0.0.0:80")],
        None,
    )
    .expect_err("typo");
    let line = only(&err);
    assert_eq!(err.0[0].key, "server.listn");
    assert!(
        line.contains("(from environment variable AUTHGATE_SERVER__LISTN): unknown key `listn`"),
        "{line}"
    );
    // One underscore where two belong: a hint, not silence.
    let err = load_text(
        &base_toml(&keys),
        &[("AUTHGATE_SERVER_LISTEN", "0.0.0.0:80")],
        None,
    )
    .expect_err("typo");
    assert!(only(&err).contains("did you mean AUTHGATE_SERVER__LISTEN?"));
    // Variables that are not about a section are someone else's
    // (scripts/test exports AUTHGATE_TEST_PYTHON).
    load_text(
        &base_toml(&keys),
        &[("AUTHGATE_TEST_PYTHON", "/usr/bin/python3")],
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn several_errors_are_reported_together() {
    let keys = Keys::new();
    let dir = tempfile::tempdir().expect("tempdir");
    let env_file = write(dir.path(), "lse.env", "AUTH_LDAP_ENABLED=perhaps\n");
    let text = base_toml(&keys)
        + "\n[upstream]\npool_max_idle = -1\nconnect_timeout = \"soon\"\n\n[log]\nformat = \"xml\"\ncolour = true\n\n[mapping.roles]\nwizard = [\"cn=a,dc=x\"]\n";
    let err = load_text(
        &text,
        &[
            ("AUTHGATE_UPSTREAM__URL", "ftp://x"),
            ("AUTHGATE_SERVER__LISTN", "1"),
        ],
        Some(&env_file),
    )
    .expect_err("many problems");
    let lines = problems(&err);
    let want = [
        format!("AUTH_LDAP_ENABLED (from {}:1)", env_file.display()),
        "server.listn (from environment variable AUTHGATE_SERVER__LISTN)".into(),
        "log.colour (from test.toml:16)".into(),
        "upstream.pool_max_idle (from test.toml:11)".into(),
        "upstream.url (from environment variable AUTHGATE_UPSTREAM__URL)".into(),
        "upstream.connect_timeout (from test.toml:12)".into(),
        "log.format (from test.toml:15)".into(),
        "mapping.roles.wizard (from test.toml:19)".into(),
    ];
    for w in &want {
        assert!(
            lines.iter().any(|l| l.contains(w.as_str())),
            "missing {w:?} in\n{}",
            lines.join("\n")
        );
    }
    assert_eq!(lines.len(), want.len(), "{}", lines.join("\n"));
}

// ---- the real binary ----

/// The binary with a clean environment as far as configuration goes.
fn authgate_cmd() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars() {
        if k.starts_with("AUTHGATE_")
            || k.starts_with("AUTH_LDAP_")
            || k.starts_with("MANUAL_")
            || k == "USE_USERNAME_FOR_LOGIN"
            || k == "DISABLE_SIGNUP_WITHOUT_LINK"
        {
            cmd.env_remove(k);
        }
    }
    // scripts/test exports this; it must not disturb the configuration.
    cmd.env("AUTHGATE_TEST_PYTHON", "/usr/bin/python3");
    cmd
}

fn authgate(args: &[&str]) -> Output {
    authgate_cmd().args(args).output().expect("run authgate")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn binary_exits_2_with_one_line_per_problem_at_start() {
    let keys = Keys::new();
    let cfg = write(
        keys.dir.path(),
        "bad.toml",
        &(base_toml(&keys) + "\n[server.extra]\nx = 1\n\n[upstream]\nurl = \"http://[::1\"\n"),
    );
    let cfg_arg = cfg.display().to_string();
    for cmd in ["check-config", "serve"] {
        let started = std::time::Instant::now();
        let out = authgate(&[cmd, "--config", &cfg_arg]);
        assert_eq!(out.status.code(), Some(2), "{cmd}: {}", text(&out.stderr));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        assert!(out.stdout.is_empty(), "{cmd}: {}", text(&out.stdout));
        let err = text(&out.stderr);
        let lines: Vec<&str> = err.lines().collect();
        assert_eq!(lines.len(), 2, "{cmd}: {err}");
        assert!(lines.iter().all(|l| l.starts_with("configuration error: ")));
        assert!(
            err.contains(&format!("server.extra (from {cfg_arg}:10)")),
            "{err}"
        );
        assert!(
            err.contains(&format!("upstream.url (from {cfg_arg}:14)")),
            "{err}"
        );
    }
    // A missing --config file.
    let out = authgate(&["serve", "--config", "/nonexistent/authgate.toml"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(text(&out.stderr).lines().count(), 1);
    // Errors found while building (a key file that is not a key) too.
    let garbage = write(keys.dir.path(), "garbage.pem", "not a key\n");
    let cfg = write(
        keys.dir.path(),
        "garbage.toml",
        &base_toml(&keys).replace(
            &keys.signing_key.display().to_string(),
            &garbage.display().to_string(),
        ),
    );
    let out = authgate(&["check-config", "--config", &cfg.display().to_string()]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!(
            "configuration error: identity.signing_key (from {}:8): ",
            cfg.display()
        )),
        "{err}"
    );
}

#[test]
fn check_config_prints_the_effective_configuration_without_secrets() {
    let keys = Keys::new();
    let session_secret = std::fs::read_to_string(&keys.session_key).expect("secret");
    let session_secret = session_secret.trim();
    let ca = write(keys.dir.path(), "ldap-ca.crt", CA_PEM);
    let inline = "inline-session-secret-0123456789abcdefghijklmnopqrstuvwxyz";
    let cfg = write(
        keys.dir.path(),
        "authgate.toml",
        &(base_toml(&keys).replace(
            "[session]\n",
            &format!("[session]\nsecret = [\"{inline}\"]\n"),
        )),
    );
    let out = authgate_cmd()
        .args([
            "check-config",
            "--config",
            &cfg.display().to_string(),
            "--env-file",
            FIXTURE,
        ])
        .env(
            "AUTH_LDAP_CONNECTION_OPTIONS",
            format!("OPT_X_TLS_CACERTFILE={}", ca.display()),
        )
        .output()
        .expect("run");
    let (stdout, stderr) = (text(&out.stdout), text(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("configuration OK"), "{stderr}");
    assert!(stdout.starts_with("# effective configuration (secrets redacted)"));
    // The values of the env file are there...
    let effective: toml::Value = toml::from_str(&stdout).expect("stdout is TOML");
    assert_eq!(effective["ldap"]["enabled"].as_bool(), Some(true));
    assert_eq!(
        effective["ldap"]["bind_dn"].as_str(),
        Some("uid=user,ou=sysadmins,o=123abc,dc=zexample,dc=com")
    );
    assert_eq!(
        effective["mapping"]["roles"]["annotator"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        effective["policy"]["manual_role_management"].as_bool(),
        Some(false)
    );
    // ...the secrets are not, anywhere.
    assert_eq!(
        effective["ldap"]["bind_password"].as_str(),
        Some("[redacted]")
    );
    for secret in ["password123", session_secret, inline] {
        assert!(!stdout.contains(secret), "{secret} in stdout");
        assert!(!stderr.contains(secret), "{secret} in stderr");
    }

    // The unchanged fixture: exit 2, the CA file error, still no secret.
    let out = authgate_cmd()
        .args([
            "check-config",
            "--config",
            &cfg.display().to_string(),
            "--env-file",
            FIXTURE,
        ])
        .env_remove("AUTH_LDAP_CONNECTION_OPTIONS")
        .output()
        .expect("run");
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(
        stderr.trim_end(),
        format!("configuration error: ldap.ca_file (from variable AUTH_LDAP_CONNECTION_OPTIONS at {FIXTURE}:49): cannot read \"/path/to/cert.crt\": No such file or directory (os error 2)")
    );
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("password123"));
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("identity.pem");
    let secret = dir.path().join("session.key");
    let (key_arg, secret_arg) = (key.display().to_string(), secret.display().to_string());
    let out = authgate(&["keygen", &key_arg, "--session-secret", &secret_arg]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let (k1, s1) = (
        std::fs::read(&key).expect("key"),
        std::fs::read(&secret).expect("secret"),
    );
    assert!(text(&k1).starts_with("-----BEGIN PRIVATE KEY-----"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key).expect("meta").permissions().mode();
        assert_eq!(
            mode & 0o077,
            0,
            "private files are not group/world readable"
        );
    }

    let out = authgate(&["keygen", &key_arg, "--session-secret", &secret_arg]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("exists; pass --force"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read(&key).expect("key"), k1, "unchanged");
    assert_eq!(std::fs::read(&secret).expect("secret"), s1, "unchanged");

    let out = authgate(&[
        "keygen",
        &key_arg,
        "--session-secret",
        &secret_arg,
        "--force",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_ne!(std::fs::read(&key).expect("key"), k1, "replaced");
    assert_ne!(std::fs::read(&secret).expect("secret"), s1, "replaced");
}

#[test]
fn enforce_roles_follows_role_management_unless_set_and_a_bad_role_table_is_one_error() {
    let keys = Keys::new();
    let base = base_toml(&keys);
    let on = |cfg: &Config| cfg.policy.enforce_roles;
    // The default: on exactly when the directory owns roles.
    assert!(!on(&load_text(&base, &[], None).expect("defaults")));
    assert!(on(&load_text(
        &base,
        &[("MANUAL_ROLE_MANAGEMENT", "0")],
        None
    )
    .expect("directory roles")));
    // Set explicitly, either way, in the file or the environment.
    assert!(on(&load_text(
        &format!("{base}\n[policy]\nenforce_roles = true\n"),
        &[],
        None
    )
    .expect("on")));
    assert!(!on(&load_text(
        &base,
        &[
            ("MANUAL_ROLE_MANAGEMENT", "0"),
            ("AUTHGATE_POLICY__ENFORCE_ROLES", "false")
        ],
        None
    )
    .expect("off")));
    let cfg = load_text(&base, &[], None).expect("defaults");
    assert!(cfg.policy.role_routes.len() > 40);

    // A replacement role table: every problem, with the file, the row and the field.
    let dir = tempfile::tempdir().expect("tempdir");
    let table = write(
        dir.path(),
        "roles.toml",
        "[[route]]\nmethods = [\"POST\"]\npath = \"/api/x\"\nmatch = \"exact\"\nrole = \"boss\"\nfamily = \"x\"\nbasis = \"inferred\"\n",
    );
    let err = load_text(
        &format!(
            "{base}\n[policy]\nrole_routes_file = \"{}\"\n",
            table.display()
        ),
        &[],
        None,
    )
    .expect_err("bad role");
    let line = only(&err);
    assert!(line.contains("policy.role_routes_file"), "{line}");
    assert!(
        line.contains("route[0] (/api/x): field `role`: `boss`"),
        "{line}"
    );
    let good = write(
        dir.path(),
        "good.toml",
        "[[route]]\nmethods = [\"*\"]\npath = \"/secret\"\nmatch = \"prefix\"\nrole = \"owner\"\nfamily = \"x\"\nbasis = \"inferred\"\n",
    );
    let cfg = load_text(
        &format!(
            "{base}\n[policy]\nrole_routes_file = \"{}\"\n",
            good.display()
        ),
        &[],
        None,
    )
    .expect("replacement");
    assert_eq!(cfg.policy.role_routes.len(), 1);
}

/// The placeholder values of the shipped Secret (`deploy/kubernetes/base/
/// secret.yaml`, "REPLACE: ...") are long enough for every length rule and
/// public: applied unchanged, a session key anyone can read would let anyone
/// seal a session cookie. Each one authgate would use is refused, naming
/// the key.
#[test]
fn the_shipped_secret_placeholders_are_refused() {
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/base/secret.yaml"
    ))
    .expect("secret.yaml");
    let value = |name: &str| -> String {
        let line = yaml
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("{name}:")))
            .unwrap_or_else(|| panic!("{name} in secret.yaml"));
        let v = line.split_once(':').expect("key: value").1.trim();
        let v = v
            .strip_prefix('"')
            .and_then(|v| v.strip_suffix('"'))
            .expect("quoted");
        assert!(
            v.len() >= 32,
            "{name}: long enough to pass the length rules"
        );
        v.to_string()
    };
    let keys = Keys::new();

    // session.secret_file
    let session = write(
        keys.dir.path(),
        "shipped-session.key",
        &value("session.key"),
    );
    let text = base_toml(&keys).replace(
        &keys.session_key.display().to_string(),
        &session.display().to_string(),
    );
    let e = load_text(&text, &[], None).expect_err("placeholder session key");
    let line = only(&e);
    assert!(line.contains("session.secret_file"), "{line}");
    assert!(line.contains("placeholder"), "{line}");
    // ... also as one of several keys (rotation), and inline.
    std::fs::write(
        &session,
        format!(
            "{}\n{}\n",
            std::fs::read_to_string(&keys.session_key)
                .expect("key")
                .trim(),
            value("session.key")
        ),
    )
    .expect("write");
    let line = only(&load_text(&text, &[], None).expect_err("second key"));
    assert!(
        line.contains("session key #2 is the shipped placeholder"),
        "{line}"
    );
    let inline = format!(
        "[server]\nlisten = \"127.0.0.1:0\"\n\n[session]\nsecret = [{:?}]\n\n[identity]\nsigning_key = \"{}\"\n",
        value("session.key"),
        keys.signing_key.display()
    );
    let line = only(&load_text(&inline, &[], None).expect_err("inline"));
    assert!(line.contains("session.secret"), "{line}");

    // server.admin_token_file
    let token = write(
        keys.dir.path(),
        "shipped-admin.token",
        &value("admin.token"),
    );
    let text = base_toml(&keys).replace(
        "[server]\n",
        &format!(
            "[server]\nmetrics_listen = \"127.0.0.1:0\"\nadmin_token_file = \"{}\"\n",
            token.display()
        ),
    );
    let line = only(&load_text(&text, &[], None).expect_err("placeholder token"));
    assert!(line.contains("server.admin_token_file"), "{line}");
    assert!(line.contains("placeholder"), "{line}");
    // A real token is taken.
    std::fs::write(&token, "0123456789abcdef0123456789abcdef\n").expect("write");
    load_text(&text, &[], None).expect("a real token");

    // The LDAP bind password, from the Secret's environment variable.
    let text = base_toml(&keys)
        + "\n[ldap]\nenabled = true\nserver_uri = \"ldap://127.0.0.1:389\"\nbind_dn = \"cn=authgate,dc=example,dc=com\"\nuser_search_bases = [\"dc=example,dc=com\"]\n";
    let e = load_text(
        &text,
        &[("AUTH_LDAP_BIND_PASSWORD", &value("ldap-bind-password"))],
        None,
    )
    .expect_err("placeholder password");
    let line = only(&e);
    assert!(line.contains("ldap.bind_password"), "{line}");
    assert!(line.contains("placeholder"), "{line}");
    load_text(&text, &[("AUTH_LDAP_BIND_PASSWORD", "s3cret")], None).expect("a real password");

    // The replicas overlay's Redis password (its own Secret, read by Redis
    // and by authgate alike).
    let yaml = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/kubernetes/overlays/replicas-redis/redis.yaml"
    ))
    .expect("redis.yaml");
    let placeholder = yaml
        .lines()
        .find_map(|l| l.trim().strip_prefix("password: "))
        .and_then(|v| v.strip_prefix('"')?.strip_suffix('"'))
        .expect("the Redis password placeholder");
    let redis = base_toml(&keys).replace(
        "[session]\n",
        "[session]\nstore = \"redis\"\nredis_url = \"redis://127.0.0.1:6379/0\"\n",
    );
    let line = only(
        &load_text(
            &redis,
            &[("AUTHGATE_SESSION__REDIS_PASSWORD", placeholder)],
            None,
        )
        .expect_err("placeholder Redis password"),
    );
    assert!(line.contains("session.redis_password"), "{line}");
    assert!(line.contains("placeholder"), "{line}");
    load_text(
        &redis,
        &[("AUTHGATE_SESSION__REDIS_PASSWORD", "a-real-one")],
        None,
    )
    .expect("a real Redis password");
}
