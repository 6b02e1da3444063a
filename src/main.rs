//! Thin entry point: cli → config → telemetry → App::build → run until signal.

use std::process::ExitCode;

use clap::Parser;

use authgate::cli::{Cli, Command};
use authgate::config::{self, Sources};

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
        } => match authgate::keygen(&path, &algorithm, session_secret.as_deref(), force) {
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
            let cfg = match config::load(&sources) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            let effective = toml::to_string_pretty(&cfg.raw).unwrap_or_default();
            let warnings = cfg.warnings.clone();
            match authgate::app::App::build(cfg) {
                Ok(_) => {
                    println!("# effective configuration (secrets redacted)\n{effective}");
                    for w in warnings {
                        eprintln!("warning: {w}");
                    }
                    eprintln!("configuration OK");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("configuration error: {e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::ExplainPolicy { method, path } => {
            let cfg = match config::load(&sources) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("{e}");
                    return ExitCode::from(2);
                }
            };
            match authgate::explain_policy(&cfg, &method, &path) {
                Ok(text) => {
                    println!("{text}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("{e}");
                    ExitCode::from(2)
                }
            }
        }
        Command::Serve => serve(sources),
    }
}

fn serve(sources: Sources) -> ExitCode {
    let cfg = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    authgate::telemetry::init(&cfg.log);
    for w in &cfg.warnings {
        tracing::warn!("{w}");
    }
    let workers = match cfg.server.workers {
        0 => std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        n => n,
    };
    let app = match authgate::app::App::build(cfg) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(async move {
        let bound = match app.bind() {
            Ok(b) => b,
            Err(e) => {
                eprintln!("cannot listen: {e}");
                return ExitCode::from(1);
            }
        };
        tracing::info!(listen = %bound.addr, metrics = ?bound.metrics_addr, workers, "authgate started");
        bound.serve(authgate::server::shutdown_signal()).await;
        tracing::info!("authgate stopped");
        ExitCode::SUCCESS
    })
}
