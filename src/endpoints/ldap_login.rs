//! LDAP sign-in over HTTP: the login form and `POST {prefix}/ldap/login`.
//! The sign-in service itself (directory, CSRF cookie, throttle, refresh
//! bookkeeping) is [`crate::ldap::login::LdapLogin`]; the background
//! refresh of signed-in users is `app::refresh`.
//!
//! - **CSRF**: the form carries a random token; the same token travels in a
//!   short-lived pre-login cookie sealed with the session keys
//!   ([`crate::ldap::login::LoginCsrf`], a purpose of its own). A POST
//!   whose form token does not match the cookie's gets 403.
//! - **Throttle**: failures per username and per client address, each a
//!   sliding window (`ldap.max_failures`, `ldap.max_failures_per_client`,
//!   `ldap.throttle_window`); past the limit: 429 with `Retry-After`.
//! - **One message** for unknown user, wrong password and empty password:
//!   "Invalid username or password" (401). Directory down: 503 and a page
//!   saying so; nothing else changes for signed-in users.
//! - **Refresh**: [`maybe_refresh`] is called with every loaded LDAP
//!   session; when its identity is older than `ldap.refresh_interval`, a
//!   background task re-reads the entry and groups and replaces the
//!   session's identity (or revokes the session: user deleted or now
//!   deactivated). The request itself is served with the current identity.
//!
//! Must not: log passwords or tokens; answer differently for unknown users
//! and wrong passwords.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{HeaderMap, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::{form_value, login_target, query_param};
use crate::app::State;
use crate::error::Error;
use crate::http::Body;
use crate::ldap;
use crate::ldap::login::{LdapLogin, EXPIRED, INVALID, THROTTLED, UNAVAILABLE};
use crate::pages;
use crate::request::context::RequestCtx;
use crate::telemetry::Audit;

/// Largest login form body read (100 KB usernames still get the generic
/// answer rather than a 413).
const MAX_FORM: usize = 512 * 1024;

/// What the login page shows besides the form.
struct View<'a> {
    status: StatusCode,
    rd: &'a str,
    username: &'a str,
    error: Option<&'a str>,
}

/// GET `{prefix}/login`.
pub async fn login_page(state: &State, req: &Request<Incoming>) -> Response<Body> {
    let rd = query_param(req, "rd").unwrap_or_else(|| "/".into());
    let rd = login_target(state, &rd).to_string();
    let Some(l) = state.ldap.as_ref() else {
        return crate::http::html(StatusCode::OK, pages::login::no_method());
    };
    // Only a directory already known to be down is probed again (cached).
    let down = l.directory.last_health() == Some(false) && !l.directory.reachable().await;
    let view = View {
        status: if down {
            Error::Ldap(ldap::Error::Unhealthy).status()
        } else {
            StatusCode::OK
        },
        rd: &rd,
        username: "",
        error: down.then_some(UNAVAILABLE),
    };
    render(state, l, req.headers(), &view)
}

/// The page with the form; reuses the browser's CSRF cookie when valid.
fn render(state: &State, l: &LdapLogin, headers: &HeaderMap, v: &View<'_>) -> Response<Body> {
    let (token, set_cookie) = match l.csrf_from(&state.keys, headers) {
        Some(t) => (t, None),
        None => {
            let (t, c) = l.new_csrf(&state.keys);
            (t, Some(c))
        }
    };
    let action = format!("{}/ldap/login", state.config.server.prefix);
    let sso = super::saml::sso_buttons(state, v.rd);
    let form = pages::login::LoginForm {
        action: &action,
        csrf: &token,
        rd: v.rd,
        username: v.username,
        username_label: l.directory.login_label(),
        error: v.error,
        sso: sso.as_deref(),
    };
    let mut r = crate::http::html(v.status, pages::login::login(&form));
    if let Some(c) = set_cookie {
        r.headers_mut().append(header::SET_COOKIE, c);
    }
    r
}

/// POST `{prefix}/ldap/login`: form fields `username`, `password`, `rd`, `csrf`.
pub async fn submit(
    state: &Arc<State>,
    ctx: &RequestCtx,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let Some(l) = state.ldap.as_ref() else {
        return Err(Error::NotFound);
    };
    let (parts, body) = req.into_parts();
    let body = crate::http::read_body(body, MAX_FORM).await?;
    let field = |name: &str| form_value(&body, name).unwrap_or_default();
    let (username, password, csrf) = (field("username"), field("password"), field("csrf"));
    let rd = field("rd");
    let rd = login_target(state, &rd).to_string();
    // What is shown back in the form and the log: bounded.
    let shown: String = username.trim().chars().take(ldap::MAX_USERNAME).collect();
    let page = |status: StatusCode, error: &str| {
        let view = View {
            status,
            rd: &rd,
            username: &shown,
            error: Some(error),
        };
        render(state, l, &parts.headers, &view)
    };

    // CSRF: the form's token must equal the one sealed in this browser's cookie.
    let bound = l.csrf_from(&state.keys, &parts.headers);
    let ok = bound.as_deref().is_some_and(|t| {
        aws_lc_rs::constant_time::verify_slices_are_equal(t.as_bytes(), csrf.as_bytes()).is_ok()
    });
    if !ok {
        login_failure(ctx, &shown, "csrf");
        let status = Error::CsrfMismatch.status();
        // A fresh token and cookie, so the next attempt works.
        let view = View {
            status,
            rd: &rd,
            username: &shown,
            error: Some(EXPIRED),
        };
        let mut r = render(state, l, &HeaderMap::new(), &view);
        r.headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Ok(r);
    }

    // Throttle before any directory work.
    let user_key = format!("u:{}", shown.to_lowercase());
    let client_key = format!("c:{}", ctx.client);
    // The shared store down: refuse (503) rather than skip the throttle.
    let checked = match l
        .per_user
        .check(&user_key)
        .await
        .map_err(Error::SessionStore)?
    {
        Ok(()) => l
            .per_client
            .check(&client_key)
            .await
            .map_err(Error::SessionStore)?,
        Err(wait) => Err(wait),
    };
    if let Err(wait) = checked {
        let secs = wait.as_secs().max(1);
        login_failure(ctx, &shown, "throttled");
        state.metrics.logins_failed.inc();
        let mut r = page(Error::Throttled { retry_after: secs }.status(), THROTTLED);
        r.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Ok(r);
    }

    match l.directory.authenticate(&username, &password).await {
        Ok(principal) => {
            if let Err(e) = l.per_user.clear(&user_key).await {
                tracing::warn!(request_id = %ctx.id, error = %e, "clearing the login throttle failed");
            }
            let (_session, set_cookie) = state.sign_in(principal, ctx.client).await?;
            let mut r = Response::new(crate::http::full(""));
            *r.status_mut() = StatusCode::SEE_OTHER;
            let h = r.headers_mut();
            h.insert(
                header::LOCATION,
                HeaderValue::from_str(&rd).unwrap_or_else(|_| HeaderValue::from_static("/")),
            );
            h.append(header::SET_COOKIE, set_cookie);
            h.append(header::SET_COOKIE, l.csrf_cookie.clear_header());
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            Ok(r)
        }
        Err(e) if e.is_credentials() => {
            for (t, k) in [(&l.per_user, &user_key), (&l.per_client, &client_key)] {
                if let Err(e) = t.fail(k).await {
                    tracing::warn!(request_id = %ctx.id, error = %e, "recording a failed login failed");
                }
            }
            state.metrics.logins_failed.inc();
            login_failure(ctx, &shown, &e.to_string());
            Ok(page(Error::Ldap(e).status(), INVALID))
        }
        Err(e) => {
            tracing::warn!(request_id = %ctx.id, error = %ldap::chain(&e), "ldap sign-in failed: directory unavailable");
            state.metrics.logins_failed.inc();
            Ok(page(Error::Ldap(e).status(), UNAVAILABLE))
        }
    }
}

/// The audit line of a refused directory sign-in: the username as typed
/// (bounded), the client, `method` = `ldap`, the request id (as in the
/// access log line of the same request).
fn login_failure(ctx: &RequestCtx, user: &str, reason: &str) {
    Audit::new("login_failure")
        .user(user)
        .client(ctx.client)
        .method("ldap")
        .reason(reason)
        .request_id(ctx.id.as_str())
        .emit();
}
