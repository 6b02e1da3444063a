//! Helpers shared by `tests/identity.rs` and `tests/nginx_forward_auth.rs`,
//! on top of `tests/common`: the independent PyJWT verifier, configuration
//! edits, gates that share one session registry (replicas, key rotation),
//! and the spoofed identity headers every test sends.
#![allow(dead_code)]

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use authgate::app::State;
use authgate::config::{self, Sources};
use authgate::session::Store;
use authgate::App;

/// Identity headers as a client might forge them: every default name, in
/// several cases, repeated, and in the `_` spelling WSGI/CGI servers merge
/// with the `-` one. Every value contains `spoof`, so one scan of what the
/// upstream saw finds any that got through.
pub const SPOOFED: &[(&str, &str)] = &[
    ("X-Identity-Assertion", "spoof.assertion.one"),
    ("x-identity-assertion", "spoof.assertion.two"),
    ("X_Identity_Assertion", "spoof.assertion.three"),
    ("X-Forwarded-User", "spoof-user-1"),
    ("x-forwarded-user", "spoof-user-2"),
    ("X_Forwarded_User", "spoof-user-3"),
    ("x_FORWARDED-user", "spoof-user-4"),
    ("X-Forwarded-Email", "spoof1@evil.test"),
    ("X-FORWARDED-EMAIL", "spoof2@evil.test"),
    ("X-Forwarded-Groups", "spoof-admins"),
    ("x-forwarded-groups", "spoof-owners"),
    ("X_Forwarded_Groups", "spoof-root"),
    ("X-Forwarded-Role", "spoof-owner"),
    ("x-Forwarded-ROLE", "spoof-administrator"),
    ("X-Forwarded-Preferred-Username", "spoof-admin"),
    ("x-forwarded-preferred-USERNAME", "spoof-admin-2"),
    ("X_Forwarded_Preferred_Username", "spoof-admin-3"),
];

/// `SPOOFED` as raw header lines for [`crate::common::raw`].
pub fn spoofed_lines() -> String {
    SPOOFED
        .iter()
        .map(|(n, v)| format!("{n}: {v}\r\n"))
        .collect()
}

/// Panics naming every header the upstream saw that carries a spoofed value
/// or an underscore name.
pub fn assert_no_spoofed(headers: &http::HeaderMap, context: &str) {
    for (name, value) in headers {
        let v = String::from_utf8_lossy(value.as_bytes());
        assert!(
            !v.contains("spoof"),
            "{context}: spoofed value reached the upstream: {name}: {v}"
        );
        assert!(
            !name.as_str().contains('_'),
            "{context}: underscore header reached the upstream: {name}"
        );
    }
}

/// Inserts `lines` right after the `[section]` header of a configuration
/// made by `common::config_text` (whose sections may not repeat).
pub fn with_lines(text: &str, section: &str, lines: &str) -> String {
    let head = format!("[{section}]\n");
    assert!(text.contains(&head), "no [{section}] in the config");
    text.replacen(&head, &format!("{head}{lines}\n"), 1)
}

/// An authgate that may share its session registry with another one (as
/// replicas on a shared store do, or a restart with a persistent store):
/// built like `common::Gate`, then the store swapped before it binds.
/// Dropping it shuts it down.
pub struct Replica {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl Replica {
    pub async fn start(text: String, store: Option<Arc<dyn Store>>) -> Replica {
        let cfg = config::load(&Sources {
            config_file: None,
            config_text: Some(("test.toml".into(), text)),
            env: vec![],
            env_file: None,
        })
        .unwrap_or_else(|e| panic!("test config: {e}"));
        let mut app = App::build(cfg).expect("build");
        if let Some(store) = store {
            Arc::get_mut(&mut app.state)
                .expect("the state is not shared before bind")
                .sessions = store;
        }
        let bound = app.bind().expect("bind");
        let addr = bound.addr;
        let state = bound.state();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        Replica {
            addr,
            state,
            _stop: tx,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Starts a session directly (what LDAP/SAML login does); returns the
    /// session id and the `Cookie` header value.
    pub async fn login(&self, identity: authgate::identity::Identity) -> (String, String) {
        login(&self.state, identity).await
    }
}

/// Starts a session on `state`; returns the session id and the `Cookie`
/// header value (`name=value`).
pub async fn login(state: &State, identity: authgate::identity::Identity) -> (String, String) {
    let (s, set_cookie) = state.start_session(identity).await.expect("session");
    let pair = set_cookie
        .to_str()
        .expect("ascii")
        .split(';')
        .next()
        .expect("cookie pair")
        .to_string();
    (s.id.clone(), pair)
}

/// What the PyJWT verifier accepted.
#[derive(Debug)]
pub struct Verified {
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
    /// kid → the RFC 7638 thumbprint Python computed from that key's members.
    pub thumbprints: serde_json::Value,
}

/// The Python with PyJWT: `AUTHGATE_TEST_PYTHON` (set by scripts/test), else
/// `.venv/bin/python` in the crate. A missing verifier is a failure, not a
/// skip: create it with `python3 -m venv .venv && .venv/bin/pip install -r
/// tests/requirements.txt`.
pub fn python() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut tried = Vec::new();
    let candidates = std::env::var_os("AUTHGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(manifest.join(".venv/bin/python")));
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", "import jwt, cryptography"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return py;
        }
        tried.push(py.display().to_string());
    }
    panic!(
        "no Python with PyJWT found (tried {tried:?}): run scripts/test, or `python3 -m venv .venv && \
         .venv/bin/pip install -r tests/requirements.txt`, or set AUTHGATE_TEST_PYTHON"
    );
}

/// Verifies `token` against `jwks` with tests/jwt_verify.py (PyJWT, nothing
/// of ours): signature, `alg`, `aud`, `iss`, `exp`/`nbf`/`iat` and the
/// required claims. `Err` carries the verifier's reason.
pub async fn pyjwt_verify(
    jwks: &serde_json::Value,
    token: &str,
    issuer: &str,
    audience: &str,
    algorithm: &str,
) -> Result<Verified, String> {
    let input = serde_json::json!({ "jwks": jwks, "token": token }).to_string();
    let args = [
        "--issuer".to_string(),
        issuer.to_string(),
        "--audience".to_string(),
        audience.to_string(),
        "--algorithm".to_string(),
        algorithm.to_string(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/jwt_verify.py");
        let mut child = Command::new(python())
            .arg(script)
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the verifier");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(input.as_bytes())
            .expect("write to the verifier");
        child.wait_with_output().expect("verifier output")
    })
    .await
    .expect("join");
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "verifier printed no JSON ({e}): {}",
            String::from_utf8_lossy(&out.stdout)
        )
    });
    Ok(Verified {
        header: v["header"].clone(),
        claims: v["claims"].clone(),
        thumbprints: v["thumbprints"].clone(),
    })
}

/// Percent-decodes a query value once (`+` is a space).
pub fn decode_query_value(v: &str) -> String {
    percent_encoding::percent_decode_str(&v.replace('+', " "))
        .decode_utf8_lossy()
        .into_owned()
}

/// The decoded `rd` of a `Location` pointing at the login page, or `None`
/// when it has none.
pub fn rd_of(location: &str) -> Option<String> {
    let query = location.split_once('?')?.1;
    query
        .split('&')
        .find_map(|p| p.strip_prefix("rd="))
        .map(decode_query_value)
}

/// A target a browser resolves to this host: one leading `/`, then neither
/// `/` nor `\`, and nothing a browser would strip or treat as a scheme.
pub fn is_local_path(rd: &str) -> bool {
    let b = rd.as_bytes();
    b.first() == Some(&b'/')
        && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
        && b.iter().all(|c| c.is_ascii_graphic() && *c != b'\\')
}
