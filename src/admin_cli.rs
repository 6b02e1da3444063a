//! `authgate sessions list|revoke`: a client of the session admin API of a
//! running authgate ([`crate::endpoints::sessions`], on the metrics
//! listener). The address and token come from the configuration
//! (`server.metrics_listen`, `server.admin_token_file`) unless given.
//!
//! Must not: print the token or anything the API does not return (it
//! returns session id prefixes, never ids or cookies).

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::{header, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;

use crate::config::{Config, Secret};
use crate::endpoints::sessions::PATH;

/// Time allowed for one API call.
const TIMEOUT: Duration = Duration::from_secs(15);

/// Where the admin API is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct Target {
    /// `http://host:port`, without a trailing slash.
    pub base: String,
    pub token: Option<Secret<String>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("server.metrics_listen is not set: the session admin API is served on the metrics listener; set it, or pass --url")]
    NoListener,
    #[error("invalid --url {0:?}: expected e.g. http://127.0.0.1:9090")]
    BadUrl(String),
    #[error("cannot read the token file {path:?}: {source}")]
    TokenFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{base} did not answer within {TIMEOUT:?}")]
    Timeout { base: String },
    #[error("cannot reach {base}: {why}")]
    Unreachable { base: String, why: String },
    #[error("authgate refused ({status}): {message}")]
    Refused { status: StatusCode, message: String },
    #[error("unexpected answer from authgate: {0}")]
    Answer(String),
}

impl Target {
    /// From the configuration: the metrics listener (an unspecified
    /// address such as 0.0.0.0 is reached on loopback) and the token.
    pub fn from_config(cfg: &Config) -> Result<Target, Error> {
        let addr = cfg.server.metrics_listen.ok_or(Error::NoListener)?;
        Ok(Target {
            base: base_of(addr),
            token: cfg.server.admin_token.clone(),
        })
    }

    /// From `--url` and `--token-file`.
    pub fn from_url(url: &str, token_file: Option<&std::path::Path>) -> Result<Target, Error> {
        let raw = url.trim();
        let u = if raw.contains("://") {
            raw.to_string()
        } else {
            format!("http://{raw}")
        };
        let u = u.trim_end_matches('/').to_string();
        let parsed: http::Uri = u.parse().map_err(|_| Error::BadUrl(url.to_string()))?;
        let has_host = parsed.host().is_some_and(|h| !h.is_empty());
        if parsed.scheme_str() != Some("http") || !has_host || parsed.path().len() > 1 {
            return Err(Error::BadUrl(url.to_string()));
        }
        let token = match token_file {
            None => None,
            Some(p) => Some(read_token(p)?),
        };
        Ok(Target { base: u, token })
    }
}

/// A token file's content, trimmed.
pub fn read_token(p: &std::path::Path) -> Result<Secret<String>, Error> {
    std::fs::read_to_string(p)
        .map(|t| Secret::new(t.trim().to_string()))
        .map_err(|source| Error::TokenFile {
            path: p.display().to_string(),
            source,
        })
}

fn base_of(addr: SocketAddr) -> String {
    let ip = match addr.ip() {
        std::net::IpAddr::V4(v) if v.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(v) if v.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, addr.port()))
}

/// One listed session, as the API returns it.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct Row {
    pub sid: String,
    pub subject: String,
    pub email: Option<String>,
    pub user: String,
    pub method: String,
    pub role: Option<String>,
    pub idp: Option<String>,
    pub created: u64,
    pub last_seen: u64,
    pub expires: u64,
}

/// The API's answer to a list or a revocation.
#[derive(Debug, Clone, Deserialize)]
pub struct Answer {
    pub store: String,
    pub sessions: Vec<Row>,
    pub revoked: Option<usize>,
}

/// What to revoke.
#[derive(Debug, Clone)]
pub enum Revoke {
    User(String),
    Sid(String),
    All,
}

async fn call(target: &Target, req: Request<Full<Bytes>>) -> Result<(Answer, String), Error> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let resp = tokio::time::timeout(TIMEOUT, client.request(req))
        .await
        .map_err(|_| Error::Timeout {
            base: target.base.clone(),
        })?
        .map_err(|e| Error::Unreachable {
            base: target.base.clone(),
            why: std::error::Error::source(&e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| e.to_string()),
        })?;
    let status = resp.status();
    let body = tokio::time::timeout(TIMEOUT, resp.into_body().collect())
        .await
        .map_err(|_| Error::Timeout {
            base: target.base.clone(),
        })?
        .map_err(|e| Error::Answer(e.to_string()))?
        .to_bytes();
    let text = String::from_utf8_lossy(&body).into_owned();
    if !status.is_success() {
        let message = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v.get("error")?.as_str().map(str::to_string))
            .unwrap_or_else(|| text.chars().take(200).collect());
        return Err(Error::Refused { status, message });
    }
    let answer = serde_json::from_str(&text).map_err(|e| Error::Answer(e.to_string()))?;
    Ok((answer, text))
}

fn request(
    target: &Target,
    method: http::Method,
    path_and_query: &str,
    body: Bytes,
) -> Result<Request<Full<Bytes>>, Error> {
    let mut b = Request::builder()
        .method(method)
        .uri(format!("{}{path_and_query}", target.base))
        .header(header::ACCEPT, "application/json");
    if !body.is_empty() {
        b = b.header(header::CONTENT_TYPE, "application/json");
    }
    if let Some(t) = &target.token {
        b = b.header(header::AUTHORIZATION, format!("Bearer {}", t.expose()));
    }
    b.body(Full::new(body))
        .map_err(|_| Error::BadUrl(target.base.clone()))
}

/// `GET /admin/sessions[?user=]`: the answer and its JSON text.
pub async fn list(target: &Target, user: Option<&str>) -> Result<(Answer, String), Error> {
    let q = match user {
        Some(u) => format!(
            "{PATH}?user={}",
            form_urlencoded::byte_serialize(u.as_bytes()).collect::<String>()
        ),
        None => PATH.to_string(),
    };
    call(
        target,
        request(target, http::Method::GET, &q, Bytes::new())?,
    )
    .await
}

/// `POST /admin/sessions/revoke`: the answer and its JSON text.
pub async fn revoke(target: &Target, what: &Revoke) -> Result<(Answer, String), Error> {
    let body = match what {
        Revoke::User(u) => serde_json::json!({ "user": u }),
        Revoke::Sid(s) => serde_json::json!({ "sid": s }),
        Revoke::All => serde_json::json!({ "all": true }),
    };
    call(
        target,
        request(
            target,
            http::Method::POST,
            &format!("{PATH}/revoke"),
            Bytes::from(body.to_string()),
        )?,
    )
    .await
}

/// The rows as an aligned text table (times in UTC).
pub fn table(rows: &[Row]) -> String {
    let head = [
        "SID",
        "USER",
        "EMAIL",
        "METHOD",
        "ROLE",
        "IDP",
        "CREATED (UTC)",
        "LAST SEEN",
        "EXPIRES",
    ];
    let lines: Vec<[String; 9]> = rows
        .iter()
        .map(|r| {
            [
                r.sid.clone(),
                r.user.clone(),
                r.email.clone().unwrap_or_else(|| "-".into()),
                r.method.clone(),
                r.role.clone().unwrap_or_else(|| "-".into()),
                r.idp.clone().unwrap_or_else(|| "-".into()),
                crate::pages::utc(r.created),
                crate::pages::utc(r.last_seen),
                crate::pages::utc(r.expires),
            ]
        })
        .collect();
    let mut width = head.map(str::len);
    for l in &lines {
        for (w, c) in width.iter_mut().zip(l.iter()) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut push = |cells: &[String]| {
        let mut line = String::new();
        for (i, (c, w)) in cells.iter().zip(width.iter()).enumerate() {
            if i + 1 == cells.len() {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}  ", w = *w));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    };
    push(&head.map(str::to_string));
    for l in &lines {
        // Control characters in a name cannot move the terminal's cursor.
        let clean: Vec<String> = l
            .iter()
            .map(|c| {
                c.chars()
                    .map(|ch| if ch.is_control() { '?' } else { ch })
                    .collect()
            })
            .collect();
        push(&clean);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listener_address_is_reached_on_loopback_when_unspecified() {
        let cases = [
            ("127.0.0.1:9090", "http://127.0.0.1:9090"),
            ("0.0.0.0:9090", "http://127.0.0.1:9090"),
            ("[::]:9090", "http://[::1]:9090"),
            ("10.0.0.5:9100", "http://10.0.0.5:9100"),
        ];
        for (addr, want) in cases {
            assert_eq!(base_of(addr.parse().expect("addr")), want);
        }
    }

    #[test]
    fn urls_default_to_http_and_refuse_others() {
        let t = Target::from_url("127.0.0.1:9090/", None).expect("url");
        assert_eq!(t.base, "http://127.0.0.1:9090");
        assert!(t.token.is_none());
        assert!(Target::from_url("https://x:1", None).is_err());
        assert!(Target::from_url("http://", None).is_err());
        assert!(
            Target::from_url("http://a:1", Some(std::path::Path::new("/nonexistent/t"))).is_err()
        );
    }

    #[test]
    fn the_table_is_aligned_in_utc_and_neutralises_control_characters() {
        let rows = vec![
            Row {
                sid: "AbCdEfGhIjKl".into(),
                subject: "uid=jane".into(),
                email: Some("jane@example.com".into()),
                user: "jane".into(),
                method: "ldap".into(),
                role: Some("annotator".into()),
                idp: None,
                created: 1_700_000_000,
                last_seen: 1_700_000_060,
                expires: 1_700_028_800,
            },
            Row {
                sid: "ZyXwVuTsRqPo".into(),
                subject: "n".into(),
                email: None,
                user: "evil\u{1b}[2J".into(),
                method: "saml".into(),
                role: None,
                idp: Some("okta".into()),
                created: 0,
                last_seen: 0,
                expires: 0,
            },
        ];
        let t = table(&rows);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 3, "{t}");
        assert!(lines[0].starts_with("SID           USER"), "{t}");
        assert!(lines[1].contains("2023-11-14 22:13:20"), "{t}");
        assert!(lines[1].contains("annotator"));
        assert!(lines[2].contains("evil?[2J"), "{t}");
        assert!(!t.contains('\u{1b}'));
        let col = lines[0].find("METHOD").expect("column");
        assert_eq!(&lines[1][col..col + 4], "ldap");
        assert_eq!(&lines[2][col..col + 4], "saml");
    }
}
