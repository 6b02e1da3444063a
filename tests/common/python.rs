//! The test Python (`tests/requirements.txt`) and the independent PyJWT
//! verifier, tests/jwt_verify.py.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

/// A Python that imports `modules` (`"jwt, cryptography"`):
/// `AUTHGATE_TEST_PYTHON` (set by scripts/test), else `.venv/bin/python` in
/// the crate. None is a failure, not a skip: create it with `python3 -m
/// venv .venv && .venv/bin/pip install -r tests/requirements.txt`.
pub fn python(modules: &str) -> PathBuf {
    static FOUND: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    if let Some(py) = FOUND.lock().expect("lock").get(modules) {
        return py.clone();
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut tried = Vec::new();
    let candidates = std::env::var_os("AUTHGATE_TEST_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain(std::iter::once(manifest.join(".venv/bin/python")));
    for py in candidates {
        let ok = Command::new(&py)
            .args(["-c", &format!("import {modules}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            FOUND
                .lock()
                .expect("lock")
                .insert(modules.to_string(), py.clone());
            return py;
        }
        tried.push(py.display().to_string());
    }
    panic!(
        "no Python with {modules} found (tried {tried:?}): run scripts/test, or `python3 -m venv .venv && \
         .venv/bin/pip install -r tests/requirements.txt`, or set AUTHGATE_TEST_PYTHON"
    );
}

/// What the PyJWT verifier accepted.
#[derive(Debug)]
pub struct Verified {
    pub header: serde_json::Value,
    pub claims: serde_json::Value,
    /// kid → the RFC 7638 thumbprint Python computed from that key's members.
    pub thumbprints: serde_json::Value,
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
        let mut child = Command::new(python("jwt, cryptography"))
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
