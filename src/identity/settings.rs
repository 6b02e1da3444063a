//! `[identity]` as the rest of authgate reads it (built by `config`).

use std::path::PathBuf;
use std::time::Duration;

use http::header::HeaderName;

use super::keys::Algorithm;
use crate::secret::Secret;

#[derive(Debug, Clone)]
/// `[identity]`: the signing key and what goes upstream.
pub struct Settings {
    pub signing_key: Secret<Vec<u8>>,
    pub signing_key_path: PathBuf,
    pub algorithm: Algorithm,
    pub previous_keys: Vec<Vec<u8>>,
    pub audience: String,
    pub header: HeaderName,
    pub ttl: Duration,
    pub all_groups: bool,
    pub plain_headers: bool,
    pub headers: PlainHeaderNames,
}

#[derive(Debug, Clone)]
pub struct PlainHeaderNames {
    pub user: HeaderName,
    pub email: HeaderName,
    pub preferred_username: HeaderName,
    pub groups: HeaderName,
    pub role: HeaderName,
}
