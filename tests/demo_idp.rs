//! The demo SAML IdP of `scripts/demo` (`scripts/demo-idp.py`: the test
//! IdP's pysaml2 with the demo directory's people and a sign-in page), as
//! the demo wires it: it reads authgate's SP metadata from authgate at the
//! first sign-in, and the `[mapping]` the demo directory prints
//! (`scripts/demo-ldap.sh`) maps its groups. A browser signs in through the
//! "Sign in with SSO" button and signs out by Single Logout.

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::gate::{config_text, Gate, Keys};
use common::idp::{parse_form, sp_pair, sso_href, Browser};
use common::ports::{free_addr, free_port};
use common::process::{wait_port, Proc};
use common::python::python;
use common::upstream::Upstream;
use http::StatusCode;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `[mapping.*]` tables `scripts/demo-ldap.sh` prints for the demo.
fn demo_mapping() -> String {
    let script =
        std::fs::read_to_string(root().join("scripts/demo-ldap.sh")).expect("demo-ldap.sh");
    let start = script.find("[mapping.roles]").expect("[mapping.roles]");
    let end = start + script[start..].find("\nTOML").expect("end of the heredoc");
    script[start..end].to_string()
}

struct Demo {
    _idp: Proc,
    idp_base: String,
    gate: Gate,
    _up: Upstream,
    _dir: tempfile::TempDir,
    _sp: tempfile::TempDir,
}

async fn start() -> Demo {
    let dir = tempfile::tempdir().expect("tmp");
    let gate_addr = free_addr();
    let idp_port = free_port();
    let mut cmd = Command::new(python("saml2"));
    cmd.arg(root().join("scripts/demo-idp.py"))
        .arg(dir.path())
        .arg(idp_port.to_string())
        .arg(format!("http://{gate_addr}/_auth/saml/metadata"));
    let log = dir.path().join("idp.log");
    cmd.stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    let idp = Proc::spawn(&mut cmd, "scripts/demo-idp.py").with_log(log);
    let idp_addr = format!("127.0.0.1:{idp_port}").parse().expect("addr");
    assert!(
        wait_port(idp_addr, true, Duration::from_secs(60)),
        "the demo IdP did not listen: {}",
        idp.log()
    );
    let idp_base = format!("http://{idp_addr}");

    let (sp, key, cert) = sp_pair();
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = config_text(
        &keys,
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{idp_base}/metadata\"\nsp_key = \"{}\"\nsp_cert = \"{}\"\n\n{}",
            key.display(),
            cert.display(),
            demo_mapping()
        ),
    );
    let gate = Gate::start_with(
        keys,
        text,
        vec![("AUTHGATE_SERVER__LISTEN".into(), gate_addr.to_string())],
    )
    .await;
    assert_eq!(gate.addr, gate_addr);
    Demo {
        _idp: idp,
        idp_base,
        gate,
        _up: up,
        _dir: dir,
        _sp: sp,
    }
}

/// From the login page's "Sign in with SSO" button to the IdP's sign-in page.
async fn to_sign_in_page(b: &mut Browser, demo: &Demo) -> (String, Vec<(String, String)>) {
    let login = b.get("http://gate.test/_auth/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login.text().contains("Sign in with SSO"),
        "{}",
        login.text()
    );
    let page = b
        .follow(&format!("http://gate.test{}", sso_href(&login.text())))
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    assert!(page.url.starts_with(&demo.idp_base), "{}", page.url);
    assert!(page.text().contains("name=\"password\""), "{}", page.text());
    let (action, fields) = parse_form(&page.text());
    (b.resolve(&page.url, &action), fields)
}

async fn sign_in(b: &mut Browser, demo: &Demo, user: &str, password: &str) -> common::idp::Page {
    let (action, mut fields) = to_sign_in_page(b, demo).await;
    fields.push(("username".into(), user.into()));
    fields.push(("password".into(), password.into()));
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    b.send("POST", &action, Some(&refs)).await
}

#[tokio::test]
async fn the_demo_idp_signs_the_demo_people_in_and_out() {
    let demo = start().await;
    let mut b = Browser::new(demo.gate.addr);

    // A wrong password: the sign-in page again, with the reason.
    let page = sign_in(&mut b, &demo, "carol", "wrong").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text().contains("wrong password"), "{}", page.text());

    // carol: the auto-posted assertion signs her in with the mapped role
    // and workspace (the demo directory's group DNs).
    let page = sign_in(&mut b, &demo, "carol", "demo").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let acs = b.submit_form(&page).await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let me = b.get("http://gate.test/_auth/userinfo").await;
    assert_eq!(me.status, StatusCode::OK, "{}", me.text());
    let me: serde_json::Value = serde_json::from_slice(&me.body).expect("json");
    assert_eq!(me["email"], "carol@demo.local");
    assert_eq!(me["role"], "reviewer");
    assert_eq!(me["workspaces"], serde_json::json!(["Demo workspace"]));
    assert_eq!(me["amr"], serde_json::json!(["saml"]));

    // Signing out continues to the IdP's Single Logout and comes back.
    let out = b.follow("http://gate.test/_auth/logout").await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text());
    assert!(out.text().contains("signed out"), "{}", out.text());
    assert_eq!(
        b.get("http://gate.test/_auth/userinfo").await.status,
        StatusCode::UNAUTHORIZED
    );

    // dave is in the directory's pending group: signed in, not activated.
    let page = sign_in(&mut b, &demo, "dave", "demo").await;
    let acs = b.submit_form(&page).await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let me = b.get("http://gate.test/_auth/userinfo").await;
    let me: serde_json::Value = serde_json::from_slice(&me.body).expect("json");
    assert_eq!(me["role"], "not_activated");
}
