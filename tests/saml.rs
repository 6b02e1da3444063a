//! SAML SSO against an IdP nobody on the team wrote: pysaml2 (signing with
//! xmlsec1) runs as a real process (`tests/idp/idp.py`), and a browser with
//! a cookie jar follows the real flow: protected page → login page →
//! `/_auth/saml/login` → IdP → auto-posted form → ACS → back to the page,
//! whose request the real recording upstream sees with the identity.

mod common;

use common::audit;
use common::client::get;
use common::cookies::enc;
use common::gate::{config_text, load_config, Gate, Keys};
use common::idp::{
    is_signed_in, saml_gate, sp_pair, sso_at, sso_href, two_idp_gate, Browser, Idp, Page,
};
use common::upstream::Upstream;
use http::StatusCode;

const MAPPING: &str = r#"
[mapping]
owner_email = "owner@example.com"
[mapping.roles]
administrator = ["ls-administrators"]
reviewer = ["ls-reviewers"]
annotator = ["ls-annotators"]
deactivated = ["ls-deactivated"]
[mapping.workspaces]
"Team A" = ["team-a"]
"Team B" = ["team-b"]
[[mapping.projects]]
project = "42"
group = "ls-annotators"
role = "inherit"
[[mapping.projects]]
project = "7"
group = "team-a"
role = "reviewer"
"#;

struct Env {
    idp: Idp,
    up: Upstream,
    gate: Gate,
}

impl Env {
    /// IdP + upstream + gate; `saml` are extra `[saml]` lines.
    async fn start(saml: &str) -> Env {
        let idp = Idp::start().await;
        Env::start_with(idp, saml).await
    }

    async fn start_with(idp: Idp, saml: &str) -> Env {
        let (up, gate) = saml_gate(&idp, saml, MAPPING).await;
        Env { idp, up, gate }
    }

    fn browser(&self) -> Browser {
        Browser::new(self.gate.addr)
    }
}

/// Protected page → login page → SSO button → IdP (as the user chosen by
/// `params`) → the auto-posted form is submitted; returns the ACS answer.
async fn sso(b: &mut Browser, page: &str, params: &str) -> Page {
    let start = format!("http://gate.test{page}");
    let first = b.get(&start).await;
    assert_eq!(first.status, StatusCode::FOUND, "{}", first.text());
    let login_url = b.resolve(&start, &first.location().expect("location"));
    assert!(login_url.contains("/_auth/login"), "{login_url}");
    let login = b.get(&login_url).await;
    assert_eq!(login.status, StatusCode::OK);
    let href = sso_href(&login.text());
    let to_idp = b.get(&b.resolve(&login_url, &href)).await;
    assert_eq!(to_idp.status, StatusCode::FOUND, "{}", to_idp.text());
    let idp_url = to_idp.location().expect("IdP location");
    assert!(idp_url.contains("SAMLRequest="), "{idp_url}");
    let idp_page = b.get(&format!("{idp_url}&{params}")).await;
    assert_eq!(idp_page.status, StatusCode::OK, "IdP: {}", idp_page.text());
    b.submit_form(&idp_page).await
}

/// Asserts a refused sign-in: the status, a plain-words reason, and a
/// request id that matches the response header (the log line's id).
fn refused(acs: &Page, status: StatusCode, words: &str, case: &str) {
    let text = acs.text();
    assert_eq!(acs.status, status, "{case}: {text}");
    assert!(
        text.contains(words),
        "{case}: expected {words:?} in the page: {text}"
    );
    let id = acs
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{case}: no x-request-id"));
    assert!(text.contains(id), "{case}: the page shows the request id");
    assert!(
        acs.headers.get_all("set-cookie").iter().all(|c| {
            let c = c.to_str().unwrap_or("");
            !c.starts_with("authgate=") || c.contains("Max-Age=0")
        }),
        "{case}: no session on failure"
    );
}

async fn userinfo(b: &mut Browser) -> serde_json::Value {
    let p = b.get("http://gate.test/_auth/userinfo").await;
    assert_eq!(p.status, StatusCode::OK, "{}", p.text());
    serde_json::from_slice(&p.body).expect("json")
}

#[tokio::test]
async fn sp_initiated_sign_in_lands_on_the_page_for_every_signing_mode() {
    let env = Env::start("").await;
    for mode in ["assertion", "response", "both"] {
        let mut b = env.browser();
        let acs = sso(
            &mut b,
            "/projects/7?tab=data",
            &format!("user=alice&sign={mode}"),
        )
        .await;
        assert_eq!(acs.status, StatusCode::SEE_OTHER, "{mode}: {}", acs.text());
        assert_eq!(
            acs.location().as_deref(),
            Some("/projects/7?tab=data"),
            "{mode}"
        );
        // The request-state cookie is single use: gone after the ACS.
        assert!(
            !b.cookie_names("gate.test")
                .iter()
                .any(|n| n.ends_with("-saml")),
            "{mode}: {:?}",
            b.cookie_names("gate.test")
        );
        let page = b.follow("http://gate.test/projects/7?tab=data").await;
        assert_eq!(page.status, StatusCode::OK, "{mode}: {}", page.text());
        let seen = env.up.last();
        assert_eq!(seen.target, "/projects/7?tab=data");
        assert_eq!(seen.headers["x-forwarded-user"], "alice@example.com");
        assert_eq!(seen.headers["x-forwarded-email"], "alice@example.com");
        assert_eq!(seen.headers["x-forwarded-role"], "administrator");
        assert!(seen.headers.get("x-identity-assertion").is_some());
    }
}

#[tokio::test]
async fn each_attribute_style_gets_its_role_workspaces_and_projects() {
    let env = Env::start("").await;
    let cases = [
        // (user, subject, email, role, workspaces, projects)
        (
            "alice",
            "alice@example.com",
            "alice@example.com",
            "administrator",
            serde_json::json!(["Team A"]),
            serde_json::json!({"7": "reviewer"}),
        ),
        (
            "okta",
            "00u1okta",
            "olga@example.com",
            "reviewer",
            serde_json::json!(["Team A"]),
            serde_json::json!({"7": "reviewer"}),
        ),
        (
            "entra",
            "entra-object-id-1",
            "erin@example.com",
            "annotator",
            serde_json::json!(["Team B"]),
            serde_json::json!({"42": "annotator"}),
        ),
    ];
    for (user, subject, email, role, workspaces, projects) in cases {
        let mut b = env.browser();
        let acs = sso(&mut b, "/", &format!("user={user}")).await;
        assert_eq!(acs.status, StatusCode::SEE_OTHER, "{user}: {}", acs.text());
        let info = userinfo(&mut b).await;
        assert_eq!(info["sub"], subject, "{user}: {info}");
        assert_eq!(info["email"], email, "{user}");
        assert_eq!(info["role"], role, "{user}: {info}");
        assert_eq!(info["workspaces"], workspaces, "{user}: {info}");
        assert_eq!(info["projects"], projects, "{user}: {info}");
        assert_eq!(info["amr"], serde_json::json!(["saml"]), "{user}");
    }
    // Names from the Entra claim URIs.
    let mut b = env.browser();
    sso(&mut b, "/", "user=entra").await;
    let info = userinfo(&mut b).await;
    assert_eq!(info["given_name"], "Erin");
    assert_eq!(info["family_name"], "Entra");
    assert_eq!(info["preferred_username"], "erin@example.onmicrosoft.com");
}

#[tokio::test]
async fn every_validation_rule_refuses_its_negative_case() {
    let env = Env::start("").await;
    let f = StatusCode::FORBIDDEN;
    let cases: &[(&str, &str, StatusCode, &str)] = &[
        ("unsigned", "sign=none", f, "unsigned"),
        (
            "signed by another key",
            "key=other",
            f,
            "refresh the IdP metadata",
        ),
        ("rsa-sha1 (off by default)", "alg=sha1", f, "algorithm"),
        (
            "no AudienceRestriction",
            "pre=no_audience",
            f,
            "paste this entity ID",
        ),
        (
            "no Conditions",
            "pre=no_conditions",
            f,
            "paste this entity ID",
        ),
        (
            "wrong Audience",
            "pre=wrong_audience",
            f,
            "http://gate.test/_auth/saml/metadata",
        ),
        (
            "wrong Recipient",
            "pre=wrong_recipient",
            f,
            "http://gate.test/_auth/saml/acs",
        ),
        (
            "wrong Destination, assertion signed",
            "pre=wrong_destination",
            f,
            "ACS",
        ),
        (
            "wrong Destination, response signed",
            "pre=wrong_destination&sign=response",
            f,
            "ACS",
        ),
        ("expired", "pre=expired", f, "check both clocks"),
        (
            "SubjectConfirmationData expired",
            "pre=scd_expired",
            f,
            "check both clocks",
        ),
        ("not yet valid", "pre=not_yet", f, "check both clocks"),
        (
            "issued in the future",
            "pre=future_issue",
            f,
            "check both clocks",
        ),
        (
            "issued too long ago",
            "pre=old_issue",
            f,
            "check both clocks",
        ),
        ("wrong Issuer", "pre=wrong_issuer", f, "not set up for"),
        (
            "wrong Response Issuer, assertion signed",
            "pre=wrong_response_issuer",
            f,
            "not set up for",
        ),
        (
            "status not Success, assertion signed",
            "pre=status_fail",
            f,
            "AuthnFailed",
        ),
        (
            "status not Success, response signed",
            "pre=status_fail&sign=response",
            f,
            "AuthnFailed",
        ),
        (
            "InResponseTo of another request",
            "pre=irt&irt=_0123456789abcdef0123456789abcdef",
            f,
            "not started from this browser",
        ),
        (
            "unsolicited while IdP-initiated is off",
            "pre=no_irt",
            f,
            "not started from this browser",
        ),
        (
            "missing email",
            "user=noemail",
            f,
            "did not send your email",
        ),
        ("deactivated", "user=deact", f, "deactivated"),
    ];
    for (case, params, status, words) in cases {
        let mut b = env.browser();
        let acs = sso(&mut b, "/", params).await;
        refused(&acs, *status, words, case);
        let me = b.get("http://gate.test/_auth/userinfo").await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{case}: not signed in");
    }
}

#[tokio::test]
async fn signature_wrapping_and_tampering_are_refused() {
    let env = Env::start("").await;
    let cases = [
        (
            "unsigned assertion before the signed one",
            "post=xsw_before",
        ),
        ("unsigned assertion after the signed one", "post=xsw_after"),
        (
            "signed assertion moved into Extensions",
            "post=xsw_extension",
        ),
        ("signed assertion wrapped in a forged one", "post=xsw_wrap"),
        ("ID collision", "post=id_collision"),
        (
            "xsw before, response signed",
            "post=xsw_before&sign=response",
        ),
        ("xsw extension, both signed", "post=xsw_extension&sign=both"),
        ("tampered attribute after signing", "post=tamper_attr"),
        (
            "tampered attribute, response signed",
            "post=tamper_attr&sign=response",
        ),
        ("signatures stripped", "post=strip_signature"),
        ("DOCTYPE", "post=doctype"),
    ];
    for (case, params) in cases {
        let mut b = env.browser();
        let acs = sso(&mut b, "/", params).await;
        assert!(
            acs.status.is_client_error(),
            "{case}: {} {}",
            acs.status,
            acs.text()
        );
        let me = b.get("http://gate.test/_auth/userinfo").await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{case}: not signed in");
    }
    assert!(
        !env.up.requests().iter().any(|r| r
            .headers
            .get("x-forwarded-user")
            .is_some_and(|v| v == "victim@example.com")),
        "the forged user never reached the upstream"
    );
}

#[tokio::test]
async fn nameid_comment_injection_keeps_the_whole_signed_value() {
    let env = Env::start("").await;
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=evil&post=comment_nameid").await;
    // The signature still verifies (exclusive c14n drops comments); the
    // subject is the whole signed text, never the part before the comment.
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let info = userinfo(&mut b).await;
    assert_eq!(info["sub"], "user@evil.com.example.com", "{info}");
    assert_eq!(info["email"], "user@evil.com.example.com", "{info}");
}

#[tokio::test]
async fn a_replayed_response_is_refused() {
    let env = Env::start("").await;
    let mut b = env.browser();
    // Follow the flow up to the IdP's form, then keep a copy of the
    // browser (cookies included), as someone who captured both would.
    let start = "http://gate.test/";
    let first = b.get(start).await;
    let _ = first;
    let to_idp = b.get("http://gate.test/_auth/saml/login?rd=%2Fa").await;
    let idp_url = to_idp.location().expect("location");
    let form = b.get(&format!("{idp_url}&user=alice")).await;
    let mut thief = b.clone();
    let ok = b.submit_form(&form).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.text());
    assert_eq!(ok.location().as_deref(), Some("/a"));
    let again = thief.submit_form(&form).await;
    refused(&again, StatusCode::FORBIDDEN, "already used", "replay");
}

#[tokio::test]
async fn idp_initiated_sign_in_only_when_enabled() {
    let off = Env::start("").await;
    let sp = "http://gate.test/_auth/saml/metadata";
    let mut b = off.browser();
    let form = b
        .get(&format!(
            "{}/idp-initiated?sp={}&relay=%2Fprojects&user=alice",
            off.idp.base,
            enc(sp)
        ))
        .await;
    let acs = b.submit_form(&form).await;
    refused(
        &acs,
        StatusCode::FORBIDDEN,
        "not started from this browser",
        "idp-initiated off",
    );

    let on = Env::start("allow_idp_initiated = true").await;
    let mut b = on.browser();
    let form = b
        .get(&format!(
            "{}/idp-initiated?sp={}&relay=%2Fprojects&user=alice",
            on.idp.base,
            enc(sp)
        ))
        .await;
    let acs = b.submit_form(&form).await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    assert_eq!(acs.location().as_deref(), Some("/projects"));
    // RelayState leads only to paths on this host.
    let mut b = on.browser();
    let form = b
        .get(&format!(
            "{}/idp-initiated?sp={}&relay={}&user=alice",
            on.idp.base,
            enc(sp),
            enc("https://evil.example/")
        ))
        .await;
    let acs = b.submit_form(&form).await;
    assert_eq!(acs.location().as_deref(), Some("/"));
    // Enabled IdP-initiated SSO still refuses an InResponseTo naming a
    // request this browser never started.
    let mut b = on.browser();
    let acs = sso(&mut b, "/", "pre=irt&irt=_0123456789abcdef0123456789abcdef").await;
    refused(
        &acs,
        StatusCode::FORBIDDEN,
        "not started from this browser",
        "unknown request",
    );
}

#[tokio::test]
async fn rollover_certificates_are_accepted_and_a_file_without_one_is_a_start_up_error() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("idp.xml");
    std::fs::write(&path, idp.metadata("rollover").await).expect("write");
    let env = Env::start_with(idp, "").await;
    // The gate above reads the URL; one reading the rollover file works too.
    let keys = Keys::new();
    let up = Upstream::start().await;
    let text = config_text(
        &keys,
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_file = \"{}\"\n{MAPPING}",
            path.display()
        ),
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    let mut b = Browser::new(gate.addr);
    let acs = sso(&mut b, "/", "user=alice&key=old").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    // The URL-configured gate lists only the current key.
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=alice&key=old").await;
    refused(
        &acs,
        StatusCode::FORBIDDEN,
        "refresh the IdP metadata",
        "old key",
    );

    let nocert = dir.path().join("nocert.xml");
    std::fs::write(&nocert, env.idp.metadata("nocert").await).expect("write");
    let keys = Keys::new();
    let text = config_text(
        &keys,
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_file = \"{}\"\n",
            nocert.display()
        ),
    );
    let err = load_config(&text, vec![], None).expect_err("no signing certificate");
    let msg = err.to_string();
    assert!(msg.contains("saml.idp_metadata_file"), "{msg}");
    assert!(msg.contains("no signing certificate"), "{msg}");
}

#[tokio::test]
async fn sp_metadata_names_entity_acs_and_advertises_no_encryption_key() {
    let env = Env::start("").await;
    let md = get(&env.gate.url("/_auth/saml/metadata"), &[]).await;
    let xml = md.text();
    assert!(
        xml.contains("entityID=\"http://gate.test/_auth/saml/metadata\""),
        "{xml}"
    );
    assert!(
        xml.contains("Location=\"http://gate.test/_auth/saml/acs\""),
        "{xml}"
    );
    assert!(xml.contains("urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"));
    assert!(xml.contains("nameid-format:emailAddress"));
    assert!(!xml.contains("use=\"encryption\""), "{xml}");
    assert!(!xml.contains("SingleLogoutService"), "{xml}");
    assert_eq!(md.headers["content-type"], "application/samlmetadata+xml");
}

#[tokio::test]
async fn oversized_and_malformed_posts_are_refused_with_a_page() {
    let env = Env::start("").await;
    let mut b = env.browser();
    let big = "A".repeat(300 * 1024);
    let p = b
        .send(
            "POST",
            "http://gate.test/_auth/saml/acs",
            Some(&[("SAMLResponse", big.as_str())]),
        )
        .await;
    assert_eq!(p.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", p.text());
    let p = b
        .send(
            "POST",
            "http://gate.test/_auth/saml/acs",
            Some(&[("SAMLResponse", "%%%not base64")]),
        )
        .await;
    refused(&p, StatusCode::BAD_REQUEST, "could not be read", "garbage");
    let p = b
        .send(
            "POST",
            "http://gate.test/_auth/saml/acs",
            Some(&[("x", "y")]),
        )
        .await;
    refused(
        &p,
        StatusCode::BAD_REQUEST,
        "could not be read",
        "no SAMLResponse",
    );
}

#[tokio::test]
async fn the_sso_admin_page_is_for_administrators_only() {
    let env = Env::start("").await;
    let mut admin = env.browser();
    let acs = sso(&mut admin, "/", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER);
    let page = admin.get("http://gate.test/_auth/admin/sso").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    let entity = env.idp.entity_id();
    for want in [
        "http://gate.test/_auth/saml/acs",
        "http://gate.test/_auth/saml/metadata",
        "http://gate.test/_auth/saml/login",
        "http://gate.test/_auth/logout",
        entity.as_str(),
        "test idp main",
        "ls-administrators",
        "Team A",
    ] {
        assert!(html.contains(want), "{want:?} missing: {html}");
    }
    let mut annotator = env.browser();
    sso(&mut annotator, "/", "user=entra").await;
    let page = annotator.get("http://gate.test/_auth/admin/sso").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let mut nobody = env.browser();
    let page = nobody.get("http://gate.test/_auth/admin/sso").await;
    assert_eq!(page.status, StatusCode::FOUND);
}

#[tokio::test]
async fn allowed_email_domains_are_enforced() {
    let env = Env::start("allowed_email_domains = [\"example.com\"]").await;
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=outsider").await;
    refused(&acs, StatusCode::FORBIDDEN, "other.org", "outsider");
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
}

#[tokio::test]
async fn keygen_saml_pair_is_published_and_accepted_by_the_idp() {
    let idp = Idp::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let (key, cert) = (dir.path().join("sp.key"), dir.path().join("sp.crt"));
    authgate::saml::write_sp_pair(&key, &cert, "authgate SAML SP", false).expect("keygen");
    assert!(
        authgate::saml::write_sp_pair(&key, &cert, "x", false).is_err(),
        "no silent overwrite"
    );
    // A key that does not belong to the certificate is a configuration error.
    let (key2, cert2) = (dir.path().join("b.key"), dir.path().join("b.crt"));
    authgate::saml::write_sp_pair(&key2, &cert2, "other", false).expect("keygen");
    let keys = Keys::new();
    let text = config_text(
        &keys,
        "http://127.0.0.1:1",
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\nsp_key = \"{}\"\nsp_cert = \"{}\"\n",
            idp.metadata_url(),
            key2.display(),
            cert.display()
        ),
    );
    let err = load_config(&text, vec![], None).expect_err("mismatched pair");
    assert!(err.to_string().contains("saml.sp_key"), "{err}");

    let env = Env::start_with(
        idp,
        &format!(
            "sp_key = \"{}\"\nsp_cert = \"{}\"",
            key.display(),
            cert.display()
        ),
    )
    .await;
    let md = get(&env.gate.url("/_auth/saml/metadata"), &[]).await.text();
    let pem = std::fs::read_to_string(&cert).expect("cert");
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert!(md.contains("use=\"signing\""), "{md}");
    assert!(md.contains(&b64), "the SP certificate is in the metadata");
    // With the key, the certificate is offered for encryption as well.
    assert_eq!(md.matches("use=\"encryption\"").count(), 1, "{md}");
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let ready = get(&env.gate.url("/_auth/readyz"), &[]).await.json();
    assert_eq!(ready["checks"]["saml_metadata"], "loaded", "{ready}");
}

#[tokio::test]
async fn a_failed_metadata_refresh_keeps_the_last_good_copy() {
    let Env { idp, up: _up, gate } = Env::start("").await;
    let sso = gate.state.saml.clone().expect("saml on");
    sso.refresh().await.expect("refresh while the IdP is up");
    assert!(sso.status().last_error.is_none());
    drop(idp); // the IdP (and its metadata URL) goes away
    assert!(sso.refresh().await.is_err());
    let status = sso.status();
    assert!(status.last_error.is_some(), "{status:?}");
    assert!(status.loaded_at.is_some());
    // Still serving with the last good metadata.
    let login = get(&gate.url("/_auth/saml/login"), &[]).await;
    assert_eq!(login.status, StatusCode::FOUND);
    let ready = get(&gate.url("/_auth/readyz"), &[]).await.json();
    assert!(
        ready["checks"]["saml_metadata"]
            .as_str()
            .is_some_and(|s| s.contains("last good copy")),
        "{ready}"
    );
}

#[tokio::test]
async fn the_request_state_cookie_survives_the_idps_cross_site_post_on_https() {
    let idp = Idp::start().await;
    let keys = Keys::new();
    let text = config_text(
        &keys,
        "http://127.0.0.1:1",
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n",
            idp.metadata_url()
        ),
    )
    .replace(
        "public_url = \"http://gate.test\"",
        "public_url = \"https://gate.test\"",
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    let r = get(&gate.url("/_auth/saml/login?rd=%2Fx"), &[]).await;
    assert_eq!(r.status, StatusCode::FOUND);
    let c = r.headers["set-cookie"].to_str().expect("ascii");
    assert!(c.starts_with("__Host-authgate-saml="), "{c}");
    for attr in [
        "Secure",
        "HttpOnly",
        "SameSite=None",
        "Path=/",
        "Max-Age=600",
    ] {
        assert!(c.contains(attr), "{attr} missing: {c}");
    }
    let location = r.headers["location"].to_str().expect("ascii");
    assert!(
        location.starts_with(&format!("{}/sso/redirect?SAMLRequest=", idp.base)),
        "{location}"
    );
    assert!(location.contains("RelayState=%2Fx"), "{location}");
}

#[tokio::test]
async fn with_ldap_on_too_the_login_page_offers_sso_above_the_directory_form() {
    let idp = Idp::start().await;
    let keys = Keys::new();
    let text = config_text(
        &keys,
        "http://127.0.0.1:1",
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n[ldap]\nenabled = true\nserver_uri = \"ldap://127.0.0.1:1\"\nuser_dn_template = \"uid=%(user)s,ou=users,dc=example,dc=com\"\n",
            idp.metadata_url()
        ),
    );
    let gate = Gate::start_with(keys, text, vec![]).await;
    let page = get(
        &gate.url("/_auth/login?rd=%2Fp"),
        &[("accept", "text/html")],
    )
    .await;
    let html = page.text();
    assert!(html.contains("Sign in with SSO"), "{html}");
    assert!(html.contains("/_auth/saml/login?rd=%2Fp"), "{html}");
    assert!(html.contains("name=\"password\""), "{html}");
    assert!(html.find("Sign in with SSO") < html.find("name=\"password\""));
}

/// A gate with an SP key pair (so it signs logout messages and advertises
/// its SingleLogoutService); the directory holds the pair.
async fn slo_env(extra: &str) -> (Env, tempfile::TempDir) {
    keyed_env(Idp::start().await, extra).await
}

async fn signed_in(env: &Env, user: &str) -> Browser {
    let mut b = env.browser();
    let acs = sso(&mut b, "/", &format!("user={user}")).await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    b
}

#[tokio::test]
async fn sp_initiated_single_logout_round_trip() {
    let (env, _dir) = slo_env("").await;
    let md = get(&env.gate.url("/_auth/saml/metadata"), &[]).await.text();
    assert!(
        md.contains("SingleLogoutService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" Location=\"http://gate.test/_auth/saml/slo\""),
        "{md}"
    );
    let mut b = signed_in(&env, "alice").await;
    let mut copy = b.clone();
    let out = b.get("http://gate.test/_auth/logout").await;
    assert_eq!(out.status, StatusCode::FOUND, "{}", out.text());
    let to_idp = out.location().expect("to the IdP");
    assert!(
        to_idp.starts_with(&format!("{}/slo/redirect?SAMLRequest=", env.idp.base)),
        "{to_idp}"
    );
    assert!(
        to_idp.contains(
            "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature="
        ),
        "{to_idp}"
    );
    // Revoked before the browser even reaches the IdP, copies included.
    assert!(!is_signed_in(&mut b).await);
    assert!(!is_signed_in(&mut copy).await);
    // pysaml2 verifies our query signature, then answers.
    let back = b.get(&to_idp).await;
    assert_eq!(back.status, StatusCode::FOUND, "IdP: {}", back.text());
    let back_url = back.location().expect("back to the SP");
    assert!(
        back_url.starts_with("http://gate.test/_auth/saml/slo?SAMLResponse="),
        "{back_url}"
    );
    let done = b.get(&back_url).await;
    assert_eq!(done.status, StatusCode::OK, "{}", done.text());
    assert!(
        done.text().contains("You are signed out"),
        "{}",
        done.text()
    );
    assert!(!done.text().contains("still be signed in"));
    // The answer is single use.
    let again = b.get(&back_url).await;
    assert_eq!(again.status, StatusCode::FORBIDDEN, "{}", again.text());

    // A LogoutResponse signed by a key the metadata does not list.
    let mut b = signed_in(&env, "alice").await;
    let to_idp = b
        .get("http://gate.test/_auth/logout")
        .await
        .location()
        .expect("to the IdP");
    let back = b.get(&format!("{to_idp}&respond_key=other")).await;
    let forged = b.get(&back.location().expect("back")).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN, "{}", forged.text());
    // And one with no signature at all.
    let mut b = signed_in(&env, "alice").await;
    let to_idp = b
        .get("http://gate.test/_auth/logout")
        .await
        .location()
        .expect("to the IdP");
    let back = b.get(&format!("{to_idp}&respond_key=none")).await;
    let unsigned = b.get(&back.location().expect("back")).await;
    assert_eq!(
        unsigned.status,
        StatusCode::FORBIDDEN,
        "{}",
        unsigned.text()
    );
    assert!(
        !is_signed_in(&mut b).await,
        "signed out locally all the same"
    );

    // A LogoutRequest the IdP did not get signed is refused by it (the
    // fixture's check works): strip our signature.
    let mut b = signed_in(&env, "alice").await;
    let to_idp = b
        .get("http://gate.test/_auth/logout")
        .await
        .location()
        .expect("to the IdP");
    let stripped = to_idp.split("&SigAlg=").next().expect("head").to_string();
    let refused = b.get(&stripped).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
}

/// Follows an IdP-initiated logout through `b` (redirect or post binding)
/// and returns the IdP's final page (its reading of our LogoutResponse),
/// or the gate's answer when the gate refused.
async fn idp_logout(env: &Env, b: &mut Browser, params: &str) -> Page {
    let sp = enc("http://gate.test/_auth/saml/metadata");
    let start = b
        .get(&format!("{}/idp-logout?sp={sp}&{params}", env.idp.base))
        .await;
    let at_gate = if start.status == StatusCode::OK {
        b.submit_form(&start).await
    } else {
        assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
        b.get(&start.location().expect("to the SP")).await
    };
    if at_gate.status != StatusCode::FOUND {
        return at_gate;
    }
    let to_idp = at_gate.location().expect("to the IdP");
    assert!(to_idp.starts_with(&env.idp.base), "{to_idp}");
    b.get(&to_idp).await
}

#[tokio::test]
async fn idp_initiated_logout_kills_every_session_of_the_user() {
    let (env, _dir) = slo_env("").await;
    for binding in ["redirect", "post"] {
        let mut first = signed_in(&env, "alice").await;
        let mut other_client = signed_in(&env, "alice").await;
        let mut bystander = signed_in(&env, "okta").await;
        let idp = idp_logout(
            &env,
            &mut first,
            &format!("user=alice&binding={binding}&relay=r1"),
        )
        .await;
        let text = idp.text();
        assert_eq!(idp.status, StatusCode::OK, "{binding}: {text}");
        assert!(text.contains("verified=True"), "{binding}: {text}");
        assert!(text.contains("status:Success"), "{binding}: {text}");
        assert!(text.contains("relay=r1"), "{binding}: {text}");
        assert!(!is_signed_in(&mut first).await, "{binding}");
        assert!(
            !is_signed_in(&mut other_client).await,
            "{binding}: the other client's session is revoked server-side"
        );
        assert!(is_signed_in(&mut bystander).await, "{binding}");
    }
    // By NameID alone (no SessionIndex): every session of the user.
    let mut a = signed_in(&env, "entra").await;
    let mut b = env.browser();
    let idp = idp_logout(&env, &mut b, "user=entra&index=none").await;
    assert!(idp.text().contains("status:Success"), "{}", idp.text());
    assert!(!is_signed_in(&mut a).await);
}

#[tokio::test]
async fn bad_or_unknown_logout_requests_kill_nothing() {
    let (env, _dir) = slo_env("").await;
    let mut alice = signed_in(&env, "alice").await;
    let cases = [
        ("unsigned, redirect", "user=alice&key=none"),
        ("unsigned, post", "user=alice&key=none&binding=post"),
        ("another key, redirect", "user=alice&key=other"),
        ("another key, post", "user=alice&key=other&binding=post"),
    ];
    for (case, params) in cases {
        let mut b = env.browser();
        let got = idp_logout(&env, &mut b, params).await;
        assert_eq!(got.status, StatusCode::FORBIDDEN, "{case}: {}", got.text());
        assert!(is_signed_in(&mut alice).await, "{case}: alice survives");
    }
    // A SessionIndex the user's sessions do not have.
    let mut b = env.browser();
    let got = idp_logout(&env, &mut b, "user=alice&index=bogus").await;
    assert!(got.text().contains("status:Success"), "{}", got.text());
    assert!(
        is_signed_in(&mut alice).await,
        "bogus index: alice survives"
    );
    // An unknown NameID: answered with Success, nobody signed out.
    let mut b = env.browser();
    let got = idp_logout(&env, &mut b, "user=alice&nameid=nobody%40example.com").await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text());
    assert!(got.text().contains("verified=True"), "{}", got.text());
    assert!(got.text().contains("status:Success"), "{}", got.text());
    assert!(
        is_signed_in(&mut alice).await,
        "unknown NameID: alice survives"
    );
    // A replayed LogoutRequest is refused.
    let sp = enc("http://gate.test/_auth/saml/metadata");
    let mut b = env.browser();
    let start = b
        .get(&format!("{}/idp-logout?sp={sp}&user=okta", env.idp.base))
        .await;
    let url = start.location().expect("to the SP");
    assert_eq!(b.get(&url).await.status, StatusCode::FOUND);
    assert_eq!(b.get(&url).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn without_an_sp_key_logout_stays_local_and_slo_is_not_advertised() {
    let env = Env::start("").await;
    let mut b = signed_in(&env, "alice").await;
    let out = b.get("http://gate.test/_auth/logout").await;
    assert_eq!(out.status, StatusCode::OK, "{}", out.text());
    assert!(!is_signed_in(&mut b).await);
}

/// A gate with an SP key pair in front of `idp`; `extra` are more `[saml]`
/// lines.
async fn keyed_env(idp: Idp, extra: &str) -> (Env, tempfile::TempDir) {
    let (dir, key, cert) = sp_pair();
    let env = Env::start_with(
        idp,
        &format!(
            "sp_key = \"{}\"\nsp_cert = \"{}\"\n{extra}",
            key.display(),
            cert.display()
        ),
    )
    .await;
    (env, dir)
}

#[tokio::test]
async fn signed_redirect_authn_requests_carry_the_flags_and_the_idp_verifies_them() {
    let idp = Idp::start_with(&["--want-signed"]).await;
    let (env, _dir) = keyed_env(
        idp,
        "sign_requests = true\nforce_authn = true\nrequested_authn_context = [\"PasswordProtectedTransport\"]\nrequested_authn_context_comparison = \"minimum\"\nname_id_format = \"email\"",
    )
    .await;
    let md = get(&env.gate.url("/_auth/saml/metadata"), &[]).await.text();
    assert!(md.contains("AuthnRequestsSigned=\"true\""), "{md}");
    // pysaml2 (want_authn_requests_signed) signs in only after verifying.
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());

    let mut b = env.browser();
    let to_idp = b
        .get("http://gate.test/_auth/saml/login?rd=%2Fp")
        .await
        .location()
        .expect("to the IdP");
    assert!(
        to_idp.contains(
            "&SigAlg=http%3A%2F%2Fwww.w3.org%2F2001%2F04%2Fxmldsig-more%23rsa-sha256&Signature="
        ),
        "{to_idp}"
    );
    let seen = b.get(&format!("{to_idp}&inspect=1")).await;
    let xml = seen.text();
    assert_eq!(seen.status, StatusCode::OK, "{xml}");
    for want in [
        "ForceAuthn=\"true\"",
        "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport",
        "Comparison=\"minimum\"",
        "Format=\"urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress\"",
    ] {
        assert!(xml.contains(want), "{want} missing: {xml}");
    }
    // Changed after signing, or unsigned: the IdP refuses.
    let changed = to_idp.replace("RelayState=%2Fp", "RelayState=%2Fq");
    assert_ne!(changed, to_idp);
    assert_eq!(b.get(&changed).await.status, StatusCode::FORBIDDEN);
    let unsigned = to_idp.split("&SigAlg=").next().expect("head").to_string();
    assert_eq!(b.get(&unsigned).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn post_binding_authn_requests_are_xml_signed_and_verified_by_the_idp() {
    use base64::Engine as _;
    let idp = Idp::start_with(&["--want-signed"]).await;
    let (env, _dir) = keyed_env(
        idp,
        "sign_requests = true\nauthn_request_binding = \"post\"",
    )
    .await;
    let mut b = env.browser();
    let page = b.get("http://gate.test/_auth/saml/login?rd=%2Fp").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let csp = page.headers["content-security-policy"]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains(&format!("form-action {}", env.idp.base)),
        "{csp}"
    );
    assert!(csp.contains("script-src 'sha256-"), "{csp}");
    let (action, fields) = common::idp::parse_form(&page.text());
    assert_eq!(action, format!("{}/sso/post", env.idp.base));
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    assert_eq!(field("RelayState"), "/p");
    let xml = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(field("SAMLRequest"))
            .expect("base64"),
    )
    .expect("utf8");
    assert!(xml.contains("SignatureValue"), "{xml}");
    let refs: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let form = b.send("POST", &action, Some(&refs)).await;
    assert_eq!(form.status, StatusCode::OK, "IdP: {}", form.text());
    let acs = b.submit_form(&form).await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    assert_eq!(acs.location().as_deref(), Some("/p"));

    // Altered after signing: the IdP refuses it.
    let forged = base64::engine::general_purpose::STANDARD
        .encode(xml.replace("/_auth/saml/acs", "/_auth/saml/acs?x"));
    let mut tampered: Vec<(&str, &str)> = vec![("SAMLRequest", forged.as_str())];
    tampered.push(("RelayState", "/p"));
    let refused = b.send("POST", &action, Some(&tampered)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.text());
}

fn cert_b64(path: &std::path::Path) -> String {
    let pem = std::fs::read_to_string(path).expect("cert");
    pem.lines().filter(|l| !l.starts_with("-----")).collect()
}

#[tokio::test]
async fn idp_and_sp_certificates_roll_over_and_a_reload_keeps_sessions() {
    let dir = tempfile::tempdir().expect("tmp");
    let pair = |name: &str| {
        let (k, c) = (
            dir.path().join(format!("{name}.key")),
            dir.path().join(format!("{name}.crt")),
        );
        authgate::saml::write_sp_pair(&k, &c, name, false).expect("keygen");
        (k, c)
    };
    let (key_a, cert_a) = pair("a");
    let (key_b, cert_b) = pair("b");
    let (_key_o, cert_o) = pair("o");
    // The configured files: pair A now, O's certificate still published.
    let (key, cert, prev) = (
        dir.path().join("sp.key"),
        dir.path().join("sp.crt"),
        dir.path().join("prev.crt"),
    );
    std::fs::copy(&key_a, &key).expect("copy");
    std::fs::copy(&cert_a, &cert).expect("copy");
    std::fs::copy(&cert_o, &prev).expect("copy");
    let idp = Idp::start().await;
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = config_text(
        &keys,
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\nsp_key = \"{}\"\nsp_cert = \"{}\"\nsp_previous_certs = [\"{}\"]\n{MAPPING}",
            idp.metadata_url(),
            key.display(),
            cert.display(),
            prev.display()
        ),
    );
    let load = |text: &str| load_config(text, vec![], None);
    let bound = authgate::App::build(load(&text).expect("config"))
        .expect("build")
        .bind()
        .expect("bind");
    let live = bound.live();
    let addr = bound.addr;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    let metadata = || async {
        get(&format!("http://{addr}/_auth/saml/metadata"), &[])
            .await
            .text()
    };
    let md = metadata().await;
    assert!(md.contains(&cert_b64(&cert_a)), "current certificate: {md}");
    assert!(
        md.contains(&cert_b64(&cert_o)),
        "previous certificate: {md}"
    );
    assert_eq!(md.matches("use=\"signing\"").count(), 2, "{md}");
    idp.register_sp(&md).await;

    // IdP rollover through a metadata refresh: the IdP starts listing its
    // next key, and responses signed with it are accepted after refresh.
    let mut b = Browser::new(addr);
    let acs = sso(&mut b, "/", "user=alice&key=old").await;
    assert_eq!(acs.status, StatusCode::FORBIDDEN, "not listed yet");
    idp.set_metadata_variant("rollover").await;
    let sso_now = live.current().saml.clone().expect("saml on");
    sso_now.refresh().await.expect("refresh");
    let mut b = Browser::new(addr);
    let acs = sso(&mut b, "/", "user=alice&key=old").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let mut alice = Browser::new(addr);
    let acs = sso(&mut alice, "/", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());

    // SP key rollover by a configuration reload (what SIGHUP does): B is
    // the key now, A stays published; the IdP drops its old certificate.
    std::fs::copy(&key_b, &key).expect("copy");
    std::fs::copy(&cert_b, &cert).expect("copy");
    std::fs::copy(&cert_a, &prev).expect("copy");
    idp.set_metadata_variant("").await;
    live.reload(load(&text).expect("config"))
        .await
        .expect("reload");
    let md = metadata().await;
    assert!(md.contains(&cert_b64(&cert_b)), "B in force: {md}");
    assert!(md.contains(&cert_b64(&cert_a)), "A in the window: {md}");
    assert!(!md.contains(&cert_b64(&cert_o)), "O is gone: {md}");
    assert!(
        is_signed_in(&mut alice).await,
        "sessions survive the reload"
    );
    let mut b = Browser::new(addr);
    let acs = sso(&mut b, "/", "user=alice&key=old").await;
    assert_eq!(
        acs.status,
        StatusCode::FORBIDDEN,
        "the IdP's old key is gone"
    );
    // Logout messages are signed with B: the IdP, given our new metadata,
    // verifies them.
    idp.register_sp(&md).await;
    let to_idp = alice
        .get("http://gate.test/_auth/logout")
        .await
        .location()
        .expect("to the IdP");
    let back = alice.get(&to_idp).await;
    assert_eq!(back.status, StatusCode::FOUND, "IdP: {}", back.text());

    // A certificate that does not match the key: the configuration is
    // refused, the one in force stays.
    std::fs::copy(&cert_a, &cert).expect("copy");
    let err = load(&text).expect_err("mismatched pair");
    assert!(err.to_string().contains("saml.sp_key"), "{err}");
    assert_eq!(metadata().await, md);
    let _ = tx.send(());
    let _ = task.await;
}

/// A refused sign-in (see `refused`) that also left a `login_failure`
/// audit line with the page's request id and a reason.
fn refused_audited(acs: &Page, status: StatusCode, words: &str, case: &str) {
    refused(acs, status, words, case);
    let id = acs
        .headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let lines = audit::for_request(id);
    assert!(
        lines.iter().any(
            |l| l.get("event").map(String::as_str) == Some("login_failure")
                && l.get("reason").is_some_and(|r| !r.is_empty())
        ),
        "{case}: audit line for {id}: {lines:?}"
    );
}

#[tokio::test]
async fn encrypted_assertions_decrypt_with_every_algorithm_and_signing_mode() {
    audit::install();
    let (env, _dir) = keyed_env(Idp::start().await, "").await;
    let md = get(&env.gate.url("/_auth/saml/metadata"), &[]).await.text();
    assert_eq!(md.matches("use=\"encryption\"").count(), 1, "{md}");
    assert!(
        md.contains(
            "<md:EncryptionMethod Algorithm=\"http://www.w3.org/2009/xmlenc11#aes256-gcm\"/>"
        ),
        "{md}"
    );
    // The IdP encrypts to the certificate it read from that metadata.
    let cases = [
        ("aes128-cbc", "assertion"),
        ("aes256-cbc", "response"),
        ("aes128-gcm", "both"),
        ("aes256-gcm", "assertion"),
        ("aes256-gcm", "response"),
        ("aes128-cbc", "both"),
    ];
    for (enc, sign) in cases {
        let case = format!("{enc}, {sign} signed");
        let mut b = env.browser();
        let acs = sso(&mut b, "/p", &format!("user=okta&enc={enc}&sign={sign}")).await;
        assert_eq!(acs.status, StatusCode::SEE_OTHER, "{case}: {}", acs.text());
        assert_eq!(acs.location().as_deref(), Some("/p"), "{case}");
        let info = userinfo(&mut b).await;
        assert_eq!(info["sub"], "00u1okta", "{case}: {info}");
        assert_eq!(info["email"], "olga@example.com", "{case}: {info}");
        assert_eq!(info["role"], "reviewer", "{case}: {info}");
    }
    // Plain assertions are still accepted while encryption is optional.
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
}

#[tokio::test]
async fn encrypted_assertions_that_are_unsigned_altered_misaddressed_or_wrapped_are_refused() {
    audit::install();
    let (env, _dir) = keyed_env(Idp::start().await, "").await;
    let f = StatusCode::FORBIDDEN;
    let cases: &[(&str, &str, &str)] = &[
        (
            "encrypted, nothing signed",
            "enc=aes128-gcm&sign=none",
            "unsigned",
        ),
        (
            "encrypted to a certificate the SP does not have",
            "enc=aes128-gcm&enc_to=other",
            "could not be decrypted",
        ),
        (
            "GCM ciphertext altered, assertion signed",
            "enc=aes128-gcm&post=tamper_cipher",
            "could not be decrypted",
        ),
        (
            "GCM ciphertext altered, response signed",
            "enc=aes256-gcm&sign=response&post=tamper_cipher",
            "not signed by a certificate",
        ),
        (
            "CBC ciphertext altered, response signed",
            "enc=aes128-cbc&sign=response&post=tamper_cipher",
            "not signed by a certificate",
        ),
        (
            "encrypted assertion signed by an unknown key",
            "enc=aes128-gcm&key=other",
            "not signed by a certificate",
        ),
        (
            "encrypted, response signed by an unknown key",
            "enc=aes128-gcm&sign=response&key=other",
            "not signed by a certificate",
        ),
        (
            "the signed assertion in plain next to its encrypted copy",
            "enc=aes128-gcm&post=enc_plus_plain",
            "structure",
        ),
        (
            "a forged plain assertion before the encrypted one, response signed",
            "enc=aes128-gcm&sign=response&post=enc_plus_forged",
            "structure",
        ),
        ("3DES content encryption", "enc=3des", "algorithm"),
        (
            "RSA 1.5 key transport",
            "enc=aes128-cbc&enc_key=rsa15",
            "algorithm",
        ),
        (
            "encrypted for another audience",
            "enc=aes128-gcm&pre=wrong_audience",
            "Audience",
        ),
        (
            "encrypted, response signed, status not Success",
            "enc=aes128-gcm&sign=response&pre=status_fail",
            "AuthnFailed",
        ),
    ];
    for (case, params, words) in cases {
        let mut b = env.browser();
        let acs = sso(&mut b, "/", &format!("user=alice&{params}")).await;
        refused_audited(&acs, f, words, case);
        let me = b.get("http://gate.test/_auth/userinfo").await;
        assert_eq!(me.status, StatusCode::UNAUTHORIZED, "{case}: not signed in");
    }
    // CBC altered with only the assertion signed: garbage plaintext is
    // refused, whether as XML or by the signature.
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=alice&enc=aes128-cbc&post=tamper_cipher").await;
    assert_eq!(acs.status, f, "{}", acs.text());
    assert!(
        audit::for_request(acs.headers["x-request-id"].to_str().unwrap_or_default())
            .iter()
            .any(|l| l.get("event").map(String::as_str) == Some("login_failure"))
    );
    assert!(
        !env.up.requests().iter().any(|r| r
            .headers
            .get("x-forwarded-user")
            .is_some_and(|v| v == "victim@example.com")),
        "the forged user never reached the upstream"
    );
}

#[tokio::test]
async fn require_encrypted_assertions_refuses_plain_ones_and_needs_a_key() {
    audit::install();
    let (env, _dir) = keyed_env(Idp::start().await, "require_encrypted_assertions = true").await;
    for sign in ["assertion", "response", "both"] {
        let mut b = env.browser();
        let acs = sso(&mut b, "/", &format!("user=alice&sign={sign}")).await;
        refused_audited(
            &acs,
            StatusCode::FORBIDDEN,
            "only encrypted assertions",
            sign,
        );
    }
    let mut b = env.browser();
    let acs = sso(&mut b, "/", "user=alice&enc=aes128-gcm").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());

    // Without an SP key there is nothing to decrypt with.
    let keys = Keys::new();
    let text = config_text(
        &keys,
        "http://127.0.0.1:9",
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\nrequire_encrypted_assertions = true\n",
            env.idp.metadata_url()
        ),
    );
    let err = load_config(&text, vec![], None).expect_err("no key");
    assert!(
        err.to_string()
            .contains("saml.require_encrypted_assertions"),
        "{err}"
    );
}

#[tokio::test]
async fn during_sp_key_rollover_assertions_encrypted_to_the_old_key_still_decrypt() {
    audit::install();
    let dir = tempfile::tempdir().expect("tmp");
    let pair = |name: &str| {
        let (k, c) = (
            dir.path().join(format!("{name}.key")),
            dir.path().join(format!("{name}.crt")),
        );
        authgate::saml::write_sp_pair(&k, &c, name, false).expect("keygen");
        (k, c)
    };
    let (key_a, cert_a) = pair("a");
    let (key_b, cert_b) = pair("b");
    let idp = Idp::start().await;
    let up = Upstream::start().await;
    let gate = |saml: String| {
        let keys = Keys::new();
        let text = config_text(
            &keys,
            &up.url(),
            &format!(
                "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n{saml}\n{MAPPING}",
                idp.metadata_url()
            ),
        );
        Gate::start_with(keys, text, vec![])
    };
    // The IdP learns key A's certificate from the metadata of the gate
    // before the rollover.
    let before = gate(format!(
        "sp_key = \"{}\"\nsp_cert = \"{}\"",
        key_a.display(),
        cert_a.display()
    ))
    .await;
    idp.register_gate(&before).await;
    // B is the key now; A is still published and still decrypts.
    let rolled = format!(
        "sp_key = \"{}\"\nsp_cert = \"{}\"\nsp_previous_certs = [\"{}\"]\n",
        key_b.display(),
        cert_b.display(),
        cert_a.display()
    );
    let during = gate(format!(
        "{rolled}sp_previous_keys = [\"{}\"]",
        key_a.display()
    ))
    .await;
    let md_during = get(&during.url("/_auth/saml/metadata"), &[]).await.text();
    assert_eq!(md_during.matches("use=\"encryption\"").count(), 1);
    let enc_cert = |md: &str| {
        let i = md.find("use=\"encryption\"").expect("encryption key");
        let j = md[i..].find("<ds:X509Certificate>").expect("cert") + i + 20;
        md[j..j + md[j..].find('<').expect("end")].to_string()
    };
    assert_eq!(
        enc_cert(&md_during),
        cert_b64(&cert_b),
        "B encrypts from now on"
    );
    let mut b = Browser::new(during.addr);
    let acs = sso(&mut b, "/", "user=alice&enc=aes128-gcm").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "old key: {}", acs.text());
    // A metadata refresh keeps the earlier keys.
    during
        .state
        .saml
        .clone()
        .expect("saml")
        .refresh()
        .await
        .expect("refresh");
    let mut b = Browser::new(during.addr);
    let acs = sso(&mut b, "/", "user=alice&enc=aes256-cbc&sign=response").await;
    assert_eq!(
        acs.status,
        StatusCode::SEE_OTHER,
        "after refresh: {}",
        acs.text()
    );
    // Without A's key the same message does not open.
    let after = gate(rolled).await;
    let mut b = Browser::new(after.addr);
    let acs = sso(&mut b, "/", "user=alice&enc=aes128-gcm").await;
    refused_audited(
        &acs,
        StatusCode::FORBIDDEN,
        "could not be decrypted",
        "old key gone",
    );
    // Once the IdP has the new metadata, it encrypts to B.
    idp.register_sp(&md_during).await;
    let mut b = Browser::new(after.addr);
    let acs = sso(&mut b, "/", "user=alice&enc=aes128-gcm").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "new key: {}", acs.text());
}

/// Two IdPs (two pysaml2 processes: other entity IDs, other keys) in front
/// of one gate with an SP key: the first from `[saml]`, "beta" from
/// `[[saml.idps]]` with its own attribute names (Okta style, built-in
/// aliases off so the difference shows).
async fn two_idps() -> (Idp, Idp, Upstream, Gate, tempfile::TempDir) {
    two_idp_gate(
        "builtin_attribute_aliases = false",
        "attr_email = \"email\"\nattr_first_name = \"firstName\"\nattr_last_name = \"lastName\"\nattr_groups = \"groups\"\n",
        MAPPING,
    )
    .await
}

#[tokio::test]
async fn several_idps_each_sign_in_with_their_own_metadata_and_mapping() {
    audit::install();
    let (a, _b, _up, gate, _dir) = two_idps().await;
    // One button per IdP on the login page.
    let page = get(
        &gate.url("/_auth/login?rd=%2Fp"),
        &[("accept", "text/html")],
    )
    .await
    .text();
    assert!(
        page.contains(
            "id=\"sso\" href=\"/_auth/saml/login?idp=default&amp;rd=%2Fp\">Sign in with Alpha</a>"
        ),
        "{page}"
    );
    assert!(
        page.contains(
            "id=\"sso-beta\" href=\"/_auth/saml/login?idp=beta&amp;rd=%2Fp\">Sign in with Beta</a>"
        ),
        "{page}"
    );

    // The first IdP through its button, with [saml]'s attribute names.
    let mut br = Browser::new(gate.addr);
    let acs = sso(&mut br, "/", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    assert_eq!(userinfo(&mut br).await["email"], "alice@example.com");
    assert!(br
        .get("http://gate.test/_auth/saml/login")
        .await
        .location()
        .expect("to A")
        .starts_with(&a.base));

    // Beta, by ?idp=, with its own attribute names (and encrypted).
    let mut br = Browser::new(gate.addr);
    let acs = sso_at(&mut br, "beta", "user=okta&enc=aes256-gcm").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    assert_eq!(acs.location().as_deref(), Some("/x"));
    let info = userinfo(&mut br).await;
    assert_eq!(info["email"], "olga@example.com", "{info}");
    assert_eq!(info["role"], "reviewer", "{info}");
    // The same Okta-style user at the first IdP: [saml]'s names, no email.
    let mut br = Browser::new(gate.addr);
    let acs = sso_at(&mut br, "default", "user=okta").await;
    refused_audited(
        &acs,
        StatusCode::FORBIDDEN,
        "did not send your email",
        "mapping per IdP",
    );

    // An unknown IdP id.
    let mut br = Browser::new(gate.addr);
    let unknown = br.get("http://gate.test/_auth/saml/login?idp=nope").await;
    assert_eq!(
        unknown.status,
        StatusCode::BAD_REQUEST,
        "{}",
        unknown.text()
    );

    // Replays are refused per IdP as before.
    let mut br = Browser::new(gate.addr);
    let url = br
        .get("http://gate.test/_auth/saml/login?idp=beta&rd=%2Fx")
        .await
        .location()
        .expect("to B");
    let form = br.get(&format!("{url}&user=okta")).await;
    let mut thief = br.clone();
    assert_eq!(br.submit_form(&form).await.status, StatusCode::SEE_OTHER);
    let again = thief.submit_form(&form).await;
    refused_audited(
        &again,
        StatusCode::FORBIDDEN,
        "already used",
        "replay at beta",
    );
}

#[tokio::test]
async fn a_response_is_verified_only_against_the_idp_it_names() {
    audit::install();
    let (a, b_idp, _up, gate, _dir) = two_idps().await;
    let a_entity = a.entity_id();
    // B answers a request started at B, but claims to be A (signed with
    // B's key): routed to A by its Issuer, A's certificates refuse it.
    for sign in ["assertion", "response", "both"] {
        let mut br = Browser::new(gate.addr);
        let acs = sso_at(
            &mut br,
            "beta",
            &format!("user=alice&sign={sign}&pre=issuer_as&as={}", enc(&a_entity)),
        )
        .await;
        refused_audited(
            &acs,
            StatusCode::FORBIDDEN,
            "not signed by a certificate this service trusts",
            &format!("B claiming A, {sign} signed"),
        );
    }
    // A request started at A, answered by B (honestly as B): its
    // InResponseTo names no request this browser sent to B.
    let mut br = Browser::new(gate.addr);
    let url_a = br
        .get("http://gate.test/_auth/saml/login?rd=%2Fx")
        .await
        .location()
        .expect("to A");
    assert!(url_a.starts_with(&a.base), "{url_a}");
    let seen = br.get(&format!("{url_a}&inspect=1")).await.text();
    let i = seen.find(" ID=\"").expect("request ID") + 5;
    let a_id = seen[i..i + seen[i..].find('"').expect("end")].to_string();
    let url_b = br
        .get("http://gate.test/_auth/saml/login?idp=beta&rd=%2Fx")
        .await
        .location()
        .expect("to B");
    assert!(url_b.starts_with(&b_idp.base), "{url_b}");
    let form = br
        .get(&format!("{url_b}&user=alice&pre=irt&irt={a_id}"))
        .await;
    let acs = br.clone().submit_form(&form).await;
    refused_audited(
        &acs,
        StatusCode::FORBIDDEN,
        "not started from this browser",
        "request of A answered by B",
    );
    // Both requests answered by their own IdP work.
    let form = br.get(&format!("{url_b}&user=okta")).await;
    assert_eq!(br.submit_form(&form).await.status, StatusCode::SEE_OTHER);
    let form = br.get(&format!("{url_a}&user=alice")).await;
    let acs = br.submit_form(&form).await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
}

#[tokio::test]
async fn single_logout_goes_to_the_idp_of_the_session() {
    let (a, b_idp, _up, gate, _dir) = two_idps().await;
    for (idp, base, user) in [("beta", &b_idp.base, "okta"), ("default", &a.base, "alice")] {
        let mut br = Browser::new(gate.addr);
        let acs = sso_at(&mut br, idp, &format!("user={user}")).await;
        assert_eq!(acs.status, StatusCode::SEE_OTHER, "{idp}: {}", acs.text());
        let out = br.get("http://gate.test/_auth/logout").await;
        assert_eq!(out.status, StatusCode::FOUND, "{idp}: {}", out.text());
        let to_idp = out.location().expect("to the IdP");
        assert!(
            to_idp.starts_with(&format!("{base}/slo/redirect?SAMLRequest=")),
            "{idp}: {to_idp}"
        );
        // That IdP verifies our LogoutRequest and answers; the answer
        // (signed by it) is accepted.
        let back = br.get(&to_idp).await;
        assert_eq!(back.status, StatusCode::FOUND, "{idp}: {}", back.text());
        let done = br.get(&back.location().expect("back")).await;
        assert!(
            done.text().contains("You are signed out"),
            "{idp}: {}",
            done.text()
        );
    }
    // IdP-initiated logout from beta: verified with beta's key, answered
    // to beta.
    let mut br = Browser::new(gate.addr);
    let acs = sso_at(&mut br, "beta", "user=okta").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let sp = enc("http://gate.test/_auth/saml/metadata");
    let mut other = Browser::new(gate.addr);
    let start = other
        .get(&format!("{}/idp-logout?sp={sp}&user=okta", b_idp.base))
        .await;
    let at_gate = other.get(&start.location().expect("to the SP")).await;
    assert_eq!(at_gate.status, StatusCode::FOUND, "{}", at_gate.text());
    let to_b = at_gate.location().expect("to B");
    assert!(to_b.starts_with(&b_idp.base), "{to_b}");
    let verdict = other.get(&to_b).await.text();
    assert!(verdict.contains("verified=True"), "{verdict}");
    assert!(!is_signed_in(&mut br).await, "the beta session is gone");
}
