//! Everything under the reserved prefix (`/_auth` by default): thin handlers
//! that call `gate`, `session`, `identity` and `policy`. Only this module and
//! `proxy` build HTTP responses. Forward-auth (`/_auth/check`) renders the
//! same [`crate::gate::decide`] verdict the proxy does.

pub mod admin;
pub mod ldap_login;
pub mod redirect;
pub mod saml;
#[cfg(test)]
mod sealed_tests;
pub mod sessions;

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::State;
use crate::error::{self, Error};
use crate::gate::{self, Access, Refusal, Verdict};
use crate::http::{full, Body};
use crate::pages;
use crate::request::context::{ConnInfo, RequestCtx};
use crate::request::path;
use crate::role::Role;
use crate::session::Session;
use crate::telemetry::Audit;

/// Routes a request whose normalized path is under the prefix.
pub async fn dispatch(
    state: &Arc<State>,
    _conn: &Arc<ConnInfo>,
    ctx: &RequestCtx,
    req: Request<Incoming>,
    path: &str,
    user: &mut Option<Arc<Session>>,
) -> Result<Response<Body>, Error> {
    let prefix = &state.config.server.prefix;
    let sub = path[prefix.len()..].to_ascii_lowercase();
    let sub = sub.trim_end_matches('/');
    let m = req.method().clone();
    let get = m == Method::GET || m == Method::HEAD;
    // Envoy `ext_authz` (HTTP service, `path_prefix: <prefix>/check`): the
    // original request's method and path, under the prefix (case kept).
    if path[prefix.len()..]
        .get(..7)
        .is_some_and(|s| s.eq_ignore_ascii_case("/check/"))
    {
        let original = &path[prefix.len() + "/check".len()..];
        return check(state, ctx, &req, user, Some(original)).await;
    }
    match sub {
        "/healthz" if get => Ok(text(StatusCode::OK, "ok\n")),
        "/readyz" if get => Ok(readyz(state).await),
        "/jwks.json" if get => Ok(jwks(state)),
        "/login" if get && state.saml.is_some() && !state.config.ldap.enabled => {
            Ok(saml::login_page(state, &req))
        }
        "/saml/login" | "/saml/acs" | "/saml/metadata" | "/saml/slo" => {
            saml::dispatch(state, ctx, req, sub, user).await
        }
        "/admin/sso"
        | "/admin/sso.js"
        | "/admin/sso/metadata"
        | "/admin/sso/mapping"
        | "/admin/sso/explain"
        | "/admin/sso/sessions"
        | "/admin/sso/test" => admin::dispatch(state, ctx, req, sub, user).await,
        "/login" if get => Ok(ldap_login::login_page(state, &req).await),
        "/ldap/login" if m == Method::POST => ldap_login::submit(state, ctx, req).await,
        "/logout" if get || m == Method::POST => logout(state, ctx, &req, path).await,
        "/userinfo" if get => {
            let s = state
                .load_session(req.headers())
                .await?
                .ok_or(Error::Unauthenticated)?;
            *user = Some(s.clone());
            crate::app::maybe_refresh(state, &s);
            Ok(userinfo(&s))
        }
        "/check" if get || m == Method::POST => check(state, ctx, &req, user, None).await,
        "/healthz" | "/readyz" | "/jwks.json" | "/login" | "/logout" | "/userinfo" | "/check"
        | "/ldap/login" => Err(Error::MethodNotAllowed),
        _ => Err(Error::NotFound),
    }
}

fn text(status: StatusCode, body: &'static str) -> Response<Body> {
    let mut r = Response::new(full(body));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

async fn readyz(state: &State) -> Response<Body> {
    // Keys and the route table are loaded before the listener opens; later
    // checks (IdP metadata, directory) join here.
    let mut body = serde_json::json!({
        "ready": true,
        "checks": { "signing_key": "loaded", "routes": state.config.policy.routes.len() },
    });
    // The directory is reported, not gating: signed-in users keep working
    // while it is down, so the pod must stay in rotation. Cached (no bind
    // per probe).
    if let Some(sso) = &state.saml {
        body["checks"]["saml_metadata"] = serde_json::Value::from(match sso.status().last_error {
            None => "loaded".to_string(),
            Some(e) => format!("last good copy in use; last refresh failed: {e}"),
        });
        // Each IdP; an older copy in force (refresh failed or refused) or
        // one past its validUntil degrades, without taking the pod out:
        // sign-ins keep working with the copy in force.
        let now = std::time::SystemTime::now();
        let mut idps = serde_json::Map::new();
        for p in sso.providers() {
            let st = p.status();
            let loaded = p.loaded();
            let expired =
                crate::saml::metadata::check_valid(&loaded.idp, chrono::DateTime::from(now)).err();
            let text = match (&st.last_error, &expired) {
                (None, None) => "loaded".to_string(),
                (Some(e), _) => format!("last good copy in use; last refresh failed: {e}"),
                (None, Some(e)) => format!("the copy in force is out of date: {e}"),
            };
            if p.stale(now) {
                body["degraded"] = serde_json::Value::from(true);
            }
            state.metrics.set_saml_metadata_stale(&p.id, p.stale(now));
            idps.insert(p.id.clone(), serde_json::Value::from(text));
        }
        body["checks"]["saml_idps"] = serde_json::Value::Object(idps);
    }
    if let Some(l) = &state.ldap {
        let up = l.directory.reachable().await;
        body["checks"]["ldap"] =
            serde_json::Value::from(if up { "reachable" } else { "unreachable" });
        // Each server of ldap.server_uri, in order, as its last connect found it.
        body["checks"]["ldap_servers"] =
            serde_json::to_value(l.directory.servers()).unwrap_or_default();
        if !up {
            body["degraded"] = serde_json::Value::from(true);
        }
    }
    // The session store gates readiness: without it no request of a
    // signed-in user can be checked for revocation (they get 503 anyway).
    let mut status = StatusCode::OK;
    match state.sessions.health().await {
        Ok(()) => body["checks"]["session_store"] = serde_json::Value::from("reachable"),
        Err(e) => {
            tracing::warn!(error = %error::cause_chain(&e), "readiness: session store unavailable");
            body["checks"]["session_store"] = serde_json::Value::from("unreachable");
            body["ready"] = serde_json::Value::from(false);
            status = StatusCode::SERVICE_UNAVAILABLE;
        }
    }
    crate::http::json(status, &body)
}

fn jwks(state: &State) -> Response<Body> {
    crate::http::cacheable(
        bytes::Bytes::copy_from_slice(state.signer.jwks()),
        "application/json",
    )
}

/// 302 to the login page, remembering where to go back to (a local path only).
pub fn redirect_to_login(state: &State, rd: &str) -> Response<Body> {
    let rd = login_target(state, rd);
    let mut location = format!("{}/login", state.config.server.prefix);
    if rd != "/" {
        location.push_str("?rd=");
        location.extend(percent_encoding::utf8_percent_encode(rd, QUERY_VALUE));
    }
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::FOUND;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// Where a sign-in may lead: a local path ([`redirect::local_target`]), but
/// never the upstream's logout (a login page reached from a logout, e.g.
/// through an older forward-auth configuration, would otherwise end the new
/// session as soon as it starts); those become `/`.
pub fn login_target<'a>(state: &State, rd: &'a str) -> &'a str {
    let rd = redirect::local_target(rd);
    let (p, query) = match rd.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rd, None),
    };
    let Ok(p) = path::normalize(p) else {
        return rd;
    };
    let mut req = crate::policy::Request::new(&Method::GET, &p);
    req.query = query;
    match state.config.policy.routes.decide(&req, &state.switches) {
        crate::policy::Decision::Logout { .. } => "/",
        _ => rd,
    }
}

const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// The value of query parameter `name`, percent-decoded.
pub fn query_param(req: &Request<Incoming>, name: &str) -> Option<String> {
    let q = req.uri().query()?;
    form_value(q.as_bytes(), name)
}

/// The first value of `name` in an `application/x-www-form-urlencoded` body or query.
pub fn form_value(body: &[u8], name: &str) -> Option<String> {
    for pair in body.split(|b| *b == b'&') {
        let mut it = pair.splitn(2, |b| *b == b'=');
        let k = it.next().unwrap_or_default();
        let v = it.next().unwrap_or_default();
        if decode_form(k) == name {
            return Some(decode_form(v));
        }
    }
    None
}

fn decode_form(b: &[u8]) -> String {
    let plus: Vec<u8> = b
        .iter()
        .map(|c| if *c == b'+' { b' ' } else { *c })
        .collect();
    percent_encoding::percent_decode(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// Ends the session: revoked server-side (a copied cookie stops working) and
/// the cookie cleared.
/// `path` is the normalized path (authgate's logout, or the upstream's intercepted one).
pub async fn logout(
    state: &State,
    ctx: &RequestCtx,
    req: &Request<Incoming>,
    path: &str,
) -> Result<Response<Body>, Error> {
    let session = end_session(state, ctx, req.headers(), ctx.method.as_str(), path).await?;
    let subject = session.as_ref().map(|s| s.identity.subject.as_str());
    let browser = ctx.wants_html || req.method() == Method::GET;
    // A SAML session continues to the IdP's Single Logout.
    let to_idp = match &session {
        Some(s) if browser => saml::continue_to_idp(state, s),
        _ => None,
    };
    let mut r = if let Some(r) = to_idp {
        r
    } else if browser {
        crate::http::html(
            StatusCode::OK,
            pages::logout::signed_out(&state.config.server.prefix, None),
        )
    } else {
        crate::http::json(
            StatusCode::OK,
            &serde_json::json!({ "signed_out": subject.is_some() }),
        )
    };
    r.headers_mut()
        .append(header::SET_COOKIE, state.cookie.clear_header());
    Ok(r)
}

/// Ends the session the request's cookie names, if any: revoked
/// server-side (a copied cookie stops working) and audited as `logout`.
/// Clearing the cookie is the caller's part of the answer.
async fn end_session(
    state: &State,
    ctx: &RequestCtx,
    headers: &http::HeaderMap,
    method: &str,
    path: &str,
) -> Result<Option<Arc<Session>>, Error> {
    let session = state.load_session(headers).await?;
    if let Some(s) = &session {
        state
            .sessions
            .revoke(&s.id)
            .await
            .map_err(Error::SessionStore)?;
    }
    let id = session.as_ref().map(|s| &s.identity);
    Audit::new("logout")
        .subject(id.map(|i| i.subject.as_str()))
        .role(id.and_then(|i| i.role).map(Role::as_str))
        .request(method, path, ctx.client)
        .reason(if id.is_some() {
            "session_ended"
        } else {
            "no_session"
        })
        .request_id(ctx.id.as_str())
        .emit();
    Ok(session)
}

/// The upstream's logout asked about at the forward-auth door. The front
/// proxy would forward it and answer the browser itself, so authgate's
/// session would outlive the application's (and, with the Label Studio
/// integration, sign the user straight back in). Instead:
/// - a browser navigation is sent to `<prefix>/logout`, which ends the
///   session, clears the cookie and continues to the IdP's Single Logout,
///   as the proxy door does. Callers that hand the answer to the browser
///   (Traefik, Caddy) get a 303 there; nginx `auth_request` passes on only
///   2xx/401/403, so it gets 401 with the target in `Location`, which the
///   shipped configuration (`deploy/nginx`) turns into the redirect;
/// - anything else has its session ended here and gets 401.
async fn check_logout(
    state: &State,
    ctx: &RequestCtx,
    inbound: &gate::Inbound<'_>,
    navigation: bool,
    passes_answer_on: bool,
) -> Result<Response<Body>, Error> {
    if !navigation {
        end_session(
            state,
            ctx,
            inbound.headers,
            inbound.method.as_str(),
            inbound.path,
        )
        .await?;
        let mut r = crate::http::json(
            StatusCode::UNAUTHORIZED,
            &serde_json::json!({ "error": "unauthenticated", "signed_out": true }),
        );
        r.headers_mut()
            .append(header::SET_COOKIE, state.cookie.clear_header());
        return Ok(r);
    }
    let server = &state.config.server;
    let (status, location) = if passes_answer_on {
        (
            StatusCode::SEE_OTHER,
            format!("{}{}/logout", server.public_url, server.prefix),
        )
    } else {
        (
            StatusCode::UNAUTHORIZED,
            format!("{}/logout", server.prefix),
        )
    };
    let mut r = Response::new(full(""));
    *r.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(&location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(r)
}

fn userinfo(s: &Session) -> Response<Body> {
    let id = &s.identity;
    let body = serde_json::json!({
        "sub": id.subject,
        "email": id.email,
        "name": id.name,
        "given_name": id.given_name,
        "family_name": id.family_name,
        "preferred_username": id.preferred_username,
        "groups": id.groups,
        "role": id.role,
        "workspaces": id.workspaces,
        "projects": id.projects,
        "amr": [match id.method { crate::identity::Method::Saml => "saml", crate::identity::Method::Ldap => "ldap" }],
        "session_expires": s.expires,
    });
    crate::http::json(StatusCode::OK, &body)
}

/// The request a front proxy asks `/_auth/check` about.
struct Original {
    method: Method,
    uri: http::Uri,
    /// Traefik's convention (X-Forwarded-Uri without X-Original-URI): the
    /// answer goes to the browser as it is, so a redirect is possible.
    traefik: bool,
}

impl Original {
    /// nginx sets `X-Original-Method`/`X-Original-URI`; Traefik (and Caddy)
    /// set `X-Forwarded-Method`/`X-Forwarded-Uri`. Each proxy overwrites
    /// only its own pair and passes the client's copies of the other pair
    /// through, so a value counts only when every copy of both spellings
    /// agrees: otherwise a client could have `GET /public` checked while the
    /// proxy forwards `PATCH /api/...`. Disagreement, an unreadable value or
    /// an invalid method is 403 (nginx's `auth_request` turns any status but
    /// 2xx, 401 and 403 into a 500). Neither present: `GET /`.
    fn read(h: &http::HeaderMap) -> Result<Original, Error> {
        let method = agreed(h, "x-original-method", "x-forwarded-method", |a, b| {
            a.eq_ignore_ascii_case(b)
        })?
        .unwrap_or("GET");
        let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes())
            .map_err(|_| Error::Forbidden("invalid original request method"))?;
        let uri = agreed(h, "x-original-uri", "x-forwarded-uri", |a, b| a == b)?.unwrap_or("/");
        let uri: http::Uri = uri
            .parse()
            .map_err(|_| Error::Forbidden("unparseable request target"))?;
        let non_empty = |name: &str| {
            h.get_all(name)
                .iter()
                .any(|v| !v.as_bytes().trim_ascii().is_empty())
        };
        let traefik = non_empty("x-forwarded-uri") && !non_empty("x-original-uri");
        Ok(Original {
            method,
            uri,
            traefik,
        })
    }
}

impl Original {
    /// Envoy's `ext_authz` HTTP service sends the original method and
    /// `path_prefix` + the original path and query. Copies of the nginx or
    /// Traefik headers a client added must agree with it (as those proxies'
    /// pairs must agree with each other); its answers go to the browser as
    /// Traefik's do.
    fn envoy(
        method: &Method,
        path: &str,
        query: Option<&str>,
        h: &http::HeaderMap,
    ) -> Result<Original, Error> {
        let target = match query {
            Some(q) => format!("{path}?{q}"),
            None => path.to_string(),
        };
        if let Some(m) = agreed(h, "x-original-method", "x-forwarded-method", |a, b| {
            a.eq_ignore_ascii_case(b)
        })? {
            if !m.eq_ignore_ascii_case(method.as_str()) {
                return Err(Error::Forbidden("conflicting original request headers"));
            }
        }
        if let Some(u) = agreed(h, "x-original-uri", "x-forwarded-uri", |a, b| a == b)? {
            if u != target {
                return Err(Error::Forbidden("conflicting original request headers"));
            }
        }
        let uri: http::Uri = target
            .parse()
            .map_err(|_| Error::Forbidden("unparseable request target"))?;
        Ok(Original {
            method: method.clone(),
            uri,
            traefik: true,
        })
    }
}

/// The one value every non-empty copy of headers `a` and `b` carries
/// (`None` when there is none); an error when two copies differ.
fn agreed<'h>(
    h: &'h http::HeaderMap,
    a: &str,
    b: &str,
    same: impl Fn(&str, &str) -> bool,
) -> Result<Option<&'h str>, Error> {
    let mut found: Option<&str> = None;
    for v in h.get_all(a).iter().chain(h.get_all(b).iter()) {
        let v = v
            .to_str()
            .map_err(|_| Error::Forbidden("unreadable original request header"))?
            .trim();
        if v.is_empty() {
            continue;
        }
        match found {
            None => found = Some(v),
            Some(f) if same(f, v) => {}
            Some(_) => return Err(Error::Forbidden("conflicting original request headers")),
        }
    }
    Ok(found)
}

/// Forward-auth for nginx `auth_request` (X-Original-Method / X-Original-URI),
/// Traefik ForwardAuth and Caddy `forward_auth` (X-Forwarded-Method /
/// X-Forwarded-Uri), and Envoy `ext_authz` (`envoy`: the original path,
/// after `<prefix>/check`, with the original method).
async fn check(
    state: &Arc<State>,
    ctx: &RequestCtx,
    req: &Request<Incoming>,
    user: &mut Option<Arc<Session>>,
    envoy: Option<&str>,
) -> Result<Response<Body>, Error> {
    let h = req.headers();
    let Original {
        method,
        uri,
        traefik,
    } = match envoy {
        None => Original::read(h)?,
        Some(path) => Original::envoy(req.method(), path, req.uri().query(), h)?,
    };
    // An ambiguous original path is refused, never guessed at.
    let p = path::normalize(uri.path()).map_err(|_| Error::Forbidden("ambiguous request path"))?;
    let navigation = crate::request::context::is_navigation(&method, h);

    // The access decision the proxy makes too, about the original request.
    let inbound = gate::Inbound {
        method: &method,
        path: &p,
        query: uri.query(),
        headers: h,
    };
    let verdict = gate::decide(state, &inbound).await?;
    *user = verdict.session().cloned();
    let mut r = Response::new(full(""));
    if traefik {
        // Every identity header a front proxy is told to copy is in every
        // 2xx answer, empty when there is no such value (no session, no
        // email...): Caddy before 2.7 (Debian 12 ships 2.6) copies a field
        // missing from the answer as its literal placeholder text
        // ("{http.reverse_proxy.header.X-Forwarded-User}") onto the request.
        // nginx-style callers never forward empty values.
        let out = r.headers_mut();
        out.insert(
            state.config.identity.header.clone(),
            HeaderValue::from_static(""),
        );
        for name in state.header_names.iter() {
            out.insert(name.clone(), HeaderValue::from_static(""));
        }
    }
    let session = match verdict {
        // Allowed without identity: 200 and nothing else.
        Verdict::Forward(Access::Public | Access::UpstreamToken) => return Ok(r),
        Verdict::Forward(Access::Session(s)) => s,
        Verdict::Logout => {
            return check_logout(state, ctx, &inbound, navigation, traefik).await;
        }
        Verdict::Refuse(Refusal::SignIn) if traefik && navigation => {
            // Traefik hands this response to the browser as it is.
            let rd = match uri.query() {
                Some(q) => format!("{p}?{q}"),
                None => p.clone(),
            };
            let mut resp = redirect_to_login(state, &rd);
            let loc = resp
                .headers()
                .get(header::LOCATION)
                .and_then(|v| v.to_str().ok())
                .map(|l| format!("{}{}", state.config.server.public_url, l));
            if let Some(v) = loc.and_then(|l| HeaderValue::from_str(&l).ok()) {
                resp.headers_mut().insert(header::LOCATION, v);
            }
            return Ok(resp);
        }
        Verdict::Refuse(refusal) => return Err(gate::refuse(state, ctx, &inbound, refusal).await),
    };
    let token = state.identity_token(&session)?;
    let out = r.headers_mut();
    out.insert(state.config.identity.header.clone(), token);
    if state.config.identity.plain_headers {
        session.plain.apply(out);
    }
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> http::HeaderMap {
        let mut h = http::HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                http::header::HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn original_request_from_either_convention() {
        type Case = (
            &'static [(&'static str, &'static str)],
            &'static str,
            &'static str,
            bool,
        );
        let table: &[Case] = &[
            (&[], "GET", "/", false),
            (
                &[("x-original-method", "patch"), ("x-original-uri", "/a?b=1")],
                "PATCH",
                "/a?b=1",
                false,
            ),
            (
                &[("x-forwarded-method", "DELETE"), ("x-forwarded-uri", "/x")],
                "DELETE",
                "/x",
                true,
            ),
            // Both conventions, agreeing (a client copying the real values).
            (
                &[
                    ("x-original-method", "POST"),
                    ("x-original-uri", "/x"),
                    ("x-forwarded-method", "post"),
                    ("x-forwarded-uri", "/x"),
                ],
                "POST",
                "/x",
                false,
            ),
            // Empty copies are ignored.
            (
                &[("x-original-uri", ""), ("x-forwarded-uri", "/y")],
                "GET",
                "/y",
                true,
            ),
        ];
        for (pairs, method, uri, traefik) in table {
            let o = Original::read(&headers(pairs)).expect("readable");
            assert_eq!(o.method.as_str(), *method, "{pairs:?}");
            assert_eq!(o.uri.to_string(), *uri, "{pairs:?}");
            assert_eq!(o.traefik, *traefik, "{pairs:?}");
        }
    }

    #[test]
    fn disagreeing_original_request_headers_are_refused() {
        let table: &[&[(&str, &str)]] = &[
            // Through Traefik, the client adds nginx's pair.
            &[
                ("x-forwarded-method", "PATCH"),
                ("x-original-method", "GET"),
            ],
            &[
                ("x-forwarded-uri", "/api/organizations/1/memberships"),
                ("x-original-uri", "/public/x"),
            ],
            // Through nginx, the client adds Traefik's pair.
            &[
                ("x-original-uri", "/api/x"),
                ("x-forwarded-uri", "/public/x"),
            ],
            // A proxy that appends instead of replacing.
            &[
                ("x-forwarded-uri", "/public/x"),
                ("x-forwarded-uri", "/api/x"),
            ],
            &[("x-original-method", "G ET")],
        ];
        for pairs in table {
            assert!(
                matches!(Original::read(&headers(pairs)), Err(Error::Forbidden(_))),
                "{pairs:?}"
            );
        }
    }
}
