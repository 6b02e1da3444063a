//! authgate in-process with one signed-in session, for `bench/run`.
//!
//! ```text
//! cargo run --release --example bench_gate -- --config bench/tmp/gate.toml
//! ```
//!
//! Loads the configuration exactly as `authgate serve` does (file plus
//! `AUTHGATE_*` and LSE variables), builds and binds the real [`App`],
//! starts one session the way LDAP/SAML login will (`State::start_session`),
//! prints the `Cookie` request-header value (`name=value`) as the first line
//! on stdout, then serves until SIGTERM/SIGINT.
//!
//! This is how the benchmark gets a valid session cookie without a login
//! round trip or a test hook in the product. The runtimes are set up as
//! `authgate serve` sets them up (`src/main.rs`: one current-thread runtime
//! per `server.workers`, [`authgate::server::runtime`]), so the figures are
//! the product's.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use authgate::config::{self, Sources};
use authgate::identity::{Identity, Method};
use authgate::App;

/// The allocator `authgate serve` uses (src/main.rs).
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let config_file = match (args.next().as_deref(), args.next(), args.next()) {
        (Some("--config"), Some(path), None) => PathBuf::from(path),
        _ => {
            eprintln!("usage: bench_gate --config FILE");
            return ExitCode::from(2);
        }
    };
    let cfg = match config::load(&Sources {
        config_file: Some(config_file),
        config_text: None,
        env: std::env::vars().collect(),
        env_file: None,
    }) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    authgate::telemetry::init(&cfg.log);
    let workers = cfg.server.workers;
    let app = match App::build(cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtimes = match authgate::server::runtime::Runtimes::new(workers) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let extra = runtimes.extra_handles();
    let code = runtimes.block_on(async move {
        // As `authgate serve`: signal handlers first, then the listener.
        let signal = authgate::server::shutdown_signal();
        let bound = match app.bind() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot listen: {e}");
                return ExitCode::from(1);
            }
        };
        let state = bound.state();
        let cookie = match state.start_session(bench_identity()).await {
            Ok((_session, set_cookie)) => set_cookie
                .to_str()
                .ok()
                .and_then(|v| v.split(';').next())
                .map(str::to_string),
            Err(e) => {
                eprintln!("cannot start a session: {e}");
                return ExitCode::from(1);
            }
        };
        let Some(cookie) = cookie else {
            eprintln!("the Set-Cookie value is not a cookie pair");
            return ExitCode::from(1);
        };
        // The bench script reads this line, then waits for the listener.
        let mut out = std::io::stdout().lock();
        if writeln!(out, "{cookie}")
            .and_then(|()| writeln!(out, "listening on {}", bound.addr))
            .and_then(|()| out.flush())
            .is_err()
        {
            return ExitCode::from(1);
        }
        drop(out);
        bound.serve_on(extra, signal).await;
        ExitCode::SUCCESS
    });
    runtimes.shutdown();
    code
}

/// A realistic signed-in user: an LDAP DN, a few groups, a role, a
/// workspace and a project, so the identity JWT and plain headers have a
/// typical size.
fn bench_identity() -> Identity {
    Identity {
        subject: "uid=jane,ou=users,dc=example,dc=com".into(),
        email: Some("jane@example.com".into()),
        name: Some("Jane Doe".into()),
        given_name: Some("Jane".into()),
        family_name: Some("Doe".into()),
        preferred_username: Some("jane".into()),
        groups: vec![
            "cn=annotators,ou=groups,dc=example,dc=com".into(),
            "ls-annotators".into(),
        ],
        role: Some(authgate::role::Role::Annotator),
        workspaces: vec!["Workspace 1".into()],
        projects: BTreeMap::from([("42".into(), "annotator".into())]),
        method: Method::Ldap,
        session_index: None,
        saml_idp: None,
    }
}
