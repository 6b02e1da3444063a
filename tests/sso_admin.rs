//! The SSO & SAML settings page (`/_auth/admin/sso`) over HTTP: who may
//! open it, CSRF, refusal of bad IdP metadata, the first-time setup from
//! the page alone (upload, mappings, save, a mapped user signs in through
//! the pysaml2 IdP and lands upstream with the role), persistence across a
//! restart, settings from the configuration file shown read-only and not
//! overridden, the explain box, the test sign-in, and the audit event.

mod common;

use std::path::{Path, PathBuf};

use bytes::Bytes;
use common::audit::json_log;
use common::client::{get, send, Got};
use common::cookies::{csrf_of, form};
use common::gate::{config_text, identity, load_config, Gate, Keys};
use common::idp::{Browser, Idp};
use common::redis::RedisServer;
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::Full;

/// Keys and a state directory that outlive one gate (restarts).
struct Setup {
    dir: tempfile::TempDir,
    up: Upstream,
}

impl Setup {
    async fn new() -> Setup {
        Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            up: Upstream::start().await,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The configuration text: `extra` TOML after the common part, with
    /// `server.state_dir` set, and keys kept in `dir`.
    fn config(&self, keys: &Keys, extra: &str) -> String {
        self.config_in(keys, extra, &self.state_dir())
    }

    fn config_in(&self, keys: &Keys, extra: &str, state_dir: &Path) -> String {
        for (from, name) in [
            (&keys.signing_key, "identity.pem"),
            (&keys.session_key, "session.key"),
        ] {
            let to = self.dir.path().join(name);
            if !to.exists() {
                std::fs::copy(from, &to).expect("copy key");
            }
        }
        config_text(keys, &self.up.url(), extra)
            .replace(
                &keys.signing_key.display().to_string(),
                &self.dir.path().join("identity.pem").display().to_string(),
            )
            .replace(
                &keys.session_key.display().to_string(),
                &self.dir.path().join("session.key").display().to_string(),
            )
            .replace(
                "[server]\n",
                &format!("[server]\nstate_dir = \"{}\"\n", state_dir.display()),
            )
    }

    async fn gate(&self, extra: &str) -> Gate {
        let keys = Keys::new();
        let text = self.config(&keys, extra);
        Gate::start_with(keys, text, vec![]).await
    }
}

/// A signed-in user's cookie (what LDAP or SAML sign-in would give).
async fn session(gate: &Gate, email: &str, role: &str) -> String {
    gate.login(identity(&format!("uid={email}"), email, Some(role), &[]))
        .await
}

async fn page(gate: &Gate, cookie: &str) -> Got {
    let mut b = Request::get(gate.url("/_auth/admin/sso")).header("accept", "text/html");
    if !cookie.is_empty() {
        b = b.header("cookie", cookie);
    }
    send(b.body(Full::new(Bytes::new())).expect("request")).await
}

async fn post(gate: &Gate, cookie: &str, path: &str, fields: &[(&str, &str)]) -> Got {
    let body = form(fields);
    let req = Request::post(gate.url(path))
        .header("cookie", cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("accept", "text/html")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    send(req).await
}

/// The upload form, as a browser sends a chosen file (multipart).
async fn upload(gate: &Gate, cookie: &str, csrf: &str, xml: &str) -> Got {
    let boundary = "----authgate-test-7d1f";
    let mut body = String::new();
    for (name, value) in [("csrf", csrf), ("source", "upload")] {
        body.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
        ));
    }
    body.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"metadata_file\"; filename=\"idp.xml\"\r\nContent-Type: application/xml\r\n\r\n{xml}\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"metadata_xml\"\r\n\r\n\r\n--{boundary}--\r\n"
    ));
    let req = Request::post(gate.url("/_auth/admin/sso/metadata"))
        .header("cookie", cookie)
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("accept", "text/html")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    send(req).await
}

fn saved_file(setup: &Setup) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(setup.state_dir().join("sso.json")).ok()?;
    Some(serde_json::from_str(&text).expect("sso.json is JSON"))
}

#[tokio::test]
async fn only_owners_and_administrators_with_a_session_get_the_page() {
    let setup = Setup::new().await;
    let gate = setup.gate("").await;
    let anon = page(&gate, "").await;
    assert_eq!(anon.status, StatusCode::FOUND);
    let loc = anon.headers["location"].to_str().expect("location");
    assert!(
        loc.starts_with("/_auth/login?rd=") && loc.contains("admin"),
        "{loc}"
    );
    for role in ["annotator", "reviewer", "manager", "not_activated"] {
        let c = session(&gate, &format!("{role}@example.com"), role).await;
        assert_eq!(
            page(&gate, &c).await.status,
            StatusCode::FORBIDDEN,
            "{role}"
        );
        let p = post(&gate, &c, "/_auth/admin/sso/mapping", &[("action", "save")]).await;
        assert_eq!(p.status, StatusCode::FORBIDDEN, "{role} POST");
    }
    for role in ["owner", "administrator"] {
        let c = session(&gate, &format!("{role}@example.com"), role).await;
        let got = page(&gate, &c).await;
        assert_eq!(got.status, StatusCode::OK, "{role}");
        let h = &got.headers;
        assert_eq!(h["x-frame-options"], "DENY");
        let csp = h["content-security-policy"].to_str().expect("csp");
        assert!(csp.contains("script-src 'self'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let html = got.text();
        for want in [
            "http://gate.test/_auth/saml/acs",
            "http://gate.test/_auth/saml/metadata",
            "http://gate.test/_auth/saml/login",
            "http://gate.test/_auth/logout",
            "gate.test",
            "SAML is off",
            "<label for=\"metadata_file\">",
            "<label for=\"role-0-name\">",
        ] {
            assert!(html.contains(want), "{want:?} missing");
        }
        // The only script is the file, and no secret is on the page.
        assert_eq!(html.matches("<script").count(), 1);
        assert!(html.contains("<script src=\"/_auth/admin/sso.js\" defer></script>"));
        let secret = std::fs::read_to_string(setup.dir.path().join("session.key")).expect("key");
        assert!(!html.contains(secret.trim()));
    }
    let js = get(&gate.url("/_auth/admin/sso.js"), &[]).await;
    assert_eq!(js.status, StatusCode::OK);
    assert!(js.headers["content-type"]
        .to_str()
        .expect("ct")
        .starts_with("text/javascript"));
    assert!(js.text().contains("clipboard"));
}

#[tokio::test]
async fn forms_without_this_sessions_csrf_token_are_refused() {
    let log = json_log();
    let setup = Setup::new().await;
    let gate = setup.gate("").await;
    let alice = session(&gate, "alice@example.com", "administrator").await;
    let bob = session(&gate, "bob@example.com", "administrator").await;
    let bobs_token = csrf_of(&page(&gate, &bob).await.text());
    let rows = [
        ("role-0-name", "reviewer"),
        ("role-0-groups", "ls-reviewers"),
        ("action", "save"),
    ];
    for (case, token) in [
        ("none", None),
        ("empty", Some("")),
        ("garbage", Some("abc")),
        ("another session's", Some(bobs_token.as_str())),
    ] {
        let mut fields = rows.to_vec();
        if let Some(t) = token {
            fields.push(("csrf", t));
        }
        for path in [
            "/_auth/admin/sso/mapping",
            "/_auth/admin/sso/explain",
            "/_auth/admin/sso/metadata",
        ] {
            let got = post(&gate, &alice, path, &fields).await;
            assert_eq!(got.status, StatusCode::FORBIDDEN, "{case} token on {path}");
        }
    }
    assert!(saved_file(&setup).is_none(), "nothing saved");
    let lines = String::from_utf8_lossy(&log.lock().expect("log")).into_owned();
    assert!(
        lines.lines().any(|l| l.contains("\"access_refused\"")
            && l.contains("\"csrf\"")
            && l.contains("/_auth/admin/sso/explain")
            && l.contains("uid=alice@example.com")),
        "the refusal is audited: {lines}"
    );
    // Alice's own token works.
    let token = csrf_of(&page(&gate, &alice).await.text());
    let mut fields = rows.to_vec();
    fields.push(("csrf", &token));
    let got = post(&gate, &alice, "/_auth/admin/sso/mapping", &fields).await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.text());
}

#[tokio::test]
async fn bad_metadata_is_refused_with_the_reason() {
    let setup = Setup::new().await;
    let idp = Idp::start().await;
    let gate = setup.gate("").await;
    let admin = session(&gate, "alice@example.com", "administrator").await;
    let csrf = csrf_of(&page(&gate, &admin).await.text());
    let good = idp.metadata("").await;
    let doctype = good.replacen("?>\n", "?>\n<!DOCTYPE x [<!ENTITY e \"x\">]>\n", 1);
    assert_ne!(doctype, good);
    let sp = get(&gate.url("/_auth/saml/metadata"), &[]).await;
    assert_eq!(sp.status, StatusCode::NOT_FOUND, "SAML is off");
    let cases = [
        (
            "no signing certificate",
            idp.metadata("nocert").await,
            "no signing certificate",
        ),
        (
            "not XML",
            "this is not XML".to_string(),
            "not valid SAML metadata",
        ),
        ("a DOCTYPE", doctype, "DOCTYPE"),
        ("nothing", String::new(), "choose a metadata file"),
    ];
    for (case, xml, words) in cases {
        let got = upload(&gate, &admin, &csrf, &xml).await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{case}");
        let html = got.text();
        assert!(html.contains(words), "{case}: {words:?} missing");
        assert!(html.contains("role=\"alert\""), "{case}: announced");
    }
    // A URL: plain http to a non-loopback host, and metadata without a
    // certificate behind a good URL.
    for (url, words) in [
        ("http://idp.example.com/metadata", "must come over https"),
        (
            &format!("{}?variant=nocert", idp.metadata_url()),
            "no signing certificate",
        ),
    ] {
        let got = post(
            &gate,
            &admin,
            "/_auth/admin/sso/metadata",
            &[("csrf", &csrf), ("source", "url"), ("metadata_url", url)],
        )
        .await;
        assert_eq!(got.status, StatusCode::BAD_REQUEST, "{url}");
        assert!(got.text().contains(words), "{url}: {words:?} missing");
    }
    assert!(saved_file(&setup).is_none(), "nothing saved");
    // Invalid mapping rows are refused with the field named.
    let got = post(
        &gate,
        &admin,
        "/_auth/admin/sso/mapping",
        &[
            ("csrf", &csrf),
            ("role-0-name", "reviewer"),
            ("role-0-groups", "cn=broken,,dc=example"),
            ("ws-0-title", ""),
            ("ws-0-groups", "team-a"),
            ("prj-0-project", "42"),
            ("prj-0-group", "g"),
            ("prj-0-role", "boss"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    let html = got.text();
    for want in [
        "roles[0].groups",
        "not a valid DN",
        "workspaces[0].title",
        "projects[0].role",
    ] {
        assert!(html.contains(want), "{want:?} missing");
    }
    // What was typed stays in the form.
    assert!(html.contains("cn=broken,,dc=example"));
    assert!(saved_file(&setup).is_none(), "nothing saved");
}

/// The seed's order: copy the URLs, upload the IdP metadata, set the
/// mappings, save, sign in as a mapped user; then restart.
#[tokio::test]
async fn first_time_setup_from_the_page_alone_survives_a_restart() {
    let log = json_log();
    let setup = Setup::new().await;
    let idp = Idp::start().await;
    let gate = setup.gate("").await;
    let admin = session(&gate, "root@example.com", "owner").await;
    let csrf = csrf_of(&page(&gate, &admin).await.text());

    let got = upload(&gate, &admin, &csrf, &idp.metadata("").await).await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.text());
    let html = page(&gate, &admin).await.text();
    assert!(html.contains(&idp.entity_id()), "the IdP is in force");
    assert!(html.contains("Signing certificate"));
    assert!(
        html.contains("SSO settings page (version 1"),
        "the source says the page"
    );

    // Add a row without JavaScript: the form comes back with one more.
    let got = post(
        &gate,
        &admin,
        "/_auth/admin/sso/mapping",
        &[
            ("csrf", &csrf),
            ("role-0-name", "reviewer"),
            ("role-0-groups", "ls-reviewers"),
            ("action", "add-role"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let html = got.text();
    assert!(html.contains("name=\"role-1-groups\"") && html.contains("name=\"role-2-groups\""));
    assert!(saved_file(&setup)
        .expect("saved")
        .get("mapping")
        .is_some_and(|m| m.is_null()));

    let got = post(
        &gate,
        &admin,
        "/_auth/admin/sso/mapping",
        &[
            ("csrf", &csrf),
            ("role-0-name", "reviewer"),
            ("role-0-groups", "ls-reviewers\nsomething-else"),
            ("role-1-name", "administrator"),
            ("role-1-groups", "ls-administrators"),
            ("role-2-name", "annotator"),
            ("role-2-groups", "to-be-removed"),
            ("role-2-remove", "1"),
            ("ws-0-title", "Team A"),
            ("ws-0-groups", "team-a\nls-reviewers"),
            ("prj-0-project", "42"),
            ("prj-0-group", "team-a"),
            ("prj-0-role", "inherit"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.text());
    let saved = saved_file(&setup).expect("saved");
    assert_eq!(saved["version"], 2);
    assert_eq!(saved["saved_by"], "root@example.com");
    assert_eq!(
        saved["mapping"]["roles"]["reviewer"],
        serde_json::json!(["ls-reviewers", "something-else"])
    );
    assert!(
        saved["mapping"]["roles"].get("annotator").is_none(),
        "removed row"
    );
    let prev: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(setup.state_dir().join("sso.json.prev")).expect("previous kept"),
    )
    .expect("json");
    assert_eq!(prev["version"], 1);

    // The audit event: who, and what changed (never the metadata XML).
    let lines = String::from_utf8_lossy(&log.lock().expect("log")).into_owned();
    let line = lines
        .lines()
        .find(|l| {
            l.contains("sso_settings_saved")
                && l.contains("root@example.com")
                && l.contains("mapping.roles.reviewer")
        })
        .unwrap_or_else(|| panic!("no audit line in {lines}"));
    let v: serde_json::Value = serde_json::from_str(line).expect("json line");
    let f = &v["fields"];
    assert_eq!(f["role"], "owner");
    assert_eq!(f["version"], 2);
    assert!(f["changed"]
        .as_str()
        .expect("changed")
        .contains("mapping.workspaces.Team A: (none) -> [team-a; ls-reviewers]"));
    assert!(lines.contains("saml.idp_metadata: none -> uploaded XML"));
    assert!(!lines.contains("X509Certificate"));

    // A mapped user signs in at the IdP: the upstream receives the role.
    let md = get(&gate.url("/_auth/saml/metadata"), &[]).await;
    assert_eq!(md.status, StatusCode::OK);
    idp.register_sp(&md.text()).await;
    let signed_in = |gate_addr| async move {
        let mut b = Browser::new(gate_addr);
        let first = b.get("http://gate.test/_auth/saml/login?rd=/labels").await;
        let idp_url = first.location().expect("to the IdP");
        let idp_page = b.get(&format!("{idp_url}&user=okta")).await;
        let acs = b.submit_form(&idp_page).await;
        assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
        let page = b.get("http://gate.test/labels").await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text());
        b
    };
    let _olga = signed_in(gate.addr).await;
    let seen = setup.up.last();
    assert_eq!(seen.headers["x-forwarded-role"], "reviewer");
    assert_eq!(seen.headers["x-forwarded-email"], "olga@example.com");

    // The explain box: by the email of a user who signed in, and by groups.
    let got = post(
        &gate,
        &admin,
        "/_auth/admin/sso/explain",
        &[("csrf", &csrf), ("email", "olga@example.com")],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    let html = got.text();
    assert!(
        html.contains("reviewer (the highest role of the mapped groups)"),
        "{html}"
    );
    assert!(html.contains("mapping.roles.reviewer[0]"));
    assert!(html.contains("42: reviewer"));
    let got = post(
        &gate,
        &admin,
        "/_auth/admin/sso/explain",
        &[
            ("csrf", &csrf),
            ("groups", "ls-administrators\nls-reviewers\nunknown"),
        ],
    )
    .await;
    let html = got.text();
    assert!(html.contains("administrator (the highest role"), "{html}");
    assert!(html.contains("Groups no row names: unknown"));

    // Restart: the same state directory, nothing else.
    gate.shutdown().await;
    let gate = setup.gate("").await;
    let admin = session(&gate, "root@example.com", "owner").await;
    let html = page(&gate, &admin).await.text();
    assert!(
        html.contains(&idp.entity_id()),
        "metadata survives the restart"
    );
    assert!(
        html.contains("something-else"),
        "mappings survive the restart"
    );
    let _olga = signed_in(gate.addr).await;
    assert_eq!(setup.up.last().headers["x-forwarded-role"], "reviewer");
}

#[tokio::test]
async fn the_test_sign_in_reports_without_touching_the_admins_session() {
    let setup = Setup::new().await;
    let idp = Idp::start().await;
    let mapping =
        "[mapping.roles]\nadministrator = [\"ls-administrators\"]\nreviewer = [\"ls-reviewers\"]\n";
    let gate = setup
        .gate(&format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n{mapping}",
            idp.metadata_url()
        ))
        .await;
    idp.register_sp(&get(&gate.url("/_auth/saml/metadata"), &[]).await.text())
        .await;
    let mut b = Browser::new(gate.addr);
    let first = b.get("http://gate.test/_auth/saml/login").await;
    let acs = b
        .submit_form(
            &b.clone()
                .get(&format!("{}&user=alice", first.location().expect("idp")))
                .await,
        )
        .await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER);
    let cookie_before = b.cookie("gate.test", "authgate").expect("session");

    let start = b.get("http://gate.test/_auth/admin/sso/test").await;
    assert_eq!(start.status, StatusCode::FOUND);
    let idp_page = b
        .get(&format!("{}&user=okta", start.location().expect("idp")))
        .await;
    let report = b.submit_form(&idp_page).await;
    assert_eq!(report.status, StatusCode::OK, "{}", report.text());
    let html = report.text();
    for want in [
        "00u1okta",
        "olga@example.com",
        "ls-reviewers; team-a",
        "reviewer (the highest role",
        "mapping.roles.reviewer[0]",
    ] {
        assert!(html.contains(want), "{want:?} missing");
    }
    assert!(report
        .headers
        .get_all("set-cookie")
        .iter()
        .all(|c| !c.to_str().unwrap_or("").starts_with("authgate=")));
    assert_eq!(b.cookie("gate.test", "authgate"), Some(cookie_before));
    let me = b.get("http://gate.test/_auth/userinfo").await;
    assert!(me.text().contains("alice@example.com"), "still alice");

    // A non-admin's test answer is not reported.
    let mut other = Browser::new(gate.addr);
    let first = other.get("http://gate.test/_auth/saml/login").await;
    let p = other
        .get(&format!("{}&user=okta", first.location().expect("idp")))
        .await;
    assert_eq!(other.submit_form(&p).await.status, StatusCode::SEE_OTHER);
    assert_eq!(
        other
            .get("http://gate.test/_auth/admin/sso/test")
            .await
            .status,
        StatusCode::FORBIDDEN
    );
}

#[tokio::test]
async fn settings_from_the_configuration_win_and_are_shown_read_only() {
    let setup = Setup::new().await;
    let idp = Idp::start().await;
    let extra = format!(
        "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n[mapping.roles]\nadministrator = [\"ls-administrators\"]\n",
        idp.metadata_url()
    );
    let gate = setup.gate(&extra).await;
    let admin = session(&gate, "alice@example.com", "administrator").await;
    let html = page(&gate, &admin).await.text();
    assert!(
        html.contains("The organization roles come from the configuration (<code>test.toml:"),
        "roles locked"
    );
    assert!(
        html.contains("The IdP metadata is set by the configuration (<code>test.toml:"),
        "metadata locked"
    );
    assert!(!html.contains("name=\"role-0-name\""), "no role inputs");
    assert!(
        html.contains("name=\"ws-0-title\""),
        "workspaces still editable"
    );
    let csrf = csrf_of(&html);
    let got = post(
        &gate,
        &admin,
        "/_auth/admin/sso/mapping",
        &[
            ("csrf", &csrf),
            ("role-0-name", "administrator"),
            ("role-0-groups", "attacker-group"),
            ("ws-0-title", "Team A"),
            ("ws-0-groups", "team-a"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.text());
    let html = page(&gate, &admin).await.text();
    assert!(!html.contains("attacker-group"), "the file's roles stay");
    assert!(html.contains("ls-administrators"));
    let e = post(
        &gate,
        &admin,
        "/_auth/admin/sso/explain",
        &[("csrf", &csrf), ("groups", "attacker-group\nteam-a")],
    )
    .await
    .text();
    assert!(!e.contains("administrator (the highest"), "not granted");
    assert!(
        e.contains("Workspaces</th><td>Team A"),
        "the page's workspace applies"
    );
    let got = post(
        &gate,
        &admin,
        "/_auth/admin/sso/metadata",
        &[
            ("csrf", &csrf),
            ("source", "url"),
            ("metadata_url", "https://evil.example.com/md"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::BAD_REQUEST);
    assert!(got.text().contains("set by the configuration"));
    // Without state_dir the page says saving is off.
    let plain = Gate::start(&setup.up.url(), "").await;
    let c = session(&plain, "alice@example.com", "administrator").await;
    assert!(page(&plain, &c)
        .await
        .text()
        .contains("Saving is off: set <code>server.state_dir</code>"));
}

#[tokio::test]
async fn an_unwritable_state_dir_is_a_configuration_error_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("a-file");
    std::fs::write(&file, "x").expect("write");
    let keys = Keys::new();
    let text = config_text(&keys, "http://127.0.0.1:9", "").replace(
        "[server]\n",
        &format!("[server]\nstate_dir = \"{}\"\n", Path::new(&file).display()),
    );
    let e = load_config(&text, vec![], None).expect_err("refused");
    let msg = e.to_string();
    assert!(msg.contains("server.state_dir (from test.toml:"), "{msg}");
}

/// Two replicas sharing only Redis (each its own state_dir): a save on one
/// is in force on the other as soon as it looks (its page, or its poll).
#[tokio::test]
async fn a_save_on_one_replica_reaches_the_other_through_redis() {
    let redis = RedisServer::start();
    let setup = Setup::new().await;
    let session = format!(
        "store = \"redis\"\nredis_url = \"redis://127.0.0.1:{}/\"\n",
        redis.port
    );
    let replica = |name: &str| {
        let keys = Keys::new();
        let text = setup
            .config_in(&keys, "", &setup.dir.path().join(name))
            .replacen("[session]\n", &format!("[session]\n{session}"), 1);
        (keys, text)
    };
    let (ka, ta) = replica("a");
    let (kb, tb) = replica("b");
    let a = Gate::start_with(ka, ta, vec![]).await;
    let b = Gate::start_with(kb, tb, vec![]).await;
    let admin = session_cookie(&a).await;
    let csrf = csrf_of(&page(&a, &admin).await.text());
    let got = post(
        &a,
        &admin,
        "/_auth/admin/sso/mapping",
        &[
            ("csrf", &csrf),
            ("role-0-name", "manager"),
            ("role-0-groups", "ls-managers"),
            ("action", "save"),
        ],
    )
    .await;
    assert_eq!(got.status, StatusCode::SEE_OTHER, "{}", got.text());
    // B: the same session (Redis), its page shows A's save.
    let on_b = page(&b, &admin).await;
    assert_eq!(on_b.status, StatusCode::OK);
    assert!(on_b.text().contains("ls-managers"), "B has A's save");
    let b_file =
        std::fs::read_to_string(setup.dir.path().join("b/sso.json")).expect("B's own copy");
    assert!(b_file.contains("ls-managers"));
    let csrf_b = csrf_of(&on_b.text());
    let e = post(
        &b,
        &admin,
        "/_auth/admin/sso/explain",
        &[("csrf", &csrf_b), ("groups", "ls-managers")],
    )
    .await
    .text();
    assert!(e.contains("manager (the highest role"), "in force on B");
}

async fn session_cookie(gate: &Gate) -> String {
    session(gate, "root@example.com", "owner").await
}
