//! authgate itself: in-process (`Gate`, bound to 127.0.0.1:0, stopped on
//! drop) or as the real binary in a child process (`Binary`, killed on
//! drop); the keys and the configuration text both start from.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use authgate::app::State;
use authgate::config::{self, Config, Sources};
use authgate::session::Store;
use authgate::App;

use super::process::Proc;

/// The real binary.
pub const BIN: &str = env!("CARGO_BIN_EXE_authgate");

/// The host of `server.public_url` in [`config_text`].
pub const GATE_HOST: &str = "gate.test";
/// The identity JWT's `iss` (`server.public_url`) and `aud` in
/// [`config_text`].
pub const ISSUER: &str = "http://gate.test";
pub const AUDIENCE: &str = "labeling-app";

/// Keys written once per test into a private temp dir.
pub struct Keys {
    pub dir: tempfile::TempDir,
    pub signing_key: PathBuf,
    pub session_key: PathBuf,
}

impl Keys {
    pub fn new() -> Keys {
        let dir = tempfile::tempdir().expect("tempdir");
        let signing_key = dir.path().join("identity.pem");
        let session_key = dir.path().join("session.key");
        authgate::keygen(&signing_key, "ES256", Some(&session_key), false).expect("keygen");
        Keys {
            dir,
            signing_key,
            session_key,
        }
    }

    /// The same session secret and signing key (as every pod of a
    /// Deployment mounts the same Secret), with a temp dir of its own.
    pub fn share(&self) -> Keys {
        Keys {
            dir: tempfile::tempdir().expect("tempdir"),
            signing_key: self.signing_key.clone(),
            session_key: self.session_key.clone(),
        }
    }
}

/// A configuration with fresh keys and the given upstream; `extra` is
/// appended TOML (sections may repeat only if not already present here).
pub fn config_text(keys: &Keys, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
public_url = "http://gate.test"
header_read_timeout = "2s"
shutdown_grace = "10s"
[upstream]
url = "{upstream}"
response_timeout = "1s"
connect_timeout = "1s"
[session]
secret_file = "{session}"
[identity]
signing_key = "{signing}"
audience = "labeling-app"
[log]
level = "warn"
{extra}
"#,
        session = keys.session_key.display(),
        signing = keys.signing_key.display(),
    )
}

/// Inserts `lines` right after the `[section]` header of a configuration
/// made by [`config_text`] (whose sections may not repeat).
pub fn with_lines(text: &str, section: &str, lines: &str) -> String {
    let head = format!("[{section}]\n");
    assert!(text.contains(&head), "no [{section}] in the config");
    text.replacen(&head, &format!("{head}{lines}\n"), 1)
}

/// Loads configuration `text` (labelled `test.toml`) with `env` as the
/// process environment and an optional env file.
pub fn load_config(
    text: &str,
    env: Vec<(String, String)>,
    env_file: Option<PathBuf>,
) -> Result<Config, config::Errors> {
    config::load(&Sources {
        config_file: None,
        config_text: Some(("test.toml".into(), text.to_string())),
        env,
        env_file,
    })
}

/// authgate running in-process.
pub struct Gate {
    pub addr: SocketAddr,
    pub metrics_addr: Option<SocketAddr>,
    pub state: Arc<State>,
    pub keys: Keys,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Gate {
    pub async fn start(upstream: &str, extra: &str) -> Gate {
        let keys = Keys::new();
        let text = config_text(&keys, upstream, extra);
        Gate::start_with(keys, text, vec![]).await
    }

    pub async fn start_with(keys: Keys, text: String, env: Vec<(String, String)>) -> Gate {
        Gate::start_with_env_file(keys, text, env, None).await
    }

    /// With an env file below `env` (the seed's).
    pub async fn start_with_env_file(
        keys: Keys,
        text: String,
        env: Vec<(String, String)>,
        env_file: Option<PathBuf>,
    ) -> Gate {
        let cfg = load_config(&text, env, env_file).unwrap_or_else(|e| panic!("test config: {e}"));
        Gate::from_config(keys, cfg, None).await
    }

    /// Sharing `store`, the session registry of another gate (as replicas
    /// on a shared store do, or a restart with a persistent store).
    pub async fn with_store(keys: Keys, text: String, store: Arc<dyn Store>) -> Gate {
        let cfg = load_config(&text, vec![], None).unwrap_or_else(|e| panic!("test config: {e}"));
        Gate::from_config(keys, cfg, Some(store)).await
    }

    /// Builds, binds and serves `cfg`; with `store`, the session store is
    /// swapped before it binds.
    pub async fn from_config(keys: Keys, cfg: Config, store: Option<Arc<dyn Store>>) -> Gate {
        let mut app = App::build(cfg).expect("build");
        if let Some(store) = store {
            Arc::get_mut(&mut app.state)
                .expect("the state is not shared before bind")
                .sessions = store;
        }
        let bound = app.bind().expect("bind");
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let addr = bound.addr;
        let metrics_addr = bound.metrics_addr;
        let state = bound.state();
        let task = tokio::spawn(bound.serve(async move {
            let _ = rx.await;
        }));
        Gate {
            addr,
            metrics_addr,
            state,
            keys,
            stop: Some(tx),
            task: Some(task),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Triggers graceful shutdown and waits for it.
    pub async fn shutdown(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(20), t).await;
        }
    }

    /// Signs a user in directly (what LDAP/SAML login does) and returns the Cookie header value.
    pub async fn login(&self, identity: authgate::identity::Identity) -> String {
        login(&self.state, identity).await.1
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Starts a session on `state` (what LDAP/SAML login does); returns the
/// session id and the `Cookie` header value (`name=value`).
pub async fn login(state: &State, identity: authgate::identity::Identity) -> (String, String) {
    let (s, set_cookie) = state.start_session(identity).await.expect("session");
    (s.id.clone(), super::cookies::pair_of(&set_cookie))
}

pub fn identity(
    subject: &str,
    email: &str,
    role: Option<&str>,
    groups: &[&str],
) -> authgate::identity::Identity {
    authgate::identity::Identity {
        subject: subject.into(),
        email: Some(email.into()),
        name: Some("Test User".into()),
        given_name: Some("Test".into()),
        family_name: Some("User".into()),
        preferred_username: Some(
            subject
                .split(',')
                .next()
                .unwrap_or(subject)
                .trim_start_matches("uid=")
                .into(),
        ),
        groups: groups.iter().map(|g| g.to_string()).collect(),
        role: role
            .map(|r| authgate::role::Role::from_claim(r).expect("a role, spelled as the claim")),
        workspaces: vec![],
        projects: Default::default(),
        method: authgate::identity::Method::Ldap,
        session_index: None,
        saml_idp: None,
    }
}

/// The real binary as a child process (`serve --config FILE`), killed on
/// drop, its stderr collected as it is written.
pub struct Binary {
    proc: Proc,
    pub addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
    /// Set by the reader thread once the child's stderr reaches EOF.
    stderr_done: Arc<AtomicBool>,
    _keys: Keys,
}

impl Binary {
    /// The binary with none of the environment's configuration variables
    /// (`AUTHGATE_*`, `AUTH_LDAP_*`, `RUST_LOG`).
    pub fn command() -> Command {
        let mut cmd = Command::new(BIN);
        for (k, _) in std::env::vars() {
            if k.starts_with("AUTHGATE_") || k.starts_with("AUTH_LDAP_") || k == "RUST_LOG" {
                cmd.env_remove(k);
            }
        }
        cmd
    }

    /// Serves `config` (which must log JSON at `info`: the address comes
    /// from its "authgate started" line, waited for up to 30 s); `keys`
    /// live as long as the process.
    pub fn serve(config: &Path, keys: Keys) -> Binary {
        let mut child = Binary::command()
            .args(["serve", "--config"])
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn authgate");
        let pipe = child.stderr.take().expect("stderr");
        let proc = Proc::new(child);
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel::<SocketAddr>();
        let log = stderr.clone();
        let stderr_done = Arc::new(AtomicBool::new(false));
        let done = stderr_done.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if line.contains("authgate started") {
                    if let Some(addr) = serde_json::from_str::<serde_json::Value>(&line)
                        .ok()
                        .and_then(|v| v["listen"].as_str()?.parse().ok())
                    {
                        let _ = tx.send(addr);
                    }
                }
                let mut l = log.lock().expect("lock");
                l.push_str(&line);
                l.push('\n');
            }
            done.store(true, Ordering::SeqCst);
        });
        let Ok(addr) = rx.recv_timeout(Duration::from_secs(30)) else {
            drop(proc);
            panic!("authgate did not start:\n{}", stderr.lock().expect("lock"));
        };
        Binary {
            proc,
            addr,
            stderr,
            stderr_done,
            _keys: keys,
        }
    }

    pub fn pid(&self) -> u32 {
        self.proc.id()
    }

    /// A field of /proc/PID/status, in KiB.
    pub fn status_kib(&self, field: &str) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
    }

    /// `kill -NAME` (asserting it was delivered).
    pub fn signal(&self, name: &str) {
        assert!(self.proc.signal(name), "kill -{name}");
    }

    /// Its exit status once it has exited; never blocks.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.proc.exited()
    }

    /// Waits for the process to end, up to `limit`.
    pub fn wait(&mut self, limit: Duration) -> Option<ExitStatus> {
        let status = self.proc.wait_timeout(limit)?;
        // The process is gone; let the reader thread take in its last
        // lines before anyone looks at the log (bounded).
        for _ in 0..250 {
            if self.stderr_done.load(Ordering::SeqCst) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(status)
    }

    /// What it has written to stderr so far.
    pub fn log(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }
}
