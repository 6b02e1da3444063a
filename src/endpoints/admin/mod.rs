//! The SSO & SAML settings page, `{prefix}/admin/sso` (owner and
//! administrator only; everyone else 403; without a session, the login
//! page): the URLs to paste into the IdP, the IdP metadata status, forms
//! to upload the IdP metadata or set its URL, the three group-mapping
//! tables, the explain box and the test sign-in.
//!
//! - `GET  {prefix}/admin/sso`           the page
//! - `GET  {prefix}/admin/sso.js`        its one script (copy buttons)
//! - `POST {prefix}/admin/sso/metadata`  upload (multipart) or URL
//! - `POST {prefix}/admin/sso/mapping`   the mapping tables (save, add a row)
//! - `POST {prefix}/admin/sso/explain`   groups or an email → the grant, and why
//! - `POST {prefix}/admin/sso/sessions`  revoke one session (`sid`) or a user's (`user`)
//! - `GET  {prefix}/admin/sso/test`      SP-initiated sign-in that only reports
//!
//! Every form carries a CSRF token ([`csrf`]), so a token works only with
//! the session it was made for. Saving goes through `crate::app::sso::save`
//! (state file, Redis, reload) and is an audit event naming who and what
//! changed. Nothing secret is rendered: no keys, no metadata XML, no
//! cookies.
//!
//! Here: routing, access, the handlers. The page itself is
//! [`crate::pages::sso`]; forms (urlencoded, multipart) are read by
//! [`form`]; a metadata URL must pass the rule of `saml.idp_metadata_url`
//! ([`crate::config::saml::metadata_url`]); certificate expiry is
//! [`crate::saml::metadata::expiry`].

pub(crate) mod csrf;
mod form;

use std::sync::Arc;
use std::time::Duration;

use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::app::State;
use crate::clock::now_unix;
use crate::config::saml::MetadataUrlError;
use crate::error::Error;
use crate::http::{full, Body};
use crate::pages::sso::{self as page, View};
use crate::request::context::RequestCtx;
use crate::role::Role;
use crate::session::control::{self, Selector};
use crate::session::{Session, Summary};
use crate::settings::{self, Metadata, Problem, Saved};
use crate::telemetry::Audit;

use form::Form;

/// Time allowed to download metadata given by URL.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// Routes `/admin/sso*`.
pub async fn dispatch(
    state: &Arc<State>,
    ctx: &RequestCtx,
    req: Request<Incoming>,
    sub: &str,
    user: &mut Option<Arc<Session>>,
) -> Result<Response<Body>, Error> {
    let get = req.method() == Method::GET || req.method() == Method::HEAD;
    let post = req.method() == Method::POST;
    if sub == "/admin/sso.js" {
        return if get {
            Ok(script())
        } else {
            Err(Error::MethodNotAllowed)
        };
    }
    let s = match admin_session(state, &req, user).await? {
        Ok(s) => s,
        Err(redirect) => return Ok(redirect),
    };
    match sub {
        "/admin/sso" if get => {
            // A save on another replica shows at once.
            let state = crate::app::sso::sync(state).await;
            let notice = super::query_param(&req, "saved").map(|v| match v.as_str() {
                "unchanged" => "Nothing changed.".to_string(),
                v => format!("Saved (version {v}). New sign-ins use it now; signed-in users keep their sessions."),
            }).or_else(|| super::query_param(&req, "revoked").map(|n| match n.as_str() {
                "1" => "1 session revoked: its next request is signed out.".to_string(),
                n => format!("{} sessions revoked: their next requests are signed out.", n.parse::<usize>().unwrap_or(0)),
            }));
            let sessions = Some(session_list(&state).await);
            Ok(render(
                &state,
                &s,
                View {
                    notice,
                    sessions,
                    ..View::default()
                },
                StatusCode::OK,
            ))
        }
        "/admin/sso/metadata" if post => metadata(state, ctx, &s, req).await,
        "/admin/sso/mapping" if post => mapping(state, ctx, &s, req).await,
        "/admin/sso/explain" if post => explain(state, ctx, &s, req).await,
        "/admin/sso/sessions" if post => revoke_sessions(state, ctx, &s, req).await,
        "/admin/sso/test" if get => super::saml::test_sign_in(state, &req),
        _ => Err(Error::MethodNotAllowed),
    }
}

/// The session of an owner or administrator; `Err(redirect)` to the login
/// page for a browser without a session.
async fn admin_session(
    state: &State,
    req: &Request<Incoming>,
    user: &mut Option<Arc<Session>>,
) -> Result<Result<Arc<Session>, Response<Body>>, Error> {
    let Some(s) = state.load_session(req.headers()).await? else {
        if crate::request::context::is_navigation(req.method(), req.headers()) {
            return Ok(Err(super::redirect_to_login(
                state,
                &format!("{}/admin/sso", state.config.server.prefix),
            )));
        }
        return Err(Error::Unauthenticated);
    };
    *user = Some(s.clone());
    if !is_admin(&s) {
        return Err(Error::Forbidden(
            "this page is for owners and administrators",
        ));
    }
    Ok(Ok(s))
}

pub fn is_admin(s: &Session) -> bool {
    s.identity.role.is_some_and(Role::is_admin)
}

/// The page for `s`, as `status`, with its CSP.
fn render(state: &State, s: &Session, v: View, status: StatusCode) -> Response<Body> {
    let token = csrf::token(state, s);
    let who = who(s);
    let saved = state.sso.current();
    let page = page::Page {
        config: &state.config,
        saml: state.saml.as_deref(),
        settings: page::Settings {
            version: state.sso.version,
            problem: state.sso.problem.as_deref(),
            can_save: state.sso.state_dir.is_some(),
            locks: &state.sso.locks,
            metadata_url: match &saved.metadata {
                Some(Metadata::Url { url }) => Some(url),
                _ => None,
            },
        },
        csrf: &token,
        who: &who,
    };
    let mut r = crate::http::html(status, page::render(&page, &v));
    if let Ok(v) = HeaderValue::from_str(&page::csp()) {
        r.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    r.headers_mut()
        .insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    r
}

fn script() -> Response<Body> {
    let mut r = crate::http::cacheable(page::SCRIPT, "text/javascript; charset=utf-8");
    let h = r.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    r
}

/// Reads the form and checks its CSRF token (403 when it does not belong
/// to this session).
async fn checked_form(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Form, Error> {
    let path = req.uri().path().to_string();
    let form = form::read(req).await?;
    if !csrf::ok(state, s, form.get("csrf")) {
        Audit::new("access_refused")
            .subject(s.identity.subject.as_str())
            .role(s.identity.role.map(Role::as_str))
            .request("POST", &path, ctx.client)
            .reason("csrf")
            .request_id(ctx.id.as_str())
            .emit();
        return Err(Error::CsrfMismatch);
    }
    Ok(form)
}

fn who(s: &Session) -> String {
    s.identity
        .email
        .clone()
        .unwrap_or_else(|| s.identity.subject.clone())
}

/// Saves, writes the audit event, and answers 303 back to the page.
async fn commit(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    new: Saved,
) -> Result<Response<Body>, Problem> {
    let old = state.sso.current();
    let changed = settings::changes(&old, &new);
    let prefix = &state.config.server.prefix;
    if changed.is_empty() {
        return Ok(see_other(&format!("{prefix}/admin/sso?saved=unchanged")));
    }
    let saved = crate::app::sso::save(state, new)
        .await
        .map_err(|e| Problem {
            field: "save".into(),
            message: e.to_string(),
        })?;
    let path = format!("{prefix}/admin/sso");
    Audit::new("sso_settings_saved")
        .subject(s.identity.subject.as_str())
        .role(s.identity.role.map(Role::as_str))
        .request("POST", &path, ctx.client)
        .reason("saved")
        .request_id(ctx.id.as_str())
        .version(saved.version)
        .changed(&changed.join(" | "))
        .emit();
    Ok(see_other(&format!("{path}?saved={}", saved.version)))
}

fn see_other(location: &str) -> Response<Body> {
    let mut r = Response::new(full(""));
    *r.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(v) = HeaderValue::from_str(location) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    r.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

fn refused(state: &State, s: &Session, mut view: View, p: Problem) -> Response<Body> {
    view.problems.push(p);
    render(state, s, view, StatusCode::BAD_REQUEST)
}

/// POST `/admin/sso/metadata`: an uploaded document (file or pasted) or a
/// URL, each checked (parses, one IdP, a signing certificate, an
/// HTTP-Redirect SSO endpoint) before it is saved.
async fn metadata(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let form = checked_form(state, ctx, s, req).await?;
    let url = form.text("metadata_url").trim().to_string();
    let view = View {
        metadata_url: Some(url.clone()),
        ..View::default()
    };
    let fail = |m: String| Problem {
        field: "metadata".into(),
        message: m,
    };
    if let Some(src) = state.sso.locks.get(settings::KEY_METADATA) {
        return Ok(refused(
            state,
            s,
            view,
            fail(format!(
                "the IdP metadata is set by the configuration ({src})"
            )),
        ));
    }
    if state.sso.state_dir.is_none() {
        return Ok(refused(
            state,
            s,
            view,
            fail(settings::store::Error::NoStateDir.to_string()),
        ));
    }
    let (md, text) = if form.get("source") == Some("url") {
        let uri = match crate::config::saml::metadata_url(&url) {
            Ok(u) => u,
            Err(e) => return Ok(refused(state, s, view, fail(url_problem(&url, e)))),
        };
        match crate::saml::metadata::fetch(&uri, FETCH_TIMEOUT).await {
            Ok(text) => (Metadata::Url { url: url.clone() }, text),
            Err(e) => return Ok(refused(state, s, view, fail(e.to_string()))),
        }
    } else {
        let file = form.text("metadata_file");
        let text = if file.trim().is_empty() {
            form.text("metadata_xml")
        } else {
            file
        };
        if text.trim().is_empty() {
            return Ok(refused(
                state,
                s,
                view,
                fail("choose a metadata file or paste the XML".into()),
            ));
        }
        (Metadata::Xml { xml: text.clone() }, text)
    };
    // The same checks as at start: with saml.metadata_signing_cert set, an
    // upload must carry that signature too.
    let (trust, algs) = match &state.config.saml {
        Some(c) => (
            c.metadata_trust.as_ref(),
            c.allowed_signature_algorithms.clone(),
        ),
        None => (None, vec![crate::saml::SignatureAlgorithm::RsaSha256]),
    };
    if let Err(e) = crate::saml::metadata::load(&text, trust, &algs) {
        let why = match e {
            crate::saml::Error::MetadataNoSigningCertificate => "the IdP metadata has no signing certificate (a KeyDescriptor with an X509Certificate); without one no sign-in could be verified".to_string(),
            e => e.to_string(),
        };
        return Ok(refused(state, s, view, fail(format!("refused: {why}"))));
    }
    let mut new = state.sso.current();
    new.metadata = Some(md);
    new.saved_by = who(s);
    new.saved_at = now_unix();
    match commit(state, ctx, s, new).await {
        Ok(r) => Ok(r),
        Err(p) => Ok(refused(state, s, view, p)),
    }
}

/// Why a metadata URL is refused, for the page.
fn url_problem(url: &str, e: MetadataUrlError) -> String {
    match e {
        MetadataUrlError::Unparsable => {
            format!("{url:?} is not a URL; expected e.g. https://idp.example.com/metadata")
        }
        MetadataUrlError::PlainHttp(_) => format!("{url:?}: metadata decides whose signatures are trusted, so it must come over https (plain http only for 127.0.0.1/localhost)"),
        MetadataUrlError::NotHttps => format!("{url:?} is not an https URL"),
    }
}

/// POST `/admin/sso/mapping`: `action=save`, or `add-role`, `add-workspace`,
/// `add-project` (the form again with one more empty row, nothing saved).
async fn mapping(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let form = checked_form(state, ctx, s, req).await?;
    let (roles, ws, projects) = form::rows(&form);
    let action = form.text("action");
    let mut view = View {
        roles: Some(roles.clone()),
        workspaces: Some(ws.clone()),
        projects: Some(projects.clone()),
        ..View::default()
    };
    match action.as_str() {
        "add-role" => {
            view.extra = (1, 0, 0);
            return Ok(render(state, s, view, StatusCode::OK));
        }
        "add-workspace" => {
            view.extra = (0, 1, 0);
            return Ok(render(state, s, view, StatusCode::OK));
        }
        "add-project" => {
            view.extra = (0, 0, 1);
            return Ok(render(state, s, view, StatusCode::OK));
        }
        _ => {}
    }
    if state.sso.state_dir.is_none() {
        let p = Problem {
            field: "save".into(),
            message: settings::store::Error::NoStateDir.to_string(),
        };
        return Ok(refused(state, s, view, p));
    }
    let managed = !state.config.policy.manual_role_management;
    let tables = match settings::check_tables(&roles, &ws, &projects, managed) {
        Ok(t) => t,
        Err(problems) => {
            view.problems = problems;
            return Ok(render(state, s, view, StatusCode::BAD_REQUEST));
        }
    };
    let mut new = state.sso.current();
    let old = new
        .mapping
        .clone()
        .unwrap_or_else(|| settings::Tables::from_raw(&state.sso.base_raw.mapping));
    let locks = &state.sso.locks;
    new.mapping = Some(settings::Tables {
        roles: if locks.get(settings::KEY_ROLES).is_some() {
            old.roles
        } else {
            tables.roles
        },
        workspaces: if locks.get(settings::KEY_WORKSPACES).is_some() {
            old.workspaces
        } else {
            tables.workspaces
        },
        projects: if locks.get(settings::KEY_PROJECTS).is_some() {
            old.projects
        } else {
            tables.projects
        },
    });
    new.saved_by = who(s);
    new.saved_at = now_unix();
    match commit(state, ctx, s, new).await {
        Ok(r) => Ok(r),
        Err(p) => Ok(refused(state, s, view, p)),
    }
}

/// POST `/admin/sso/explain`: `groups` (one per line) or the `email` of a
/// user who signed in since start; the grant from the mapping in force.
async fn explain(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let form = checked_form(state, ctx, s, req).await?;
    let email = form.text("email").trim().to_string();
    let typed: Vec<String> = form
        .text("groups")
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|l| !l.is_empty())
        .collect();
    let mut view = View {
        explain_groups: typed.join("\n"),
        explain_email: email.clone(),
        ..View::default()
    };
    let groups = if typed.is_empty() && !email.is_empty() {
        match state.seen.groups_of(&email) {
            Some(g) => {
                view.explain_note = Some(format!("The groups {email} last signed in with."));
                g
            }
            None => {
                let p = Problem {
                    field: "email".into(),
                    message: format!("{email} has not signed in on this instance since it started; paste their groups instead"),
                };
                return Ok(refused(state, s, view, p));
            }
        }
    } else {
        typed
    };
    let email = (!email.is_empty()).then_some(email.as_str());
    view.explanation = Some(state.config.mapping.explain(email, &groups));
    Ok(render(state, s, view, StatusCode::OK))
}

/// The live sessions for the table, or why they cannot be shown.
async fn session_list(state: &State) -> Result<Vec<Summary>, String> {
    control::list(state.sessions.as_ref(), None, now_unix())
        .await
        .map_err(|e| format!("the session store is unavailable: {e}"))
}

/// POST `/admin/sso/sessions`: `sid` (one session, by the prefix the
/// table shows) or `user` (every session of that email); 303 back to the
/// page with the count, one audit event per ended session.
async fn revoke_sessions(
    state: &State,
    ctx: &RequestCtx,
    s: &Session,
    req: Request<Incoming>,
) -> Result<Response<Body>, Error> {
    let path = req.uri().path().to_string();
    let form = checked_form(state, ctx, s, req).await?;
    let sid = form.text("sid").trim().to_string();
    let user = form.text("user").trim().to_string();
    let sel = match (sid.is_empty(), user.is_empty()) {
        (false, true) => Selector::Sid(sid),
        (true, false) => Selector::User(user),
        _ => {
            let view = View {
                sessions: Some(session_list(state).await),
                ..View::default()
            };
            let p = Problem {
                field: "sessions".into(),
                message: "choose one session (Revoke) or give one email".into(),
            };
            return Ok(refused(state, s, view, p));
        }
    };
    let done = match control::revoke(state.sessions.as_ref(), &sel, now_unix()).await {
        Ok(d) => d,
        Err(control::Error::Store(e)) => return Err(Error::SessionStore(e)),
        Err(e) => {
            let view = View {
                sessions: Some(session_list(state).await),
                ..View::default()
            };
            let p = Problem {
                field: "sessions".into(),
                message: e.to_string(),
            };
            return Ok(refused(state, s, view, p));
        }
    };
    let by = who(s);
    super::sessions::audited(
        &done,
        &sel,
        &super::sessions::By {
            who: &by,
            via: "sso_page",
            path: &path,
            client: ctx.client,
            request_id: Some(&ctx.id),
        },
    );
    let prefix = &state.config.server.prefix;
    Ok(see_other(&format!(
        "{prefix}/admin/sso?revoked={}#sessions",
        done.len()
    )))
}
