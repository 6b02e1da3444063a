//! Debian's chromium driven by playwright-core: the scripts under
//! `tests/browser/` (`npm ci` there, which scripts/test does), run by node.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;

/// `tests/browser`.
pub fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Runs `tests/browser/SCRIPT` with `env` off the async workers (the gate
/// runs on them); its stdout, after asserting that it succeeded.
pub async fn run_node(script: &str, env: Vec<(&'static str, OsString)>) -> String {
    let script = browser_dir().join(script);
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg(script)
            .current_dir(browser_dir())
            .envs(env)
            .output()
            .expect("node (Debian package nodejs) must be installed")
    })
    .await
    .expect("join");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "browser run failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
