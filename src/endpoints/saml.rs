//! SAML endpoints: `{prefix}/saml/login` (AuthnRequest, HTTP-Redirect),
//! `{prefix}/saml/acs` (Response, HTTP-POST), `{prefix}/saml/metadata`,
//! `{prefix}/saml/slo` (Single Logout: the IdP's LogoutRequest, by
//! HTTP-Redirect or HTTP-POST, and its LogoutResponse to ours), and the
//! operator page `{prefix}/admin/sso`.
//!
//! A LogoutRequest we send is remembered in another short-lived sealed
//! cookie (`<session cookie>-slo`), so only the answer to a logout this
//! browser started is taken.
//!
//! The requests a browser started are kept in a short-lived sealed cookie
//! (`<session cookie>-saml`: request ID, return path, time), so the ACS
//! accepts only answers to requests *this browser* started. The IdP's
//! cross-site POST must carry it: `SameSite=None; Secure` on https (Lax
//! on plain http, where browsers refuse None without Secure).
//!
//! Must not: validate SAML itself (that is `crate::saml`), or log SAML
//! XML, cookies or attribute values.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::header::{self, HeaderValue};
use http::{HeaderMap, Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use super::login_target;
use super::{form_value, query_param};
use crate::app::State;
use crate::error::{self, Error};
use crate::http::{full, Body};
use crate::pages::{self, login::SsoButton};
use crate::request::context::RequestCtx;
use crate::saml::{self, Pending, Sso};
use crate::session::sealed::{ad, MAX_VALUE_LEN};
use crate::session::{CookieConfig, Expiring, Sealable, Sealed, Session};
use crate::telemetry::Audit;

/// How long a started sign-in may take at the IdP.
const STATE_TTL: Duration = Duration::from_secs(600);
/// Sign-ins remembered per browser (several tabs).
const STATE_MAX: usize = 4;
/// SAML bindings §3.4.3: RelayState must not exceed 80 bytes.
const RELAY_STATE_MAX: usize = 80;

/// Routes `/saml/*`.
pub async fn dispatch(
    state: &Arc<State>,
    ctx: &RequestCtx,
    req: Request<Incoming>,
    sub: &str,
    user: &mut Option<Arc<Session>>,
) -> Result<Response<Body>, Error> {
    let m = req.method().clone();
    let get = m == Method::GET || m == Method::HEAD;
    let _ = user;
    let Some(sso) = state.saml.clone() else {
        return Err(Error::NotFound);
    };
    match sub {
        "/saml/login" if get => login(state, &sso, &req),
        "/saml/metadata" if get => Ok(metadata(&sso)),
        "/saml/acs" if m == Method::POST => acs(state, &sso, ctx, req).await,
        "/saml/slo" if get || m == Method::POST => slo(state, &sso, ctx, req).await,
        _ => Err(Error::MethodNotAllowed),
    }
}

/// The "Sign in with SSO" buttons of the login page (`None` when SAML is
/// off): one per IdP, each to `{prefix}/saml/login` with `idp` (when there
/// are several) and `rd` (when not `/`).
pub fn sso_buttons<'a>(state: &'a State, rd: &str) -> Option<Vec<SsoButton<'a>>> {
    let sso = state.saml.as_ref()?;
    let providers = sso.providers();
    let buttons = providers
        .iter()
        .map(|p| {
            let mut href = format!("{}/saml/login", state.config.server.prefix);
            let mut sep = '?';
            if providers.len() > 1 {
                href.push_str("?idp=");
                href.extend(percent_encoding::utf8_percent_encode(
                    &p.id,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
                sep = '&';
            }
            if rd != "/" {
                href.push(sep);
                href.push_str("rd=");
                href.extend(percent_encoding::utf8_percent_encode(
                    rd,
                    percent_encoding::NON_ALPHANUMERIC,
                ));
            }
            SsoButton {
                id: &p.id,
                name: &p.name,
                href,
            }
        })
        .collect();
    Some(buttons)
}

/// The login page when SAML is the only sign-in method.
pub fn login_page(state: &State, req: &Request<Incoming>) -> Response<Body> {
    let rd = query_param(req, "rd").unwrap_or_else(|| "/".into());
    let rd = login_target(state, &rd);
    let buttons = sso_buttons(state, rd).unwrap_or_default();
    crate::http::html(StatusCode::OK, pages::login::sso_only(&buttons))
}

/// GET `{prefix}/saml/login?rd=PATH`: 302 to the IdP with a fresh
/// AuthnRequest; the request is remembered in the state cookie.
fn login(state: &State, sso: &Sso, req: &Request<Incoming>) -> Result<Response<Body>, Error> {
    let rd = query_param(req, "rd").unwrap_or_else(|| "/".into());
    let rd = login_target(state, &rd).to_string();
    start(state, sso, req, rd)
}

/// The return "path" of a sign-in started by the SSO page's "Test
/// sign-in": never a local path, so no real sign-in can carry it.
const TEST_RD: &str = "sso-page-test";

/// GET `{prefix}/admin/sso/test` (an administrator, checked by the caller):
/// an SP-initiated sign-in whose answer the ACS reports instead of signing
/// anyone in.
pub fn test_sign_in(state: &State, req: &Request<Incoming>) -> Result<Response<Body>, Error> {
    let sso = state.saml.clone().ok_or(Error::NotFound)?;
    start(state, &sso, req, TEST_RD.to_string())
}

fn start(
    state: &State,
    sso: &Sso,
    req: &Request<Incoming>,
    rd: String,
) -> Result<Response<Body>, Error> {
    let relay = if rd.len() <= RELAY_STATE_MAX {
        rd.clone()
    } else {
        String::new()
    };
    let provider = match query_param(req, "idp") {
        Some(id) => sso.provider(&id).ok_or(Error::BadRequest(
            "unknown IdP (the idp parameter names none configured)",
        ))?,
        None => &sso.providers()[0],
    };
    let authn = provider.authn_request(&relay).map_err(Error::Saml)?;
    let now = saml_now();
    let mut entries = read_state(state, req.headers(), now);
    entries.push(Entry {
        id: authn.id.clone(),
        rd,
        t: now,
        idp: provider.id.clone(),
    });
    while entries.len() > STATE_MAX {
        entries.remove(0);
    }
    let mut r = match &authn.post {
        Some(saml_request) => post_form(&authn.url, saml_request, &relay)?,
        None => {
            let mut r = Response::new(full(""));
            *r.status_mut() = StatusCode::FOUND;
            r.headers_mut().insert(
                header::LOCATION,
                HeaderValue::from_str(&authn.url).map_err(|_| Error::BadRequest("IdP URL"))?,
            );
            r
        }
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(header::SET_COOKIE, state_cookie(state, &entries));
    Ok(r)
}

/// HTTP-POST binding (SAML bindings §3.5.4): the page
/// ([`pages::saml::post_form`]) with its Content-Security-Policy, which
/// lets the form go to the IdP's origin only.
fn post_form(action: &str, saml_request: &str, relay: &str) -> Result<Response<Body>, Error> {
    let origin = action
        .parse::<http::Uri>()
        .ok()
        .and_then(|u| Some(format!("{}://{}", u.scheme_str()?, u.authority()?)))
        .ok_or(Error::BadRequest("IdP URL"))?;
    let csp = pages::saml::post_form_csp(&origin);
    let body = pages::saml::post_form(action, saml_request, relay);
    let mut r = crate::http::html(StatusCode::OK, body);
    r.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).map_err(|_| Error::BadRequest("IdP URL"))?,
    );
    Ok(r)
}

/// GET `{prefix}/saml/metadata`.
fn metadata(sso: &Sso) -> Response<Body> {
    crate::http::cacheable(sso.sp_metadata(), "application/samlmetadata+xml")
}

/// POST `{prefix}/saml/acs`: validate, sign in, 303 to where the user
/// started. Failures are an HTML page (the browser posted a form) with the
/// request id; the log line with the same id has the precise reason.
async fn acs(
    state: &State,
    sso: &Sso,
    ctx: &RequestCtx,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let page_ctx = ctx.for_page();
    let path = format!("{}/saml/acs", state.config.server.prefix);
    let refuse = |e: Error| {
        state.metrics.logins_failed.inc();
        let reason = cause(&e);
        tracing::warn!(request_id = %ctx.id, client = %ctx.client, reason = %reason, "SAML sign-in refused");
        Audit::new("login_failure")
            .request("POST", &path, ctx.client)
            .reason(&reason)
            .request_id(ctx.id.as_str())
            .emit();
        // Who was kept out, as for a deactivated user: the IdP vouched for
        // this person, only their groups are missing.
        if let Error::Saml(saml::Error::GroupsOverage { subject, .. }) = &e {
            Audit::new("login_refused")
                .subject(subject.as_str())
                .request("POST", &path, ctx.client)
                .reason("groups_overage")
                .request_id(ctx.id.as_str())
                .emit();
        }
        error::respond(&e, &page_ctx)
    };
    let headers = req.headers().clone();
    let body = match crate::http::read_body(req.into_body(), saml::MAX_BODY).await {
        Ok(b) => b,
        Err(e) => return Ok(refuse(e.into())),
    };
    let Some(response) = form_field(&body, "SAMLResponse") else {
        return Ok(refuse(Error::Saml(saml::Error::MissingResponse)));
    };
    let relay = form_field(&body, "RelayState").unwrap_or_default();
    let now = saml_now();
    let mut entries = read_state(state, &headers, now);
    let pending: Vec<Pending> = entries
        .iter()
        .map(|e| Pending {
            id: e.id.clone(),
            rd: e.rd.clone(),
            idp: e.idp.clone(),
        })
        .collect();
    let verified = match sso.consume(&response, &pending, SystemTime::now()).await {
        Ok(v) => v,
        Err(e) => return Ok(refuse(Error::Saml(e))),
    };
    // Single use: the answered request leaves the cookie.
    let rd = match &verified.request_id {
        Some(id) => {
            let rd = entries
                .iter()
                .find(|e| e.id == *id)
                .map(|e| e.rd.clone())
                .unwrap_or_else(|| "/".into());
            entries.retain(|e| e.id != *id);
            rd
        }
        None => login_target(state, &relay).to_string(),
    };
    if rd == TEST_RD {
        let mut r = test_report(state, &headers, verified.principal).await;
        r.headers_mut()
            .append(header::SET_COOKIE, state_cookie(state, &entries));
        return Ok(r);
    }
    let (_session, set_cookie) = match state.sign_in(verified.principal, ctx.client).await {
        Ok(x) => x,
        Err(e) => return Ok(error::respond(&e, &page_ctx)),
    };
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    let h = r.headers_mut();
    h.insert(
        header::LOCATION,
        HeaderValue::from_str(&rd).unwrap_or_else(|_| HeaderValue::from_static("/")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(header::SET_COOKIE, set_cookie);
    h.append(header::SET_COOKIE, state_cookie(state, &entries));
    Ok(r)
}

/// `form_value`, in one pass over the (~10 KB) SAMLResponse: the first
/// field whose decoded name is `name`, `+` as space, percent-decoded,
/// invalid UTF-8 replaced.
fn form_field(body: &[u8], name: &str) -> Option<String> {
    fn decode(b: &[u8]) -> String {
        let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
        let mut out = Vec::with_capacity(b.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'+' => out.push(b' '),
                b'%' => match (
                    b.get(i + 1).and_then(|c| hex(*c)),
                    b.get(i + 2).and_then(|c| hex(*c)),
                ) {
                    (Some(h), Some(l)) => {
                        out.push(h << 4 | l);
                        i += 2;
                    }
                    _ => out.push(b'%'),
                },
                c => out.push(c),
            }
            i += 1;
        }
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }
    for pair in body.split(|b| *b == b'&') {
        let (k, v) = match pair.iter().position(|b| *b == b'=') {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &pair[pair.len()..]),
        };
        let same = if k.iter().any(|c| *c == b'%' || *c == b'+') {
            decode(k) == name
        } else {
            k == name.as_bytes()
        };
        if same {
            return Some(decode(v));
        }
    }
    None
}

fn cause(e: &Error) -> String {
    let mut s = e.to_string();
    let mut cur = std::error::Error::source(e);
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn saml_now() -> u64 {
    crate::clock::now_unix()
}

/// One started sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    id: String,
    rd: String,
    t: u64,
    /// The IdP the request went to.
    idp: String,
}

/// What the request-state cookie seals: the sign-ins this browser started
/// (JSON `[[id, return path, time, idp], ...]`, oldest first).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SamlRequests(pub(crate) Vec<Entry>);

impl Sealable for SamlRequests {
    const AD: &'static [u8] = ad::SAML_REQUESTS;
    fn encode(&self, out: &mut Vec<u8>) {
        let list: Vec<(&str, &str, u64, &str)> = self
            .0
            .iter()
            .map(|e| (e.id.as_str(), e.rd.as_str(), e.t, e.idp.as_str()))
            .collect();
        let _ = serde_json::to_writer(out, &list);
    }
    fn decode(payload: &[u8]) -> Option<Self> {
        let list: Vec<(String, String, u64, String)> = serde_json::from_slice(payload).ok()?;
        Some(SamlRequests(
            list.into_iter()
                .map(|(id, rd, t, idp)| Entry { id, rd, t, idp })
                .collect(),
        ))
    }
}

impl Expiring for SamlRequests {
    const TTL: Duration = STATE_TTL;
}

/// What the logout cookie seals: the LogoutRequests this browser sent
/// (JSON `[[id, time], ...]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SamlLogouts(pub(crate) Vec<(String, u64)>);

impl Sealable for SamlLogouts {
    const AD: &'static [u8] = ad::SAML_LOGOUTS;
    fn encode(&self, out: &mut Vec<u8>) {
        let _ = serde_json::to_writer(out, &self.0);
    }
    fn decode(payload: &[u8]) -> Option<Self> {
        serde_json::from_slice(payload).ok().map(SamlLogouts)
    }
}

impl Expiring for SamlLogouts {
    const TTL: Duration = STATE_TTL;
}

fn state_cookie_config(state: &State) -> CookieConfig {
    CookieConfig {
        name: format!("{}-saml", state.cookie.name),
        secure: state.cookie.secure,
    }
}

/// The live entries of the request-state cookie (any that opens; expired
/// entries dropped).
fn read_state(state: &State, headers: &HeaderMap, now: u64) -> Vec<Entry> {
    let cfg = state_cookie_config(state);
    for value in cfg.find_all(headers) {
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        let Some(SamlRequests(list)) = Sealed::open(&state.keys, &value, now) else {
            continue;
        };
        return list
            .into_iter()
            .filter(|e| e.t <= now && now - e.t <= STATE_TTL.as_secs())
            .collect();
    }
    Vec::new()
}

/// `Set-Cookie` for the entries (deletes the cookie when there are none).
fn state_cookie(state: &State, entries: &[Entry]) -> HeaderValue {
    let cfg = state_cookie_config(state);
    let attrs = if cfg.secure {
        "; Path=/; HttpOnly; Secure; SameSite=None"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    };
    let mut list = SamlRequests(entries.to_vec());
    let header = loop {
        if list.0.is_empty() {
            break format!(
                "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{attrs}",
                cfg.name
            );
        }
        let sealed = Sealed::seal(&state.keys, &list, saml_now());
        if sealed.as_str().len() <= MAX_VALUE_LEN - 64 {
            break format!(
                "{}={}; Max-Age={}{attrs}",
                cfg.name,
                sealed.as_str(),
                STATE_TTL.as_secs()
            );
        }
        // Too big for one cookie (long return paths): forget the oldest.
        list.0.remove(0);
    };
    let mut v = HeaderValue::from_str(&header)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"));
    v.set_sensitive(true);
    v
}

/// The answer to a test sign-in: what the assertion said and what the
/// mapping in force makes of it. Shown only to an owner or administrator
/// signed in in this browser, whose session stays as it is.
async fn test_report(
    state: &State,
    headers: &HeaderMap,
    p: crate::identity::Principal,
) -> Response<Body> {
    let admin =
        matches!(state.load_session(headers).await, Ok(Some(s)) if super::admin::is_admin(&s));
    if !admin {
        let e = Error::Forbidden("the test sign-in report is for owners and administrators");
        return crate::http::html(
            e.status(),
            pages::error::forbidden("The test sign-in report is for owners and administrators."),
        );
    }
    let grant = state.config.mapping.explain(p.email.as_deref(), &p.groups);
    let page = pages::saml::test_report(&p, &grant, &state.config.server.prefix);
    crate::http::html(StatusCode::OK, page)
}

/// After `/_auth/logout` revoked a SAML session: the 302 to the IdP's
/// SingleLogoutService with our signed LogoutRequest (None when SLO is not
/// set up, or the session is not a SAML one: the local sign-out stands).
pub fn continue_to_idp(state: &State, session: &Session) -> Option<Response<Body>> {
    let sso = state.saml.as_ref()?;
    let id = &session.identity;
    if id.method != crate::identity::Method::Saml {
        return None;
    }
    // The IdP the session signed in with (gone from the configuration:
    // the local sign-out stands).
    let provider = sso.provider_of(id.saml_idp.as_deref())?;
    if !provider.slo_available() {
        return None;
    }
    let (request_id, url) = match provider.logout_request(
        &id.subject,
        id.session_index.as_deref(),
        "",
    ) {
        Ok(x) => x,
        Err(e) => {
            tracing::warn!(reason = %e, "single logout: the LogoutRequest could not be built; signed out locally only");
            return None;
        }
    };
    let location = HeaderValue::from_str(&url).ok()?;
    let now = saml_now();
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::FOUND;
    let h = r.headers_mut();
    h.insert(header::LOCATION, location);
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(header::SET_COOKIE, slo_cookie(state, &[(request_id, now)]));
    Some(r)
}

/// `{prefix}/saml/slo`: a LogoutResponse to our LogoutRequest (GET), or a
/// LogoutRequest from the IdP (GET: HTTP-Redirect, POST: HTTP-POST).
async fn slo(
    state: &State,
    sso: &Sso,
    ctx: &RequestCtx,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let page_ctx = ctx.for_page();
    let refuse = |e: saml::Error| {
        let e = Error::Saml(e);
        tracing::warn!(request_id = %ctx.id, client = %ctx.client, reason = %cause(&e), "SAML logout message refused");
        error::respond(&e, &page_ctx)
    };
    let headers = req.headers().clone();
    if req.method() == Method::POST {
        let body = match crate::http::read_body(req.into_body(), saml::MAX_BODY).await {
            Ok(b) => b,
            Err(e) => return Ok(error::respond(&e.into(), &page_ctx)),
        };
        let Some(request) = form_value(&body, "SAMLRequest") else {
            return Ok(refuse(saml::Error::MissingResponse));
        };
        let relay = form_value(&body, "RelayState");
        let message = saml::IdpMessage::Post {
            saml_request: &request,
            relay: relay.as_deref(),
        };
        return Ok(idp_logout(state, sso, ctx, &headers, message, &page_ctx).await);
    }
    let query = req.uri().query().unwrap_or("").to_string();
    let has = |k: &str| query.split('&').any(|p| p.split('=').next() == Some(k));
    if has("SAMLRequest") {
        let message = saml::IdpMessage::Redirect(&query);
        return Ok(idp_logout(state, sso, ctx, &headers, message, &page_ctx).await);
    }
    if !has("SAMLResponse") {
        return Ok(refuse(saml::Error::MissingResponse));
    }
    // The answer to our LogoutRequest: the session is already revoked;
    // this only tells the user whether the IdP signed them out as well.
    let now = saml_now();
    let pending: Vec<String> = read_slo(state, &headers, now)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    let mut r = match sso.logout_response(&query, &pending, SystemTime::now()) {
        Ok(resp) if resp.status.as_deref() == Some(saml::logout::STATUS_SUCCESS) => {
            signed_out_page(state, None)
        }
        Ok(resp) => {
            let code = resp
                .sub_status
                .or(resp.status)
                .unwrap_or_else(|| "(none)".into());
            let short = code.rsplit(':').next().unwrap_or(&code).to_string();
            tracing::warn!(request_id = %ctx.id, status = %code, "single logout: the IdP did not end its session");
            signed_out_page(state, Some(&short))
        }
        Err(e) => refuse(e),
    };
    r.headers_mut()
        .append(header::SET_COOKIE, slo_cookie(state, &[]));
    Ok(r)
}

/// An IdP-initiated logout: every session of that NameID (and
/// SessionIndex, when given) signed in at that IdP is revoked in the
/// store, so a copied cookie stops working too, then the browser goes back
/// to the IdP with our signed LogoutResponse. Sessions of other IdPs (which
/// may give the same NameID to somebody else) and LDAP sessions stay.
async fn idp_logout(
    state: &State,
    sso: &Sso,
    ctx: &RequestCtx,
    _headers: &HeaderMap,
    message: saml::IdpMessage<'_>,
    page_ctx: &RequestCtx,
) -> Response<Body> {
    let (req, relay, provider) = match sso.idp_logout_request(message, SystemTime::now()).await {
        Ok(x) => x,
        Err(e) => {
            let e = Error::Saml(e);
            tracing::warn!(request_id = %ctx.id, client = %ctx.client, reason = %cause(&e), "SAML LogoutRequest refused");
            return error::respond(&e, page_ctx);
        }
    };
    let mut revoked = 0;
    let mut failed = false;
    let indexes: Vec<Option<&str>> = if req.session_indexes.is_empty() {
        vec![None]
    } else {
        req.session_indexes
            .iter()
            .map(|i| Some(i.as_str()))
            .collect()
    };
    let first_idp = sso.providers().first().map(|p| p.id.as_str()) == Some(provider.id.as_str());
    for index in indexes {
        let target = crate::session::LogoutTarget {
            subject: &req.name_id,
            session_index: index,
            idp: &provider.id,
            first_idp,
        };
        match state.sessions.revoke_subject(target).await {
            Ok(n) => revoked += n,
            Err(e) => {
                failed = true;
                tracing::error!(request_id = %ctx.id, reason = %e, "single logout: the session store failed");
            }
        }
    }
    let path = format!("{}/saml/slo", state.config.server.prefix);
    Audit::new("logout")
        .subject(req.name_id.as_str())
        .request(ctx.method.as_str(), &path, ctx.client)
        .reason(if revoked > 0 {
            "idp_logout"
        } else {
            "idp_logout_no_session"
        })
        .request_id(ctx.id.as_str())
        .emit();
    // SAML core §3.7.3.2: Success when every session is gone; a store
    // failure is the Responder's.
    let status = if failed {
        "urn:oasis:names:tc:SAML:2.0:status:Responder"
    } else {
        saml::logout::STATUS_SUCCESS
    };
    let mut r = match provider.logout_response_redirect(&req, relay.as_deref(), status) {
        Ok(url) => match HeaderValue::from_str(&url) {
            Ok(location) => {
                let mut r = Response::new(full(""));
                *r.status_mut() = StatusCode::FOUND;
                r.headers_mut().insert(header::LOCATION, location);
                r
            }
            Err(_) => signed_out_page(state, None),
        },
        // No key or no IdP endpoint: the sessions are gone all the same.
        Err(e) => {
            tracing::warn!(request_id = %ctx.id, reason = %e, "single logout: no LogoutResponse sent");
            signed_out_page(state, None)
        }
    };
    let h = r.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.append(header::SET_COOKIE, state.cookie.clear_header());
    r
}

/// `idp_status`: the IdP did not end its own session (see
/// [`pages::logout::signed_out`]).
fn signed_out_page(state: &State, idp_status: Option<&str>) -> Response<Body> {
    let mut r = crate::http::html(
        StatusCode::OK,
        pages::logout::signed_out(&state.config.server.prefix, idp_status),
    );
    r.headers_mut()
        .append(header::SET_COOKIE, state.cookie.clear_header());
    r
}

fn slo_cookie_config(state: &State) -> CookieConfig {
    CookieConfig {
        name: format!("{}-slo", state.cookie.name),
        secure: state.cookie.secure,
    }
}

/// The pending LogoutRequests (ID, time) of this browser.
fn read_slo(state: &State, headers: &HeaderMap, now: u64) -> Vec<(String, u64)> {
    let cfg = slo_cookie_config(state);
    for value in cfg.find_all(headers) {
        let value = percent_encoding::percent_decode_str(value).decode_utf8_lossy();
        let Some(SamlLogouts(list)) = Sealed::open(&state.keys, &value, now) else {
            continue;
        };
        return list
            .into_iter()
            .filter(|(_, t)| *t <= now && now - *t <= STATE_TTL.as_secs())
            .collect();
    }
    Vec::new()
}

/// `Set-Cookie` for pending LogoutRequests (deletes it when none). Lax is
/// enough: the IdP answers with a top-level GET redirect.
fn slo_cookie(state: &State, entries: &[(String, u64)]) -> HeaderValue {
    let cfg = slo_cookie_config(state);
    let attrs = if cfg.secure {
        "; Path=/; HttpOnly; Secure; SameSite=Lax"
    } else {
        "; Path=/; HttpOnly; SameSite=Lax"
    };
    let header = if entries.is_empty() {
        format!(
            "{}=; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT{attrs}",
            cfg.name
        )
    } else {
        let sealed = Sealed::seal(&state.keys, &SamlLogouts(entries.to_vec()), saml_now());
        format!(
            "{}={}; Max-Age={}{attrs}",
            cfg.name,
            sealed.as_str(),
            STATE_TTL.as_secs()
        )
    };
    let mut v = HeaderValue::from_str(&header)
        .unwrap_or_else(|_| HeaderValue::from_static("invalid=; Max-Age=0"));
    v.set_sensitive(true);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_field_reads_what_form_value_reads() {
        let bodies: [&[u8]; 9] = [
            b"SAMLResponse=PD94%2Bbw%3D%3D&RelayState=%2Fbench",
            b"RelayState=%2F&SAMLResponse=a+b%20c",
            b"SAML%52esponse=x&SAMLResponse=y",
            b"SAMLResponse&RelayState=",
            b"SAMLResponse=%zz%4&RelayState=%C3%A9%FF",
            b"a=1&&SAMLResponse==x=",
            b"",
            b"RelayState=%2",
            b"SAMLResponse=\xff\xfe&RelayState=caf%C3%A9",
        ];
        for body in bodies {
            for name in ["SAMLResponse", "RelayState", "missing"] {
                assert_eq!(
                    form_field(body, name),
                    form_value(body, name),
                    "{} / {name}",
                    String::from_utf8_lossy(body)
                );
            }
        }
    }
}
