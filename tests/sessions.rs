//! Session control with the in-memory store: the admin API on the metrics
//! listener (list, revoke by user / sid / all; loopback or bearer token;
//! absent from the public listener), the `authgate sessions` command
//! against a running gate, and the SSO page's Sessions table with its
//! CSRF-protected Revoke button and audit events. The Redis variant (two
//! replicas) is in `redis_store.rs`.

mod common;

use std::net::SocketAddr;

use bytes::Bytes;
use common::audit::{json_lines, json_log};
use common::client::{get, send, Got};
use common::cookies::csrf_of;
use common::gate::{config_text, identity, load_config, login, Gate, Keys, BIN};
use common::ports::free_port;
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::Full;

/// Signs `email` in and returns (session id, Cookie header value).
async fn sign_in(g: &Gate, email: &str, role: &str) -> (String, String) {
    login(
        &g.state,
        identity(&format!("uid={email}"), email, Some(role), &[]),
    )
    .await
}

async fn proxied(g: &Gate, cookie: &str) -> StatusCode {
    get(
        &g.url("/projects"),
        &[("cookie", cookie), ("accept", "application/json")],
    )
    .await
    .status
}

fn admin_url(g: &Gate, path: &str) -> String {
    format!("http://{}{path}", g.metrics_addr.expect("metrics listener"))
}

async fn api_list(g: &Gate, query: &str, auth: Option<&str>) -> Got {
    let mut h = vec![];
    let bearer;
    if let Some(t) = auth {
        bearer = format!("Bearer {t}");
        h.push(("authorization", bearer.as_str()));
    }
    get(&admin_url(g, &format!("/admin/sessions{query}")), &h).await
}

async fn api_revoke(addr: SocketAddr, body: &str, auth: Option<&str>) -> Got {
    let mut b = Request::post(format!("http://{addr}/admin/sessions/revoke"))
        .header("content-type", "application/json");
    if let Some(t) = auth {
        b = b.header("authorization", format!("Bearer {t}"));
    }
    send(
        b.body(Full::new(Bytes::from(body.to_string())))
            .expect("request"),
    )
    .await
}

fn sids(got: &Got) -> Vec<String> {
    let v = got.json();
    v["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("no sessions: {}", got.text()))
        .iter()
        .map(|s| s["sid"].as_str().expect("sid").to_string())
        .collect()
}

#[tokio::test]
async fn the_admin_api_lists_and_revokes_by_user_sid_and_all() {
    json_log();
    let up = Upstream::start().await;
    let g = Gate::start(&up.url(), "").await;
    let (j1, jc1) = sign_in(&g, "jane@example.com", "annotator").await;
    let (j2, jc2) = sign_in(&g, "Jane@Example.com", "annotator").await;
    let (b1, bc1) = sign_in(&g, "bob@example.com", "reviewer").await;
    let (_c1, cc1) = sign_in(&g, "carol@example.com", "manager").await;
    assert_eq!(proxied(&g, &jc1).await, StatusCode::OK);

    let all = api_list(&g, "", None).await;
    assert_eq!(all.status, StatusCode::OK, "{}", all.text());
    assert_eq!(all.json()["store"], "memory");
    assert_eq!(sids(&all).len(), 4);
    for id in [&j1, &j2, &b1] {
        assert!(!all.text().contains(id.as_str()), "full ids never listed");
        assert!(sids(&all).contains(&id[..12].to_string()));
    }
    for c in [&jc1, &bc1] {
        let value = c.split_once('=').expect("pair").1;
        assert!(!all.text().contains(value), "cookies never listed");
    }
    let jane = all.json()["sessions"]
        .as_array()
        .expect("array")
        .iter()
        .find(|s| s["sid"] == j1[..12])
        .cloned()
        .expect("jane listed");
    assert_eq!(jane["email"], "jane@example.com");
    assert_eq!(jane["method"], "ldap");
    assert_eq!(jane["role"], "annotator");
    assert!(jane["last_seen"].as_u64() >= jane["created"].as_u64());
    assert!(jane["expires"].as_u64() > jane["created"].as_u64());

    let by_user = api_list(&g, "?user=JANE%40example.com", None).await;
    let mut want = vec![j1[..12].to_string(), j2[..12].to_string()];
    want.sort();
    let mut got = sids(&by_user);
    got.sort();
    assert_eq!(got, want, "email compared case-insensitively");

    // By sid prefix: only Bob's session, at once.
    let m = g.metrics_addr.expect("metrics");
    let r = api_revoke(m, &format!("{{\"sid\":\"{}\"}}", &b1[..12]), None).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    assert_eq!(r.json()["revoked"], 1);
    assert_eq!(proxied(&g, &bc1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &jc1).await, StatusCode::OK);
    let again = api_revoke(m, &format!("{{\"sid\":\"{}\"}}", &b1[..12]), None).await;
    assert_eq!(again.status, StatusCode::NOT_FOUND, "{}", again.text());
    let short = api_revoke(m, "{\"sid\":\"abc\"}", None).await;
    assert_eq!(short.status, StatusCode::BAD_REQUEST);
    let both = api_revoke(m, "{\"sid\":\"abcdefgh\",\"all\":true}", None).await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);

    // By user: both of Jane's.
    let r = api_revoke(m, "{\"user\":\"jane@example.com\"}", None).await;
    assert_eq!(r.json()["revoked"], 2, "{}", r.text());
    assert_eq!(proxied(&g, &jc1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &jc2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &cc1).await, StatusCode::OK);
    let events = json_lines("session_revoked");
    let jane_events: Vec<_> = events
        .iter()
        // Other tests of this binary write to the same log: this one's
        // sessions by their sid.
        .filter(|e| e["sid"] == j1[..12] || e["sid"] == j2[..12])
        .collect();
    assert_eq!(jane_events.len(), 2, "{events:?}");
    assert_eq!(jane_events[0]["scope"], "user");
    assert_eq!(jane_events[0]["reason"], "admin_api");
    assert_eq!(jane_events[0]["client"], "127.0.0.1");
    let log = String::from_utf8_lossy(&json_log().lock().expect("log")).into_owned();
    assert!(
        !log.contains(&j1),
        "audit lines carry the prefix, not the id"
    );

    // All.
    let (_d1, dc1) = sign_in(&g, "dave@example.com", "annotator").await;
    let r = api_revoke(m, "{\"all\":true}", None).await;
    assert_eq!(r.json()["revoked"], 2, "{}", r.text());
    assert_eq!(proxied(&g, &cc1).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &dc1).await, StatusCode::UNAUTHORIZED);
    assert!(sids(&api_list(&g, "", None).await).is_empty());

    // Only GET and POST on their paths.
    let wrong = send(
        Request::delete(admin_url(&g, "/admin/sessions"))
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await;
    assert_eq!(wrong.status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        get(&admin_url(&g, "/admin/sessions/other"), &[])
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

fn token_config(keys: &Keys, up: &Upstream, token: &str, metrics: &str) -> String {
    let file = keys.dir.path().join("admin.token");
    std::fs::write(&file, format!("{token}\n")).expect("write token");
    config_text(keys, &up.url(), "").replace(
        "metrics_listen = \"127.0.0.1:0\"",
        &format!(
            "metrics_listen = \"{metrics}\"\nadmin_token_file = \"{}\"",
            file.display()
        ),
    )
}

const TOKEN: &str = "s3cret-admin-token-0123456789";

#[tokio::test]
async fn with_a_token_file_every_caller_needs_the_token_and_the_public_listener_has_no_api() {
    json_log();
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = token_config(&keys, &up, TOKEN, "127.0.0.1:0");
    let g = Gate::start_with(keys, text, vec![]).await;
    let (_, jc) = sign_in(&g, "jane@example.com", "annotator").await;

    let none = api_list(&g, "", None).await;
    assert_eq!(none.status, StatusCode::UNAUTHORIZED, "loopback too");
    assert!(none.headers.contains_key("www-authenticate"));
    assert_eq!(
        api_list(&g, "", Some("wrong-token-0123456789"))
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    let m = g.metrics_addr.expect("metrics");
    let r = api_revoke(m, "{\"all\":true}", Some("wrong-token-0123456789")).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(!r.text().contains(TOKEN));
    assert_eq!(proxied(&g, &jc).await, StatusCode::OK, "nothing revoked");
    let ok = api_list(&g, "", Some(TOKEN)).await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.text());
    assert_eq!(sids(&ok).len(), 1);

    // The public listener: not under the prefix, and a path outside it
    // goes to the upstream like any other.
    let auth = format!("Bearer {TOKEN}");
    for path in ["/_auth/admin/sessions", "/_auth/admin/sessions/revoke"] {
        let got = get(&g.url(path), &[("authorization", &auth), ("cookie", &jc)]).await;
        assert_eq!(got.status, StatusCode::NOT_FOUND, "{path}: {}", got.text());
    }
    let posted = send(
        Request::post(g.url("/_auth/admin/sessions/revoke"))
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from_static(b"{\"all\":true}")))
            .expect("request"),
    )
    .await;
    assert!(posted.status.is_client_error(), "{}", posted.status);
    let upstreamed = get(
        &g.url("/admin/sessions"),
        &[("authorization", &auth), ("cookie", &jc)],
    )
    .await;
    assert_eq!(
        upstreamed.json()["target"],
        "/admin/sessions",
        "answered by the upstream"
    );
    assert_eq!(proxied(&g, &jc).await, StatusCode::OK, "still signed in");
}

/// This host's address on its default route, if it has one that is not
/// loopback (no packet is sent: a UDP connect only picks the route).
fn non_loopback_ip() -> Option<std::net::IpAddr> {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    s.connect("192.0.2.1:9").ok()?;
    let ip = s.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[tokio::test]
async fn non_loopback_callers_are_refused_without_a_token_and_let_in_with_it() {
    json_log();
    let Some(ip) = non_loopback_ip() else {
        eprintln!("skipped: this host has no non-loopback address (the rule itself is unit-tested in endpoints::sessions)");
        return;
    };
    let up = Upstream::start().await;
    let keys = Keys::new();
    let text = config_text(&keys, &up.url(), "").replace(
        "metrics_listen = \"127.0.0.1:0\"",
        "metrics_listen = \"0.0.0.0:0\"",
    );
    let g = Gate::start_with(keys, text, vec![]).await;
    let port = g.metrics_addr.expect("metrics").port();
    let from_outside = SocketAddr::new(ip, port);
    let got = get(&format!("http://{from_outside}/admin/sessions"), &[]).await;
    assert_eq!(got.status, StatusCode::FORBIDDEN, "{}", got.text());
    assert!(got.text().contains("server.admin_token_file"));
    let r = api_revoke(from_outside, "{\"all\":true}", Some(TOKEN)).await;
    assert_eq!(
        r.status,
        StatusCode::FORBIDDEN,
        "no token configured: none accepted"
    );
    let lo = get(&format!("http://127.0.0.1:{port}/admin/sessions"), &[]).await;
    assert_eq!(lo.status, StatusCode::OK, "loopback is let in");
    let refused = json_lines("access_refused");
    assert!(refused
        .iter()
        .any(|e| e["reason"] == "admin_not_loopback" && e["client"] == ip.to_string()));

    let keys = Keys::new();
    let text = token_config(&keys, &up, TOKEN, "0.0.0.0:0");
    let g = Gate::start_with(keys, text, vec![]).await;
    let (_, jc) = sign_in(&g, "jane@example.com", "annotator").await;
    let from_outside = SocketAddr::new(ip, g.metrics_addr.expect("metrics").port());
    assert_eq!(
        api_revoke(from_outside, "{\"all\":true}", None)
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        api_revoke(
            from_outside,
            "{\"all\":true}",
            Some("not-the-token-0123456")
        )
        .await
        .status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(proxied(&g, &jc).await, StatusCode::OK);
    let r = api_revoke(from_outside, "{\"all\":true}", Some(TOKEN)).await;
    assert_eq!(r.json()["revoked"], 1, "{}", r.text());
    assert_eq!(proxied(&g, &jc).await, StatusCode::UNAUTHORIZED);
}

/// Runs the real binary off the async workers (the gate runs on them).
async fn authgate(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .env_remove("RUST_LOG")
            .output()
            .expect("run authgate")
    })
    .await
    .expect("join")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sessions_command_lists_and_revokes_through_a_running_gate() {
    json_log();
    let up = Upstream::start().await;
    let keys = Keys::new();
    let port = free_port();
    let text = token_config(&keys, &up, TOKEN, &format!("127.0.0.1:{port}"));
    let config = keys.dir.path().join("authgate.toml");
    std::fs::write(&config, &text).expect("write config");
    let g = Gate::start_with(keys, text, vec![]).await;
    let (jid, jc) = sign_in(&g, "jane@example.com", "annotator").await;
    let (bid, bc) = sign_in(&g, "bob@example.com", "reviewer").await;
    let cfg = config.display().to_string();

    // The address and token come from the configuration.
    let out = authgate(vec![
        "--config".into(),
        cfg.clone(),
        "sessions".into(),
        "list".into(),
    ])
    .await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.starts_with("2 live sessions (memory store)"),
        "{stdout}"
    );
    assert!(stdout.contains("SID"), "{stdout}");
    assert!(
        stdout.contains(&jid[..12]) && stdout.contains(&bid[..12]),
        "{stdout}"
    );
    assert!(stdout.contains("jane@example.com") && stdout.contains("reviewer"));
    assert!(
        !stdout.contains(&jid) && !stdout.contains(TOKEN),
        "{stdout}"
    );

    let out = authgate(vec![
        "--config".into(),
        cfg.clone(),
        "sessions".into(),
        "list".into(),
        "--user".into(),
        "bob@example.com".into(),
        "--json".into(),
    ])
    .await;
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(v["sessions"].as_array().map(Vec::len), Some(1));
    assert_eq!(v["sessions"][0]["sid"], bid[..12]);

    let out = authgate(vec![
        "--config".into(),
        cfg.clone(),
        "sessions".into(),
        "revoke".into(),
        "--sid".into(),
        jid[..12].to_string(),
    ])
    .await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("revoked 1 session (memory store)"));
    assert_eq!(proxied(&g, &jc).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &bc).await, StatusCode::OK);

    // --url and --token-file instead of the configuration; a wrong token
    // is exit 1 with the reason, never the token.
    let bad = g.keys.dir.path().join("bad.token");
    std::fs::write(&bad, "not-the-right-token-123").expect("write");
    let url = format!("http://127.0.0.1:{port}");
    let out = authgate(vec![
        "sessions".into(),
        "revoke".into(),
        "--all".into(),
        "--url".into(),
        url.clone(),
        "--token-file".into(),
        bad.display().to_string(),
    ])
    .await;
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("401"), "{stderr}");
    assert!(!stderr.contains("not-the-right-token"), "{stderr}");
    assert_eq!(proxied(&g, &bc).await, StatusCode::OK);
    let good = g.keys.dir.path().join("admin.token");
    let out = authgate(vec![
        "sessions".into(),
        "revoke".into(),
        "--user".into(),
        "BOB@example.com".into(),
        "--url".into(),
        url.clone(),
        "--token-file".into(),
        good.display().to_string(),
    ])
    .await;
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("revoked 1 session"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(proxied(&g, &bc).await, StatusCode::UNAUTHORIZED);

    // A sid starting with '-' (base64url ids may) is a value, not an option.
    let out = authgate(vec![
        "--config".into(),
        cfg.clone(),
        "sessions".into(),
        "revoke".into(),
        "--sid".into(),
        "-Pabcdefgh".into(),
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no live session has that sid"), "{stderr}");

    // Exactly one of --user, --sid, --all.
    for args in [vec![], vec!["--all", "--user", "x@example.com"]] {
        let mut a: Vec<String> = vec![
            "sessions".into(),
            "revoke".into(),
            "--url".into(),
            url.clone(),
        ];
        a.extend(args.iter().map(|s| s.to_string()));
        let out = authgate(a).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
    }
}

// ---------------------------------------------------------------- SSO page

async fn page(g: &Gate, cookie: &str) -> Got {
    get(
        &g.url("/_auth/admin/sso"),
        &[("cookie", cookie), ("accept", "text/html")],
    )
    .await
}

async fn post_form(g: &Gate, cookie: &str, fields: &[(&str, &str)]) -> Got {
    let body: String = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(fields)
        .finish();
    send(
        Request::post(g.url("/_auth/admin/sso/sessions"))
            .header("cookie", cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(Full::new(Bytes::from(body)))
            .expect("request"),
    )
    .await
}

#[tokio::test]
async fn the_sso_page_lists_sessions_and_revokes_with_its_csrf_token_only() {
    json_log();
    let up = Upstream::start().await;
    let g = Gate::start(&up.url(), "").await;
    let (_, admin) = sign_in(&g, "admin@example.com", "administrator").await;
    let (jid, jc) = sign_in(&g, "jane@example.com", "annotator").await;
    let (_, jc2) = sign_in(&g, "jane@example.com", "annotator").await;
    let (bid, bc) = sign_in(&g, "bob@example.com", "reviewer").await;

    let p = page(&g, &admin).await;
    assert_eq!(p.status, StatusCode::OK);
    let html = p.text();
    assert!(html.contains("<h2 id=\"sessions\">Sessions</h2>"), "{html}");
    assert!(html.contains("4 live sessions"));
    assert!(html.contains(&format!("<code>{}</code>", &jid[..12])));
    assert!(html.contains("jane@example.com"));
    assert!(
        !html.contains(&jid) && !html.contains(&bid),
        "no full id in the page"
    );
    assert!(html.contains(">Revoke</button>"));

    // Not an administrator: no page, no revocation.
    let (_, annot) = sign_in(&g, "ann@example.com", "annotator").await;
    assert_eq!(page(&g, &annot).await.status, StatusCode::FORBIDDEN);
    let csrf_annot = csrf_of(&html); // even with a valid-looking token
    let r = post_form(&g, &annot, &[("csrf", &csrf_annot), ("sid", &bid[..12])]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(proxied(&g, &bc).await, StatusCode::OK);

    // Without a token, or with another session's, refused.
    let r = post_form(&g, &admin, &[("sid", &bid[..12])]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let (_, admin2) = sign_in(&g, "admin2@example.com", "owner").await;
    let other = csrf_of(&page(&g, &admin2).await.text());
    let r = post_form(&g, &admin, &[("csrf", &other), ("sid", &bid[..12])]).await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    assert_eq!(proxied(&g, &bc).await, StatusCode::OK, "nothing revoked");

    // With it: Bob's session ends at once.
    let csrf = csrf_of(&html);
    let r = post_form(&g, &admin, &[("csrf", &csrf), ("sid", &bid[..12])]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.text());
    let to = r.headers["location"].to_str().expect("location");
    assert!(to.starts_with("/_auth/admin/sso?revoked=1"), "{to}");
    assert_eq!(proxied(&g, &bc).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &jc).await, StatusCode::OK);
    let back = get(&g.url(to), &[("cookie", &admin), ("accept", "text/html")])
        .await
        .text();
    assert!(back.contains("1 session revoked"), "{back}");
    assert!(!back.contains(&format!("<code>{}</code>", &bid[..12])));

    // Every session of one email.
    let r = post_form(&g, &admin, &[("csrf", &csrf), ("user", "JANE@example.com")]).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.headers["location"]
        .to_str()
        .expect("loc")
        .contains("revoked=2"));
    assert_eq!(proxied(&g, &jc).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &jc2).await, StatusCode::UNAUTHORIZED);
    assert_eq!(proxied(&g, &admin).await, StatusCode::OK);

    // Neither or both: the page again with the reason.
    let r = post_form(&g, &admin, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert!(r.text().contains("choose one session"));

    let events = json_lines("session_revoked");
    let page_events: Vec<_> = events
        .iter()
        .filter(|e| e["reason"] == "sso_page")
        .collect();
    assert!(page_events
        .iter()
        .any(|e| e["subject"] == "uid=bob@example.com"
            && e["by"] == "admin@example.com"
            && e["scope"] == "sid"
            && e["sid"] == bid[..12]));
    assert_eq!(
        page_events
            .iter()
            .filter(|e| e["subject"] == "uid=jane@example.com")
            .count(),
        2
    );
    let csrf_refusals = json_lines("access_refused");
    assert!(csrf_refusals
        .iter()
        .any(|e| e["reason"] == "csrf" && e["path"] == "/_auth/admin/sso/sessions"));
}

fn load(text: String) -> Result<authgate::Config, String> {
    load_config(&text, vec![], None).map_err(|e| e.to_string())
}

#[test]
fn the_admin_token_file_is_checked_at_start_and_never_printed() {
    let keys = Keys::new();
    let with = |path: &str| {
        config_text(&keys, "http://127.0.0.1:1", "").replace(
            "metrics_listen = \"127.0.0.1:0\"",
            &format!("metrics_listen = \"127.0.0.1:0\"\nadmin_token_file = \"{path}\""),
        )
    };
    let e = load(with("/nonexistent/admin.token")).expect_err("missing file");
    assert!(
        e.contains("server.admin_token_file") && e.contains("cannot read"),
        "{e}"
    );
    let short = keys.dir.path().join("short.token");
    std::fs::write(&short, "  short-token \n").expect("write");
    let e = load(with(&short.display().to_string())).expect_err("short token");
    assert!(
        e.contains("server.admin_token_file") && e.contains("fewer than 16"),
        "{e}"
    );

    let good = keys.dir.path().join("admin.token");
    std::fs::write(&good, format!("\n{TOKEN}\n")).expect("write");
    let text = with(&good.display().to_string());
    let cfg = load(text.clone()).expect("valid");
    assert_eq!(
        cfg.server.admin_token.as_ref().map(|t| t.expose().as_str()),
        Some(TOKEN)
    );
    assert!(!format!("{:?}", cfg.server).contains(TOKEN));
    let file = keys.dir.path().join("authgate.toml");
    std::fs::write(&file, text).expect("write");
    let out = std::process::Command::new(BIN)
        .arg("--config")
        .arg(&file)
        .arg("check-config")
        .output()
        .expect("run");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("admin_token_file"), "{stdout}");
    assert!(
        stdout.contains("session admin API (authgate sessions): on 127.0.0.1:0, every caller needs the bearer token"),
        "{stdout}"
    );
    assert!(!stdout.contains(TOKEN), "{stdout}");
}
