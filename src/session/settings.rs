//! `[session]` as the rest of authgate reads it (built by `config`).

use std::time::Duration;

use crate::secret::Secret;

#[derive(Debug, Clone)]
/// `[session]`: cookie, lifetimes and the store.
pub struct Settings {
    /// Raw key material; the first encrypts, all decrypt.
    pub secrets: Vec<Secret<Vec<u8>>>,
    pub cookie_name: String,
    pub ttl: Duration,
    pub idle_timeout: Duration,
    pub store: StoreKind,
}

/// Where sessions, SAML replay ids and login throttles live.
#[derive(Debug, Clone)]
pub enum StoreKind {
    /// In this process (the default): lost on restart, not shared.
    Memory,
    /// Shared by every replica.
    Redis(Box<RedisSettings>),
}

#[derive(Debug, Clone)]
pub struct RedisSettings {
    /// Parsed `session.redis_url` (or the sentinel or cluster URLs) with
    /// the passwords applied, and the CA of `session.redis_ca_file`.
    pub target: Secret<super::redis::Target>,
    pub timeout: Duration,
    pub prefix: String,
}
