//! The SSO & SAML page in a real browser: Debian's `chromium`, driven by
//! playwright-core (`tests/browser/sso_page.mjs`, installed by
//! `scripts/test` with `npm ci`). The administrator signs in through the
//! pysaml2 IdP, opens the page (the copy buttons work under the strict
//! CSP), uploads the IdP metadata, adds a mapping row and saves; a mapped
//! user then signs in in a fresh browser profile and the recording
//! upstream receives the new role; that user gets 403 on the page. A
//! screenshot of the page is kept in the target directory.
//!
//! Fails, not skips, without chromium or the npm packages.

mod common;

use std::path::{Path, PathBuf};

use common::browser::{browser_dir, run_node};
use common::client::get;
use common::gate::{config_text, Gate, Keys};
use common::idp::Idp;
use common::ports::free_port;
use common::upstream::Upstream;
use http::StatusCode;

const CHROMIUM: &str = "/usr/bin/chromium";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_administrator_sets_up_sso_in_chromium_and_a_mapped_user_lands_with_the_role() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install the Debian package chromium (scripts/test does)"
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "tests/browser/node_modules is missing: run `npm ci` in tests/browser (scripts/test does)"
    );
    let idp = Idp::start().await;
    let up = Upstream::start().await;
    let state = tempfile::tempdir().expect("tempdir");
    // What an earlier save left: the IdP by URL, and who administers.
    let seed = serde_json::json!({
        "version": 1,
        "saved_by": "setup",
        "metadata": { "source": "url", "url": idp.metadata_url() },
        "mapping": { "roles": { "administrator": ["ls-administrators"] } },
    });
    std::fs::write(state.path().join("sso.json"), seed.to_string()).expect("seed");
    let extra = "[policy]\nmanual_role_management = false\n";
    // The gate on 127.0.0.1 like the IdP: the same site, so the browser
    // sends the gate's SameSite=Lax request-state cookie with the IdP's
    // cross-origin POST on plain http (as it would on https with None).
    let port = free_port();
    let gate_url = format!("http://127.0.0.1:{port}");
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), extra)
        .replace(
            "[server]\n",
            &format!("[server]\nstate_dir = \"{}\"\n", state.path().display()),
        )
        .replace(
            "\nlisten = \"127.0.0.1:0\"",
            &format!("\nlisten = \"127.0.0.1:{port}\""),
        )
        .replace(
            "public_url = \"http://gate.test\"",
            &format!("public_url = \"{gate_url}\""),
        );
    assert!(text.contains(&gate_url));
    let gate = Gate::start_with(keys, text, vec![]).await;
    let md = get(&gate.url("/_auth/saml/metadata"), &[]).await;
    assert_eq!(
        md.status,
        StatusCode::OK,
        "the seeded settings turned SAML on"
    );
    idp.register_sp(&md.text()).await;
    let metadata_file = state.path().join("upload-me.xml");
    std::fs::write(&metadata_file, idp.metadata("").await).expect("metadata file");

    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("sso-browser");
    std::fs::create_dir_all(&shots).expect("artifact dir");
    let screenshot = shots.join("sso-admin-page.png");
    let _ = std::fs::remove_file(&screenshot);
    let stdout = run_node(
        "sso_page.mjs",
        vec![
            ("GATE_URL", gate_url.clone().into()),
            ("METADATA_FILE", metadata_file.clone().into()),
            ("SCREENSHOT", screenshot.clone().into()),
        ],
    )
    .await;
    assert!(
        stdout.contains(&format!("landed {gate_url}/labels")),
        "{stdout}"
    );

    // The upstream got the mapped user with the role the page added.
    let landed = up
        .requests()
        .into_iter()
        .rfind(|r| r.target == "/labels")
        .expect("the upstream saw /labels");
    assert_eq!(landed.headers["x-forwarded-email"], "olga@example.com");
    assert_eq!(landed.headers["x-forwarded-role"], "reviewer");
    let saved = std::fs::read_to_string(state.path().join("sso.json")).expect("saved");
    assert!(
        saved.contains("\"source\": \"xml\""),
        "the upload replaced the URL"
    );
    let png = std::fs::read(&screenshot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    eprintln!("screenshot: {}", screenshot.display());
}
