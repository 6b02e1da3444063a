//! `[log]` as the rest of authgate reads it (built by `config`).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Clone)]
/// `[log]`.
pub struct Settings {
    pub format: LogFormat,
    pub level: String,
    pub access_log: bool,
    pub audit: bool,
}
