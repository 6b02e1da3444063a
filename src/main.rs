//! Thin entry point: cli → config → telemetry → App::build → run until signal.
//!
//! Exit codes: 0 after a clean (drained) shutdown or a passing
//! `check-config`; 2 for any configuration error, always reported at start,
//! one line per problem naming the key and where its value came from; 1 for
//! anything else (cannot listen, keygen refused).

use std::process::ExitCode;

use clap::Parser;

use authgate::app::BuildError;
use authgate::cli::{Cli, Command};
use authgate::config::{self, Config, Errors, Problem, Sources};
use authgate::App;

/// jemalloc, not glibc's malloc: a doubly signed SAML response verified
/// 965 → 1,150 times per CPU-second with it (bench/README.md); the Rust
/// side of the proxy path allocates in the same small sizes.
#[global_allocator]
static ALLOC: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// The exit code of every configuration error.
const CONFIG_ERROR: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let sources = Sources {
        config_file: cli.config.clone(),
        config_text: None,
        env: std::env::vars().collect(),
        env_file: cli.env_file.clone(),
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Keygen {
            path,
            algorithm,
            session_secret,
            force,
            saml,
            saml_key,
            saml_cert,
        } => match if saml {
            authgate::saml::write_sp_pair(&saml_key, &saml_cert, "authgate SAML SP", force)
        } else {
            authgate::keygen(&path, &algorithm, session_secret.as_deref(), force)
        } {
            Ok(msg) => {
                println!("{msg}");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("keygen: {e}");
                ExitCode::from(1)
            }
        },
        Command::CheckConfig => {
            let cfg = match load(&sources) {
                Ok(c) => c,
                Err(code) => return code,
            };
            let mut effective = toml::to_string_pretty(&cfg.raw).unwrap_or_default();
            let in_effect = cfg.in_effect();
            if !in_effect.is_empty() {
                effective.push_str("\n# in effect\n");
                for line in in_effect {
                    effective.push_str(&format!("# {line}\n"));
                }
            }
            let warnings = cfg.warnings.clone();
            match build(cfg) {
                Ok(_) => {
                    println!("# effective configuration (secrets redacted)\n{effective}");
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    eprintln!("configuration OK");
                    ExitCode::SUCCESS
                }
                Err(code) => code,
            }
        }
        Command::ExplainPolicy { method, path, role } => {
            let cfg = match load(&sources) {
                Ok(c) => c,
                Err(code) => return code,
            };
            match authgate::explain_policy(&cfg, &method, &path, role.as_deref()) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(CONFIG_ERROR)
                }
            }
        }
        Command::Serve => serve(sources),
        Command::Sessions { action } => sessions(&sources, action),
        Command::Selftest {
            url,
            cookie,
            path,
            prefix,
            headers,
            routes,
            role_cookies,
            role_routes,
            ca_file,
            timeout,
        } => {
            let mut pairs = Vec::new();
            for rc in role_cookies {
                match rc.split_once('=') {
                    Some((role, cookie)) if !role.is_empty() && !cookie.is_empty() => {
                        pairs.push((role.to_ascii_lowercase(), cookie.to_string()))
                    }
                    _ => {
                        eprintln!("selftest could not run: --role-cookie takes ROLE=COOKIE");
                        return ExitCode::from(2);
                    }
                }
            }
            for role in authgate::role::Role::ALL.map(authgate::role::Role::as_str) {
                let var = format!(
                    "AUTHGATE_SELFTEST_ROLE_COOKIE_{}",
                    role.to_ascii_uppercase()
                );
                if let Ok(cookie) = std::env::var(&var) {
                    if !cookie.is_empty() && !pairs.iter().any(|(r, _)| r == role) {
                        pairs.push((role.to_string(), cookie));
                    }
                }
            }
            selftest(authgate::selftest::Options {
                url,
                cookie,
                path,
                prefix,
                headers,
                routes,
                role_cookies: pairs,
                role_routes,
                ca_file,
                timeout,
            })
        }
    }
}

/// `authgate sessions list|revoke`: 0 done, 1 the API refused or could not
/// be reached, 2 a configuration error.
fn sessions(sources: &Sources, action: authgate::cli::Sessions) -> ExitCode {
    use authgate::admin_cli::{self, Revoke, Target};
    use authgate::cli::{Api, Sessions};
    let api: &Api = match &action {
        Sessions::List { api, .. } | Sessions::Revoke { api, .. } => api,
    };
    let target = match &api.url {
        Some(url) => Target::from_url(url, api.token_file.as_deref()),
        None => {
            let cfg = match load(sources) {
                Ok(c) => c,
                Err(code) => return code,
            };
            Target::from_config(&cfg).and_then(|mut t| {
                if let Some(p) = &api.token_file {
                    t.token = Some(admin_cli::read_token(p)?);
                }
                Ok(t)
            })
        }
    };
    let target = match target {
        Ok(t) => t,
        Err(e) => {
            eprintln!("sessions: {e}");
            return ExitCode::from(CONFIG_ERROR);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match &action {
            Sessions::List { user, .. } => admin_cli::list(&target, user.as_deref()).await,
            Sessions::Revoke { user, sid, all, .. } => {
                let what = match (user, sid, all) {
                    (Some(u), _, _) => Revoke::User(u.clone()),
                    (None, Some(s), _) => Revoke::Sid(s.clone()),
                    _ => Revoke::All,
                };
                admin_cli::revoke(&target, &what).await
            }
        }
    });
    match result {
        Ok((_, json)) if api.json => {
            println!("{json}");
            ExitCode::SUCCESS
        }
        Ok((answer, _)) => {
            match answer.revoked {
                Some(n) => println!(
                    "revoked {n} session{} ({} store)",
                    if n == 1 { "" } else { "s" },
                    answer.store
                ),
                None => println!(
                    "{} live session{} ({} store)",
                    answer.sessions.len(),
                    if answer.sessions.len() == 1 { "" } else { "s" },
                    answer.store
                ),
            }
            if !answer.sessions.is_empty() {
                print!("{}", admin_cli::table(&answer.sessions));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("sessions: {e}");
            ExitCode::from(1)
        }
    }
}

/// `authgate selftest`: 0 nothing got through, 1 something did, 2 the
/// check could not run.
fn selftest(opts: authgate::selftest::Options) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(authgate::selftest::run(&opts)) {
        Ok(report) => {
            print!("{}", report.render());
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            eprintln!("selftest could not run: {e}");
            ExitCode::from(2)
        }
    }
}

/// `config::load`, printing every problem on failure.
fn load(sources: &Sources) -> Result<Config, ExitCode> {
    config::load(sources).map_err(|e| {
        eprintln!("{e}");
        ExitCode::from(CONFIG_ERROR)
    })
}

/// `App::build` (keys, TLS files), its failures reported like the other
/// configuration errors: one line, the key and where its value came from.
fn build(mut cfg: Config) -> Result<App, ExitCode> {
    let origins = std::mem::take(&mut cfg.origins);
    let session_key = if cfg.raw.session.secret.is_empty() {
        "session.secret_file"
    } else {
        "session.secret"
    };
    App::build(cfg).map_err(|e| {
        let (key, message) = match &e {
            BuildError::SigningKey(inner) => ("identity.signing_key", inner.to_string()),
            BuildError::Session(inner) => (session_key, inner.to_string()),
            BuildError::Tls(inner) => (inner.key(), inner.to_string()),
            other => ("", other.to_string()),
        };
        let problem = Problem {
            key: key.to_string(),
            source: if key.is_empty() {
                "configuration".into()
            } else {
                origins.of(key)
            },
            message,
        };
        eprintln!("{}", Errors(vec![problem]));
        ExitCode::from(CONFIG_ERROR)
    })
}

fn serve(sources: Sources) -> ExitCode {
    let cfg = match load(&sources) {
        Ok(c) => c,
        Err(code) => return code,
    };
    authgate::telemetry::init(&cfg.log);
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let workers = cfg.server.workers;
    let app = match build(cfg) {
        Ok(a) => a,
        Err(code) => return code,
    };
    let runtimes = match authgate::server::runtime::Runtimes::new(workers) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let extra = runtimes.extra_handles();
    let workers = runtimes.workers();
    let code = runtimes.block_on(async move {
        // Before binding: from here on SIGTERM/SIGINT mean "drain".
        let signal = authgate::server::shutdown_signal();
        let bound = match app.bind() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot listen: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(listen = %bound.addr, metrics = ?bound.metrics_addr, workers, "authgate started");
        #[cfg(unix)]
        tokio::spawn(reload_on_sighup(bound.live(), sources));
        bound.serve_on(extra, signal).await;
        tracing::info!("authgate stopped");
        authgate::telemetry::access::flush();
        ExitCode::SUCCESS
    });
    // Connections still open after server.shutdown_grace are cut here; do
    // not wait for stray blocking tasks (DNS lookups) either.
    runtimes.shutdown();
    code
}

/// SIGHUP: read the configuration again (the same file, environment and env
/// file) and put it in force atomically (keys, certificates, IdP metadata,
/// mappings, route tables). A configuration that does not load or build is
/// refused with an error line and the running one keeps serving.
#[cfg(unix)]
async fn reload_on_sighup(live: std::sync::Arc<authgate::app::Live>, sources: Sources) {
    use tokio::signal::unix::{signal, SignalKind};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP; configuration reload is off");
        return;
    };
    while hup.recv().await.is_some() {
        // Lines buffered so far are written before anything else happens
        // (log rotation: the old file gets everything up to the signal).
        authgate::telemetry::access::flush();
        let cfg = match config::load(&sources) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e.to_string().replace('\n', "; "), "configuration reload refused; the running configuration stays");
                continue;
            }
        };
        for w in &cfg.warnings {
            tracing::warn!("{w}");
        }
        match live.reload(cfg).await {
            Ok(()) => tracing::info!("configuration reloaded"),
            Err(e) => {
                tracing::error!(error = %e, "configuration reload refused; the running configuration stays")
            }
        }
    }
}
