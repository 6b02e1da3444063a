//! The session admin API, served on the metrics listener only
//! (`server.metrics_listen`), never under the public prefix; what
//! `authgate sessions list|revoke` talks to.
//!
//! - `GET  /admin/sessions[?user=EMAIL]` → `{"store", "sessions": [Summary]}`
//! - `POST /admin/sessions/revoke` with a JSON body `{"user": EMAIL}`,
//!   `{"sid": SID_OR_PREFIX}` or `{"all": true}` → `{"revoked": N, "sessions": [...]}`
//!
//! Who may call it ([`authorize`]): without `server.admin_token_file`,
//! loopback peers only (the TCP peer: no forwarded header is read here);
//! with it, every caller, loopback included, must send `Authorization:
//! Bearer TOKEN` (in a Kubernetes pod the upstream shares loopback).
//!
//! Each ended session is one `session_revoked` audit event ([`audited`]),
//! as is each revocation from the SSO page. Never rendered: session ids
//! (only [`crate::session::control::SID_PREFIX_LEN`]-character prefixes),
//! cookies, the token.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde::Deserialize;

use crate::app::State;
use crate::clock::now_unix;
use crate::config::Secret;
use crate::http::Body;
use crate::role::Role;
use crate::session::control::{self, Selector, Summary};
use crate::telemetry::Audit;

/// The API's path prefix on the metrics listener.
pub const PATH: &str = "/admin/sessions";
const MAX_BODY: usize = 16 * 1024;

/// The outcome of [`authorize`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Allowed,
    /// A token is configured and none (or not a bearer one) was sent: 401.
    NoToken,
    /// A token is configured and another was sent: 401.
    WrongToken,
    /// No token is configured and the peer is not loopback: 403.
    NotLoopback,
}

/// Whether `peer`, sending `authorization`, may use the API (pure).
pub fn authorize(
    peer: IpAddr,
    token: Option<&Secret<String>>,
    authorization: Option<&HeaderValue>,
) -> Access {
    let Some(token) = token else {
        return if peer.to_canonical().is_loopback() {
            Access::Allowed
        } else {
            Access::NotLoopback
        };
    };
    let sent = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        })
        .filter(|t| !t.is_empty());
    match sent {
        None => Access::NoToken,
        Some(t) => {
            let same = aws_lc_rs::constant_time::verify_slices_are_equal(
                t.as_bytes(),
                token.expose().as_bytes(),
            )
            .is_ok();
            if same {
                Access::Allowed
            } else {
                Access::WrongToken
            }
        }
    }
}

/// The body of `POST /admin/sessions/revoke`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeBody {
    user: Option<String>,
    sid: Option<String>,
    #[serde(default)]
    all: bool,
}

impl RevokeBody {
    fn selector(self) -> Result<Selector, &'static str> {
        match (self.user, self.sid, self.all) {
            (Some(u), None, false) => Ok(Selector::User(u)),
            (None, Some(s), false) => Ok(Selector::Sid(s)),
            (None, None, true) => Ok(Selector::All),
            _ => Err("give exactly one of \"user\", \"sid\" or \"all\": true"),
        }
    }
}

/// Who ended a session and through what, for [`audited`].
pub struct By<'a> {
    /// The administrator's subject, or `admin-api`.
    pub who: &'a str,
    /// `admin_api` or `sso_page`.
    pub via: &'static str,
    pub path: &'a str,
    pub client: IpAddr,
    pub request_id: Option<&'a str>,
}

/// One `session_revoked` audit event per ended session: whose it was (the
/// common fields), who ended it (`by`, `reason` = `via`), the selector's
/// `scope`, and the session's short `sid` prefix.
pub fn audited(done: &[Summary], sel: &Selector, by: &By<'_>) {
    for s in done {
        Audit::new("session_revoked")
            .subject(s.subject.as_str())
            .role(s.role.map(Role::as_str))
            .request("POST", by.path, by.client)
            .reason(by.via)
            .request_id(by.request_id)
            .by(by.who)
            .scope(sel.scope())
            .sid(&s.sid)
            .email(s.email.as_deref())
            .emit();
    }
}

fn json_error(status: StatusCode, message: &str) -> Response<Body> {
    crate::http::json(status, &serde_json::json!({ "error": message }))
}

/// Serves `PATH*` on the metrics listener for `peer`.
pub async fn api(state: Arc<State>, peer: SocketAddr, req: Request<Incoming>) -> Response<Body> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let token = state.config.server.admin_token.as_ref();
    match authorize(peer.ip(), token, req.headers().get(header::AUTHORIZATION)) {
        Access::Allowed => {}
        refused => {
            Audit::new("access_refused")
                .request(req.method().as_str(), &path, peer.ip())
                .reason(match refused {
                    Access::NotLoopback => "admin_not_loopback",
                    Access::NoToken => "admin_no_token",
                    _ => "admin_wrong_token",
                })
                .emit();
            if refused == Access::NotLoopback {
                return json_error(
                    StatusCode::FORBIDDEN,
                    "the session admin API answers loopback callers only; set server.admin_token_file to allow others with a bearer token",
                );
            }
            let mut r = json_error(StatusCode::UNAUTHORIZED, "bearer token missing or wrong");
            r.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"authgate admin\""),
            );
            return r;
        }
    }
    let store = match state.config.session.store {
        crate::session::StoreKind::Memory => "memory",
        crate::session::StoreKind::Redis(_) => "redis",
    };
    let now = now_unix();
    match (req.method().clone(), path.as_str()) {
        (Method::GET, PATH) => {
            let user = super::query_param(&req, "user");
            match control::list(state.sessions.as_ref(), user.as_deref(), now).await {
                Ok(list) => crate::http::json(
                    StatusCode::OK,
                    &serde_json::json!({ "store": store, "now": now, "sessions": list }),
                ),
                Err(e) => store_down(&e),
            }
        }
        (Method::POST, p) if p == format!("{PATH}/revoke") => {
            let body = match crate::http::read_body(req.into_body(), MAX_BODY).await {
                Ok(b) => b,
                Err(_) => return json_error(StatusCode::BAD_REQUEST, "unreadable body"),
            };
            let sel = match serde_json::from_slice::<RevokeBody>(&body)
                .map_err(|_| "expected JSON such as {\"user\": \"jane@example.com\"}")
                .and_then(RevokeBody::selector)
            {
                Ok(s) => s,
                Err(m) => return json_error(StatusCode::BAD_REQUEST, m),
            };
            match control::revoke(state.sessions.as_ref(), &sel, now).await {
                Ok(done) => {
                    audited(
                        &done,
                        &sel,
                        &By {
                            who: "admin-api",
                            via: "admin_api",
                            path: &path,
                            client: peer.ip(),
                            request_id: None,
                        },
                    );
                    if done.is_empty() && matches!(sel, Selector::Sid(_)) {
                        return json_error(StatusCode::NOT_FOUND, "no live session has that sid");
                    }
                    crate::http::json(
                        StatusCode::OK,
                        &serde_json::json!({ "store": store, "revoked": done.len(), "sessions": done }),
                    )
                }
                Err(control::Error::Store(e)) => store_down(&e),
                Err(e @ control::Error::Ambiguous(_)) => {
                    json_error(StatusCode::CONFLICT, &e.to_string())
                }
                Err(e) => json_error(StatusCode::BAD_REQUEST, &e.to_string()),
            }
        }
        (_, PATH) => json_error(StatusCode::METHOD_NOT_ALLOWED, "use GET"),
        (_, p) if p == format!("{PATH}/revoke") => {
            json_error(StatusCode::METHOD_NOT_ALLOWED, "use POST")
        }
        _ => json_error(StatusCode::NOT_FOUND, "not found"),
    }
}

fn store_down(e: &crate::session::StoreError) -> Response<Body> {
    tracing::warn!(error = %e, "session admin API: session store unavailable");
    json_error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the session store is unavailable",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only_without_a_token_and_the_token_from_everyone_with_one() {
        let lo4: IpAddr = "127.0.0.1".parse().expect("ip");
        let lo6: IpAddr = "::1".parse().expect("ip");
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().expect("ip");
        let other: IpAddr = "10.1.2.3".parse().expect("ip");
        let token = Secret::new("0123456789abcdef-token".to_string());
        let bearer = |v: &'static str| Some(HeaderValue::from_static(v));
        type Case<'a> = (
            IpAddr,
            Option<&'a Secret<String>>,
            Option<HeaderValue>,
            Access,
        );
        let cases: Vec<Case<'_>> = vec![
            (lo4, None, None, Access::Allowed),
            (lo6, None, None, Access::Allowed),
            (mapped, None, None, Access::Allowed),
            (other, None, None, Access::NotLoopback),
            (other, None, bearer("Bearer anything"), Access::NotLoopback),
            (other, Some(&token), None, Access::NoToken),
            (lo4, Some(&token), None, Access::NoToken),
            (
                other,
                Some(&token),
                bearer("Bearer wrong"),
                Access::WrongToken,
            ),
            (
                other,
                Some(&token),
                bearer("Basic 0123456789abcdef-token"),
                Access::NoToken,
            ),
            (other, Some(&token), bearer("Bearer "), Access::NoToken),
            (
                other,
                Some(&token),
                bearer("Bearer 0123456789abcdef-toke"),
                Access::WrongToken,
            ),
            (
                other,
                Some(&token),
                bearer("Bearer 0123456789abcdef-token"),
                Access::Allowed,
            ),
            (
                lo4,
                Some(&token),
                bearer("bearer 0123456789abcdef-token "),
                Access::Allowed,
            ),
        ];
        for (peer, token, auth, want) in cases {
            assert_eq!(
                authorize(peer, token, auth.as_ref()),
                want,
                "{peer} {auth:?}"
            );
        }
    }

    #[test]
    fn a_revoke_body_names_exactly_one_selector() {
        let sel = |j: &str| -> Result<Selector, String> {
            serde_json::from_str::<RevokeBody>(j)
                .map_err(|e| e.to_string())
                .and_then(|b| b.selector().map_err(str::to_string))
        };
        assert_eq!(sel(r#"{"user":"j@x"}"#), Ok(Selector::User("j@x".into())));
        assert_eq!(
            sel(r#"{"sid":"abcdefgh"}"#),
            Ok(Selector::Sid("abcdefgh".into()))
        );
        assert_eq!(sel(r#"{"all":true}"#), Ok(Selector::All));
        for bad in [
            "{}",
            r#"{"all":false}"#,
            r#"{"user":"a","all":true}"#,
            r#"{"user":"a","sid":"b"}"#,
            r#"{"everyone":true}"#,
            "not json",
        ] {
            assert!(sel(bad).is_err(), "{bad}");
        }
    }
}
