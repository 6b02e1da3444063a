use super::*;

fn origins(toml: &str) -> Origins {
    let src = crate::config::Sources {
        config_text: Some(("a.toml".into(), toml.into())),
        ..Default::default()
    };
    crate::config::assemble(&src).expect("assembles").1
}

fn rr(role: &str, groups: &[&str]) -> RoleRow {
    RoleRow {
        role: role.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn wr(title: &str, groups: &[&str]) -> WorkspaceRow {
    WorkspaceRow {
        title: title.into(),
        groups: groups.iter().map(|g| g.to_string()).collect(),
    }
}

fn pr(project: &str, group: &str, role: &str) -> ProjectRule {
    ProjectRule {
        project: project.into(),
        group: group.into(),
        role: role.into(),
    }
}

#[test]
fn good_rows_become_tables_merged_and_trimmed() {
    let t = check_tables(
        &[
            rr(
                "administrator",
                &[" ls-admins ", "", "cn=Admins,dc=example,dc=com"],
            ),
            rr("reviewer", &["ls-reviewers"]),
            rr("administrator", &["ls-admins", "second"]),
        ],
        &[
            wr(" Team A ", &["team-a", "ls-reviewers"]),
            wr("Team A", &["x"]),
        ],
        &[
            pr(" 42 ", " team-a ", "Inherit"),
            pr("Project X", "g", "reviewer"),
        ],
        true,
    )
    .expect("accepted");
    assert_eq!(
        t.roles["administrator"],
        ["ls-admins", "cn=Admins,dc=example,dc=com", "second"]
    );
    assert_eq!(t.roles["reviewer"], ["ls-reviewers"]);
    assert_eq!(t.workspaces["Team A"], ["team-a", "ls-reviewers", "x"]);
    assert_eq!(t.projects[0].project, "42");
    assert_eq!(t.projects[0].group, "team-a");
    assert_eq!(t.projects[0].role, "inherit");
}

#[test]
fn every_bad_field_is_named() {
    type Case = (
        &'static [(&'static str, &'static [&'static str])],
        &'static [(&'static str, &'static [&'static str])],
        &'static [(&'static str, &'static str, &'static str)],
        &'static str,
        &'static str,
    );
    let table: &[Case] = &[
        (
            &[("owner", &["g"])],
            &[],
            &[],
            "roles[0].role",
            "not a role",
        ),
        (&[("boss", &["g"])], &[], &[], "roles[0].role", "not a role"),
        (
            &[("reviewer", &["cn=a,,dc=x"])],
            &[],
            &[],
            "roles[0].groups",
            "not a valid DN",
        ),
        (
            &[("reviewer", &["cn=a\u{7},dc=x"])],
            &[],
            &[],
            "roles[0].groups",
            "control",
        ),
        (&[], &[("", &["g"])], &[], "workspaces[0].title", "empty"),
        (
            &[],
            &[("Team\nA", &["g"])],
            &[],
            "workspaces[0].title",
            "control",
        ),
        (
            &[],
            &[("W", &["=x"])],
            &[],
            "workspaces[0].groups",
            "not a valid DN",
        ),
        (
            &[],
            &[],
            &[("", "g", "annotator")],
            "projects[0].project",
            "empty",
        ),
        (
            &[],
            &[],
            &[("1", "g", "owner")],
            "projects[0].role",
            "not a project role",
        ),
        (
            &[],
            &[],
            &[("1", "", "annotator")],
            "projects[0].group",
            "needs a group",
        ),
        (
            &[],
            &[],
            &[("1", "ou=,", "annotator")],
            "projects[0].group",
            "not a valid DN",
        ),
    ];
    for (roles, ws, projects, field, words) in table {
        let roles: Vec<RoleRow> = roles.iter().map(|(r, g)| rr(r, g)).collect();
        let ws: Vec<WorkspaceRow> = ws.iter().map(|(t, g)| wr(t, g)).collect();
        let projects: Vec<ProjectRule> = projects.iter().map(|(p, g, r)| pr(p, g, r)).collect();
        let problems = check_tables(&roles, &ws, &projects, true).expect_err("refused");
        assert!(
            problems
                .iter()
                .any(|p| p.field == *field && p.message.contains(words)),
            "{field} / {words}: {problems:?}"
        );
    }
    let long = "x".repeat(201);
    let problems = check_tables(&[], &[wr(&long, &["g"])], &[], true).expect_err("refused");
    assert!(
        problems[0].message.contains("longer than 200"),
        "{problems:?}"
    );
}

fn saved() -> Saved {
    Saved {
        version: 3,
        saved_by: "alice@example.com".into(),
        saved_at: 1,
        metadata: Some(Metadata::Url {
            url: "https://idp.example.com/md".into(),
        }),
        mapping: Some(Tables {
            roles: BTreeMap::from([("reviewer".to_string(), vec!["r".to_string()])]),
            workspaces: BTreeMap::from([("W".to_string(), vec!["w".to_string()])]),
            projects: vec![pr("1", "p", "annotator")],
        }),
    }
}

#[test]
fn the_page_fills_only_what_the_file_and_environment_leave_unset() {
    type Case = (
        &'static str,
        &'static [&'static str],
        &'static [&'static str],
    );
    let table: &[Case] = &[
        // Nothing set (an empty table as in the example file counts as unset).
        (
            "[mapping.roles]\n",
            &[KEY_METADATA, KEY_ROLES, KEY_WORKSPACES, KEY_PROJECTS],
            &[],
        ),
        (
            "[saml]\nidp_metadata_file = \"/etc/idp.xml\"\n[mapping.roles]\nadministrator = [\"a\"]\n",
            &[KEY_WORKSPACES, KEY_PROJECTS],
            // Sorted by key.
            &[KEY_ROLES, KEY_METADATA],
        ),
        (
            "[[mapping.projects]]\nproject = \"1\"\ngroup = \"g\"\nrole = \"inherit\"\n[mapping.workspaces]\nW = [\"x\"]\n",
            &[KEY_METADATA, KEY_ROLES],
            &[KEY_PROJECTS, KEY_WORKSPACES],
        ),
    ];
    for (toml, applied_want, locked_want) in table {
        let mut o = origins(toml);
        let locks = Locks::of(&o);
        let locked: Vec<&str> = locks.0.keys().copied().collect();
        assert_eq!(locked, *locked_want, "{toml}");
        for k in locked {
            assert!(
                locks.get(k).is_some_and(|s| s.starts_with("a.toml:")),
                "{k}"
            );
        }
        let mut raw = raw::Raw::default();
        raw.mapping.roles = BTreeMap::from([("administrator".into(), vec!["file".into()])]);
        let applied = overlay(
            &mut raw,
            &mut o,
            &saved(),
            Path::new("/state/idp-metadata.xml"),
        );
        assert_eq!(applied, *applied_want, "{toml}");
        if applied.contains(&KEY_METADATA) {
            assert!(raw.saml.enabled);
            assert_eq!(raw.saml.idp_metadata_url, "https://idp.example.com/md");
            assert!(o
                .of("saml.idp_metadata_url")
                .contains("SSO settings page (version 3"));
        }
        if applied.contains(&KEY_ROLES) {
            assert_eq!(raw.mapping.roles["reviewer"], ["r"]);
        } else {
            assert_eq!(raw.mapping.roles["administrator"], ["file"]);
        }
        // Laid over twice: what the page set does not lock it.
        assert_eq!(Locks::of(&o).0.len(), locks.0.len(), "{toml}");
    }
}

#[test]
fn an_environment_variable_locks_its_table() {
    let src = crate::config::Sources {
        config_text: Some(("a.toml".into(), String::new())),
        env: vec![(
            "AUTH_LDAP_ORGANIZATION_ROLE_REVIEWER".into(),
            "cn=r,dc=x".into(),
        )],
        ..Default::default()
    };
    let (_, o) = crate::config::assemble(&src).expect("assembles");
    let locks = Locks::of(&o);
    assert!(
        locks
            .get(KEY_ROLES)
            .is_some_and(|s| s.contains("AUTH_LDAP_ORGANIZATION_ROLE_REVIEWER")),
        "{locks:?}"
    );
}

#[test]
fn an_explicit_saml_enabled_false_is_not_turned_on() {
    let mut o = origins("[saml]\nenabled = false\n");
    let mut raw = raw::Raw::default();
    overlay(&mut raw, &mut o, &saved(), Path::new("/x"));
    assert!(!raw.saml.enabled);
}

#[test]
fn changes_name_each_key_and_never_the_xml() {
    let old = Saved::default();
    let mut new = saved();
    new.metadata = Some(Metadata::Xml {
        xml: "<secret-looking-xml/>".into(),
    });
    let c = changes(&old, &new);
    assert_eq!(c.len(), 4, "{c:?}");
    assert!(c[0].starts_with("saml.idp_metadata: none -> uploaded XML (21 bytes)"));
    assert!(c[1].starts_with("mapping.roles.reviewer: (none) -> [r]"));
    assert!(c.iter().all(|l| !l.contains("secret-looking")));
    assert!(changes(&new, &new).is_empty());
}
