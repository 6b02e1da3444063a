//! Configuration reload: `Live::reload` in-process, and SIGHUP to the real
//! binary. A good configuration applies to the next request; a bad one is
//! refused and the running one keeps serving; sessions survive.

mod common;

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::StatusCode;

use authgate::app::Live;
use authgate::config::Config;
use authgate::App;
use common::client::get;
use common::cookies::pair_of;
use common::gate::{config_text, identity, load_config, Keys, BIN};
use common::ports::free_port;
use common::process::Proc;
use common::upstream::Upstream;

fn load(text: &str) -> Result<Config, String> {
    load_config(text, vec![], None).map_err(|e| e.to_string())
}

const PUBLIC: &str = "[policy]\npublic_paths = [\"/public/\"]\n";

async fn status(url: &str, cookie: &str) -> StatusCode {
    let mut h = vec![("accept", "application/json")];
    if !cookie.is_empty() {
        h.push(("cookie", cookie));
    }
    get(url, &h).await.status
}

#[tokio::test]
async fn reload_applies_a_good_configuration_and_refuses_a_bad_one() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let before = config_text(&keys, &up.url(), "");
    let bound = App::build(load(&before).expect("config"))
        .expect("build")
        .bind()
        .expect("bind");
    let live: Arc<Live> = bound.live();
    let base = format!("http://{}", bound.addr);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(bound.serve(async move {
        let _ = rx.await;
    }));
    let (_s, set_cookie) = live
        .current()
        .start_session(identity("jane", "jane@example.com", Some("annotator"), &[]))
        .await
        .expect("session");
    let cookie = pair_of(&set_cookie);
    assert_eq!(
        status(&format!("{base}/public/a"), "").await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(&format!("{base}/projects"), &cookie).await,
        StatusCode::OK
    );
    let ok_before = live.current().metrics.render();

    // A good configuration: in force for the next request; the session
    // (in-memory store) and the metrics survive.
    live.reload(load(&config_text(&keys, &up.url(), PUBLIC)).expect("config"))
        .await
        .expect("reload");
    assert_eq!(
        status(&format!("{base}/public/a"), "").await,
        StatusCode::OK
    );
    assert_eq!(
        status(&format!("{base}/projects"), &cookie).await,
        StatusCode::OK
    );
    assert!(!ok_before.is_empty());

    // A configuration that loads but cannot be built (the signing key is
    // not a key): refused, the running one stays.
    let bad_key = keys.dir.path().join("bad.pem");
    std::fs::write(
        &bad_key,
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    )
    .expect("write");
    let bad = config_text(&keys, &up.url(), "").replace(
        &keys.signing_key.display().to_string(),
        &bad_key.display().to_string(),
    );
    match load(&bad) {
        Err(_) => {} // refused even earlier: fine
        Ok(cfg) => assert!(live.reload(cfg).await.is_err()),
    }
    assert_eq!(
        status(&format!("{base}/public/a"), "").await,
        StatusCode::OK
    );
    assert_eq!(
        status(&format!("{base}/projects"), &cookie).await,
        StatusCode::OK
    );
    let _ = tx.send(());
    let _ = tokio::time::timeout(Duration::from_secs(20), task).await;
}

#[tokio::test]
async fn sighup_reloads_the_configuration_file_of_the_real_binary() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let port = free_port();
    let file = keys.dir.path().join("authgate.toml");
    let text = |extra: &str| {
        config_text(&keys, &up.url(), extra).replace(
            "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"",
            &format!("listen = \"127.0.0.1:{port}\""),
        )
    };
    std::fs::write(&file, text("")).expect("write");
    let mut child = Proc::spawn(
        Command::new(BIN)
            .args(["serve", "--config"])
            .arg(&file)
            .stdout(Stdio::null())
            .stderr(Stdio::piped()),
        "authgate",
    );
    let base = format!("http://127.0.0.1:{port}");
    let until = |want: StatusCode, path: &'static str| {
        let url = format!("{base}{path}");
        async move {
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let got = tokio::time::timeout(Duration::from_secs(2), async {
                    let client = hyper_util::client::legacy::Client::builder(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .build_http::<http_body_util::Full<bytes::Bytes>>();
                    let req = http::Request::get(url.as_str())
                        .header("accept", "application/json")
                        .body(Default::default())
                        .expect("req");
                    client.request(req).await.map(|r| r.status())
                })
                .await;
                if let Ok(Ok(s)) = got {
                    if s == want {
                        return;
                    }
                }
                assert!(Instant::now() < deadline, "{path}: no {want} within 20 s");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    until(StatusCode::UNAUTHORIZED, "/public/a").await;
    let hup = || child.signal("HUP");
    std::fs::write(&file, text(PUBLIC)).expect("write");
    assert!(hup());
    until(StatusCode::OK, "/public/a").await;
    // Broken file: refused, still serving the last good configuration.
    std::fs::write(&file, "[server\nlisten = ").expect("write");
    assert!(hup());
    tokio::time::sleep(Duration::from_millis(300)).await;
    until(StatusCode::OK, "/public/a").await;
    assert!(child.exited().is_none(), "still running");
    let out = child.output();
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("configuration reload refused"), "{log}");
}
