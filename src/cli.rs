//! Command line: `serve` (default), `check-config`, `keygen`, `explain-policy`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "authgate",
    version,
    about = "Authentication sidecar reverse proxy: SAML 2.0 SSO and LDAP in front of an unmodified web application"
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// A dotenv file (e.g. Label Studio Enterprise's env file); the process
    /// environment wins over it.
    #[arg(long, global = true, value_name = "PATH")]
    pub env_file: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the proxy (the default).
    Serve,
    /// Validate the configuration and print it, secrets redacted; exit 2 on any error.
    CheckConfig,
    /// Write a new identity signing key (PKCS#8 PEM) and optionally a session secret.
    Keygen {
        /// Where to write the signing key.
        #[arg(default_value = "certs/identity.pem")]
        path: PathBuf,
        /// ES256 (default), EdDSA or RS256.
        #[arg(long, default_value = "ES256")]
        algorithm: String,
        /// Also write a random session secret to this file.
        #[arg(long, value_name = "PATH")]
        session_secret: Option<PathBuf>,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// Write a self-signed SAML SP key and certificate (to --saml-key and
        /// --saml-cert) instead of an identity key.
        #[arg(long)]
        saml: bool,
        #[arg(long, value_name = "PATH", default_value = "certs/saml-sp.key")]
        saml_key: PathBuf,
        #[arg(long, value_name = "PATH", default_value = "certs/saml-sp.crt")]
        saml_cert: PathBuf,
    },
    /// Print which route-table rule decides METHOD PATH, and why.
    ExplainPolicy {
        method: String,
        /// Path and optional query, e.g. /api/projects/1/members/?x=1
        path: String,
    },
}
