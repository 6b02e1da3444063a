//! The real binary: the audit log as an operator reads it (`log.format = "json"`: one JSON
//! object per line, the same fields on every audit event, no credential anywhere), and
//! `authgate explain-policy` naming the row that decides a request.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::client::{get, send};
use common::gate::{config_text, Keys, BIN};
use common::process::Proc;
use common::upstream::Upstream;
use http::{Request, StatusCode};
use http_body_util::Full;

/// Secrets a client sends; none may appear in any log line.
const TOKEN: &str = "tok-AUDIT-7f3a9c";
const COOKIE: &str = "cookie-AUDIT-51d2e8";
const DJANGO_COOKIE: &str = "django-AUDIT-c0ffee";
const ASSERTION: &str = "eyJhbGciOiJub25lIn0.eyJzdWIiOiJldmUifQ.AUDIT";
const QUERY_SECRET: &str = "invite-AUDIT-9b8a";
const PASSWORD: &str = "pw-AUDIT-hunter2";

/// Writes a configuration file for the binary next to the keys.
fn config_file(keys: &Keys, upstream: &str, extra: &str) -> std::path::PathBuf {
    let text = config_text(keys, upstream, extra).replace(
        "[log]\nlevel = \"warn\"\n",
        "[log]\nlevel = \"info\"\nformat = \"json\"\n",
    );
    assert!(text.contains("format = \"json\""));
    let path = keys.dir.path().join("authgate.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The running binary and its stderr, line by line.
struct Running {
    proc: Proc,
    lines: mpsc::Receiver<String>,
    reader: Option<std::thread::JoinHandle<()>>,
    seen: Vec<String>,
}

impl Running {
    fn start(config: &std::path::Path) -> Running {
        let mut child = Command::new(BIN)
            .args(["serve", "--config"])
            .arg(config)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start authgate");
        let stderr = child.stderr.take().expect("stderr");
        let proc = Proc::new(child);
        let (tx, lines) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Running {
            proc,
            lines,
            reader: Some(reader),
            seen: Vec::new(),
        }
    }

    /// Waits for the first line that `pick` accepts.
    fn wait_for<T>(
        &mut self,
        what: &str,
        mut pick: impl FnMut(&serde_json::Value) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                        if let Some(t) = pick(&v) {
                            return t;
                        }
                    }
                }
                Err(_) => panic!(
                    "no {what} within 30 s; stderr so far:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Stops the process and returns every stderr line.
    fn stop(mut self) -> Vec<String> {
        self.proc.kill();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        let mut all = std::mem::take(&mut self.seen);
        all.extend(self.lines.try_iter());
        all
    }
}

fn audit_event<'a>(lines: &'a [serde_json::Value], event: &str) -> &'a serde_json::Value {
    lines
        .iter()
        .find(|v| v["target"] == "authgate::audit" && v["event"] == event)
        .unwrap_or_else(|| panic!("no {event} audit line in {lines:#?}"))
}

#[tokio::test]
async fn audit_lines_are_json_with_the_same_fields_and_no_credentials() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let config = config_file(
        &keys,
        &up.url(),
        "[policy]\nmanual_role_management = false\nallow_upstream_tokens = true\n",
    );
    let mut running = Running::start(&config);
    let addr: SocketAddr = running.wait_for("start-up line", |v| {
        v["listen"].as_str().and_then(|s| s.parse().ok())
    });
    let url = |p: &str| format!("http://{addr}{p}");

    // A policy denial, carrying every kind of credential a client sends.
    let got = send(
        Request::patch(url(&format!(
            "/api/organizations/1/memberships?token={QUERY_SECRET}"
        )))
        .header("authorization", format!("Token {TOKEN}"))
        .header(
            "cookie",
            format!("authgate={COOKIE}; sessionid={DJANGO_COOKIE}"),
        )
        .header("x-identity-assertion", ASSERTION)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(format!(
            "{{\"user_id\":2,\"role\":\"AD\",\"password\":\"{PASSWORD}\"}}"
        ))))
        .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(got.json()["error"], "managed_by_directory");
    assert_eq!(up.count(), 0);

    // A logout (the cookie names no live session in this process).
    let got = send(
        Request::post(url("/_auth/logout"))
            .header("cookie", format!("authgate={COOKIE}"))
            .header("authorization", format!("Bearer {TOKEN}"))
            .body(Full::new(Bytes::new()))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);
    // The upstream's own logout, intercepted... only while authgate owns login; here it is
    // forwarded, so it is not an audit event. A plain forwarded request is not one either.
    let got = get(
        &url("/api/projects/"),
        &[("authorization", &format!("Token {TOKEN}"))],
    )
    .await;
    assert_eq!(got.status, StatusCode::OK);

    running.wait_for("logout audit line", |v| {
        (v["event"] == "logout").then_some(())
    });
    // The access line of the last request: everything before it has been written.
    running.wait_for("access line of the last request", |v| {
        (v["target"] == "authgate::access" && v["path"] == "/api/projects/").then_some(())
    });
    let lines = running.stop();

    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| {
            serde_json::from_str(l).unwrap_or_else(|e| panic!("not one JSON object ({e}): {l}"))
        })
        .collect();
    let audit: Vec<&serde_json::Value> = parsed
        .iter()
        .filter(|v| v["target"] == "authgate::audit")
        .collect();
    assert_eq!(
        audit.len(),
        2,
        "one line per decision that matters: {audit:#?}"
    );
    for v in &audit {
        for field in ["event", "method", "path", "client", "reason", "request_id"] {
            assert!(
                v[field].as_str().is_some_and(|s| !s.is_empty()),
                "audit line without {field}: {v}"
            );
        }
        assert_eq!(v["client"], "127.0.0.1");
        assert_eq!(v["level"], "INFO");
    }

    let denied = audit_event(&parsed, "policy_denied");
    assert_eq!(denied["method"], "PATCH");
    assert_eq!(denied["path"], "/api/organizations/1/memberships");
    assert_eq!(denied["reason"], "manual_role_management");
    assert!(
        denied.get("subject").is_none(),
        "a token caller is no one we know"
    );
    assert_eq!(
        denied["request_id"],
        got_request_id(&parsed, "/api/organizations/1/memberships"),
        "the audit line and the access line share the request id"
    );

    let logout = audit_event(&parsed, "logout");
    assert_eq!(logout["method"], "POST");
    assert_eq!(logout["path"], "/_auth/logout");
    assert_eq!(logout["reason"], "no_session");

    let all = lines.join("\n");
    for secret in [
        TOKEN,
        COOKIE,
        DJANGO_COOKIE,
        ASSERTION,
        QUERY_SECRET,
        PASSWORD,
    ] {
        assert!(!all.contains(secret), "{secret} appears in the log:\n{all}");
    }
}

/// The request id of the access line for `path`.
fn got_request_id(lines: &[serde_json::Value], path: &str) -> serde_json::Value {
    lines
        .iter()
        .find(|v| v["target"] == "authgate::access" && v["path"] == path)
        .map(|v| v["request_id"].clone())
        .unwrap_or_else(|| panic!("no access line for {path}"))
}

/// Runs `authgate --config FILE explain-policy METHOD PATH` with only `env` set.
fn explain(config: &std::path::Path, method: &str, path: &str, env: &[(&str, &str)]) -> String {
    let out = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["explain-policy", method, path])
        .env_clear()
        .envs(env.iter().copied())
        .output()
        .expect("run authgate explain-policy");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn explain_policy_names_the_row_and_the_deny() {
    let keys = Keys::new();
    let config = config_file(&keys, "http://127.0.0.1:9", "");
    let text = explain(
        &config,
        "PATCH",
        "/api/organizations/1/memberships",
        &[("MANUAL_ROLE_MANAGEMENT", "0")],
    );
    for want in [
        "route[0] exact /api/organizations/{id}/memberships [PATCH (+PUT)] deny",
        "armed switches: manual_role_management",
        "manual_role_management (manual_role_management = false: armed)",
        "=> route[0]",
        "decision: deny by route[0]",
        "\"error\":\"managed_by_directory\",\"reason\":\"manual_role_management\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }

    // Without the variable nothing is armed: the same request is forwarded, and the output says
    // which rows matched and why they took no part.
    let text = explain(&config, "PATCH", "/api/organizations/1/memberships", &[]);
    assert!(text.contains("armed switches: none"), "{text}");
    assert!(text.contains("route[0]"), "{text}");
    assert!(text.contains("not armed: takes no part"), "{text}");
    assert!(text.contains("decision: allow"), "{text}");

    // A spelling the proxy normalizes is explained as the proxy decides it.
    let text = explain(
        &config,
        "patch",
        "//API/organizations/./1/x/../memberships/?a=1",
        &[("MANUAL_ROLE_MANAGEMENT", "0")],
    );
    assert!(text.contains("decision: deny by route[0]"), "{text}");
}

#[tokio::test]
async fn a_role_refusal_is_an_audit_event_naming_the_role_and_the_row() {
    let up = Upstream::start().await;
    let keys = Keys::new();
    let config = config_file(
        &keys,
        &up.url(),
        "[policy]\nmanual_role_management = false\nallow_upstream_tokens = true\n",
    );
    let mut running = Running::start(&config);
    let addr: SocketAddr = running.wait_for("start-up line", |v| {
        v["listen"].as_str().and_then(|s| s.parse().ok())
    });
    // An upstream API token is decided as an annotator: creating a project needs a manager.
    let got = send(
        Request::post(format!("http://{addr}/api/projects/"))
            .header("authorization", format!("Token {TOKEN}"))
            .header("accept", "application/json")
            .body(Full::new(Bytes::new()))
            .expect("req"),
    )
    .await;
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    assert_eq!(got.json()["error"], "role_required");
    assert_eq!(up.count(), 0);
    let line = running.wait_for("role_denied audit line", |v| {
        (v["target"] == "authgate::audit" && v["event"] == "role_denied").then(|| v.clone())
    });
    assert_eq!(line["method"], "POST");
    assert_eq!(line["path"], "/api/projects/");
    assert_eq!(line["role"], "annotator");
    let reason = line["reason"].as_str().expect("reason");
    assert!(
        reason.starts_with("role_required:manager:project_create:route["),
        "{reason}"
    );
    let all = running.stop().join("\n");
    assert!(!all.contains(TOKEN), "the token appears in the log");
}

#[test]
fn explain_policy_with_a_role_names_the_role_row() {
    let keys = Keys::new();
    let config = config_file(&keys, "http://127.0.0.1:9", "");
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args([
            "explain-policy",
            "--role",
            "annotator",
            "delete",
            "//API/projects/./3",
        ])
        .env_clear()
        .env("MANUAL_ROLE_MANAGEMENT", "0")
        .output()
        .expect("run authgate explain-policy");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    for want in [
        "organization roles: policy.enforce_roles = true",
        "role: annotator",
        "exact /api/projects/{id}/ [PATCH DELETE (+PUT)] needs manager",
        "basis documented",
        "https://docs.humansignal.com/guide/admin_roles",
        "role decision: refuse by route[",
        "\"required_role\":\"manager\"",
    ] {
        assert!(text.contains(want), "missing {want:?} in:\n{text}");
    }
    let out = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .args([
            "explain-policy",
            "--role",
            "manager",
            "DELETE",
            "/api/projects/3/",
        ])
        .env_clear()
        .output()
        .expect("run authgate explain-policy");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.contains("policy.enforce_roles = false"), "{text}");
    assert!(text.contains("NOT applied"), "{text}");
    assert!(text.contains("role decision: allow: route["), "{text}");
}
