//! Command line: `serve` (default), `check-config`, `keygen`, `explain-policy`,
//! `selftest`, `sessions list|revoke`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

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
    /// Print which route-table rule decides METHOD PATH, and why; with --role,
    /// also which role-table row decides it for that organization role.
    ExplainPolicy {
        /// An organization role (owner, administrator, manager, reviewer,
        /// annotator, or anything else for "no role"): explain the role table too.
        #[arg(long, value_name = "ROLE")]
        role: Option<String>,
        method: String,
        /// Path and optional query, e.g. /api/projects/1/members/?x=1
        path: String,
    },
    /// Attack a deployed authgate the way an intruder would (forged identity
    /// headers, open-redirect `rd` values, disguised policy routes) and say
    /// what got through. Exit 0 when nothing did, 1 when something did, 2
    /// when the check could not run. Run it after every deployment change.
    Selftest {
        /// The deployment's base URL, e.g. https://labels.example.com
        url: String,
        /// A signed-in session's Cookie header value (e.g. "authgate=...");
        /// forged headers and policy routes are then tried as that user. Never printed.
        #[arg(
            long,
            value_name = "COOKIE",
            env = "AUTHGATE_SELFTEST_COOKIE",
            hide_env_values = true
        )]
        cookie: Option<String>,
        /// The path forged headers are sent to; point it at an upstream
        /// endpoint that echoes request headers for the full check.
        #[arg(long, default_value = "/")]
        path: String,
        /// authgate's server.prefix on that deployment.
        #[arg(long, default_value = "/_auth")]
        prefix: String,
        /// Another header name to forge (e.g. a configured identity.headers.* name); repeatable.
        #[arg(long = "header", value_name = "NAME")]
        headers: Vec<String>,
        /// The route table to probe (default: the embedded Label Studio table).
        #[arg(long, value_name = "PATH")]
        routes: Option<PathBuf>,
        /// A signed-in session of an organization role, as ROLE=COOKIE (e.g.
        /// annotator='authgate=...'); repeatable, one per role. The role table's
        /// rows above ROLE are probed with it. Never printed. Also read from
        /// AUTHGATE_SELFTEST_ROLE_COOKIE_<ROLE> (e.g. ..._ANNOTATOR).
        #[arg(long = "role-cookie", value_name = "ROLE=COOKIE")]
        role_cookies: Vec<String>,
        /// The role table to probe (default: the embedded Label Studio role table).
        #[arg(long, value_name = "PATH")]
        role_routes: Option<PathBuf>,
        /// An extra CA certificate (PEM) to trust for an https URL.
        #[arg(long, value_name = "PATH")]
        ca_file: Option<PathBuf>,
        /// Per-request timeout.
        #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
        timeout: std::time::Duration,
    },
    /// List or revoke the sessions of a running authgate (every replica
    /// sharing its Redis), through the admin API on its metrics listener.
    Sessions {
        #[command(subcommand)]
        action: Sessions,
    },
}

#[derive(Debug, Subcommand)]
pub enum Sessions {
    /// Live sessions: sid prefix, user, email, method, role, IdP, times (UTC).
    List {
        /// Only the sessions of this email (or subject: LDAP DN, SAML NameID).
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        #[command(flatten)]
        api: Api,
    },
    /// End sessions now: their next request, on any replica, is signed out.
    #[command(group(clap::ArgGroup::new("which").required(true).args(["user", "sid", "all"])))]
    Revoke {
        /// Every session of this email (or subject).
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// One session: the sid prefix `sessions list` shows, or the whole id
        /// (ids may start with `-`).
        #[arg(long, value_name = "SID", allow_hyphen_values = true)]
        sid: Option<String>,
        /// Every session.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        api: Api,
    },
}

/// Where the admin API is; by default from the configuration.
#[derive(Debug, Args)]
pub struct Api {
    /// The metrics listener, e.g. http://127.0.0.1:9090 (default:
    /// server.metrics_listen of the configuration).
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,
    /// The bearer token file (default: server.admin_token_file).
    #[arg(long, value_name = "PATH")]
    pub token_file: Option<PathBuf>,
    /// Print the API's JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}
