//! The real Label Studio (PyPI `label-studio==1.23.2`, code unchanged) behind
//! authgate, with the integration in `integrations/label-studio/` switched on
//! by its `label-studio.env` and nothing else: a person who signs in at
//! authgate — with the directory form against a real slapd, or with SAML at
//! the pysaml2 IdP — is signed in to Label Studio as themselves, created
//! just in time with their names, a member of the organization and of the
//! project their group is granted; a person the directory deactivates is
//! refused by authgate and shown inactive in Label Studio; after logout the
//! browser is anonymous; Debian's chromium opens `/projects/` without ever
//! seeing Label Studio's login (screenshot under `target/tmp/label-studio/`).
//!
//! Needs Label Studio's virtualenv with the integration installed, named by
//! `AUTHGATE_LS_VENV` (`scripts/test` creates it once under
//! `~/.cache/authgate/`); fails, not skips, without it.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::browser::run_node;
use common::client::{get, send, Got};
use common::cookies::{cookie_pair, csrf_of, form};
use common::gate::{config_text, Gate, Keys};
use common::idp::{sso_href, Browser, Idp};
use common::ports::free_port;
use common::process::Proc;
use common::slapd::*;
use http::{Request, StatusCode};
use http_body_util::Full;
use serde_json::Value;

const ADMIN_TOKEN: &str = "ls-admin-token-0123456789";

fn venv() -> PathBuf {
    let v = std::env::var_os("AUTHGATE_LS_VENV").unwrap_or_else(|| {
        panic!("AUTHGATE_LS_VENV is not set: run scripts/test, which installs Label Studio 1.23.2 into a cached venv")
    });
    let v = PathBuf::from(v);
    assert!(
        v.join("bin/label-studio").exists(),
        "{}: no bin/label-studio (scripts/test installs it)",
        v.display()
    );
    v
}

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// The `KEY=VALUE` lines of the integration's env file.
fn integration_env() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo("integrations/label-studio/label-studio.env"))
        .expect("integrations/label-studio/label-studio.env");
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

/// The real Label Studio, killed on drop.
struct LabelStudio {
    _proc: Proc,
    url: String,
    data: tempfile::TempDir,
    python: PathBuf,
}

impl LabelStudio {
    async fn start(port: u16, jwks_url: &str, issuer: &str) -> LabelStudio {
        let venv = venv();
        let data = tempfile::tempdir().expect("tempdir");
        let log = std::fs::File::create(data.path().join("label-studio.log")).expect("log");
        let mut cmd = Command::new(venv.join("bin/label-studio"));
        cmd.args(["start", "--no-browser", "--internal-host", "127.0.0.1"])
            .args(["--port", &port.to_string()])
            .args([
                "--username",
                "admin@example.com",
                "--password",
                "admin-pass-1",
            ])
            .args(["--user-token", ADMIN_TOKEN, "--enable-legacy-api-token"])
            .current_dir(data.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        for (k, v) in integration_env() {
            cmd.env(k, v);
        }
        cmd.env("AUTHGATE_JWKS_URL", jwks_url)
            .env("AUTHGATE_ISSUER", issuer)
            .env("LABEL_STUDIO_BASE_DATA_DIR", data.path().join("data"))
            .env("SENTRY_DSN", "")
            .env("FRONTEND_SENTRY_DSN", "")
            .env("LOG_LEVEL", "INFO");
        let ls = LabelStudio {
            _proc: Proc::spawn(&mut cmd, "label-studio start"),
            url: format!("http://127.0.0.1:{port}"),
            data,
            python: venv.join("bin/python"),
        };
        let deadline = Instant::now() + Duration::from_secs(300);
        loop {
            let up = tokio::time::timeout(
                Duration::from_secs(5),
                get_maybe(&format!("{}/health", ls.url)),
            )
            .await;
            if let Ok(Some(StatusCode::OK)) = up {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Label Studio did not answer /health in 300 s:\n{}",
                ls.log()
            );
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        ls
    }

    fn log(&self) -> String {
        let text =
            std::fs::read_to_string(self.data.path().join("label-studio.log")).unwrap_or_default();
        text[text.len().saturating_sub(4000)..].to_string()
    }

    /// Rows of a read-only SQL query on Label Studio's database, as JSON arrays.
    fn sql(&self, query: &str, args: &[&str]) -> Vec<Vec<Value>> {
        let script = "import json,sqlite3,sys\n\
            c=sqlite3.connect(sys.argv[1],timeout=30)\n\
            print(json.dumps([list(r) for r in c.execute(sys.argv[2],sys.argv[3:])]))";
        let out = Command::new(&self.python)
            .arg("-c")
            .arg(script)
            .arg(self.data.path().join("data/label_studio.sqlite3"))
            .arg(query)
            .args(args)
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("json rows")
    }

    /// Label Studio's own API as its administrator (its API token, straight to it).
    async fn admin(&self, method: &str, path: &str, body: Value) -> Got {
        let req = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.url))
            .header("authorization", format!("Token {ADMIN_TOKEN}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .expect("request");
        send(req).await
    }

    /// `deleted_at` of the person's organization membership (None = active).
    fn membership(&self, email: &str) -> Option<Value> {
        let rows = self.sql(
            "SELECT om.deleted_at FROM organizations_organizationmember om \
             JOIN htx_user u ON u.id = om.user_id WHERE u.email = ?",
            &[email],
        );
        assert_eq!(rows.len(), 1, "{email}: one membership");
        Some(rows[0][0].clone()).filter(|v| !v.is_null())
    }
}

/// The status of a GET, or None when nothing answers.
async fn get_maybe(url: &str) -> Option<StatusCode> {
    let req = Request::get(url).body(Full::new(Bytes::new())).ok()?;
    let uri: http::Uri = url.parse().ok()?;
    let addr = format!("{}:{}", uri.host()?, uri.port_u16()?);
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut tx, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    tx.send_request(req).await.ok().map(|r| r.status())
}

/// Directory roles (`manual_role_management = false`) and the directory
/// form against `s`, over ldaps:// with its CA, in search mode.
fn directory_toml(s: &Slapd) -> String {
    format!(
        r#"
[policy]
manual_role_management = false
[ldap]
enabled = true
server_uri = "{ldaps}"
ca_file = "{ca}"
bind_dn = "{SVC_DN}"
bind_password = "{SVC_PW}"
user_search_bases = ["{USERS}"]
user_query_field = "username"
attr_username = "uid"
group_search_base_dn = "dc=com"
group_search_filter = "(objectClass=groupOfNames)"
group_type = "member"
timeout = "5s"
"#,
        ldaps = s.ldaps_url(),
        ca = s.ca.display(),
    )
}

fn gate_toml(s: &Slapd, idp: &Idp) -> String {
    format!(
        r#"{directory}[saml]
enabled = true
idp_metadata_url = "{md}"
[mapping.roles]
administrator = ["cn=admins,{USERS}", "ls-administrators"]
manager = ["cn=managers,{USERS}"]
annotator = ["cn=annotators,{USERS}"]
deactivated = ["cn=deactivated,{USERS}"]
[[mapping.projects]]
project = "Gate Project"
group = "cn=annotators,{USERS}"
role = "inherit"
"#,
        directory = directory_toml(s),
        md = idp.metadata_url(),
    )
}

/// The directory form: returns the status and the session cookie, if any.
async fn ldap_login(gate: &Gate, user: &str) -> (StatusCode, Option<String>, String) {
    let page = get(
        &gate.url("/_auth/login?rd=/projects/"),
        &[("accept", "text/html")],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let csrf = csrf_of(&page.text());
    let pre = cookie_pair(&page, "authgate_login").expect("pre-login cookie");
    let body = form(&[
        ("username", user),
        ("password", PASSWORD),
        ("rd", "/projects/"),
        ("csrf", &csrf),
    ]);
    let req = Request::post(gate.url("/_auth/ldap/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", pre)
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let got = send(req).await;
    (got.status, cookie_pair(&got, "authgate"), got.text())
}

async fn whoami(gate: &Gate, cookie: &str) -> Got {
    get(
        &gate.url("/api/current-user/whoami"),
        &[("cookie", cookie), ("accept", "application/json")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signed_in_at_authgate_is_signed_in_to_the_real_label_studio() {
    let slapd = Slapd::start();
    let idp = Idp::start().await;
    let ls_port = free_port();
    let keys = Keys::new();
    let text = config_text(
        &keys,
        &format!("http://127.0.0.1:{ls_port}"),
        &gate_toml(&slapd, &idp),
    );
    // Label Studio answers its first pages in seconds on a cold start; the
    // upstream sync path is what the integration listens on.
    let env = vec![
        (
            "AUTHGATE_UPSTREAM__RESPONSE_TIMEOUT".to_string(),
            "120s".to_string(),
        ),
        (
            "AUTHGATE_UPSTREAM__STATE_SYNC_PATH".to_string(),
            "/_auth/upstream-sync".to_string(),
        ),
    ];
    let gate = Gate::start_with(keys, text, env).await;
    idp.register_gate(&gate).await;
    let ls = LabelStudio::start(ls_port, &gate.url("/_auth/jwks.json"), "http://gate.test").await;

    // A project the annotators' group is granted, by title.
    let created = ls
        .admin(
            "POST",
            "/api/projects/",
            serde_json::json!({"title": "Gate Project"}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let project = created.json()["id"].as_i64().expect("project id");

    // LDAP: signed in at authgate → Label Studio knows who it is.
    let (status, cookie, page) = ldap_login(&gate, "annotator1").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let cookie = cookie.expect("session cookie");
    let me = whoami(&gate, &cookie).await;
    assert_eq!(me.status, StatusCode::OK, "{}\n{}", me.text(), ls.log());
    let me = me.json();
    assert_eq!(me["email"], "annotator1@example.com");
    assert_eq!(me["first_name"], "annotator1-given");
    assert_eq!(me["last_name"], "Tester");
    assert_eq!(me["username"], "annotator1");
    let projects = get(
        &gate.url("/projects/"),
        &[("cookie", &cookie), ("accept", "text/html")],
    )
    .await;
    assert_eq!(
        projects.status,
        StatusCode::OK,
        "no redirect to Label Studio's login"
    );
    let api = get(&gate.url("/api/projects/"), &[("cookie", &cookie)]).await;
    assert_eq!(api.status, StatusCode::OK, "{}", api.text());
    // The group's project grant became a ProjectMember row.
    let member = ls.sql(
        "SELECT count(*) FROM projects_projectmember pm JOIN htx_user u ON u.id = pm.user_id \
         WHERE u.email = 'annotator1@example.com' AND pm.project_id = ?",
        &[&project.to_string()],
    );
    assert_eq!(member[0][0], 1, "project grant → ProjectMember");

    // Logout at authgate: the same browser is anonymous in Label Studio.
    let out = get(&gate.url("/_auth/logout"), &[("cookie", &cookie)]).await;
    assert!(
        out.status.is_redirection() || out.status.is_success(),
        "{}",
        out.text()
    );
    assert_eq!(
        whoami(&gate, &cookie).await.status,
        StatusCode::UNAUTHORIZED
    );
    let page = get(
        &gate.url("/projects/"),
        &[("cookie", &cookie), ("accept", "text/html")],
    )
    .await;
    let to = page
        .headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert!(
        page.status == StatusCode::FOUND && to.contains("/_auth/login"),
        "{} {to}",
        page.status
    );

    // The directory deactivates a person: at the next login authgate refuses
    // and Label Studio shows the membership inactive.
    let (status, cookie, page) = ldap_login(&gate, "mover").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    assert_eq!(
        whoami(&gate, &cookie.expect("cookie")).await.status,
        StatusCode::OK
    );
    assert_eq!(ls.membership("mover@example.com"), None);
    slapd.ldapmodify(&format!(
        "dn: cn=deactivated,{USERS}\nchangetype: modify\nadd: member\nmember: uid=mover,{USERS}\n\n"
    ));
    let (status, cookie, _) = ldap_login(&gate, "mover").await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(cookie.is_none());
    assert!(
        ls.membership("mover@example.com").is_some(),
        "membership inactive in Label Studio"
    );

    // SAML at the pysaml2 IdP: the same, as alice (ls-administrators).
    let mut b = Browser::new(gate.addr);
    let first = b.get("http://gate.test/projects/").await;
    assert_eq!(first.status, StatusCode::FOUND);
    let login_url = b.resolve(
        "http://gate.test/projects/",
        &first.location().expect("location"),
    );
    let login = b.get(&login_url).await;
    let href = sso_href(&login.text());
    let to_idp = b.get(&b.resolve(&login_url, &href)).await;
    let idp_url = to_idp.location().expect("IdP location");
    let idp_page = b.get(&format!("{idp_url}&user=alice")).await;
    let acs = b.submit_form(&idp_page).await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let me = b.get("http://gate.test/api/current-user/whoami").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    let me: Value = serde_json::from_slice(&me.body).expect("json");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(
        (me["first_name"].as_str(), me["last_name"].as_str()),
        (Some("Alice"), Some("Liddell"))
    );

    // Debian's chromium: /projects/ → authgate's login → Label Studio's projects page.
    let shots = repo("target/tmp/label-studio");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let shot = shots.join("projects.png");
    let stdout = run_node(
        "label_studio.mjs",
        vec![
            ("GATE_URL", format!("http://{}", gate.addr).into()),
            ("LOGIN_USER", "annotator1".into()),
            ("LOGIN_PASSWORD", PASSWORD.into()),
            ("SCREENSHOT", shot.into()),
        ],
    )
    .await;
    let seen: Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("json line");
    assert_eq!(seen["path"], "/projects/", "{seen}");
    assert_eq!(seen["whoami"]["status"], 200, "{seen}");
    assert_eq!(
        seen["whoami"]["body"]["email"], "annotator1@example.com",
        "{seen}"
    );
    assert!(shots.join("projects.png").exists());
}

/// The directory owns roles (`MANUAL_ROLE_MANAGEMENT=0`), so organization roles are enforced at
/// the proxy (`policy.enforce_roles` defaults on): annotators, managers and administrators of the
/// slapd directory, mapped by group, against the real Label Studio Community.
fn roles_toml(s: &Slapd) -> String {
    format!(
        r#"{directory}[mapping.roles]
administrator = ["cn=admins,{USERS}"]
manager = ["cn=managers,{USERS}"]
annotator = ["cn=annotators,{USERS}"]
[[mapping.projects]]
project = "Roles Project"
group = "cn=annotators,{USERS}"
role = "inherit"
"#,
        directory = directory_toml(s),
    )
}

/// Django's CSRF check, passed the way Label Studio's own pages pass it: the `csrftoken` cookie
/// and the same secret in `X-CSRFToken`.
const CSRF: &str = "rolesrolesrolesrolesrolesroles12";

/// A request through authgate as the signed-in person, JSON in and out.
async fn as_person(gate: &Gate, cookie: &str, method: &str, path: &str, body: Value) -> Got {
    let req = Request::builder()
        .method(method)
        .uri(gate.url(path))
        .header("cookie", format!("{cookie}; csrftoken={CSRF}"))
        .header("x-csrftoken", CSRF)
        .header("accept", "application/json")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(if body.is_null() {
            String::new()
        } else {
            body.to_string()
        })))
        .expect("request");
    send(req).await
}

/// authgate's own role refusal: 403 `role_required` naming the role needed.
fn assert_role_refused(got: &Got, needed: &str, what: &str) {
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{what}: {}", got.text());
    let body = got.json();
    assert_eq!(body["error"], "role_required", "{what}: {body}");
    assert_eq!(body["required_role"], needed, "{what}: {body}");
}

/// Refused by authgate: by the role table (naming `needed`), or by the route table first (the
/// Django admin is the upstream's own login while authgate owns login; the organization record
/// can set the invite token or the owner).
fn assert_refused(got: &Got, needed: &str, what: &str) {
    if got.json()["error"] == "managed_by_directory" {
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{what}");
        return;
    }
    assert_role_refused(got, needed, what);
}

const LABEL_CONFIG: &str = r#"<View><Text name="text" value="$text"/><Choices name="sentiment" toName="text"><Choice value="pos"/><Choice value="neg"/></Choices></View>"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_label_studio_community_an_annotator_labels_and_cannot_administer() {
    let slapd = Slapd::start();
    let ls_port = free_port();
    let keys = Keys::new();
    let text = config_text(
        &keys,
        &format!("http://127.0.0.1:{ls_port}"),
        &roles_toml(&slapd),
    );
    let env = vec![(
        "AUTHGATE_UPSTREAM__RESPONSE_TIMEOUT".to_string(),
        "120s".to_string(),
    )];
    let gate = Gate::start_with(keys, text, env).await;
    assert!(
        gate.state.config.policy.enforce_roles,
        "enforce_roles defaults on with manual_role_management = false"
    );
    let ls = LabelStudio::start(ls_port, &gate.url("/_auth/jwks.json"), "http://gate.test").await;

    // The administrator of Label Studio (its own token, straight to it) sets the scene.
    let created = ls
        .admin(
            "POST",
            "/api/projects/",
            serde_json::json!({"title": "Roles Project", "label_config": LABEL_CONFIG}),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text());
    let project = created.json()["id"].as_i64().expect("project id");
    let imported = ls
        .admin(
            "POST",
            &format!("/api/projects/{project}/import"),
            serde_json::json!([{"text": "first"}, {"text": "second"}]),
        )
        .await;
    assert_eq!(imported.status, StatusCode::CREATED, "{}", imported.text());
    let org = ls.sql("SELECT id FROM organization LIMIT 1", &[])[0][0]
        .as_i64()
        .expect("organization id");

    // What the refusals must leave untouched.
    let snapshot = |ls: &LabelStudio| {
        (
            ls.sql("SELECT count(*) FROM project", &[]),
            ls.sql(
                "SELECT title, label_config FROM project WHERE id = ?",
                &[&project.to_string()],
            ),
            ls.sql("SELECT count(*) FROM task", &[]),
            ls.sql(
                "SELECT count(*) FROM io_storages_localfilesimportstorage",
                &[],
            ),
            ls.sql("SELECT count(*) FROM data_export_export", &[]),
            ls.sql("SELECT count(*) FROM webhook", &[]),
        )
    };

    // --- annotator ------------------------------------------------------
    let (status, cookie, page) = ldap_login(&gate, "annotator1").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let annotator = cookie.expect("session cookie");
    // The pages and reads of the labeling stream.
    for path in ["/projects/", &format!("/projects/{project}/data")] {
        let got = get(
            &gate.url(path),
            &[("cookie", &annotator), ("accept", "text/html")],
        )
        .await;
        assert_eq!(got.status, StatusCode::OK, "GET {path}\n{}", ls.log());
    }
    for path in [
        "/api/projects/".to_string(),
        format!("/api/projects/{project}/"),
        format!("/api/dm/views/?project={project}"),
        "/api/current-user/whoami".to_string(),
    ] {
        let got = as_person(&gate, &annotator, "GET", &path, Value::Null).await;
        assert_eq!(got.status, StatusCode::OK, "GET {path}: {}", got.text());
    }
    let next = as_person(
        &gate,
        &annotator,
        "GET",
        &format!("/api/projects/{project}/next/"),
        Value::Null,
    )
    .await;
    assert_eq!(next.status, StatusCode::OK, "next task: {}", next.text());
    let task = next.json()["id"].as_i64().expect("task id");
    let before = snapshot(&ls);
    // Label the task and submit the annotation.
    let annotation = as_person(
        &gate,
        &annotator,
        "POST",
        &format!("/api/tasks/{task}/annotations/?project={project}"),
        serde_json::json!({
            "result": [{"from_name": "sentiment", "to_name": "text", "type": "choices",
                        "value": {"choices": ["pos"]}}],
            "lead_time": 1.5
        }),
    )
    .await;
    assert_eq!(
        annotation.status,
        StatusCode::CREATED,
        "submit annotation: {}\n{}",
        annotation.text(),
        ls.log()
    );
    let stored = ls.sql(
        "SELECT count(*) FROM task_completion c JOIN htx_user u ON u.id = c.completed_by_id \
         WHERE u.email = 'annotator1@example.com' AND c.task_id = ?",
        &[&task.to_string()],
    );
    assert_eq!(
        stored[0][0], 1,
        "the annotation is in Label Studio's database"
    );

    // Administration: refused by authgate, in the plain spelling and disguised.
    let p = project;
    let refused: Vec<(&str, String, Value, &str)> = vec![
        (
            "POST",
            "/api/projects/".into(),
            serde_json::json!({"title": "Annotator's"}),
            "manager",
        ),
        (
            "DELETE",
            format!("/api/projects/{p}/"),
            Value::Null,
            "manager",
        ),
        (
            "DELETE",
            format!("/API/Projects/{p}"),
            Value::Null,
            "manager",
        ),
        (
            "DELETE",
            format!("//api/./projects/x/../{p}/"),
            Value::Null,
            "manager",
        ),
        (
            "DELETE",
            format!("/api/%70rojects/{p}/"),
            Value::Null,
            "manager",
        ),
        (
            "PATCH",
            format!("/api/projects/{p}/"),
            serde_json::json!({"label_config": "<View></View>"}),
            "manager",
        ),
        (
            "PUT",
            format!("/api/projects/{p}/"),
            serde_json::json!({"title": "renamed"}),
            "manager",
        ),
        (
            "POST",
            format!("/api/projects/{p}/import"),
            serde_json::json!([{"text": "third"}]),
            "manager",
        ),
        (
            "POST",
            format!("/api/projects/{p}/import;x=1"),
            serde_json::json!([{"text": "third"}]),
            "manager",
        ),
        (
            "GET",
            format!("/api/projects/{p}/export?exportType=JSON"),
            Value::Null,
            "manager",
        ),
        (
            "POST",
            format!("/api/projects/{p}/exports/"),
            serde_json::json!({}),
            "manager",
        ),
        (
            "POST",
            "/api/storages/localfiles/".into(),
            serde_json::json!({"project": p, "path": "/tmp", "title": "x"}),
            "manager",
        ),
        (
            "POST",
            "/api/webhooks/".into(),
            serde_json::json!({"project": p, "url": "http://127.0.0.1:9/x"}),
            "manager",
        ),
        (
            "DELETE",
            format!("/api/tasks/{task}/"),
            Value::Null,
            "manager",
        ),
        ("GET", "/people/".into(), Value::Null, "administrator"),
        ("GET", "/api/invite".into(), Value::Null, "administrator"),
    ];
    for (method, path, body, needed) in &refused {
        let got = as_person(&gate, &annotator, method, path, body.clone()).await;
        assert_role_refused(&got, needed, &format!("annotator {method} {path}"));
    }
    // Method overrides: a GET or POST that names DELETE is a DELETE.
    let req = Request::builder()
        .method("POST")
        .uri(gate.url(&format!("/api/projects/{p}/")))
        .header("cookie", format!("{annotator}; csrftoken={CSRF}"))
        .header("x-csrftoken", CSRF)
        .header("x-http-method-override", "DELETE")
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_role_refused(
        &send(req).await,
        "manager",
        "X-HTTP-Method-Override: DELETE",
    );
    let req = Request::builder()
        .method("POST")
        .uri(gate.url(&format!("/api/projects/{p}/")))
        .header("cookie", format!("{annotator}; csrftoken={CSRF}"))
        .header("x-csrftoken", CSRF)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Full::new(Bytes::from_static(b"_method=DELETE")))
        .expect("request");
    assert_role_refused(&send(req).await, "manager", "form _method=DELETE");
    // A browser asking for the settings page gets a page that names the role.
    let page = get(
        &gate.url(&format!("/projects/{p}/settings/")),
        &[("cookie", &annotator), ("accept", "text/html")],
    )
    .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(page.text().contains("manager"), "{}", page.text());
    assert_eq!(
        snapshot(&ls),
        before,
        "Label Studio's database is unchanged by the refused requests"
    );
    // Label Studio's own API token does not lift the annotator: decided as an annotator.
    let token = ls.sql(
        "SELECT key FROM authtoken_token t JOIN htx_user u ON u.id = t.user_id WHERE u.email = 'admin@example.com'",
        &[],
    );
    assert_eq!(token.len(), 1, "the administrator's token");
    let req = Request::builder()
        .method("DELETE")
        .uri(gate.url(&format!("/api/projects/{p}/")))
        .header("cookie", &annotator)
        .header(
            "authorization",
            format!("Token {}", token[0][0].as_str().expect("key")),
        )
        .body(Full::new(Bytes::new()))
        .expect("request");
    assert_role_refused(
        &send(req).await,
        "manager",
        "annotator's session + an API token",
    );
    assert_eq!(snapshot(&ls), before);

    // Chromium through the annotator's pages: they load, no API they call on load is refused,
    // no console error comes from a refusal; the settings page says which role it needs.
    let shots = repo("target/tmp/label-studio-roles");
    std::fs::create_dir_all(&shots).expect("screenshot dir");
    let stdout = run_node(
        "label_studio_roles.mjs",
        vec![
            ("GATE_URL", format!("http://{}", gate.addr).into()),
            ("LOGIN_USER", "annotator1".into()),
            ("LOGIN_PASSWORD", PASSWORD.into()),
            ("PROJECT", project.to_string().into()),
            ("SHOTS", shots.clone().into()),
        ],
    )
    .await;
    let seen: Value =
        serde_json::from_str(stdout.trim().lines().last().unwrap_or("")).expect("json line");
    eprintln!("annotator pages: {seen:#}");
    for page in seen["pages"].as_array().expect("pages") {
        let name = page["name"].as_str().unwrap_or("");
        let refused = page["refused"].as_array().expect("refused");
        let console: Vec<&str> = page["console"]
            .as_array()
            .expect("console")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        if name == "settings-refused" {
            assert_eq!(page["status"], 403, "{page}");
            assert!(
                page["text"].as_str().unwrap_or("").contains("manager"),
                "the refusal page names the role: {page}"
            );
            continue;
        }
        assert_eq!(page["status"], 200, "{page}");
        assert!(
            refused.is_empty(),
            "{name} calls refused APIs on load: {page}"
        );
        assert!(
            !console.iter().any(|c| c.contains("403")),
            "{name}: console error from a refusal: {page}"
        );
        assert!(shots.join(format!("annotator-{name}.png")).exists());
    }
    assert_eq!(
        snapshot(&ls),
        before,
        "the annotator's pages changed nothing"
    );

    // --- manager --------------------------------------------------------
    let (status, cookie, page) = ldap_login(&gate, "manager1").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let manager = cookie.expect("session cookie");
    let made = as_person(
        &gate,
        &manager,
        "POST",
        "/api/projects/",
        serde_json::json!({"title": "Manager's project", "label_config": LABEL_CONFIG}),
    )
    .await;
    assert_eq!(
        made.status,
        StatusCode::CREATED,
        "{}\n{}",
        made.text(),
        ls.log()
    );
    let people = get(
        &gate.url("/people/"),
        &[("cookie", &manager), ("accept", "text/html")],
    )
    .await;
    assert_eq!(people.status, StatusCode::FORBIDDEN);
    assert!(people.text().contains("administrator"), "{}", people.text());
    let admin_id = ls.sql(
        "SELECT id FROM htx_user WHERE email = 'admin@example.com'",
        &[],
    )[0][0]
        .as_i64()
        .expect("id");
    let mut by_route_table = 0;
    for (method, path) in [
        (
            "DELETE",
            format!("/api/organizations/{org}/memberships/{admin_id}/"),
        ),
        ("PATCH", format!("/api/organizations/{org}/memberships")),
        ("GET", "/api/invite".to_string()),
        ("POST", "/api/invite/reset-token".to_string()),
        ("DELETE", format!("/api/users/{admin_id}/")),
    ] {
        let got = as_person(&gate, &manager, method, &path, serde_json::json!({})).await;
        // Membership, role and invite changes are the directory's in the first place
        // (MANUAL_ROLE_MANAGEMENT=0): the route table refuses them before any role.
        if got.json()["error"] == "managed_by_directory" {
            assert_eq!(got.status, StatusCode::FORBIDDEN);
            by_route_table += 1;
            continue;
        }
        assert_role_refused(&got, "administrator", &format!("manager {method} {path}"));
    }
    assert!(
        by_route_table < 5,
        "the role table refused some of them itself"
    );
    assert_eq!(
        ls.sql(
            "SELECT count(*) FROM organizations_organizationmember WHERE deleted_at IS NULL AND user_id = ?",
            &[&admin_id.to_string()]
        )[0][0],
        1,
        "the administrator is still a member"
    );

    // --- administrator: everything but the owner's ----------------------
    let (status, cookie, page) = ldap_login(&gate, "admin1").await;
    assert_eq!(status, StatusCode::SEE_OTHER, "{page}");
    let admin = cookie.expect("session cookie");
    let renamed = as_person(
        &gate,
        &admin,
        "PATCH",
        &format!("/api/projects/{p}/"),
        serde_json::json!({"title": "Renamed by admin1"}),
    )
    .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text());
    let export = as_person(
        &gate,
        &admin,
        "GET",
        &format!("/api/projects/{p}/export?exportType=JSON"),
        Value::Null,
    )
    .await;
    assert_eq!(export.status, StatusCode::OK, "{}", export.text());
    let people = get(
        &gate.url("/people/"),
        &[("cookie", &admin), ("accept", "text/html")],
    )
    .await;
    assert_eq!(people.status, StatusCode::OK);
    let invite = as_person(&gate, &admin, "GET", "/api/invite", Value::Null).await;
    assert_eq!(invite.status, StatusCode::OK, "{}", invite.text());
    for (method, path) in [
        ("GET", "/django-rq/".to_string()),
        ("GET", "/admin/".to_string()),
        ("PATCH", format!("/api/organizations/{org}")),
    ] {
        let got = as_person(
            &gate,
            &admin,
            method,
            &path,
            serde_json::json!({"title": "x"}),
        )
        .await;
        let what = format!("administrator {method} {path}");
        if path == "/django-rq/" {
            assert_role_refused(&got, "owner", &what);
        } else {
            assert_refused(&got, "owner", &what);
        }
    }
    assert_eq!(
        ls.sql("SELECT title FROM project WHERE id = ?", &[&p.to_string()])[0][0],
        "Renamed by admin1"
    );
}
