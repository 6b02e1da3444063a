//! What a real IdP deployment meets after the happy path, against the
//! pysaml2 IdP (`tests/idp/idp.py`): Entra ID's "groups overage" claim,
//! Single Logout with several IdPs that may share a NameID, the SSO page
//! listing every IdP, and signed metadata.

mod common;

use common::audit;
use common::client::get;
use common::cookies::enc;
use common::gate::{config_text, identity, load_config, Gate, Keys};
use common::idp::{is_signed_in, saml_gate, sso_at, two_idp_gate, Browser, Idp};
use common::upstream::Upstream;
use http::StatusCode;

/// `default_role = "annotator"`: a user without groups would be let in as
/// an annotator, which is exactly what an overage must not do.
const MAPPING: &str = r#"
[mapping]
owner_email = "owner@example.com"
default_role = "annotator"
[mapping.roles]
administrator = ["ls-administrators"]
reviewer = ["ls-reviewers"]
annotator = ["ls-annotators"]
"#;

/// One IdP in front of a gate (no SP key).
async fn one_idp(extra: &str) -> (Idp, Upstream, Gate) {
    let idp = Idp::start().await;
    let (up, gate) = saml_gate(&idp, extra, MAPPING).await;
    (idp, up, gate)
}

#[tokio::test]
async fn a_groups_overage_refuses_the_sign_in_with_what_the_idp_admin_must_change() {
    audit::install();
    let (_idp, up, gate) = one_idp("").await;
    for (user, nameid) in [
        ("overage", "entra-object-id-2"),
        ("overage_roles", "entra-object-id-3"),
    ] {
        let mut b = Browser::new(gate.addr);
        let acs = sso_at(&mut b, "default", &format!("user={user}")).await;
        let text = acs.text();
        assert_eq!(acs.status, StatusCode::FORBIDDEN, "{user}: {text}");
        for words in [
            "more groups than your identity provider puts in a sign-in",
            "150",
            "groups assigned to the application",
            "group filter",
            "app roles",
        ] {
            assert!(text.contains(words), "{user}: {words:?} in {text}");
        }
        let id = acs
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .expect("request id")
            .to_string();
        assert!(text.contains(&id), "{user}: the page shows the request id");
        assert!(
            acs.headers.get_all("set-cookie").iter().all(|c| {
                let c = c.to_str().unwrap_or("");
                !c.starts_with("authgate=") || c.contains("Max-Age=0")
            }),
            "{user}: no session"
        );
        assert!(!is_signed_in(&mut b).await, "{user}: not signed in");
        let lines = audit::for_request(&id);
        assert!(
            lines.iter().any(|l| {
                l.get("event").map(String::as_str) == Some("login_refused")
                    && l.get("reason").map(String::as_str) == Some("groups_overage")
                    && l.get("subject").map(String::as_str) == Some(nameid)
            }),
            "{user}: audit line: {lines:?}"
        );
        assert!(
            lines.iter().any(|l| {
                l.get("event").map(String::as_str) == Some("login_failure")
                    && l.get("reason")
                        .is_some_and(|r| r.contains("groups overage"))
            }),
            "{user}: failure line with the cause: {lines:?}"
        );
    }
    // Nothing reached the upstream with a default role.
    assert!(up.requests().is_empty(), "{:?}", up.requests().len());
    // The same IdP, a user whose groups are sent, still signs in.
    let mut b = Browser::new(gate.addr);
    let acs = sso_at(&mut b, "default", "user=entra").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
}

/// Two IdPs (A in `[saml]`, "beta" in `[[saml.idps]]`) in front of one
/// gate with an SP key, so both can send LogoutRequests.
async fn two_idps(extra: &str) -> (Idp, Idp, Upstream, Gate, tempfile::TempDir) {
    two_idp_gate(extra, "", MAPPING).await
}

/// An IdP-initiated logout from `idp` for `user` without SessionIndex;
/// returns the IdP's verdict on our LogoutResponse.
async fn logout_from(gate: &Gate, idp: &Idp, user: &str) -> String {
    let sp = enc("http://gate.test/_auth/saml/metadata");
    let mut b = Browser::new(gate.addr);
    let start = b
        .get(&format!(
            "{}/idp-logout?sp={sp}&user={user}&index=none",
            idp.base
        ))
        .await;
    assert_eq!(start.status, StatusCode::FOUND, "{}", start.text());
    let at_gate = b.get(&start.location().expect("to the SP")).await;
    assert_eq!(at_gate.status, StatusCode::FOUND, "{}", at_gate.text());
    let back = at_gate.location().expect("to the IdP");
    assert!(back.starts_with(&idp.base), "answered to that IdP: {back}");
    b.get(&back).await.text()
}

#[tokio::test]
async fn single_logout_without_session_index_ends_only_the_sessions_of_that_idp() {
    let (a, beta, _up, gate, _dir) = two_idps("").await;
    // The same NameID (sam@example.com) signed in at each IdP.
    let mut at_a = Browser::new(gate.addr);
    let acs = sso_at(&mut at_a, "default", "user=shared").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let mut at_a_too = Browser::new(gate.addr);
    let acs = sso_at(&mut at_a_too, "default", "user=shared").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let mut at_beta = Browser::new(gate.addr);
    let acs = sso_at(&mut at_beta, "beta", "user=shared").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());

    // Beta ends its user's sessions: only the one signed in at beta.
    let verdict = logout_from(&gate, &beta, "shared").await;
    assert!(verdict.contains("verified=True"), "{verdict}");
    assert!(verdict.contains("status:Success"), "{verdict}");
    assert!(!is_signed_in(&mut at_beta).await, "beta's session ended");
    assert!(
        is_signed_in(&mut at_a).await,
        "A's session survives beta's SLO"
    );
    assert!(is_signed_in(&mut at_a_too).await);

    // A ends its own: both of A's, whatever browser.
    let verdict = logout_from(&gate, &a, "shared").await;
    assert!(verdict.contains("status:Success"), "{verdict}");
    assert!(!is_signed_in(&mut at_a).await);
    assert!(!is_signed_in(&mut at_a_too).await);
}

#[tokio::test]
async fn the_sso_page_lists_every_idp_with_its_metadata_status_and_certificate_expiry() {
    let (a, beta, _up, gate, _dir) = two_idps("").await;
    let admin = gate
        .login(identity(
            "uid=root",
            "owner@example.com",
            Some("owner"),
            &[],
        ))
        .await;
    let page = get(
        &gate.url("/_auth/admin/sso"),
        &[("cookie", &admin), ("accept", "text/html")],
    )
    .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.text());
    let html = page.text();
    for (id, name, idp) in [("default", "Alpha", &a), ("beta", "Beta", &beta)] {
        let head = format!("<h3 id=\"idp-{id}\">{name} (<code>{id}</code>)</h3>");
        let i = html
            .find(&head)
            .unwrap_or_else(|| panic!("{head} in {html}"));
        let table = &html[i..];
        let table = &table[..table.find("</table>").expect("table end")];
        assert!(
            table.contains(&format!("id=\"metadata-status-{id}\"")),
            "{table}"
        );
        assert!(table.contains(&idp.entity_id()), "{id}: {table}");
        assert!(table.contains(&idp.metadata_url()), "{id}: {table}");
        assert!(table.contains("loaded, current"), "{id}: {table}");
        assert!(table.contains("Signing certificate"), "{id}: {table}");
        assert!(table.contains("test idp main"), "{id}: {table}");
        assert!(table.contains("— expires "), "{id}: {table}");
    }
    // Beta's metadata goes away: beta shows the failure, A does not.
    drop(beta);
    let state = gate.state.clone();
    let _ = state.saml.as_ref().expect("saml").refresh().await;
    let html = get(
        &gate.url("/_auth/admin/sso"),
        &[("cookie", &admin), ("accept", "text/html")],
    )
    .await
    .text();
    let beta_part = &html[html.find("id=\"idp-beta\"").expect("beta")..];
    let alpha_part = &html[html.find("id=\"idp-default\"").expect("alpha")..];
    let alpha_part = &alpha_part[..alpha_part.find("</table>").expect("end")];
    assert!(beta_part.contains("the last refresh failed"), "{beta_part}");
    assert!(alpha_part.contains("loaded, current"), "{alpha_part}");
}

/// The configuration's error, or the gate's build error, as text (the
/// gate is not started).
fn start_error(extra: &str, up: &Upstream) -> String {
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), extra);
    let cfg = match load_config(&text, vec![], None) {
        Ok(c) => c,
        Err(e) => return e.to_string(),
    };
    match authgate::App::build(cfg) {
        Ok(_) => panic!("the gate started: {extra}"),
        Err(e) => e.to_string(),
    }
}

/// The IdP's certificate of `key` (`main`, `other`...), as its PEM file.
fn idp_cert(idp: &Idp, key: &str) -> String {
    idp.dir
        .path()
        .join(format!("{key}.crt"))
        .display()
        .to_string()
}

async fn readyz(gate: &Gate) -> serde_json::Value {
    get(&gate.url("/_auth/readyz"), &[]).await.json()
}

async fn stale_metric(gate: &Gate, idp: &str) -> String {
    let addr = gate.metrics_addr.expect("metrics listener");
    let text = get(&format!("http://{addr}/metrics"), &[]).await.text();
    let key = format!("authgate_saml_metadata_stale{{idp=\"{idp}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .unwrap_or_else(|| panic!("{key} in {text}"))
        .to_string()
}

#[tokio::test]
async fn signed_metadata_is_verified_at_start_and_anything_else_is_refused_naming_the_key() {
    let idp = Idp::start().await;
    let up = Upstream::start().await;
    let trust = idp_cert(&idp, "main");
    let with = |query: &str| {
        format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}?{query}\"\nmetadata_signing_cert = \"{trust}\"\n{MAPPING}",
            idp.metadata_url()
        )
    };
    for (query, words) in [
        ("sign=none", "the IdP metadata is not signed"),
        (
            "sign=other",
            "does not verify with the certificate(s) of saml.metadata_signing_cert",
        ),
        ("sign=main&tamper=1", "does not verify"),
        ("sign_part=main", "does not cover the IdP's entity"),
        ("sign=main&valid_until=past", "validUntil"),
    ] {
        let msg = start_error(&with(query), &up);
        assert!(msg.contains(words), "{query}: {msg}");
        if query != "sign=main&valid_until=past" {
            assert!(msg.contains("saml.metadata_signing_cert"), "{query}: {msg}");
        }
    }

    // Signed by the trusted key and current: it starts, sign-in works, and
    // the SSO page says how the metadata was trusted.
    let gate = Gate::start(&up.url(), &with("sign=main&valid_until=future")).await;
    idp.register_gate(&gate).await;
    let mut b = Browser::new(gate.addr);
    let acs = sso_at(&mut b, "default", "user=alice").await;
    assert_eq!(acs.status, StatusCode::SEE_OTHER, "{}", acs.text());
    let admin = gate
        .login(identity(
            "uid=root",
            "owner@example.com",
            Some("owner"),
            &[],
        ))
        .await;
    let html = get(
        &gate.url("/_auth/admin/sso"),
        &[("cookie", &admin), ("accept", "text/html")],
    )
    .await
    .text();
    assert!(
        html.contains("verified with the certificate of saml.metadata_signing_cert"),
        "{html}"
    );
    assert!(!html.contains("EXPIRED"), "{html}");

    // A metadata file is checked by the configuration itself.
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("idp.xml");
    std::fs::write(&file, idp.metadata("").await).expect("write");
    let msg = start_error(
        &format!(
            "[saml]\nenabled = true\nidp_metadata_file = \"{}\"\nmetadata_signing_cert = \"{trust}\"\n",
            file.display()
        ),
        &up,
    );
    assert!(msg.contains("saml.metadata_signing_cert"), "{msg}");
    assert!(msg.contains("not signed"), "{msg}");
    // A certificate file that holds none.
    let msg = start_error(
        &format!(
            "[saml]\nenabled = true\nidp_metadata_file = \"{}\"\nmetadata_signing_cert = \"{}\"\n",
            file.display(),
            file.display()
        ),
        &up,
    );
    assert!(msg.contains("saml.metadata_signing_cert"), "{msg}");
    assert!(msg.contains("holds no PEM certificate"), "{msg}");

    // Each [[saml.idps]] with its own certificate, named by its own key.
    let beta = Idp::start().await;
    let msg = start_error(
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n\n[[saml.idps]]\nid = \"beta\"\nidp_metadata_url = \"{}?sign=main\"\nmetadata_signing_cert = \"{trust}\"\n",
            idp.metadata_url(),
            beta.metadata_url()
        ),
        &up,
    );
    assert!(
        msg.contains("saml.idps.0.metadata_signing_cert"),
        "signed by beta's key, checked with the first IdP's: {msg}"
    );
    let ok = Gate::start(
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\n\n[[saml.idps]]\nid = \"beta\"\nidp_metadata_url = \"{}?sign=main\"\nmetadata_signing_cert = \"{}\"\n",
            idp.metadata_url(),
            beta.metadata_url(),
            idp_cert(&beta, "main")
        ),
    )
    .await;
    let sso = ok.state.saml.clone().expect("saml");
    let signed: Vec<Option<String>> = sso
        .providers()
        .iter()
        .map(|p| p.loaded().idp.signed_by.clone())
        .collect();
    assert_eq!(
        signed,
        vec![None, Some("saml.idps.0.metadata_signing_cert".to_string())]
    );
}

#[tokio::test]
async fn a_refresh_refused_by_signature_or_validity_keeps_the_last_good_copy() {
    let idp = Idp::start().await;
    idp.set_metadata_options("sign=main").await;
    let up = Upstream::start().await;
    let gate = Gate::start(
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\nmetadata_signing_cert = \"{}\"\n{MAPPING}",
            idp.metadata_url(),
            idp_cert(&idp, "main")
        ),
    )
    .await;
    idp.register_gate(&gate).await;
    let sso = gate.state.saml.clone().expect("saml");
    sso.refresh().await.expect("signed by the trusted key");
    assert_eq!(stale_metric(&gate, "default").await, "0");
    assert!(readyz(&gate).await.get("degraded").is_none());

    for (options, words) in [
        ("sign=other", "does not verify"),
        ("", "is not signed"),
        ("sign=main&tamper=1", "does not verify"),
        ("sign=main&valid_until=past", "validUntil"),
    ] {
        idp.set_metadata_options(options).await;
        let err = sso.refresh().await.expect_err(options);
        assert!(err.is_metadata_trust(), "{options}: {err}");
        assert!(err.to_string().contains(words), "{options}: {err}");
        // The last good copy signs people in.
        let mut b = Browser::new(gate.addr);
        let acs = sso_at(&mut b, "default", "user=alice").await;
        assert_eq!(
            acs.status,
            StatusCode::SEE_OTHER,
            "{options}: {}",
            acs.text()
        );
        let ready = readyz(&gate).await;
        assert_eq!(ready["ready"], true, "{options}: {ready}");
        assert_eq!(ready["degraded"], true, "{options}: {ready}");
        assert!(
            ready["checks"]["saml_idps"]["default"]
                .as_str()
                .is_some_and(|s| s.contains("last good copy") && s.contains(words)),
            "{options}: {ready}"
        );
        assert_eq!(stale_metric(&gate, "default").await, "1", "{options}");
    }
    // The IdP publishes good metadata again.
    idp.set_metadata_options("sign=main").await;
    sso.refresh().await.expect("good again");
    assert!(readyz(&gate).await.get("degraded").is_none());
    assert_eq!(stale_metric(&gate, "default").await, "0");
}

#[tokio::test]
async fn a_cache_duration_shorter_than_metadata_refresh_is_honoured() {
    let idp = Idp::start().await;
    idp.set_metadata_options("sign=main&cache=PT1S").await;
    let up = Upstream::start().await;
    let gate = Gate::start(
        &up.url(),
        &format!(
            "[saml]\nenabled = true\nidp_metadata_url = \"{}\"\nmetadata_refresh = \"1h\"\nmetadata_signing_cert = \"{}\"\n",
            idp.metadata_url(),
            idp_cert(&idp, "main")
        ),
    )
    .await;
    let sso = gate.state.saml.clone().expect("saml");
    assert_eq!(sso.refresh_interval(), std::time::Duration::from_secs(1));
    assert_eq!(sso.loaded().idp.certs.len(), 1);
    // The IdP starts listing a second certificate; the running gate's own
    // refresh task picks it up within seconds, not the hour configured.
    idp.set_metadata_variant("rollover").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while sso.loaded().idp.certs.len() != 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "not refreshed by cacheDuration"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// A refresh that fails keeps the last good copy only until that copy's own
/// `validUntil` (SAML metadata §2.2.1): past it, neither a new sign-in nor
/// a response is accepted (503, "metadata could not be loaded"), however
/// well signed. Time is passed in, so nothing here waits for a clock.
#[tokio::test]
async fn metadata_past_its_own_valid_until_signs_nobody_in() {
    let idp = Idp::start().await;
    // validUntil 30 days ahead.
    idp.set_metadata_options("valid_until=future").await;
    let (_up, gate) = saml_gate(&idp, "allow_idp_initiated = true", MAPPING).await;
    let sso = gate.state.saml.clone().expect("saml");
    let p = sso.provider("default").expect("the default IdP");
    let now = std::time::SystemTime::now();
    let later = now + std::time::Duration::from_secs(31 * 24 * 3600);
    p.check_current(now).expect("current now");
    let err = p.check_current(later).expect_err("expired in 31 days");
    assert!(
        matches!(err, authgate::saml::Error::MetadataExpired(_)),
        "{err}"
    );
    assert!(
        !p.stale(now) && p.stale(later),
        "flagged stale past validUntil"
    );

    // A response the IdP signed with the key the metadata lists.
    let mut b = Browser::new(gate.addr);
    let form = b
        .get(&format!(
            "{}/idp-initiated?sp={}&relay=%2F&user=alice",
            idp.base,
            enc("http://gate.test/_auth/saml/metadata")
        ))
        .await;
    let (_, fields) = common::idp::parse_form(&form.text());
    let response = fields
        .iter()
        .find(|(k, _)| k == "SAMLResponse")
        .map(|(_, v)| v.clone())
        .expect("SAMLResponse");
    let err = sso
        .consume(&response, &[], later)
        .await
        .expect_err("metadata expired");
    assert!(
        matches!(err, authgate::saml::Error::MetadataExpired(_)),
        "{err}"
    );
    // The same response now: accepted (the refusal recorded nothing).
    sso.consume(&response, &[], now)
        .await
        .expect("accepted while the metadata is current");
}
